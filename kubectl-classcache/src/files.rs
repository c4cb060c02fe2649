//! File mode: `enable|disable -f FILE|DIR|-` edits manifests and prints every document to stdout.
//! It must not contact a cluster, and prints nothing to stdout when any object fails.

use anyhow::{anyhow, bail, Result};
use classcache_core::podtemplate::{
    disable_object_with, enable_object, object_label, pod_template, DisableOptions,
};
use serde_json::Value;

use crate::archive::Resolver;
use crate::cli::{Output, TargetArgs};
use crate::manifest::{objects_mut, read_sources, render};
use crate::plan::{plan_for, EnableSettings, Planned};
use crate::report::Report;
use crate::targets::{known_kind, parse_targets, Selector, Target};

/// Whether `obj` is one of `targets` (all objects when none are given); `Some(true)` when a
/// target names it by name.
fn selected(obj: &Value, targets: &[Target], selector: Option<&Selector>) -> Option<bool> {
    if selector.is_some_and(|s| !s.matches(obj)) {
        return None;
    }
    if targets.is_empty() {
        return Some(false);
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    targets
        .iter()
        .filter(|t| match known_kind(&t.resource) {
            Some(k) => k.kind == kind,
            None => t.resource.split('.').next().is_some_and(|r| {
                r.eq_ignore_ascii_case(kind) || r.eq_ignore_ascii_case(&format!("{kind}s"))
            }),
        })
        .find(|t| t.name.is_none() || t.name.as_deref() == name)
        .map(|t| t.name.is_some())
}

enum Edit<'a> {
    Enable(&'a EnableSettings),
    Disable(DisableOptions),
}

/// Runs `enable` (with settings) or `disable` over the files; the documents go to stdout.
pub async fn run(
    target: &TargetArgs,
    settings: Option<&EnableSettings>,
    disable: DisableOptions,
    resolver: &mut Resolver,
    report: &mut Report,
) -> Result<()> {
    let edit = match settings {
        Some(s) => Edit::Enable(s),
        None => Edit::Disable(disable),
    };
    let targets = parse_targets(&target.targets, target.selector.is_some(), true)?;
    let selector = target
        .selector
        .as_deref()
        .map(Selector::parse)
        .transpose()?;
    let mut sources = read_sources(&target.files)?;
    let mut matched_names: Vec<(String, String)> = vec![];
    let mut changed = 0;
    for source in &mut sources {
        for obj in objects_mut(&mut source.documents) {
            let Some(named) = selected(obj, &targets, selector.as_ref()) else {
                continue;
            };
            let label = object_label(obj);
            if named {
                let kind = obj["kind"].as_str().unwrap_or_default().to_string();
                matched_names.push((
                    kind,
                    obj.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
            if pod_template(obj).is_none() && !named {
                continue;
            }
            let result = match &edit {
                Edit::Enable(settings) => match plan_for(obj, settings, resolver, named).await {
                    Ok(Planned::Enable { plan, notes }) => {
                        notes.into_iter().for_each(|n| report.warn(n));
                        enable_object(obj, &plan)
                            .map(|warnings| {
                                warnings.iter().for_each(|w| report.warn(w.to_string()));
                                let archives: Vec<String> = plan
                                    .containers
                                    .iter()
                                    .map(|c| format!("{}={}", c.container, c.archive))
                                    .collect();
                                format!("enabled ({})", archives.join(", "))
                            })
                            .map_err(anyhow::Error::from)
                    }
                    Ok(Planned::Skip(why)) => {
                        report.note(format!("skipped {why}"));
                        continue;
                    }
                    Err(e) => Err(e),
                },
                Edit::Disable(options) => match disable_object_with(obj, *options) {
                    Ok(true) => Ok("disabled".to_string()),
                    Ok(false) => Ok("not enabled, unchanged".to_string()),
                    Err(e) => Err(e.into()),
                },
            };
            match result {
                Ok(what) => {
                    changed += 1;
                    report.note(format!("{label} ({}): {what}", source.name));
                }
                Err(e) => report.fail(anyhow!("{} ({}): {e:#}", label, source.name)),
            }
        }
    }
    for t in targets.iter().filter(|t| t.name.is_some()) {
        let kind = known_kind(&t.resource)
            .map(|k| k.kind.to_string())
            .unwrap_or_else(|| t.resource.clone());
        if !matched_names
            .iter()
            .any(|(k, n)| k.eq_ignore_ascii_case(&kind) && Some(n) == t.name.as_ref())
        {
            report.fail(anyhow!(
                "{}/{} is not in {}; check the name, or drop it to edit every workload in the files",
                t.resource,
                t.name.as_deref().unwrap_or_default(),
                target.files.join(", ")
            ));
        }
    }
    if report.failed() {
        bail!("nothing was printed: fix the errors above, then run again");
    }
    if changed == 0 && targets.is_empty() {
        report.warn(format!(
            "no workload in {} was changed",
            target.files.join(", ")
        ));
    }
    let docs: Vec<Value> = sources.into_iter().flat_map(|s| s.documents).collect();
    print!("{}", render(&docs, target.output.unwrap_or(Output::Yaml))?);
    Ok(())
}
