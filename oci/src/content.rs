//! The one content walk: index → this platform's entry → archive manifest → config (and the
//! layer, streamed and verified), written once over [`ContentSource`], which registries,
//! OCI layouts and memory implement. It must not trust a byte it did not check against a digest.

use crate::archive_file::unpack_layer_to_file;
use bytes::Bytes;
use classcache_core::artifact::{
    check_digest, index_platforms, parse_archive_config, parse_archive_manifest, parse_json,
    pick_platform_archive, ArchiveConfig, ArtifactError,
};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::{
    Descriptor, ImageConfigPlatform, ImageIndex, ImageManifest, MediaTypeProbe,
};
use classcache_core::platform::Platform;
use futures_util::{Stream, StreamExt};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// Largest manifest, index or config classcache reads into memory; larger ones are refused.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What names a manifest inside one source: a tag, or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentRef {
    Tag(String),
    Digest(Digest),
}

impl ContentRef {
    /// What a tag and a digest name together: the digest when there is one, else the tag;
    /// `None` when neither is given.
    pub fn from_parts(tag: Option<&str>, digest: Option<&Digest>) -> Option<Self> {
        match (digest, tag) {
            (Some(d), _) => Some(ContentRef::Digest(d.clone())),
            (None, Some(t)) => Some(ContentRef::Tag(t.to_string())),
            (None, None) => None,
        }
    }
}

impl fmt::Display for ContentRef {
    /// `:tag` or `@sha256:…`, to append to a source's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentRef::Tag(t) => write!(f, ":{t}"),
            ContentRef::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// A manifest or index as read from a source, its digest checked.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Bytes,
}

impl RawManifest {
    /// A manifest or index read as `digest` from the source messages call `name`: at most
    /// [`MAX_MANIFEST_BYTES`], its sha256 equal to `digest`, its media type from its body.
    pub fn pinned(name: &str, digest: &Digest, bytes: Bytes) -> Result<Self, ArtifactError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ArtifactError::BadJson {
                reference: name.to_string(),
                what: "manifest",
                error: "larger than 4 MiB".into(),
            });
        }
        check_digest(name, "manifest", digest, Digest::of(&bytes))?;
        Self::from_body(name, digest.clone(), bytes, None)
    }

    /// A manifest or index whose digest the caller checked: its media type is the body's
    /// `mediaType`, else `fallback` (what the source said); with neither it is refused.
    pub fn from_body(
        name: &str,
        digest: Digest,
        bytes: Bytes,
        fallback: Option<String>,
    ) -> Result<Self, ArtifactError> {
        let media_type = MediaTypeProbe::media_type_of(&bytes)
            .or(fallback)
            .ok_or_else(|| ArtifactError::MissingMediaType {
                reference: name.to_string(),
                what: "manifest",
            })?;
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// A blob's bytes as a stream, from `offset` on. The bytes are not verified by the source:
/// whoever reads the whole blob checks its sha256 (as [`pull_archive`] does).
pub struct BlobStream<E> {
    /// Where the stream starts in the blob: the offset asked for, or 0 when the source
    /// ignored it and sends the whole blob.
    pub offset: u64,
    /// The whole blob's size when the source said it.
    pub total_size: Option<u64>,
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>,
}

impl<E> fmt::Debug for BlobStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("offset", &self.offset)
            .field("total_size", &self.total_size)
            .finish()
    }
}

/// Where OCI content comes from: one repository of a registry, an OCI layout, memory.
pub trait ContentSource: Sync {
    /// The source's errors; every walk error (format, digest, platform) converts into it.
    type Error: std::error::Error + From<ArtifactError> + Send + Sync + 'static;

    /// How messages name `reference` in this source (`host/repo@sha256:…`, `oci:DIR:tag`).
    fn name(&self, reference: &ContentRef) -> String;

    /// The manifest or index `reference` names, at most [`MAX_MANIFEST_BYTES`]; the digest is
    /// checked when `reference` is one.
    fn get_manifest(
        &self,
        reference: &ContentRef,
    ) -> impl Future<Output = Result<RawManifest, Self::Error>> + Send;

