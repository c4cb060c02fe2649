//! Benchmark: push and pull of a 150 MB archive against the harness registry on loopback;
//! prints MB/s each way and the peak memory (VmHWM) of a child process doing only that step.
//!
//! `cargo bench -p classcache-e2e --bench oci_push_pull`. The parent prepares the archive and
//! the subject image, then runs itself as `--child push|pull …` so each figure is one step's.

#[path = "../tests/oci_support.rs"]
mod oci_support;

use classcache_core::digest::Digest;
use classcache_core::key::ArchiveKind;
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use oci_support::*;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const ARCHIVE_BYTES: u64 = 150 * 1024 * 1024;
const TARGET_PEAK_MIB: f64 = 64.0;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// One step in this process; prints `seconds peak_kib` on stdout for the parent.
fn child(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = client();
    let started = Instant::now();
    match args[0].as_str() {
        "push" => {
            let (repo, archive, subject_digest, subject_size) = (
                &args[1],
                &args[2],
                &args[3].parse::<Digest>().unwrap(),
                args[4].parse().unwrap(),
            );
            let repo: RegistryRef = repo.parse().unwrap();
            let subject = Descriptor::new(
                media_types::OCI_MANIFEST,
                subject_digest.clone(),
                subject_size,
            );
            let config = archive_config(
                "bench",
                subject_digest,
                ArchiveKind::AotCache,
                &repo.repository,
            );
            let pushed = runtime
                .block_on(client.push_archive(&repo, config, Path::new(archive), Some(subject)))
                .expect("push");
            eprintln!(
                "pushed {} (layer {} bytes)",
                pushed.reference, pushed.layer.size
            );
        }
        "pull" => {
            let reference: RegistryRef = args[1].parse().unwrap();
            runtime
                .block_on(client.pull_archive(&reference, None, Path::new(&args[2])))
                .expect("pull");
        }
        other => panic!("unknown child step {other}"),
    }
    println!("{} {}", started.elapsed().as_secs_f64(), vm_hwm_kib());
}

fn run_child(args: &[&str]) -> (f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(args)
        .output()
        .expect("run the child step");
    assert!(
        out.status.success(),
        "child {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields.next().unwrap().parse().unwrap();
    let peak_kib: f64 = fields.next().unwrap().parse().unwrap();
    (seconds, peak_kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1..]);
    }
    let h = classcache_e2e::harness();
    let name = classcache_e2e::unique_name("bench-oci");
    let repo: RegistryRef = h.registry_ref(&name).parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let subject = runtime.block_on(push_subject_image(&client(), &repo, &name));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.aot");
    write_archive_like(&archive, ARCHIVE_BYTES, 4242 + std::process::id() as u64);
    let mb = ARCHIVE_BYTES as f64 / 1e6;

    let (push_s, push_peak) = run_child(&[
        "push",
        &repo.to_string(),
        archive.to_str().unwrap(),
        subject.digest.as_str(),
        &subject.size.to_string(),
    ]);
    let config = archive_config(
        "bench",
        &subject.digest,
        ArchiveKind::AotCache,
        &repo.repository,
    );
    let tagged = repo.with_tag(config.key.as_str());
    let layer = runtime
        .block_on(client().fetch_archive(&tagged, None))
        .unwrap()
        .layer()
        .size;
    let out = dir.path().join("pulled.aot");
    let (pull_s, pull_peak) = run_child(&["pull", &tagged.to_string(), out.to_str().unwrap()]);
    assert_eq!(
        sha256_file(&out),
        sha256_file(&archive),
        "the pulled archive differs"
    );

    println!(
        "oci_push_pull: {mb:.0} MB archive, layer {:.1} MB (gzip {:.2}:1), registry {}",
        layer as f64 / 1e6,
        ARCHIVE_BYTES as f64 / layer as f64,
        h.registry
    );
    println!("  push (pack + upload): {push_s:6.2} s  {:7.1} MB/s of archive  peak RSS {push_peak:5.1} MiB", mb / push_s);
    println!("  pull (download + verify + unpack): {pull_s:6.2} s  {:7.1} MB/s of archive  peak RSS {pull_peak:5.1} MiB", mb / pull_s);
    let worst = push_peak.max(pull_peak);
    println!(
        "  peak memory target < {TARGET_PEAK_MIB} MiB: {}",
        if worst < TARGET_PEAK_MIB {
            "met"
        } else {
            "MISSED"
        }
    );
}
