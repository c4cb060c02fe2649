//! Benchmark of classcache-build on the harness: per JDK (the example app FROM the JDK 17 and the
//! JDK 25 image), start-up median with and without the archive, and the build's own overhead
//! beyond the training run. Prints figures; asserts nothing about speed.
//!
//! Run: `cargo bench -p classcache-build --bench build` (BENCH_RUNS=N start-ups each, default 7).

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let runs = std::env::var("BENCH_RUNS").unwrap_or_else(|_| "7".to_string());
    let h = classcache_e2e::harness();
    println!("classcache-build benchmark: {runs} interleaved start-ups with and without the archive per JDK");
    println!(
        "{:<6} {:<12} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9}",
        "jdk",
        "kind",
        "without",
        "with",
        "speedup",
        "training",
        "verify",
        "open",
        "probe",
        "publish",
        "overhead"
    );
    for (name, base) in [("17", &h.jdk17_image), ("25", &h.jdk25_image)] {
        let (image, _, _) = common::app_image(h, base, &["run"], "");
        let run = common::run_build(h, &["--verify-runs", &runs, &image], &[]);
        run.assert_ok();
        let r = run.report();
        let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let phases = &r["phases"];
        let training = ms(&phases["trainingMs"]);
        let overhead = ms(&phases["totalMs"]) - training - ms(&phases["verificationMs"]);
        println!(
            "{:<6} {:<12} {:>7.0}ms {:>7.0}ms {:>7.2}x {:>8.0}ms {:>8.0}ms {:>6.0}ms {:>6.0}ms {:>6.0}ms {:>8.1}%",
            name,
            r["kind"].as_str().unwrap_or("?"),
            ms(&r["startup"]["medianMsWithout"]),
            ms(&r["startup"]["medianMsWith"]),
            ms(&r["startup"]["speedup"]),
            training,
            ms(&phases["verificationMs"]),
            ms(&phases["openMs"]),
            ms(&phases["probeMs"]),
            ms(&phases["publishMs"]),
            100.0 * overhead / training.max(1.0)
        );
    }
    println!("overhead = (total - training - verification) / training: pull, inspect, JVM probe, packing, push (target < 10%)");
}
