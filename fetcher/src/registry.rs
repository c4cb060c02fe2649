//! The origin registry as the fetcher needs it, over core's `RegistryClient`: manifests and
//! small blobs by digest, and a layer blob streamed from an offset. It must not store content.

use crate::digest::Digest;
use bytes::Bytes;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::{RegistryClient, RegistryError};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

pub struct Origin {
    client: RegistryClient,
}

impl Origin {
    pub fn new(client: RegistryClient) -> Self {
        Self { client }
    }

    /// The manifest (or index) bytes, checked against `digest` by core.
    pub async fn manifest(
        &self,
        repo: &RegistryRef,
        digest: &Digest,
    ) -> Result<Bytes, RegistryError> {
        let raw = self.client.get_manifest(&repo.with_digest(digest)).await?;
        Ok(raw.bytes)
    }

    /// A small blob (a config), checked against its descriptor by core.
    pub async fn blob(
        &self,
        repo: &RegistryRef,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        self.client.get_blob_bytes(repo, descriptor).await
    }

    /// A blob's bytes from `offset` on, as they arrive; unverified (the caller hashes them).
    pub async fn blob_from(
        &self,
        repo: &RegistryRef,
        digest: &Digest,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, String>>, RegistryError> {
        let blob = self.client.blob_stream(repo, digest, offset).await?;
        // A registry that ignores Range sends everything: skip what we already have.
        let mut skip = offset - blob.offset.min(offset);
        Ok(blob
            .stream
            .map_err(|e| e.to_string())
            .try_filter_map(move |mut chunk| {
                let drop = skip.min(chunk.len() as u64);
                skip -= drop;
                let rest = chunk.split_off(drop as usize);
                std::future::ready(Ok((!rest.is_empty()).then_some(rest)))
            })
            .boxed())
    }
}
