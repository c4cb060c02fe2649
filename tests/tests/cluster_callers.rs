//! Who may call the real fetcher pods, on the harness's real cluster: a hostile pod on the same
//! node as an enabled workload, and this host outside every pod, try every route.
//! Archives go only to pods whose own template pins them (from the fetcher's pod watch), blobs and
//! transfer status only to peers; the rest is 403, counted, and the fetchers keep serving.

use classcache_core::fetcher::http::{
    archive_file_path, archive_request_path, blob_path, blob_request_path, routes, status_path,
};
use classcache_core::podtemplate::{ANNOTATION_ARCHIVE, FETCHER_PORT};
use classcache_e2e::apps::trained_example_app;
use classcache_e2e::cluster::{
    cluster, exclusive, idle_pod, jvm_deployment, parse_http_response, Cluster, APP_UID,
};
use classcache_e2e::step;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// `curl` from this host, outside every pod.
fn get_from_host(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http1.0", "--max-time", "40"])
        .arg(url)
        .output()
        .expect("curl runs");
    parse_http_response(&String::from_utf8_lossy(&out.stdout))
}

fn denied(c: &Cluster, node_ip: &str, reason: &str) -> u64 {
    let (_, metrics) = get_from_host(&format!(
        "http://{node_ip}:{FETCHER_PORT}{}",
        routes::METRICS
    ));
    let line = format!("classcache_fetcher_denied_total{{reason=\"{reason}\"}} ");
    let _ = c;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in the metrics:\n{metrics}"))
}

#[test]
fn only_the_pods_that_pin_an_archive_and_the_peers_may_call_the_fetcher() {
    let c = cluster();
    let _serial = exclusive();
    let app_image = trained_example_app(c.harness);
    c.delete_stale_test_namespaces();
    c.install_fetcher();

    step("the fetcher DaemonSet runs without the host's PID namespace");
    let ds = c.get_json(&["daemonset", "-n", "classcache", "classcache-fetcher"]);
    assert_ne!(
        ds["spec"]["template"]["spec"]["hostPID"],
        Value::Bool(true),
        "hostPID must be gone"
    );

    step("an enabled workload's pod gets its archive");
    let ns = c.namespace("callers", &[]);
    c.apply(&jvm_deployment("shop", &ns.name, app_image, 1, APP_UID, ""));
    c.plugin_ok(&["enable", "deploy/shop", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let pinned_ref = Cluster::pinned_reference(&c.deployment_template(&ns.name, "shop"));
    let pinned = pinned_ref.rsplit_once('@').unwrap().1.to_string();
    let (layer, _) = c.archive_layer(&pinned_ref);
    let pods = c.pods(&ns.name, "app=shop");
    let node = pods[0].1.clone();
    let node_ip = c.get_json(&["node", &node])["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap()
        .to_string();

    step("a hostile pod on that node: not pinned, not a peer");
    c.apply(&idle_pod("hostile", &ns.name, app_image, &node, "{}"));
    // A pod that pins the archive asks for the same digest from a registry it names: the
    // fetcher would pull from there, so only the exact pinned reference is allowed.
    let rest = pinned_ref.split_once('/').unwrap().1;
    let elsewhere = format!("evil.example/{rest}");
    let forged = serde_json::json!({"shell": pinned_ref}).to_string();
    c.apply(&idle_pod(
        "forger",
        &ns.name,
        app_image,
        &node,
        &serde_json::json!({ANNOTATION_ARCHIVE: forged}).to_string(),
    ));
    for pod in ["hostile", "forger"] {
        c.kubectl_ok(&[
            "-n",
            &ns.name,
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=180s",
        ]);
    }
    let before = (
        denied(c, &node_ip, "not_pinned"),
        denied(c, &node_ip, "not_a_peer"),
    );
    let archive = archive_request_path(&pinned, &pinned_ref);
    let attacks: Vec<(&str, String, &str)> = vec![
        ("hostile", archive.clone(), "does not pin"),
        ("hostile", archive_file_path(&pinned), "does not pin"),
        (
            "forger",
            archive_request_path(&pinned, &elsewhere),
            "does not pin",
        ),
        ("hostile", blob_path(&layer), "not a classcache fetcher"),
        (
            "hostile",
            blob_request_path(&layer, &pinned_ref),
            "not a classcache fetcher",
        ),
        (
            "hostile",
            status_path(&layer, None),
            "not a classcache fetcher",
        ),
    ];
    for (pod, path, says) in &attacks {
        let (status, body) = c.get_from_pod(&ns.name, pod, &node_ip, path);
        assert_eq!(status, 403, "{pod} GET {path}: {body}");
        assert!(body.contains(says), "{pod} GET {path}: {body}");
        eprintln!("refused: {pod} GET {path}: {}", body.trim());
    }
    let after = (
        denied(c, &node_ip, "not_pinned"),
        denied(c, &node_ip, "not_a_peer"),
    );
    assert!(
        after.0 >= before.0 + 3,
        "not_pinned {before:?} -> {after:?}"
    );
    assert!(
        after.1 >= before.1 + 3,
        "not_a_peer {before:?} -> {after:?}"
    );

    step("this host, outside every pod, gets 403 too; health and metrics stay open");
    let base = format!("http://{node_ip}:{FETCHER_PORT}");
    let (status, body) = get_from_host(&format!("{base}{archive}"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not a pod on this node"), "{body}");
    let (status, body) = get_from_host(&format!("{base}{}", blob_path(&layer)));
    assert_eq!(status, 403, "{body}");
    assert_eq!(get_from_host(&format!("{base}{}", routes::HEALTHZ)).0, 200);

    step("the workload's own pods still get their archive after the attacks");
    c.kubectl_ok(&["-n", &ns.name, "rollout", "restart", "deploy/shop"]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let counts = c.classes_from_archive(&ns.name, "shop", "app");
    assert!(
        counts.iter().all(|(_, _, n)| *n >= 500),
        "{counts:?}\n{}",
        c.describe_namespace(&ns.name)
    );
}
