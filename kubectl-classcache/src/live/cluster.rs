//! The connection to a cluster: kubeconfig, API resources, and get/list/replace/apply/delete
//! with errors that name the object and the fix. It must not decide what to change in an object.

use anyhow::{anyhow, bail, Context, Result};
use classcache_core::podtemplate::FIELD_MANAGER;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::{DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::{Client, Config};
use serde_json::{json, Value};

use crate::cli::ClusterArgs;
use crate::targets::{known_kind, KnownKind};

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
    pub(super) fn collection(&self, namespace: Option<&str>) -> String {
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
    pub(super) fn label(&self, name: &str) -> String {
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
    pub(super) client: Client,
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
                    let next = Kubeconfig::read_from(&path).with_context(|| {
                        format!(
                            "cannot read kubeconfig {}; pass --kubeconfig FILE",
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
        .with_context(|| {
            format!(
                "cannot load the kubeconfig{}; pass --kubeconfig FILE or --context NAME",
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
    pub(super) fn explain(&self, e: kube::Error, verb: &str, what: &str) -> anyhow::Error {
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
                422 => anyhow!(
                    "{what}: the API server refuses the result as invalid ({}); fix the value it names \
                     (a flag such as --store-dir or --fetcher-image, or the object itself); \
                     --dry-run=client -o yaml shows what would be sent",
                    status.message
                ),
                code => anyhow!("{what}: the API server answered {code} to {verb}: {}", status.message),
            },
            other => anyhow::Error::new(other).context(format!(
                "cannot reach the cluster at {}; check that it runs and that --kubeconfig / --context point at it",
                self.server
            )),
        }
    }

    async fn call(&self, request: http::Request<Vec<u8>>, verb: &str, what: &str) -> Result<Value> {
        self.client
            .request::<Value>(request)
            .await
            .map_err(|e| self.explain(e, verb, what))
    }

    /// Like `call`, but `None` when the object does not exist (404).
    async fn call_if_present(
        &self,
        request: http::Request<Vec<u8>>,
        verb: &str,
        what: &str,
    ) -> Result<Option<Value>> {
        match self.client.request::<Value>(request).await {
            Ok(obj) => Ok(Some(obj)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(self.explain(e, verb, what)),
        }
    }

    pub async fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value> {
        let req = Request::new(r.collection(ns)).get(name, &GetParams::default())?;
        self.call(req, "get", &in_namespace(&r.label(name), ns, r))
            .await
    }

    /// The object, or `None` when it does not exist.
    pub(super) async fn find(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let req = Request::new(r.collection(ns)).get(name, &GetParams::default())?;
        self.call_if_present(req, "get", &in_namespace(&r.label(name), ns, r))
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
    pub(super) async fn replace(
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

    pub(super) async fn apply(
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
    pub(super) async fn delete(
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
        let deleted = self
            .call_if_present(req, "delete", &in_namespace(&r.label(name), ns, r))
            .await?;
        Ok(deleted.is_some())
    }

    /// GET `path` on port `port` of pod `pod`, through the API server's pod proxy.
    pub(super) async fn proxy_get(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
        path: &str,
    ) -> Result<String, kube::Error> {
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}"
        ))
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
        self.client.request_text(request).await
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

pub(super) fn in_namespace(what: &str, ns: Option<&str>, r: &Resource) -> String {
    match ns.filter(|_| r.namespaced) {
        Some(ns) => format!("{what} in namespace {ns}"),
        None => what.to_string(),
    }
}

pub(super) fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn namespace_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What people see of an object: without managedFields, which only the API server needs.
pub(super) fn for_display(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    obj
}

/// Namespaces, which `uninstall` waits on.
pub(super) fn namespaces() -> Resource {
    Resource {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
        namespaced: false,
    }
}
