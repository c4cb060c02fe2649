//! Blob downloads: one per digest (single flight), from the parent in the rendezvous tree,
//! re-parenting with Range on failure, the registry only when no peer can give the bytes.
//! It must not publish anything: a blob reaches the store only through `Store::commit`.

use crate::digest::Digest;
use crate::metrics::{ErrorKind, Metrics, PeerFailure};
use crate::peers::{Peer, PeerSet};
use crate::ranking;
use crate::registry::Origin;
use crate::store::{Partial, Store, StoreError};
use bytes::Bytes;
use classcache_core::fetcher::http::{
    self as api, BlobStatus, ATTEMPT_HEADER, COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE,
    FROM_HEADER, HOPS_HEADER,
};
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::RegistryError;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a peer marked bad for a digest (wrong bytes) is skipped for that digest.
const SUSPECT_FOR: Duration = Duration::from_secs(600);
/// A stalled parent that has this many more bytes than it sent us is not waiting upstream.
const STALL_SLACK: u64 = 2 << 20;
/// Full restarts after a digest mismatch.
const MISMATCH_RESTARTS: u32 = 3;
/// Full restarts because a parent discarded the bytes it had sent.
const UPSTREAM_RESTARTS: u32 = 8;
/// Passes over all sources before a download gives up (with a growing pause between).
const ROUNDS: u32 = 5;
/// The first round in which a node that has earlier-ranked peers may ask the registry.
const REGISTRY_ROUND: u32 = 2;

#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Children per node in the distribution tree (1 = a chain).
    pub fanout: usize,
    /// No byte for this long from a source: ask whether it is alive, else move on.
    pub stall_timeout: Duration,
    pub max_hops: u32,
}

/// A blob and where the registry has it.
#[derive(Debug, Clone)]
pub struct BlobRef {
    pub repo: RegistryRef,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Running,
    Done,
    Failed(Arc<str>),
}

/// What readers of an in-flight download follow: bytes of the current attempt's partial file.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Node-wide unique id of the current attempt; it changes when a download restarts after
    /// a digest mismatch, and readers of an older attempt must abort: their bytes were wrong.
    pub attempt: u64,
    pub partial: Option<PathBuf>,
    pub written: u64,
    pub state: State,
}

pub struct Transfer {
    pub digest: Digest,
    pub size: u64,
    progress: watch::Sender<Progress>,
}

impl Transfer {
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

pub enum Availability {
    Complete { path: PathBuf, size: u64 },
    InFlight(Arc<Transfer>),
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob {digest}: every source failed (parents, peers, registry); last error: {last}")]
    Exhausted { digest: Digest, last: String },
}

/// A failure of one source: the download moves on to the next one.
struct SourceFailure {
    why: PeerFailure,
    message: String,
}

enum PullStep {
    Source(SourceFailure),
    Local(StoreError),
    /// The parent discarded the bytes it sent us (its own digest check failed): start over.
    UpstreamRestarted,
}

impl From<StoreError> for PullStep {
    fn from(e: StoreError) -> Self {
        PullStep::Local(e)
    }
}

#[derive(Debug, Clone)]
enum Source {
    /// A peer ranked earlier: asking it makes it download too, so the tree fills top-down.
    Upstream(Peer),
    /// Any peer that already has the complete blob.
    AnyComplete,
    Registry,
}

pub struct Node {
    pub config: PullConfig,
    pub store: Arc<Store>,
    pub peers: Arc<PeerSet>,
    pub origin: Arc<Origin>,
    pub metrics: Arc<Metrics>,
    pub http: reqwest::Client,
    transfers: Mutex<HashMap<Digest, Arc<Transfer>>>,
    suspects: Mutex<HashMap<(Digest, String), Instant>>,
    next_attempt: AtomicU64,
    /// The attempt that completed each blob this process downloaded.
    completed_by: Mutex<HashMap<Digest, u64>>,
    /// Attempts whose bytes failed the digest check (children that got them must start over).
    discarded: Mutex<std::collections::HashSet<u64>>,
}

fn source_failure(why: PeerFailure, message: impl Into<String>) -> PullStep {
    PullStep::Source(SourceFailure {
        why,
        message: message.into(),
    })
}

impl Node {
    pub fn new(
        config: PullConfig,
        store: Arc<Store>,
        peers: Arc<PeerSet>,
        origin: Arc<Origin>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Plain HTTP inside the cluster: loading the system's TLS roots would cost the
            // init container ~150 file reads at every pod start.
            .tls_certs_only([])
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        Arc::new(Self {
            config,
            store,
            peers,
            origin,
            metrics,
            http,
            transfers: Mutex::new(HashMap::new()),
            suspects: Mutex::new(HashMap::new()),
            // Unique across restarts of the process too, so a child never confuses two runs.
            next_attempt: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(1),
            ),
            completed_by: Mutex::new(HashMap::new()),
            discarded: Mutex::new(std::collections::HashSet::new()),
        })
    }

