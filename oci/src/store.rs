//! One surface over both archive stores (a registry repository or an OCI layout directory),
//! so programs take `oci:DIR[:TAG]` and `host/repo[:tag]` alike. It dispatches; it must not
//! add behaviour of its own beyond the layout → registry copy.

use crate::content::{self, PulledArchive};
use crate::layout::{LayoutError, OciLayout};
use crate::registry::{PushedArchive, ReferrersUpdate, RegistryClient, RegistryError};
use bytes::Bytes;
use classcache_core::artifact::{self, ArchiveConfig};
use classcache_core::digest::Digest;
use classcache_core::key::IndexKey;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageManifest};
use classcache_core::platform::Platform;
use classcache_core::reference::{ArchiveLocation, ReferenceError, RegistryRef};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("the {what} task failed: {problem}")]
    Task { what: &'static str, problem: String },
}

/// An archive store opened from an [`ArchiveLocation`]; the location's tag or digest is what
/// `pull`/`fetch` read, while `push` tags with the archive key.
#[derive(Clone)]
pub enum ArchiveStore {
    Registry {
        client: RegistryClient,
        reference: RegistryRef,
    },
    Layout {
        layout: OciLayout,
        tag: Option<String>,
        digest: Option<Digest>,
    },
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, LayoutError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task {
            what,
            problem: e.to_string(),
        })?
        .map_err(StoreError::from)
}

impl ArchiveStore {
    /// Opens `location`. A layout is created when `create` is set and the directory is missing
    /// or empty; otherwise it must already be an OCI layout.
    pub fn open(
        location: &ArchiveLocation,
        client: &RegistryClient,
        create: bool,
    ) -> Result<Self, StoreError> {
        Ok(match location {
            ArchiveLocation::Registry(reference) => ArchiveStore::Registry {
                client: client.clone(),
                reference: reference.clone(),
            },
            ArchiveLocation::Layout { dir, tag, digest } => {
                let layout = if create {
                    OciLayout::create(dir)?
                } else {
                    OciLayout::open(dir)?
                };
                ArchiveStore::Layout {
                    layout,
                    tag: tag.clone(),
                    digest: digest.clone(),
                }
            }
        })
    }

    /// Parses and opens a reference string (see [`ArchiveLocation`]).
    pub fn open_str(
        location: &str,
        client: &RegistryClient,
        create: bool,
    ) -> Result<Self, StoreError> {
        Self::open(&location.parse()?, client, create)
    }

    /// Packs and stores an archive tagged with its key; also tagged with the location's own tag
    /// when it has one that differs from the key. See [`RegistryClient::push_archive`].
    pub async fn push_archive(
        &self,
        config: ArchiveConfig,
        archive_path: &Path,
        subject: Option<Descriptor>,
    ) -> Result<PushedArchive, StoreError> {
        match self {
            ArchiveStore::Registry { client, reference } => {
                let pushed = client
                    .push_archive(reference, config, archive_path, subject)
                    .await?;
                if let Some(extra) = reference.tag.as_deref().filter(|t| *t != pushed.tag) {
                    let raw = client
                        .get_manifest(&reference.with_digest(&pushed.manifest_digest))
                        .await?;
                    client
                        .put_manifest(
                            &reference.with_tag(extra),
                            media_types::OCI_MANIFEST,
                            raw.bytes,
                        )
                        .await?;
                }
                Ok(pushed)
            }
            ArchiveStore::Layout { layout, tag, .. } => {
                let (layout, tag, archive_path) =
                    (layout.clone(), tag.clone(), archive_path.to_path_buf());
                blocking("layout write", move || {
                    let (prepared, digest) = layout.push_archive(config, &archive_path, subject)?;
                    if let Some(extra) = tag
                        .as_deref()
                        .filter(|t| *t != prepared.config.key.as_str())
                    {
                        layout.add_to_index(prepared.manifest_descriptor.clone(), Some(extra))?;
                    }
                    Ok(PushedArchive {
                        reference: format!(
                            "oci:{}:{}@{digest}",
                            layout.root().display(),
                            prepared.config.key
                        ),
                        manifest_digest: digest,
                        manifest_descriptor: prepared.manifest_descriptor.clone(),
                        layer: prepared.layer_descriptor.clone(),
                        tag: prepared.config.key.to_string(),
                        config: prepared.config.clone(),
                        referrers: ReferrersUpdate::LayoutIndex,
                        bytes_uploaded: prepared.layer_descriptor.size
                            + prepared.config_descriptor.size,
                    })
                })
                .await
            }
        }
    }

    /// Stores the index of per-platform archives of a multi-platform image (see
    /// [`artifact::build_archive_index`]) under its index key `key` (and the location's own
    /// tag, if any), and makes it findable from the image index. Every entry's archive must
    /// already be in this store. Returns the index's digest: what pods pin. It writes the
    /// given entries as they are; CI jobs that each add their own platform use
    /// [`RegistryClient::update_archive_index`].
    pub async fn push_archive_index(
        &self,
        key: &IndexKey,
        subject: Descriptor,
        entries: Vec<Descriptor>,
    ) -> Result<Digest, StoreError> {
        let index = artifact::archive_index_of(key, subject, entries).map_err(LayoutError::from)?;
        let mut tags = vec![key.to_string()];
        let own = match self {
            ArchiveStore::Registry { reference, .. } => reference.tag.clone(),
            ArchiveStore::Layout { tag, .. } => tag.clone(),
        };
        tags.extend(own.filter(|t| *t != tags[0]));
        match self {
            ArchiveStore::Registry { client, reference } => {
                Ok(client.push_archive_index(reference, &index, &tags).await?)
            }
            ArchiveStore::Layout { layout, .. } => {
                let layout = layout.clone();
                blocking("layout write", move || {
                    layout.write_archive_index(&index, &tags)
                })
                .await
            }
        }
    }

