//! Bad input and restarts on one node: a digest that does not exist, a manifest that is not an
//! archive, an unusable store, a crash mid-download. Each gives a clear error and a metric,
//! nothing corrupt is published, and the fetcher keeps serving.

mod support;

use classcache_core::fetcher::http::{self as api, routes};
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::RegistryClient;
use support::local::{get, missing_reference, pinned_reference, LocalFetcher, BIN};
use support::push_archive;

fn ask(node: &LocalFetcher, reference: &str) -> (u16, String) {
    node.ask(reference)
}

fn metric(node: &LocalFetcher, name: &str) -> f64 {
    let (_, text) = get(&format!("{}{}", node.url, routes::METRICS)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Pushes a plain image manifest (not a classcache artifact) and returns its pinned reference.
fn push_plain_image(repository: &str) -> String {
    let h = classcache_e2e::harness();
    let repo: RegistryRef = format!("{}/{repository}", h.registry).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = RegistryClient::with_defaults().unwrap();
        let digest = classcache_oci::testing::push_minimal_image(
            &client,
            &repo.with_tag("plain"),
            &serde_json::json!({}),
            &[],
        )
        .await
        .unwrap()
        .digest;
        format!("{}@{digest}", repo)
    })
}

#[test]
fn missing_digests_and_non_archives_are_named_and_the_node_keeps_serving() {
    let h = classcache_e2e::harness();
    let fixture = push_archive(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let node = LocalFetcher::start(&dir.path().join("store"), &dir.path().join("log"), &[]);

    let missing = missing_reference(&fixture);
    let (status, body) = ask(&node, &missing);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not found"), "{body}");

    let plain = push_plain_image(&fixture.repository);
    let (status, body) = ask(&node, &plain);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not a classcache archive"), "{body}");
    assert!(
        metric(
            &node,
            "classcache_fetcher_errors_total{kind=\"not_an_archive\"}"
        ) >= 1.0
    );
    assert!(metric(&node, "classcache_fetcher_errors_total{kind=\"registry\"}") >= 1.0);

    let zero = format!("sha256:{}", "0".repeat(64));
    let unpinned = format!("{}/{}:latest", h.registry, fixture.repository);
    let (status, body) = get(&format!(
        "{}{}",
        node.url,
        api::archive_request_path(&zero, &unpinned)
    ))
    .unwrap();
    assert_eq!(status, 400, "an unpinned reference is refused: {body}");

    let good = pinned_reference(&fixture);
    let (status, body) = ask(&node, &good);
    assert_eq!(status, 200, "{body}\n{}", node.log_text());
    let published = std::fs::read_dir(node.store.join("published"))
        .unwrap()
        .count();
    assert_eq!(published, 1, "only the good archive is published");
}

#[test]
fn an_unusable_store_directory_stops_the_fetcher_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "solo",
            "--peers",
            "solo=http://127.0.0.1:1",
        ])
        .arg("--store")
        .arg(file.join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("opening the store") && err.contains("writable"),
        "{err}"
    );
}

#[test]
fn the_root_or_a_system_directory_is_refused_as_the_store() {
    for (store, says) in [
        ("/", "root directory"),
        ("/etc/cc", "/etc or below"),
        ("rel", "absolute"),
    ] {
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--node-id",
                "solo",
                "--peers",
                "solo=http://127.0.0.1:1",
                "--store",
                store,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "--store {store} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains("/var/lib/classcache"),
            "{store}: {err}"
        );
    }
}

#[test]
fn after_a_crash_partials_are_dropped_and_published_archives_are_hits_without_the_registry() {
    let fixture = push_archive(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let good = pinned_reference(&fixture);
    let node = LocalFetcher::start(&store, &dir.path().join("log1"), &[]);
    assert_eq!(ask(&node, &good).0, 200);
    node.kill();
    // What a crash mid-download leaves behind.
    std::fs::write(store.join("tmp").join("abc.7.partial"), b"half").unwrap();

    // A registry that does not exist (allowed: a registry outside the list is refused first).
    let node = LocalFetcher::start(
        &store,
        &dir.path().join("log2"),
        &["--allowed-registry", "127.0.0.1:1"],
    );
    assert_eq!(std::fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    // The same digest behind a registry that does not exist: a hit must not need one.
    let unreachable = format!("127.0.0.1:1/{}@{}", fixture.repository, fixture.pinned);
    let (status, body) = ask(&node, &unreachable);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hit\":true"), "{body}");
    assert_eq!(
        metric(
            &node,
            "classcache_fetcher_archive_requests_total{result=\"hit\"}"
        ),
        1.0
    );
}