    pub fn self_id(&self) -> &str {
        self.peers.self_id()
    }

    /// What a child needs to judge this node as a source; `asked_attempt` is the attempt id
    /// the child's stream carried.
    pub async fn status(&self, digest: &Digest, asked_attempt: Option<u64>) -> BlobStatus {
        let mut status = self.status_now(digest).await;
        status.discarded =
            asked_attempt.is_some_and(|a| self.discarded.lock().unwrap().contains(&a));
        status
    }

    async fn status_now(&self, digest: &Digest) -> BlobStatus {
        let d = digest.clone();
        if let Some(size) = self.store.run(move |s| s.blob_size(&d)).await {
            return BlobStatus {
                complete: true,
                running: false,
                written: size,
                attempt: self.completed_by.lock().unwrap().get(digest).copied(),
                discarded: false,
            };
        }
        let transfer = self.transfers.lock().unwrap().get(digest).cloned();
        match transfer {
            Some(t) => {
                let p = t.progress.borrow();
                BlobStatus {
                    complete: false,
                    running: p.state == State::Running,
                    written: p.written,
                    attempt: Some(p.attempt),
                    discarded: false,
                }
            }
            None => BlobStatus {
                complete: false,
                running: false,
                written: 0,
                attempt: None,
                discarded: false,
            },
        }
    }

    /// The blob if complete; else the download in flight, started now (one per digest) when
    /// `start` is set.
    pub async fn availability(
        self: &Arc<Self>,
        blob: &BlobRef,
        hops: u32,
        start: bool,
    ) -> Option<Availability> {
        if let Some(available) = self.complete(&blob.digest).await {
            return Some(available);
        }
        // No lock is held across the check above: a download that finishes in between is
        // caught by `download`, which first looks in the store again.
        let mut transfers = self.transfers.lock().unwrap();
        if let Some(t) = transfers.get(&blob.digest) {
            return Some(Availability::InFlight(t.clone()));
        }
        if !start {
            return None;
        }
        let (progress, _) = watch::channel(Progress {
            attempt: self.next_attempt.fetch_add(1, Relaxed),
            partial: None,
            written: 0,
            state: State::Running,
        });
        let transfer = Arc::new(Transfer {
            digest: blob.digest.clone(),
            size: blob.size,
            progress,
        });
        transfers.insert(blob.digest.clone(), transfer.clone());
        drop(transfers);
        let node = self.clone();
        let blob = blob.clone();
        let t = transfer.clone();
        tokio::spawn(async move {
            let result = node.download(&blob, &t, hops).await;
            let state = match result {
                Ok(_) => State::Done,
                Err(e) => {
                    tracing::error!(digest = %blob.digest, error = %e, "download failed");
                    let kind = match &e {
                        PullError::Store(s) => s.metric_kind(),
                        PullError::Exhausted { .. } => ErrorKind::Exhausted,
                    };
                    node.metrics.error(kind);
                    State::Failed(e.to_string().into())
                }
            };
            // Out of the map first: a Done reader re-checks the store, a new request starts over.
            node.transfers.lock().unwrap().remove(&blob.digest);
            t.progress.send_modify(|p| p.state = state);
        });
        Some(Availability::InFlight(transfer))
    }

