//! `enable --mode auto`: whether this cluster can deliver archives as image volumes, from its
//! versions and one server-side dry run. It reads and dry-runs only; it must not change anything.

use classcache_core::podtemplate::image_volume::{image_volume_blockers, NodeRuntime};
use classcache_core::podtemplate::{DeliveryMode, FIELD_MANAGER};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::cluster::Cluster;

/// The mode `--mode auto` picks in `namespace`, with the reason to tell the user.
pub async fn choose_mode(cluster: &Cluster, namespace: &str) -> (DeliveryMode, String) {
    match image_volume_blocker(cluster, namespace).await {
        None => (
            DeliveryMode::ImageVolume,
            "--mode auto: image-volume (Kubernetes 1.35+, image volumes on, every node's runtime mounts them)".into(),
        ),
        Some(why) => (
            DeliveryMode::HostPath,
            format!("--mode auto: hostpath, because {why}"),
        ),
    }
}

/// Why image volumes cannot be used, or `None` when they can.
async fn image_volume_blocker(cluster: &Cluster, namespace: &str) -> Option<String> {
    let version = match cluster.client.apiserver_version().await {
        Ok(v) => v,
        Err(e) => return Some(format!("the API server's version is unknown ({e})")),
    };
    let nodes = match Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .map(|n| {
                let info = n.status.and_then(|s| s.node_info).unwrap_or_default();
                NodeRuntime {
                    name: n.metadata.name.unwrap_or_default(),
                    kubelet: info.kubelet_version,
                    runtime: info.container_runtime_version,
                }
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            return Some(format!(
                "the nodes' kubelets and runtimes cannot be read ({e}); pass --mode image-volume if you know they mount image volumes"
            ))
        }
    };
    let blockers = image_volume_blockers((&version.major, &version.minor), &nodes);
    if !blockers.is_empty() {
        return Some(blockers.join("; "));
    }
    feature_gate_blocker(cluster, namespace).await
}

/// A server-side dry run of a pod with an image volume: an API server whose `ImageVolume`
/// feature gate is off drops the volume's source, so it comes back without `image`.
async fn feature_gate_blocker(cluster: &Cluster, namespace: &str) -> Option<String> {
    let probe: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "classcache-image-volume-probe-"},
        "spec": {
            "containers": [{"name": "probe", "image": "registry.invalid/probe:1"}],
            "volumes": [{"name": "probe", "image": {"reference": "registry.invalid/probe:1"}}],
        },
    }))
    .expect("the probe is a valid Pod");
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match Api::<Pod>::namespaced(cluster.client.clone(), namespace)
        .create(&params, &probe)
        .await
    {
        Ok(pod) => {
            let kept = pod
                .spec
                .and_then(|s| s.volumes)
                .is_some_and(|v| v.iter().any(|v| v.image.is_some()));
            (!kept).then(|| {
                "the API server drops image volumes (its ImageVolume feature gate is off)".to_string()
            })
        }
        Err(e) => Some(format!(
            "a dry run of a pod with an image volume in namespace {namespace} failed ({e}); pass --mode image-volume if you know it works"
        )),
    }
}
