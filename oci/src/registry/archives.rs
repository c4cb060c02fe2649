//! Archives in a registry: push a prepared archive or an index of them, resolve images, and
//! fetch and pull an archive. It composes the other registry modules; it must not speak HTTP itself.

use super::*;
use crate::content::{self, ContentRef};
use classcache_core::platform::Platform;

impl RegistryClient {
    /// Pushes a prepared archive to `repository` tagged `tag` (normally the key): blobs first
    /// (streamed, skipped when present), then a check that each is present with its size, then
    /// the manifest, then the referrers fallback index when the registry has no referrers API.
    /// A failure before the manifest leaves no tag; the subject must be in `repository`.
    pub async fn push_prepared(
        &self,
        repository: &RegistryRef,
        prepared: &PreparedArchive,
        tag: &str,
    ) -> Result<PushedArchive, RegistryError> {
        let repo = repository.repository_only();
        let mut bytes_uploaded = self
            .push_blob_file(
                &repo,
                &prepared.layer_descriptor,
                prepared.layer_file.path(),
            )
            .await?;
        bytes_uploaded += self
            .push_blob_bytes(
                &repo,
                &prepared.config_descriptor,
                Bytes::from(prepared.config_json.clone()),
            )
            .await?;
        let form = &prepared.image_volume;
        bytes_uploaded += self
            .push_blob_bytes(
                &repo,
                &form.config_descriptor,
                Bytes::from(form.config_json.clone()),
            )
            .await?;
        for blob in [
            &prepared.layer_descriptor,
            &prepared.config_descriptor,
            &form.config_descriptor,
        ] {
            if self.blob_size(&repo, &blob.digest).await? != Some(blob.size) {
                return Err(RegistryError::BlobMissingAfterPush {
                    reference: repo.to_string(),
                    digest: blob.digest.clone(),
                });
            }
        }
        // The archive manifest names its image-volume form, so the form goes first.
        self.put_manifest(
            &repo.with_tag(&artifact::image_volume_tag(&prepared.config)),
            media_types::OCI_MANIFEST,
            Bytes::from(form.manifest_json.clone()),
        )
        .await?;
        let tagged = repo.with_tag(tag);
        let (manifest_digest, headers) = self
            .put_manifest_with_headers(
                &tagged,
                media_types::OCI_MANIFEST,
                Bytes::from(prepared.manifest_json.clone()),
            )
            .await?;
        let subject = prepared
            .manifest
            .subject
            .as_ref()
            .expect("prepared archives have a subject");
        let referrers = self
            .referrer_put(
                &repo,
                &headers,
                &subject.digest,
                &prepared.manifest_descriptor,
            )
            .await?;
        Ok(PushedArchive {
            reference: format!("{}@{manifest_digest}", tagged),
            manifest_digest,
            manifest_descriptor: prepared.manifest_descriptor.clone(),
            layer: prepared.layer_descriptor.clone(),
            config: prepared.config.clone(),
            tag: tag.to_string(),
            referrers,
            bytes_uploaded,
        })
    }

    /// Packs `archive_path` and pushes it with `config` to `repository`, tagged with the key.
    /// `subject` is the app image's platform manifest descriptor; when `None` it is looked up
    /// as `repository@config.image.digest`. The layer is packed into a temporary file first.
    pub async fn push_archive(
        &self,
        repository: &RegistryRef,
        config: ArchiveConfig,
        archive_path: &Path,
        subject: Option<Descriptor>,
    ) -> Result<PushedArchive, RegistryError> {
        let repo = repository.repository_only();
        let subject = match subject {
            Some(s) => s,
            None => self
                .head_manifest(&repo.with_digest(&config.image.digest))
                .await?
                .ok_or_else(|| RegistryError::SubjectNotFound {
                    reference: repo.to_string(),
                    repository: repo.to_string(),
                    digest: config.image.digest.to_string(),
                })?,
        };
        let tag = config.key.to_string();
        let prepared = prepare_blocking(config, archive_path, subject).await?;
        self.push_prepared(&repo, &prepared, &tag).await
    }

    /// Pushes an index of per-platform archives (from [`artifact::build_archive_index`]) under
    /// each of `tags`, after checking every entry is in the repository, then adds it to the
    /// referrers of its subject (the image index). Returns the index digest.
    pub async fn push_archive_index(
        &self,
        repository: &RegistryRef,
        index: &ImageIndex,
        tags: &[String],
    ) -> Result<Digest, RegistryError> {
        let repo = repository.repository_only();
        for entry in &index.manifests {
            if self
                .head_manifest(&repo.with_digest(&entry.digest))
                .await?
                .is_none()
            {
                return Err(RegistryError::NotFound {
                    reference: repo.with_digest(&entry.digest).to_string(),
                    what: "archive manifest named by the index".into(),
                });
            }
        }
        let body = serde_json::to_vec(index).expect("an index always serializes");
        let mut digest = Digest::of(&body);
        for tag in tags {
            digest = self
                .put_manifest(
                    &repo.with_tag(tag),
                    media_types::OCI_INDEX,
                    Bytes::from(body.clone()),
                )
                .await?;
        }
        if let Some(subject) = &index.subject {
            let entry = artifact::referrer_entry(
                media_types::OCI_INDEX,
                &body,
                index.artifact_type.as_deref(),
                &index.annotations,
            );
            self.add_to_referrers(&repo, &subject.digest, &entry)
                .await?;
        }
        Ok(digest)
    }

    /// Resolves an image reference (tag or digest) to its platform manifest(s).
    pub async fn resolve_image(&self, image: &RegistryRef) -> Result<ResolvedImage, RegistryError> {
        let (source, reference) = self.source_for(image)?;
        content::resolve_image(&source, &reference).await
    }

    /// Reads and checks the archive manifest and config `reference` names (tag or digest). When
    /// it names an index of per-platform archives, the entry for `platform` (default: this
    /// machine's) is taken.
    pub async fn fetch_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
    ) -> Result<ArchiveManifest, RegistryError> {
        let (source, reference) = self.source_for(reference)?;
        content::fetch_archive(&source, &reference, platform).await
    }

    /// Pulls the archive `reference` names to `dest`: see [`content::pull_archive`].
    pub async fn pull_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<PulledArchive, RegistryError> {
        let (source, reference) = self.source_for(reference)?;
        content::pull_archive(&source, &reference, platform, dest).await
    }

    /// The content source of `reference`'s repository, and what in it `reference` names
    /// (its digest, else its tag).
    pub fn source_for(
        &self,
        reference: &RegistryRef,
    ) -> Result<(RegistrySource, ContentRef), RegistryError> {
        let named = ContentRef::from_parts(reference.tag.as_deref(), reference.digest.as_ref())
            .ok_or_else(|| RegistryError::NoTagOrDigest {
                reference: reference.to_string(),
            })?;
        Ok((self.source(reference), named))
    }
}

/// Runs [`crate::archive_file::prepare_archive`] on a blocking thread, the layer in the system temp dir.
pub(crate) async fn prepare_blocking(
    config: ArchiveConfig,
    archive_path: &Path,
    subject: Descriptor,
) -> Result<PreparedArchive, ArtifactError> {
    let archive_path = archive_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::archive_file::prepare_archive(config, &archive_path, subject, &std::env::temp_dir())
    })
    .await
    .expect("the packing task does not panic")
}
