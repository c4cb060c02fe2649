//! Init-container mode against a real node fetcher and registry: copy and hostpath delivery,
//! fail-open by default, `--fail-closed` on request.

mod support;

use support::local::{init, init_fail_closed, missing_reference, LocalFetcher};
use support::push_archive;

fn sha_of(path: &std::path::Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| classcache_core::digest::Digest::of(&b).hex().to_string())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs `init --fail-closed` for the fixture in `mode` into `dir` and checks the delivered file.
fn deliver(fixture: &support::Fixture, node: &LocalFetcher, mode: &str, dir: &std::path::Path) {
    let out = init_fail_closed(fixture, node, mode, dir);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        node.log_text()
    );
    let archive_dir = dir.join(classcache_core::paths::published_dir_name(&fixture.pinned));
    let path = support::published_archive(&archive_dir);
    assert_eq!(sha_of(&path), Some(fixture.archive_sha256.clone()));
}

#[test]
fn copy_mode_copies_the_verified_archive_into_the_pod_volume() {
    let fixture = push_archive(3 << 20);
    let dir = tempfile::tempdir().unwrap();
    let node = LocalFetcher::start(&dir.path().join("store"), &dir.path().join("log"), &[]);
    let volume = dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    deliver(&fixture, &node, "copy", &volume);
    let leftovers: Vec<_> = std::fs::read_dir(&volume)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from(
            classcache_core::paths::published_dir_name(&fixture.pinned)
        )],
        "only the archive's directory is in the volume"
    );
    let inside = std::fs::read_dir(volume.join(&leftovers[0]))
        .unwrap()
        .count();
    assert_eq!(inside, 1, "only the archive is in its directory");
}

#[test]
fn hostpath_mode_waits_until_the_node_published_the_archive() {
    let fixture = push_archive(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let node = LocalFetcher::start(&store, &dir.path().join("log"), &[]);
    deliver(&fixture, &node, "hostpath", &store.join("published"));
}

#[test]
fn a_missing_archive_fails_open_by_default_and_closed_on_request() {
    let fixture = push_archive(1 << 10);
    let dir = tempfile::tempdir().unwrap();
    let node = LocalFetcher::start(&dir.path().join("store"), &dir.path().join("log"), &[]);
    let missing = missing_reference(&fixture);
    let volume = dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let args = [
        "--archive",
        missing.as_str(),
        "--mode",
        "copy",
        "--dir",
        volume.to_str().unwrap(),
        "--fetcher-url",
        node.url.as_str(),
        "--timeout",
        "30s",
    ];
    let open = init(&args);
    assert!(
        open.status.success(),
        "fail-open exits 0: {}",
        stderr(&open)
    );
    assert!(
        stderr(&open).contains("starting without the archive")
            && stderr(&open).contains("not found"),
        "the reason is logged: {}",
        stderr(&open)
    );
    assert_eq!(
        std::fs::read_dir(&volume).unwrap().count(),
        0,
        "nothing is left in the volume"
    );
    let mut closed_args = args.to_vec();
    closed_args.push("--fail-closed");
    let closed = init(&closed_args);
    assert!(!closed.status.success(), "--fail-closed exits non-zero");
    assert!(stderr(&closed).contains("not found"), "{}", stderr(&closed));
}

#[test]
fn an_unreachable_fetcher_times_out_and_fails_open() {
    let h = classcache_e2e::harness();
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/nowhere@sha256:{}", h.registry, "1".repeat(64));
    let started = std::time::Instant::now();
    let out = init(&[
        "--archive",
        &reference,
        "--mode",
        "hostpath",
        "--dir",
        dir.path().to_str().unwrap(),
        // A port nothing listens on: the node fetcher is not up (yet).
        "--fetcher-url",
        "http://127.0.0.1:9",
        "--timeout",
        "1s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
