//! Benchmark on the harness's real cluster: pod start (to Ready, and to the app's start-up line)
//! with no archive, with init-container delivery (hostpath, archive on the node) and with
//! image-volume delivery, registry bytes per archive per cluster, and page
//! sharing (Σ Pss / Σ Rss of the archive's mappings) across JVM pods on one node.
//!
//! `cargo bench -p classcache-e2e --bench cluster_pods` (BENCH_RUNS, default 5, starts per
//! variant; BENCH_PODS, default 3, JVMs on one node). Ratios within one run: these machines are
//! noisy. It installs the fetcher, and leaves it installed.

use classcache_e2e::apps::{example_app_image, train};
use classcache_e2e::cluster::{archive_mappings, cluster, exclusive, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

const START_LINE: &str = "shop started in";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A Deployment of the example app pinned to one node, with no replicas yet.
fn deployment(name: &str, namespace: &str, image: &str, node: &str, extra_options: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 1
      securityContext: {{runAsNonRoot: true, runAsUser: 65532}}
      containers:
        - name: app
          image: {image}
          args: ["serve"]
          env:
            - {{name: JAVA_TOOL_OPTIONS, value: "-Xmx128m {extra_options}"}}
"#
    )
}

fn scale(c: &Cluster, namespace: &str, name: &str, replicas: usize) {
    c.kubectl_ok(&[
        "scale",
        "-n",
        namespace,
        &format!("deploy/{name}"),
        &format!("--replicas={replicas}"),
    ]);
}

fn wait_no_pods(c: &Cluster, namespace: &str, app: &str) {
    c.wait_for(
        &format!("the pods of {app} to be gone"),
        Duration::from_secs(120),
        || {
            let pods = c.get_json(&["pods", "-n", namespace, "-l", &format!("app={app}")]);
            pods["items"].as_array()?.is_empty().then_some(())
        },
        || c.describe_namespace(namespace),
    );
}

