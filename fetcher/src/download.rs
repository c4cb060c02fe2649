//! Filling one download attempt from the planned sources in order, each stream resumed with Range from the current offset, with stall detection and typed errors.
//! It must not commit or publish: it only appends to the attempt's partial file.

use crate::metrics::{ErrorKind, PeerFailure};
use crate::node::{BlobRef, Node, Transfer};
use crate::peers::Peer;
use crate::ranking::{self, Member};
use crate::schedule::{
    self, FillSchedule, PeerAnswer, Step, UpstreamAnswer, UpstreamState, COMPLETE_TIMEOUT,
    STATUS_TIMEOUT,
};
use crate::sources::{ByteStream, NoStatus, OriginError, StreamError};
use crate::store::{Partial, StoreError};
use classcache_core::digest::Digest;
use classcache_core::fetcher::stripes::Stripes;
use classcache_core::media_types::ARCHIVE_LAYER;
use classcache_core::oci::Descriptor;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Why one source failed; the download moves on to the next one.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: upload cap reached")]
    Busy { url: String },
    #[error("{url}: HTTP {status}, expected {expected}")]
    Status {
        url: String,
        status: http::StatusCode,
        expected: http::StatusCode,
    },
    #[error("the transfer broke at byte {at}: {source}")]
    Stream {
        at: u64,
        #[source]
        source: StreamError,
    },
    #[error("the source ended at byte {at} of {size}")]
    Ended { at: u64, size: u64 },
    #[error("no byte for {0:?}")]
    Stalled(Duration),
    #[error("no peer has it complete")]
    NoCompletePeer,
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    WrongBytes(StoreError),
    #[error("no source was tried")]
    NothingTried,
}

impl DownloadError {
    /// The peer-failure counter this failure counts in.
    pub fn peer_failure(&self) -> PeerFailure {
        match self {
            DownloadError::Connect { .. } | DownloadError::Origin(_) => PeerFailure::Connect,
            DownloadError::Busy { .. } => PeerFailure::Busy,
            DownloadError::Stream { .. } | DownloadError::Ended { .. } => PeerFailure::Truncated,
            DownloadError::Stalled(_) => PeerFailure::Stalled,
            DownloadError::WrongBytes(_) => PeerFailure::DigestMismatch,
            DownloadError::Status { .. }
            | DownloadError::NoCompletePeer
            | DownloadError::NothingTried => PeerFailure::Status,
        }
    }
}

/// How one step of an attempt ended, when not with the blob complete.
pub(crate) enum PullStep {
    Source(DownloadError),
    Local(StoreError),
    /// The parent discarded the bytes it sent us (its own digest check failed): start over.
    UpstreamRestarted,
}

impl From<StoreError> for PullStep {
    fn from(e: StoreError) -> Self {
        PullStep::Local(e)
    }
}

impl From<DownloadError> for PullStep {
    fn from(e: DownloadError) -> Self {
        PullStep::Source(e)
    }
}

/// Where one pull gets its bytes: a peer, any complete peer, or the registry.
pub(crate) type Source = schedule::Source<Peer>;

/// One stripe of a download: its bytes in the blob and how many of them are written.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    pub stripe: usize,
    pub layout: Stripes,
    pub have: u64,
}

impl Lane {
    fn new(layout: Stripes, stripe: usize) -> Self {
        Self {
            stripe,
            layout,
            have: 0,
        }
    }

    /// The next byte to write, in the blob.
    fn at(&self) -> u64 {
        self.rest().start
    }

    /// The rest of the stripe's current piece, to ask a source for.
    fn rest(&self) -> std::ops::Range<u64> {
        self.layout.next_run(self.stripe, self.have)
    }

    fn done(&self) -> bool {
        self.have >= self.layout.len(self.stripe)
    }
}

