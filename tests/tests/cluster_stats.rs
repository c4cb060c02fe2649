//! Page-sharing stats on the harness's real cluster: the default install keeps the fetcher out of
//! the host's PID namespace and without capabilities, and `status` says how to turn stats on;
//! `install --stats` makes `status` show, per node, the pods that map an archive and Σ Pss / Σ Rss
//! of their mappings (two JVMs on one node share pages: below 1); and only the API server's pod
//! proxy (RBAC `get pods/proxy`) and the nodes may read them, never a pod.

use classcache_core::fetcher::http::{routes, SharingStats, STATS_OFF};
use classcache_core::podtemplate::FETCHER_PORT;
use classcache_e2e::apps::trained_example_app;
use classcache_e2e::cluster::{
    archive_mappings, cluster, exclusive, idle_pod, jvm_deployment, Cluster, APP_UID,
};
use classcache_e2e::step;
use serde_json::Value;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// The fetcher DaemonSet's pod spec as the cluster stores it.
fn fetcher_pod_spec(c: &Cluster) -> Value {
    c.get_json(&["daemonset", "-n", "classcache", "classcache-fetcher"])["spec"]["template"]["spec"]
        .clone()
}

/// Puts the default (least-privilege) install back, even when the test fails half-way: the
/// other cluster tests share the install.
struct DefaultInstallAfter<'a>(&'a Cluster);

impl Drop for DefaultInstallAfter<'_> {
    fn drop(&mut self) {
        self.0.install_fetcher();
    }
}

/// The fetcher pod on `node`.
fn fetcher_on(c: &Cluster, node: &str) -> String {
    c.pods("classcache", "app.kubernetes.io/name=classcache-fetcher")
        .into_iter()
        .find(|(_, n)| n == node)
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("no fetcher pod on {node}"))
}

