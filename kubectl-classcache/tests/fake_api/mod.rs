//! An in-process fake Kubernetes API server over HTTP, faithful for the verbs the plugin uses:
//! discovery, GET/LIST (label selectors, items without type meta), POST, PUT with
//! resourceVersion conflicts, server-side apply, DELETE, `dryRun=All`, and errors as real
//! `Status` objects; the live tests use it only where a real API server cannot be made to
//! misbehave on cue (a concurrent writer between GET and PUT). It is a test double; it must not
//! be used outside tests and the startup bench (which times the first request it logs).
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One resource type the fake serves.
#[derive(Clone, Copy)]
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
}

const fn k(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
    }
}

const KINDS: [Kind; 18] = [
    k("", "v1", "Namespace", "namespaces", false, &["ns"]),
    k("", "v1", "Pod", "pods", true, &["po"]),
    k("", "v1", "Service", "services", true, &["svc"]),
    k("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    k("", "v1", "Secret", "secrets", true, &[]),
    k("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    k("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
    k("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]),
    k("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]),
    k("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
    k("batch", "v1", "Job", "jobs", true, &[]),
    k("batch", "v1", "CronJob", "cronjobs", true, &["cj"]),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    ),
    k(
        "argoproj.io",
        "v1alpha1",
        "Rollout",
        "rollouts",
        true,
        &["ro"],
    ),
    k("example.com", "v1", "Widget", "widgets", true, &[]),
];

fn api_version(k: &Kind) -> String {
    if k.group.is_empty() {
        k.version.to_string()
    } else {
        format!("{}/{}", k.group, k.version)
    }
}

/// (group, plural, namespace, name)
type Key = (String, String, String, String);

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub at: Instant,
}

#[derive(Default)]
pub struct FakeState {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    pub requests: Vec<Logged>,
    /// Per object name: how many of its next PUTs meet a concurrent writer first.
    pub concurrent_writes: HashMap<String, usize>,
}

pub struct FakeApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeApi {
    /// Starts the server on 127.0.0.1:0 in a thread of its own and writes a kubeconfig for it
    /// (context `fake`, namespace `shop`).
    pub fn start() -> FakeApi {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: tester\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: shop\ncurrent-context: fake\n"
            ),
        )
        .unwrap();
        FakeApi {
            addr,
            state,
            kubeconfig,
            _dir: dir,
        }
    }

    pub fn kubeconfig_arg(&self) -> String {
        self.kubeconfig.display().to_string()
    }

    /// Stores an object as if it had been created (resourceVersion, uid set).
    pub fn seed(&self, obj: &Value) {
        let mut s = self.state.lock().unwrap();
        let kind = KINDS
            .iter()
            .find(|k| obj["kind"] == k.kind)
            .unwrap_or_else(|| panic!("fake serves no {}", obj["kind"]));
        let ns = if kind.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
        } else {
            ""
        };
        let mut obj = obj.clone();
        if kind.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        }
        stamp(&mut s, &mut obj, None, "seed", "Update");
        let key = (
            kind.group.to_string(),
            kind.plural.to_string(),
            ns.to_string(),
            obj["metadata"]["name"].as_str().unwrap().to_string(),
        );
        s.objects.insert(key, obj);
    }

    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(group.into(), plural.into(), ns.into(), name.into()))
            .cloned()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

