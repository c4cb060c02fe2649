//! `status`: the enabled workloads, their archives, the nodes whose fetcher holds them, and the
//! pods that run with them. It only reads; it must not change anything in the cluster.

use anyhow::{anyhow, Result};
use classcache_core::fetcher::http::{routes, SharingStats, STATS_OFF};
use classcache_core::podtemplate::{
    self as names, delivery_mode, enabled_archives, fetcher_archive_path, object_label,
    pod_template, DeliveryMode,
};
use serde_json::{json, Value};

use super::cluster::{name_of, namespace_of, Cluster, Resource};
use crate::archive::Resolver;
use crate::cli::{Output, StatusArgs};
use crate::report::Report;
use crate::targets::{known_kind, parse_targets, KnownKind, WORKLOADS};

/// The workload kinds `status` and `uninstall` look through (Pods and ReplicaSets follow their owners).
fn owner_kinds() -> impl Iterator<Item = &'static KnownKind> {
    WORKLOADS
        .iter()
        .filter(|k| !matches!(k.kind, "Pod" | "ReplicaSet"))
}

/// Every enabled workload in `ns` (or everywhere), with its resource.
pub(super) async fn enabled_workloads(
    cluster: &Cluster,
    ns: Option<&str>,
    report: &mut Report,
) -> Result<Vec<(Resource, Value)>> {
    let mut found = vec![];
    for k in owner_kinds() {
        let r: Resource = k.into();
        match cluster.list(&r, ns, None).await {
            Ok(items) => found.extend(
                items
                    .into_iter()
                    // A malformed record counts as enabled: `status` reports it and
                    // `uninstall` must not take the fetcher from under it.
                    .filter(|o| {
                        pod_template(o).is_some_and(|t| !matches!(enabled_archives(t), Ok(None)))
                    })
                    .map(|o| (r.clone(), o)),
            ),
            // A cluster without Argo Rollouts has no such resource: nothing to find there.
            Err(e) if k.kind == "Rollout" => tracing::debug!("no rollouts: {e:#}"),
            Err(e) => report.fail(e),
        }
    }
    Ok(found)
}

/// `status`: each enabled workload's archives, where they are present, and the pods using them.
pub async fn status(args: &StatusArgs, report: &mut Report) -> Result<()> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone());
    let ns = (!args.all_namespaces).then_some(namespace.as_str());
    let workloads: Vec<(Resource, Value)> = if args.targets.is_empty() {
        enabled_workloads(&cluster, ns, report).await?
    } else {
        let mut named = vec![];
        for t in parse_targets(&args.targets, false, false)? {
            let r = cluster.resource(&t.resource).await?;
            let obj = cluster
                .get(&r, Some(&namespace), t.name.as_deref().unwrap_or_default())
                .await?;
            named.push((r, obj));
        }
        named
    };
    let fetchers = fetcher_pods(&cluster, &args.fetcher_namespace).await;
    // Asked once per fetcher, whatever the number of workloads.
    let stats = match &fetchers {
        Ok(list) if !workloads.is_empty() => {
            fetcher_stats(&cluster, &args.fetcher_namespace, list).await
        }
        _ => vec![],
    };
    let mut resolver = Resolver::new(&args.registry);
    let mut rows = vec![];
    for (r, obj) in &workloads {
        let template = pod_template(obj)
            .ok_or_else(|| anyhow!("{} has no pod template", object_label(obj)))?;
        let archives = match enabled_archives(template) {
            Ok(archives) => archives.unwrap_or_default(),
            Err(e) => {
                let shown = e
                    .to_string()
                    .replacen("pod template", &object_label(obj), 1);
                report.warn(shown.clone());
                rows.push(json!({
                    "workload": r.label(&name_of(obj)),
                    "namespace": namespace_of(obj),
                    "error": shown,
                }));
                continue;
            }
        };
        let raw_annotation = template
            .pointer("/metadata/annotations/classcache.io~1archive")
            .cloned();
        let workload_ns = namespace_of(obj);
        let pods = cluster
            .list(
                &Resource::from(known_kind("pod").expect("pods are known")),
                workload_ns.as_deref(),
                None,
            )
            .await?;
        let with_archive: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                raw_annotation.is_some()
                    && p.pointer("/metadata/annotations/classcache.io~1archive")
                        == raw_annotation.as_ref()
            })
            .collect();
        let mut archive_rows = vec![];
        let mut seen = vec![];
        for (container, reference) in &archives {
            if seen.contains(reference) {
                continue;
            }
            seen.push(reference.clone());
            let digest = reference
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let details = match resolver.explicit(reference).await {
                Ok(a) => a
                    .configs
                    .iter()
                    .map(|c| json!({"platform": c.platform.to_string(), "kind": c.kind.as_str(), "jvm": c.jvm.build, "key": c.key.as_str()}))
                    .collect(),
                Err(e) => vec![json!({"error": format!("{e:#}")})],
            };
            let nodes = match (&fetchers, delivery_mode(template)) {
                // The kubelet pulls an image volume itself; no fetcher holds it.
                (_, Some(DeliveryMode::ImageVolume)) => json!({"kubelet": true}),
                (Ok(list), _) => {
                    archive_nodes(&cluster, &args.fetcher_namespace, list, &digest).await
                }
                (Err(e), _) => json!({"error": e}),
            };
            let sharing = archive_sharing(&stats, &digest);
            archive_rows.push(json!({"container": container, "archive": reference, "platforms": details, "nodes": nodes, "sharing": sharing}));
        }
        rows.push(json!({
            "workload": r.label(&name_of(obj)),
            "namespace": workload_ns,
            "archives": archive_rows,
            "pods": with_archive.iter().map(|p| json!({"name": name_of(p), "node": p.pointer("/spec/nodeName")})).collect::<Vec<_>>(),
        }));
    }
    match args.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&rows)?),
        Some(Output::Yaml) => print!("{}", serde_saphyr::to_string(&rows)?),
        None => print_status(&rows, workloads.is_empty()),
    }
    Ok(())
}

