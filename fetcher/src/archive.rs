//! From a pinned reference to a published archive: oci's content walk over the node's small objects, then the layer through the tree, unpacked and published.
//! It must not trust any byte it did not check against a digest.

use crate::follow::{BlockingReader, Cursor};
use crate::locks::LockExt;
use crate::metrics::ErrorKind;
use crate::node::{Availability, BlobRef, Node, Progress, PullError};
use crate::sources::OriginError;
use crate::store::{PublishedRecord, StoreError};
use bytes::Bytes;
use classcache_core::artifact::{check_blob, ArtifactError, Platform};
use classcache_core::digest::Digest;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_oci::content::{
    archive_manifests, fetch_archive, BlobStream, ContentRef, ContentSource, RawManifest,
    MAX_MANIFEST_BYTES,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0:?} is not pinned by digest; pass <registry>/<repo>@sha256:<hex> (kubectl classcache enable writes it so)")]
    NotPinned(String),
    #[error("{reference}: cannot get {what}: {source}; and no peer has it")]
    Unavailable {
        reference: String,
        what: &'static str,
        #[source]
        source: OriginError,
    },
    #[error("{reference}: cannot get {what}: the registry sent bytes that do not match the digest; and no peer has it")]
    WrongBytes {
        reference: String,
        what: &'static str,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{reference}: the layer could not be fetched: {source}")]
    Layer {
        reference: String,
        #[source]
        source: Arc<PullError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: the node's content walk streams no layers")]
    NoStreaming(String),
    #[error(transparent)]
    RegistryNotAllowed(#[from] classcache_core::allowed_registry::RegistryNotAllowed),
    #[error("{reference}: nothing published: {source}")]
    RefusedOptions {
        reference: String,
        #[source]
        source: classcache_core::jvm::RefusedOption,
    },
    #[error(transparent)]
    Unsigned(#[from] crate::signature::SignatureError),
    #[error("{layer} is not the layer of any platform's manifest of {reference}; a peer asks only for the layer of the archive it names")]
    NotItsLayer { reference: String, layer: Digest },
}

impl ArchiveError {
    /// Whether the caller asked for something this fetcher refuses to fetch (403), as opposed
    /// to something that failed.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ArchiveError::RegistryNotAllowed(_)
                | ArchiveError::Unsigned(crate::signature::SignatureError::Unsigned { .. })
        )
    }

    pub fn metric_kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Store(e) => e.metric_kind(),
            ArchiveError::Unavailable { .. } | ArchiveError::WrongBytes { .. } => {
                ErrorKind::Registry
            }
            ArchiveError::Layer { .. } => ErrorKind::Exhausted,
            ArchiveError::RegistryNotAllowed(_) => ErrorKind::RegistryNotAllowed,
            ArchiveError::RefusedOptions { .. } => ErrorKind::RefusedOptions,
            ArchiveError::Unsigned(e) => e.metric_kind(),
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
    /// `--require-signature`: set once at start, checked before anything of an archive is fetched.
    pub signatures: std::sync::OnceLock<crate::signature::SignaturePolicy>,
}

impl Archives {
    pub fn new(node: Arc<Node>, platform: Platform) -> Arc<Self> {
        Arc::new(Self {
            node,
            platform,
            locks: Mutex::new(HashMap::new()),
            signatures: std::sync::OnceLock::new(),
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
        self.node.origin.check_allowed(reference)?;
        // Before the store too: an archive published before the policy is not served unsigned.
        if let Some(policy) = self.signatures.get() {
            policy.check(&reference.repository_only(), &pinned).await?;
        }
        let store = &self.node.store;
        if let Some(record) = self.published(&pinned).await {
            return Ok(Published {
                path: store.published_path(&pinned, &record.archive.name),
                record,
                hit: true,
            });
        }
        let lock = self
            .locks
            .locked()
            .entry(pinned.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(record) = self.published(&pinned).await {
            return Ok(Published {
                path: store.published_path(&pinned, &record.archive.name),
                record,
                hit: false,
            });
        }
        let repo = reference.repository_only();
        let content = NodeContent {
            archives: self,
            repo: &repo,
        };
        let fetched = fetch_archive(
            &content,
            &ContentRef::Digest(pinned.clone()),
            Some(&self.platform),
        )
        .await?;
        // The options reach production JAVA_TOOL_OPTIONS: refused before any layer byte.
        fetched
            .config
            .check_runtime_options()
            .map_err(|source| ArchiveError::RefusedOptions {
                reference: whole.clone(),
                source,
            })?;
        // The layer's size comes from the verified manifest, never from a caller.
        let layer = fetched.layer();
        let layer_digest = layer.digest.clone();
        let blob = BlobRef {
            archive: repo.with_digest(&pinned),
            repo: repo.clone(),
            digest: layer_digest.clone(),
            size: layer.size,
        };
        let record = PublishedRecord {
            pinned: pinned.to_string(),
            layer_digest: layer_digest.to_string(),
            layer_size: layer.size,
            archive: fetched.config.archive.clone(),
            runtime_options: fetched.config.runtime_options.clone(),
        };
        let (unpacking, waiting) = self.unpack_while_downloading(&blob, &record).await.unzip();
        let fetched = self.node.fetch_blob(&blob).await;
        // This request waited on the download from its first bytes until fetch_blob took over;
        // letting go any earlier leaves a moment (fetch_blob's store check, on the blocking
        // pool) in which a download no peer follows any more looks abandoned and is cancelled.
        drop(waiting);
        fetched.map_err(|source| ArchiveError::Layer {
            reference: whole.clone(),
            source,
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

    /// The layer `layer` of the archive `archive` pins, as this node downloads it for a peer:
    /// repository and size come from the archive's verified manifests (any platform's, since
    /// the asker may run another one), never from the asker.
    pub async fn layer_of(
        &self,
        archive: &RegistryRef,
        layer: &Digest,
    ) -> Result<BlobRef, ArchiveError> {
        let whole = archive.to_string();
        let pinned = archive
            .digest
            .clone()
            .ok_or_else(|| ArchiveError::NotPinned(whole.clone()))?;
        if let Err(e) = self.node.origin.check_allowed(archive) {
            self.node.metrics.error(ErrorKind::RegistryNotAllowed);
            return Err(e.into());
        }
        let repo = archive.repository_only();
        let content = NodeContent {
            archives: self,
            repo: &repo,
        };
        let (_, manifests) =
            archive_manifests(&content, &ContentRef::Digest(pinned.clone())).await?;
        let found = manifests
            .iter()
            .map(|m| m.layer())
            .find(|l| l.digest == *layer)
            .ok_or_else(|| ArchiveError::NotItsLayer {
                reference: whole,
                layer: layer.clone(),
            })?;
        Ok(BlobRef {
            archive: repo.with_digest(&pinned),
            repo,
            digest: found.digest.clone(),
            size: found.size,
        })
    }

    /// The record of the archive `pinned` names, if published here (read on the blocking pool).
    async fn published(&self, pinned: &Digest) -> Option<PublishedRecord> {
        let pinned = pinned.clone();
        self.node.store.run(move |s| s.published(&pinned)).await
    }

    /// Starts unpacking the layer as its bytes arrive, on a thread of its own (it blocks on the
    /// download's progress, and must not hold a thread the download itself needs), so that
    /// decompression and hashing overlap the transfer.
    async fn unpack_while_downloading(
        &self,
        blob: &BlobRef,
        record: &PublishedRecord,
    ) -> Option<(
        tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
        tokio::sync::watch::Receiver<Progress>,
    )> {
        let Some(Availability::InFlight(transfer)) = self.node.availability(blob, 0, true).await
        else {
            return None;
        };
        let store = self.node.store.clone();
        // The unpacker alone does not keep the download alive: the requests waiting on it do.
        let mut cursor = Cursor::over_transfer(
            &store,
            &blob.digest,
            transfer.subscribe_detached(),
            0,
            blob.size,
        );
        // The unpack reserves room for the archive file: only once the download has its own
        // room (its first bytes are in), so that the optional early unpack never takes the room
        // the layer itself needs. This request waits on the download meanwhile.
        let waiting = transfer.subscribe();
        let first_bytes = cursor.wait_readable().await;
        if first_bytes.is_err() {
            drop(cursor);
            transfer.undetach();
            return None;
        }
        let reader = BlockingReader {
            cursor,
            rt: tokio::runtime::Handle::current(),
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let (layer, record) = (blob.digest.clone(), record.clone());
        std::thread::Builder::new()
            .name("unpack".into())
            .spawn(move || {
                let unpacked = store.unpack_from(reader, &layer, &record);
                transfer.undetach();
                let _ = done.send(unpacked);
            })
            .ok()?;
        Some((result, waiting))
    }

    /// A manifest or a config blob: from the store, else the registry, else any peer that has
    /// it (the registry may be down); checked against its digest whatever the source, stored.
    async fn small_object(
        &self,
        repo: &RegistryRef,
        digest: &Digest,
        blob: Option<&Descriptor>,
    ) -> Result<Bytes, ArchiveError> {
        let store = &self.node.store;
        let d = digest.clone();
        if let Some(bytes) = store
            .run(move |s| s.read_small_blob(&d, MAX_MANIFEST_BYTES as u64))
            .await?
        {
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
            Ok(bytes) if Digest::of(&bytes) == *digest => return self.keep(digest, bytes).await,
            Ok(_) => None,
            Err(e) => Some(e),
        };
        let reference = format!("{}/{}@{digest}", repo.registry, repo.repository);
        tracing::warn!(%digest, error = ?registry_error.as_ref().map(ToString::to_string), "registry failed; asking peers");
        if let Some(bytes) = self.small_object_from_peers(digest).await {
            return self.keep(digest, bytes).await;
        }
        Err(match registry_error {
            Some(source) => ArchiveError::Unavailable {
                reference,
                what,
                source,
            },
            None => ArchiveError::WrongBytes { reference, what },
        })
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
            |peer| async move {
                let bytes = node.transport.small_blob(&peer, digest).await?;
                (Digest::of(&bytes) == *digest).then_some(bytes)
            },
        )
        .await
    }
}

/// The node's view of one repository as a [`ContentSource`], for oci's content walk: manifests
/// and configs from the store, the registry or peers. Layers go through the node's downloads,
/// not through this source.
struct NodeContent<'a> {
    archives: &'a Archives,
    repo: &'a RegistryRef,
}

impl ContentSource for NodeContent<'_> {
    type Error = ArchiveError;

    fn name(&self, reference: &ContentRef) -> String {
        format!("{}/{}{reference}", self.repo.registry, self.repo.repository)
    }

    async fn get_manifest(&self, reference: &ContentRef) -> Result<RawManifest, ArchiveError> {
        let name = self.name(reference);
        let ContentRef::Digest(digest) = reference else {
            return Err(ArchiveError::NotPinned(name));
        };
        let bytes = self.archives.small_object(self.repo, digest, None).await?;
        Ok(RawManifest::pinned(&name, digest, bytes)?)
    }

    async fn get_blob(&self, descriptor: &Descriptor) -> Result<Bytes, ArchiveError> {
        let bytes = self
            .archives
            .small_object(self.repo, &descriptor.digest, Some(descriptor))
            .await?;
        check_blob(
            &self.name(&ContentRef::Digest(descriptor.digest.clone())),
            "blob",
            descriptor,
            &bytes,
        )?;
        Ok(bytes)
    }

    async fn stream_blob(
        &self,
        descriptor: &Descriptor,
        _range: std::ops::Range<u64>,
    ) -> Result<BlobStream<ArchiveError>, ArchiveError> {
        Err(ArchiveError::NoStreaming(
            self.name(&ContentRef::Digest(descriptor.digest.clone())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Behaviour, TestSource};
    use classcache_oci::memory::MemorySource;

    fn published_files(archives: &Archives) -> usize {
        std::fs::read_dir(archives.node().store.root().join("published"))
            .unwrap()
            .count()
    }

    /// A linux/arm64 node over an index of an amd64 and an arm64 archive: the node, the
    /// archives' blobs, the index digest and the arm64 archive's bytes.
    fn arm64_node_and_two_platforms(
        dir: &std::path::Path,
    ) -> (
        Arc<Archives>,
        Vec<classcache_core::artifact::ArchiveBlobs>,
        Digest,
        Vec<u8>,
    ) {
        let mut source = MemorySource::new(testing::REPO);
        let amd = classcache_core::testing::noise(150_000, 1);
        let arm = classcache_core::testing::noise(170_000, 2);
        let (blobs, index) = testing::put_index(
            &mut source,
            &[("linux/amd64", &amd), ("linux/arm64/v8", &arm)],
        );
        let node = testing::node(dir, "solo", TestSource::new(source), vec![]);
        let archives = Archives::new(node, "linux/arm64".parse().unwrap());
        (archives, blobs, index, arm)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_index_digest_publishes_the_archive_of_the_nodes_platform() {
        let dir = tempfile::tempdir().unwrap();
        let (archives, blobs, index, arm) = arm64_node_and_two_platforms(dir.path());
        let published = archives.ensure(&testing::pinned(&index)).await.unwrap();
        assert!(!published.hit);
        assert_eq!(std::fs::read(&published.path).unwrap(), arm);
        assert_eq!(published.record.pinned, index.to_string());
        assert_eq!(
            published.record.layer_digest,
            blobs[1].layer_descriptor.digest.to_string()
        );
        assert!(published.path.ends_with(format!(
            "{}/{}",
            classcache_core::paths::published_dir_name(index.as_str()),
            published.record.archive.name
        )));
        let again = archives.ensure(&testing::pinned(&index)).await.unwrap();
        assert!(again.hit);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_gets_any_platforms_layer_with_its_size_from_the_verified_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (archives, blobs, index, _) = arm64_node_and_two_platforms(dir.path());
        let amd_layer = &blobs[0].layer_descriptor;
        let blob = archives
            .layer_of(&testing::pinned(&index), &amd_layer.digest)
            .await
            .unwrap();
        assert_eq!(blob.size, amd_layer.size, "another platform's layer");
        assert_eq!(blob.archive, testing::pinned(&index));
        let e = archives
            .layer_of(&testing::pinned(&index), &Digest::of(b"not a layer"))
            .await
            .expect_err("a digest the archive does not list is refused");
        assert!(matches!(e, ArchiveError::NotItsLayer { .. }), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn layer_bytes_that_do_not_match_the_digest_publish_nothing() {
        let mut source = MemorySource::new(testing::REPO);
        let data = classcache_core::testing::noise(200_000, 3);
        let blobs = source.put_archive(testing::config_for("linux/amd64"), &data, None);
        let origin = TestSource::new(source).with(Behaviour {
            corrupt: true,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let node = testing::node(dir.path(), "solo", origin.clone(), vec![]);
        let archives = Archives::new(node.clone(), "linux/amd64".parse().unwrap());
        let e = archives
            .ensure(&testing::pinned(&blobs.manifest_descriptor.digest))
            .await
            .err()
            .expect("wrong bytes are refused");
        assert!(matches!(e, ArchiveError::Layer { .. }), "{e}");
        // The chain names the digest check.
        let mut chain = vec![e.to_string()];
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        assert!(
            chain.iter().any(|m| m.contains("bytes are discarded")),
            "{chain:?}"
        );
        assert!(origin.reads() >= 2, "the download started over");
        assert_eq!(published_files(&archives), 0);
        let layer = blobs.layer_descriptor.digest.clone();
        assert!(node.complete(&layer).await.is_none(), "no blob was stored");
        let archives_dir = node.store.root().join("archives");
        assert_eq!(std::fs::read_dir(archives_dir).unwrap().count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_layer_size_comes_from_the_verified_manifest_not_the_source() {
        let mut source = MemorySource::new(testing::REPO);
        let data = classcache_core::testing::noise(120_000, 4);
        let blobs = source.put_archive(testing::config_for("linux/amd64"), &data, None);
        // The source sends more than the manifest says the layer has.
        let origin = TestSource::new(source).with(Behaviour {
            trailing: vec![0xAB; 50_000],
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let node = testing::node(dir.path(), "solo", origin, vec![]);
        let archives = Archives::new(node.clone(), "linux/amd64".parse().unwrap());
        let published = archives
            .ensure(&testing::pinned(&blobs.manifest_descriptor.digest))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&published.path).unwrap(), data);
        assert_eq!(published.record.layer_size, blobs.layer_descriptor.size);
        let layer = node.store.blob_path(&blobs.layer_descriptor.digest);
        assert_eq!(
            std::fs::metadata(layer).unwrap().len(),
            blobs.layer_descriptor.size,
            "nothing past the manifest's size was written"
        );
        assert_eq!(
            node.metrics.bytes_from_registry.load(Relaxed),
            blobs.layer_descriptor.size
        );
    }
}
