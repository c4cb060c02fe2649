//! Peer-to-peer distribution benchmark: namespace hosts on `tc`-shaped links pull one archive, plainly, with fetchers killed, or across a shaped zone link.
//! It must print labelled, measured figures and fail on nothing about speed: only a survivor's failure or a wrong publish exits 1, after every figure.
//!
//! `cargo bench -p classcache-fetcher --bench p2p` (root; harness registry). Environment:
//! `P2P_SCENARIOS` (comma list of `plain`, `kills`, `zone`; default `plain`),
//! `P2P_AGGREGATE_MBIT` (sum of all hosts' link rates, default 384: each host gets its share,
//! so the lab's total traffic, which 2 cores must carry, is the same at 16 and 64 hosts; at 768
//! the 64-host lab is CPU-bound: the root alone took 1.15x its limit and each hop 0.3 s),
//! `P2P_SIZES_MB` (default `64,256`),
//! `P2P_HOSTS` (default `16,64`), `P2P_STRIPES` (the fetcher's `--stripes`, default `auto`),
//! `P2P_FANOUT` (default 1, for one stripe), `P2P_BUDGET_S` (default 300; 900 runs 64 hosts x 256 MB too:
//! `plain` scenarios whose physical limit alone would overrun it are skipped, and said so),
//! `P2P_SHOW_LOGS` (set: print the nodes' log tails when they warn or a run fails).
//! `kills` and `zone` use the largest `P2P_HOSTS` and the first `P2P_SIZES_MB`, `P2P_RUNS` times
//! each (default 5), then print the spread over the runs. `kills`: 3 distinct random fetchers
//! (the root may be one) SIGKILLed at moments uniform in 10%..80% of the physical limit; the
//! plan comes from a seed printed per run (`P2P_SEED` replays it: run r uses seed + r).
//! `zone`: the last `P2P_ZONE_HOSTS` hosts (default 16) in zone b behind one link shaped at
//! `P2P_CROSS_ZONE_MBIT` (default one host's rate); zone a holds the registry.

#[path = "sim/mod.rs"]
mod sim;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::netns::LinkRate;
use support::{push_archive, Cluster, ClusterOptions, Fixture};

