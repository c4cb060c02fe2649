//! `install` and `uninstall` of the node fetcher: server-side apply of the rendered objects, and
//! their deletion with the wait for the namespace. It must not render templates (crate::install does).

use anyhow::{bail, Context, Result};
use classcache_core::podtemplate as names;
use serde_json::{json, Value};

use super::cluster::{
    for_display, in_namespace, name_of, namespace_of, namespaces, Cluster, Resource,
};
use super::status::enabled_workloads;
use crate::cli::{DryRun, InstallArgs, UninstallArgs};
use crate::manifest::render;
use crate::report::Report;

/// Where each object `install` renders lives.
fn install_resource(obj: &Value) -> Result<Resource> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "Secret" => ("", "v1", "secrets", true),
        "Service" => ("", "v1", "services", true),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
        "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
        "ClusterRoleBinding" => (
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            false,
        ),
        "DaemonSet" => ("apps", "v1", "daemonsets", true),
        other => bail!(
            "template object of kind {other} has no known API resource; add it to install_resource"
        ),
    };
    Ok(Resource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
    })
}

/// `install`: server-side apply of every rendered object, field manager `classcache`.
pub async fn install(objects: &[Value], args: &InstallArgs, report: &mut Report) -> Result<()> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let dry_run = args.dry_run == DryRun::Server;
    let mut applied = vec![];
    let mut missing_namespaces: Vec<String> = vec![];
    for obj in objects {
        let r = install_resource(obj)?;
        let ns = namespace_of(obj);
        let name = name_of(obj);
        // A server dry run stores nothing, so the namespace `install` would create first is not
        // there for the objects in it: the server can only answer "namespace not found".
        if let (true, true, Some(ns)) = (dry_run, r.namespaced, ns.as_deref()) {
            let missing = missing_namespaces.iter().any(|m| m == ns)
                || cluster.find(&namespaces(), None, ns).await?.is_none();
            if missing {
                if !missing_namespaces.iter().any(|m| m == ns) {
                    missing_namespaces.push(ns.to_string());
                }
                report.note(format!(
                    "{} not checked by the server: namespace/{ns} does not exist yet and a dry run does not create it \
                     (install creates it first)",
                    r.label(&name)
                ));
                applied.push(obj.clone());
                continue;
            }
        }
        let stored = cluster
            .apply(&r, ns.as_deref(), &name, obj, dry_run)
            .await?;
        report.note(format!(
            "{} applied{}",
            r.label(&name),
            if dry_run { " (server dry run)" } else { "" }
        ));
        applied.push(for_display(stored));
    }
    if let Some(output) = args.output {
        print!("{}", render(&applied, output)?);
    }
    Ok(())
}

/// `uninstall`: deletes what `install` created, in reverse order; refuses while workloads are enabled.
pub async fn uninstall(args: &UninstallArgs, report: &mut Report) -> Result<()> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let enabled = enabled_workloads(&cluster, None, report).await?;
    if !enabled.is_empty() {
        let list: Vec<String> = enabled
            .iter()
            .map(|(r, o)| in_namespace(&r.label(&name_of(o)), namespace_of(o).as_deref(), r))
            .collect();
        if !args.force {
            bail!(
                "{} workload(s) still use classcache: {}; run `kubectl classcache disable` on them first, or pass --force \
                 (their pods would then start without archives once the init container times out)",
                list.len(),
                list.join(", ")
            );
        }
        report.warn(format!(
            "uninstalling while still enabled (--force): {}",
            list.join(", ")
        ));
    }
    let render_args = crate::cli::RenderArgs {
        image: names::DEFAULT_FETCHER_IMAGE.into(),
        namespace: args.namespace.clone(),
        store_dir: classcache_core::paths::NODE_STORE_DIR.into(),
        max_size: "1Gi".into(),
        registry_config: None,
        image_pull_secret: None,
        allowed_registries: vec![],
        signatures: Default::default(),
        // What `install --stats` adds is deleted too, whether or not install created it.
        stats: true,
    };
    let mut objects = crate::install::render(&render_args)
        .context("rendering the templates to know what to delete")?;
    // The optional Secret is deleted too, whether or not install created it.
    objects.insert(
        1,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names::REGISTRY_SECRET, "namespace": args.namespace}}),
    );
    for obj in objects.iter().rev() {
        let r = install_resource(obj)?;
        let ns = namespace_of(obj);
        let name = name_of(obj);
        if args.dry_run == DryRun::Client {
            report.note(format!("{} deleted (dry run)", r.label(&name)));
            continue;
        }
        let gone = cluster
            .delete(&r, ns.as_deref(), &name, args.dry_run == DryRun::Server)
            .await?;
        report.note(format!(
            "{} {}",
            r.label(&name),
            if gone { "deleted" } else { "not found" }
        ));
    }
    if args.dry_run == DryRun::None && args.wait {
        wait_deleted(&cluster, &args.namespace, args.timeout, report).await?;
    }
    Ok(())
}

/// Waits, as `kubectl delete` does, until the namespace is gone, so that an `install` right
/// after `uninstall` does not meet a namespace that is still terminating.
async fn wait_deleted(
    cluster: &Cluster,
    namespace: &str,
    timeout: std::time::Duration,
    report: &mut Report,
) -> Result<()> {
    let namespaces = namespaces();
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        match cluster.find(&namespaces, None, namespace).await? {
            None => return Ok(()),
            Some(_) if start.elapsed() >= timeout => bail!(
                "namespace/{namespace} is still being deleted after {}; its pods may be stuck terminating \
                 (kubectl get pods -n {namespace}); wait longer with --timeout, or skip waiting with --wait=false",
                humantime::format_duration(timeout)
            ),
            Some(_) => {
                if !told {
                    report.note(format!("waiting for namespace/{namespace} to be deleted"));
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}
