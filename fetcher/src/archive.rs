//! From a pinned reference to a published archive: resolve the manifest (or the index entry for
//! this node's platform), read the config, pull the layer through the tree, unpack and publish.
//! It must not trust any byte it did not check against a digest.

use crate::digest::Digest;
use crate::follow::{BlockingReader, Cursor};
use crate::metrics::ErrorKind;
use crate::pull::{Availability, BlobRef, Node};
use crate::store::{PublishedRecord, StoreError};
use bytes::Bytes;
use classcache_core::artifact::{
    parse_archive_config, parse_archive_manifest, pick_platform_archive, ArtifactError, Platform,
};
use classcache_core::fetcher::http::{self as api, COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE};
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::oci::{ImageIndex, MediaTypeProbe};
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::RegistryError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0:?} is not pinned by digest; pass <registry>/<repo>@sha256:<hex> (kubectl classcache enable writes it so)")]
    NotPinned(String),
    #[error("{reference}: cannot get {what}: {message}")]
    Unavailable {
        reference: String,
        what: String,
        message: String,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{reference}: the layer could not be fetched: {message}")]
    Layer { reference: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArchiveError {
    pub fn metric_kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Store(e) => e.metric_kind(),
            ArchiveError::Unavailable { .. } | ArchiveError::Registry(_) => ErrorKind::Registry,
            ArchiveError::Layer { .. } => ErrorKind::Exhausted,
            _ => ErrorKind::NotAnArchive,
        }
    }
}

/// The outcome of an archive request.
pub struct Published {
    pub record: PublishedRecord,
    pub path: PathBuf,
    /// It was already published: nothing was fetched.
    pub hit: bool,
}

