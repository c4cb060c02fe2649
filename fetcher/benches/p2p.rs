//! Peer-to-peer distribution benchmark: 16 and 64 namespace hosts on `tc`-shaped links pull one
//! archive; prints registry bytes, completion times, ratios, uploads, memory and hit latency.
//! It must print measured figures only, each labelled; it asserts nothing about speed.
//!
//! `cargo bench -p classcache-fetcher --bench p2p` (root; harness registry). Environment:
//! `P2P_AGGREGATE_MBIT` (sum of all hosts' link rates, default 768: each host gets its share,
//! so the lab's total traffic, which 2 cores must carry, is the same at 16 and 64 hosts),
//! `P2P_SIZES_MB` (default `64,256`),
//! `P2P_HOSTS` (default `16,64`), `P2P_FANOUT` (default 1), `P2P_BUDGET_S` (default 300; 900 runs 64 hosts x 256 MB too:
//! scenarios whose physical limit alone would overrun it are skipped, and said so).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::netns::LinkRate;
use support::{push_archive, Cluster, ClusterOptions, Fixture};

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
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
    failures: usize,
    /// When the root and the last node had the complete blob (before unpack and publish).
    root_blob_s: f64,
    last_blob_s: f64,
}

fn run(fixture: &Fixture, opts: &ClusterOptions) -> (Run, Cluster) {
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
    let answers = cluster.request(&(0..opts.hosts).collect::<Vec<_>>(), &reference);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let blob_done = cluster.rt.block_on(blob_done).unwrap();
    let ranked = cluster.ranked(&fixture.layer_digest);
    let root_blob_s = blob_done[ranked[0]].unwrap_or(f64::NAN);
    // Best effort: a poll that fails (a node too busy to answer) leaves a node unobserved.
    let last_blob_s = if blob_done.iter().all(Option::is_some) {
        blob_done.iter().flatten().fold(0.0f64, |a, &b| a.max(b))
    } else {
        f64::NAN
    };
    let rss_busy_max_kib = sampler.join().unwrap();
    let failures = answers.iter().filter(|(a, _)| a.is_err()).count();
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
    for (i, (answer, t)) in answers.iter().enumerate() {
        if let Err(e) = answer {
            println!("  node {i} failed after {:.1} s: {e}", t.as_secs_f64());
        }
    }
    let mut times: Vec<f64> = answers.iter().map(|(_, t)| t.as_secs_f64()).collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let max_uploaded = (0..opts.hosts)
        .map(|i| cluster.metric(i, "classcache_fetcher_bytes_uploaded_total") as u64)
        .max()
        .unwrap_or(0);
    let run = Run {
        last_s: *times.last().unwrap(),
        p50_s: percentile(&times, 0.5),
        p99_s: percentile(&times, 0.99),
        registry_bytes: cluster.proxy.bytes_down(),
        registry_gets: cluster.proxy.blob_gets(&fixture.layer_digest).len(),
        max_uploaded,
        rss_idle_max_kib,
        rss_busy_max_kib,
        failures,
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

fn main() {
    // `cargo bench` passes --bench; a filter argument is ignored.
    let aggregate_mbit = env_list("P2P_AGGREGATE_MBIT", "768")[0];
    let sizes = env_list("P2P_SIZES_MB", "64,256");
    let host_counts = env_list("P2P_HOSTS", "16,64");
    let fanout = env_list("P2P_FANOUT", "1")[0] as usize;
    let budget = Duration::from_secs(env_list("P2P_BUDGET_S", "300")[0]);
    let started = Instant::now();
    println!("p2p benchmark: per-host links shaped each way (tc tbf on both veth ends) to {aggregate_mbit} Mbit/s / hosts, registry egress capped at one host's rate, fanout {fanout}");
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
                ..ClusterOptions::new(hosts)
            };
            let (r, cluster) = run(&fixture, &opts);
            // Every node pulling from the registry itself: the registry's egress carries N
            // copies, so N * size / egress is a lower bound of that design's time.
            let everyone_from_registry = hosts as f64 * size / rate.bytes_per_sec as f64;
            println!(
                "\n{hosts} hosts x {mb} MB (layer {} bytes), links {}, {} failed",
                fixture.layer_size,
                rate.describe(),
                r.failures
            );
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
            println!("  every node from registry   >= {everyone_from_registry:.1} s (N x size / registry egress) -> ratio {:.3}", r.last_s / everyone_from_registry);
            println!(
                "  max uploaded by one node   {} bytes ({:.2} copies)",
                r.max_uploaded,
                r.max_uploaded as f64 / size
            );
            println!(
                "  fetcher RSS max, idle      {:.1} MiB",
                r.rss_idle_max_kib as f64 / 1024.0
            );
            println!(
                "  fetcher RSS max, transfer  {:.1} MiB",
                r.rss_busy_max_kib as f64 / 1024.0
            );
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
            ..ClusterOptions::new(hosts)
        };
        let (base, _) = run(&fixture, &opts);
        let p2p = ClusterOptions {
            rate: Some(rate),
            registry_egress: Some(rate.bytes_per_sec),
            fanout,
            ..ClusterOptions::new(hosts)
        };
        let (tree, _) = run(&fixture, &p2p);
        println!("\nregistry-only check, {hosts} hosts x {mb} MB, links {}: every node from the registry {:.2} s (bound {bound:.2} s, {} blob GETs); peer to peer {:.2} s -> ratio {:.3}", rate.describe(), base.last_s, base.registry_gets, tree.last_s, tree.last_s / base.last_s);
    } else {
        println!("\nregistry-only check skipped: {remaining:.0} s left of the budget");
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
}
