//! The node's downloads, one per digest (single flight): progress for followers, attempts, restarts after a digest mismatch, commit to the store.
//! It must not publish anything: a blob reaches the store only through `Store::commit`.

use crate::download::{DownloadError, PullStep};
use crate::locks::LockExt;
use crate::metrics::{ErrorKind, Metrics, PeerFailure};
use crate::peers::{Peer, PeerSet};
use crate::sources::{Origin, PeerTransport};
use crate::store::{Store, StoreError};
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::BlobStatus;
use classcache_core::fetcher::stripes::{StripeChoice, Stripes};
use classcache_core::reference::RegistryRef;
use futures_util::FutureExt;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a peer marked bad for a digest (wrong bytes) is skipped for that digest.
const SUSPECT_FOR: Duration = Duration::from_secs(600);
/// Full restarts after a digest mismatch.
const MISMATCH_RESTARTS: u32 = 3;
/// Full restarts because a parent discarded the bytes it had sent.
const UPSTREAM_RESTARTS: u32 = 8;
/// How often a download checks that someone still waits for it; two checks in a row with no
/// one waiting cancel it.
const ABANDON_CHECK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Children per node in the distribution tree (1 = a chain) of an unstriped blob.
    pub fanout: usize,
    /// Stripes a blob is cut into, each down its own tree of fanout `stripes` (1: one stream
    /// down one tree of fanout `fanout`), by fleet size or fixed.
    pub stripes: StripeChoice,
    /// Order the nodes zone by zone, so the bytes cross into each zone once.
    pub zone_aware: bool,
    /// No byte for this long from a source: ask whether it is alive, else move on.
    pub stall_timeout: Duration,
    pub max_hops: u32,
    /// Downloads running at once; more wait for a slot (peers asking for a new one get 503).
    pub max_downloads: usize,
}

/// A blob and where the registry has it; `size` comes from a verified manifest.
#[derive(Debug, Clone)]
pub struct BlobRef {
    /// The pinned archive whose verified manifest lists this blob as its layer (what peers
    /// are told, so they can verify the size themselves).
    pub archive: RegistryRef,
    pub repo: RegistryRef,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub enum State {
    Running,
    Done,
    Failed(Arc<PullError>),
}

/// What readers of an in-flight download follow: bytes of the current attempt's partial file.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Node-wide unique id of the current attempt; it changes when a download restarts after
    /// a digest mismatch, and readers of an older attempt must abort: their bytes were wrong.
    pub attempt: u64,
    pub partial: Option<PathBuf>,
    pub layout: Stripes,
    /// The bytes of each stripe written, from its start.
    pub written: Vec<u64>,
    pub state: State,
}

impl Progress {
    /// A transfer not started yet: nothing written.
    pub fn new(attempt: u64, layout: Stripes) -> Self {
        Self {
            attempt,
            partial: None,
            layout,
            written: vec![0; layout.count()],
            state: State::Running,
        }
    }

    /// Where the bytes a reader at `pos` may read now end.
    pub fn readable_to(&self, pos: u64) -> u64 {
        self.layout.readable_to(&self.written, pos)
    }

    /// Whether bytes `start..end` are all written (a peer may have them without waiting).
    pub fn has(&self, start: u64, end: u64) -> bool {
        self.readable_to(start) >= end
    }

    /// The bytes written in all.
    pub fn total_written(&self) -> u64 {
        self.written.iter().sum()
    }
}

pub struct Transfer {
    pub digest: Digest,
    pub size: u64,
    pub(crate) progress: watch::Sender<Progress>,
    /// Subscribers that follow the download without keeping it alive (the unpacker beside
    /// it): with only those left, no one waits and the download is cancelled.
    detached: AtomicUsize,
}

impl Transfer {
    /// Progress for a waiter: the download goes on while some waiter holds it.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Progress for a follower that does not keep the download alive; call
    /// [`Transfer::undetach`] when it is dropped.
    pub fn subscribe_detached(&self) -> watch::Receiver<Progress> {
        self.detached.fetch_add(1, Relaxed);
        self.progress.subscribe()
    }

    pub fn undetach(&self) {
        self.detached.fetch_sub(1, Relaxed);
    }

    fn waited_for(&self) -> bool {
        self.progress.receiver_count() > self.detached.load(Relaxed)
    }