impl Node {
    /// The sources for each stripe of `layout`, best first (see [`schedule::plan`]): earlier
    /// peers in the stripe's distribution order (parent first), then any peer with the stripe
    /// complete, then the registry. The nodes are ranked once for all stripes.
    pub(crate) fn plans(&self, digest: &Digest, layout: &Stripes) -> Vec<Vec<Source>> {
        let peers = self.peers.snapshot();
        let me = self.self_id();
        let my_zone = peers
            .iter()
            .find(|p| p.id == me)
            .and_then(|p| p.zone.as_deref());
        let members = peers
            .iter()
            .map(|p| Member {
                id: &p.id,
                zone: p.zone.as_deref(),
            })
            .chain(std::iter::once(Member {
                id: me,
                zone: my_zone,
            }));
        let count = layout.count();
        let fanout = if count > 1 { count } else { self.config.fanout };
        let dist = ranking::distribution(digest, members, fanout, self.config.zone_aware);
        // One lookup table, not a scan of the peer list per position (plans grow with the fleet).
        let by_id: std::collections::HashMap<&str, &Peer> =
            peers.iter().map(|p| (p.id.as_str(), p)).collect();
        let plan_of = |stripe: usize| -> Vec<Source> {
            // Positions of `dist.order`, in the order this stripe flows in.
            let order: Vec<usize> = if count > 1 {
                dist.stripe_order(stripe, count)
            } else {
                (0..dist.order.len()).collect()
            };
            let at = order
                .iter()
                .position(|&p| dist.order[p] == me)
                .expect("self is ranked");
            let peer_at = |r: usize| by_id.get(dist.order[order[r]]).copied();
            schedule::plan(dist.tree.upstream(at), |r| {
                peer_at(r).is_some_and(|p| !self.is_suspect(digest, &p.id))
            })
            .into_iter()
            .map(|s| match s {
                schedule::Source::Upstream(r) => {
                    Source::Upstream(peer_at(r).expect("usable").clone())
                }
                schedule::Source::AnyComplete => Source::AnyComplete,
                schedule::Source::Registry => Source::Registry,
            })
            .collect()
        };
        (0..count).map(plan_of).collect()
    }

    /// Fills the partial, every stripe at once, each from its own planned sources; returns the
    /// peers that sent bytes (they are to blame for a digest mismatch).
    pub(crate) async fn fill(
        self: &Arc<Self>,
        blob: &BlobRef,
        partial: &Partial,
        transfer: &Transfer,
        hops: u32,
    ) -> Result<Vec<String>, PullStep> {
        // The layout readers of this transfer follow, fixed when it began.
        let layout = transfer.progress.borrow().layout;
        let plans = self.plans(&blob.digest, &layout);
        let lanes = plans.into_iter().enumerate().map(|(j, sources)| {
            self.fill_stripe(blob, Lane::new(layout, j), sources, partial, transfer, hops)
        });
        let mut contributors: Vec<String> = Vec::new();
        for ids in futures_util::future::try_join_all(lanes).await? {
            for id in ids {
                if !contributors.contains(&id) {
                    contributors.push(id);
                }
            }
        }
        Ok(contributors)
    }