    /// A small blob (a config, at most [`MAX_MANIFEST_BYTES`]), checked against `descriptor`.
    fn get_blob(
        &self,
        descriptor: &Descriptor,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;

    /// Bytes `range` of the blob `descriptor` declares (digest and size), streamed, unverified.
    /// A source that cannot honour the range may send more (see [`BlobStream::offset`]): the
    /// caller reads what it asked for.
    fn stream_blob(
        &self,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> impl Future<Output = Result<BlobStream<Self::Error>, Self::Error>> + Send;
}

/// An archive artifact's manifest and config, checked, without its layer.
#[derive(Debug, Clone)]
pub struct ArchiveManifest {
    /// Where it was read, pinned to the archive manifest's digest.
    pub reference: String,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ArchiveConfig,
}

impl ArchiveManifest {
    /// The one layer (tar+gzip holding `config.archive.name`).
    pub fn layer(&self) -> &Descriptor {
        &self.manifest.layers[0]
    }
}

/// The result of a pull: the archive is complete and verified at `path`.
#[derive(Debug, Clone)]
pub struct PulledArchive {
    pub manifest_digest: Digest,
    pub config: ArchiveConfig,
    pub path: PathBuf,
}

/// An image reference resolved to its platform manifest(s).
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The digest the reference points at (an index or a single manifest).
    pub digest: Digest,
    pub media_type: String,
    /// The platform manifests, each with `platform` filled in (from the index entry, or from
    /// the image config for a single-platform image); attestation entries are left out.
    pub manifests: Vec<Descriptor>,
}

impl ResolvedImage {
    /// The platform manifest for `platform` (any variant when `platform` has none).
    pub fn for_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(platform)))
    }
}

/// The manifest `reference` names; when it is an index of per-platform archives, the entry
/// for `platform` (default: this machine's) is read instead. Returns it with the name messages
/// use for it: `reference` as given, or the index entry's pinned name.
pub async fn platform_manifest<S: ContentSource>(
    source: &S,
    reference: &ContentRef,
    platform: Option<&Platform>,
) -> Result<(RawManifest, String), S::Error> {
    let raw = source.get_manifest(reference).await?;
    if !media_types::is_index(&raw.media_type) {
        return Ok((raw, source.name(reference)));
    }
    let index: ImageIndex = parse_json(&raw.bytes, &source.name(reference), "index")?;
    let want = platform.cloned().unwrap_or_else(Platform::current);
    let entry = pick_platform_archive(&source.name(reference), &index, &want)?;
    let pinned = ContentRef::Digest(entry.digest.clone());
    let child = source.get_manifest(&pinned).await?;
    Ok((child, source.name(&pinned)))
}

/// Reads and checks the archive manifest and config `reference` names (an index of
/// per-platform archives resolves to `platform`'s entry, default this machine's).
pub async fn fetch_archive<S: ContentSource>(
    source: &S,
    reference: &ContentRef,
    platform: Option<&Platform>,
) -> Result<ArchiveManifest, S::Error> {
    let (raw, name) = platform_manifest(source, reference, platform).await?;
    let manifest = parse_archive_manifest(&raw.bytes, &name)?;
    let config_bytes = source.get_blob(&manifest.config).await?;
    let config = parse_archive_config(&config_bytes, &manifest.config, &name)?;
    Ok(ArchiveManifest {
        reference: source.name(&ContentRef::Digest(raw.digest.clone())),
        manifest_digest: raw.digest,
        manifest,
        config,
    })
}

