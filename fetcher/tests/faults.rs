//! Faults in a multi-node lab: a parent killed mid-transfer, a peer that corrupts bytes, the
//! registry gone after the first pull, a node whose disk fills up. Nothing corrupt is ever
//! published, and every healthy node ends with the archive.

mod support;

use classcache_core::fetcher::http::routes;
use std::time::Duration;
use support::netns::LinkRate;
use support::{push_archive, Cluster, ClusterOptions, Fixture, SmallDisk};

fn assert_published(cluster: &Cluster, fixture: &Fixture, nodes: &[usize]) {
    for &i in nodes {
        assert_eq!(
            cluster.published_sha(i, &fixture.pinned).as_deref(),
            Some(fixture.archive_sha256.as_str()),
            "node {i}'s published archive\n{}",
            cluster.logs()
        );
    }
}

fn written(cluster: &Cluster, i: usize, digest: &str) -> u64 {
    cluster
        .status(i, digest)
        .and_then(|s| s["written"].as_u64())
        .unwrap_or(0)
}

/// Asks all nodes at once on a background thread; the answers come back through the handle.
fn request_in_background(
    cluster: &std::sync::Arc<Cluster>,
    nodes: Vec<usize>,
    reference: String,
) -> std::thread::JoinHandle<Vec<Result<serde_json::Value, String>>> {
    let c = cluster.clone();
    std::thread::spawn(move || {
        c.request(&nodes, &reference)
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    })
}