/// Scales `app` from 0 to 1 and returns (seconds to Ready, seconds to the start-up line).
fn one_start(c: &Cluster, namespace: &str, app: &str) -> (f64, f64) {
    wait_no_pods(c, namespace, app);
    let started = Instant::now();
    scale(c, namespace, app, 1);
    let mut ready = None;
    let mut line = None;
    let selector = format!("app={app}");
    while ready.is_none() || line.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{app} did not start\n{}",
            c.describe_namespace(namespace)
        );
        let pods = c.get_json(&["pods", "-n", namespace, "-l", &selector]);
        if let Some(pod) = pods["items"].as_array().and_then(|p| p.first()) {
            let is_ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if is_ready && ready.is_none() {
                ready = Some(started.elapsed().as_secs_f64());
            }
            if line.is_none() {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let logs = c.kubectl(&["logs", "-n", namespace, name, "-c", "app"]);
                if String::from_utf8_lossy(&logs.stdout).contains(START_LINE) {
                    line = Some(started.elapsed().as_secs_f64());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    scale(c, namespace, app, 0);
    (ready.unwrap(), line.unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn sharing(c: &Cluster, namespace: &str, app: &str, pods: usize, file_name: &str) -> (f64, usize) {
    wait_no_pods(c, namespace, app);
    scale(c, namespace, app, pods);
    c.rollout_status(
        namespace,
        &format!("deploy/{app}"),
        Duration::from_secs(300),
    );
    c.wait_for(
        "every JVM to print its start-up line",
        Duration::from_secs(120),
        || {
            let names = c.pods(namespace, &format!("app={app}"));
            names
                .iter()
                .all(|(pod, _)| {
                    let logs = c.kubectl(&["logs", "-n", namespace, pod, "-c", "app"]);
                    String::from_utf8_lossy(&logs.stdout).contains(START_LINE)
                })
                .then_some(())
        },
        || c.describe_namespace(namespace),
    );
    let names: Vec<String> = c
        .pods(namespace, &format!("app={app}"))
        .into_iter()
        .map(|(pod, _)| pod)
        .collect();
    let (pss, rss, processes) = archive_mappings(&names, file_name);
    scale(c, namespace, app, 0);
    (pss as f64 / rss.max(1) as f64, processes)
}

fn main() {
    let runs = env_number("BENCH_RUNS", 5).max(1);
    let pods = env_number("BENCH_PODS", 3).max(2);
    let c = cluster();
    let _serial = exclusive();
    let h = c.harness;
    let node = c.nodes[0].clone();
    eprintln!("cluster_pods: training the example app and installing the fetcher");
    let image = example_app_image(h);
    train(h, &image, &[]);
    c.install_fetcher();
    let ns = c.namespace("bench", &[]);

    c.apply(&deployment("plain", &ns.name, &image, &node, ""));
    c.apply(&deployment("enabled", &ns.name, &image, &node, ""));
    c.plugin_ok(&["enable", "deploy/enabled", "-n", &ns.name]);
    c.apply(&deployment("volume", &ns.name, &image, &node, ""));
    c.plugin_ok(&[
        "enable",
        "deploy/volume",
        "-n",
        &ns.name,
        "--mode",
        "image-volume",
    ]);
    let template = c.get_json(&["deployment", "-n", &ns.name, "enabled"]);
    let annotation = template["spec"]["template"]["metadata"]["annotations"]
        ["classcache.io/archive"]
        .as_str()
        .expect("enable pins the archive");
    let pinned: Value = serde_json::from_str(annotation).unwrap();
    let reference = pinned["app"].as_str().unwrap().to_string();
    let (layer, layer_size) = c.archive_layer(&reference);
    let log_lines = || c.registry_log().lines().count();
    let file_name = c.pod_archive_path(&reference);

    // The first enabled start on a node with no copy: the registry pull and unpack included.
    let log_mark = log_lines();
    let (first_ready, first_line) = one_start(c, &ns.name, "enabled");
    let (_, served) = c.registry_blob_gets(&reference, &layer, log_mark);
    // The first image-volume start: the kubelet pulls the archive's form (same layer blob).
    let (first_volume_ready, first_volume_line) = one_start(c, &ns.name, "volume");

    let mut plain = (vec![], vec![]);
    let mut enabled = (vec![], vec![]);
    let mut volume = (vec![], vec![]);
    for _ in 0..runs {
        let (r, l) = one_start(c, &ns.name, "volume");
        volume.0.push(r);
        volume.1.push(l);
        let (r, l) = one_start(c, &ns.name, "plain");
        plain.0.push(r);
        plain.1.push(l);
        let (r, l) = one_start(c, &ns.name, "enabled");
        enabled.0.push(r);
        enabled.1.push(l);
    }
    // Every node gets the archive: the registry must not be asked again.
    let second = c.nodes.get(1).cloned();
    let log_mark2 = log_lines();
    if let Some(other) = &second {
        c.apply(&deployment("other", &ns.name, &image, other, ""));
        c.plugin_ok(&["enable", "deploy/other", "-n", &ns.name]);
        one_start(c, &ns.name, "other");
    }
    let (_, served_again) = c.registry_blob_gets(&reference, &layer, log_mark2);

    let (shared_mode0, mapped0) = sharing(c, &ns.name, "enabled", pods, &file_name);
    let volume_file = format!(
        "/{}",
        c.registry_manifest(&reference)["layers"][0]["annotations"]
            ["org.opencontainers.image.title"]
            .as_str()
            .expect("the layer names its file")
    );
    let (shared_volume, mapped_volume) = sharing(c, &ns.name, "volume", pods, &volume_file);
    // The JVM's default since JDK 20 and in Debian's 17.0.15: relocate the archive.
    c.kubectl_ok(&[
        "set",
        "env",
        "-n",
        &ns.name,
        "deploy/enabled",
        "-c",
        "app",
        &format!(
            "JAVA_TOOL_OPTIONS={} -XX:ArchiveRelocationMode=1",
            template["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "JAVA_TOOL_OPTIONS")
                .and_then(|e| e["value"].as_str())
                .unwrap()
        ),
    ]);
    let (shared_mode1, mapped1) = sharing(c, &ns.name, "enabled", pods, &file_name);

    let (pr, pl) = (median(plain.0), median(plain.1));
    let (er, el) = (median(enabled.0), median(enabled.1));
    let (vr, vl) = (median(volume.0), median(volume.1));
    println!(
        "cluster_pods on {} ({} runs per variant, medians)",
        c.version, runs
    );
    println!("  pod start, scale 0->1 on {node}:");
    println!("    without archive        Ready {pr:6.2} s   start-up line {pl:6.2} s");
    println!("    archive on the node    Ready {er:6.2} s   start-up line {el:6.2} s   (with/without: Ready {:.2}, line {:.2})", er / pr, el / pl);
    println!("    image volume           Ready {vr:6.2} s   start-up line {vl:6.2} s   (with/without: Ready {:.2}, line {:.2}; vs init container: line {:.2})", vr / pr, vl / pl, vl / el);
    println!(
        "    first start, no copy   Ready {first_ready:6.2} s   start-up line {first_line:6.2} s"
    );
    println!(
        "    first image-volume start (kubelet pull)   Ready {first_volume_ready:6.2} s   start-up line {first_volume_line:6.2} s"
    );
    println!(
        "  registry: the archive layer ({layer_size} bytes) was sent {served} bytes for the first node and {served_again} for the second: {:.2} copies per cluster",
        (served + served_again) as f64 / layer_size as f64
    );
    println!(
        "  page sharing, {pods} JVM pods on {node}: sum Pss / sum Rss = {shared_mode0:.3} (ArchiveRelocationMode=0, {mapped0} processes map it), {shared_mode1:.3} with the default relocation ({mapped1} processes); ideal 1/{pods} = {:.3}",
        1.0 / pods as f64
    );
    println!(
        "  page sharing, image volume, {pods} JVM pods on {node}: sum Pss / sum Rss = {shared_volume:.3} ({mapped_volume} processes map it; the same JVM options as the first hostpath figure)"
    );
}
