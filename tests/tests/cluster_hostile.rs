//! Hostile input to the real fetcher pods where they now listen: the node's own address (the
//! DaemonSet runs on the host network, so anything that reaches a node reaches port 8787).
//! Malformed and traversing digests, unknown archives and absurd ranges get a clear 4xx, never a
//! file outside the store, and the fetchers keep running (no restart, still healthy).
//!
//! Who may call the fetcher is tested in `cluster_callers.rs`; this test holds the input checks
//! that come before it.

use classcache_core::fetcher::http::{archive_file_path, archive_path, routes};
use classcache_core::podtemplate::FETCHER_PORT;
use classcache_e2e::cluster::{cluster, exclusive, Cluster};
use std::process::Command;

/// `curl` from this host (outside every pod) to `url`: (HTTP status, body).
fn get(url: &str, headers: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    // Longer than the fetcher's --pod-wait: an archive request from an address no pod has
    // waits that long for the pod watch before its 403.
    command.args(["-sS", "--max-time", "40", "-w", "\n%{http_code}"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg("--path-as-is")
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn fetcher_restarts(c: &Cluster) -> Vec<(String, u64)> {
    let pods = c.get_json(&[
        "pods",
        "-n",
        "classcache",
        "-l",
        "app.kubernetes.io/name=classcache-fetcher",
    ]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_u64()
                    .unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn fetchers_on_the_node_network_refuse_hostile_paths_and_keep_serving() {
    let c = cluster();
    let _serial = exclusive();
    c.install_fetcher();
    let before = fetcher_restarts(c);
    let unknown = format!("sha256:{}", "a".repeat(64));
    let node_ips = c
        .harness
        .env
        .get("CLASSCACHE_CLUSTER_NODE_IPS")
        .expect("cluster-up.sh writes CLASSCACHE_CLUSTER_NODE_IPS");

    for ip in node_ips.split_whitespace() {
        let base = format!("http://{ip}:{FETCHER_PORT}");
        let refused = [
            archive_path("not-a-digest"),
            archive_file_path("..%2f..%2f..%2fetc%2fpasswd"),
            archive_file_path("sha256:..%2F..%2F..%2Fetc%2Fpasswd"),
            archive_file_path(format!("sha256:{}", "A".repeat(64))),
            archive_file_path(format!("sha256:{}", "a".repeat(65))),
        ];
        for path in &refused {
            let (status, body) = get(&format!("{base}{path}"), &[]);
            assert_eq!(
                status, 400,
                "{ip}{path} must be refused as a bad digest: {body}"
            );
            assert!(
                body.contains("sha256:<64"),
                "{ip}{path}: the answer names the form: {body}"
            );
        }
        let path = archive_path(&unknown);
        let (status, body) = get(&format!("{base}{path}"), &[]);
        assert_eq!(status, 404, "{ip}{path}: {body}");
        // Archive bytes only for a pod on the node that pins them: this host is none.
        let path = archive_file_path(&unknown);
        let (status, body) = get(&format!("{base}{path}"), &[]);
        assert_eq!(status, 403, "{ip}{path}: {body}");
        for path in ["/../../../../etc/passwd", "/v1/archives/../../etc/passwd"] {
            let (status, body) = get(&format!("{base}{path}"), &[]);
            assert!(
                (400..500).contains(&status),
                "{ip}{path} answered {status}: {body}"
            );
            assert!(
                !body.contains("root:"),
                "{ip}{path} served a host file: {body}"
            );
        }
        let (status, body) = get(
            &format!("{base}{}", archive_file_path(&unknown)),
            &["Range: bytes=99999999999999999999999-"],
        );
        assert!(
            (400..500).contains(&status),
            "{ip}: an absurd Range answered {status}: {body}"
        );
        let (status, body) = get(&format!("{base}{}", routes::HEALTHZ), &[]);
        assert_eq!(status, 200, "{ip} must still be healthy: {body}");
    }
    assert_eq!(
        fetcher_restarts(c),
        before,
        "hostile requests must not restart a fetcher"
    );
}
