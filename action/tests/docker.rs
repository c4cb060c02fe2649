//! End-to-end tests of classcache-build on the harness's Docker engine and registry: the example
//! app FROM the JDK 17 and JDK 25 images, and every bad input with what it must not leave behind.

mod common;

use classcache_core::reference::RegistryRef;
use classcache_oci::registry::RegistryClient;
use common::*;

fn client() -> RegistryClient {
    RegistryClient::with_defaults().unwrap()
}

/// Trains, verifies and pushes; checks the kind, the coverage, and that the archive is in the
/// registry under its key and findable from the image digest, and pulls back intact.
fn build_and_check(base_image: &str, expected_kind: &str) {
    let h = classcache_e2e::harness();
    let (image, repository, digest) = app_image(h, base_image, &["run"], "");
    let run = run_build(h, &["--verify-runs", "2", &image], &[]);
    let report = run.assert_trained(h, expected_kind);
    assert_eq!(report["image"]["digest"], digest.as_str());
    assert!(
        report["classes"]["appClasses"].as_u64().unwrap() >= 900,
        "{report:#}"
    );
    assert!(report["startup"]["medianMsWith"].as_f64().unwrap() > 0.0);
    println!(
        "{expected_kind}: start-up {} ms -> {} ms, speed-up {}",
        report["startup"]["medianMsWithout"],
        report["startup"]["medianMsWith"],
        report["startup"]["speedup"]
    );

    let key = report["key"].as_str().unwrap().to_string();
    let manifest_digest = report["archive"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        report["archive"]["reference"].as_str().unwrap(),
        format!("{repository}:{key}@{manifest_digest}")
    );
    assert!(
        registry_tags(h, &repository).contains(&key),
        "tag {key} missing"
    );
    let repo: RegistryRef = repository.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let found = rt
        .block_on(client().find_archives(&repo, &digest.parse().unwrap()))
        .unwrap();
    assert!(
        found.iter().any(|d| d.digest == manifest_digest),
        "{found:?} lacks {manifest_digest}"
    );
    let dest = tempfile::tempdir().unwrap();
    let pulled = rt
        .block_on(client().pull_archive(&repo.with_tag(&key), None, &dest.path().join("archive")))
        .unwrap();
    assert_eq!(pulled.config.key.as_str(), key);
    assert_eq!(pulled.config.kind.as_str(), expected_kind);
    assert_eq!(pulled.config.image.digest, digest);
    assert_eq!(
        std::fs::metadata(&pulled.path).unwrap().len(),
        report["archive"]["size"].as_u64().unwrap()
    );
}

#[test]
fn jdk17_image_gets_a_dynamic_cds_archive() {
    build_and_check(&classcache_e2e::harness().jdk17_image, "dynamic-cds");
}

#[test]
fn jdk25_image_gets_an_aot_cache() {
    build_and_check(&classcache_e2e::harness().jdk25_image, "aot-cache");
}

#[test]
fn a_server_trains_until_ready_then_sigterm() {
    let h = classcache_e2e::harness();
    // A port of its own, so concurrent tests on the host network do not collide.
    let port = 20000 + (std::process::id() % 20000);
    let port_env = format!("PORT={port}");
    let ready = format!("http://127.0.0.1:{port}/ready");
    let warmup = format!("http://127.0.0.1:{port}/catalog?page=1");
    let (image, _, _) = app_image(h, &h.jdk17_image, &["serve"], "");
    let run = run_build(
        h,
        &[
            "--env",
            &port_env,
            "--ready-url",
            &ready,
            "--warmup-url",
            &warmup,
            "--warmup-requests",
            "3",
            "--verify-runs",
            "1",
            "--no-push",
            &image,
        ],
        &[],
    );
    let report = run.assert_trained(h, "dynamic-cds");
    assert_eq!(report["archive"]["reference"], serde_json::Value::Null);
}

