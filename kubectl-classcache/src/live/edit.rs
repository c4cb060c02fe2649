//! `enable` and `disable` on live objects: read, edit (core does the edit), write back with the
//! object's resourceVersion, and read again on a conflict. It must never overwrite a concurrent change.

use anyhow::{bail, Result};
use classcache_core::podtemplate::{
    disable_object_with, enable_object, object_label, DisableOptions,
};
use serde_json::Value;

use super::cluster::{for_display, in_namespace, name_of, namespace_of, Cluster, Resource};
use crate::archive::Resolver;
use crate::cli::{ClusterArgs, DryRun, TargetArgs};
use crate::manifest::render;
use crate::plan::{plan_for, EnableSettings, Planned};
use crate::report::Report;
use crate::targets::{parse_targets, Selector};

/// How often a write is retried after a 409 Conflict (someone else changed the object).
const CONFLICT_ATTEMPTS: usize = 5;

/// `enable` (with settings) or `disable` on named objects of a cluster.
pub async fn edit(
    target: &TargetArgs,
    cluster_args: &ClusterArgs,
    settings: Option<&EnableSettings>,
    disable: DisableOptions,
    resolver: &mut Resolver,
    report: &mut Report,
) -> Result<()> {
    let targets = parse_targets(&target.targets, target.selector.is_some(), target.all)?;
    if targets.is_empty() {
        bail!("name the workloads: TYPE/NAME (deploy/my-app), TYPE NAME, TYPE -l SELECTOR, or -f FILE for manifests");
    }
    if let Some(s) = &target.selector {
        Selector::parse(s)?;
    }
    let cluster = Cluster::connect(cluster_args).await?;
    if settings.is_some() {
        read_fetcher_allows(&cluster, resolver, report).await?;
    }
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone());
    let chosen;
    let settings = match settings {
        Some(s) if s.auto_mode => {
            let (mode, why) = super::image_volume::choose_mode(&cluster, &namespace).await;
            report.note(why);
            chosen = EnableSettings { mode, ..s.clone() };
            Some(&chosen)
        }
        other => other,
    };
    let mut printed = vec![];
    for t in &targets {
        let r = match cluster.resource(&t.resource).await {
            Ok(r) => r,
            Err(e) => {
                report.fail(e);
                continue;
            }
        };
        let objects: Vec<(Option<String>, String)> = match &t.name {
            Some(name) => vec![(Some(namespace.clone()), name.clone())],
            None => {
                let ns = (!target.all_namespaces).then_some(namespace.as_str());
                match cluster.list(&r, ns, target.selector.as_deref()).await {
                    Ok(items) => {
                        if items.is_empty() {
                            report.note(format!(
                                "no {} matched{}",
                                r.plural,
                                ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
                            ));
                        }
                        items
                            .iter()
                            .map(|o| (namespace_of(o), name_of(o)))
                            .collect()
                    }
                    Err(e) => {
                        report.fail(e);
                        continue;
                    }
                }
            }
        };
        for (ns, name) in objects {
            match edit_one(
                &cluster,
                &r,
                ns.as_deref(),
                &name,
                settings,
                disable,
                resolver,
                target.dry_run,
                report,
                t.name.is_some(),
            )
            .await
            {
                Ok(Some(obj)) => printed.push(for_display(obj)),
                Ok(None) => {}
                Err(e) => report.fail(e),
            }
        }
    }
    if let Some(output) = target.output {
        print!("{}", render(&printed, output)?);
    }
    Ok(())
}

