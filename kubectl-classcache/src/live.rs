//! Live mode: reads and writes workloads through the Kubernetes API (kube), with optimistic
//! concurrency, dry runs and the `classcache` field manager. It must not edit pod templates
//! itself (core does) nor overwrite a concurrent change.

use anyhow::{anyhow, bail, Context, Result};
use classcache_core::podtemplate::{
    self as names, disable_object, enable_object, enabled_archives, fetcher_archive_path,
    object_label, pod_template, FIELD_MANAGER,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::{DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::{Client, Config};
use serde_json::{json, Value};

use crate::archive::Resolver;
use crate::cli::{ClusterArgs, DryRun, InstallArgs, Output, StatusArgs, TargetArgs, UninstallArgs};
use crate::manifest::render;
use crate::plan::{plan_for, EnableSettings, Planned};
use crate::report::Report;
use crate::targets::{known_kind, parse_targets, KnownKind, Selector, WORKLOADS};

/// How often a write is retried after a 409 Conflict (someone else changed the object).
const CONFLICT_ATTEMPTS: usize = 5;

/// An API resource: where its objects live on the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl From<&KnownKind> for Resource {
    fn from(k: &KnownKind) -> Self {
        Resource {
            group: k.group.into(),
            version: k.version.into(),
            kind: k.kind.into(),
            plural: k.plural.into(),
            namespaced: k.namespaced,
        }
    }
}

impl Resource {
    fn collection(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }

    /// `deployment.apps/name`, as kubectl prints it.
    fn label(&self, name: &str) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}.{}/{name}", self.group)
        }
    }
}

/// A connected cluster.
pub struct Cluster {
    client: Client,
    server: String,
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(args: &ClusterArgs) -> Result<Self> {
        let options = KubeConfigOptions {
            context: args.context.clone(),
            ..Default::default()
        };
        let config = match &args.kubeconfig {
            Some(paths) => {
                let mut merged: Option<Kubeconfig> = None;
                for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
                    let next = Kubeconfig::read_from(&path).map_err(|e| {
                        anyhow!(
                            "cannot read kubeconfig {}: {e}; pass --kubeconfig FILE",
                            path.display()
                        )
                    })?;
                    merged = Some(match merged {
                        Some(m) => m.merge(next)?,
                        None => next,
                    });
                }
                let kubeconfig = merged.ok_or_else(|| {
                    anyhow!("--kubeconfig / KUBECONFIG is empty; pass --kubeconfig FILE")
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| {
            anyhow!(
                "cannot load the kubeconfig{}: {e}; pass --kubeconfig FILE or --context NAME",
                context_note(args)
            )
        })?;
        let server = config.cluster_url.to_string();
        let namespace = config.default_namespace.clone();
        let client = Client::try_from(config)
            .with_context(|| format!("cannot set up a client for {server}"))?;
        Ok(Cluster {
            client,
            server,
            namespace,
        })
    }

    /// Turns a kube error into one that names the object and the fix.
    fn explain(&self, e: kube::Error, verb: &str, what: &str) -> anyhow::Error {
        match e {
            kube::Error::Api(status) => match status.code {
                404 => anyhow!("{what} not found ({}); check the name and namespace (-n, or -A to search every namespace)", status.message),
                403 if status.message.contains("because it is being terminated") => anyhow!(
                    "{what}: its namespace is still being deleted ({}); wait until `kubectl get namespace` no longer lists it, then run the command again",
                    status.message
                ),
                403 => anyhow!(
                    "{what}: the cluster forbids {verb} ({}); ask for RBAC permission to {verb} it, or use -f to edit manifests instead",
                    status.message
                ),
                401 => anyhow!("{what}: the cluster at {} refused the credentials ({}); log in again or pick another --context", self.server, status.message),
                code => anyhow!("{what}: the API server answered {code} to {verb}: {}", status.message),
            },
            other => anyhow!(
                "cannot reach the cluster at {} ({other}); check that it runs and that --kubeconfig / --context point at it",
                self.server
            ),
        }
    }

    async fn call(&self, request: http::Request<Vec<u8>>, verb: &str, what: &str) -> Result<Value> {
        self.client
            .request::<Value>(request)
            .await
            .map_err(|e| self.explain(e, verb, what))
    }

    pub async fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value> {
        let req = Request::new(r.collection(ns)).get(name, &GetParams::default())?;
        self.call(req, "get", &in_namespace(&r.label(name), ns, r))
            .await
    }

    pub async fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>> {
        let mut lp = ListParams::default();
        if let Some(s) = selector {
            lp = lp.labels(s);
        }
        let req = Request::new(r.collection(ns)).list(&lp)?;
        let what = format!(
            "{} {}",
            r.plural,
            ns.map(|n| format!("in namespace {n}"))
                .unwrap_or_else(|| "in every namespace".into())
        );
        let list = self.call(req, "list", &what).await?;
        let kind = r.kind.clone();
        let api_version = if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        };
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut item| {
                // List items come without their type; put it back so labels and edits work.
                if let Some(m) = item.as_object_mut() {
                    m.entry("apiVersion").or_insert_with(|| json!(api_version));
                    m.entry("kind").or_insert_with(|| json!(kind));
                }
                item
            })
            .collect())
    }

    /// PUT with the object's resourceVersion: the server answers 409 if it changed meanwhile.
    async fn replace(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        dry_run: bool,
    ) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = Request::new(r.collection(ns))
            .replace(name, &pp, body)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<Value>(req).await
    }

    async fn apply(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        dry_run: bool,
    ) -> Result<Value> {
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        let req = Request::new(r.collection(ns)).patch(name, &pp, &Patch::Apply(obj))?;
        self.call(req, "apply", &in_namespace(&r.label(name), ns, r))
            .await
    }

    /// Deletes; `Ok(false)` when it was not there.
    async fn delete(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<bool> {
        let dp = DeleteParams {
            dry_run,
            ..Default::default()
        };
        let req = Request::new(r.collection(ns)).delete(name, &dp)?;
        match self.client.request::<Value>(req).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(self.explain(e, "delete", &in_namespace(&r.label(name), ns, r))),
        }
    }

    /// The resource a TYPE word names: the workload kinds directly, anything else by discovery.
    pub async fn resource(&self, word: &str) -> Result<Resource> {
        if let Some(k) = known_kind(word) {
            return Ok(k.into());
        }
        let discovery = kube::discovery::Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| self.explain(e, "discover", "the API resources"))?;
        let lower = word.to_lowercase();
        let (name, group) = match lower.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        for g in discovery.groups() {
            if group.as_ref().is_some_and(|want| want != g.name()) {
                continue;
            }
            for (ar, caps) in g.recommended_resources() {
                if ar.plural == name || ar.kind.to_lowercase() == name {
                    return Ok(Resource {
                        group: ar.group,
                        version: ar.version,
                        kind: ar.kind,
                        plural: ar.plural,
                        namespaced: caps.scope == kube::discovery::Scope::Namespaced,
                    });
                }
            }
        }
        bail!("the cluster has no resource type {word:?}; `kubectl api-resources` lists them (workloads: deploy, sts, ds, rs, job, cj, rollout)")
    }
}