fn env_str(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    env_str(name, default)
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The least-squares slope of time over position.
fn slope(points: &[(usize, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 as f64 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Run {
    last_s: f64,
    p50_s: f64,
    p99_s: f64,
    registry_bytes: u64,
    registry_gets: usize,
    max_uploaded: u64,
    rss_idle_max_kib: u64,
    rss_busy_max_kib: u64,
    /// Surviving nodes whose request failed (killed nodes' requests fail by design).
    failed: Vec<usize>,
    /// Hosts killed, with when (seconds since the requests).
    killed: Vec<(usize, f64)>,
    /// Bytes over the cross-zone link during the requests (a to b, b to a), with a zone b.
    cross_zone: Option<(u64, u64)>,
    /// When the root and the last node had the complete blob (before unpack and publish).
    root_blob_s: f64,
    last_blob_s: f64,
    /// Each surviving node's time by its position in the distribution order (what the fleet
    /// simulation is checked against: the slope is the per-hop delay).
    by_position: Vec<(usize, f64)>,
}

/// Starts a cluster, asks every node for the archive at once, kills hosts on `kills`'s schedule
/// meanwhile, and measures; the cluster is returned for more checks. Asks fail after `timeout`.
fn run(
    fixture: &Fixture,
    opts: &ClusterOptions,
    kills: &[(Duration, usize)],
    timeout: Option<Duration>,
) -> (Run, Cluster) {
    let cluster = Cluster::start(opts);
    std::thread::sleep(Duration::from_millis(300));
    let rss_idle_max_kib = (0..opts.hosts)
        .map(|i| cluster.rss_kib(i))
        .max()
        .unwrap_or(0);
    let reference = cluster.reference(fixture);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pids = cluster.pids.clone();
    let flag = sampling.clone();
    let sampler = std::thread::spawn(move || {
        let mut max = 0;
        while flag.load(std::sync::atomic::Ordering::Relaxed) {
            for &pid in &pids {
                max = max.max(support::rss_kib(pid));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        max
    });
    let cross_before = cluster.lab.cross_zone_bytes();
    let started = Instant::now();
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let blob_done = {
        // Polls every node's blob status from the lab's runtime while the requests run.
        let urls: Vec<String> = (0..opts.hosts)
            .map(|i| {
                format!(
                    "{}{}",
                    cluster.url(i),
                    classcache_core::fetcher::http::status_path(&fixture.layer_digest, None)
                )
            })
            .collect();
        let http = cluster.http.clone();
        let flag = watching.clone();
        cluster.rt.spawn(async move {
            let mut done: Vec<Option<f64>> = vec![None; urls.len()];
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, url) in urls.iter().enumerate() {
                    if done[i].is_some() {
                        continue;
                    }
                    if let Ok(r) = http.get(url).send().await {
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            if v["complete"] == true {
                                done[i] = Some(started.elapsed().as_secs_f64());
                            }
                        }
                    }
                }
                // Coarse on purpose: polling must not load the 2 cores the lab runs on.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            done
        })
    };
    let (answers, killed) = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            kills
                .iter()
                .map(|&(at, host)| {
                    std::thread::sleep((started + at).saturating_duration_since(Instant::now()));
                    cluster.kill(host);
                    (host, started.elapsed().as_secs_f64())
                })
                .collect::<Vec<_>>()
        });
        let answers =
            cluster.request_within(&(0..opts.hosts).collect::<Vec<_>>(), &reference, timeout);
        (answers, killer.join().unwrap())
    });
    let cross_zone = cluster
        .lab
        .cross_zone_bytes()
        .zip(cross_before)
        .map(|((ab, ba), (ab0, ba0))| (ab - ab0, ba - ba0));
    let survivor = |i: usize| !killed.iter().any(|&(h, _)| h == i);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let blob_done = cluster.rt.block_on(blob_done).unwrap();
    let ranked = cluster.ranked(&fixture.layer_digest);
    let root_blob_s = blob_done[ranked[0]].unwrap_or(f64::NAN);
    // Best effort: a poll that fails (a node too busy to answer) leaves a node unobserved.
    let survivors_blob: Vec<Option<f64>> = (0..opts.hosts)
        .filter(|&i| survivor(i))
        .map(|i| blob_done[i])
        .collect();
    let last_blob_s = if survivors_blob.iter().all(Option::is_some) {
        survivors_blob
            .iter()
            .flatten()
            .fold(0.0f64, |a, &b| a.max(b))
    } else {
        f64::NAN
    };
    let rss_busy_max_kib = sampler.join().unwrap();
    let failed: Vec<usize> = (0..opts.hosts)
        .filter(|&i| survivor(i) && answers[i].0.is_err())
        .collect();
    // What went wrong along the way, if anything: the nodes' warnings, counted.
    let mut warnings: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..opts.hosts {
        for line in cluster
            .log(i)
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            let what = line.split(": ").nth(1).unwrap_or(line);
            let what: String = what
                .split(" digest=")
                .next()
                .unwrap_or(what)
                .chars()
                .take(60)
                .collect();
            *warnings.entry(what).or_default() += 1;
        }
    }
    if !warnings.is_empty() {
        println!("  node warnings: {warnings:?}");
        if std::env::var_os("P2P_SHOW_LOGS").is_some() {
            println!("{}", cluster.logs());
        }
    }
    for &i in &failed {
        if let (Err(e), t) = &answers[i] {
            println!("  node {i} failed after {:.1} s: {e}", t.as_secs_f64());
        }
    }
    // A killed node's time is when it died, not when it had the archive.
    let mut times: Vec<f64> = (0..opts.hosts)
        .filter(|&i| survivor(i))
        .map(|i| answers[i].1.as_secs_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    let max_uploaded = (0..opts.hosts)
        .map(|i| cluster.metric(i, "classcache_fetcher_bytes_uploaded_total") as u64)
        .max()
        .unwrap_or(0);
    let by_position: Vec<(usize, f64)> = cluster
        .ranked(&fixture.layer_digest)
        .into_iter()
        .enumerate()
        .filter(|&(_, host)| survivor(host))
        .map(|(at, host)| (at, answers[host].1.as_secs_f64()))
        .collect();
    let run = Run {
        by_position,
        last_s: *times.last().unwrap(),
        p50_s: percentile(&times, 0.5),
        p99_s: percentile(&times, 0.99),
        registry_bytes: cluster.proxy.bytes_down(),
        registry_gets: cluster.proxy.blob_gets(&fixture.layer_digest).len(),
        max_uploaded,
        rss_idle_max_kib,
        rss_busy_max_kib,
        failed,
        killed,
        cross_zone,
        root_blob_s,
        last_blob_s,
    };
    (run, cluster)
}