/// Tells the resolver which registries the installed fetcher pulls from (its DaemonSet's
/// `--allowed-registry` args); nothing when no fetcher is installed (image volumes need none).
/// A user who may edit workloads but not read the fetcher's namespace gets a warning, not an
/// error: the check only saves a round trip, the fetcher refuses such an archive itself.
async fn read_fetcher_allows(
    cluster: &Cluster,
    resolver: &mut Resolver,
    report: &mut Report,
) -> Result<()> {
    use classcache_core::allowed_registry::AllowedRegistries;
    use classcache_core::podtemplate::{DAEMONSET, NAMESPACE};
    let daemonsets = cluster.resource("daemonsets").await?;
    let ds = match cluster.find(&daemonsets, Some(NAMESPACE), DAEMONSET).await {
        Ok(Some(ds)) => ds,
        Ok(None) => return Ok(()),
        Err(e) => {
            report.warn(format!(
                "not checked against the fetcher's allowed registries: {e:#}"
            ));
            return Ok(());
        }
    };
    let source = format!("daemonset {NAMESPACE}/{DAEMONSET}");
    let args: Vec<String> = ds["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let allowed = AllowedRegistries::from_args(&args).map_err(|e| {
        anyhow::anyhow!(
            "{source}: {e}; reinstall it with `kubectl classcache install --allowed-registry …`"
        )
    })?;
    resolver.set_fetcher_allows(allowed, source);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn edit_one(
    cluster: &Cluster,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
    settings: Option<&EnableSettings>,
    disable: DisableOptions,
    resolver: &mut Resolver,
    dry_run: DryRun,
    report: &mut Report,
    named: bool,
) -> Result<Option<Value>> {
    let shown = in_namespace(&r.label(name), ns, r);
    let verb = if settings.is_some() {
        "enabled"
    } else {
        "disabled"
    };
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let mut obj = cluster.get(r, ns, name).await?;
        let before = obj.clone();
        match settings {
            Some(settings) => match plan_for(&obj, settings, resolver, named).await? {
                Planned::Enable { plan, notes } => {
                    if attempt == 1 {
                        notes.into_iter().for_each(|n| report.warn(n));
                    }
                    let warnings = enable_object(&mut obj, &plan)?;
                    if attempt == 1 {
                        warnings.iter().for_each(|w| report.warn(w.to_string()));
                    }
                }
                Planned::Skip(why) => {
                    report.note(format!("skipped {why}"));
                    return Ok(None);
                }
            },
            None => {
                disable_object_with(&mut obj, disable)?;
            }
        }
        if obj == before || (settings.is_some() && only_server_defaults(&obj, &before)) {
            report.note(format!("{shown} unchanged"));
            return Ok(Some(before));
        }
        if r.kind == "Pod" {
            bail!(
                "{}: a running Pod's containers cannot be changed; {verb_fix} its controller (see metadata.ownerReferences), \
                 or edit its manifest with -f and recreate it",
                object_label(&obj),
                verb_fix = if settings.is_some() { "enable" } else { "disable" }
            );
        }
        match dry_run {
            DryRun::Client => {
                report.note(format!("{shown} {verb} (dry run)"));
                return Ok(Some(obj));
            }
            DryRun::Server | DryRun::None => match cluster
                .replace(r, ns, name, &obj, dry_run == DryRun::Server)
                .await
            {
                Ok(stored) => {
                    let suffix = if dry_run == DryRun::Server {
                        " (server dry run)"
                    } else {
                        ""
                    };
                    report.note(format!("{shown} {verb}{suffix}"));
                    return Ok(Some(stored));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    report.note(format!("{shown} was changed by someone else; reading it again (attempt {attempt} of {CONFLICT_ATTEMPTS})"));
                }
                Err(e) => return Err(cluster.explain(e, "update", &shown)),
            },
        }
    }
    bail!(
        "{shown} kept changing while classcache edited it ({CONFLICT_ATTEMPTS} conflicts); nothing was overwritten: \
         wait for the other writer (a controller or a deploy) to settle, then run the command again"
    )
}

/// Whether `stored` already holds everything of `edited` and differs only by fields the API
/// server fills in (an init container's `terminationMessagePath`, a hostPath's `type`…): every
/// field of `edited` is in `stored` with the same value, and lists have the same length.
/// Enabling an object a second time must find nothing to do, although the edit, made without
/// the server's defaults, is not byte-equal to what the server stored.
fn only_server_defaults(edited: &Value, stored: &Value) -> bool {
    match (edited, stored) {
        (Value::Object(e), Value::Object(s)) => e
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|sv| only_server_defaults(v, sv))),
        (Value::Array(e), Value::Array(s)) => {
            e.len() == s.len() && e.iter().zip(s).all(|(a, b)| only_server_defaults(a, b))
        }
        (e, s) => e == s,
    }
}

#[cfg(test)]
mod tests {
    use super::only_server_defaults;
    use serde_json::json;

    #[test]
    fn server_defaults_are_not_a_change() {
        let edited = json!({"initContainers": [{"name": "classcache-init", "image": "f:1"}],
            "volumes": [{"name": "classcache", "hostPath": {"path": "/var/lib/classcache"}}]});
        let stored = json!({"initContainers": [{"name": "classcache-init", "image": "f:1",
                "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}],
            "volumes": [{"name": "classcache", "hostPath": {"path": "/var/lib/classcache", "type": ""}}]});
        assert!(only_server_defaults(&edited, &stored));
        assert!(
            !only_server_defaults(&stored, &edited),
            "fields to remove are a change"
        );
        let other_image = json!({"initContainers": [{"name": "classcache-init", "image": "f:2"}],
            "volumes": [{"name": "classcache", "hostPath": {"path": "/var/lib/classcache"}}]});
        assert!(!only_server_defaults(&other_image, &stored));
        let emptydir = json!({"initContainers": [{"name": "classcache-init", "image": "f:1"}],
            "volumes": [{"name": "classcache", "emptyDir": {}}]});
        assert!(
            !only_server_defaults(&emptydir, &stored),
            "another delivery mode"
        );
        let fewer = json!({"initContainers": [], "volumes": [{"name": "classcache", "hostPath": {"path": "/var/lib/classcache"}}]});
        assert!(
            !only_server_defaults(&fewer, &stored),
            "a removed list entry"
        );
    }
}
