//! Multi-node test and benchmark support: an archive pushed to the harness registry, and a
//! cluster of fetcher processes in network namespaces behind a counting registry proxy.
//! It must only reach loopback and the lab's own namespaces.
#![allow(dead_code)]

pub mod local;
pub mod netns;
pub mod proxy;

use classcache_core::digest::Digest;
use classcache_core::fetcher::http::{self as api, routes};
use classcache_core::key::ArchiveKind;
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_core::testing::sample_config;
use classcache_oci::registry::RegistryClient;
use netns::{enter_netns, Lab, LinkRate, ZoneB, GATEWAY};
use proxy::Proxy;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const PROXY_PORT: u16 = 5000;
pub const FETCHER_PORT: u16 = 8787;

/// An archive pushed to the harness registry.
pub struct Fixture {
    pub repository: String,
    /// The archive manifest's digest: what pods pin.
    pub pinned: String,
    pub layer_digest: String,
    pub layer_size: u64,
    pub archive_sha256: String,
    pub archive_size: u64,
}

/// Deterministic bytes that gzip cannot shrink (so the layer is as big as the archive).
pub use classcache_core::testing::noise;

/// Pushes an archive of `size` random bytes to a fresh repository of the harness registry.
pub fn push_archive(size: usize) -> Fixture {
    push_archive_with(size, |_| {})
}

