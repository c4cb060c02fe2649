//! The whole pipeline on the harness's real two-node cluster: the project's fetcher image,
//! `install`, an app trained and pushed by classcache-build, `enable` on its Deployment with
//! pods on both nodes, the JVMs' own class-load logs, copy mode under Pod Security
//! `restricted`, `status`, `disable`, `uninstall`, and fail-open / fail-closed without a fetcher.
//!
//! One test walks the steps in order, because they share the cluster-wide fetcher install.

use classcache_core::podtemplate::DEFAULT_FETCHER_IMAGE;
use classcache_e2e::apps::trained_example_app;
use classcache_e2e::cluster::{cluster, exclusive, jvm_deployment, Cluster, APP_UID};
use classcache_e2e::repo_root;
use classcache_e2e::step;
use serde_json::Value;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// Pods of a Deployment spread over the nodes, one per node.
const ONE_PER_NODE: &str = "topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    labelSelector:
      matchLabels: {app: NAME}";

/// The app's Deployment with one replica per node (`placement` with the app's name).
fn app_deployment(name: &str, namespace: &str, image: &str, replicas: usize) -> String {
    jvm_deployment(
        name,
        namespace,
        image,
        replicas,
        APP_UID,
        &ONE_PER_NODE.replace("NAME", name),
    )
}

fn template_of(c: &Cluster, namespace: &str, name: &str) -> Value {
    let deploy = c.get_json(&["deployment", "-n", namespace, name]);
    deploy["spec"]["template"].clone()
}

#[test]
fn the_default_fetcher_image_is_the_one_the_project_builds() {
    let c = cluster();
    let _ = c.fetcher_image();
    let output = c
        .harness
        .command("bash")
        .arg(repo_root().join("scripts/fetcher-image.sh"))
        .env("DOCKER_HOST", &c.harness.docker_host)
        .env("CLASSCACHE_DOCKER_CLI", &c.harness.docker_cli)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        DEFAULT_FETCHER_IMAGE
    );
    let user = c.harness.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}}",
        DEFAULT_FETCHER_IMAGE,
    ]);
    assert_eq!(
        user, "65532:65532",
        "the fetcher image must run as non-root"
    );
}

