//! A multi-platform image on the harness's real two-node cluster: classcache-build (linux/amd64,
//! trained here) and the linux/arm64 job leave one index of per-platform archives; `enable`
//! pins the index's digest, and the pod on each node starts with its platform's archive loaded.
//!
//! Both nodes are linux/amd64 (this machine), and no arm64 JVM runs here: the arm64 manifest
//! and archive are fixtures (`classcache_e2e::multiarch`), added to the index by the code
//! classcache-build runs. That the arm64 node would take the arm64 entry is
//! `fetcher/tests/platforms.rs` (real fetchers, one told it is linux/arm64).

use classcache_core::key::IndexKey;
use classcache_e2e::apps::{app_image, train_report, APP_USER};
use classcache_e2e::cluster::{cluster, exclusive, jvm_deployment, Cluster, APP_UID};
use classcache_e2e::multiarch::{block_on, client, push_platform_archive, with_arm64_fixture};
use classcache_e2e::step;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// One pod per node.
const ONE_PER_NODE: &str = "topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    labelSelector:
      matchLabels: {app: multi}";

#[test]
fn enable_pins_the_index_and_each_node_loads_its_platforms_archive() {
    let c = cluster();
    let _serial = exclusive();
    let h = c.harness;

    step("a multi-platform image: the example app for linux/amd64, an arm64 fixture manifest");
    let (amd64_image, _, _) = app_image(h, &h.jdk17_image, &["run"], &format!("USER {APP_USER}"));
    let image = block_on(with_arm64_fixture(&amd64_image));

    step("classcache-build on it (linux/amd64 here), then the linux/arm64 job (fixture)");
    let report = train_report(h, &image.reference, &["--verify-runs", "0"]);
    let key: IndexKey = report["archive"]["index"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("the build joined no index: {report:#}"))
        .parse()
        .unwrap();
    let amd: classcache_core::digest::Digest = report["archive"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let like = block_on(client().fetch_archive(&image.repository.with_digest(&amd), None))
        .unwrap()
        .config;
    let arm_data = classcache_core::digest::Digest::of(key.as_str().as_bytes())
        .hex()
        .repeat(4096)
        .into_bytes();
    let (arm, index) = block_on(push_platform_archive(
        &image,
        "linux/arm64/v8",
        &like,
        &arm_data,
        &key,
    ));
    assert!(index.missing.is_empty(), "{index:?}");

    step("enable a Deployment of the multi-platform image, a pod on each node");
    c.delete_stale_test_namespaces();
    c.install_fetcher();
    let ns = c.namespace("multiarch", &[]);
    c.apply(&jvm_deployment(
        "multi",
        &ns.name,
        &image.reference,
        2,
        APP_UID,
        ONE_PER_NODE,
    ));
    c.rollout_status(&ns.name, "deploy/multi", ROLLOUT);
    let log_before = c.registry_log().lines().count();
    let out = c.plugin(&["enable", "deploy/multi", "-n", &ns.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("start without"),
        "the index covers every platform of the image: {stderr}"
    );
    c.rollout_status(&ns.name, "deploy/multi", ROLLOUT);

    step("the template pins the index's digest; JAVA_TOOL_OPTIONS has the one path of every node");
    let template = c.deployment_template(&ns.name, "multi");
    let pinned = Cluster::pinned_reference(&template);
    assert_eq!(
        pinned,
        format!("{}@{}", image.repository, index.digest),
        "enable must pin the index of per-platform archives"
    );
    let path = classcache_core::paths::pod_archive_path(index.digest.as_str(), &like.archive.name);
    let tool_options = template["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "JAVA_TOOL_OPTIONS")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(tool_options.contains(&path), "{tool_options}");

    step("each pod's JVM loads its platform's (amd64) archive");
    let counts = c.classes_from_archive(&ns.name, "multi", "app");
    let mut nodes: Vec<String> = counts.iter().map(|(_, n, _)| n.clone()).collect();
    nodes.sort();
    let mut all = c.nodes.clone();
    all.sort();
    assert_eq!(nodes, all, "a pod on every node: {counts:?}");
    for (pod, node, count) in &counts {
        assert!(
            *count >= 500,
            "{pod} on {node} loaded only {count} classes from the archive\n{}",
            c.describe_namespace(&ns.name)
        );
    }
    let amd_layer = block_on(client().fetch_archive(&image.repository.with_digest(&amd), None))
        .unwrap()
        .manifest
        .layers[0]
        .clone();
    let (gets, served) = c.registry_blob_gets(&pinned, amd_layer.digest.as_str(), log_before);
    assert_eq!(
        served, amd_layer.size,
        "the amd64 archive's layer is pulled once for the cluster (its stripes in {gets} GETs)"
    );
    assert_eq!(
        c.registry_blob_gets(&pinned, arm.layer.digest.as_str(), 0)
            .0,
        0,
        "no amd64 node pulls the arm64 archive"
    );
}