/// The digest `reference` pins (an archive manifest or an index of per-platform archives) and
/// the manifest and config of every platform it covers, each checked.
pub async fn archive_manifests<S: ContentSource>(
    source: &S,
    reference: &ContentRef,
) -> Result<(Digest, Vec<ArchiveManifest>), S::Error> {
    let raw = source.get_manifest(reference).await?;
    let pinned = ContentRef::Digest(raw.digest.clone());
    let platforms: Vec<Option<Platform>> = if media_types::is_index(&raw.media_type) {
        let index: ImageIndex = parse_json(&raw.bytes, &source.name(&pinned), "archive index")?;
        let platforms = index_platforms(&index);
        if platforms.is_empty() {
            return Err(ArtifactError::BadIndexEntries {
                subject: source.name(&pinned),
                problem: "the index has no platform entries".into(),
            }
            .into());
        }
        platforms.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let mut manifests = Vec::with_capacity(platforms.len());
    for platform in platforms {
        manifests.push(fetch_archive(source, &pinned, platform.as_ref()).await?);
    }
    Ok((raw.digest, manifests))
}

/// Resolves an image reference (tag or digest) to its platform manifest(s).
pub async fn resolve_image<S: ContentSource>(
    source: &S,
    reference: &ContentRef,
) -> Result<ResolvedImage, S::Error> {
    let raw = source.get_manifest(reference).await?;
    let name = source.name(reference);
    if media_types::is_index(&raw.media_type) {
        let index: ImageIndex = parse_json(&raw.bytes, &name, "image index")?;
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
            reference: name,
            what: "image manifest",
            found: raw.media_type,
            expected: media_types::OCI_MANIFEST,
        }
        .into());
    }
    let manifest: ImageManifest = parse_json(&raw.bytes, &name, "image manifest")?;
    let config_bytes = source.get_blob(&manifest.config).await?;
    let platform: ImageConfigPlatform = parse_json(&config_bytes, &name, "image config")?;
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

