//! The seams of the download logic: the registry as any `ContentSource` behind `Origin`, other fetchers as `PeerTransport`, both testable in memory.
//! It must not store or trust content: callers verify every byte against its digest.

use crate::download::DownloadError;
use crate::node::BlobRef;
use crate::peers::Peer;
use bytes::Bytes;
use classcache_core::allowed_registry::{AllowedRegistries, RegistryNotAllowed};
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

    /// The blob's bytes from `range.start` on, asking the source for `range` (exactly from the
    /// start: a source that ignores it is skipped forward; the caller stops reading at the end).
    fn blob_range<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>>;

    /// Whether `repo` may be asked for at all (`--allowed-registry`); checked before any
    /// connection.
    fn check_allowed(&self, _repo: &RegistryRef) -> Result<(), RegistryNotAllowed> {
        Ok(())
    }
}

/// An [`Origin`] that speaks only to the allowed registries: any other gets the refusal and no
/// connection, whoever asks (an archive request, a peer's blob request, a retry).
pub struct AllowedOrigin<O> {
    allowed: AllowedRegistries,
    inner: O,
}

impl<O> AllowedOrigin<O> {
    pub fn new(allowed: AllowedRegistries, inner: O) -> Self {
        Self { allowed, inner }
    }
}

impl<O> AllowedOrigin<O> {
    /// `call` when `repo` is allowed; else the refusal, before any connection.
    fn gated<'a, T: Send + 'a>(
        &self,
        repo: &RegistryRef,
        call: impl FnOnce() -> BoxFuture<'a, Result<T, OriginError>>,
    ) -> BoxFuture<'a, Result<T, OriginError>> {
        match self.allowed.check(repo) {
            Ok(()) => call(),
            Err(e) => Box::pin(std::future::ready(Err(OriginError(Box::new(e))))),
        }
    }
}

impl<O: Origin> Origin for AllowedOrigin<O> {
    fn manifest<'a>(
        &'a self,
        repo: &'a RegistryRef,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>> {
        self.gated(repo, || self.inner.manifest(repo, digest))
    }

    fn blob<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>> {
        self.gated(repo, || self.inner.blob(repo, descriptor))
    }

    fn blob_range<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
        self.gated(repo, || self.inner.blob_range(repo, descriptor, range))
    }

    fn check_allowed(&self, repo: &RegistryRef) -> Result<(), RegistryNotAllowed> {
        self.allowed.check(repo)
    }
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

/// The whole time a registry gets for one manifest or config (each at most 4 MiB): a registry
/// that trickles bytes just under the read timeout must not hold an archive request forever.
const SMALL_OBJECT_TIMEOUT: Duration = Duration::from_secs(60);

/// `fetch`, failing when it takes longer than [`SMALL_OBJECT_TIMEOUT`].
async fn small_object<E>(
    fetch: impl std::future::Future<Output = Result<Bytes, E>>,
) -> Result<Bytes, OriginError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(SMALL_OBJECT_TIMEOUT, fetch).await {
        Ok(fetched) => fetched.map_err(origin_error),
        Err(_) => Err(origin_error(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the registry did not send it within {SMALL_OBJECT_TIMEOUT:?}"),
        ))),
    }
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
        Box::pin(small_object(async move {
            let reference = ContentRef::Digest(digest.clone());
            source.get_manifest(&reference).await.map(|raw| raw.bytes)
        }))
    }

    fn blob<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Bytes, OriginError>> {
        let source = (self.source_of)(repo);
        Box::pin(small_object(
            async move { source.get_blob(descriptor).await },
        ))
    }

    fn blob_range<'a>(
        &'a self,
        repo: &'a RegistryRef,
        descriptor: &'a Descriptor,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
        let source = (self.source_of)(repo);
        let offset = range.start;
        Box::pin(async move {
            let blob = source
                .stream_blob(descriptor, range)
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

/// Why a peer gave no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStatus {
    /// Nothing listens there (or the name does not resolve): its fetcher is not running.
    Refused,
    /// No usable answer in time: it may be alive and loaded, or its host gone.
    Silent,
}

/// How this node talks to other fetchers.
pub trait PeerTransport: Send + Sync {
    /// Bytes `range` of `blob`; the peer downloads it itself unless `complete_only` (then it
    /// sends only bytes it already has all of).
    fn blob<'a>(
        &'a self,
        peer: &'a Peer,
        blob: &'a BlobRef,
        range: std::ops::Range<u64>,
        hops: u32,
        complete_only: bool,
    ) -> BoxFuture<'a, Result<PeerStream, DownloadError>>;

    /// The peer's status of `digest` (and whether `attempt` was discarded), or why there is
    /// none: the peer refused the connection, or gave no usable answer within `timeout`.
    fn status<'a>(
        &'a self,
        peer: &'a Peer,
        digest: &'a Digest,
        attempt: Option<u64>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<BlobStatus, NoStatus>>;

    /// A small complete blob (a manifest or config) the peer has, unverified.
    fn small_blob<'a>(&'a self, peer: &'a Peer, digest: &'a Digest)
        -> BoxFuture<'a, Option<Bytes>>;
}
