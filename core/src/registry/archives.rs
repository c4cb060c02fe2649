//! Archives in a registry: push a prepared archive or an index of them, resolve images, and
//! fetch and pull an archive. It composes the other registry modules; it must not speak HTTP itself.

use super::*;

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
        for blob in [&prepared.layer_descriptor, &prepared.config_descriptor] {
            if self.blob_size(&repo, &blob.digest).await? != Some(blob.size) {
                return Err(RegistryError::BlobMissingAfterPush {
                    reference: repo.to_string(),
                    digest: blob.digest.clone(),
                });
            }
        }
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
        let referrers = if headers.contains_key("oci-subject") {
            ReferrersUpdate::NativeApi
        } else {
            self.add_to_referrers(&repo, &subject.digest, &prepared.manifest_descriptor)
                .await?
        };
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
                    digest: config.image.digest.clone(),
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
    ) -> Result<String, RegistryError> {
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
        let mut digest = String::new();
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
        let raw = self.get_manifest(image).await?;
        if media_types::is_index(&raw.media_type) {
            let index: ImageIndex =
                artifact::parse_json(&raw.bytes, &image.to_string(), "image index")?;
            let manifests = index
                .manifests
                .into_iter()
                .filter(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
                })
                .collect();
            return Ok(ResolvedImage {
                digest: raw.digest,
                media_type: raw.media_type,
                manifests,
            });
        }
        if !media_types::is_image_manifest(&raw.media_type) {
            return Err(ArtifactError::UnknownMediaType {
                reference: image.to_string(),
                what: "image manifest",
                found: raw.media_type,
                expected: media_types::OCI_MANIFEST,
            }
            .into());
        }
        let manifest: ImageManifest =
            artifact::parse_json(&raw.bytes, &image.to_string(), "image manifest")?;
        let config_bytes = self
            .get_blob_bytes(&image.repository_only(), &manifest.config)
            .await?;
        let platform: ImageConfigPlatform =
            artifact::parse_json(&config_bytes, &image.to_string(), "image config")?;
        let mut descriptor = raw.descriptor();
        descriptor.platform = Some(Platform {
            os: platform.os,
            architecture: platform.architecture,
            variant: platform.variant,
        });
        Ok(ResolvedImage {
            digest: raw.digest,
            media_type: raw.media_type,
            manifests: vec![descriptor],
        })
    }

    /// Reads and checks the archive manifest and config `reference` names (tag or digest). When
    /// it names an index of per-platform archives, the entry for `platform` (default: this
    /// machine's) is taken.
    pub async fn fetch_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
    ) -> Result<ArchiveManifest, RegistryError> {
        if reference.tag.is_none() && reference.digest.is_none() {
            return Err(RegistryError::NoTagOrDigest {
                reference: reference.to_string(),
            });
        }
        let repo = reference.repository_only();
        let mut raw = self.get_manifest(reference).await?;
        let mut name = reference.to_string();
        if media_types::is_index(&raw.media_type) {
            let index: ImageIndex = artifact::parse_json(&raw.bytes, &name, "index")?;
            let entry = pick_platform_archive(&name, &index, platform)?;
            let pinned = repo.with_digest(&entry.digest);
            raw = self.get_manifest(&pinned).await?;
            name = pinned.to_string();
        }
        let manifest = artifact::parse_archive_manifest(&raw.bytes, &name)?;
        let config_bytes = self.get_blob_bytes(&repo, &manifest.config).await?;
        let config = artifact::parse_archive_config(&config_bytes, &manifest.config, &name)?;
        Ok(ArchiveManifest {
            reference: repo.with_digest(&raw.digest).to_string(),
            manifest_digest: raw.digest,
            manifest,
            config,
        })
    }

    /// Pulls the archive `reference` names to `dest`: manifest and config checked, the layer
    /// streamed and hashed on the fly, unpacked into a temporary file beside `dest` that is
    /// renamed into place only after layer digest and archive sha256 both match.
    pub async fn pull_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<PulledArchive, RegistryError> {
        let fetched = self.fetch_archive(reference, platform).await?;
        let layer = fetched.layer().clone();
        let mut blob = self
            .blob_stream(&reference.repository_only(), &layer.digest, 0)
            .await?;
        let archive = fetched.config.archive.clone();
        let dest_owned = dest.to_path_buf();
        let name = fetched.reference.clone();
        // The unpacking is blocking (gzip, tar, fsync): it reads the network stream through a
        // small bounded channel, which also gives back-pressure.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let unpack = tokio::task::spawn_blocking(move || {
            artifact::unpack_layer(
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
                &layer,
                &archive,
                &dest_owned,
                &name,
            )
        });
        let mut transfer_error = None;
        while let Some(chunk) = blob.stream.next().await {
            let item = chunk.map_err(|e| {
                let message = e.to_string();
                transfer_error = Some(e);
                std::io::Error::other(message)
            });
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let unpacked = unpack.await.map_err(|e| RegistryError::Protocol {
            reference: fetched.reference.clone(),
            problem: format!("the unpacking task failed: {e}"),
        })?;
        if let Some(e) = transfer_error {
            return Err(e);
        }
        unpacked?;
        Ok(PulledArchive {
            manifest_digest: fetched.manifest_digest,
            config: fetched.config,
            path: dest.to_path_buf(),
        })
    }
}

/// A blocking reader over chunks sent from an async task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs [`artifact::prepare_archive`] on a blocking thread, the layer in the system temp dir.
pub(crate) async fn prepare_blocking(
    config: ArchiveConfig,
    archive_path: &Path,
    subject: Descriptor,
) -> Result<PreparedArchive, ArtifactError> {
    let archive_path = archive_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        artifact::prepare_archive(config, &archive_path, subject, &std::env::temp_dir())
    })
    .await
    .expect("the packing task does not panic")
}

/// The entry of an index of per-platform archives for `platform` (default: this machine's).
pub fn pick_platform_archive<'a>(
    reference: &str,
    index: &'a ImageIndex,
    platform: Option<&Platform>,
) -> Result<&'a Descriptor, RegistryError> {
    let want = platform.cloned().unwrap_or_else(current_platform);
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(p, &want))
        })
        .ok_or_else(|| RegistryError::NoArchiveForPlatform {
            reference: reference.to_string(),
            platform: format!("{}/{}", want.os, want.architecture),
            available: index
                .manifests
                .iter()
                .filter_map(|d| {
                    d.platform
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}
