//! Faults in a multi-node lab: a parent killed mid-transfer, a peer that corrupts bytes, the
//! registry gone after the first pull, a node whose disk fills up. Nothing corrupt is ever
//! published, and every healthy node ends with the archive.

mod support;

use classcache_core::fetcher::http::routes;
use classcache_core::fetcher::stripes::{StripeChoice, Stripes};
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

/// Every byte came from the registry once, except in the stripes `failed` rooted (pulled from
/// the registry itself): there what it did not pass on is asked again, at most `times` in all.
/// Where it was a parent below a root, its children got the bytes from peers.
fn assert_registry_once_but_for_stripes_rooted_by(
    cluster: &Cluster,
    fixture: &Fixture,
    hosts: usize,
    failed: usize,
    times: usize,
) {
    let gets = cluster.proxy.blob_gets(&fixture.layer_digest);
    let wanted = StripeChoice::default().wanted(hosts);
    let layout = Stripes::new(fixture.layer_size, wanted, hosts);
    let roots = support::stripe_roots(&fixture.layer_digest, hosts, fixture.layer_size);
    for (start, end, asked) in cluster
        .proxy
        .blob_asks(&fixture.layer_digest, fixture.layer_size)
    {
        let piece = layout.piece_at(start);
        let j = layout.stripe_of(piece);
        let limit = if roots[j] == failed { times } else { 1 };
        assert!(
            (1..=limit).contains(&asked) && end <= layout.piece(piece).end,
            "bytes {start}..{end} (stripe {j}, rooted by node {}) asked {asked} times: {gets:?}\n{}",
            roots[j],
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
    let roots = support::stripe_roots(&fixture.layer_digest, 5, fixture.layer_size);
    assert!(
        roots.iter().any(|&r| r != victim),
        "the victim is only a parent in some stripes: {roots:?}"
    );
    // Killed, it asks no more: its stripes' rest is asked once more, by one child.
    assert_registry_once_but_for_stripes_rooted_by(&cluster, &fixture, 5, victim, 2);
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
    // The root's stripes were asked of the registry again by their next nodes, each from the
    // byte that node had: a later range starts inside an earlier one, past its start.
    let gets = cluster.proxy.blob_gets(&fixture.layer_digest);
    let ranges = cluster
        .proxy
        .blob_ranges(&fixture.layer_digest, fixture.layer_size);
    let (least, _) = cluster
        .proxy
        .blob_coverage(&fixture.layer_digest, fixture.layer_size);
    assert_eq!(least, 1, "every byte came from somewhere: {gets:?}");
    let resumed = ranges
        .iter()
        .enumerate()
        .any(|(i, &(start, _))| ranges[..i].iter().any(|&(a, b)| a < start && start < b));
    assert!(
        resumed,
        "a stripe of the killed root resumes with Range mid-stripe: {gets:?}"
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
    // The corrupt bytes fail the whole blob's digest, which cannot tell which of the stripes'
    // senders lied: a node that caught them stops trusting every peer that fed it for this
    // digest and takes the rest from other peers or, in a lab this small, the registry. The
    // registry still sends no node more than one copy.
    let (least, most) = cluster
        .proxy
        .blob_coverage(&fixture.layer_digest, fixture.layer_size);
    assert!(
        least >= 1 && most <= hosts,
        "registry asks per byte from {least} to {most}, for {hosts} nodes: {:?}",
        cluster.proxy.blob_gets(&fixture.layer_digest)
    );
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
    assert_eq!(
        cluster
            .proxy
            .blob_coverage(&fixture.layer_digest, fixture.layer_size),
        (1, 1),
        "each byte from the registry once: {:?}",
        cluster.proxy.blob_gets(&fixture.layer_digest)
    );
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
    // Alive, it tries again for its children and fails again: a few more asks of its stripe.
    assert_registry_once_but_for_stripes_rooted_by(&cluster, &fixture, hosts, full, hosts);
}