/// Median latency of asking a lab node for an archive it has already published, over HTTP.
fn hit_latency_http(cluster: &Cluster, fixture: &Fixture) -> f64 {
    let reference = cluster.reference(fixture);
    let mut ms: Vec<f64> = (0..200)
        .map(|_| cluster.request(&[0], &reference)[0].1.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(&ms, 0.5)
}

/// Median wall time of the whole init container process (`classcache-fetcher init`, hostpath
/// mode) when the archive is already published: process start, request, check, exit. Run on
/// loopback, outside `ip netns exec`, whose own namespace setup a pod does not pay.
fn hit_latency_init_process(fixture: &Fixture) -> f64 {
    let h = classcache_e2e::harness();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let node = support::local::LocalFetcher::start(&store, &dir.path().join("log"), &[]);
    let reference = format!("{}/{}@{}", h.registry, fixture.repository, fixture.pinned);
    let published = store.join("published");
    let args = [
        "--archive",
        reference.as_str(),
        "--mode",
        "hostpath",
        "--dir",
        published.to_str().unwrap(),
        "--fetcher-url",
        node.url.as_str(),
        "--timeout",
        "60s",
        "--fail-closed",
    ];
    let first = support::local::init(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut ms: Vec<f64> = (0..40)
        .map(|_| {
            let started = Instant::now();
            let out = std::process::Command::new(support::local::BIN)
                .arg("init")
                .args(args)
                .env_remove("RUST_BACKTRACE")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(&ms, 0.5)
}

/// Payload per byte on a shaped link: tbf counts whole Ethernet frames, 1514 bytes (14
/// Ethernet, 20 IP, 32 TCP with timestamps) for 1448 of data. The registry's pacing (the
/// proxy's, in user space) counts payload only.
const GOODPUT: f64 = 1448.0 / 1514.0;

/// The figures every scenario prints for one run.
/// The same run simulated (`sim/`): the same digest and so the same ranking, hosts, link
/// rates, zones, kills (who, when) and stall timeout, with the lab's per-hop queueing
/// (`P2P_SIM_HOP_MS`, default 50: the tbf queue bound every shaped link is set up with) and
/// the time from a complete blob to a published archive (`P2P_SIM_TAIL_MS`, default 500).
/// The simulated links carry the shaped links' TCP payload rate ([`GOODPUT`]).
/// Prints both and returns measured / simulated for the last node.
fn simulated(r: &Run, fixture: &Fixture, opts: &ClusterOptions) -> f64 {
    let rate = opts.rate.expect("a shaped lab").bytes_per_sec as f64 * GOODPUT;
    let hop = env_list("P2P_SIM_HOP_MS", "50")[0] as f64 / 1e3;
    let zone_b = opts
        .zone_b
        .map(|(_, link)| link.bytes_per_sec as f64 * GOODPUT);
    let p = sim::Params {
        nodes: opts.hosts,
        size: fixture.layer_size,
        rate,
        registry_rate: opts.registry_egress.map_or(rate, |e| e as f64),
        latency: hop,
        cross_latency: hop,
        zones: (0..opts.hosts)
            .map(|h| u16::from(zone_b.is_some() && h >= opts.zone_b_start()))
            .collect(),
        shaped_zone: zone_b.map(|link| (1, link)),
        registry_zone: Some(0),
        fanout: opts.fanout,
        stripes: opts.stripes.wanted(opts.hosts),
        zone_aware: true,
        stall: humantime::parse_duration(opts.stall_timeout)
            .unwrap()
            .as_secs_f64(),
        upload_cap: classcache_core::fetcher::stripes::upload_cap_for(
            opts.stripes.wanted(opts.hosts),
        ),
        max_hops: 32,
        kills: 0,
        kill_window: (0.0, 0.0),
        failure: sim::Failure::Crash,
        start_spread: 0.01,
        manifest_delay: 0.01,
        tail: env_list("P2P_SIM_TAIL_MS", "500")[0] as f64 / 1e3,
        seed: 1,
        digest: Some(fixture.layer_digest.parse().unwrap()),
        kill_plan: r.killed.iter().map(|&(h, at)| (at, h)).collect(),
    };
    let o = sim::simulate(&p);
    println!(
        "  simulated, same run        last {:.2} s, p50 {:.2} s, p99 {:.2} s, registry {:.3} copies, max upload {:.2} copies, cross-zone {:.2} copies -> measured/simulated last {:.3}, p50 {:.3}",
        o.last, o.p50, o.p99, o.registry_copies, o.max_upload_copies, o.cross_copies,
        r.last_s / o.last, r.p50_s / o.p50
    );
    r.last_s / o.last
}

fn print_figures(r: &Run, size: f64, physical: f64) {
    println!(
        "  registry bytes served      {} ({:.3} copies, {} blob GETs)",
        r.registry_bytes,
        r.registry_bytes as f64 / size,
        r.registry_gets
    );
    let seen = |t: f64| {
        if t.is_nan() {
            "n/a".to_string()
        } else {
            format!("{t:.2} s")
        }
    };
    println!("  last node has it after     {:.2} s (blob complete: root {}, last {}; the rest is unpack, verify, fsync, publish)", r.last_s, seen(r.root_blob_s), seen(r.last_blob_s));
    println!(
        "  per-node p50 / p99         {:.2} s / {:.2} s",
        r.p50_s, r.p99_s
    );
    println!(
        "  physical limit size/rate   {physical:.2} s -> ratio {:.2}",
        r.last_s / physical
    );
    let profile: Vec<String> = r
        .by_position
        .iter()
        .step_by((r.by_position.len() / 8).max(1))
        .chain(r.by_position.last())
        .map(|(at, t)| format!("#{at} {t:.2}"))
        .collect();
    println!(
        "  time by order position     {} (least-squares slope {:.1} ms per position)",
        profile.join(", "),
        slope(&r.by_position) * 1e3
    );
    println!(
        "  max uploaded by one node   {} bytes ({:.2} copies)",
        r.max_uploaded,
        r.max_uploaded as f64 / size
    );
    if let Some((ab, ba)) = r.cross_zone {
        println!(
            "  cross-zone link            a->b {ab} bytes ({:.2} copies), b->a {ba} bytes ({:.2} copies)",
            ab as f64 / size,
            ba as f64 / size
        );
    }
    println!(
        "  fetcher RSS max, idle      {:.1} MiB",
        r.rss_idle_max_kib as f64 / 1024.0
    );
    println!(
        "  fetcher RSS max, transfer  {:.1} MiB",
        r.rss_busy_max_kib as f64 / 1024.0
    );
}

/// Today's benchmark: every size at every host count, then the registry-only check.
/// A lab of `hosts` fetchers with the bench's `--stripes` (`P2P_STRIPES`).
fn lab(hosts: usize) -> ClusterOptions {
    let stripes = std::env::var("P2P_STRIPES").unwrap_or_else(|_| "auto".into());
    ClusterOptions {
        stripes: stripes
            .parse()
            .unwrap_or_else(|e| panic!("P2P_STRIPES: {e}")),
        ..ClusterOptions::new(hosts)
    }
}

fn plain(aggregate_mbit: u64, fanout: usize, started: Instant) {
    let sizes = env_list("P2P_SIZES_MB", "64,256");
    let host_counts = env_list("P2P_HOSTS", "16,64");
    let budget = Duration::from_secs(env_list("P2P_BUDGET_S", "300")[0]);
    let mut hit_done = false;
    for &mb in &sizes {
        let fixture = push_archive((mb as usize) << 20);
        let size = fixture.layer_size as f64;
        for &hosts in &host_counts {
            let hosts = hosts as usize;
            let rate = LinkRate::mbit(aggregate_mbit / hosts as u64);
            let physical = size / rate.bytes_per_sec as f64;
            let remaining = budget.saturating_sub(started.elapsed()).as_secs_f64();
            if physical * 1.5 + 10.0 > remaining {
                println!("\n{hosts} hosts x {mb} MB: SKIPPED, its physical limit ({physical:.0} s) does not fit the remaining budget ({remaining:.0} s of P2P_BUDGET_S)");
                continue;
            }
            let opts = ClusterOptions {
                rate: Some(rate),
                registry_egress: Some(rate.bytes_per_sec),
                fanout,
                stall_timeout: "5s",
                ..lab(hosts)
            };
            let (r, cluster) = run(&fixture, &opts, &[], None);
            println!(
                "\n{hosts} hosts x {mb} MB (layer {} bytes), links {}, {} failed",
                fixture.layer_size,
                rate.describe(),
                r.failed.len()
            );
            print_figures(&r, size, physical);
            simulated(&r, &fixture, &opts);
            // Every node pulling from the registry itself: the registry's egress carries N
            // copies, so N * size / egress is a lower bound of that design's time.
            let everyone_from_registry = hosts as f64 * size / rate.bytes_per_sec as f64;
            println!("  every node from registry   >= {everyone_from_registry:.1} s (N x size / registry egress) -> ratio {:.3}", r.last_s / everyone_from_registry);
            if !hit_done {
                let http_ms = hit_latency_http(&cluster, &fixture);
                let process_ms = hit_latency_init_process(&fixture);
                println!("  publish-on-hit median      {http_ms:.2} ms (HTTP request to the node), {process_ms:.2} ms (whole init container process)");
                hit_done = true;
            }
        }
    }
    // The registry-only design measured once at a size that fits, to check the bound above.
    let remaining = budget.saturating_sub(started.elapsed()).as_secs_f64();
    let (hosts, mb) = (8usize, 8usize);
    let rate = LinkRate::mbit(aggregate_mbit / 16);
    let fixture = push_archive(mb << 20);
    let bound = hosts as f64 * fixture.layer_size as f64 / rate.bytes_per_sec as f64;
    if bound * 1.5 + 10.0 <= remaining {
        let opts = ClusterOptions {
            rate: Some(rate),
            registry_egress: Some(rate.bytes_per_sec),
            peers: false,
            ..lab(hosts)
        };
        let (base, _) = run(&fixture, &opts, &[], None);
        let p2p = ClusterOptions {
            rate: Some(rate),
            registry_egress: Some(rate.bytes_per_sec),
            fanout,
            ..lab(hosts)
        };
        let (tree, _) = run(&fixture, &p2p, &[], None);
        println!("\nregistry-only check, {hosts} hosts x {mb} MB, links {}: every node from the registry {:.2} s (bound {bound:.2} s, {} blob GETs); peer to peer {:.2} s -> ratio {:.3}", rate.describe(), base.last_s, base.registry_gets, tree.last_s, tree.last_s / base.last_s);
    } else {
        println!("\nregistry-only check skipped: {remaining:.0} s left of the budget");
    }
}

/// One run's figures kept for the spread over runs.
struct Outcome {
    ratio: f64,
    p99_s: f64,
    registry_copies: f64,
    /// More than one when the root died mid-pull and its successor resumed with Range.
    registry_gets: usize,
    max_upload_copies: f64,
    /// Cross-zone copies a to b and b to a (`zone` only).
    cross: Option<(f64, f64)>,
    complete: bool,
    wrong: usize,
    /// Measured over simulated time of the last node (`sim/`, the same run).
    versus_sim: f64,
}

/// Survivors that failed or published nothing, and any node (killed ones too) whose published
/// archive is not the fixture's: the checks a run must pass. Returns (problems, wrong publishes).
fn check(cluster: &Cluster, fixture: &Fixture, r: &Run, hosts: usize) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut wrong = 0;
    for i in 0..hosts {
        let killed = r.killed.iter().any(|&(h, _)| h == i);
        match cluster.published_sha(i, &fixture.pinned) {
            Some(sha) if sha != fixture.archive_sha256 => {
                wrong += 1;
                problems.push(format!(
                    "node {i}{} published WRONG bytes: sha256 {sha}, expected {}",
                    if killed { " (killed)" } else { "" },
                    fixture.archive_sha256
                ));
            }
            None if !killed && !r.failed.contains(&i) => {
                problems.push(format!("node {i} answered but published nothing"));
            }
            _ => {}
        }
        if r.failed.contains(&i) {
            problems.push(format!("surviving node {i} failed its request"));
        }
    }
    (problems, wrong)
}

/// `P2P_RUNS` runs of the `kills` or `zone` scenario, each checked, then the spread over them.
/// Returns whether every run passed its checks.
fn resilience(scenario: &str, aggregate_mbit: u64, fanout: usize) -> bool {
    let hosts = *env_list("P2P_HOSTS", "16,64").iter().max().unwrap() as usize;
    let mb = env_list("P2P_SIZES_MB", "64,256")[0];
    let runs = env_list("P2P_RUNS", "5")[0] as usize;
    let seed0 = env_list("P2P_SEED", "")
        .first()
        .copied()
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let rate = LinkRate::mbit(aggregate_mbit / hosts as u64);
    let fixture = push_archive((mb as usize) << 20);
    let size = fixture.layer_size as f64;
    let physical = size / rate.bytes_per_sec as f64;
    let mut opts = ClusterOptions {
        rate: Some(rate),
        registry_egress: Some(rate.bytes_per_sec),
        fanout,
        stall_timeout: "5s",
        ..lab(hosts)
    };
    let kills = if scenario == "kills" { 3 } else { 0 };
    if scenario == "zone" {
        let zone_hosts = env_list("P2P_ZONE_HOSTS", "16")[0] as usize;
        assert!(
            zone_hosts < hosts,
            "zone b of {zone_hosts} hosts needs more than {zone_hosts} hosts (P2P_HOSTS, P2P_ZONE_HOSTS)"
        );
        let cross = env_list("P2P_CROSS_ZONE_MBIT", "")
            .first()
            .map_or(rate, |&m| LinkRate::mbit(m));
        opts.zone_b = Some((zone_hosts, cross));
        println!(
            "\nzone: {hosts} hosts x {mb} MB (layer {} bytes), links {}, hosts {}..{} in zone b behind one cross-zone link of {}, {runs} runs",
            fixture.layer_size,
            rate.describe(),
            opts.zone_b_start(),
            hosts - 1,
            cross.describe()
        );
    } else {
        println!(
            "\nkills: {hosts} hosts x {mb} MB (layer {} bytes), links {}, {kills} fetchers killed per run between {:.1} s and {:.1} s, {runs} runs",
            fixture.layer_size,
            rate.describe(),
            physical * 0.1,
            physical * 0.8
        );
    }
    // Generous: a run that stops answering is a failed run, never a bench that hangs.
    let timeout = Duration::from_secs_f64(physical * 5.0 + 60.0);
    let ranked = support::ranked_hosts(&fixture.layer_digest, hosts);
    let mut outcomes = Vec::new();
    for k in 0..runs {
        let seed = seed0.wrapping_add(k as u64);
        let plan: Vec<(Duration, usize)> = sim::random_kills(
            &mut sim::Rng(seed),
            hosts,
            kills,
            (physical * 0.1, physical * 0.8),
        )
        .into_iter()
        .map(|(at, h)| (Duration::from_secs_f64(at), h))
        .collect();
        if kills > 0 {
            println!("\n{scenario} run {}/{runs}, seed {seed} (P2P_SEED={seed} P2P_RUNS=1 replays its kills)", k + 1);
        } else {
            println!("\n{scenario} run {}/{runs}", k + 1);
        }
        let (r, cluster) = run(&fixture, &opts, &plan, Some(timeout));
        let rank = |h: usize| ranked.iter().position(|&x| x == h).unwrap();
        let zone = |h: usize| if h >= opts.zone_b_start() { "b" } else { "a" };
        if scenario == "zone" {
            println!(
                "  root                       node-{} (zone {})",
                ranked[0],
                zone(ranked[0])
            );
        }
        for &(h, at) in &r.killed {
            println!(
                "  killed                     node-{h} (rank {}) at {at:.2} s",
                rank(h)
            );
        }
        print_figures(&r, size, physical);
        let versus_sim = simulated(&r, &fixture, &opts);
        let (problems, wrong) = check(&cluster, &fixture, &r, hosts);
        if problems.is_empty() {
            println!(
                "  checks                     ok: {} survivors answered and published sha256 {}",
                hosts - r.killed.len(),
                fixture.archive_sha256
            );
        } else {
            println!("  checks                     FAILED:");
            for p in &problems {
                println!("    {p}");
            }
            if std::env::var_os("P2P_SHOW_LOGS").is_some() {
                println!("{}", cluster.logs());
            }
        }
        outcomes.push(Outcome {
            ratio: r.last_s / physical,
            p99_s: r.p99_s,
            registry_copies: r.registry_bytes as f64 / size,
            registry_gets: r.registry_gets,
            max_upload_copies: r.max_uploaded as f64 / size,
            cross: r
                .cross_zone
                .map(|(ab, ba)| (ab as f64 / size, ba as f64 / size)),
            complete: problems.is_empty(),
            wrong,
            versus_sim,
        });
    }
    let spread = |label: &str, unit: &str, pick: &dyn Fn(&Outcome) -> Option<f64>| {
        let mut v: Vec<f64> = outcomes.iter().filter_map(pick).collect();
        if v.is_empty() {
            return;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "  {label:<26} min {:.2}{unit} / median {:.2}{unit} / max {:.2}{unit}",
            v[0],
            percentile(&v, 0.5),
            v[v.len() - 1]
        );
    };
    println!("\n{scenario}: spread over {runs} runs");
    spread("last/limit ratio", "", &|o| Some(o.ratio));
    spread("p99", " s", &|o| Some(o.p99_s));
    spread("registry copies", "", &|o| Some(o.registry_copies));
    spread("registry blob GETs", "", &|o| Some(o.registry_gets as f64));
    spread("max upload copies", "", &|o| Some(o.max_upload_copies));
    spread("cross-zone copies a->b", "", &|o| o.cross.map(|c| c.0));
    spread("cross-zone copies b->a", "", &|o| o.cross.map(|c| c.1));
    spread("measured/simulated last", "", &|o| Some(o.versus_sim));
    let complete = outcomes.iter().filter(|o| o.complete).count();
    let wrong: usize = outcomes.iter().map(|o| o.wrong).sum();
    let registry_max = outcomes
        .iter()
        .map(|o| o.registry_copies)
        .fold(0.0f64, f64::max);
    println!("  runs complete: {complete}/{runs}, wrong publishes: {wrong}, registry copies max: {registry_max:.3}");
    complete == runs
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is ignored.
    let aggregate_mbit = env_list("P2P_AGGREGATE_MBIT", "384")[0];
    let fanout = env_list("P2P_FANOUT", "1")[0] as usize;
    let started = Instant::now();
    let stripes = lab(1).stripes;
    println!("p2p benchmark: per-host links shaped each way (tc tbf on both veth ends) to {aggregate_mbit} Mbit/s / hosts, registry egress capped at one host's rate, --stripes {stripes} (auto: one stream below {} nodes), fanout {fanout} for one stream", classcache_core::fetcher::stripes::STRIPED_FROM_NODES);
    let mut failed = Vec::new();
    for scenario in env_str("P2P_SCENARIOS", "plain") {
        match scenario.as_str() {
            "plain" => plain(aggregate_mbit, fanout, started),
            "kills" | "zone" => {
                if !resilience(&scenario, aggregate_mbit, fanout) {
                    failed.push(scenario);
                }
            }
            other => panic!("unknown scenario {other:?}: P2P_SCENARIOS takes plain, kills, zone"),
        }
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        eprintln!("p2p: runs failed their checks in {failed:?} (see above)");
        std::process::exit(1);
    }
}