/// Sets what the API server sets on every write: resourceVersion, uid, creationTimestamp,
/// generation (bumped when the spec changes) and the writer's managedFields entry.
fn stamp(s: &mut FakeState, obj: &mut Value, old: Option<&Value>, manager: &str, operation: &str) {
    s.resource_version += 1;
    let meta = obj
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let m = meta.as_object_mut().unwrap();
    m.insert(
        "resourceVersion".into(),
        json!(s.resource_version.to_string()),
    );
    let old_meta = old.map(|o| o["metadata"].clone()).unwrap_or(Value::Null);
    m.insert(
        "uid".into(),
        old_meta
            .get("uid")
            .cloned()
            .unwrap_or_else(|| json!(format!("uid-{}", s.resource_version))),
    );
    m.insert(
        "creationTimestamp".into(),
        old_meta
            .get("creationTimestamp")
            .cloned()
            .unwrap_or_else(|| json!("2026-11-22T03:00:00Z")),
    );
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let spec_changed = old.is_none_or(|o| o.get("spec") != obj.get("spec"));
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert(
        "generation".into(),
        json!(if spec_changed {
            generation + 1
        } else {
            generation
        }),
    );
    let mut fields: Vec<Value> = old_meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    fields.retain(|f| f["manager"] != manager);
    fields.push(json!({"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {}}));
    meta.insert("managedFields".into(), Value::Array(fields));
}

fn status(code: u16, reason: &str, message: String, details: Value) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn resource_name(k: &Kind) -> String {
    if k.group.is_empty() {
        k.plural.to_string()
    } else {
        format!("{}.{}", k.plural, k.group)
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            percent_decode(&v)
        })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn selector_matches(selector: &str, obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector.split(',').filter(|p| !p.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            label(k) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            label(k) == Some(v)
        } else if let Some(k) = term.strip_prefix('!') {
            label(k).is_none()
        } else {
            label(term).is_some()
        }
    })
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let query = uri.query().unwrap_or_default().to_string();
    s.requests.push(Logged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: query.clone(),
        at: Instant::now(),
    });
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => {
            return ok(json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake"}))
        }
        ["api"] => {
            return ok(
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            )
        }
        ["apis"] => {
            let mut groups: Vec<Value> = vec![];
            for kind in KINDS.iter().filter(|k| !k.group.is_empty()) {
                if !groups.iter().any(|g| g["name"] == kind.group) {
                    let gv = json!({"groupVersion": api_version(kind), "version": kind.version});
                    groups.push(json!({"name": kind.group, "versions": [gv.clone()], "preferredVersion": gv}));
                }
            }
            return ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        ["api", "v1"] | ["apis", _, _] => {
            let (group, version) = if segs[0] == "api" {
                ("", "v1")
            } else {
                (segs[1], segs[2])
            };
            let resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group == group && k.version == version)
                .map(|k| json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": k.short}))
                .collect();
            if resources.is_empty() {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource".into(),
                    json!({}),
                );
            }
            return ok(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": if group.is_empty() { "v1".to_string() } else { format!("{group}/{version}") }, "resources": resources}),
            );
        }
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
                json!({}),
            )
        }
    };
    // /namespaces/{ns}/{plural}[/{name}[/sub...]] or /{plural}[/{name}]
    let (ns, plural, name, sub): (Option<&str>, &str, Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, plural, name, sub @ ..] => (Some(ns), plural, Some(name), sub),
        ["namespaces", ns, plural] => (Some(ns), plural, None, &[]),
        [plural, name] => (None, plural, Some(name), &[]),
        [plural] => (None, plural, None, &[]),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
                json!({}),
            )
        }
    };
    let Some(kind) = KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
        .copied()
    else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            json!({}),
        );
    };
    let verb = match (&method, name) {
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "other",
    };
    if !sub.is_empty() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            json!({}),
        );
    }
    // dryRun comes as a query parameter, or for DELETE inside the DeleteOptions body.
    let body_dry_run = verb == "delete"
        && serde_json::from_slice::<Value>(&body)
            .ok()
            .is_some_and(|b| b["dryRun"] == json!(["All"]));
    let dry_run = query_param(&query, "dryRun").as_deref() == Some("All") || body_dry_run;
    let manager = query_param(&query, "fieldManager").unwrap_or_else(|| "unknown".into());
    let ns_key = if kind.namespaced {
        ns.unwrap_or("")
    } else {
        ""
    }
    .to_string();
    let key = |n: &str| {
        (
            kind.group.to_string(),
            kind.plural.to_string(),
            ns_key.clone(),
            n.to_string(),
        )
    };
    let not_found = |n: &str| {
        status(
            404,
            "NotFound",
            format!("{} \"{n}\" not found", resource_name(&kind)),
            json!({"name": n, "group": kind.group, "kind": kind.plural}),
        )
    };
    match (verb, name) {
        ("list", _) => {
            let selector = query_param(&query, "labelSelector").unwrap_or_default();
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|(k, _)| {
                    k.0 == kind.group && k.1 == kind.plural && (ns.is_none() || k.2 == ns_key)
                })
                .map(|(_, v)| v)
                .filter(|v| selector_matches(&selector, v))
                .map(|v| {
                    // Like the real server: list items carry no apiVersion/kind.
                    let mut v = v.clone();
                    let m = v.as_object_mut().unwrap();
                    m.remove("apiVersion");
                    m.remove("kind");
                    v
                })
                .collect();
            ok(
                json!({"kind": format!("{}List", kind.kind), "apiVersion": api_version(&kind), "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}),
            )
        }
        ("get", Some(n)) => match s.objects.get(&key(n)) {
            Some(v) => ok(v.clone()),
            None => not_found(n),
        },
        ("create", None) => {
            let mut obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return status(400, "BadRequest", format!("invalid body: {e}"), json!({}))
                }
            };
            let n = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if s.objects.contains_key(&key(&n)) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{} \"{n}\" already exists", resource_name(&kind)),
                    json!({"name": n}),
                );
            }
            if kind.namespaced {
                obj["metadata"]["namespace"] = json!(ns_key);
            }
            stamp(&mut s, &mut obj, None, &manager, "Update");
            if !dry_run {
                s.objects.insert(key(&n), obj.clone());
            }
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                obj.to_string(),
            )
                .into_response()
        }
        ("update", Some(n)) => {
            let mut obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return status(400, "BadRequest", format!("invalid body: {e}"), json!({}))
                }
            };
            if obj["kind"] != kind.kind || obj["apiVersion"] != api_version(&kind) {
                return status(
                    400,
                    "BadRequest",
                    format!(
                        "the body is a {} {}, not a {}",
                        obj["apiVersion"], obj["kind"], kind.kind
                    ),
                    json!({}),
                );
            }
            if obj["metadata"]["name"] != n {
                return status(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL".into(),
                    json!({}),
                );
            }
            let Some(stored) = s.objects.get(&key(n)).cloned() else {
                return not_found(n);
            };
            let mut stored = stored;
            if let Some(left) = s.concurrent_writes.get_mut(n).filter(|left| **left > 0) {
                // Someone else writes between this client's GET and PUT.
                *left -= 1;
                let round = *left;
                stored["metadata"]["labels"]["touched-by-other"] = json!(format!("round-{round}"));
                let prior = stored.clone();
                stamp(&mut s, &mut stored, Some(&prior), "other-writer", "Update");
                s.objects.insert(key(n), stored.clone());
            }
            let sent_rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if sent_rv.as_ref().is_some_and(|rv| {
                Some(rv.as_str()) != stored["metadata"]["resourceVersion"].as_str()
            }) {
                return status(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{n}\": the object has been modified; please apply your changes to the latest version and try again", resource_name(&kind)),
                    json!({"name": n, "group": kind.group, "kind": kind.plural}),
                );
            }
            if kind.namespaced {
                obj["metadata"]["namespace"] = json!(ns_key);
            }
            stamp(&mut s, &mut obj, Some(&stored), &manager, "Update");
            if !dry_run {
                s.objects.insert(key(n), obj.clone());
            }
            ok(obj)
        }
        ("patch", Some(n)) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if content_type != "application/apply-patch+yaml" {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the fake only serves server-side apply, not {content_type}"),
                    json!({}),
                );
            }
            if query_param(&query, "fieldManager").is_none() {
                return status(
                    400,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value".into(),
                    json!({}),
                );
            }
            let mut obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return status(400, "BadRequest", format!("invalid body: {e}"), json!({}))
                }
            };
            // Simplification: apply replaces the object (one manager owns all its fields).
            let old = s.objects.get(&key(n)).cloned();
            if kind.namespaced {
                obj["metadata"]["namespace"] = json!(ns_key);
            }
            stamp(&mut s, &mut obj, old.as_ref(), &manager, "Apply");
            if !dry_run {
                s.objects.insert(key(n), obj.clone());
            }
            ok(obj)
        }
        ("delete", Some(n)) => {
            let Some(obj) = s.objects.get(&key(n)).cloned() else {
                return not_found(n);
            };
            if !dry_run {
                s.objects.remove(&key(n));
            }
            ok(obj)
        }
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
            json!({}),
        ),
    }
}