    /// Resolves once no one has waited for the download for two checks in a row.
    async fn abandoned(&self) {
        let mut idle_checks = 0;
        while idle_checks < 2 {
            tokio::time::sleep(ABANDON_CHECK).await;
            idle_checks = if self.waited_for() {
                0
            } else {
                idle_checks + 1
            };
        }
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
    Exhausted {
        digest: Digest,
        #[source]
        last: DownloadError,
    },
    #[error("the download ended without a result")]
    Vanished,
    #[error("blob {0}: cancelled, no one waits for it any more")]
    Abandoned(Digest),
    #[error("blob {0}: the download panicked (a bug; see the log); ask again")]
    Panicked(Digest),
}

impl PullError {
    pub fn metric_kind(&self) -> ErrorKind {
        match self {
            PullError::Store(s) => s.metric_kind(),
            PullError::Exhausted { .. }
            | PullError::Vanished
            | PullError::Abandoned(_)
            | PullError::Panicked(_) => ErrorKind::Exhausted,
        }
    }
}

pub struct Node {
    pub config: PullConfig,
    pub store: Arc<Store>,
    pub peers: Arc<PeerSet>,
    pub origin: Arc<dyn Origin>,
    pub transport: Arc<dyn PeerTransport>,
    pub metrics: Arc<Metrics>,
    transfers: Mutex<HashMap<Digest, Arc<Transfer>>>,
    /// Slots of [`PullConfig::max_downloads`].
    downloads: Arc<tokio::sync::Semaphore>,
    suspects: Mutex<HashMap<(Digest, String), Instant>>,
    pub(crate) next_attempt: AtomicU64,
    /// The attempt that completed each blob this process downloaded.
    completed_by: Mutex<HashMap<Digest, u64>>,
    /// Attempts whose bytes failed the digest check (children that got them must start over).
    discarded: Mutex<HashSet<u64>>,
}

impl Node {
    pub fn new(
        config: PullConfig,
        store: Arc<Store>,
        peers: Arc<PeerSet>,
        origin: Arc<dyn Origin>,
        transport: Arc<dyn PeerTransport>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            downloads: Arc::new(tokio::sync::Semaphore::new(config.max_downloads.max(1))),
            config,
            store,
            peers,
            origin,
            transport,
            metrics,
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
            discarded: Mutex::new(HashSet::new()),
        })
    }

    /// How this node cuts a blob of `size` bytes into stripes (every node the same way, from the
    /// same peer list).
    pub fn stripes_of(&self, size: u64) -> Stripes {
        let peers = self.peers.snapshot();
        let me = self.self_id();
        let nodes = peers.len() + usize::from(!peers.iter().any(|p| p.id == me));
        Stripes::new(size, self.config.stripes.wanted(nodes), nodes)
    }

    pub fn self_id(&self) -> &str {
        self.peers.self_id()
    }

    /// What a child needs to judge this node as a source; `asked_attempt` is the attempt id
    /// the child's stream carried.
    pub async fn status(&self, digest: &Digest, asked_attempt: Option<u64>) -> BlobStatus {
        let mut status = self.status_now(digest).await;
        status.discarded = asked_attempt.is_some_and(|a| self.discarded.locked().contains(&a));
        status
    }

    async fn status_now(&self, digest: &Digest) -> BlobStatus {
        if let Some(Availability::Complete { size, .. }) = self.complete(digest).await {
            return BlobStatus {
                complete: true,
                running: false,
                written: size,
                attempt: self.completed_by.locked().get(digest).copied(),
                discarded: false,
                stripes: Vec::new(),
            };
        }
        let transfer = self.transfers.locked().get(digest).cloned();
        match transfer {
            Some(t) => {
                let p = t.progress.borrow();
                BlobStatus {
                    complete: false,
                    // A download still waiting for a slot is not running: its children
                    // must not wait on it.
                    running: matches!(p.state, State::Running) && p.partial.is_some(),
                    written: p.total_written(),
                    attempt: Some(p.attempt),
                    discarded: false,
                    stripes: match p.layout.count() {
                        1 => Vec::new(),
                        _ => p.written.clone(),
                    },
                }
            }
            None => BlobStatus::default(),
        }
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
        let mut transfers = self.transfers.locked();
        if let Some(t) = transfers.get(&blob.digest) {
            return Some(Availability::InFlight(t.clone()));
        }
        if !start {
            return None;
        }
        let (progress, _) = watch::channel(Progress::new(
            self.next_attempt.fetch_add(1, Relaxed),
            self.stripes_of(blob.size),
        ));
        let transfer = Arc::new(Transfer {
            digest: blob.digest.clone(),
            size: blob.size,
            progress,
            detached: AtomicUsize::new(0),
        });
        transfers.insert(blob.digest.clone(), transfer.clone());
        drop(transfers);
        let node = self.clone();
        let blob = blob.clone();
        let t = transfer.clone();
        tokio::spawn(async move {
            let work = async {
                let _slot = node.downloads.clone().acquire_owned().await;
                // A panic must not leave the transfer in the map forever (every later request
                // for the digest would wait on it).
                AssertUnwindSafe(node.download(&blob, &t, hops))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(PullError::Panicked(blob.digest.clone())))
            };
            // Dropping the download drops its partial file and gives back its room.
            let result = tokio::select! {
                result = work => result,
                () = t.abandoned() => Err(PullError::Abandoned(blob.digest.clone())),
            };
            let state = match result {
                Ok(_) => State::Done,
                // Nobody waits: not a failure of the node.
                Err(e @ PullError::Abandoned(_)) => {
                    tracing::info!(digest = %blob.digest, "{e}; partial removed");
                    State::Failed(Arc::new(e))
                }
                Err(e) => {
                    tracing::error!(digest = %blob.digest, error = %e, "download failed");
                    node.metrics.error(e.metric_kind());
                    State::Failed(Arc::new(e))
                }
            };
            // Out of the map first: a Done reader re-checks the store, a new request starts over.
            node.transfers.locked().remove(&blob.digest);
            t.progress.send_modify(|p| p.state = state);
        });
        Some(Availability::InFlight(transfer))
    }

    /// Downloads a blob (or joins the download in flight) and waits until it is in the store.
    pub async fn fetch_blob(self: &Arc<Self>, blob: &BlobRef) -> Result<PathBuf, Arc<PullError>> {
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
                            None => Err(Arc::new(PullError::Vanished)),
                        };
                    }
                }
            }
            None => unreachable!("availability with start=true always answers"),
        }
    }

    /// Whether a download of `digest` is in flight here.
    pub fn in_flight(&self, digest: &Digest) -> bool {
        self.transfers.locked().contains_key(digest)
    }

    /// Whether every download slot is taken (a new download would wait).
    pub fn downloads_full(&self) -> bool {
        self.downloads.available_permits() == 0
    }

    pub(crate) fn is_suspect(&self, digest: &Digest, peer_id: &str) -> bool {
        let mut suspects = self.suspects.locked();
        suspects.retain(|_, since| since.elapsed() < SUSPECT_FOR);
        suspects.contains_key(&(digest.clone(), peer_id.to_string()))
    }

    /// One download of `blob`: attempts from the planned sources until the bytes match the
    /// digest, then the commit.
    async fn download(
        self: &Arc<Self>,
        blob: &BlobRef,
        transfer: &Transfer,
        hops: u32,
    ) -> Result<PathBuf, PullError> {
        let mut last = DownloadError::NothingTried;
        let (mut mismatches, mut restarts) = (0, 0);
        let mut attempt = transfer.progress.borrow().attempt;
        // It may have been completed since the caller looked (no lock is held across that look).
        if self.complete(&blob.digest).await.is_some() {
            return Ok(self.store.blob_path(&blob.digest));
        }
        loop {
            let (digest, size) = (blob.digest.clone(), blob.size);
            let partial = self.store.run(move |s| s.begin(&digest, size)).await?;
            transfer.progress.send_modify(|p| {
                p.attempt = attempt;
                p.partial = Some(partial.path().to_path_buf());
                p.written.iter_mut().for_each(|w| *w = 0);
            });
            let contributors = match self.fill(blob, &partial, transfer, hops).await {
                Ok(contributors) => contributors,
                Err(PullStep::Local(e)) => return Err(e.into()),
                Err(PullStep::UpstreamRestarted) if restarts < UPSTREAM_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(digest = %blob.digest, "a parent discarded the bytes it sent; starting over");
                    attempt = self.next_attempt.fetch_add(1, Relaxed);
                    continue;
                }
                Err(PullStep::UpstreamRestarted) => {
                    return Err(PullError::Exhausted {
                        digest: blob.digest.clone(),
                        last,
                    })
                }
                Err(PullStep::Source(e)) => {
                    return Err(PullError::Exhausted {
                        digest: blob.digest.clone(),
                        last: e,
                    })
                }
            };
            let committed = self.store.run(move |s| s.commit(partial)).await;
            match committed {
                Ok(path) => {
                    self.completed_by
                        .locked()
                        .insert(blob.digest.clone(), attempt);
                    return Ok(path);
                }
                Err(e @ StoreError::DigestMismatch { .. }) => {
                    tracing::error!(digest = %blob.digest, peers = ?contributors, error = %e, "wrong bytes; marking the peers that sent them and starting over");
                    for id in &contributors {
                        self.metrics.peer_failure(PeerFailure::DigestMismatch);
                        self.suspects
                            .locked()
                            .insert((blob.digest.clone(), id.clone()), Instant::now());
                    }
                    last = DownloadError::WrongBytes(e);
                    self.discarded.locked().insert(attempt);
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

    /// Asks every other peer (but those `skip` names) at once; the first `Some` answer wins.
    pub async fn first_peer_answer<T, F, Fut>(
        &self,
        skip: impl Fn(&Peer) -> bool,
        ask: F,
    ) -> Option<T>
    where
        F: Fn(Peer) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let asks: Vec<_> = self
            .peers
            .snapshot()
            .iter()
            .filter(|p| p.id != self.self_id() && !skip(p))
            .map(|p| {
                let answer = ask(p.clone());
                Box::pin(async move { answer.await.ok_or(()) })
            })
            .collect();
        if asks.is_empty() {
            return None;
        }
        futures_util::future::select_ok(asks)
            .await
            .ok()
            .map(|(answer, _)| answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, TestSource};
    use classcache_oci::memory::MemorySource;

    #[tokio::test]
    async fn a_transfer_no_one_waits_for_is_abandoned_but_an_unpacker_alone_does_not_keep_it() {
        let (progress, _) = watch::channel(Progress::new(1, Stripes::new(10, 1, 1)));
        let t = Transfer {
            digest: Digest::of(b"layer"),
            size: 10,
            progress,
            detached: AtomicUsize::new(0),
        };
        let waiter = t.subscribe();
        let unpacker = t.subscribe_detached();
        assert!(t.waited_for());
        let abandoned = tokio::time::timeout(ABANDON_CHECK * 6, t.abandoned()).await;
        assert!(abandoned.is_err(), "a waiter keeps it alive");
        drop(waiter);
        assert!(!t.waited_for(), "the unpacker alone does not");
        tokio::time::timeout(ABANDON_CHECK * 3, t.abandoned())
            .await
            .expect("abandoned within two checks");
        drop(unpacker);
        t.undetach();
        assert_eq!(t.detached.load(Relaxed), 0);
    }

    #[test]
    fn a_finished_stripe_is_had_while_the_blob_is_not() {
        use classcache_core::fetcher::stripes::MIN_STRIPE;
        let layout = Stripes::new(4 * MIN_STRIPE, 4, 10);
        let mut p = Progress::new(1, layout);
        p.written = vec![0, MIN_STRIPE, MIN_STRIPE / 2, MIN_STRIPE];
        assert!(p.has(layout.piece(1).start, layout.piece(1).end));
        assert!(p.has(layout.piece(3).start, layout.piece(3).end));
        assert!(!p.has(layout.piece(2).start, layout.piece(2).end));
        assert!(!p.has(0, 4 * MIN_STRIPE), "the whole blob is not");
        // Stripes 1 then 2 run on: a reader of stripe 1 goes on into what stripe 2 has.
        assert_eq!(
            p.readable_to(layout.piece(1).start),
            2 * MIN_STRIPE + MIN_STRIPE / 2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_a_blob_read_the_source_once() {
        let mut source = MemorySource::new(testing::REPO);
        let data = classcache_core::testing::noise(400_000, 5);
        let blobs = source.put_archive(testing::config_for("linux/amd64"), &data, None);
        let origin = TestSource::new(source);
        let dir = tempfile::tempdir().unwrap();
        let node = testing::node(dir.path(), "solo", origin.clone(), vec![]);
        let blob = testing::layer_ref(&blobs);
        let (a, b, c) = tokio::join!(
            node.fetch_blob(&blob),
            node.fetch_blob(&blob),
            node.fetch_blob(&blob)
        );
        let path = a.unwrap();
        assert_eq!(b.unwrap(), path);
        assert_eq!(c.unwrap(), path);
        assert_eq!(origin.reads(), 1, "one download for three requests");
        // Once complete, a request reads nothing.
        node.fetch_blob(&blob).await.unwrap();
        assert_eq!(origin.reads(), 1);
        let status = node.status(&blob.digest, None).await;
        assert!(status.complete && status.written == blob.size, "{status:?}");
    }
}
