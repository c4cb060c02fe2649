//! An in-memory [`ContentSource`] for tests of the walk and of every crate that reads OCI
//! content. It holds what it is given, even bytes that do not match their digest (to test
//! the checks); it must not be used by programs.

use crate::content::{BlobStream, ContentRef, ContentSource, RawManifest};
use bytes::Bytes;
use classcache_core::artifact::{
    check_blob, describe_archive, pack_layer, ArchiveBlobs, ArchiveConfig, ArtifactError,
};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{name}: not found in the in-memory source")]
    NotFound { name: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// Manifests, blobs and tags of one repository, in memory.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    name: String,
    tags: HashMap<String, Digest>,
    /// Manifests and blobs alike, by digest.
    content: HashMap<Digest, Bytes>,
}

impl MemorySource {
    /// An empty source that messages call `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Stores a blob under its digest; returns its descriptor.
    pub fn put_blob(&mut self, media_type: &str, bytes: impl Into<Bytes>) -> Descriptor {
        let bytes = bytes.into();
        let d = Descriptor::new(media_type, Digest::of(&bytes), bytes.len() as u64);
        self.content.insert(d.digest.clone(), bytes);
        d
    }

    /// Stores `bytes` under `digest` whether they match or not (to test the checks).
    pub fn put_raw_blob(&mut self, digest: Digest, bytes: impl Into<Bytes>) {
        self.content.insert(digest, bytes.into());
    }

    /// Stores a manifest or index, tagged `tag` if given; returns its descriptor.
    pub fn put_manifest(
        &mut self,
        media_type: &str,
        bytes: impl Into<Bytes>,
        tag: Option<&str>,
    ) -> Descriptor {
        let d = self.put_blob(media_type, bytes);
        if let Some(tag) = tag {
            self.tags.insert(tag.to_string(), d.digest.clone());
        }
        d
    }

    /// Packs `archive` with `config` (its `image.digest` names the subject) and stores layer,
    /// config and manifest, tagged `tag` if given.
    pub fn put_archive(
        &mut self,
        config: ArchiveConfig,
        archive: &[u8],
        tag: Option<&str>,
    ) -> ArchiveBlobs {
        let name = if config.archive.name.is_empty() {
            "app.jsa".to_string()
        } else {
            config.archive.name.clone()
        };
        let (layer, packed) = pack_layer(archive, archive.len() as u64, &name, Vec::new())
            .expect("packing in memory does not fail");
        let subject = Descriptor::new(media_types::OCI_MANIFEST, config.image.digest.clone(), 1);
        let blobs = describe_archive(config, packed, subject).expect("the subject is the image");
        self.put_blob(media_types::ARCHIVE_LAYER, layer);
        self.put_blob(media_types::ARCHIVE_CONFIG, blobs.config_json.clone());
        let form = &blobs.image_volume;
        self.put_blob(media_types::OCI_CONFIG, form.config_json.clone());
        self.put_manifest(media_types::OCI_MANIFEST, form.manifest_json.clone(), None);
        self.put_manifest(media_types::OCI_MANIFEST, blobs.manifest_json.clone(), tag);
        blobs
    }

    fn find(&self, reference: &ContentRef) -> Result<(Digest, Bytes), MemoryError> {
        let digest = match reference {
            ContentRef::Digest(d) => Some(d.clone()),
            ContentRef::Tag(t) => self.tags.get(t).cloned(),
        };
        digest
            .and_then(|d| self.content.get(&d).map(|b| (d, b.clone())))
            .ok_or_else(|| MemoryError::NotFound {
                name: self.name(reference),
            })
    }
}

impl ContentSource for MemorySource {
    type Error = MemoryError;

    fn name(&self, reference: &ContentRef) -> String {
        format!("{}{reference}", self.name)
    }

    async fn get_manifest(&self, reference: &ContentRef) -> Result<RawManifest, MemoryError> {
        let (digest, bytes) = self.find(reference)?;
        Ok(RawManifest::pinned(&self.name(reference), &digest, bytes)?)
    }

    async fn get_blob(&self, descriptor: &Descriptor) -> Result<Bytes, MemoryError> {
        let reference = ContentRef::Digest(descriptor.digest.clone());
        let (_, bytes) = self.find(&reference)?;
        check_blob(&self.name(&reference), "blob", descriptor, &bytes)?;
        Ok(bytes)
    }

    async fn stream_blob(
        &self,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream<MemoryError>, MemoryError> {
        let (_, bytes) = self.find(&ContentRef::Digest(descriptor.digest.clone()))?;
        let start = (range.start as usize).min(bytes.len());
        let end = (range.end as usize).clamp(start, bytes.len());
        let total = bytes.len() as u64;
        let chunks: Vec<Result<Bytes, MemoryError>> = bytes
            .slice(start..end)
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Ok(BlobStream {
            offset: start as u64,
            total_size: Some(total),
            stream: Box::pin(futures_util::stream::iter(chunks)),
        })
    }
}