fn print_status(rows: &[Value], none: bool) {
    if none {
        println!("no enabled workloads (enable one with `kubectl classcache enable deploy/NAME`)");
        return;
    }
    for row in rows {
        println!(
            "{} (namespace {})",
            row["workload"].as_str().unwrap_or_default(),
            row["namespace"].as_str().unwrap_or("-")
        );
        if let Some(e) = row["error"].as_str() {
            println!("  malformed classcache record: {e}");
            continue;
        }
        for a in row["archives"].as_array().into_iter().flatten() {
            println!(
                "  container {}: {}",
                a["container"].as_str().unwrap_or_default(),
                a["archive"].as_str().unwrap_or_default()
            );
            for p in a["platforms"].as_array().into_iter().flatten() {
                match p.get("error") {
                    Some(e) => println!(
                        "    archive details unavailable: {}",
                        e.as_str().unwrap_or_default()
                    ),
                    None => println!(
                        "    {} {} on JVM {} key {}",
                        p["platform"].as_str().unwrap_or_default(),
                        p["kind"].as_str().unwrap_or_default(),
                        p["jvm"].as_str().unwrap_or_default(),
                        p["key"].as_str().unwrap_or_default()
                    ),
                }
            }
            match a["nodes"].get("error") {
                _ if a["nodes"]["kubelet"] == true => {
                    println!("    delivered as an image volume: each node's kubelet pulls it with the pod")
                }
                Some(e) => println!("    nodes: unknown ({})", e.as_str().unwrap_or_default()),
                None => println!(
                    "    present on {} of {} nodes{}",
                    a["nodes"]["present"].as_array().map(Vec::len).unwrap_or(0),
                    a["nodes"]["fetchers"].as_u64().unwrap_or(0),
                    a["nodes"]["unknown"]
                        .as_array()
                        .filter(|u| !u.is_empty())
                        .map(|u| format!(" ({} not answering)", u.len()))
                        .unwrap_or_default()
                ),
            }
        }
        let pods = row["pods"].as_array().cloned().unwrap_or_default();
        if !pods.is_empty() {
            // Sharing only means something once pods run with the archive.
            for a in row["archives"].as_array().into_iter().flatten() {
                print_sharing(a.get("sharing").unwrap_or(&Value::Null));
            }
        }
        let listed: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "{} on {}",
                    p["name"].as_str().unwrap_or_default(),
                    p["node"].as_str().unwrap_or("(unscheduled)")
                )
            })
            .collect();
        println!(
            "  pods with the archive: {}{}",
            pods.len(),
            if listed.is_empty() {
                String::new()
            } else {
                format!(": {}", listed.join(", "))
            }
        );
    }
}