    /// Fills one stripe from its planned sources, in order, for a few rounds.
    async fn fill_stripe(
        self: &Arc<Self>,
        blob: &BlobRef,
        mut lane: Lane,
        sources: Vec<Source>,
        partial: &Partial,
        transfer: &Transfer,
        hops: u32,
    ) -> Result<Vec<String>, PullStep> {
        let mut schedule = FillSchedule::new(&sources);
        let mut contributors = Vec::new();
        let mut last = DownloadError::NothingTried;
        loop {
            if lane.done() {
                return Ok(contributors);
            }
            let source = match schedule.next_step() {
                Step::Exhausted => return Err(PullStep::Source(last)),
                Step::Pause(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Step::Pull(i) => &sources[i],
                step @ (Step::RegistryUnlessUpstreamGetting(i)
                | Step::RegistryIfUpstreamGone(i)) => {
                    let answer = self.upstream_answer(&sources, &blob.digest).await;
                    if !answer.lets_registry(step) {
                        tracing::info!(digest = %blob.digest, stripe = lane.stripe, round = schedule.round(), ?answer, "earlier-ranked peers may still bring it; retrying the peers, not the registry");
                        continue;
                    }
                    &sources[i]
                }
            };
            let before = lane.have;
            let result = self
                .pull_from(source, blob, &mut lane, partial, transfer, hops)
                .await;
            if let Some(id) = &result.1 {
                if lane.have > before && !contributors.contains(id) {
                    contributors.push(id.clone());
                }
            }
            match result.0 {
                Ok(()) => {}
                Err(PullStep::Source(e)) => {
                    match source {
                        Source::Upstream(p) => {
                            self.metrics.peer_failure(e.peer_failure());
                            tracing::warn!(digest = %blob.digest, peer = %p.id, stripe = lane.stripe, offset = lane.at(), error = %e, "peer transfer failed; trying the next source");
                        }
                        // The normal case for the root: nobody has it yet.
                        Source::AnyComplete => {
                            tracing::debug!(digest = %blob.digest, stripe = lane.stripe, error = %e, "no peer has the complete stripe")
                        }
                        Source::Registry => {
                            tracing::warn!(digest = %blob.digest, stripe = lane.stripe, offset = lane.at(), error = %e, "registry transfer failed")
                        }
                    }
                    last = e;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Writes what `source` sends of the lane's stripe, one request per piece, until the stripe
    /// is complete or the source fails; also names the peer that was asked.
    async fn pull_from(
        self: &Arc<Self>,
        source: &Source,
        blob: &BlobRef,
        lane: &mut Lane,
        partial: &Partial,
        transfer: &Transfer,
        hops: u32,
    ) -> (Result<(), PullStep>, Option<String>) {
        let had = lane.have;
        // Any complete peer found for the first piece serves the rest of the stripe too.
        let mut complete: Option<Peer> = None;
        let mut id = None;
        while !lane.done() {
            let opened = match source {
                Source::Upstream(peer) => self
                    .transport
                    .blob(peer, blob, lane.rest(), hops, false)
                    .await
                    .map(|s| (Some(peer.clone()), s.stream, s.attempt)),
                Source::AnyComplete => {
                    if complete.is_none() {
                        complete = self.find_complete(&blob.digest, lane).await;
                    }
                    match &complete {
                        None => Err(DownloadError::NoCompletePeer),
                        Some(peer) => self
                            .transport
                            .blob(peer, blob, lane.rest(), hops, true)
                            .await
                            .map(|s| (Some(peer.clone()), s.stream, s.attempt)),
                    }
                }
                Source::Registry => {
                    let descriptor = Descriptor::new(ARCHIVE_LAYER, blob.digest.clone(), blob.size);
                    if lane.have == had {
                        tracing::info!(digest = %blob.digest, stripe = lane.stripe, offset = lane.at(), "pulling from the registry");
                    }
                    self.origin
                        .blob_range(&blob.repo, &descriptor, lane.rest())
                        .await
                        .map(|stream| (None, stream, None))
                        .map_err(|e| {
                            self.metrics.error(ErrorKind::Registry);
                            DownloadError::from(e)
                        })
                }
            };
            let (peer, stream, attempt) = match opened {
                Ok(opened) => opened,
                Err(e) => return (Err(e.into()), id),
            };
            id = peer.as_ref().map(|p| p.id.clone());
            let result = self
                .copy(stream, peer.as_ref(), lane, partial, transfer)
                .await;
            if let Err(e) = result {
                if let (Some(peer), Some(attempt)) = (&peer, attempt) {
                    let status = self
                        .transport
                        .status(peer, &blob.digest, Some(attempt), STATUS_TIMEOUT)
                        .await;
                    if (had > 0 || lane.have > 0) && status.is_ok_and(|s| s.discarded) {
                        return (Err(PullStep::UpstreamRestarted), id);
                    }
                }
                return (Err(e), id);
            }
        }
        (Ok(()), id)
    }

    /// What the upstream sources say about the blob, asked all at once; the first that is
    /// getting it settles the question.
    pub(crate) async fn upstream_answer(
        &self,
        sources: &[Source],
        digest: &Digest,
    ) -> UpstreamAnswer {
        let mut asks: futures_util::stream::FuturesUnordered<_> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Upstream(p) => Some(async move {
                    match self.transport.status(p, digest, None, STATUS_TIMEOUT).await {
                        Ok(st) if st.running || st.complete => PeerAnswer::Getting,
                        Ok(_) | Err(NoStatus::Refused) => PeerAnswer::NotGetting,
                        Err(NoStatus::Silent) => PeerAnswer::Silent,
                    }
                }),
                _ => None,
            })
            .collect();
        let mut answers = Vec::with_capacity(asks.len());
        while let Some(answer) = asks.next().await {
            if answer == PeerAnswer::Getting {
                return UpstreamAnswer::Getting;
            }
            answers.push(answer);
        }
        UpstreamAnswer::of(answers)
    }

    /// A peer that has all of the lane's stripe (or the whole blob), asking all of them at once.
    async fn find_complete(&self, digest: &Digest, lane: &Lane) -> Option<Peer> {
        self.first_peer_answer(
            |p| self.is_suspect(digest, &p.id),
            |peer| async move {
                let status = self
                    .transport
                    .status(&peer, digest, None, COMPLETE_TIMEOUT)
                    .await
                    .ok()?;
                status.has_stripe(&lane.layout, lane.stripe).then_some(peer)
            },
        )
        .await
    }

    /// Copies a source's bytes into the lane's current piece of the partial, publishing progress
    /// to readers, until the piece is complete, the source ends, or it stalls.
    async fn copy(
        &self,
        mut stream: ByteStream,
        peer: Option<&Peer>,
        lane: &mut Lane,
        partial: &Partial,
        transfer: &Transfer,
    ) -> Result<(), PullStep> {
        let counter = match peer {
            Some(_) => &self.metrics.bytes_from_peers,
            None => &self.metrics.bytes_from_registry,
        };
        let piece = lane.rest();
        while lane.at() < piece.end {
            let next = tokio::time::timeout(self.config.stall_timeout, stream.next()).await;
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(source))) => {
                    return Err(DownloadError::Stream {
                        at: lane.at(),
                        source,
                    }
                    .into())
                }
                Ok(None) => {
                    return Err(DownloadError::Ended {
                        at: lane.at(),
                        size: piece.end,
                    }
                    .into())
                }
                Err(_) => {
                    if let Some(peer) = peer {
                        if self.waiting_upstream(peer, &transfer.digest, lane).await {
                            continue;
                        }
                    }
                    return Err(DownloadError::Stalled(self.config.stall_timeout).into());
                }
            };
            // A source never gets to write past the piece it was asked for.
            let room = (piece.end - lane.at()) as usize;
            let chunk = if chunk.len() > room {
                chunk.slice(..room)
            } else {
                chunk
            };
            let len = chunk.len() as u64;
            counter.fetch_add(len, Relaxed);
            partial.write_at_async(lane.at(), chunk).await?;
            lane.have += len;
            let (stripe, have) = (lane.stripe, lane.have);
            transfer.progress.send_modify(|p| p.written[stripe] = have);
        }
        Ok(())
    }

