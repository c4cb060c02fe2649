//! Who may call a fetcher, with fetchers and a hostile host each in its own network namespace:
//! the stranger (in no peer list, not an allowed pod network) is refused every route but health
//! and metrics, and counted; the peers keep sharing the archive between them.

mod support;

use classcache_core::fetcher::http::{self as api, routes};
use support::{push_archive, Cluster, ClusterOptions};

/// `curl` run inside namespace host `i`: (HTTP status, body).
fn curl_from(cluster: &Cluster, i: usize, url: &str) -> (u16, String) {
    curl_with(cluster, i, url, &[])
}

fn curl_with(cluster: &Cluster, i: usize, url: &str, headers: &[String]) -> (u16, String) {
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "20".into(),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    for h in headers {
        args.extend(["-H".to_string(), h.clone()]);
    }
    args.push(url.into());
    let out = cluster.lab.exec(i, "curl", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn a_stranger_host_is_refused_and_the_peers_still_share() {
    let fixture = push_archive(2 << 20);
    let cluster = Cluster::start(&ClusterOptions {
        strangers: 1,
        ..ClusterOptions::new(2)
    });
    let stranger = 2;
    let reference = cluster.reference(&fixture);

    // Both nodes' pods start at once: one node pulls from the registry, the other from it.
    for (i, (answer, _)) in cluster.request(&[0, 1], &reference).into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("node {i}: {e}\n{}", cluster.logs()));
        assert_eq!(answer["sha256"], fixture.archive_sha256.as_str());
    }
    let from_peers: f64 = (0..2)
        .map(|i| {
            cluster.metric(
                i,
                "classcache_fetcher_bytes_received_total{source=\"peer\"}",
            )
        })
        .sum();
    assert_eq!(
        from_peers.round() as u64,
        fixture.layer_size,
        "one node got the layer from its peer\n{}",
        cluster.logs()
    );

    let base = cluster.url(0);
    let attacks = [
        (
            format!(
                "{base}{}",
                api::blob_request_path(&fixture.layer_digest, &reference)
            ),
            "not a classcache fetcher",
        ),
        (
            format!("{base}{}", api::blob_path(&fixture.layer_digest)),
            "not a classcache fetcher",
        ),
        (
            format!("{base}{}", api::status_path(&fixture.layer_digest, None)),
            "not a classcache fetcher",
        ),
        (
            format!(
                "{base}{}",
                api::archive_request_path(&fixture.pinned, &reference)
            ),
            "not a pod on this node",
        ),
        (
            format!("{base}{}", api::archive_file_path(&fixture.pinned)),
            "not a pod on this node",
        ),
    ];
    let before = cluster.metric(0, "classcache_fetcher_denied_total{reason=\"not_a_peer\"}")
        + cluster.metric(
            0,
            "classcache_fetcher_denied_total{reason=\"not_on_this_node\"}",
        );
    for (url, says) in &attacks {
        let (status, body) = curl_from(&cluster, stranger, url);
        assert_eq!(status, 403, "stranger GET {url}: {body}");
        assert!(body.contains(says), "stranger GET {url}: {body}");
        eprintln!("refused: stranger GET {url}: {}", body.trim());
    }
    let after = cluster.metric(0, "classcache_fetcher_denied_total{reason=\"not_a_peer\"}")
        + cluster.metric(
            0,
            "classcache_fetcher_denied_total{reason=\"not_on_this_node\"}",
        );
    assert_eq!(
        after - before,
        attacks.len() as f64,
        "every refusal counted"
    );
    // Health and metrics stay open to anyone (the kubelet and Prometheus call them).
    for path in [routes::HEALTHZ, routes::METRICS] {
        let (status, _) = curl_from(&cluster, stranger, &format!("{base}{path}"));
        assert_eq!(status, 200, "{path}");
    }
    // Headers naming a peer (its node name, a forwarded-for address) change nothing: a caller
    // is judged by the address its connection comes from.
    let peer_ip = cluster.lab.hosts[1].ip.to_string();
    let (status, body) = curl_with(
        &cluster,
        stranger,
        &format!("{base}{}", api::blob_path(&fixture.layer_digest)),
        &[
            format!("{}: {}", api::FROM_HEADER, support::node_id(1)),
            format!("X-Forwarded-For: {peer_ip}"),
            format!("X-Real-IP: {peer_ip}"),
        ],
    );
    assert_eq!(status, 403, "{body}");
    // The refused requests started nothing: node 0 serves the same one archive, and the
    // registry was asked for the layer once.
    assert_eq!(
        cluster
            .proxy
            .blob_coverage(&fixture.layer_digest, fixture.layer_size),
        (1, 1)
    );
    let again = cluster.request(&[0, 1], &reference);
    assert!(again
        .iter()
        .all(|(a, _)| a.as_ref().unwrap()["hit"] == true));
}
