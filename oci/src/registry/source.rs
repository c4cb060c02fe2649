//! One repository of a registry as a [`ContentSource`], so the content walk runs over it.
//! It adapts the client's calls; it must not add behaviour of its own.

use super::*;
use crate::content::{ContentRef, ContentSource};

/// A repository of a registry, read through a [`RegistryClient`].
#[derive(Clone)]
pub struct RegistrySource {
    pub client: RegistryClient,
    /// The repository (neither tag nor digest).
    pub repository: RegistryRef,
}

impl RegistryClient {
    /// The content source of `reference`'s repository.
    pub fn source(&self, reference: &RegistryRef) -> RegistrySource {
        RegistrySource {
            client: self.clone(),
            repository: reference.repository_only(),
        }
    }
}

impl RegistrySource {
    fn reference(&self, reference: &ContentRef) -> RegistryRef {
        match reference {
            ContentRef::Tag(t) => self.repository.with_tag(t),
            ContentRef::Digest(d) => self.repository.with_digest(d),
        }
    }
}

impl ContentSource for RegistrySource {
    type Error = RegistryError;

    fn name(&self, reference: &ContentRef) -> String {
        self.reference(reference).to_string()
    }

    async fn get_manifest(&self, reference: &ContentRef) -> Result<RawManifest, RegistryError> {
        self.client.get_manifest(&self.reference(reference)).await
    }

    async fn get_blob(&self, descriptor: &Descriptor) -> Result<Bytes, RegistryError> {
        self.client
            .get_blob_bytes(&self.repository, descriptor)
            .await
    }

    async fn stream_blob(
        &self,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream, RegistryError> {
        self.client
            .blob_stream(&self.repository, descriptor, range)
            .await
    }
}
