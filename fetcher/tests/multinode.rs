//! Fetchers as separate hosts in network namespaces, against the harness registry: every node
//! ends with the byte-identical archive while the registry serves the blob once.

mod support;

use classcache_core::fetcher::stripes::{StripeChoice, Stripes};
use support::netns::LinkRate;
use support::{push_archive, Cluster, ClusterOptions};

#[test]
fn every_node_gets_the_identical_archive_and_the_registry_serves_the_blob_once() {
    let fixture = push_archive(12 << 20);
    // Striped: the opt-in distribution, end to end over HTTP (`faults` runs the default).
    let stripes = 4;
    let hosts = 6;
    let cluster = Cluster::start(&ClusterOptions {
        rate: Some(LinkRate::mbit(200)),
        stripes: StripeChoice::Fixed(stripes),
        ..ClusterOptions::new(hosts)
    });
    let reference = cluster.reference(&fixture);
    // All pods start at once: every node asks at the same moment.
    let answers = cluster.request(&(0..hosts).collect::<Vec<_>>(), &reference);
    for (i, (answer, _)) in answers.iter().enumerate() {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("node {i}: {e}\n{}", cluster.logs()));
        assert_eq!(answer["sha256"], fixture.archive_sha256.as_str());
    }
    for i in 0..hosts {
        assert_eq!(
            cluster.published_sha(i, &fixture.pinned).as_deref(),
            Some(fixture.archive_sha256.as_str()),
            "node {i}'s published archive"
        );
    }
    let gets = cluster.proxy.blob_gets(&fixture.layer_digest);
    assert_eq!(
        cluster
            .proxy
            .blob_coverage(&fixture.layer_digest, fixture.layer_size),
        (1, 1),
        "every byte asked of the registry once; blob GETs: {gets:?}\n{}",
        cluster.logs()
    );
    let layout = Stripes::new(fixture.layer_size, stripes, hosts);
    assert!(
        layout.pieces() > stripes,
        "a 12 MiB layer in {stripes} stripes is cut into interleaved pieces"
    );
    assert_eq!(
        gets.len(),
        layout.pieces(),
        "each piece of each stripe asked of the registry once, by its stripe's root: {gets:?}"
    );
    let from_registry: f64 = (0..hosts)
        .map(|i| {
            cluster.metric(
                i,
                "classcache_fetcher_bytes_received_total{source=\"registry\"}",
            )
        })
        .sum();
    let from_peers: f64 = (0..hosts)
        .map(|i| {
            cluster.metric(
                i,
                "classcache_fetcher_bytes_received_total{source=\"peer\"}",
            )
        })
        .sum();
    assert_eq!(from_registry as u64, fixture.layer_size);
    assert_eq!(from_peers as u64, fixture.layer_size * (hosts as u64 - 1));

    // A second round is all hits: nothing moves.
    let again = cluster.request(&(0..hosts).collect::<Vec<_>>(), &reference);
    assert!(again
        .iter()
        .all(|(a, _)| a.as_ref().unwrap()["hit"] == true));
    assert_eq!(cluster.proxy.blob_gets(&fixture.layer_digest), gets);
}
