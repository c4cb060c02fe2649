//! Who may call the fetcher: peers (the peer list) for blobs and transfer status; pods on this node, for the archives their own template pins (the pod watch, or `--allow-pods-from` networks where there is no API server).
//! It decides from what it is told; it must not talk to the API server, read pods' files, or serve anything.

use crate::metrics::{Denial, Metrics};
use crate::peers::PeerSet;
use classcache_core::digest::Digest;
use classcache_core::podtemplate::archives_in_annotation;
use classcache_core::reference::RegistryRef;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// What the fetcher keeps of one pod on its node: nothing but what authorization and eviction
/// need (the watch drops everything else of the object at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePod {
    /// `namespace/name`, for logs and refusals.
    pub name: String,
    pub uid: String,
    pub ips: Vec<IpAddr>,
    /// The archive references the pod's `classcache.io/archive` annotation pins.
    pub pinned: Vec<RegistryRef>,
}

impl NodePod {
    /// A pod's facts from its name, uid, IPs and `classcache.io/archive` annotation (absent or
    /// malformed: it pins nothing, and its requests are refused).
    pub fn new(name: String, uid: String, ips: Vec<IpAddr>, annotation: Option<&str>) -> Self {
        let pinned = annotation
            .and_then(|raw| match archives_in_annotation(raw, &name) {
                Ok(pairs) => Some(pairs),
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "ignoring a malformed archive annotation");
                    None
                }
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, r)| r.parse::<RegistryRef>().ok())
            .filter(|r| r.digest.is_some())
            .collect();
        Self {
            name,
            uid,
            ips,
            pinned,
        }
    }
}

/// Why a caller was turned away; the text goes back in the 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not a classcache fetcher of this cluster (not in the peers list); only peers may fetch blobs")]
    NotAPeer(IpAddr),
    #[error("{0} is not a pod on this node; archives are served only to this node's pods (enable the workload with `kubectl classcache enable`)")]
    NotOnThisNode(IpAddr),
    #[error("pod {pod} ({ip}) does not pin {wanted} in its classcache.io/archive annotation; a pod may fetch only the archives its own template pins (re-run `kubectl classcache enable` on its workload)")]
    NotPinned {
        pod: String,
        ip: IpAddr,
        wanted: String,
    },
    #[error("{0} may not read page-sharing stats (they name this node's pods): only the API server (`kubectl classcache status` asks through its pod proxy, which checks `get pods/proxy` on the fetcher) and the fetchers' nodes may")]
    NotAStatsReader(IpAddr),
}

impl Refusal {
    fn metric(&self) -> Denial {
        match self {
            Refusal::NotAPeer(_) => Denial::NotAPeer,
            Refusal::NotOnThisNode(_) => Denial::NotOnThisNode,
            Refusal::NotPinned { .. } => Denial::NotPinned,
            Refusal::NotAStatsReader(_) => Denial::NotAStatsReader,
        }
    }
}