fn context_note(args: &ClusterArgs) -> String {
    args.context
        .as_ref()
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default()
}

fn in_namespace(what: &str, ns: Option<&str>, r: &Resource) -> String {
    match ns.filter(|_| r.namespaced) {
        Some(ns) => format!("{what} in namespace {ns}"),
        None => what.to_string(),
    }
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn namespace_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What people see of an object: without managedFields, which only the API server needs.
fn for_display(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    obj
}

/// `enable` (with settings) or `disable` on named objects of a cluster.
pub async fn edit(
    target: &TargetArgs,
    cluster_args: &ClusterArgs,
    settings: Option<&EnableSettings>,
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
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone());
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

#[allow(clippy::too_many_arguments)]
async fn edit_one(
    cluster: &Cluster,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
    settings: Option<&EnableSettings>,
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
                disable_object(&mut obj)?;
            }
        }
        if obj == before {
            report.note(format!("{shown} unchanged"));
            return Ok(Some(obj));
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

/// The workload kinds `status` and `uninstall` look through (Pods and ReplicaSets follow their owners).
fn owner_kinds() -> impl Iterator<Item = &'static KnownKind> {
    WORKLOADS
        .iter()
        .filter(|k| !matches!(k.kind, "Pod" | "ReplicaSet"))
}

/// Every enabled workload in `ns` (or everywhere), with its resource.
async fn enabled_workloads(
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
                    .filter(|o| {
                        pod_template(o)
                            .is_some_and(|t| enabled_archives(t).ok().flatten().is_some())
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
    let fetchers = fetcher_pods(&cluster, &args.fetcher_namespace, report).await;
    let mut resolver = Resolver::new(&args.registry);
    let mut rows = vec![];
    for (r, obj) in &workloads {
        let template = pod_template(obj)
            .ok_or_else(|| anyhow!("{} has no pod template", object_label(obj)))?;
        let archives = enabled_archives(template)?.unwrap_or_default();
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
            let nodes = match &fetchers {
                Ok(list) => archive_nodes(&cluster, &args.fetcher_namespace, list, &digest).await,
                Err(e) => json!({"error": e}),
            };
            archive_rows.push(json!({"container": container, "archive": reference, "platforms": details, "nodes": nodes}));
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

/// The fetcher pods (name, node), or why they cannot be listed.
async fn fetcher_pods(
    cluster: &Cluster,
    fetcher_ns: &str,
    _report: &mut Report,
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
        let path = format!(
            "/api/v1/namespaces/{fetcher_ns}/pods/{pod}:{}/proxy{}",
            names::FETCHER_PORT,
            fetcher_archive_path(digest)
        );
        let request = http::Request::get(path)
            .body(Vec::new())
            .expect("a valid proxy request");
        match cluster.client.request_text(request).await {
            Ok(_) => present.push(node.clone()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(_) => unknown.push(node.clone()),
        }
    }
    json!({"fetchers": fetchers.len(), "present": present, "unknown": unknown})
}

/// Where each object `install` renders lives.
fn install_resource(obj: &Value) -> Result<Resource> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "Secret" => ("", "v1", "secrets", true),
        "Service" => ("", "v1", "services", true),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
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
    for obj in objects {
        let r = install_resource(obj)?;
        let ns = namespace_of(obj);
        let name = name_of(obj);
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
    let namespaces = Resource {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
        namespaced: false,
    };
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        let req =
            Request::new(namespaces.collection(None)).get(namespace, &GetParams::default())?;
        match cluster.client.request::<Value>(req).await {
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => {
                return Err(cluster.explain(e, "get", &format!("namespace/{namespace}")))
            }
            Ok(_) if start.elapsed() >= timeout => bail!(
                "namespace/{namespace} is still being deleted after {}; its pods may be stuck terminating \
                 (kubectl get pods -n {namespace}); wait longer with --timeout, or skip waiting with --wait=false",
                humantime::format_duration(timeout)
            ),
            Ok(_) => {
                if !told {
                    report.note(format!("waiting for namespace/{namespace} to be deleted"));
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}