fn node_ip(c: &Cluster, node: &str) -> String {
    c.get_json(&["node", node])["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap()
        .to_string()
}

#[test]
fn status_shows_page_sharing_with_install_stats_and_only_the_api_server_may_read_it() {
    let c = cluster();
    let _serial = exclusive();
    let app_image = trained_example_app(c.harness);
    c.delete_stale_test_namespaces();
    let node = c.nodes[0].clone();

    step("the default install: no host PID namespace, no added capability, no stats");
    c.install_fetcher();
    let _restore = DefaultInstallAfter(c);
    // An unchanged DaemonSet keeps pods that run an earlier build under the same image tag:
    // restart them on the image this test process just built and loaded.
    c.kubectl_ok(&[
        "rollout",
        "restart",
        "-n",
        "classcache",
        "ds/classcache-fetcher",
    ]);
    c.rollout_status("classcache", "ds/classcache-fetcher", ROLLOUT);
    let spec = fetcher_pod_spec(c);
    assert!(spec.get("hostPID").is_none(), "{spec:#}");
    let security = &spec["containers"][0]["securityContext"];
    assert_eq!(
        security["capabilities"],
        serde_json::json!({"drop": ["ALL"]}),
        "{security:#}"
    );
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert!(!spec["containers"][0]["args"]
        .to_string()
        .contains("--stats"));

    step("two JVM pods of one enabled workload on one node");
    let ns = c.namespace("stats", &[]);
    let placement = format!("nodeSelector: {{kubernetes.io/hostname: {node}}}");
    c.apply(&jvm_deployment(
        "shop", &ns.name, app_image, 2, APP_UID, &placement,
    ));
    c.plugin_ok(&["enable", "deploy/shop", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let pods: Vec<String> = c
        .pods(&ns.name, "app=shop")
        .into_iter()
        .map(|(p, n)| {
            assert_eq!(n, node, "{p} runs on {n}, not {node}");
            p
        })
        .collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let pinned_ref = Cluster::pinned_reference(&c.deployment_template(&ns.name, "shop"));
    let pinned = pinned_ref.rsplit_once('@').unwrap().1.to_string();

    step("without --stats, status says how to turn them on");
    let text = c.plugin_ok(&["status", "deploy/shop", "-n", &ns.name]);
    eprintln!("{text}");
    assert!(text.contains("install --stats"), "{text}");
    let json: Value = serde_json::from_str(&c.plugin_ok(&[
        "status",
        "deploy/shop",
        "-n",
        &ns.name,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json[0]["archives"][0]["sharing"]["error"], STATS_OFF);

    step("install --stats: hostPID, CAP_SYS_PTRACE, the --stats flag");
    c.install_fetcher_with(&["--stats"]);
    let spec = fetcher_pod_spec(c);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(
        spec["containers"][0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE"])
    );

    step("status shows both pods under the node and the archive, with Σ Pss / Σ Rss < 1");
    // The fetcher learns the API server's address right after it starts; until then the pod
    // proxy's calls are refused like anyone's.
    let sharing = c.wait_for(
        "status to show page sharing of both pods",
        Duration::from_secs(120),
        || {
            let out = c.plugin(&["status", "deploy/shop", "-n", &ns.name, "-o", "json"]);
            let json: Value = serde_json::from_slice(&out.stdout).ok()?;
            let sharing = json[0]["archives"][0]["sharing"].clone();
            let on_node = sharing["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["node"] == node.as_str())?
                .clone();
            (on_node["pods"].as_array()?.len() == 2).then_some(on_node)
        },
        || {
            let out = c.plugin(&["status", "deploy/shop", "-n", &ns.name, "-o", "json"]);
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        },
    );
    eprintln!("sharing on {node}: {sharing:#}");
    let mut names: Vec<String> = sharing["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut expected: Vec<String> = pods.iter().map(|p| format!("{}/{p}", ns.name)).collect();
    expected.sort();
    assert_eq!(names, expected);
    for p in sharing["pods"].as_array().unwrap() {
        assert!(p["processes"].as_u64().unwrap() >= 1, "{p}");
        assert!(p["rss"].as_u64().unwrap() > 0, "{p}");
        assert!(
            p["pss"].as_u64().unwrap() <= p["rss"].as_u64().unwrap(),
            "{p}"
        );
    }
    let (pss, rss) = (
        sharing["pss"].as_u64().unwrap(),
        sharing["rss"].as_u64().unwrap(),
    );
    assert!(
        pss < rss,
        "two JVMs on one archive must share pages: Σ Pss {pss} Σ Rss {rss}"
    );
    assert_eq!(
        sharing["pssPerRss"].as_f64().unwrap(),
        pss as f64 / rss as f64
    );
    assert_eq!(sharing["unreadable"], 0, "CAP_SYS_PTRACE reads every JVM");
    // The same figures measured from this host (the nodes share its PID namespace): the
    // fetcher reads the same mappings (both change as the JVMs run, so compare the ratio loosely).
    let (host_pss, host_rss, processes) = archive_mappings(&pods, &c.pod_archive_path(&pinned_ref));
    eprintln!(
        "from this host: Σ Pss {host_pss} kB / Σ Rss {host_rss} kB over {processes} processes"
    );
    assert_eq!(processes, 2);
    assert!(host_pss < host_rss);
    let text = c.plugin_ok(&["status", "deploy/shop", "-n", &ns.name]);
    eprintln!("{text}");
    assert!(
        text.contains(&format!("page sharing on {node}: Σ Pss")),
        "{text}"
    );
    for p in &pods {
        assert!(text.contains(p.as_str()), "{text}");
    }

    step("who may read the stats: the API server's pod proxy for a user allowed pods/proxy");
    let fetcher = fetcher_on(c, &node);
    let raw = format!(
        "/api/v1/namespaces/classcache/pods/{fetcher}:{FETCHER_PORT}/proxy{}",
        routes::STATS
    );
    let stats: SharingStats = serde_json::from_str(&c.kubectl_ok(&["get", "--raw", &raw])).unwrap();
    assert_eq!(stats.node, node);
    assert!(
        stats
            .archives
            .iter()
            .any(|a| a.pinned == pinned && a.pods.len() == 2),
        "{stats:?}"
    );
    // A user without `get pods/proxy` in the fetcher's namespace: the API server refuses.
    let sa = format!("system:serviceaccount:{}:default", ns.name);
    let out = c.kubectl(&["get", "--raw", &raw, "--as", &sa]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Forbidden") || said.contains("forbidden"),
        "{said}"
    );

    step("an ordinary pod on the node asks the fetcher directly: 403, no pod names");
    c.apply(&idle_pod("tenant", &ns.name, app_image, &node, "{}"));
    c.kubectl_ok(&[
        "-n",
        &ns.name,
        "wait",
        "--for=condition=Ready",
        "pod/tenant",
        "--timeout=180s",
    ]);
    let ip = node_ip(c, &node);
    for host in [ip.as_str(), &node_ip(c, &c.nodes[1])] {
        let (status, body) = c.get_from_pod(&ns.name, "tenant", host, routes::STATS);
        assert_eq!(status, 403, "tenant GET {host}{}: {body}", routes::STATS);
        assert!(body.contains("may not read page-sharing stats"), "{body}");
        for p in &pods {
            assert!(!body.contains(p.as_str()), "{body}");
        }
    }
    let metrics = c.get_from_pod(&ns.name, "tenant", &ip, routes::METRICS).1;
    assert!(
        metrics.contains("classcache_fetcher_denied_total{reason=\"not_a_stats_reader\"} "),
        "{metrics}"
    );

    step("back to the default install: hostPID and the capability are gone again");
    drop(_restore);
    let spec = fetcher_pod_spec(c);
    assert!(spec.get("hostPID").is_none(), "{spec:#}");
    assert_eq!(
        spec["containers"][0]["securityContext"]["capabilities"],
        serde_json::json!({"drop": ["ALL"]})
    );
}
