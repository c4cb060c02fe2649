//! Fleet-scale figures of peer-to-peer distribution from the simulator (`sim/`): 100 to 10,000 nodes, each design with and without churn.
//! It must print simulated figures only, labelled as such; it asserts nothing about speed.
//!
//! `cargo bench -p classcache-fetcher --bench fleet` prints the fleet tables (100, 1,000 and
//! 10,000 nodes; fanout 1, 2, 4; zone-aware or not; 4 and 8 stripes; the fetcher's default
//! (`--stripes auto`, zone-aware); no churn and 5% of nodes
//! killed). `--bench p2p` prints, beside each namespace run, the same scenario simulated.
//! Environment: `FLEET_NODES` (default `100,1000,10000`), `FLEET_SIZE_MB` (256), `FLEET_GBIT`
//! (per-node link, 1), `FLEET_ZONES` (3), `FLEET_SEEDS` (runs per row, 3), `FLEET_DESIGN` (one
//! design's name as printed, e.g. `8 stripes, zone-aware`), `FLEET_CHURN` (percent of nodes
//! killed per row, default `0,5`).

#[path = "sim/mod.rs"]
mod sim;

use classcache_core::fetcher::stripes::{upload_cap_for, StripeChoice};
use classcache_fetcher::serve::CHUNK;
use sim::{simulate, Failure, Outcome, Params, Rng};

fn env_list(name: &str, default: &str) -> Vec<f64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Zones assigned at random (seeded), as a cloud spreads a node group.
fn random_zones(nodes: usize, zones: usize, seed: u64) -> Vec<u16> {
    let mut rng = Rng(seed ^ 0x5A5A);
    (0..nodes).map(|_| rng.below(zones.max(1)) as u16).collect()
}

/// Mean of the outcomes of a few seeds, with the worst last node.
fn over_seeds(base: &Params, zones: usize, seeds: u64) -> (Outcome, f64) {
    let runs: Vec<Outcome> = (0..seeds)
        .map(|s| {
            let mut p = base.clone();
            p.seed = base.seed.wrapping_add(s * 7919);
            p.zones = random_zones(p.nodes, zones, p.seed);
            simulate(&p)
        })
        .collect();
    let n = runs.len() as f64;
    let mean = |f: fn(&Outcome) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let worst = runs.iter().map(|r| r.last).fold(0.0, f64::max);
    (
        Outcome {
            last: mean(|r| r.last),
            p50: mean(|r| r.p50),
            p99: mean(|r| r.p99),
            registry_copies: mean(|r| r.registry_copies),
            max_upload_copies: mean(|r| r.max_upload_copies),
            cross_copies: mean(|r| r.cross_copies),
            max_zone_entry_copies: mean(|r| r.max_zone_entry_copies),
            failed: runs.iter().map(|r| r.failed).sum(),
            survivors: runs.iter().map(|r| r.survivors).sum(),
        },
        worst,
    )
}

fn fleet() {
    let node_counts = env_list("FLEET_NODES", "100,1000,10000");
    let size = (env_list("FLEET_SIZE_MB", "256")[0] * (1 << 20) as f64) as u64;
    let rate = env_list("FLEET_GBIT", "1")[0] * 1e9 / 8.0;
    let zones = env_list("FLEET_ZONES", "3")[0] as usize;
    let seeds = env_list("FLEET_SEEDS", "3")[0] as u64;
    let base = Params {
        nodes: 0,
        size,
        rate,
        registry_rate: rate,
        latency: env_list("FLEET_HOP_MS", "0.5")[0] / 1e3,
        cross_latency: env_list("FLEET_CROSS_HOP_MS", "1")[0] / 1e3,
        zones: Vec::new(),
        shaped_zone: None,
        registry_zone: None,
        fanout: 1,
        stripes: 1,
        zone_aware: false,
        stall: 5.0,
        upload_cap: upload_cap_for(1),
        max_hops: 32,
        kills: 0,
        kill_window: (0.1, 0.8),
        failure: Failure::Crash,
        start_spread: 0.01,
        manifest_delay: 0.005,
        tail: 0.0,
        seed: 1,
        digest: None,
        kill_plan: Vec::new(),
    };
    println!(
        "fleet simulation (simulated figures): {} MiB archive, {:.1} Gbit/s per node each way and at the registry, {} zones at random, per hop one-way latency and queueing {:.1} ms in a zone and {:.1} ms across plus a {} KiB forwarding chunk (serve::CHUNK), stall timeout {:.0} s, upload cap {}; physical limit size/rate {:.2} s; mean of {seeds} seeds (worst last node in brackets)",
        size >> 20,
        rate * 8.0 / 1e9,
        zones,
        base.latency * 1e3,
        base.cross_latency * 1e3,
        CHUNK >> 10,
        base.stall,
        base.upload_cap,
        base.limit()
    );
    // (name, fanout, stripes, zone-aware); the last is the fetcher's default.
    let fixed = StripeChoice::Fixed;
    let designs: [(&str, usize, StripeChoice, bool); 8] = [
        ("fanout 1", 1, fixed(1), false),
        ("fanout 2", 2, fixed(1), false),
        ("fanout 4", 4, fixed(1), false),
        ("fanout 1, zone-aware", 1, fixed(1), true),
        ("fanout 4, zone-aware", 4, fixed(1), true),
        ("4 stripes, zone-aware", 4, fixed(4), true),
        ("8 stripes, zone-aware", 8, fixed(8), true),
        ("default (stripes auto)", 1, StripeChoice::Auto, true),
    ];
    for &nodes in &node_counts {
        let nodes = nodes as usize;
        println!("\n{nodes} nodes");
        println!(
            "  {:<24} {:>7} {:>7} {:>9} {:>9} {:>8} {:>8} {:>10} {:>8} | {:>14} {:>8} {:>6}",
            "design",
            "churn",
            "last/L",
            "p50 s",
            "p99 s",
            "registry",
            "max up",
            "cross-zone",
            "max/zone",
            "last s [worst]",
            "failed",
            "runs"
        );
        let pick = std::env::var("FLEET_DESIGN").ok();
        let churns: Vec<usize> = env_list("FLEET_CHURN", "0,5")
            .iter()
            .map(|c| *c as usize)
            .collect();
        for &(name, fanout, choice, zone_aware) in &designs {
            if pick.as_deref().is_some_and(|d| d != name) {
                continue;
            }
            let stripes = choice.wanted(nodes);
            for &churn in &churns {
                let p = Params {
                    nodes,
                    fanout,
                    stripes,
                    zone_aware,
                    upload_cap: upload_cap_for(stripes),
                    kills: nodes * churn / 100,
                    ..base.clone()
                };
                let started = std::time::Instant::now();
                let (o, worst) = over_seeds(&p, zones, seeds);
                println!(
                    "  {:<24} {:>6}% {:>7.2} {:>9.2} {:>9.2} {:>8.3} {:>8.2} {:>10.2} {:>8.2} | {:>6.2} [{:>5.2}] {:>8} {:>5.1}s",
                    name,
                    churn,
                    o.last / p.limit(),
                    o.p50,
                    o.p99,
                    o.registry_copies,
                    o.max_upload_copies,
                    o.cross_copies,
                    o.max_zone_entry_copies,
                    o.last,
                    worst,
                    o.failed,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
}

fn main() {
    fleet();
}
