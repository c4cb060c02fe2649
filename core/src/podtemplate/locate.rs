//! Finding the pod template in a duck-typed object and reading its containers.
//! It only reads and points; it must not change anything.

use serde_json::Value;

/// `Kind/name` (with `namespace/` in front when set), for messages.
pub fn object_label(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind}/{name} in namespace {ns}"),
        None => format!("{kind}/{name}"),
    }
}

/// Where an object keeps its pod template: the Pod itself, a CronJob's
/// `spec.jobTemplate.spec.template`, or `spec.template` (Deployment, StatefulSet, DaemonSet,
/// ReplicaSet, Job and custom resources such as Argo Rollouts).
fn template_pointer(obj: &Value) -> Option<&'static str> {
    let has_containers = |t: &Value| t.pointer("/spec/containers").is_some();
    if obj.get("kind").and_then(Value::as_str) == Some("Pod") && has_containers(obj) {
        return Some("");
    }
    ["/spec/jobTemplate/spec/template", "/spec/template"]
        .into_iter()
        .find(|p| obj.pointer(p).is_some_and(has_containers))
}

/// The object's pod template (`{metadata, spec}`), if it has one.
pub fn pod_template(obj: &Value) -> Option<&Value> {
    obj.pointer(template_pointer(obj)?)
}

/// The object's pod template, mutable.
pub fn pod_template_mut(obj: &mut Value) -> Option<&mut Value> {
    let pointer = template_pointer(obj)?;
    obj.pointer_mut(pointer)
}

/// What the plugin needs to know about a container to pick its archive and warn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

/// The template's (non-init) containers, in order.
pub fn containers(template: &Value) -> Vec<ContainerView> {
    let Some(list) = template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    list.iter()
        .map(|c| ContainerView {
            name: c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            image: c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            command: strings(c.get("command")),
            args: strings(c.get("args")),
        })
        .collect()
}
