//! What the user named: `TYPE NAME`, `TYPE/NAME`, a type with `-l`/`--all`, and label selectors,
//! with kubectl's resource aliases. It parses and matches; it must not fetch anything.

use anyhow::{bail, Result};
use serde_json::Value;

/// A resource type the plugin knows without asking the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    aliases: &'static [&'static str],
}

const fn known(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    aliases: &'static [&'static str],
) -> KnownKind {
    KnownKind {
        group,
        version,
        kind,
        plural,
        namespaced: true,
        aliases,
    }
}

/// The workload kinds with pod templates (plus Pod), and kubectl's short names for them.
pub const WORKLOADS: [KnownKind; 8] = [
    known(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["deploy", "deployment"],
    ),
    known(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["sts", "statefulset"],
    ),
    known(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        &["ds", "daemonset"],
    ),
    known(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        &["rs", "replicaset"],
    ),
    known("batch", "v1", "Job", "jobs", &["job"]),
    known("batch", "v1", "CronJob", "cronjobs", &["cj", "cronjob"]),
    known("", "v1", "Pod", "pods", &["po", "pod"]),
    known(
        "argoproj.io",
        "v1alpha1",
        "Rollout",
        "rollouts",
        &["ro", "rollout"],
    ),
];

impl KnownKind {
    fn matches(&self, word: &str) -> bool {
        let word = word.to_lowercase();
        let (name, group) = match word.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (word.clone(), None),
        };
        let name_ok = name == self.plural
            || name == self.kind.to_lowercase()
            || self.aliases.contains(&name.as_str());
        name_ok
            && group
                .is_none_or(|g| g == self.group || g == format!("{}.{}", self.version, self.group))
    }
}

/// The known kind `word` names (`deploy`, `deployments`, `Deployment`, `deployment.apps`).
pub fn known_kind(word: &str) -> Option<&'static KnownKind> {
    WORKLOADS.iter().find(|k| k.matches(word))
}

/// One named thing: a type, and a name unless the whole type (filtered by selector) is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: String,
    pub name: Option<String>,
}

/// Parses positional arguments the way kubectl does.
pub fn parse_targets(args: &[String], selector: bool, all: bool) -> Result<Vec<Target>> {
    let Some(first) = args.first() else {
        return Ok(vec![]);
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|a| match a.split_once('/') {
                Some((r, n)) if !r.is_empty() && !n.is_empty() => Ok(Target { resource: r.into(), name: Some(n.into()) }),
                _ => bail!("{a:?}: when one argument is TYPE/NAME, all must be (e.g. deploy/my-app statefulset/db)"),
            })
            .collect();
    }
    let names = &args[1..];
    if names.is_empty() {
        if !selector && !all {
            bail!("{first:?} names a type but no object: pass TYPE NAME, TYPE/NAME, or TYPE with -l SELECTOR or --all");
        }
        return Ok(vec![Target {
            resource: first.clone(),
            name: None,
        }]);
    }
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        bail!("{bad:?}: mix of TYPE NAME and TYPE/NAME; use one form");
    }
    Ok(names
        .iter()
        .map(|n| Target {
            resource: first.clone(),
            name: Some(n.clone()),
        })
        .collect())
}

/// An equality-based label selector (`a=b,c!=d,e,!f`), as kubectl -l takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<(String, Term)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String),
    NotEquals(String),
    Exists,
    Absent,
}

impl Selector {
    pub fn parse(raw: &str) -> Result<Self> {
        let mut terms = vec![];
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
                bail!("-l {raw:?}: set-based selectors (in, notin) are not supported; use key=value, key!=value, key or !key");
            }
            let term = if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_string(), Term::NotEquals(v.trim().to_string()))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.trim().to_string(), Term::Equals(v.trim().to_string()))
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_string(), Term::Absent)
            } else {
                (part.to_string(), Term::Exists)
            };
            if term.0.is_empty() {
                bail!("-l {raw:?}: {part:?} has no label key");
            }
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.terms.iter().all(|(k, t)| match t {
            Term::Equals(v) => label(k) == Some(v.as_str()),
            Term::NotEquals(v) => label(k) != Some(v.as_str()),
            Term::Exists => label(k).is_some(),
            Term::Absent => label(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_forms_parse() {
        let t = parse_targets(&["deploy/a".into(), "sts/b".into()], false, false).unwrap();
        assert_eq!(
            t[1],
            Target {
                resource: "sts".into(),
                name: Some("b".into())
            }
        );
        let t =
            parse_targets(&["deployment".into(), "a".into(), "b".into()], false, false).unwrap();
        assert_eq!(t.len(), 2);
        assert!(parse_targets(&["deployment".into()], false, false).is_err());
        assert_eq!(
            parse_targets(&["deployment".into()], true, false).unwrap()[0].name,
            None
        );
        assert!(parse_targets(&["deploy/a".into(), "b".into()], false, false).is_err());
        for word in ["deploy", "deployments", "Deployment", "deployment.apps"] {
            assert_eq!(known_kind(word).unwrap().kind, "Deployment", "{word}");
        }
        assert_eq!(known_kind("cj").unwrap().kind, "CronJob");
        assert_eq!(known_kind("rollouts.argoproj.io").unwrap().kind, "Rollout");
        assert!(known_kind("deployment.batch").is_none());
    }

    #[test]
    fn selectors_match_like_kubectl() {
        let obj = json!({"metadata": {"labels": {"app": "shop", "tier": "web"}}});
        assert!(Selector::parse("app=shop,tier!=db,tier")
            .unwrap()
            .matches(&obj));
        assert!(!Selector::parse("app==cart").unwrap().matches(&obj));
        assert!(!Selector::parse("!tier").unwrap().matches(&obj));
        assert!(Selector::parse("app in (a,b)").is_err());
    }
}