#[test]
fn image_not_found_is_named() {
    let h = classcache_e2e::harness();
    let repository = h.registry_ref(&classcache_e2e::unique_name("build-test/missing"));
    let image = format!("{repository}:1");
    let run = run_build(h, &[&image], &[]);
    run.assert_failed_with(&["was not found", &image]);
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn image_without_a_jvm_is_named() {
    let h = classcache_e2e::harness();
    let (image, repository, _) = app_image(
        h,
        &h.jdk17_image,
        &["run"],
        "RUN rm -rf /usr/lib/jvm /opt/java /usr/bin/java",
    );
    let run = run_build(h, &[&image], &[]);
    run.assert_failed_with(&["has no JVM", "11 or newer"]);
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn training_that_never_exits_times_out() {
    let h = classcache_e2e::harness();
    let port = 20000 + ((std::process::id() + 7) % 20000);
    let port_env = format!("PORT={port}");
    let (image, repository, _) = app_image(h, &h.jdk17_image, &["serve"], "");
    let run = run_build(h, &["--env", &port_env, "--timeout", "15s", &image], &[]);
    run.assert_failed_with(&["did not end within --timeout 15s", "--stop-after"]);
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn a_run_that_writes_no_archive_fails() {
    let h = classcache_e2e::harness();
    // An entrypoint that exits 0 without starting the JVM: nothing can write an archive.
    let (image, repository, _) = app_image(
        h,
        &h.jdk17_image,
        &["-c", "echo not starting java"],
        r#"ENTRYPOINT ["/bin/sh"]"#,
    );
    let run = run_build(h, &[&image], &[]);
    run.assert_failed_with(&["wrote no archive", "not starting java"]);
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn a_refused_push_fails_and_tags_nothing() {
    let h = classcache_e2e::harness();
    let (image, repository, _) = app_image(h, &h.jdk17_image, &["run"], "");
    // A registry that refuses everything with 403.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing = format!(
        "127.0.0.1:{}/team/app",
        listener.local_addr().unwrap().port()
    );
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            use std::io::{BufRead, Write};
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            seen.lock().unwrap().push(line.trim().to_string());
            let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    let run = run_build(h, &["--verify-runs", "0", "--to", &refusing, &image], &[]);
    run.assert_failed_with(&["pushing the archive to", "denied", "nothing was tagged"]);
    assert_nothing_left(h, &run, Some(&repository));
    let requests = requests.lock().unwrap();
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PUT") && r.contains("/manifests/")),
        "{requests:?}"
    );
}

#[test]
fn pull_requests_train_and_verify_but_push_nothing() {
    let h = classcache_e2e::harness();
    let (image, repository, _) = app_image(h, &h.jdk25_image, &["run"], "");
    let run = run_build(
        h,
        &["--verify-runs", "0", &image],
        &[("GITHUB_EVENT_NAME", "pull_request")],
    );
    run.assert_ok();
    let report = run.report();
    assert!(
        report["archive"]["notPublished"]
            .as_str()
            .unwrap()
            .contains("pull_request"),
        "{report:#}"
    );
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn static_appcds_runs_two_steps_in_two_containers() {
    let h = classcache_e2e::harness();
    let (image, repository, _) = app_image(h, &h.jdk17_image, &["run"], "");
    // The class list of the first container must reach the second, which dumps the archive.
    let run = run_build(
        h,
        &[
            "--kind",
            "static-appcds",
            "--verify-runs",
            "0",
            "--no-push",
            &image,
        ],
        &[],
    );
    run.assert_trained(h, "static-appcds");
    assert_nothing_left(h, &run, Some(&repository));
}

#[test]
fn an_agent_is_uploaded_and_trained_with_in_the_container() {
    let h = classcache_e2e::harness();
    let (image, _, _) = app_image(h, &h.jdk25_image, &["run"], "");
    let agent = agent_jar();
    let run = run_build(
        h,
        &[
            "--agent",
            agent.to_str().unwrap(),
            "--verify-runs",
            "0",
            "--no-push",
            &image,
        ],
        &[],
    );
    let report = run.assert_trained(h, "aot-cache");
    assert_agent_recorded(&report, "/opt/classcache/agent/counting-agent.jar", &agent);
}

#[test]
fn the_agent_the_image_has_is_hashed_in_place_and_trained_with() {
    let h = classcache_e2e::harness();
    let (base, _, _) = app_image(h, &h.jdk17_image, &["run"], "USER 65532:65532");
    let agent = agent_jar();
    let (image, repository) = image_with_file(h, &base, &agent, "/opt/apm/agent.jar");
    let run = run_build(
        h,
        &[
            "--agent-in-image",
            "/opt/apm/agent.jar",
            "--verify-runs",
            "1",
            "--no-push",
            &image,
        ],
        &[],
    );
    let report = run.assert_trained(h, "dynamic-cds");
    assert_agent_recorded(&report, "/opt/apm/agent.jar", &agent);

    // A path where the image has no jar, or something that is not a jar: refused before
    // training, nothing pushed, no container left.
    for (path, says) in [
        ("/opt/apm/missing.jar", "has no file there"),
        ("/etc/passwd", "is not a jar"),
    ] {
        let run = run_build(
            h,
            &["--agent-in-image", path, "--verify-runs", "0", &image],
            &[],
        );
        run.assert_failed_with(&[path, says, "nothing was trained or pushed"]);
        assert_nothing_left(h, &run, Some(&repository));
    }
}

#[test]
fn an_agent_that_throws_in_premain_stops_the_build_and_pushes_nothing() {
    let h = classcache_e2e::harness();
    let (image, repository, _) = app_image(h, &h.jdk17_image, &["run"], "");
    let agent = throwing_agent_jar();
    let run = run_build(
        h,
        &[
            "--agent",
            agent.to_str().unwrap(),
            "--verify-runs",
            "0",
            &image,
        ],
        &[],
    );
    run.assert_failed_with(&[
        "throwing-agent.jar",
        "failed when the JVM started it",
        "nothing was pushed",
        "premain refuses to start",
    ]);
    assert_nothing_left(h, &run, Some(&repository));
}
