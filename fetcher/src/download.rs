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

impl Node {
    /// The sources for a digest, best first (see [`schedule::plan`]): earlier peers in the
    /// distribution order (parent first), then any peer with the complete blob, then the
    /// registry.
    pub(crate) fn plan(&self, digest: &Digest) -> Vec<Source> {
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
        let dist =
            ranking::distribution(digest, members, self.config.fanout, self.config.zone_aware);
        let at = dist
            .order
            .iter()
            .position(|id| *id == me)
            .expect("self is ranked");
        // One lookup table, not a scan of the peer list per position (plans grow with the fleet).
        let by_id: std::collections::HashMap<&str, &Peer> =
            peers.iter().map(|p| (p.id.as_str(), p)).collect();
        let peer_at = |r: usize| by_id.get(dist.order[r]).copied();
        schedule::plan(dist.tree.upstream(at), |r| {
            peer_at(r).is_some_and(|p| !self.is_suspect(digest, &p.id))
        })
        .into_iter()
        .map(|s| match s {
            schedule::Source::Upstream(r) => Source::Upstream(peer_at(r).expect("usable").clone()),
            schedule::Source::AnyComplete => Source::AnyComplete,
            schedule::Source::Registry => Source::Registry,
        })
        .collect()
    }

    /// Fills the partial from the planned sources, in order, for a few rounds.
    pub(crate) async fn fill(
        self: &Arc<Self>,
        blob: &BlobRef,
        partial: &mut Partial,
        transfer: &Transfer,
        hops: u32,
        contributors: &mut Vec<String>,
        last: &mut DownloadError,
    ) -> Result<(), PullStep> {
        let sources = self.plan(&blob.digest);
        let mut schedule = FillSchedule::new(&sources);
        loop {
            if partial.written() >= blob.size {
                return Ok(());
            }
            let source = match schedule.next_step() {
                Step::Exhausted => break,
                Step::Pause(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Step::Pull(i) => &sources[i],
                step @ (Step::RegistryUnlessUpstreamGetting(i)
                | Step::RegistryIfUpstreamGone(i)) => {
                    let answer = self.upstream_answer(&sources, &blob.digest).await;
                    if !answer.lets_registry(step) {
                        tracing::info!(digest = %blob.digest, round = schedule.round(), ?answer, "earlier-ranked peers may still bring it; retrying the peers, not the registry");
                        continue;
                    }
                    &sources[i]
                }
            };
            let result = self
                .pull_from(source, blob, partial, transfer, hops, contributors)
                .await;
            match result {
                Ok(()) => {}
                Err(PullStep::Source(e)) => {
                    match source {
                        Source::Upstream(p) => {
                            self.metrics.peer_failure(e.peer_failure());
                            tracing::warn!(digest = %blob.digest, peer = %p.id, offset = partial.written(), error = %e, "peer transfer failed; trying the next source");
                        }
                        // The normal case for the root: nobody has it yet.
                        Source::AnyComplete => {
                            tracing::debug!(digest = %blob.digest, error = %e, "no peer has the complete blob")
                        }
                        Source::Registry => {
                            tracing::warn!(digest = %blob.digest, offset = partial.written(), error = %e, "registry transfer failed")
                        }
                    }
                    *last = e;
                }
                Err(other) => return Err(other),
            }
        }
        if partial.written() >= blob.size {
            Ok(())
        } else {
            Err(PullStep::Source(std::mem::replace(
                last,
                DownloadError::NothingTried,
            )))
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
        let (peer, stream, attempt) = match source {
            Source::Upstream(peer) => {
                let s = self.transport.blob(peer, blob, offset, hops, false).await?;
                (Some(peer.clone()), s.stream, s.attempt)
            }
            Source::AnyComplete => {
                let Some(peer) = self.find_complete(&blob.digest).await else {
                    return Err(DownloadError::NoCompletePeer.into());
                };
                let s = self.transport.blob(&peer, blob, offset, hops, true).await?;
                (Some(peer), s.stream, s.attempt)
            }
            Source::Registry => {
                let descriptor = Descriptor::new(ARCHIVE_LAYER, blob.digest.clone(), blob.size);
                let stream = self
                    .origin
                    .blob_from(&blob.repo, &descriptor, offset)
                    .await
                    .map_err(|e| {
                        self.metrics.error(ErrorKind::Registry);
                        DownloadError::from(e)
                    })?;
                tracing::info!(digest = %blob.digest, offset, "pulling from the registry");
                (None, stream, None)
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
            let status = self
                .transport
                .status(peer, &blob.digest, Some(attempt), STATUS_TIMEOUT)
                .await;
            if partial.written() > 0 && status.is_ok_and(|s| s.discarded) {
                return Err(PullStep::UpstreamRestarted);
            }
        }
        result
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

    /// A peer that has the complete blob, asking all of them at once.
    async fn find_complete(&self, digest: &Digest) -> Option<Peer> {
        self.first_peer_answer(
            |p| self.is_suspect(digest, &p.id),
            |peer| async move {
                let status = self
                    .transport
                    .status(&peer, digest, None, COMPLETE_TIMEOUT)
                    .await
                    .ok()?;
                status.complete.then_some(peer)
            },
        )
        .await
    }

    /// Copies a source's bytes into the partial, publishing progress to readers, until the
    /// blob is complete, the source ends, or it stalls.
    async fn copy(
        &self,
        mut stream: ByteStream,
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
                Ok(Some(Err(source))) => {
                    return Err(DownloadError::Stream {
                        at: partial.written(),
                        source,
                    }
                    .into())
                }
                Ok(None) => {
                    return Err(DownloadError::Ended {
                        at: partial.written(),
                        size: blob.size,
                    }
                    .into())
                }
                Err(_) => {
                    if let Some(peer) = peer {
                        if self.waiting_upstream(peer, blob, partial.written()).await {
                            continue;
                        }
                    }
                    return Err(DownloadError::Stalled(self.config.stall_timeout).into());
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
        let status = self
            .transport
            .status(peer, &blob.digest, None, STATUS_TIMEOUT)
            .await;
        schedule::keeps_waiting(
            status.ok().map(|s| UpstreamState {
                running: s.running,
                written: s.written,
            }),
            have,
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
        assert!(matches!(node.plan(&blob.digest)[0], Source::Upstream(ref p) if p.id == "parent"));
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
        let sources = node.plan(&digest);
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