pub struct Archives {
    node: Arc<Node>,
    platform: Platform,
    /// One resolution per pinned digest at a time; the second caller then finds it published.
    locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Archives {
    pub fn new(node: Arc<Node>, platform: Platform) -> Arc<Self> {
        Arc::new(Self {
            node,
            platform,
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Makes sure the archive `reference` pins is published on this node.
    pub async fn ensure(&self, reference: &RegistryRef) -> Result<Published, ArchiveError> {
        let started = Instant::now();
        let metrics = self.node.metrics.clone();
        let result = self.ensure_inner(reference).await;
        match &result {
            Ok(p) if p.hit => {
                metrics.hits.fetch_add(1, Relaxed);
            }
            Ok(_) => {
                metrics.misses.fetch_add(1, Relaxed);
            }
            Err(e) => {
                metrics.misses.fetch_add(1, Relaxed);
                metrics.error(e.metric_kind());
                tracing::error!(reference = %reference.to_string(), error = %e, "archive request failed");
            }
        }
        if result.is_ok() {
            metrics.observe_fetch(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn ensure_inner(&self, reference: &RegistryRef) -> Result<Published, ArchiveError> {
        let whole = reference.to_string();
        let pinned: Digest = reference
            .digest
            .clone()
            .ok_or_else(|| ArchiveError::NotPinned(whole.clone()))?;
        let store = &self.node.store;
        if let Some(record) = self.published(&pinned).await {
            return Ok(Published {
                path: store.published_path(&pinned),
                record,
                hit: true,
            });
        }
        let lock = self
            .locks
            .lock()
            .unwrap()
            .entry(pinned.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(record) = self.published(&pinned).await {
            return Ok(Published {
                path: store.published_path(&pinned),
                record,
                hit: false,
            });
        }
        let repo = reference.repository_only();
        let top = self.small_object(&repo, &pinned, None).await?;
        let media_type = MediaTypeProbe::media_type_of(&top);
        let (manifest_digest, manifest_bytes) =
            if media_type.as_deref().is_some_and(media_types::is_index) {
                let index: ImageIndex =
                    serde_json::from_slice(&top).map_err(|e| ArtifactError::BadJson {
                        reference: whole.clone(),
                        what: "index",
                        error: e.to_string(),
                    })?;
                let entry = pick_platform_archive(&whole, &index, &self.platform)?;
                let child = entry.digest.clone();
                let bytes = self.small_object(&repo, &child, None).await?;
                (child, bytes)
            } else {
                (pinned.clone(), top)
            };
        let manifest_ref = format!("{}/{}@{manifest_digest}", repo.registry, repo.repository);
        let manifest = parse_archive_manifest(&manifest_bytes, &manifest_ref)?;
        let config_digest = manifest.config.digest.clone();
        let config_bytes = self
            .small_object(&repo, &config_digest, Some(&manifest.config))
            .await?;
        let config = parse_archive_config(&config_bytes, &manifest.config, &manifest_ref)?;
        let layer = &manifest.layers[0];
        let layer_digest = layer.digest.clone();
        let blob = BlobRef {
            repo: repo.clone(),
            digest: layer_digest.clone(),
            size: layer.size,
        };
        let record = PublishedRecord {
            pinned: pinned.to_string(),
            layer_digest: layer_digest.to_string(),
            layer_size: layer.size,
            archive: config.archive.clone(),
            runtime_options: config.runtime_options.clone(),
        };
        let unpacking = self.unpack_while_downloading(&blob, &record).await;
        self.node
            .fetch_blob(&blob)
            .await
            .map_err(|message| ArchiveError::Layer {
                reference: whole.clone(),
                message: message.to_string(),
            })?;
        if let Some(unpacking) = unpacking {
            if let Ok(Err(e)) = unpacking.await {
                // Bytes of a discarded attempt, say: unpack again from the verified blob.
                tracing::info!(error = %e, "unpacking during the download failed; unpacking the stored blob");
            }
        }
        let (path, record) = store
            .run(move |s| {
                s.publish(&pinned, &layer_digest, &record)
                    .map(|p| (p, record))
            })
            .await?;
        tracing::info!(reference = %whole, path = %path.display(), "published");
        Ok(Published {
            record,
            path,
            hit: false,
        })
    }

    /// Starts unpacking the layer as its bytes arrive, on a thread of its own (it blocks on the
    /// download's progress, and must not hold a thread the download itself needs), so that
    /// decompression and hashing overlap the transfer.
    async fn unpack_while_downloading(
        &self,
        blob: &BlobRef,
        record: &PublishedRecord,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), StoreError>>> {
        let Some(Availability::InFlight(transfer)) = self.node.availability(blob, 0, true).await
        else {
            return None;
        };
        let store = self.node.store.clone();
        let cursor =
            Cursor::over_transfer(&store, &blob.digest, transfer.subscribe(), 0, blob.size);
        let reader = BlockingReader {
            cursor,
            rt: tokio::runtime::Handle::current(),
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let (layer, record) = (blob.digest.clone(), record.clone());
        std::thread::Builder::new()
            .name("unpack".into())
            .spawn(move || {
                let _ = done.send(store.unpack_from(reader, &layer, &record));
            })
            .ok()?;
        Some(result)
    }

    /// A manifest (`blob` None) or a config blob: from the store, else the registry, else any
    /// peer that has it (the registry may be down); checked against its digest whatever the source.
    async fn small_object(
        &self,
        repo: &RegistryRef,
        digest: &Digest,
        blob: Option<&Descriptor>,
    ) -> Result<Bytes, ArchiveError> {
        let store = &self.node.store;
        let d = digest.clone();
        if let Some(bytes) = store.run(move |s| s.read_blob(&d)).await {
            return Ok(bytes.into());
        }
        let what = if blob.is_some() {
            "the config"
        } else {
            "the manifest"
        };
        let from_registry = match blob {
            None => self.node.origin.manifest(repo, digest).await,
            Some(descriptor) => self.node.origin.blob(repo, descriptor).await,
        };
        let registry_error = match from_registry {
            Ok(bytes) if Digest::of(&bytes) == *digest => {
                return self.keep(digest, bytes).await;
            }
            Ok(bytes) => format!(
                "the registry sent {} bytes that do not match the digest",
                bytes.len()
            ),
            Err(e) => e.to_string(),
        };
        tracing::warn!(%digest, error = %registry_error, "registry failed; asking peers");
        if let Some(bytes) = self.small_object_from_peers(digest).await {
            return self.keep(digest, bytes).await;
        }
        Err(ArchiveError::Unavailable {
            reference: format!("{}/{}@{digest}", repo.registry, repo.repository),
            what: what.into(),
            message: format!("{registry_error}; and no peer has it"),
        })
    }

    /// The record of the archive `pinned` names, if published here (read on the blocking pool).
    async fn published(&self, pinned: &Digest) -> Option<PublishedRecord> {
        let pinned = pinned.clone();
        self.node.store.run(move |s| s.published(&pinned)).await
    }

    /// Stores a verified small object; returns it.
    async fn keep(&self, digest: &Digest, bytes: Bytes) -> Result<Bytes, ArchiveError> {
        let (d, b) = (digest.clone(), bytes.clone());
        self.node.store.run(move |s| s.put_blob(&d, &b)).await?;
        Ok(bytes)
    }

    async fn small_object_from_peers(&self, digest: &Digest) -> Option<Bytes> {
        let node = &self.node;
        node.first_peer_answer(
            |_| false,
            |peer| {
                let request = node
                    .http
                    .get(format!("{}{}", peer.url, api::blob_path(digest)))
                    .header(COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE)
                    .timeout(Duration::from_secs(5));
                async move {
                    let response = request.send().await.map_err(|_| ())?;
                    if !response.status().is_success() {
                        return Err(());
                    }
                    let bytes = response.bytes().await.map_err(|_| ())?;
                    (Digest::of(&bytes) == *digest).then_some(bytes).ok_or(())
                }
            },
        )
        .await
    }
}
