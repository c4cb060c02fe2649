//! Everything the plugin prints must be valid Kubernetes: each object deserializes into its
//! typed k8s-openapi struct and serializes back with no field lost.

mod common;

use common::*;
use k8s_openapi::api::{apps, autoscaling, batch, core, rbac};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// Drops nulls, which mean "unset" in Kubernetes and which typed structs do not keep.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn through<T: DeserializeOwned + Serialize>(v: &Value) -> Value {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"));
    serde_json::to_value(typed).unwrap()
}

fn assert_typed_round_trip(obj: &Value) {
    let kind = obj["kind"].as_str().unwrap();
    let (checked, back) = match kind {
        "Namespace" => (obj.clone(), through::<core::v1::Namespace>(obj)),
        "ServiceAccount" => (obj.clone(), through::<core::v1::ServiceAccount>(obj)),
        "Service" => (obj.clone(), through::<core::v1::Service>(obj)),
        "Secret" => (obj.clone(), through::<core::v1::Secret>(obj)),
        "ConfigMap" => (obj.clone(), through::<core::v1::ConfigMap>(obj)),
        "Pod" => (obj.clone(), through::<core::v1::Pod>(obj)),
        "Role" => (obj.clone(), through::<rbac::v1::Role>(obj)),
        "RoleBinding" => (obj.clone(), through::<rbac::v1::RoleBinding>(obj)),
        "ClusterRole" => (obj.clone(), through::<rbac::v1::ClusterRole>(obj)),
        "ClusterRoleBinding" => (obj.clone(), through::<rbac::v1::ClusterRoleBinding>(obj)),
        "DaemonSet" => (obj.clone(), through::<apps::v1::DaemonSet>(obj)),
        "Deployment" => (obj.clone(), through::<apps::v1::Deployment>(obj)),
        "StatefulSet" => (obj.clone(), through::<apps::v1::StatefulSet>(obj)),
        "Job" => (obj.clone(), through::<batch::v1::Job>(obj)),
        "CronJob" => (obj.clone(), through::<batch::v1::CronJob>(obj)),
        "HorizontalPodAutoscaler" => (
            obj.clone(),
            through::<autoscaling::v2::HorizontalPodAutoscaler>(obj),
        ),
        // A custom resource: its pod template is the part classcache writes.
        "Rollout" => {
            let t = obj["spec"]["template"].clone();
            (t.clone(), through::<core::v1::PodTemplateSpec>(&t))
        }
        "List" => {
            obj["items"]
                .as_array()
                .unwrap()
                .iter()
                .for_each(assert_typed_round_trip);
            return;
        }
        other => panic!("no typed struct mapped for kind {other}"),
    };
    if let Err(path) = contained(&without_nulls(&checked), &back, String::new()) {
        panic!(
            "{kind}: field {path} lost or changed by the typed round trip\n{checked:#}\n{back:#}"
        );
    }
}

/// Every field of `original` is in `typed` with the same value (typed structs may add the
/// apiVersion/kind of embedded resources, such as volumeClaimTemplates); `Err` names the path.
fn contained(original: &Value, typed: &Value, path: String) -> Result<(), String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                contained(
                    v,
                    b.get(k).ok_or_else(|| format!("{path}.{k}"))?,
                    format!("{path}.{k}"),
                )?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| contained(x, y, format!("{path}[{i}]"))),
        (a, b) if a == b => Ok(()),
        _ => Err(path),
    }
}

#[test]
fn install_output_is_typed_kubernetes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"auths":{"registry.example":{"auth":"dXNlcjpwYXNz"}}}"#,
    )
    .unwrap();
    let (code, out, err) = run(
        &[
            "install",
            "--dry-run=client",
            "-o",
            "yaml",
            "--registry-config",
            config.to_str().unwrap(),
            "--image-pull-secret",
            "pull",
            "--allowed-registry",
            "registry.example/shop",
        ],
        None,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let docs = parse_yaml(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Secret",
            "Service",
            "DaemonSet"
        ]
    );
    docs.iter().for_each(assert_typed_round_trip);
}

#[test]
fn enable_output_is_typed_kubernetes() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, image) in [
        "registry.example/shop/petclinic:3.2.0",
        "registry.example/shop/catalog:4.1.0",
        "registry.example/shop/cart:2.0.0",
    ]
    .iter()
    .enumerate()
    {
        let archive = make_archive(&tmp.path().join(i.to_string()), image, &[], &[]);
        for mode in ["hostpath", "copy"] {
            let (code, out, err) = run(
                &[
                    "enable",
                    "-f",
                    fixtures().to_str().unwrap(),
                    "--archive",
                    &archive,
                    "--force",
                    "--mode",
                    mode,
                ],
                None,
                &[],
            );
            assert_eq!(code, 0, "{err}");
            let docs = parse_yaml(&out);
            assert!(out.contains("classcache-init"));
            docs.iter().for_each(assert_typed_round_trip);
        }
    }
}
