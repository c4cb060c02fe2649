//! Unit-test support: a node over a temp store whose registry and peers are counting, fallible in-memory `ContentSource`s (`MemorySource`).
//! Tests only; it must not reach the network or the host's store.

use crate::download::DownloadError;
use crate::metrics::Metrics;
use crate::node::{BlobRef, Node, PullConfig};
use crate::peers::{Peer, PeerSet};
use crate::sources::{
    ContentOrigin, NoStatus, OriginError, PeerStream, PeerTransport, StreamError,
};
use crate::store::Store;
use bytes::Bytes;
use classcache_core::artifact::{archive_index_entry, build_archive_index, ArchiveBlobs};
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::BlobStatus;
use classcache_core::key::ArchiveKind;
use classcache_core::media_types::{self, ARCHIVE_LAYER};
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_oci::content::{BlobStream, ContentRef, ContentSource, RawManifest};
use classcache_oci::memory::{MemoryError, MemorySource};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The repository every test blob is "in".
pub const REPO: &str = "mem.test/shop/app";

/// What a [`TestSource`] does to the blob streams it serves.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// The stream breaks at this byte of the blob (at once when asked from there or later).
    pub fail_at: Option<u64>,
    /// Flip a bit in every chunk.
    pub corrupt: bool,
    /// Bytes sent after the blob's end.
    pub trailing: Vec<u8>,
    /// What the source answers as a peer's status (None: it does not answer).
    pub status: Option<BlobStatus>,
    /// As a peer, it refuses connections (its fetcher is gone); overrides `status`.
    pub refused: bool,
}

/// A `MemorySource` that records the offset of every blob stream asked of it.
#[derive(Clone)]
pub struct TestSource {
    pub inner: Arc<MemorySource>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    pub offsets: Arc<Mutex<Vec<u64>>>,
}

impl TestSource {
    pub fn new(inner: MemorySource) -> Self {
        Self {
            inner: Arc::new(inner),
            behaviour: Arc::default(),
            offsets: Arc::default(),
        }
    }

    pub fn with(self, behaviour: Behaviour) -> Self {
        *self.behaviour.lock().unwrap() = behaviour;
        self
    }

    /// How many blob streams were asked of it.
    pub fn reads(&self) -> usize {
        self.offsets.lock().unwrap().len()
    }
}

fn injected(what: &str) -> MemoryError {
    MemoryError::NotFound {
        name: format!("injected failure: {what}"),
    }
}

impl ContentSource for TestSource {
    type Error = MemoryError;

    fn name(&self, reference: &ContentRef) -> String {
        self.inner.name(reference)
    }

    async fn get_manifest(&self, reference: &ContentRef) -> Result<RawManifest, MemoryError> {
        self.inner.get_manifest(reference).await
    }

    async fn get_blob(&self, descriptor: &Descriptor) -> Result<Bytes, MemoryError> {
        self.inner.get_blob(descriptor).await
    }

    async fn stream_blob(
        &self,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream<MemoryError>, MemoryError> {
        self.offsets.lock().unwrap().push(range.start);
        let (fail_at, corrupt, trailing) = {
            let b = self.behaviour.lock().unwrap();
            (b.fail_at, b.corrupt, Bytes::from(b.trailing.clone()))
        };
        let blob = self.inner.stream_blob(descriptor, range).await?;
        let mut at = blob.offset;
        let mut chunks: Vec<Result<Bytes, MemoryError>> = vec![];
        let mut stream = blob.stream;
        while let Some(chunk) = stream.next().await {
            let mut chunk = chunk?.to_vec();
            if let Some(fail) = fail_at {
                if at + chunk.len() as u64 > fail {
                    chunk.truncate(fail.saturating_sub(at) as usize);
                    if !chunk.is_empty() {
                        chunks.push(Ok(chunk.into()));
                    }
                    chunks.push(Err(injected("the stream broke")));
                    break;
                }
            }
            at += chunk.len() as u64;
            if corrupt {
                chunk[0] ^= 1;
            }
            chunks.push(Ok(chunk.into()));
        }
        if !trailing.is_empty() && !matches!(chunks.last(), Some(Err(_))) {
            chunks.push(Ok(trailing));
        }
        Ok(BlobStream {
            offset: blob.offset,
            total_size: blob.total_size,
            stream: Box::pin(futures_util::stream::iter(chunks)),
        })
    }
}

/// Other fetchers, each a [`TestSource`] by node id.
pub struct MemoryPeers {
    pub peers: HashMap<String, TestSource>,
}

impl PeerTransport for MemoryPeers {
    fn blob<'a>(
        &'a self,
        peer: &'a Peer,
        blob: &'a BlobRef,
        range: std::ops::Range<u64>,
        _hops: u32,
        _complete_only: bool,
    ) -> BoxFuture<'a, Result<PeerStream, DownloadError>> {
        Box::pin(async move {
            let source = &self.peers[&peer.id];
            let descriptor = Descriptor::new(ARCHIVE_LAYER, blob.digest.clone(), blob.size);
            let s = source
                .stream_blob(&descriptor, range)
                .await
                .map_err(|e| DownloadError::Origin(OriginError(Box::new(e))))?;
            Ok(PeerStream {
                stream: s.stream.map_err(|e| Box::new(e) as StreamError).boxed(),
                attempt: None,
            })
        })
    }

    fn status<'a>(
        &'a self,
        peer: &'a Peer,
        _digest: &'a Digest,
        _attempt: Option<u64>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<BlobStatus, NoStatus>> {
        let status = {
            let b = self.peers[&peer.id].behaviour.lock().unwrap();
            match (b.refused, &b.status) {
                (true, _) => Err(NoStatus::Refused),
                (false, Some(s)) => Ok(s.clone()),
                (false, None) => Err(NoStatus::Silent),
            }
        };
        Box::pin(async move { status })
    }

    fn small_blob<'a>(
        &'a self,
        _peer: &'a Peer,
        _digest: &'a Digest,
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async { None })
    }
}