/// [`push_archive`] with the config changed by `edit` first (a hostile pusher's config, say).
pub fn push_archive_with(
    size: usize,
    edit: impl FnOnce(&mut classcache_core::artifact::ArchiveConfig),
) -> Fixture {
    let h = classcache_e2e::harness();
    let repository = classcache_e2e::unique_name("fetcher-test");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.jsa");
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64 ^ size as u64;
    let data = noise(size, seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    std::fs::write(&path, &data).unwrap();
    let (mut config, subject) = test_config(&repository);
    edit(&mut config);
    let repo: RegistryRef = format!("{}/{repository}", h.registry).parse().unwrap();
    let pushed = block_on(async {
        let client = RegistryClient::with_defaults()?;
        client
            .push_archive(&repo, config, &path, Some(subject))
            .await
    })
    .unwrap_or_else(|e| panic!("pushing the test archive to {}: {e}", h.registry));
    Fixture {
        repository,
        pinned: pushed.manifest_digest.to_string(),
        layer_digest: pushed.layer.digest.to_string(),
        layer_size: pushed.layer.size,
        archive_sha256: pushed.config.archive.sha256.clone(),
        archive_size: pushed.config.archive.size,
    }
}

/// Runs `work` to its end on a runtime of its own (tests are plain threads).
pub fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

/// A config for an archive in `repository` of the harness registry, for this machine's
/// platform (nodes pick their own platform's archive), and the subject it names.
pub fn test_config(repository: &str) -> (classcache_core::artifact::ArchiveConfig, Descriptor) {
    let h = classcache_e2e::harness();
    let image_digest = Digest::of(repository.as_bytes());
    let platform = classcache_core::platform::Platform::current();
    let reference = format!("{}/{repository}:test", h.registry);
    let mut config = sample_config(
        &reference,
        image_digest.as_str(),
        ArchiveKind::DynamicCds,
        &[],
    );
    config.platform.os = platform.os;
    config.platform.architecture = platform.architecture;
    let subject = Descriptor::new(media_types::OCI_MANIFEST, image_digest, 500);
    (config, subject)
}

#[derive(Clone)]
pub struct ClusterOptions {
    pub hosts: usize,
    pub rate: Option<LinkRate>,
    /// Caps the registry's egress (bytes/s), as a cluster's single way out would.
    pub registry_egress: Option<u64>,
    pub fanout: usize,
    /// `--stripes` of every fetcher.
    pub stripes: classcache_core::fetcher::stripes::StripeChoice,
    /// false: every node alone (each pulls from the registry), for the baseline.
    pub peers: bool,
    pub stall_timeout: &'static str,
    /// Extra arguments and store directory per host (defaults: none, a temp dir).
    pub extra_args: Vec<(usize, Vec<String>)>,
    pub store_override: Vec<(usize, PathBuf)>,
    /// Namespace hosts after the fetchers' that run no fetcher and are in no peer list: the
    /// hostile hosts of the adversarial tests.
    pub strangers: usize,
    /// The last this many fetcher hosts in a second zone behind one link shaped at this rate;
    /// the peer list then names every node's zone (`node-i@zone-a=…`). None: one zone, no names.
    pub zone_b: Option<(usize, LinkRate)>,
}

impl ClusterOptions {
    pub fn new(hosts: usize) -> Self {
        Self {
            hosts,
            rate: None,
            registry_egress: None,
            fanout: 1,
            stripes: Default::default(),
            peers: true,
            stall_timeout: "2s",
            extra_args: vec![],
            store_override: vec![],
            strangers: 0,
            zone_b: None,
        }
    }

    /// Zone b's first fetcher host (`hosts` when there is no zone b).
    pub fn zone_b_start(&self) -> usize {
        self.hosts - self.zone_b.map_or(0, |(z, _)| z)
    }
}

pub struct Cluster {
    pub lab: Lab,
    pub proxy: Proxy,
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub stores: Vec<PathBuf>,
    pub pids: Vec<u32>,
    pub node_ids: Vec<String>,
}

pub fn node_id(i: usize) -> String {
    format!("node-{i}")
}

impl Cluster {
    pub fn start(opts: &ClusterOptions) -> Cluster {
        let h = classcache_e2e::harness();
        let zone_b = opts.zone_b.map(|(z, rate)| {
            assert!(
                z <= opts.hosts,
                "zone b of {z} hosts in a {}-host lab",
                opts.hosts
            );
            ZoneB {
                hosts: opts.zone_b_start()..opts.hosts,
                rate,
            }
        });
        let lab = Lab::zoned(opts.hosts + opts.strangers, opts.rate, zone_b);
        let proxy = Proxy::start(
            &lab.bridge_ns,
            &format!("{GATEWAY}:{PROXY_PORT}"),
            &h.registry,
            opts.registry_egress,
        );
        let ns = lab.bridge_ns.clone();
        // Every thread of this runtime lives in the bridge's namespace: its sockets reach the lab.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || enter_netns(&ns))
            .enable_all()
            .build()
            .unwrap();
        let http = rt
            .block_on(rt.spawn(async {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap()
            }))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node_ids: Vec<String> = (0..opts.hosts).map(node_id).collect();
        let zone = |i: usize| match opts.zone_b {
            None => String::new(),
            Some(_) if i >= opts.zone_b_start() => "@zone-b".into(),
            Some(_) => "@zone-a".into(),
        };
        let peer_list: Vec<String> = (0..opts.hosts)
            .map(|i| {
                format!(
                    "{}{}=http://{}:{FETCHER_PORT}",
                    node_ids[i],
                    zone(i),
                    lab.hosts[i].ip
                )
            })
            .collect();
        let mut stores = Vec::new();
        let mut pids = Vec::new();
        for i in 0..opts.hosts {
            let store = opts
                .store_override
                .iter()
                .find(|(h, _)| *h == i)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| dir.path().join(format!("store-{i}")));
            let peers = if opts.peers {
                peer_list.join(",")
            } else {
                peer_list[i].clone()
            };
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                format!("{}:{FETCHER_PORT}", lab.hosts[i].ip),
                "--store".into(),
                store.display().to_string(),
                "--node-id".into(),
                node_ids[i].clone(),
                "--peers".into(),
                peers,
                "--insecure-registry".into(),
                format!("{GATEWAY}:{PROXY_PORT}"),
                "--allowed-registry".into(),
                format!("{GATEWAY}:{PROXY_PORT}"),
                // The test's client calls from the bridge, as the node's pods would.
                "--allow-pods-from".into(),
                GATEWAY.to_string(),
                "--fanout".into(),
                opts.fanout.to_string(),
                "--stripes".into(),
                opts.stripes.to_string(),
                "--stall-timeout".into(),
                opts.stall_timeout.into(),
            ];
            for (_, extra) in opts.extra_args.iter().filter(|(h, _)| *h == i) {
                args.extend(extra.iter().cloned());
            }
            let pid = lab.spawn(
                i,
                env!("CARGO_BIN_EXE_classcache-fetcher"),
                &args,
                &dir.path().join(format!("node-{i}.log")),
            );
            stores.push(store);
            pids.push(pid);
        }
        let cluster = Cluster {
            lab,
            proxy,
            rt,
            http,
            dir,
            stores,
            pids,
            node_ids,
        };
        cluster.wait_healthy();
        cluster
    }

    /// Runs a future on the lab runtime (inside the bridge's namespace).
    pub fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.rt
            .block_on(self.rt.spawn(fut))
            .expect("lab task panicked")
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{FETCHER_PORT}", self.lab.hosts[i].ip)
    }

    fn wait_healthy(&self) {
        for i in 0..self.pids.len() {
            let url = format!("{}{}", self.url(i), routes::HEALTHZ);
            let http = self.http.clone();
            let ok = self.block(async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Ok(r) = http.get(&url).send().await {
                        if r.status().is_success() {
                            return true;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                false
            });
            assert!(ok, "node {i} did not become healthy; log:\n{}", self.log(i));
        }
    }

    /// The reference pods would pin, through the lab's registry proxy.
    pub fn reference(&self, f: &Fixture) -> String {
        format!("{GATEWAY}:{PROXY_PORT}/{}@{}", f.repository, f.pinned)
    }

    /// Asks nodes `which` for the archive at once; each answer with its latency.
    pub fn request(
        &self,
        which: &[usize],
        reference: &str,
    ) -> Vec<(Result<serde_json::Value, String>, Duration)> {
        self.request_within(which, reference, None)
    }

    /// [`Cluster::request`], each ask failing after `timeout`: a node that never answers is
    /// then a failure to report, not a run that hangs.
    pub fn request_within(
        &self,
        which: &[usize],
        reference: &str,
        timeout: Option<Duration>,
    ) -> Vec<(Result<serde_json::Value, String>, Duration)> {
        let digest = reference.rsplit('@').next().unwrap().to_string();
        let asks: Vec<_> = which
            .iter()
            .map(|&i| {
                let url = format!(
                    "{}{}",
                    self.url(i),
                    api::archive_request_path(&digest, reference)
                );
                let http = self.http.clone();
                async move {
                    let started = Instant::now();
                    let result = async {
                        let mut ask = http.get(url);
                        if let Some(t) = timeout {
                            ask = ask.timeout(t);
                        }
                        let r = ask.send().await.map_err(|e| with_causes(&e))?;
                        let status = r.status();
                        let body = r.text().await.map_err(|e| with_causes(&e))?;
                        if status.is_success() {
                            serde_json::from_str(&body).map_err(|e| e.to_string())
                        } else {
                            Err(format!("HTTP {status}: {body}"))
                        }
                    }
                    .await;
                    (result, started.elapsed())
                }
            })
            .collect();
        self.block(futures_util::future::join_all(asks))
    }

    pub fn get_text(&self, i: usize, path: &str) -> Option<String> {
        let url = format!("{}{path}", self.url(i));
        let http = self.http.clone();
        self.block(async move {
            let r = http
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            r.text().await.ok()
        })
    }

    /// A metric's value on node `i` (`name` including its labels as rendered).
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self.get_text(i, routes::METRICS).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn status(&self, i: usize, digest: &str) -> Option<serde_json::Value> {
        serde_json::from_str(&self.get_text(i, &api::status_path(digest, None))?).ok()
    }

    /// The sha256 of node `i`'s published archive, if published.
    pub fn published_sha(&self, i: usize, pinned: &str) -> Option<String> {
        let path = self.published_path(i, pinned);
        std::fs::read(path)
            .ok()
            .map(|b| Digest::of(&b).hex().to_string())
    }

    /// Node `i`'s published archive file: the one file in the pinned digest's directory.
    pub fn published_path(&self, i: usize, pinned: &str) -> PathBuf {
        published_archive(
            &self.stores[i]
                .join("published")
                .join(classcache_core::paths::published_dir_name(pinned)),
        )
    }

    /// Host indices in rank order for `digest`, as every node computes it.
    pub fn ranked(&self, digest: &str) -> Vec<usize> {
        ranked_hosts(digest, self.node_ids.len())
    }

    pub fn kill(&self, i: usize) {
        self.lab.kill(self.pids[i]);
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log"))).unwrap_or_default()
    }

    /// The tail of every node's log, for a failing assertion.
    pub fn logs(&self) -> String {
        (0..self.pids.len())
            .map(|i| {
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- node {i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Files left in node `i`'s store temp dir (partials that should not survive a failure).
    pub fn tmp_files(&self, i: usize) -> usize {
        std::fs::read_dir(self.stores[i].join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident memory of node `i`'s process, KiB.
    pub fn rss_kib(&self, i: usize) -> u64 {
        rss_kib(self.pids[i])
    }
}

/// Host indices of a `hosts`-node lab in rank order for `digest`, as every node computes it.
pub fn ranked_hosts(digest: &str, hosts: usize) -> Vec<usize> {
    let d: Digest = digest.parse().unwrap();
    let ids: Vec<String> = (0..hosts).map(node_id).collect();
    classcache_fetcher::ranking::rank(&d, ids.iter().map(String::as_str))
        .into_iter()
        .map(|id| ids.iter().position(|n| n == id).unwrap())
        .collect()
}

/// An error and its causes on one line: reqwest's own text names only the URL.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// For each stripe of a `size`-byte blob as the lab's fetchers cut it (`--stripes` default),
/// the host that roots it: the one that pulls it from the registry.
pub fn stripe_roots(digest: &str, hosts: usize, size: u64) -> Vec<usize> {
    use classcache_core::fetcher::stripes::{StripeChoice, Stripes};
    use classcache_fetcher::ranking::{distribution, Member};
    let d: Digest = digest.parse().unwrap();
    let ids: Vec<String> = (0..hosts).map(node_id).collect();
    let layout = Stripes::new(size, StripeChoice::default().wanted(hosts), hosts);
    let members = ids.iter().map(|id| Member { id, zone: None });
    let dist = distribution(&d, members, layout.count(), true);
    (0..layout.count())
        .map(|j| {
            let root = match layout.count() {
                1 => 0,
                n => dist.stripe_order(j, n)[0],
            };
            ids.iter().position(|n| n == dist.order[root]).unwrap()
        })
        .collect()
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A small tmpfs, unmounted on drop: a node store whose disk fills up.
pub struct SmallDisk {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn new(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} (needs root)",
            path.display()
        );
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The archive file in a published archive's directory (it holds that one file), or the
/// directory itself when it holds none.
pub fn published_archive(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .unwrap_or_else(|| dir.to_path_buf())
}