#[test]
fn a_parent_killed_mid_transfer_is_replaced_without_a_second_registry_pull() {
    let fixture = push_archive(8 << 20);
    let cluster = std::sync::Arc::new(Cluster::start(&ClusterOptions {
        // Slow enough that the kill lands mid-transfer: 8 MiB at 5 MB/s.
        rate: Some(LinkRate::mbit(40)),
        ..ClusterOptions::new(5)
    }));
    let ranked = cluster.ranked(&fixture.layer_digest);
    let victim = ranked[1];
    let asked = request_in_background(&cluster, ranked.clone(), cluster.reference(&fixture));
    support::wait_until(
        "the victim to be mid-transfer",
        Duration::from_secs(30),
        || written(&cluster, victim, &fixture.layer_digest) > 2 << 20,
    );
    cluster.kill(victim);
    let answers = asked.join().unwrap();
    let survivors: Vec<usize> = ranked.iter().copied().filter(|&i| i != victim).collect();
    for (&i, answer) in ranked.iter().zip(&answers) {
        if i != victim {
            assert!(answer.is_ok(), "node {i}: {answer:?}\n{}", cluster.logs());
        }
    }
    assert_published(&cluster, &fixture, &survivors);
    let gets = cluster.proxy.blob_gets(&fixture.layer_digest);
    assert_eq!(gets.len(), 1, "registry blob GETs: {gets:?}");
    // The victim's child noticed and moved on (resuming with Range, not from byte 0).
    let child = ranked[2];
    let failures = cluster.metric(
        child,
        "classcache_fetcher_peer_failures_total{reason=\"truncated\"}",
    ) + cluster.metric(
        child,
        "classcache_fetcher_peer_failures_total{reason=\"connect\"}",
    );
    assert!(
        failures >= 1.0,
        "child {child} recorded no peer failure\n{}",
        cluster.log(child)
    );
    let resumed_at = cluster
        .log(child)
        .lines()
        .find(|l| l.contains("peer transfer failed"))
        .and_then(|l| {
            l.split("offset=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
    assert!(
        resumed_at.is_some_and(|o| o > 0),
        "the child resumes from where it was, not from byte 0: {resumed_at:?}\n{}",
        cluster.log(child)
    );
}

#[test]
fn the_root_killed_mid_transfer_is_resumed_from_the_registry_with_range() {
    let fixture = push_archive(8 << 20);
    let cluster = std::sync::Arc::new(Cluster::start(&ClusterOptions {
        rate: Some(LinkRate::mbit(40)),
        ..ClusterOptions::new(3)
    }));
    let ranked = cluster.ranked(&fixture.layer_digest);
    let root = ranked[0];
    let asked = request_in_background(&cluster, ranked.clone(), cluster.reference(&fixture));
    support::wait_until(
        "the root to be mid-transfer",
        Duration::from_secs(30),
        || written(&cluster, ranked[1], &fixture.layer_digest) > 2 << 20,
    );
    cluster.kill(root);
    let answers = asked.join().unwrap();
    for (&i, answer) in ranked.iter().zip(&answers).skip(1) {
        assert!(answer.is_ok(), "node {i}: {answer:?}\n{}", cluster.logs());
    }
    assert_published(&cluster, &fixture, &ranked[1..]);
    let gets = cluster.proxy.blob_gets(&fixture.layer_digest);
    assert_eq!(gets.len(), 2, "registry blob GETs: {gets:?}");
    let resumed = gets[1].range.as_deref().unwrap_or("");
    assert!(
        resumed.starts_with("bytes=") && !resumed.starts_with("bytes=0-"),
        "the second registry GET resumes with Range, got {resumed:?}"
    );
    // About one copy in total crossed the registry link, not two.
    assert!(
        cluster.proxy.bytes_down() < fixture.layer_size * 3 / 2,
        "registry sent {} bytes for a {}-byte blob",
        cluster.proxy.bytes_down(),
        fixture.layer_size
    );
}

#[test]
fn a_peer_that_corrupts_bytes_costs_time_but_never_poisons_a_node() {
    let fixture = push_archive(4 << 20);
    let hosts = 4;
    // The corrupter sits at rank 1: a parent.
    let ranked = support::ranked_hosts(&fixture.layer_digest, hosts);
    let corrupter = ranked[1];
    let cluster = Cluster::start(&ClusterOptions {
        extra_args: vec![(corrupter, vec!["--corrupt-uploads".into()])],
        ..ClusterOptions::new(hosts)
    });
    let answers = cluster.request(
        &(0..hosts).collect::<Vec<_>>(),
        &cluster.reference(&fixture),
    );
    for (i, (answer, _)) in answers.iter().enumerate() {
        assert!(answer.is_ok(), "node {i}: {answer:?}\n{}", cluster.logs());
    }
    assert_published(&cluster, &fixture, &(0..hosts).collect::<Vec<_>>());
    let victim = ranked[2];
    assert!(
        cluster.metric(
            victim,
            "classcache_fetcher_peer_failures_total{reason=\"digest_mismatch\"}"
        ) >= 1.0,
        "node {victim} should have caught the corrupt bytes\n{}",
        cluster.log(victim)
    );
    assert_eq!(cluster.proxy.blob_gets(&fixture.layer_digest).len(), 1);
}

#[test]
fn peers_keep_serving_when_the_registry_is_down_after_the_first_pull() {
    let fixture = push_archive(4 << 20);
    let hosts = 4;
    let cluster = Cluster::start(&ClusterOptions::new(hosts));
    let ranked = cluster.ranked(&fixture.layer_digest);
    let reference = cluster.reference(&fixture);
    let first = cluster.request(&[ranked[0]], &reference);
    assert!(first[0].0.is_ok(), "{:?}\n{}", first[0].0, cluster.logs());
    cluster.proxy.stop();
    let rest = cluster.request(&ranked[1..], &reference);
    for (i, (answer, _)) in ranked[1..].iter().zip(&rest) {
        assert!(answer.is_ok(), "node {i}: {answer:?}\n{}", cluster.logs());
    }
    assert_published(&cluster, &fixture, &ranked);
    assert_eq!(cluster.proxy.blob_gets(&fixture.layer_digest).len(), 1);
}

#[test]
fn a_node_whose_disk_fills_up_publishes_nothing_and_its_children_go_elsewhere() {
    let fixture = push_archive(4 << 20);
    let hosts = 4;
    let ranked = support::ranked_hosts(&fixture.layer_digest, hosts);
    let full = ranked[1];
    let disk = SmallDisk::new(1 << 20);
    let cluster = Cluster::start(&ClusterOptions {
        store_override: vec![(full, disk.path.clone())],
        ..ClusterOptions::new(hosts)
    });
    let answers = cluster.request(
        &(0..hosts).collect::<Vec<_>>(),
        &cluster.reference(&fixture),
    );
    for (i, (answer, _)) in answers.iter().enumerate() {
        if i == full {
            let err = answer
                .as_ref()
                .expect_err("the full node cannot hold the archive");
            assert!(err.contains("disk is full"), "node {i}: {err}");
        } else {
            assert!(answer.is_ok(), "node {i}: {answer:?}\n{}", cluster.logs());
        }
    }
    let healthy: Vec<usize> = (0..hosts).filter(|&i| i != full).collect();
    assert_published(&cluster, &fixture, &healthy);
    assert_eq!(cluster.published_sha(full, &fixture.pinned), None);
    assert_eq!(cluster.tmp_files(full), 0, "a partial file was left behind");
    assert!(cluster.metric(full, "classcache_fetcher_errors_total{kind=\"disk_full\"}") >= 1.0);
    // Still serving.
    assert_eq!(
        cluster.get_text(full, routes::HEALTHZ).as_deref(),
        Some("ok\n")
    );
    assert_eq!(cluster.proxy.blob_gets(&fixture.layer_digest).len(), 1);
}