/// What an archive request asks for: a pinned reference (the fetch) or only a digest (the
/// published file, copy mode).
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    Reference(&'a RegistryRef),
    Digest(&'a Digest),
}

impl Wanted<'_> {
    fn pinned_by(&self, pod: &NodePod) -> bool {
        match self {
            Wanted::Reference(r) => pod.pinned.iter().any(|p| same_reference(p, r)),
            Wanted::Digest(d) => pod.pinned.iter().any(|p| p.digest.as_ref() == Some(d)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Wanted::Reference(r) => r.to_string(),
            Wanted::Digest(d) => d.to_string(),
        }
    }
}

/// Registry, repository and digest equal: the registry the fetcher would pull from is the one the
/// pod's template names, never one the caller chose.
fn same_reference(a: &RegistryRef, b: &RegistryRef) -> bool {
    a.registry.eq_ignore_ascii_case(&b.registry)
        && a.repository == b.repository
        && a.digest == b.digest
}

/// Concurrent archive requests from callers the pod watch has not shown yet, waiting for it;
/// beyond it they are refused at once (a flood of strangers holds no more than this).
const MAX_WAITING: usize = 64;

pub struct Callers {
    peers: Arc<PeerSet>,
    /// `--allow-pods-from`: callers here may ask for any archive (nodes without an API server).
    open_networks: Vec<IpNet>,
    /// Pods on this node by uid; `None` until the pod watch's first listing (or with no watch).
    pods: RwLock<Option<HashMap<String, NodePod>>>,
    /// Bumped on every change of `pods`, so waiting requests look again.
    changed: watch::Sender<u64>,
    /// How long an archive request from an unknown address waits for the pod watch to show its
    /// pod: the kubelet reports a new pod's IP to the API server while its init container
    /// already runs.
    wait: Duration,
    waiting: Semaphore,
    metrics: Arc<Metrics>,
    /// The API server's addresses (the `kubernetes` Service's endpoints): where its pod proxy,
    /// and so `kubectl classcache status`, comes from. Known only with `serve --stats`.
    api_servers: RwLock<Vec<IpAddr>>,
}

impl Callers {
    pub fn new(
        peers: Arc<PeerSet>,
        open_networks: Vec<IpNet>,
        wait: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peers,
            open_networks,
            pods: RwLock::new(None),
            changed: watch::channel(0).0,
            wait,
            waiting: Semaphore::new(MAX_WAITING),
            metrics,
            api_servers: RwLock::new(Vec::new()),
        })
    }

    /// Replaces the whole pod table (the watch's listing).
    pub fn set_pods(&self, pods: impl IntoIterator<Item = NodePod>) {
        let table = pods.into_iter().map(|p| (p.uid.clone(), p)).collect();
        *self.pods.write().unwrap_or_else(|p| p.into_inner()) = Some(table);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Adds or updates one pod.
    pub fn put_pod(&self, pod: NodePod) {
        self.pods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(pod.uid.clone(), pod);
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn remove_pod(&self, uid: &str) {
        if let Some(table) = self
            .pods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            table.remove(uid);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Every archive reference some pod on this node pins: eviction keeps these.
    pub fn pinned_on_node(&self) -> Vec<RegistryRef> {
        let pods = self.pods.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<RegistryRef> = pods
            .iter()
            .flat_map(|t| t.values())
            .flat_map(|p| p.pinned.iter().cloned())
            .collect();
        all.sort_by_key(|r| r.to_string());
        all.dedup_by_key(|r| r.to_string());
        all
    }

    /// `namespace/name` of the pod on this node with `uid`, if the pod watch shows one.
    pub fn pod_name(&self, uid: &str) -> Option<String> {
        let pods = self.pods.read().unwrap_or_else(|p| p.into_inner());
        pods.as_ref()?.get(uid).map(|p| p.name.clone())
    }

    /// Replaces the API server's addresses.
    pub fn set_api_servers(&self, addresses: Vec<IpAddr>) {
        *self.api_servers.write().unwrap_or_else(|p| p.into_inner()) =
            addresses.into_iter().map(canonical).collect();
    }

    /// Page-sharing stats (pod names and memory figures, no archive bytes): the API server,
    /// whose pod proxy checks the user's `get pods/proxy` right on the fetcher's namespace
    /// (that is how `kubectl classcache status` asks), the peers (the nodes' own addresses: the
    /// API server's too where it runs on a node), and `--allow-pods-from` networks. Never
    /// ordinary pods: a tenant must not list another tenant's pods through the fetcher.
    pub fn check_stats_reader(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        let api_server = self
            .api_servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&ip);
        if api_server || self.open_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        self.count(if self.is_peer(ip) {
            Ok(())
        } else {
            Err(Refusal::NotAStatsReader(ip))
        })
    }

    /// Whether the node's pods are known (the pod watch listed them at least once).
    pub fn watching_pods(&self) -> bool {
        self.pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Peers only: blob bytes (verified or not) and transfer status.
    pub fn check_peer(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        self.count(if self.is_peer(ip) {
            Ok(())
        } else {
            Err(Refusal::NotAPeer(ip))
        })
    }

    /// Whether `ip` (canonical) is the address of a known peer fetcher.
    fn is_peer(&self, ip: IpAddr) -> bool {
        self.peers
            .snapshot()
            .iter()
            .any(|p| peer_ip(&p.url) == Some(ip))
    }

    /// Transfer status (no bytes): peers, and the `--allow-pods-from` networks, whose callers
    /// (tests, operators of nodes without an API server) watch downloads progress.
    pub fn check_status_reader(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self
            .open_networks
            .iter()
            .any(|n| n.contains(&canonical(ip)))
        {
            return Ok(());
        }
        self.check_peer(ip)
    }

    /// A pod on this node whose own template pins what it asks for, or a caller from an
    /// `--allow-pods-from` network. Waits a little for the pod watch to catch up with a caller
    /// it does not know yet.
    pub async fn check_pod(&self, ip: IpAddr, wanted: Wanted<'_>) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if self.open_networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let mut changes = self.changed.subscribe();
        let mut verdict = self.judge(ip, wanted);
        if matches!(verdict, Ok(()) | Err(Refusal::NotPinned { .. })) || self.wait.is_zero() {
            return self.count(verdict);
        }
        let Ok(_slot) = self.waiting.try_acquire() else {
            return self.count(verdict);
        };
        let deadline = tokio::time::Instant::now() + self.wait;
        while let Ok(Ok(())) = tokio::time::timeout_at(deadline, changes.changed()).await {
            verdict = self.judge(ip, wanted);
            if !matches!(verdict, Err(Refusal::NotOnThisNode(_))) {
                break;
            }
        }
        self.count(verdict)
    }

    fn judge(&self, ip: IpAddr, wanted: Wanted<'_>) -> Result<(), Refusal> {
        let pods = self.pods.read().unwrap_or_else(|p| p.into_inner());
        let mut callers = pods
            .iter()
            .flat_map(|t| t.values())
            .filter(|p| p.ips.iter().any(|a| canonical(*a) == ip))
            .peekable();
        let Some(first) = callers.peek().map(|p| p.name.clone()) else {
            return Err(Refusal::NotOnThisNode(ip));
        };
        // Several pods share an address only on the host network: any of them may ask.
        if callers.any(|p| wanted.pinned_by(p)) {
            Ok(())
        } else {
            Err(Refusal::NotPinned {
                pod: first,
                ip,
                wanted: wanted.describe(),
            })
        }
    }

    fn count(&self, verdict: Result<(), Refusal>) -> Result<(), Refusal> {
        if let Err(refusal) = &verdict {
            self.metrics.denied(refusal.metric());
            tracing::warn!(%refusal, "refused a caller");
        }
        verdict
    }
}

/// IPv4 callers may arrive as IPv4-mapped IPv6 addresses on a dual-stack socket.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The address in a peer's base URL (`http://10.0.0.7:8787`, `http://[fd00::7]:8787`).
fn peer_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.parse().ok().map(canonical)
}

/// Parses `--allow-pods-from` (an address or a network in CIDR notation).
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{s:?} is neither an IP address nor a network; write e.g. 10.244.0.0/16 or 127.0.0.1")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::Peer;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn callers(wait: Duration) -> Arc<Callers> {
        let peers = Arc::new(PeerSet::new(
            "a",
            vec![
                Peer {
                    id: "a".into(),
                    url: "http://10.0.0.1:8787".into(),
                    zone: None,
                },
                Peer {
                    id: "b".into(),
                    url: "http://[fd00::2]:8787".into(),
                    zone: None,
                },
            ],
        ));
        Callers::new(
            peers,
            vec![parse_network("192.168.7.0/24").unwrap()],
            wait,
            Arc::new(Metrics::default()),
        )
    }

    fn pod(uid: &str, ip: &str, archives: &[(&str, String)]) -> NodePod {
        let annotation = serde_json::Value::Object(
            archives
                .iter()
                .map(|(c, r)| (c.to_string(), serde_json::Value::String(r.clone())))
                .collect(),
        )
        .to_string();
        NodePod::new(
            format!("shop/{uid}"),
            uid.into(),
            vec![ip.parse().unwrap()],
            Some(&annotation),
        )
    }

    fn reference(s: &str) -> RegistryRef {
        s.parse().unwrap()
    }

    #[test]
    fn only_listed_peers_may_fetch_blobs() {
        let c = callers(Duration::ZERO);
        assert!(c.check_peer("10.0.0.1".parse().unwrap()).is_ok());
        assert!(c.check_peer("fd00::2".parse().unwrap()).is_ok());
        assert!(c.check_peer("::ffff:10.0.0.1".parse().unwrap()).is_ok());
        assert!(c.check_peer("192.168.7.20".parse().unwrap()).is_err());
        assert!(c
            .check_status_reader("192.168.7.20".parse().unwrap())
            .is_ok());
        let e = c.check_peer("10.0.0.9".parse().unwrap()).unwrap_err();
        assert_eq!(e, Refusal::NotAPeer("10.0.0.9".parse().unwrap()));
        assert_eq!(c.metrics.denials(Denial::NotAPeer), 2);
    }

    #[tokio::test]
    async fn a_pod_gets_only_the_archive_its_template_pins_from_the_registry_it_names() {
        let c = callers(Duration::ZERO);
        let pinned = format!("reg.example/shop/app@{D1}");
        c.set_pods([pod("u1", "10.244.1.5", &[("app", pinned.clone())])]);
        let ip = "10.244.1.5".parse().unwrap();
        assert!(c
            .check_pod(ip, Wanted::Reference(&reference(&pinned)))
            .await
            .is_ok());
        let digest: Digest = D1.parse().unwrap();
        assert!(c.check_pod(ip, Wanted::Digest(&digest)).await.is_ok());
        // The same digest from a registry of the caller's choosing: the fetcher would pull there.
        let elsewhere = reference(&format!("evil.example/shop/app@{D1}"));
        let e = c
            .check_pod(ip, Wanted::Reference(&elsewhere))
            .await
            .unwrap_err();
        assert!(matches!(e, Refusal::NotPinned { .. }), "{e}");
        assert!(e.to_string().contains("shop/u1"), "{e}");
        let other: Digest = D2.parse().unwrap();
        assert!(c.check_pod(ip, Wanted::Digest(&other)).await.is_err());
        let stranger = "10.244.1.6".parse().unwrap();
        assert_eq!(
            c.check_pod(stranger, Wanted::Digest(&digest))
                .await
                .unwrap_err(),
            Refusal::NotOnThisNode(stranger)
        );
        // An open network is allowed any archive.
        assert!(c
            .check_pod("192.168.7.20".parse().unwrap(), Wanted::Digest(&other))
            .await
            .is_ok());
        assert_eq!(c.metrics.denials(Denial::NotPinned), 2);
        assert_eq!(c.metrics.denials(Denial::NotOnThisNode), 1);
        assert_eq!(c.pinned_on_node(), vec![reference(&pinned)]);
        c.remove_pod("u1");
        assert!(c.check_pod(ip, Wanted::Digest(&digest)).await.is_err());
        assert!(c.pinned_on_node().is_empty());
    }

    #[tokio::test]
    async fn a_new_pod_waits_for_the_watch_and_a_stranger_is_refused_after_the_wait() {
        let c = callers(Duration::from_secs(5));
        c.set_pods([]);
        let pinned = format!("reg.example/shop/app@{D1}");
        let ip: IpAddr = "10.244.1.7".parse().unwrap();
        let later = c.clone();
        let p = pinned.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            later.put_pod(pod("u7", "10.244.1.7", &[("app", p)]));
        });
        c.check_pod(ip, Wanted::Reference(&reference(&pinned)))
            .await
            .expect("the pod appears while its request waits");
        let short = callers(Duration::from_millis(50));
        short.set_pods([]);
        assert!(short
            .check_pod(ip, Wanted::Reference(&reference(&pinned)))
            .await
            .is_err());
    }

    #[test]
    fn stats_go_to_the_api_server_peers_and_open_networks_only() {
        let c = callers(Duration::ZERO);
        let api: IpAddr = "10.88.0.1".parse().unwrap();
        let pod: IpAddr = "10.244.1.5".parse().unwrap();
        c.set_pods([pod_with_ip("u1", "10.244.1.5")]);
        assert_eq!(c.pod_name("u1").as_deref(), Some("shop/u1"));
        assert_eq!(c.pod_name("u2"), None);
        // Before the API server's address is known, it is a stranger like any pod.
        assert_eq!(
            c.check_stats_reader(api).unwrap_err(),
            Refusal::NotAStatsReader(api)
        );
        c.set_api_servers(vec![api]);
        assert!(c.check_stats_reader(api).is_ok());
        assert!(c
            .check_stats_reader("::ffff:10.88.0.1".parse().unwrap())
            .is_ok());
        assert!(c.check_stats_reader("10.0.0.1".parse().unwrap()).is_ok());
        assert!(c.check_stats_reader("192.168.7.9".parse().unwrap()).is_ok());
        // A pod of this node, even one the watch knows, is refused: pod names are not its to read.
        let e = c.check_stats_reader(pod).unwrap_err();
        assert!(e.to_string().contains("pods/proxy"), "{e}");
        assert_eq!(c.metrics.denials(Denial::NotAStatsReader), 2);
    }

    fn pod_with_ip(uid: &str, ip: &str) -> NodePod {
        pod(uid, ip, &[])
    }

    #[test]
    fn malformed_annotations_pin_nothing_and_bad_networks_name_the_fix() {
        let p = NodePod::new("shop/x".into(), "u".into(), vec![], Some("{\"app\": 5}"));
        assert!(p.pinned.is_empty());
        let p = NodePod::new(
            "shop/x".into(),
            "u".into(),
            vec![],
            Some("{\"app\": \"reg.example/shop/app:latest\"}"),
        );
        assert!(p.pinned.is_empty(), "a tag pins nothing");
        assert!(parse_network("10.0.0.0/8").is_ok());
        assert!(parse_network("::1").is_ok());
        assert!(parse_network("somewhere")
            .unwrap_err()
            .contains("10.244.0.0/16"));
    }

    #[test]
    fn peer_urls_give_their_addresses() {
        assert_eq!(
            peer_ip("http://10.0.0.7:8787"),
            Some("10.0.0.7".parse().unwrap())
        );
        assert_eq!(
            peer_ip("http://[fd00::7]:8787/"),
            Some("fd00::7".parse().unwrap())
        );
        assert_eq!(peer_ip("http://node-a:8787"), None);
    }
}