pub fn peer(id: &str) -> Peer {
    Peer {
        id: id.to_string(),
        url: format!("http://{id}.test:8787"),
        zone: None,
    }
}

/// A node `self_id` over a store in `dir`, the registry `origin`, and `peers`.
pub fn node(
    dir: &Path,
    self_id: &str,
    origin: TestSource,
    peers: Vec<(Peer, TestSource)>,
) -> Arc<Node> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(&dir.join("store"), 1 << 30, Duration::ZERO, metrics.clone()).unwrap();
    let list = peers
        .iter()
        .map(|(p, _)| p.clone())
        .chain(std::iter::once(peer(self_id)))
        .collect();
    let set = Arc::new(PeerSet::new(self_id, list));
    let transport = Arc::new(MemoryPeers {
        peers: peers.into_iter().map(|(p, s)| (p.id, s)).collect(),
    });
    let origin = Arc::new(ContentOrigin::new(move |_: &RegistryRef| origin.clone()));
    let config = PullConfig {
        fanout: 1,
        // What these tests exercise: blobs under 2 MiB are one stripe whatever the flag, larger
        // ones (download.rs's striped tests) are cut into up to 8.
        stripes: classcache_core::fetcher::stripes::StripeChoice::Fixed(8),
        stall_timeout: Duration::from_secs(2),
        max_hops: 32,
        zone_aware: true,
        max_downloads: 8,
    };
    Node::new(config, store, set, origin, transport, metrics)
}

/// An archive config for `platform` (os/arch[/variant]).
pub fn config_for(platform: &str) -> classcache_core::artifact::ArchiveConfig {
    let mut c = classcache_core::testing::sample_config(
        &format!("{REPO}:1"),
        Digest::of(platform.as_bytes()).as_str(),
        ArchiveKind::DynamicCds,
        &[platform.to_string()],
    );
    c.platform = platform.parse().unwrap();
    c
}

/// Adds one archive per `(platform, bytes)` and an index of them; returns each archive's blobs
/// and the index's digest.
pub fn put_index(
    source: &mut MemorySource,
    archives: &[(&str, &[u8])],
) -> (Vec<ArchiveBlobs>, Digest) {
    let mut all = vec![];
    let mut entries = vec![];
    for (platform, data) in archives {
        let blobs = source.put_archive(config_for(platform), data, None);
        entries.push(archive_index_entry(
            &blobs.manifest_descriptor,
            &blobs.config,
        ));
        all.push(blobs);
    }
    let subject = Descriptor::new(media_types::OCI_INDEX, Digest::of(b"image index"), 10);
    let index = build_archive_index(entries, subject, "2026-01-01T00:00:00Z").unwrap();
    let d = source.put_manifest(
        media_types::OCI_INDEX,
        serde_json::to_vec(&index).unwrap(),
        None,
    );
    (all, d.digest)
}

/// The pinned reference of `digest` in [`REPO`].
pub fn pinned(digest: &Digest) -> RegistryRef {
    format!("{REPO}@{digest}").parse().unwrap()
}

/// The layer of `blobs` as the node downloads it.
pub fn layer_ref(blobs: &ArchiveBlobs) -> BlobRef {
    BlobRef {
        archive: pinned(&blobs.manifest_descriptor.digest),
        repo: REPO.parse().unwrap(),
        digest: blobs.layer_descriptor.digest.clone(),
        size: blobs.layer_descriptor.size,
    }
}