    /// The blob as a complete store entry, if it is one (marking it used).
    pub async fn complete(&self, digest: &Digest) -> Option<Availability> {
        let d = digest.clone();
        let size = self.store.run(move |s| s.blob_size(&d)).await?;
        Some(Availability::Complete {
            path: self.store.blob_path(digest),
            size,
        })
    }

    /// Downloads a blob (or joins the download in flight) and waits until it is in the store.
    pub async fn fetch_blob(self: &Arc<Self>, blob: &BlobRef) -> Result<PathBuf, Arc<str>> {
        match self.availability(blob, 0, true).await {
            Some(Availability::Complete { path, .. }) => Ok(path),
            Some(Availability::InFlight(t)) => {
                let mut rx = t.subscribe();
                loop {
                    let state = rx.borrow_and_update().state.clone();
                    match state {
                        State::Done => return Ok(self.store.blob_path(&blob.digest)),
                        State::Failed(e) => return Err(e),
                        State::Running => {}
                    }
                    if rx.changed().await.is_err() {
                        return match self.complete(&blob.digest).await {
                            Some(_) => Ok(self.store.blob_path(&blob.digest)),
                            None => Err("the download ended without a result".into()),
                        };
                    }
                }
            }
            None => unreachable!("availability with start=true always answers"),
        }
    }

    fn is_suspect(&self, digest: &Digest, peer_id: &str) -> bool {
        let mut suspects = self.suspects.lock().unwrap();
        suspects.retain(|_, since| since.elapsed() < SUSPECT_FOR);
        suspects.contains_key(&(digest.clone(), peer_id.to_string()))
    }

    /// The sources for a digest, best first: earlier-ranked peers (parent first), then any peer
    /// with the complete blob, then the registry.
    fn plan(&self, digest: &Digest) -> Vec<Source> {
        let peers = self.peers.snapshot();
        let ids = peers
            .iter()
            .map(|p| p.id.as_str())
            .chain(std::iter::once(self.self_id()));
        let ranked = ranking::rank(digest, ids);
        let me = ranked
            .iter()
            .position(|id| *id == self.self_id())
            .expect("self is ranked");
        let mut sources: Vec<Source> = ranking::upstream(me, self.config.fanout)
            .into_iter()
            .filter_map(|r| peers.iter().find(|p| p.id == ranked[r]))
            .filter(|p| !self.is_suspect(digest, &p.id))
            .map(|p| Source::Upstream(p.clone()))
            .collect();
        sources.push(Source::AnyComplete);
        sources.push(Source::Registry);
        sources
    }

