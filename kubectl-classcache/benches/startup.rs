//! Plugin start-up to first request: time from spawning `kubectl-classcache enable` until the
//! in-process fake API server receives its first request, and until the process exits. Prints
//! medians; target: first request < 50 ms.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fake_api/mod.rs"]
mod fake_api;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let api = fake_api::FakeApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = common::make_archive(
        &tmp.path().join("a"),
        "registry.example/shop/petclinic:3.2.0",
        &[],
        &[],
    );
    let fixture =
        std::fs::read_to_string(common::fixtures().join("deployment-petclinic.yaml")).unwrap();
    let deploy = common::parse_yaml(&fixture)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    api.seed(&deploy);
    let kubeconfig = api.kubeconfig_arg();

    let mut first_request = vec![];
    let mut exit = vec![];
    for i in 0..RUNS + 3 {
        api.clear_requests();
        let start = Instant::now();
        let status = Command::new(common::bin())
            .args([
                "enable",
                "deploy/petclinic",
                "--archive",
                &archive,
                "--dry-run=client",
                "--kubeconfig",
                &kubeconfig,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let ended = start.elapsed();
        assert!(status.success(), "the plugin failed");
        let first = api
            .requests()
            .first()
            .expect("the plugin asked the API server")
            .at
            .duration_since(start);
        if i >= 3 {
            // The first runs warm the page cache; they are not counted.
            first_request.push(first);
            exit.push(ended);
        }
    }
    println!(
        "startup: {RUNS} runs of `kubectl-classcache enable deploy/petclinic --dry-run=client`"
    );
    println!(
        "  spawn -> first API request: median {:.1} ms, p90 {:.1} ms (target < 50 ms)",
        median(first_request.clone()).as_secs_f64() * 1e3,
        percentile(first_request, 0.9).as_secs_f64() * 1e3
    );
    println!(
        "  spawn -> exit (whole enable, dry run): median {:.1} ms, p90 {:.1} ms",
        median(exit.clone()).as_secs_f64() * 1e3,
        percentile(exit, 0.9).as_secs_f64() * 1e3
    );
}
