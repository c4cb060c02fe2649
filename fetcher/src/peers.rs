//! The set of fetcher nodes this node knows about (static list or discovery), and its own id.
//! It holds and parses the list only; it must not rank nodes or talk to them.

use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's name: what the ranking hashes, the same on every node.
    pub id: String,
    /// Base URL of its fetcher, e.g. `http://10.0.0.7:8787`.
    pub url: String,
    pub zone: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("peer {entry:?}: {problem}; write peers as NODE=http://HOST:PORT or NODE@ZONE=http://HOST:PORT, comma-separated")]
pub struct BadPeer {
    entry: String,
    problem: &'static str,
}

/// Parses `node-a=http://10.0.0.1:8787,node-b@zone-2=http://10.0.0.2:8787` (a node's zone, as
/// its EndpointSlice would say, after `@`; Kubernetes node names cannot contain one).
pub fn parse_static(list: &str) -> Result<Vec<Peer>, BadPeer> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = |problem| BadPeer {
                entry: entry.to_string(),
                problem,
            };
            let (node, url) = entry.split_once('=').ok_or_else(|| bad("no '='"))?;
            let (id, zone) = match node.split_once('@') {
                Some((_, "")) => return Err(bad("empty zone after '@'")),
                Some((id, zone)) => (id, Some(zone.to_string())),
                None => (node, None),
            };
            if id.is_empty() {
                return Err(bad("empty node name"));
            }
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(bad("the URL must start with http:// or https://"));
            }
            Ok(Peer {
                id: id.to_string(),
                url: url.trim_end_matches('/').to_string(),
                zone,
            })
        })
        .collect()
}

/// The current node list, replaced whole by discovery; readers take cheap snapshots.
pub struct PeerSet {
    self_id: String,
    peers: RwLock<Arc<Vec<Peer>>>,
}

impl PeerSet {
    pub fn new(self_id: &str, peers: Vec<Peer>) -> Self {
        Self {
            self_id: self_id.to_string(),
            peers: RwLock::new(Arc::new(peers)),
        }
    }

    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    /// Every known node, this one included (ranking needs it in the list).
    pub fn snapshot(&self) -> Arc<Vec<Peer>> {
        self.peers.read().unwrap().clone()
    }

    pub fn replace(&self, mut peers: Vec<Peer>) {
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers.dedup_by(|a, b| a.id == b.id);
        let mut current = self.peers.write().unwrap();
        if **current != peers {
            tracing::info!(nodes = peers.len(), "peer list changed");
            *current = Arc::new(peers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_static_list_and_names_bad_entries() {
        let peers = parse_static("a=http://10.0.0.1:8787/, b=http://10.0.0.2:8787").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].url, "http://10.0.0.1:8787");
        assert_eq!(peers[0].zone, None);
        let zoned = parse_static("a@eu-1a=http://10.0.0.1:8787").unwrap();
        assert_eq!(
            (zoned[0].id.as_str(), zoned[0].zone.as_deref()),
            ("a", Some("eu-1a"))
        );
        let err = parse_static("a@=http://10.0.0.1:8787")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty zone"), "{err}");
        let err = parse_static("a=10.0.0.1:8787").unwrap_err().to_string();
        assert!(
            err.contains("a=10.0.0.1:8787") && err.contains("http://"),
            "{err}"
        );
    }
}