    async fn download(
        self: &Arc<Self>,
        blob: &BlobRef,
        transfer: &Transfer,
        hops: u32,
    ) -> Result<PathBuf, PullError> {
        let mut last = String::from("no source was tried");
        let (mut mismatches, mut restarts) = (0, 0);
        let mut attempt = transfer.progress.borrow().attempt;
        // It may have been completed since the caller looked (no lock is held across that look).
        if self.complete(&blob.digest).await.is_some() {
            return Ok(self.store.blob_path(&blob.digest));
        }
        loop {
            let (digest, size) = (blob.digest.clone(), blob.size);
            let mut partial = self.store.run(move |s| s.begin(&digest, size)).await?;
            transfer.progress.send_modify(|p| {
                p.attempt = attempt;
                p.partial = Some(partial.path().to_path_buf());
                p.written = 0;
            });
            let mut contributors: Vec<String> = Vec::new();
            let filled = self
                .fill(
                    blob,
                    &mut partial,
                    transfer,
                    hops,
                    &mut contributors,
                    &mut last,
                )
                .await;
            match filled {
                Ok(()) => {}
                Err(PullStep::Local(e)) => return Err(e.into()),
                Err(PullStep::UpstreamRestarted) if restarts < UPSTREAM_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(digest = %blob.digest, "a parent discarded the bytes it sent; starting over");
                    attempt = self.next_attempt.fetch_add(1, Relaxed);
                    continue;
                }
                Err(_) => {
                    return Err(PullError::Exhausted {
                        digest: blob.digest.clone(),
                        last,
                    })
                }
            }
            let committed = self.store.run(move |s| s.commit(partial)).await;
            match committed {
                Ok(path) => {
                    self.completed_by
                        .lock()
                        .unwrap()
                        .insert(blob.digest.clone(), attempt);
                    return Ok(path);
                }
                Err(e @ StoreError::DigestMismatch { .. }) => {
                    tracing::error!(digest = %blob.digest, peers = ?contributors, error = %e, "wrong bytes; marking the peers that sent them and starting over");
                    for id in &contributors {
                        self.metrics.peer_failure(PeerFailure::DigestMismatch);
                        self.suspects
                            .lock()
                            .unwrap()
                            .insert((blob.digest.clone(), id.clone()), Instant::now());
                    }
                    last = e.to_string();
                    self.discarded.lock().unwrap().insert(attempt);
                    mismatches += 1;
                    if mismatches >= MISMATCH_RESTARTS {
                        return Err(PullError::Exhausted {
                            digest: blob.digest.clone(),
                            last,
                        });
                    }
                    attempt = self.next_attempt.fetch_add(1, Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fills the partial from the planned sources, in order, for a few rounds.
    async fn fill(
        self: &Arc<Self>,
        blob: &BlobRef,
        partial: &mut Partial,
        transfer: &Transfer,
        hops: u32,
        contributors: &mut Vec<String>,
        last: &mut String,
    ) -> Result<(), PullStep> {
        let sources = self.plan(&blob.digest);
        let has_upstream = sources.iter().any(|s| matches!(s, Source::Upstream(_)));
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(300 * u64::from(round))).await;
            }
            for source in &sources {
                if partial.written() >= blob.size {
                    return Ok(());
                }
                // The registry is the last resort: a node with earlier-ranked peers first gives
                // them a few rounds (a loaded parent may just be slow to answer), and while one
                // of them is alive and getting the blob, a hiccup of ours must not become a
                // second registry pull. The final round goes to the registry whatever.
                if matches!(source, Source::Registry)
                    && round + 1 < ROUNDS
                    && has_upstream
                    && (round < REGISTRY_ROUND
                        || self.an_upstream_is_getting_it(&sources, &blob.digest).await)
                {
                    tracing::info!(digest = %blob.digest, round, "an earlier-ranked peer is still getting it; retrying the peers, not the registry");
                    continue;
                }
                let result = self
                    .pull_from(source, blob, partial, transfer, hops, contributors)
                    .await;
                match result {
                    Ok(()) => {}
                    Err(PullStep::Source(f)) => {
                        match source {
                            Source::Upstream(p) => {
                                self.metrics.peer_failure(f.why);
                                tracing::warn!(digest = %blob.digest, peer = %p.id, offset = partial.written(), error = %f.message, "peer transfer failed; trying the next source");
                            }
                            // The normal case for the root: nobody has it yet.
                            Source::AnyComplete => {
                                tracing::debug!(digest = %blob.digest, error = %f.message, "no peer has the complete blob")
                            }
                            Source::Registry => {
                                tracing::warn!(digest = %blob.digest, offset = partial.written(), error = %f.message, "registry transfer failed")
                            }
                        }
                        *last = f.message;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        if partial.written() >= blob.size {
            Ok(())
        } else {
            Err(PullStep::Source(SourceFailure {
                why: PeerFailure::Status,
                message: last.clone(),
            }))
        }
    }

    /// Appends what `source` sends from the partial's current length on, noting in
    /// `contributors` the peers that sent bytes (they are to blame for a digest mismatch).
    async fn pull_from(
        self: &Arc<Self>,
        source: &Source,
        blob: &BlobRef,
        partial: &mut Partial,
        transfer: &Transfer,
        hops: u32,
        contributors: &mut Vec<String>,
    ) -> Result<(), PullStep> {
        let offset = partial.written();
        let (peer, (stream, attempt)) = match source {
            Source::Upstream(peer) => {
                let stream = self.peer_stream(peer, blob, offset, hops, false).await?;
                (Some(peer.clone()), stream)
            }
            Source::AnyComplete => {
                let Some(peer) = self.find_complete(&blob.digest).await else {
                    return Err(source_failure(
                        PeerFailure::Status,
                        "no peer has it complete",
                    ));
                };
                let stream = self.peer_stream(&peer, blob, offset, hops, true).await?;
                (Some(peer), stream)
            }
            Source::Registry => {
                let stream = self
                    .origin
                    .blob_from(&blob.repo, &blob.digest, offset)
                    .await
                    .map_err(|e: RegistryError| {
                        self.metrics.error(ErrorKind::Registry);
                        source_failure(PeerFailure::Connect, e.to_string())
                    })?;
                tracing::info!(digest = %blob.digest, offset, "pulling from the registry");
                (None, (stream, None))
            }
        };
        let result = self
            .copy(stream, peer.as_ref(), blob, partial, transfer)
            .await;
        if let Some(peer) = &peer {
            if partial.written() > offset && !contributors.contains(&peer.id) {
                contributors.push(peer.id.clone());
            }
        }
        if let (Err(_), Some(peer), Some(attempt)) = (&result, &peer, attempt) {
            let status = self.peer_status(peer, &blob.digest, Some(attempt)).await;
            if partial.written() > 0 && status.is_some_and(|s| s.discarded) {
                return Err(PullStep::UpstreamRestarted);
            }
        }
        result
    }

    /// Whether any upstream source answers that it has or is downloading the blob.
    async fn an_upstream_is_getting_it(&self, sources: &[Source], digest: &Digest) -> bool {
        let asks: Vec<_> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Upstream(p) => Some(Box::pin(async move {
                    match self.peer_status(p, digest, None).await {
                        Some(st) if st.running || st.complete => Ok(()),
                        _ => Err(()),
                    }
                })),
                _ => None,
            })
            .collect();
        !asks.is_empty() && futures_util::future::select_ok(asks).await.is_ok()
    }

    /// A peer that has the complete blob, asking all of them at once.
    async fn find_complete(&self, digest: &Digest) -> Option<Peer> {
        self.first_peer_answer(
            |p| self.is_suspect(digest, &p.id),
            |peer| {
                let request = self
                    .http
                    .get(format!("{}{}", peer.url, api::status_path(digest, None)))
                    .timeout(Duration::from_secs(2));
                async move {
                    let status: BlobStatus = request
                        .send()
                        .await
                        .map_err(|_| ())?
                        .json()
                        .await
                        .map_err(|_| ())?;
                    status.complete.then_some(peer).ok_or(())
                }
            },
        )
        .await
    }

    /// Asks every other peer (but those `skip` names) at once; the first `Ok` answer wins.
    pub async fn first_peer_answer<T, F, Fut>(
        &self,
        skip: impl Fn(&Peer) -> bool,
        ask: F,
    ) -> Option<T>
    where
        F: Fn(Peer) -> Fut,
        Fut: std::future::Future<Output = Result<T, ()>>,
    {
        let asks: Vec<_> = self
            .peers
            .snapshot()
            .iter()
            .filter(|p| p.id != self.self_id() && !skip(p))
            .map(|p| Box::pin(ask(p.clone())))
            .collect();
        if asks.is_empty() {
            return None;
        }
        futures_util::future::select_ok(asks)
            .await
            .ok()
            .map(|(answer, _)| answer)
    }

    async fn peer_stream(
        &self,
        peer: &Peer,
        blob: &BlobRef,
        offset: u64,
        hops: u32,
        complete_only: bool,
    ) -> Result<(BoxStream<'static, Result<Bytes, String>>, Option<u64>), PullStep> {
        let url = blob_url(peer, blob);
        let mut request = self
            .http
            .get(&url)
            .header(HOPS_HEADER, hops + 1)
            .header(FROM_HEADER, self.self_id());
        if offset > 0 {
            request = request.header(http::header::RANGE, api::range_from(offset));
        }
        if complete_only {
            request = request.header(COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE);
        }
        let response = request
            .send()
            .await
            .map_err(|e| source_failure(PeerFailure::Connect, format!("{url}: {e}")))?;
        let status = response.status();
        let expected = if offset > 0 {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        if status == http::StatusCode::SERVICE_UNAVAILABLE {
            return Err(source_failure(
                PeerFailure::Busy,
                format!("{url}: upload cap reached"),
            ));
        }
        if status != expected {
            return Err(source_failure(
                PeerFailure::Status,
                format!("{url}: HTTP {status}, expected {expected}"),
            ));
        }
        let attempt = response
            .headers()
            .get(ATTEMPT_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let stream = response
            .bytes_stream()
            .map(|r| r.map_err(|e| e.to_string()))
            .boxed();
        Ok((stream, attempt))
    }

    /// Copies a source's bytes into the partial, publishing progress to readers, until the
    /// blob is complete, the source ends, or it stalls.
    async fn copy(
        &self,
        mut stream: BoxStream<'static, Result<Bytes, String>>,
        peer: Option<&Peer>,
        blob: &BlobRef,
        partial: &mut Partial,
        transfer: &Transfer,
    ) -> Result<(), PullStep> {
        let counter = match peer {
            Some(_) => &self.metrics.bytes_from_peers,
            None => &self.metrics.bytes_from_registry,
        };
        while partial.written() < blob.size {
            let next = tokio::time::timeout(self.config.stall_timeout, stream.next()).await;
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(e))) => return Err(source_failure(PeerFailure::Truncated, e)),
                Ok(None) => {
                    return Err(source_failure(
                        PeerFailure::Truncated,
                        format!(
                            "the source ended at byte {} of {}",
                            partial.written(),
                            blob.size
                        ),
                    ))
                }
                Err(_) => {
                    if let Some(peer) = peer {
                        if self.waiting_upstream(peer, blob, partial.written()).await {
                            continue;
                        }
                    }
                    return Err(source_failure(
                        PeerFailure::Stalled,
                        format!("no byte for {:?}", self.config.stall_timeout),
                    ));
                }
            };
            // A source never gets to write past the blob's size.
            let room = (blob.size - partial.written()) as usize;
            let chunk = if chunk.len() > room {
                chunk.slice(..room)
            } else {
                chunk
            };
            counter.fetch_add(chunk.len() as u64, Relaxed);
            partial.append_async(chunk).await?;
            let written = partial.written();
            transfer.progress.send_modify(|p| p.written = written);
        }
        Ok(())
    }

    /// True when a silent parent is alive and itself waiting for bytes from upstream: then its
    /// own stall handling re-parents it, and its children keep waiting instead of stampeding.
    async fn waiting_upstream(&self, peer: &Peer, blob: &BlobRef, have: u64) -> bool {
        let status = self.peer_status(peer, &blob.digest, None).await;
        matches!(status, Some(s) if s.running && s.written <= have + STALL_SLACK)
    }

    async fn peer_status(
        &self,
        peer: &Peer,
        digest: &Digest,
        attempt: Option<u64>,
    ) -> Option<BlobStatus> {
        self.http
            .get(format!("{}{}", peer.url, api::status_path(digest, attempt)))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
}

/// A peer's URL for a blob; the query carries what the peer needs to fetch it itself.
pub fn blob_url(peer: &Peer, blob: &BlobRef) -> String {
    let repo = format!("{}/{}", blob.repo.registry, blob.repo.repository);
    format!(
        "{}{}",
        peer.url,
        api::blob_request_path(&blob.digest, &repo, blob.size)
    )
}