    /// True when a silent parent is alive and itself waiting for bytes of the lane's stripe
    /// from upstream: then its own stall handling re-parents it, and its children keep waiting
    /// instead of stampeding.
    async fn waiting_upstream(&self, peer: &Peer, digest: &Digest, lane: &Lane) -> bool {
        let status = self
            .transport
            .status(peer, digest, None, STATUS_TIMEOUT)
            .await;
        schedule::keeps_waiting(
            status.ok().and_then(|s| {
                Some(UpstreamState {
                    running: s.running,
                    written: s.stripe_written(&lane.layout, lane.stripe)?,
                })
            }),
            lane.have,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Behaviour, TestSource};
    use classcache_core::fetcher::http::BlobStatus;
    use classcache_oci::memory::MemorySource;

    /// A node id that ranks after `peer` for `digest`, so `peer` is its parent.
    fn child_of(peer: &str, digest: &Digest) -> String {
        (0..)
            .map(|i| format!("node-{i}"))
            .find(|me| ranking::rank(digest, [peer, me.as_str()])[0] == peer)
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_that_breaks_mid_stream_is_resumed_by_the_next_with_range() {
        let mut source = MemorySource::new(testing::REPO);
        let data = classcache_core::testing::noise(300_000, 6);
        let blobs = source.put_archive(testing::config_for("linux/amd64"), &data, None);
        let blob = testing::layer_ref(&blobs);
        let broken_at = 100_000;
        // The parent breaks at the same byte every time and then stops answering.
        let parent = TestSource::new(source.clone()).with(Behaviour {
            fail_at: Some(broken_at),
            ..Default::default()
        });
        let registry = TestSource::new(source);
        let me = child_of("parent", &blob.digest);
        let dir = tempfile::tempdir().unwrap();
        let node = testing::node(
            dir.path(),
            &me,
            registry.clone(),
            vec![(testing::peer("parent"), parent.clone())],
        );
        let layout = node.stripes_of(blob.size);
        assert_eq!(layout.count(), 1, "a small blob is one stripe");
        assert!(
            matches!(node.plans(&blob.digest, &layout)[0][0], Source::Upstream(ref p) if p.id == "parent")
        );
        let path = node.fetch_blob(&blob).await.unwrap();
        assert_eq!(Digest::of(&std::fs::read(path).unwrap()), blob.digest);
        assert_eq!(parent.offsets.lock().unwrap()[0], 0);
        assert_eq!(
            *registry.offsets.lock().unwrap(),
            [broken_at],
            "the registry was asked only for the rest, once"
        );
        assert_eq!(node.metrics.bytes_from_peers.load(Relaxed), broken_at);
        assert_eq!(
            node.metrics.bytes_from_registry.load(Relaxed),
            blob.size - broken_at
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_registry_gate_tells_a_crashed_parent_from_a_silent_or_busy_one() {
        let source = MemorySource::new(testing::REPO);
        let digest = Digest::of(b"the layer");
        let me = child_of("parent", &digest);
        let parent = TestSource::new(source.clone());
        let dir = tempfile::tempdir().unwrap();
        let node = testing::node(
            dir.path(),
            &me,
            TestSource::new(source),
            vec![(testing::peer("parent"), parent.clone())],
        );
        let sources = node.plans(&digest, &Stripes::new(1, 1, 2)).remove(0);
        let answer = || node.upstream_answer(&sources, &digest);
        let early = Step::RegistryIfUpstreamGone(sources.len() - 1);
        // Its fetcher is gone: nothing listens. The registry at once, no rounds sat out.
        parent.behaviour.lock().unwrap().refused = true;
        assert_eq!(answer().await, UpstreamAnswer::Gone);
        assert!(answer().await.lets_registry(early));
        // No answer in time: it may be loaded. It keeps its rounds.
        parent.behaviour.lock().unwrap().refused = false;
        assert_eq!(answer().await, UpstreamAnswer::Unsure);
        assert!(!answer().await.lets_registry(early));
        // Alive and downloading: the registry waits, in every round but the last.
        parent.behaviour.lock().unwrap().status = Some(BlobStatus {
            running: true,
            ..BlobStatus::default()
        });
        assert_eq!(answer().await, UpstreamAnswer::Getting);
        let later = Step::RegistryUnlessUpstreamGetting(sources.len() - 1);
        assert!(!answer().await.lets_registry(later));
        // Alive and idle (restarted, say): nobody upstream brings it.
        parent.behaviour.lock().unwrap().status = Some(BlobStatus::default());
        assert_eq!(answer().await, UpstreamAnswer::Gone);
    }

    /// A node `me` with peers `a` to `h` over an archive big enough for 8 stripes of 2 pieces: the node, the
    /// layer, the registry and the peers by id.
    fn striped_node(
        dir: &std::path::Path,
        behaviour: impl Fn(&str) -> Behaviour,
    ) -> (Arc<Node>, BlobRef, TestSource, Vec<(String, TestSource)>) {
        let mut source = MemorySource::new(testing::REPO);
        let data = classcache_core::testing::noise(
            16 * classcache_core::fetcher::stripes::MIN_STRIPE as usize + 4321,
            9,
        );
        let blobs = source.put_archive(testing::config_for("linux/amd64"), &data, None);
        let blob = testing::layer_ref(&blobs);
        let registry = TestSource::new(source.clone());
        let peers: Vec<(String, TestSource)> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    TestSource::new(source.clone()).with(behaviour(id)),
                )
            })
            .collect();
        let node = testing::node(
            dir,
            "me",
            registry.clone(),
            peers
                .iter()
                .map(|(id, s)| (testing::peer(id), s.clone()))
                .collect(),
        );
        (node, blob, registry, peers)
    }

    /// For each stripe, who sends it first: `Some(peer)` or `None` for the registry.
    fn first_sources(node: &Node, blob: &BlobRef) -> Vec<Option<String>> {
        let layout = node.stripes_of(blob.size);
        node.plans(&blob.digest, &layout)
            .iter()
            .map(|sources| match &sources[0] {
                Source::Upstream(p) => Some(p.id.clone()),
                _ => None,
            })
            .collect()
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort_unstable();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_stripe_comes_from_its_own_parent_or_the_registry_and_only_that_range() {
        let dir = tempfile::tempdir().unwrap();
        let (node, blob, registry, peers) = striped_node(dir.path(), |_| Behaviour::default());
        let layout = node.stripes_of(blob.size);
        assert_eq!(layout.count(), 8);
        assert_eq!(layout.pieces(), 16, "each stripe is two interleaved pieces");
        let firsts = first_sources(&node, &blob);
        let parents: std::collections::HashSet<_> = firsts.iter().flatten().collect();
        assert!(
            parents.len() >= 2,
            "the stripes spread over parents: {firsts:?}"
        );
        assert_eq!(
            firsts.iter().filter(|f| f.is_none()).count(),
            usize::from(firsts.iter().flatten().count() < 8),
            "this node roots at most one stripe: {firsts:?}"
        );
        let path = node.fetch_blob(&blob).await.unwrap();
        assert_eq!(Digest::of(&std::fs::read(path).unwrap()), blob.digest);
        let starts_from = |who: Option<&str>| {
            sorted(
                (0..layout.count())
                    .filter(|&j| firsts[j].as_deref() == who)
                    .flat_map(|j| layout.pieces_of(j).map(|r| r.start).collect::<Vec<_>>())
                    .collect(),
            )
        };
        assert_eq!(
            sorted(registry.offsets.lock().unwrap().clone()),
            starts_from(None)
        );
        for (id, peer) in &peers {
            assert_eq!(
                sorted(peer.offsets.lock().unwrap().clone()),
                starts_from(Some(id)),
                "peer {id} was asked for its stripes' pieces only, one request each"
            );
        }
        // Every byte came once: no source sent past the stripe it was asked for.
        let got = node.metrics.bytes_from_peers.load(Relaxed)
            + node.metrics.bytes_from_registry.load(Relaxed);
        assert_eq!(got, blob.size);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stripe_whose_parent_breaks_resumes_at_its_own_offset() {
        let dir = tempfile::tempdir().unwrap();
        // Find a stripe with a peer parent, then break that peer inside it.
        let probe = tempfile::tempdir().unwrap();
        let (node, blob, ..) = striped_node(probe.path(), |_| Behaviour::default());
        let layout = node.stripes_of(blob.size);
        let firsts = first_sources(&node, &blob);
        let k = firsts
            .iter()
            .position(Option::is_some)
            .expect("a stripe has a parent");
        let parent = firsts[k].clone().unwrap();
        let broken_at = layout.piece(k).start + 100_000;
        let (node, blob, registry, peers) = striped_node(dir.path(), |id| Behaviour {
            fail_at: (id == parent).then_some(broken_at),
            ..Default::default()
        });
        let path = node.fetch_blob(&blob).await.unwrap();
        assert_eq!(Digest::of(&std::fs::read(path).unwrap()), blob.digest);
        let resumed_by: Vec<&str> = std::iter::once(("registry", &registry))
            .chain(peers.iter().map(|(id, s)| (id.as_str(), s)))
            .filter(|(id, s)| *id != parent && s.offsets.lock().unwrap().contains(&broken_at))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            resumed_by.len(),
            1,
            "another source resumed the broken stripe at the byte it broke at: {resumed_by:?}"
        );
        let got = node.metrics.bytes_from_peers.load(Relaxed)
            + node.metrics.bytes_from_registry.load(Relaxed);
        assert_eq!(got, blob.size, "nothing was fetched twice");
    }

    #[test]
    fn download_errors_keep_their_source() {
        let e = DownloadError::Stream {
            at: 7,
            source: "connection reset".into(),
        };
        assert_eq!(e.peer_failure(), PeerFailure::Truncated);
        assert_eq!(
            std::error::Error::source(&e).unwrap().to_string(),
            "connection reset"
        );
    }
}
