//! Bounds and robustness under attack, on one real fetcher process: hostile sizes, a tar bomb in
//! the real registry, a layer asked as a manifest, a registry that never answers or never stops,
//! a peer answering a 100 MB "manifest", downloads that fill the disk, and a request abandoned
//! mid-download. After each: nothing wrong published, nothing left in tmp/, the node still
//! serves, and its peak RSS stays under 64 MiB.
//! The hostile registry and peer are one in-process server (a real one cannot misbehave so).

mod support;

use classcache_core::artifact::{describe_archive, pack_layer};
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::{self as api, routes, COMPLETE_ONLY_HEADER};
use classcache_core::media_types;
use classcache_core::reference::RegistryRef;
use classcache_oci::archive_file::PreparedArchive;
use classcache_oci::registry::RegistryClient;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::local::{get, LocalFetcher};
use support::{push_archive, test_config, wait_until, Fixture};

/// The fetcher's memory ceiling under the whole attack load.
const RSS_CEILING_KIB: u64 = 64 * 1024;
const MAX_SIZE: u64 = 128 << 20;

fn reference(f: &Fixture) -> String {
    format!(
        "{}/{}@{}",
        classcache_e2e::harness().registry,
        f.repository,
        f.pinned
    )
}

fn random_digest() -> Digest {
    Digest::of(format!("{:?}{}", Instant::now(), std::process::id()).as_bytes())
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".ready-probe")
                .collect()
        })
        .unwrap_or_default()
}

