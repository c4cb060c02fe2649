//! Peer discovery in a cluster: watch the peers Service's EndpointSlices, keeping per endpoint only pod IP, node name, readiness and zone.
//! It must not cache whole API objects.

use crate::peers::{Peer, PeerSet};
use classcache_core::podtemplate::cluster::FETCHER_PORT;
use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ready fetchers an EndpointSlice lists, named by their node.
pub fn peers_of(slice: &EndpointSlice) -> Vec<Peer> {
    let port = slice
        .ports
        .iter()
        .flatten()
        .find_map(|p| p.port)
        .map(|p| p as u16)
        .unwrap_or(FETCHER_PORT);
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| {
            // An absent `ready` means ready (the API's documented default).
            e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
        })
        .filter_map(|e| {
            let node = e.node_name.clone()?;
            let ip = e.addresses.first()?;
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            Some(Peer {
                id: node,
                url: format!("http://{host}:{port}"),
                zone: e.zone.clone(),
            })
        })
        .collect()
}

/// Keeps `peers` equal to the ready endpoints of `service` in `namespace`, forever.
pub async fn watch_endpoint_slices(
    client: kube::Client,
    namespace: &str,
    service: &str,
    peers: Arc<PeerSet>,
) {
    let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let config =
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    let mut by_slice: BTreeMap<String, Vec<Peer>> = BTreeMap::new();
    let mut relisting: Option<BTreeMap<String, Vec<Peer>>> = None;
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let name = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
        match event {
            Ok(watcher::Event::Apply(s)) => {
                by_slice.insert(name(&s), peers_of(&s));
            }
            Ok(watcher::Event::Delete(s)) => {
                by_slice.remove(&name(&s));
            }
            Ok(watcher::Event::Init) => relisting = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(s)) => {
                relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&s), peers_of(&s));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                by_slice = relisting.take().unwrap_or_default();
            }
            Err(e) => {
                tracing::warn!(error = %e, namespace, service, "EndpointSlice watch failed; retrying (check the fetcher's RBAC: list/watch endpointslices)");
                continue;
            }
        }
        peers.replace(by_slice.values().flatten().cloned().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Query, State};
    use axum::response::IntoResponse;
    use std::collections::HashMap;
    use std::time::Duration;
    use tokio::sync::{mpsc, Mutex};

    fn slice(endpoints: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "classcache-peers-1", "namespace": "classcache", "resourceVersion": "2",
                         "labels": {"kubernetes.io/service-name": "classcache-peers"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8787}],
            "endpoints": endpoints
        })
    }

    type Events = std::sync::Arc<Mutex<Option<mpsc::Receiver<serde_json::Value>>>>;

    /// The two requests a watcher makes: a list, then a watch that streams events.
    async fn fake_api(
        State(events): State<Events>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        assert_eq!(
            q.get("labelSelector").map(String::as_str),
            Some("kubernetes.io/service-name=classcache-peers")
        );
        if q.get("watch").map(String::as_str) != Some("true") {
            return axum::Json(serde_json::json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": "1"},
                "items": [slice(serde_json::json!([
                    {"addresses": ["10.0.0.1"], "nodeName": "node-a", "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "nodeName": "node-b", "conditions": {"ready": true}}
                ]))]
            }))
            .into_response();
        }
        let Some(rx) = events.lock().await.take() else {
            // A re-watch after the test's stream ended: hold it open, send nothing.
            return axum::body::Body::from_stream(futures_util::stream::pending::<
                Result<bytes::Bytes, std::io::Error>,
            >())
            .into_response();
        };
        let lines = futures_util::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            let line = format!("{event}\n");
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
        });
        axum::body::Body::from_stream(lines).into_response()
    }

    async fn wait_for(peers: &PeerSet, ids: &[&str]) {
        for _ in 0..200 {
            let now: Vec<String> = peers.snapshot().iter().map(|p| p.id.clone()).collect();
            if now == ids {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("peers never became {ids:?}: {:?}", peers.snapshot());
    }

    #[tokio::test]
    async fn follows_endpoint_slices_through_the_api_server() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (tx, rx) = mpsc::channel(4);
        let events: Events = std::sync::Arc::new(Mutex::new(Some(rx)));
        let app = axum::Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/classcache/endpointslices",
                axum::routing::get(fake_api),
            )
            .with_state(events);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let peers = Arc::new(PeerSet::new("node-a", vec![]));
        let watched = peers.clone();
        tokio::spawn(async move {
            watch_endpoint_slices(client, "classcache", "classcache-peers", watched).await
        });
        wait_for(&peers, &["node-a", "node-b"]).await;
        assert_eq!(peers.snapshot()[1].url, "http://10.0.0.2:8787");

        let not_ready = slice(serde_json::json!([
            {"addresses": ["10.0.0.1"], "nodeName": "node-a", "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "nodeName": "node-b", "conditions": {"ready": false}}
        ]));
        tx.send(serde_json::json!({"type": "MODIFIED", "object": not_ready.clone()}))
            .await
            .unwrap();
        wait_for(&peers, &["node-a"]).await;
        tx.send(serde_json::json!({"type": "DELETED", "object": not_ready}))
            .await
            .unwrap();
        wait_for(&peers, &[]).await;
    }

    #[test]
    fn keeps_ready_endpoints_with_node_ip_and_zone() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "classcache-peers-abc", "managedFields": [{"manager": "x"}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8787, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.1.0.4"], "nodeName": "node-a", "zone": "z1",
                 "conditions": {"ready": true}},
                {"addresses": ["10.1.0.5"], "nodeName": "node-b", "conditions": {"ready": false}},
                {"addresses": ["10.1.0.6"], "nodeName": "node-c"},
                {"addresses": ["10.1.0.7"]}
            ]
        }))
        .unwrap();
        let peers = peers_of(&slice);
        assert_eq!(
            peers,
            vec![
                Peer {
                    id: "node-a".into(),
                    url: "http://10.1.0.4:8787".into(),
                    zone: Some("z1".into())
                },
                Peer {
                    id: "node-c".into(),
                    url: "http://10.1.0.6:8787".into(),
                    zone: None
                },
            ]
        );
    }
}
