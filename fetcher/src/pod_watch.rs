//! The pods on this node, from a watch limited to `spec.nodeName` = this node, kept as uid, IPs and pinned archives only: what authorization and eviction need.
//! It must not cache whole pod objects nor decide anything itself (crate::callers does).

use crate::callers::{Callers, NodePod};
use classcache_core::podtemplate::ANNOTATION_ARCHIVE;
use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// A pod as this watch reads it: serde drops every field but these while parsing, so a pod's
/// spec and status never reach memory whole.
#[derive(Debug, Clone, Deserialize)]
pub struct PodFacts {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<PodAddresses>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PodAddresses {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Option<Vec<PodAddress>>,
}

#[derive(Debug, Clone, Deserialize)]
struct PodAddress {
    ip: String,
}

impl kube::Resource for PodFacts {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl PodFacts {
    /// What the fetcher keeps of it.
    pub fn node_pod(&self) -> Option<NodePod> {
        let uid = self.metadata.uid.clone()?;
        let name = format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        );
        let status = self.status.clone().unwrap_or_default();
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .chain(status.pod_ip.as_deref())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        let annotation = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_ARCHIVE))
            .map(String::as_str);
        Some(NodePod::new(name, uid, ips, annotation))
    }
}

/// Keeps `callers`' pod table equal to the pods bound to `node`, forever.
pub async fn watch_node_pods(client: kube::Client, node: &str, callers: Arc<Callers>) {
    let api: Api<PodFacts> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut relisting: Option<Vec<NodePod>> = None;
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(p)) => {
                if let Some(pod) = p.node_pod() {
                    callers.put_pod(pod);
                }
            }
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = &p.metadata.uid {
                    callers.remove_pod(uid);
                }
            }
            Ok(watcher::Event::Init) => relisting = Some(Vec::new()),
            Ok(watcher::Event::InitApply(p)) => {
                relisting.get_or_insert_with(Vec::new).extend(p.node_pod());
            }
            Ok(watcher::Event::InitDone) => {
                let pods = relisting.take().unwrap_or_default();
                tracing::info!(pods = pods.len(), node, "pods on this node listed");
                callers.set_pods(pods);
            }
            Err(e) => {
                tracing::warn!(error = %e, node, "pod watch failed; retrying (check the fetcher's RBAC: list/watch pods, cluster-wide)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_uid_addresses_and_pins_only() {
        let pod: PodFacts = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app-1", "namespace": "shop", "uid": "u-1",
                         "annotations": {ANNOTATION_ARCHIVE: "{\"app\":\"reg.example/shop/app@sha256:1111111111111111111111111111111111111111111111111111111111111111\"}"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"containers": [{"name": "app", "image": "app:1", "env": [{"name": "SECRET", "value": "x"}]}]},
            "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}], "phase": "Running"}
        }))
        .unwrap();
        let facts = pod.node_pod().unwrap();
        assert_eq!(facts.name, "shop/app-1");
        assert_eq!(facts.uid, "u-1");
        assert_eq!(
            facts.ips,
            vec![
                "10.244.1.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(facts.pinned.len(), 1);
        // A pod still without an address pins, but no caller can be it yet.
        let pending: PodFacts = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop", "uid": "u-2"}
        }))
        .unwrap();
        assert!(pending.node_pod().unwrap().ips.is_empty());
    }
}