    /// The archives attached to `image_digest` (referrer descriptors with annotations).
    pub async fn find_archives(
        &self,
        image_digest: &Digest,
    ) -> Result<Vec<Descriptor>, StoreError> {
        match self {
            ArchiveStore::Registry { client, reference } => {
                Ok(client.find_archives(reference, image_digest).await?)
            }
            ArchiveStore::Layout { layout, .. } => {
                let (layout, digest) = (layout.clone(), image_digest.clone());
                blocking("layout read", move || layout.find_archives(&digest)).await
            }
        }
    }

    /// Pulls the archive the location names to `dest` (atomic, verified).
    pub async fn pull_archive(
        &self,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<PulledArchive, StoreError> {
        match self {
            ArchiveStore::Registry { client, reference } => {
                Ok(client.pull_archive(reference, platform, dest).await?)
            }
            ArchiveStore::Layout {
                layout,
                tag,
                digest,
            } => {
                // A layout's content walk reads files on the calling thread: off the runtime.
                let (layout, tag, digest) = (layout.clone(), tag.clone(), digest.clone());
                let (platform, dest) = (platform.cloned(), dest.to_path_buf());
                blocking("layout read", move || {
                    layout.pull_archive(tag.as_deref(), digest.as_ref(), platform.as_ref(), &dest)
                })
                .await
            }
        }
    }
}

/// Copies the archive at `tag` (or `digest`) in `layout` to `target`'s repository: blobs
/// streamed from the layout's files, then the manifest under the same tag (or `target`'s tag),
/// then the referrers fallback index. Referrers relate manifests of one repository, so copy
/// to the repository that holds the subject image.
pub async fn copy_layout_archive_to_registry(
    layout: &OciLayout,
    tag: Option<&str>,
    digest: Option<&Digest>,
    client: &RegistryClient,
    target: &RegistryRef,
) -> Result<PushedArchive, StoreError> {
    // The layout is read (and every byte checked) off the runtime: its reads are file reads.
    let reference = layout.content_ref(tag, digest)?;
    let source = layout.clone();
    let (fetched, manifest_bytes, config_bytes, form) = blocking("layout read", move || {
        let fetched =
            futures::executor::block_on(content::fetch_archive(&source, &reference, None))?;
        let manifest_bytes = source
            .get_manifest(None, Some(&fetched.manifest_digest))?
            .bytes;
        let config_bytes = source.read_blob(&fetched.manifest.config)?;
        // The image-volume form, when the archive names one: its manifest and config.
        let form = match artifact::image_volume_of(&fetched.manifest) {
            Some(digest) => {
                let form_bytes = source.get_manifest(None, Some(&digest))?.bytes;
                let form: ImageManifest = artifact::parse_json(
                    &form_bytes,
                    &format!("{}@{digest}", source.root().display()),
                    "image-volume form",
                )?;
                let form_config = source.read_blob(&form.config)?;
                Some((form_bytes, form.config, form_config))
            }
            None => None,
        };
        Ok((fetched, manifest_bytes, config_bytes, form))
    })
    .await?;
    let manifest: &ImageManifest = &fetched.manifest;
    let repo = target.repository_only();
    let layer = fetched.layer().clone();
    let mut bytes_uploaded = client
        .push_blob_file(&repo, &layer, &layout.blob_path(&layer.digest))
        .await?;
    bytes_uploaded += client
        .push_blob_bytes(&repo, &manifest.config, Bytes::from(config_bytes))
        .await?;
    for blob in [&layer, &manifest.config] {
        if client.blob_size(&repo, &blob.digest).await? != Some(blob.size) {
            return Err(RegistryError::BlobMissingAfterPush {
                reference: repo.to_string(),
                digest: blob.digest.clone(),
            }
            .into());
        }
    }
    if let Some((form_bytes, form_config, form_config_bytes)) = form {
        bytes_uploaded += client
            .push_blob_bytes(&repo, &form_config, Bytes::from(form_config_bytes))
            .await?;
        client
            .put_manifest(
                &repo.with_tag(&artifact::image_volume_tag(&fetched.config)),
                media_types::OCI_MANIFEST,
                form_bytes,
            )
            .await?;
    }
    let tag = target
        .tag
        .clone()
        .unwrap_or_else(|| fetched.config.key.to_string());
    let manifest_digest = client
        .put_manifest(
            &repo.with_tag(&tag),
            media_types::OCI_MANIFEST,
            manifest_bytes.clone(),
        )
        .await?;
    let entry = artifact::referrer_entry(
        media_types::OCI_MANIFEST,
        &manifest_bytes,
        manifest.artifact_type.as_deref(),
        &manifest.annotations,
    );
    let subject = manifest
        .subject
        .as_ref()
        .ok_or_else(|| RegistryError::Protocol {
            reference: fetched.reference.clone(),
            problem: "the archive manifest has no subject, so it cannot be listed as a referrer of its image; push it again with classcache".into(),
        })?;
    let referrers = client
        .add_to_referrers(&repo, &subject.digest, &entry)
        .await?;
    Ok(PushedArchive {
        reference: format!("{}@{manifest_digest}", repo.with_tag(&tag)),
        manifest_digest,
        manifest_descriptor: entry,
        layer,
        config: fetched.config,
        tag,
        referrers,
        bytes_uploaded,
    })
}