/// Pulls the archive `reference` names to `dest`: manifest and config checked, the layer
/// streamed and hashed on the fly, unpacked on a thread of its own into a temporary file beside
/// `dest` that gets its name only after layer digest and archive sha256 both match.
pub async fn pull_archive<S: ContentSource>(
    source: &S,
    reference: &ContentRef,
    platform: Option<&Platform>,
    dest: &Path,
) -> Result<PulledArchive, S::Error> {
    let fetched = fetch_archive(source, reference, platform).await?;
    let layer = fetched.layer().clone();
    let mut blob = source.stream_blob(&layer, 0..layer.size).await?;
    let archive = fetched.config.archive.clone();
    let dest_owned = dest.to_path_buf();
    let name = fetched.reference.clone();
    // The unpacking blocks (gzip, tar, fsync): it reads the stream through a small bounded
    // channel, which also gives back-pressure. Plain thread and channels, so that this works
    // on any executor.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    let (done, unpacked) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("classcache-unpack".into())
        .spawn(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            let _ = done.send(unpack_layer_to_file(
                reader,
                &layer,
                &archive,
                &dest_owned,
                &name,
            ));
        })
        .map_err(|e| ArtifactError::Write {
            path: dest.to_path_buf(),
            source: e,
        })?;
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
    let unpacked = unpacked.await.map_err(|_| ArtifactError::BadLayer {
        reference: fetched.reference.clone(),
        problem: "could not be unpacked: the unpacking thread stopped".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryError, MemorySource};
    use classcache_core::artifact::{archive_index_entry, build_archive_index};
    use futures::executor::block_on;

    fn config_for(platform: &str) -> ArchiveConfig {
        let mut c = classcache_core::testing::sample_config(
            "r/app:1",
            Digest::of(platform.as_bytes()).as_str(),
            classcache_core::key::ArchiveKind::DynamicCds,
            &[platform.to_string()],
        );
        c.platform = platform.parse().unwrap();
        c
    }

    /// A source with one archive per platform and an index of them tagged `idx`.
    fn multi_platform(platforms: &[&str]) -> MemorySource {
        let mut source = MemorySource::new("mem/app");
        let mut entries = vec![];
        for p in platforms {
            let blobs = source.put_archive(config_for(p), p.as_bytes(), None);
            entries.push(archive_index_entry(
                &blobs.manifest_descriptor,
                &blobs.config,
            ));
        }
        let subject = Descriptor::new(media_types::OCI_INDEX, Digest::of(b"image index"), 10);
        let index = build_archive_index(entries, subject, "2026-01-01T00:00:00Z").unwrap();
        source.put_manifest(
            media_types::OCI_INDEX,
            serde_json::to_vec(&index).unwrap(),
            Some("idx"),
        );
        source
    }

    #[test]
    fn a_multi_platform_index_resolves_to_the_asked_platform() {
        let source = multi_platform(&["linux/amd64", "linux/arm64/v8"]);
        let tag = ContentRef::Tag("idx".into());
        for want in ["linux/amd64", "linux/arm64"] {
            let p: Platform = want.parse().unwrap();
            let fetched = block_on(fetch_archive(&source, &tag, Some(&p))).unwrap();
            assert!(fetched.config.platform.satisfies(&p), "{want}");
            assert!(fetched.reference.starts_with("mem/app@sha256:"));
        }
        let (_, manifests) = block_on(archive_manifests(&source, &tag)).unwrap();
        let configs: Vec<_> = manifests.into_iter().map(|m| m.config).collect();
        let names: Vec<String> = configs.iter().map(|c| c.platform.to_string()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64/v8"]);
    }

    #[test]
    fn a_missing_platform_names_the_platforms_the_index_has() {
        let source = multi_platform(&["linux/amd64", "linux/arm64"]);
        let e = block_on(fetch_archive(
            &source,
            &ContentRef::Tag("idx".into()),
            Some(&"linux/s390x".parse().unwrap()),
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "mem/app:idx: no archive for platform linux/s390x in the index (it has: linux/amd64, linux/arm64)"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_media_type_is_refused_with_its_name() {
        let mut source = MemorySource::new("mem/app");
        let blobs = source.put_archive(config_for("linux/amd64"), b"x", Some("k"));
        let mut manifest: serde_json::Value = serde_json::from_slice(&blobs.manifest_json).unwrap();
        manifest["layers"][0]["mediaType"] = "application/x-foo".into();
        source.put_manifest(
            media_types::OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap(),
            Some("bad"),
        );
        let e = block_on(fetch_archive(&source, &ContentRef::Tag("bad".into()), None)).unwrap_err();
        assert!(
            e.to_string()
                .contains("layer has media type \"application/x-foo\""),
            "{e}"
        );
        assert!(block_on(fetch_archive(&source, &ContentRef::Tag("k".into()), None)).is_ok());
    }

    #[test]
    fn content_that_does_not_match_its_digest_is_refused() {
        let mut source = MemorySource::new("mem/app");
        let blobs = source.put_archive(config_for("linux/amd64"), b"x", Some("k"));
        // The config blob is swapped for other bytes under its digest.
        source.put_raw_blob(blobs.config_descriptor.digest.clone(), b"{}".to_vec());
        let e = block_on(fetch_archive(&source, &ContentRef::Tag("k".into()), None)).unwrap_err();
        assert!(
            matches!(
                e,
                MemoryError::Artifact(ArtifactError::SizeMismatch { .. })
                    | MemoryError::Artifact(ArtifactError::DigestMismatch { .. })
            ),
            "{e}"
        );
        let e = block_on(fetch_archive(
            &source,
            &ContentRef::Digest(Digest::of(b"nothing")),
            None,
        ))
        .unwrap_err();
        assert!(matches!(e, MemoryError::NotFound { .. }), "{e}");
    }

    #[test]
    fn a_pull_verifies_and_publishes_the_archive_atomically() {
        let mut source = MemorySource::new("mem/app");
        let data = classcache_core::testing::noise(200_000, 3);
        source.put_archive(config_for("linux/amd64"), &data, Some("k"));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.jsa");
        let pulled = block_on(pull_archive(
            &source,
            &ContentRef::Tag("k".into()),
            None,
            &dest,
        ))
        .unwrap();
        assert_eq!(std::fs::read(&pulled.path).unwrap(), data);
    }
}
