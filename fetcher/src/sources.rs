//! The seams of the download logic: the registry as any `ContentSource` behind `Origin`, other fetchers as `PeerTransport`, both testable in memory.
//! It must not store or trust content: callers verify every byte against its digest.

use crate::download::DownloadError;
use crate::node::BlobRef;
use crate::peers::Peer;
use bytes::Bytes;
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::BlobStatus;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_oci::content::{ContentRef, ContentSource};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use std::time::Duration;

/// Why a byte stream broke (the source's own error).
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;
/// A blob's bytes as they arrive, unverified.
pub type ByteStream = BoxStream<'static, Result<Bytes, StreamError>>;

/// A failure of the origin registry (its own error, named by its message).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OriginError(pub StreamError);

/// The origin registry as the fetcher needs it: manifests and small blobs by digest (checked
/// by the source), and a layer blob streamed from an offset (unverified).
pub trait Origin: Send + Sync {
    /// The manifest (or index) bytes `digest` names in `repo`.
    fn manifest<'a>(
        &'a self,
        repo: &'a RegistryRef,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>>;

    /// A small blob (a config), checked against `descriptor`.
    fn blob<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>>;

    /// The blob's bytes from `offset` on (exactly: a source that ignores the offset is skipped
    /// forward).
    fn blob_from<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>>;
}

/// An [`Origin`] over any [`ContentSource`]: `source_of(repo)` gives the repository's source
/// (`RegistryClient::source` in the fetcher, a `MemorySource` in tests).
pub struct ContentOrigin<F> {
    source_of: F,
}

impl<F> ContentOrigin<F> {
    pub fn new(source_of: F) -> Self {
        Self { source_of }
    }
}

fn origin_error(e: impl std::error::Error + Send + Sync + 'static) -> OriginError {
    OriginError(Box::new(e))
}

impl<F, S> Origin for ContentOrigin<F>
where
    F: Fn(&RegistryRef) -> S + Send + Sync,
    S: ContentSource + Send + 'static,
{
    fn manifest<'a>(
        &'a self,
        repo: &'a RegistryRef,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>> {
        let source = (self.source_of)(repo);
        Box::pin(async move {
            let raw = source
                .get_manifest(&ContentRef::Digest(digest.clone()))
                .await
                .map_err(origin_error)?;
            Ok(raw.bytes)
        })
    }

    fn blob<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>> {
        let source = (self.source_of)(repo);
        Box::pin(async move { source.get_blob(descriptor).await.map_err(origin_error) })
    }

    fn blob_from<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
        let source = (self.source_of)(repo);
        Box::pin(async move {
            let blob = source
                .stream_blob(descriptor, offset)
                .await
                .map_err(origin_error)?;
            // A source that ignores Range sends everything: skip what we already have.
            let mut skip = offset - blob.offset.min(offset);
            Ok(blob
                .stream
                .map_err(|e| Box::new(e) as StreamError)
                .try_filter_map(move |mut chunk| {
                    let drop = skip.min(chunk.len() as u64);
                    skip -= drop;
                    let rest = chunk.split_off(drop as usize);
                    std::future::ready(Ok((!rest.is_empty()).then_some(rest)))
                })
                .boxed())
        })
    }
}

/// A blob stream from a peer, with the id of the peer's download attempt it carries.
pub struct PeerStream {
    pub stream: ByteStream,
    /// Set when the peer streams a download still in progress ([`ATTEMPT_HEADER`]).
    ///
    /// [`ATTEMPT_HEADER`]: classcache_core::fetcher::http::ATTEMPT_HEADER
    pub attempt: Option<u64>,
}

/// How this node talks to other fetchers.
pub trait PeerTransport: Send + Sync {
    /// `blob` from `offset` on; the peer downloads it itself unless `complete_only`.
    fn blob<'a>(
        &'a self,
        peer: &'a Peer,
        blob: &'a BlobRef,
        offset: u64,
        hops: u32,
        complete_only: bool,
    ) -> BoxFuture<'a, Result<PeerStream, DownloadError>>;

    /// The peer's status of `digest` (and whether `attempt` was discarded); None when it does
    /// not answer within `timeout`.
    fn status<'a>(
        &'a self,
        peer: &'a Peer,
        digest: &'a Digest,
        attempt: Option<u64>,
        timeout: Duration,
    ) -> BoxFuture<'a, Option<BlobStatus>>;

    /// A small complete blob (a manifest or config) the peer has, unverified.
    fn small_blob<'a>(&'a self, peer: &'a Peer, digest: &'a Digest)
        -> BoxFuture<'a, Option<Bytes>>;
}