#[test]
fn pipeline_on_real_nodes() {
    let c = cluster();
    let _serial = exclusive();
    assert!(
        c.nodes.len() >= 2,
        "the harness cluster has nodes {:?}",
        c.nodes
    );
    assert_eq!(c.fetcher_image(), DEFAULT_FETCHER_IMAGE);
    let app_image = trained_example_app(c.harness);

    step("install: every object accepted, a Ready fetcher on every node");
    // What an earlier, interrupted run left goes first: its namespaces, then its install.
    c.delete_stale_test_namespaces();
    let _ = c.plugin(&["uninstall", "--force"]);
    c.install_fetcher();
    let fetchers = c.pods("classcache", "app.kubernetes.io/name=classcache-fetcher");
    let mut fetcher_nodes: Vec<_> = fetchers.iter().map(|(_, n)| n.clone()).collect();
    fetcher_nodes.sort();
    let mut nodes = c.nodes.clone();
    nodes.sort();
    assert_eq!(fetcher_nodes, nodes, "one fetcher pod per node");

    step("enable a Deployment with a pod on each node; the JVMs load from the archive");
    let ns = c.namespace("shop", &[]);
    c.apply(&app_deployment("shop", &ns.name, app_image, 2));
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let before = template_of(c, &ns.name, "shop");
    for (pod, node, count) in c.classes_from_archive(&ns.name, "shop", "app") {
        assert_eq!(count, 0, "{pod} on {node} used an archive before enable");
    }
    c.plugin_ok(&["enable", "deploy/shop", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let enabled = template_of(c, &ns.name, "shop");
    let tool_options = enabled["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "JAVA_TOOL_OPTIONS")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        tool_options.contains("-Xlog:class+load=info:stdout -Xmx128m"),
        "the workload's own JVM options must survive enable: {tool_options}"
    );
    let counts = c.classes_from_archive(&ns.name, "shop", "app");
    let mut used_on: Vec<_> = counts.iter().map(|(_, n, _)| n.clone()).collect();
    used_on.sort();
    assert_eq!(used_on, nodes, "a pod on every node: {counts:?}");
    for (pod, node, count) in &counts {
        assert!(
            *count >= 500,
            "{pod} on {node} loaded only {count} classes from the archive (JVM log)\n{}",
            c.describe_namespace(&ns.name)
        );
    }
    let archive_ref = enabled["metadata"]["annotations"]["classcache.io/archive"]
        .as_str()
        .map(|a| {
            serde_json::from_str::<Value>(a).unwrap()["app"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .expect("enable pins the archive in an annotation");
    eprintln!("archive {archive_ref}; classes from it per pod: {counts:?}");

    step("the registry served the archive's layer once for the whole cluster");
    let (layer, size) = c.archive_layer(&archive_ref);
    let (gets, served) = c.registry_blob_gets(&archive_ref, &layer, 0);
    assert_eq!(
        served, size,
        "the archive layer {layer} must be pulled from the registry once per cluster (its stripes in {gets} GETs)"
    );

    step("status names the nodes that hold the archive and the pods that run with it");
    let status: Value = serde_json::from_str(&c.plugin_ok(&[
        "status",
        "deploy/shop",
        "-n",
        &ns.name,
        "-o",
        "json",
    ]))
    .unwrap();
    let row = &status[0];
    let mut present: Vec<String> = row["archives"][0]["nodes"]["present"]
        .as_array()
        .unwrap_or_else(|| panic!("status has no node list: {status:#}"))
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect();
    present.sort();
    assert_eq!(present, nodes, "{status:#}");
    let mut pods: Vec<String> = row["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    pods.sort();
    let mut running: Vec<String> = counts.iter().map(|(p, _, _)| p.clone()).collect();
    running.sort();
    assert_eq!(pods, running, "{status:#}");

    step("copy mode in a namespace that enforces Pod Security restricted");
    let restricted = c.namespace(
        "restricted",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    c.apply(&app_deployment("shop", &restricted.name, app_image, 2));
    c.rollout_status(&restricted.name, "deploy/shop", ROLLOUT);
    c.plugin_ok(&[
        "enable",
        "deploy/shop",
        "-n",
        &restricted.name,
        "--mode",
        "copy",
    ]);
    c.rollout_status(&restricted.name, "deploy/shop", ROLLOUT);
    for (pod, node, count) in c.classes_from_archive(&restricted.name, "shop", "app") {
        assert!(
            count >= 500,
            "{pod} on {node} (copy mode) loaded {count} classes from the archive"
        );
    }

    step("uninstall refuses while a workload is enabled");
    let refused = c.plugin(&["uninstall"]);
    assert!(
        !refused.status.success(),
        "uninstall must refuse while workloads are enabled"
    );
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("shop") && message.contains("--force"),
        "{message}"
    );

    step("disable restores the exact objects and rolls the pods back");
    c.plugin_ok(&["disable", "deploy/shop", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    assert_eq!(
        template_of(c, &ns.name, "shop"),
        before,
        "disable must restore the template exactly"
    );
    for (pod, node, count) in c.classes_from_archive(&ns.name, "shop", "app") {
        assert_eq!(
            count, 0,
            "{pod} on {node} still uses the archive after disable"
        );
    }
    c.plugin_ok(&["disable", "deploy/shop", "-n", &restricted.name]);

    step("without a fetcher: fail-open pods start without the archive, --fail-closed holds them");
    c.plugin_ok(&["uninstall"]);
    let open = c.namespace("failopen", &[]);
    c.apply(&app_deployment("open", &open.name, app_image, 1));
    c.apply(&app_deployment("closed", &open.name, app_image, 1));
    c.rollout_status(&open.name, "deploy/open", ROLLOUT);
    c.rollout_status(&open.name, "deploy/closed", ROLLOUT);
    // Copy mode: in hostpath mode the nodes' stores still hold the archive published above
    // (uninstall leaves the node cache), and a JVM would rightly use it.
    let copy = ["--mode", "copy", "--timeout", "10s"];
    c.plugin_ok(&[&["enable", "deploy/open", "-n", &open.name][..], &copy].concat());
    c.plugin_ok(
        &[
            &["enable", "deploy/closed", "-n", &open.name, "--fail-closed"][..],
            &copy,
        ]
        .concat(),
    );
    c.rollout_status(&open.name, "deploy/open", ROLLOUT);
    for (pod, node, count) in c.classes_from_archive(&open.name, "open", "app") {
        assert_eq!(
            count, 0,
            "{pod} on {node} cannot have the archive without a fetcher"
        );
    }
    c.wait_for(
        "the fail-closed pod's init container to fail",
        Duration::from_secs(120),
        || {
            let pods = c.get_json(&["pods", "-n", &open.name, "-l", "app=closed"]);
            pods["items"].as_array()?.iter().find_map(|p| {
                let init = p["status"]["initContainerStatuses"]
                    .as_array()?
                    .first()?
                    .clone();
                let code = init["lastState"]["terminated"]["exitCode"]
                    .as_i64()
                    .or_else(|| init["state"]["terminated"]["exitCode"].as_i64())?;
                (code != 0).then_some(())
            })
        },
        || c.describe_namespace(&open.name),
    );
    // The enabled pod (the one with the init container) never becomes Ready; the old one,
    // without classcache, keeps serving: the rollout waits, the workload stays up.
    let pods = c.get_json(&["pods", "-n", &open.name, "-l", "app=closed"]);
    let ready = |p: &Value| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let items = pods["items"].as_array().unwrap();
    let (enabled, old): (Vec<&Value>, Vec<&Value>) = items
        .iter()
        .partition(|p| !p["spec"]["initContainers"].is_null());
    assert!(!enabled.is_empty(), "the enabled pod exists: {pods:#}");
    assert!(
        enabled.iter().all(|p| !ready(p)),
        "--fail-closed must keep the enabled pod from becoming Ready: {pods:#}"
    );
    assert!(
        old.iter().any(|p| ready(p)),
        "the old pod keeps serving during the held rollout: {pods:#}"
    );
}