/// Each fetcher's page-sharing stats (by node), through the API server's pod proxy: the stats, or
/// why there are none (`STATS_OFF` when the fetcher runs without `--stats`).
async fn fetcher_stats(
    cluster: &Cluster,
    fetcher_ns: &str,
    fetchers: &[(String, String)],
) -> Vec<(String, Result<SharingStats, String>)> {
    let mut out = vec![];
    for (pod, node) in fetchers {
        let answer = cluster
            .proxy_get(fetcher_ns, pod, names::FETCHER_PORT, routes::STATS)
            .await;
        let stats = match answer {
            Ok(text) => serde_json::from_str::<SharingStats>(&text)
                .map_err(|e| format!("fetcher {pod} answered stats that are not JSON: {e}")),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(STATS_OFF.to_string()),
            Err(e) => Err(format!("fetcher {pod}: {e}")),
        };
        out.push((node.clone(), stats));
    }
    out
}

/// One archive's sharing per node (nodes where a pod maps it), or why it is unknown.
fn archive_sharing(stats: &[(String, Result<SharingStats, String>)], pinned: &str) -> Value {
    if stats.is_empty() {
        return Value::Null;
    }
    // `install` sets --stats on every fetcher or none: one that has it off means all do.
    if stats
        .iter()
        .any(|(_, s)| s.as_ref().err().is_some_and(|e| e == STATS_OFF))
    {
        return json!({"error": STATS_OFF});
    }
    let unknown: Vec<Value> = stats
        .iter()
        .filter_map(|(node, s)| Some(json!({"node": node, "error": s.as_ref().err()?})))
        .collect();
    let nodes: Vec<Value> = stats
        .iter()
        .filter_map(|(node, s)| {
            let a = s
                .as_ref()
                .ok()?
                .archives
                .iter()
                .find(|a| a.pinned == pinned)?;
            (!a.pods.is_empty()).then(|| {
                json!({
                    "node": node,
                    "pods": a.pods,
                    "pss": a.pss,
                    "rss": a.rss,
                    "pssPerRss": a.pss_per_rss(),
                    "unreadable": s.as_ref().map(|s| s.unreadable).unwrap_or(0),
                })
            })
        })
        .collect();
    json!({"nodes": nodes, "unknown": unknown})
}

fn print_sharing(sharing: &Value) {
    if let Some(e) = sharing["error"].as_str() {
        println!("    page sharing: unknown ({e})");
        return;
    }
    for n in sharing["nodes"].as_array().into_iter().flatten() {
        let pods: Vec<String> = n["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["pod"].as_str().unwrap_or_default().to_string())
            .collect();
        let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0);
        println!(
            "    page sharing on {}: Σ Pss {:.1} MiB / Σ Rss {:.1} MiB = {:.0}% ({} pod(s) map it: {}){}",
            n["node"].as_str().unwrap_or_default(),
            mib(&n["pss"]),
            mib(&n["rss"]),
            n["pssPerRss"].as_f64().unwrap_or(1.0) * 100.0,
            pods.len(),
            pods.join(", "),
            match n["unreadable"].as_u64().unwrap_or(0) {
                0 => String::new(),
                u => format!("; {u} process(es) unreadable, not counted"),
            }
        );
    }
    for u in sharing["unknown"].as_array().into_iter().flatten() {
        println!(
            "    page sharing on {}: unknown ({})",
            u["node"].as_str().unwrap_or_default(),
            u["error"].as_str().unwrap_or_default()
        );
    }
}

/// The fetcher pods (name, node), or why they cannot be listed.
async fn fetcher_pods(
    cluster: &Cluster,
    fetcher_ns: &str,
) -> Result<Vec<(String, String)>, String> {
    let pods = Resource::from(known_kind("pod").expect("pods are known"));
    let selector = format!(
        "{}={}",
        names::FETCHER_POD_LABEL.0,
        names::FETCHER_POD_LABEL.1
    );
    match cluster.list(&pods, Some(fetcher_ns), Some(&selector)).await {
        Ok(list) if list.is_empty() => Err(format!(
            "no fetcher pods in namespace {fetcher_ns}; install it with `kubectl classcache install` (or pass --fetcher-namespace)"
        )),
        Ok(list) => Ok(list
            .iter()
            .map(|p| (name_of(p), p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string()))
            .collect()),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Asks every fetcher, through the API server's pod proxy, whether it has published `digest`.
async fn archive_nodes(
    cluster: &Cluster,
    fetcher_ns: &str,
    fetchers: &[(String, String)],
    digest: &str,
) -> Value {
    let mut present = vec![];
    let mut unknown = vec![];
    for (pod, node) in fetchers {
        match cluster
            .proxy_get(
                fetcher_ns,
                pod,
                names::FETCHER_PORT,
                &fetcher_archive_path(digest),
            )
            .await
        {
            Ok(_) => present.push(node.clone()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(_) => unknown.push(node.clone()),
        }
    }
    json!({"fetchers": fetchers.len(), "present": present, "unknown": unknown})
}
