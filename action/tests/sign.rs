//! `classcache-build --sign-key` (local runtime, example jar): what it pushes and signs is verified by cosign; keys and destinations it cannot sign with are refused before any work.
//! It must only reach loopback: the harness registry.

mod common;

use classcache_core::artifact::signature::SigningKey;
use classcache_core::testing::SIGNING_KEY_PEM;
use classcache_e2e::cosign;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn build(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_classcache-build"))
        .current_dir(dir)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_EVENT_NAME")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("JAVA_TOOL_OPTIONS")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- classcache-build {}\n{stderr}", args.join(" "));
    (out.status.success(), stderr)
}

/// The test key pair as files in `dir`: (private key, public key).
fn write_key_pair(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (key, public) = (dir.join("classcache.key"), dir.join("classcache.pub"));
    std::fs::write(&key, SIGNING_KEY_PEM).unwrap();
    let pem = SigningKey::from_pem(SIGNING_KEY_PEM, "k")
        .unwrap()
        .public_key_pem();
    std::fs::write(&public, pem).unwrap();
    (key, public)
}

#[test]
fn classcache_build_signs_what_it_pushes_and_cosign_verifies_it() {
    let h = classcache_e2e::harness();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (key, public) = write_key_pair(dir);
    let repository = h.registry_ref(&classcache_e2e::unique_name("build-signed"));
    let jar = example_jar().display().to_string();
    let report = dir.join("report.json");
    let (ok, stderr) = build(
        dir,
        &[
            "--verify-runs",
            "0",
            "--to",
            &repository,
            "--sign-key",
            key.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            &jar,
            "--",
            "run",
        ],
    );
    assert!(ok, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let text = report.to_string();
    let digest = text
        .split('"')
        .find(|s| s.starts_with("sha256:") && stderr.contains(&format!("signed {s}")))
        .unwrap_or_else(|| panic!("the report names no signed digest: {text}"))
        .to_string();
    let pinned = format!("{repository}@{digest}");
    for referrers in [false, true] {
        assert!(
            cosign::verify(dir, &public, &pinned, referrers)
                .status
                .success(),
            "cosign verify (referrers: {referrers}) refused what classcache-build signed"
        );
    }
}

#[test]
fn unusable_keys_and_unsignable_destinations_are_refused_before_any_work() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (key, public) = write_key_pair(dir);
    for (args, says) in [
        (
            vec![
                "--to",
                "127.0.0.1:5/x",
                "--sign-key",
                public.to_str().unwrap(),
            ],
            "holds a \"PUBLIC KEY\" PEM block, not a private key",
        ),
        (
            vec!["--to", "127.0.0.1:5/x", "--sign-key", "/nonexistent.key"],
            "cannot read --sign-key /nonexistent.key",
        ),
        (
            vec![
                "--to",
                "oci:out:latest",
                "--sign-key",
                key.to_str().unwrap(),
            ],
            "signatures are pushed to a registry",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--runtime", "local", "app.jar"]);
        let (ok, stderr) = build(dir, &all);
        assert!(!ok && stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("training"),
            "{args:?}: work started: {stderr}"
        );
    }
}