fn stored_bytes(store: &Path) -> u64 {
    ["blobs/sha256", "archives", "tmp"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(store.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// What must hold after every attack: nothing half-written left, nothing of `refused`
/// published, and the node answering health checks and a real archive request.
fn still_serving(node: &LocalFetcher, good: &Fixture, refused: &[&str], attack: &str) {
    wait_until(
        &format!("tmp/ to be empty after {attack}"),
        Duration::from_secs(20),
        || files_in(&node.store.join("tmp")).is_empty(),
    );
    for pinned in refused {
        let (status, body) = get(&format!("{}{}", node.url, api::archive_path(pinned))).unwrap();
        assert_eq!(
            status, 404,
            "{attack}: {pinned} must not be published: {body}"
        );
    }
    for route in [routes::HEALTHZ, routes::READYZ] {
        let (status, body) = get(&format!("{}{route}", node.url)).unwrap();
        assert_eq!(
            status,
            200,
            "{attack}: {route}: {body}\n{}",
            node.log_text()
        );
    }
    let (status, body) = node.ask(&reference(good));
    assert_eq!(status, 200, "{attack}: the good archive: {body}");
    let answer: api::ArchiveAnswer = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.sha256, good.archive_sha256, "{attack}");
    println!("after {attack}: refused, nothing published, node serving");
}

/// An archive whose 256 MiB of zeros (a few hundred KB of gzip) its config calls 1 KiB,
/// pushed to the harness registry; its pinned reference.
fn push_tar_bomb() -> String {
    let h = classcache_e2e::harness();
    let repository = classcache_e2e::unique_name("fetcher-bomb");
    let (config, subject) = test_config(&repository);
    let big = 256u64 << 20;
    let layer_file = tempfile::NamedTempFile::new().unwrap();
    let (writer, mut packed) = pack_layer(
        std::io::repeat(0).take(big),
        big,
        &config.archive.name,
        BufWriter::new(layer_file.as_file()),
    )
    .unwrap();
    writer.into_inner().unwrap().sync_all().unwrap();
    packed.archive.size = 1024;
    let prepared = PreparedArchive {
        blobs: describe_archive(config, packed, subject).unwrap(),
        layer_file,
    };
    let repo: RegistryRef = format!("{}/{repository}", h.registry).parse().unwrap();
    let pushed = support::block_on(async {
        RegistryClient::with_defaults()?
            .push_prepared(&repo, &prepared, "bomb")
            .await
    })
    .unwrap();
    format!("{repo}@{}", pushed.manifest_digest)
}

/// An honest archive served by the hostile server's slow registry (`/v2/slow/…`).
struct Mirror {
    manifest_digest: Digest,
    manifest: Vec<u8>,
    config_digest: Digest,
    config: Vec<u8>,
    layer_digest: Digest,
    layer: Vec<u8>,
}

fn mirror() -> Mirror {
    let (config, subject) = test_config(&classcache_e2e::unique_name("fetcher-slow"));
    let data = support::noise(4 << 20, 99);
    let (layer, packed) = pack_layer(
        &data[..],
        data.len() as u64,
        &config.archive.name,
        Vec::new(),
    )
    .unwrap();
    let blobs = describe_archive(config, packed, subject).unwrap();
    Mirror {
        manifest_digest: Digest::of(&blobs.manifest_json),
        manifest: blobs.manifest_json,
        config_digest: blobs.config_descriptor.digest,
        config: blobs.config_json,
        layer_digest: blobs.layer_descriptor.digest,
        layer,
    }
}

/// The hostile registry and peer: `/v2/never/…` accepts and never answers, `/v2/endless/…`
/// sends a manifest that never ends, `/v2/slow/…` serves [`Mirror`] with its layer at
/// 320 KB/s, and a peer's small-blob request gets a 100 MB body.
struct Hostile {
    port: u16,
    /// The slow mirror's archive manifest: what a pod would pin.
    slow_pinned: Digest,
    stop: Arc<AtomicBool>,
    /// Bytes of the slow layer sent, and whether its reader went away.
    slow_sent: Arc<AtomicU64>,
    slow_closed: Arc<AtomicBool>,
    huge_sent: Arc<AtomicU64>,
}

impl Hostile {
    fn start(mirror: Mirror) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = Hostile {
            port,
            slow_pinned: mirror.manifest_digest.clone(),
            stop: Arc::default(),
            slow_sent: Arc::default(),
            slow_closed: Arc::default(),
            huge_sent: Arc::default(),
        };
        let (stop, slow_sent, slow_closed, huge_sent) = (
            h.stop.clone(),
            h.slow_sent.clone(),
            h.slow_closed.clone(),
            h.huge_sent.clone(),
        );
        let mirror = Arc::new(mirror);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if stop.load(Relaxed) {
                    return;
                }
                let (stop, slow_sent, slow_closed, huge_sent, mirror) = (
                    stop.clone(),
                    slow_sent.clone(),
                    slow_closed.clone(),
                    huge_sent.clone(),
                    mirror.clone(),
                );
                std::thread::spawn(move || {
                    serve_hostile(conn, &stop, &slow_sent, &slow_closed, &huge_sent, &mirror)
                });
            }
        });
        h
    }

    fn reference(&self, repo: &str, digest: &Digest) -> String {
        format!("127.0.0.1:{}/{repo}@{digest}", self.port)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_hostile(
    mut conn: TcpStream,
    stop: &AtomicBool,
    slow_sent: &AtomicU64,
    slow_closed: &AtomicBool,
    huge_sent: &AtomicU64,
    mirror: &Mirror,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let complete_only = head.contains(&format!("{COMPLETE_ONLY_HEADER}:"));
    let answer = |conn: &mut TcpStream, content_type: &str, body: &[u8]| {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(body);
    };
    let stream_until_closed =
        |conn: &mut TcpStream, chunk: &[u8], pause: Duration, sent: &AtomicU64| {
            while !stop.load(Relaxed) {
                if conn.write_all(chunk).is_err() {
                    return true;
                }
                sent.fetch_add(chunk.len() as u64, Relaxed);
                std::thread::sleep(pause);
            }
            false
        };
    let blob_of = |digest: &Digest| format!("/v2/slow/blobs/{digest}");
    if path == "/v2/" {
        answer(&mut conn, "application/json", b"{}");
    } else if path.starts_with("/v2/never/") {
        while !stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    } else if path.starts_with("/v2/endless/manifests/") {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
            media_types::OCI_MANIFEST
        );
        stream_until_closed(&mut conn, &[b' '; 64 * 1024], Duration::ZERO, huge_sent);
    } else if path == format!("/v2/slow/manifests/{}", mirror.manifest_digest) {
        answer(&mut conn, media_types::OCI_MANIFEST, &mirror.manifest);
    } else if path == blob_of(&mirror.config_digest) {
        answer(&mut conn, "application/octet-stream", &mirror.config);
    } else if path == blob_of(&mirror.layer_digest) {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            mirror.layer.len()
        );
        for chunk in mirror.layer.chunks(32 * 1024) {
            if stop.load(Relaxed) || conn.write_all(chunk).is_err() {
                slow_closed.store(true, Relaxed);
                return;
            }
            slow_sent.fetch_add(chunk.len() as u64, Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    } else if path.starts_with("/v1/blobs/") && complete_only {
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            100u64 << 20
        );
        stream_until_closed(&mut conn, &[0u8; 64 * 1024], Duration::ZERO, huge_sent);
    } else {
        let _ = write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}

#[test]
fn hostile_sizes_bodies_layers_and_sources_are_refused_and_the_node_keeps_serving() {
    let h = classcache_e2e::harness();
    let hostile = Hostile::start(mirror());
    let good = push_archive(24 << 20);
    let dir = tempfile::tempdir().unwrap();
    let node = LocalFetcher::start_with_peers(
        &dir.path().join("store"),
        &dir.path().join("log"),
        &[format!("evil=http://127.0.0.1:{}", hostile.port)],
        &[
            "--max-size",
            &MAX_SIZE.to_string(),
            "--registry-read-timeout",
            "2s",
            "--max-downloads",
            "2",
            "--insecure-registry",
            &format!("127.0.0.1:{}", hostile.port),
            "--allowed-registry",
            &format!("127.0.0.1:{}", hostile.port),
        ],
    );
    let (status, body) = node.ask(&reference(&good));
    assert_eq!(status, 200, "{body}\n{}", node.log_text());

    // 1. The old blob contract: a caller-chosen repo and size (u64::MAX once panicked with the
    // store lock held). Sizes now come only from the archive's verified manifest.
    let blob_url =
        |digest: &str, query: &str| format!("{}{}?{query}", node.url, api::blob_path(digest));
    let repo = format!("{}/{}", h.registry, good.repository);
    let stranger = random_digest();
    for (digest, query, want) in [
        (
            stranger.to_string(),
            format!("repo={repo}&size={}", u64::MAX),
            404,
        ),
        (
            good.layer_digest.clone(),
            format!("repo={repo}&size={}", u64::MAX),
            200,
        ),
        (
            stranger.to_string(),
            format!("ref={}", reference(&good)),
            404,
        ),
        (stranger.to_string(), format!("ref={repo}@{stranger}"), 502),
    ] {
        let (status, body) = get(&blob_url(&digest, &query)).unwrap();
        assert_eq!(
            status,
            want,
            "{digest}?{query}: {}",
            &body[..body.len().min(300)]
        );
    }
    still_serving(&node, &good, &[], "caller-chosen blob sizes");

    // 2. A layer asked as an archive manifest: never read whole into memory.
    let layer_as_manifest = format!("{repo}@{}", good.layer_digest);
    let (status, body) = node.ask(&layer_as_manifest);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("more than the 4194304 bytes a manifest or config may have"),
        "{body}"
    );
    still_serving(
        &node,
        &good,
        &[&good.layer_digest],
        "a layer asked as a manifest",
    );

    // 3. A tar bomb: 256 MiB of zeros whose config says 1 KiB.
    let bomb = push_tar_bomb();
    let (status, body) = node.ask(&bomb);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("config says 1024"), "{body}");
    assert!(
        stored_bytes(&node.store) < 60 << 20,
        "the bomb was not unpacked: {} bytes stored",
        stored_bytes(&node.store)
    );
    let bomb_pinned = bomb.rsplit('@').next().unwrap();
    still_serving(&node, &good, &[bomb_pinned], "a tar bomb");

    // 4. A registry that accepts and never answers, while a good request is served meanwhile;
    // the peers are asked for the manifest then, and the hostile peer sends 100 MB.
    let never = hostile.reference("never", &random_digest());
    let started = Instant::now();
    let stalled = {
        let url = node.url.clone();
        let never = never.clone();
        std::thread::spawn(move || {
            let digest = never.rsplit('@').next().unwrap().to_string();
            get(&format!(
                "{url}{}",
                api::archive_request_path(&digest, &never)
            ))
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let quick = Instant::now();
    assert_eq!(node.ask(&reference(&good)).0, 200);
    assert!(
        quick.elapsed() < Duration::from_secs(2),
        "{:?}",
        quick.elapsed()
    );
    let (status, body) = stalled.join().unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    println!(
        "a never-answering registry failed the request in {:?}: {}",
        started.elapsed(),
        body.trim()
    );
    still_serving(&node, &good, &[], "a registry that never answers");

    // 5. A manifest body that never ends.
    let endless = hostile.reference("endless", &random_digest());
    let (status, body) = node.ask(&endless);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("larger than"), "{body}");
    still_serving(&node, &good, &[], "an endless manifest");

    // 6. A peer answering a 100 MB "manifest" (the registry lacks it, so peers are asked).
    let before = hostile.huge_sent.load(Relaxed);
    let missing = format!("{repo}@{}", random_digest());
    let (status, body) = node.ask(&missing);
    assert_eq!(status, 502, "{body}");
    let sent = hostile.huge_sent.load(Relaxed) - before;
    assert!(sent < 50 << 20, "the peer's body was read on: {sent} bytes");
    still_serving(&node, &good, &[], "a peer's 100 MB manifest");

    // 7. Concurrent downloads that together need more than --max-size: each is counted while
    // in flight, the ones that do not fit are refused with a clear error, the disk stays
    // under the cap.
    let big: Vec<Fixture> = (0..3).map(|_| push_archive(24 << 20)).collect();
    let answers: Vec<(u16, String)> = big
        .iter()
        .map(|f| {
            let (url, r) = (node.url.clone(), reference(f));
            std::thread::spawn(move || {
                let digest = r.rsplit('@').next().unwrap().to_string();
                get(&format!("{url}{}", api::archive_request_path(&digest, &r))).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 502 && body.contains("--max-size")),
            "{status}: {body}"
        );
    }
    // ~48 MiB are stored; each needs its layer and its archive file, ~48 MiB: one fits.
    let refused = answers.iter().filter(|(s, _)| *s != 200).count();
    assert!((1..3).contains(&refused), "one fits, not all: {answers:?}");
    assert!(
        stored_bytes(&node.store) <= MAX_SIZE,
        "{}",
        stored_bytes(&node.store)
    );
    println!(
        "filling the disk: {refused} of 3 refused, {} bytes stored",
        stored_bytes(&node.store)
    );
    still_serving(&node, &good, &[], "downloads that fill the disk");

    // 8. A request abandoned mid-download: the transfer is cancelled, its partial removed.
    let slow = hostile.reference("slow", &hostile.slow_pinned);
    let mut client = TcpStream::connect(node.url.trim_start_matches("http://")).unwrap();
    let slow_digest = slow.rsplit('@').next().unwrap();
    write!(
        client,
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        api::archive_request_path(slow_digest, &slow)
    )
    .unwrap();
    wait_until(
        "the slow download to start",
        Duration::from_secs(20),
        || hostile.slow_sent.load(Relaxed) > 0,
    );
    drop(client);
    wait_until(
        "the abandoned download to be cancelled",
        Duration::from_secs(10),
        || hostile.slow_closed.load(Relaxed),
    );
    let sent = hostile.slow_sent.load(Relaxed);
    assert!(sent < 4 << 20, "the whole layer was read: {sent}");
    still_serving(&node, &good, &[slow_digest], "an abandoned download");

    let peak = peak_rss_kib(node.pid());
    println!("fetcher peak RSS (VmHWM) across the attacks: {peak} KiB");
    assert!(peak < RSS_CEILING_KIB, "peak RSS {peak} KiB");
}
