//! OCI image-layout directories (`oci-layout`, `index.json`, `blobs/sha256/…`) as an archive
//! store that needs no registry. It reads and writes files only; it must not talk to a network.
//!
//! Tags are `org.opencontainers.image.ref.name` annotations on `index.json` entries; the
//! archive's entry also carries its `artifactType` and annotations, so `index.json` doubles as
//! the referrers listing (entries are found by their manifest's `subject`).

use crate::archive_file::{prepare_archive, PreparedArchive};
use crate::content::{
    self, BlobStream, ContentRef, ContentSource, PulledArchive, RawManifest, MAX_MANIFEST_BYTES,
};
use crate::verified::{self, Expected, WriteError};
use bytes::Bytes;
use classcache_core::artifact::{self, ArchiveConfig, ArtifactError};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageIndex, MediaTypeProbe, ANNOTATION_REF_NAME};
use classcache_core::platform::Platform;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Read buffer of streamed layer reads.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{dir} is not an OCI image layout ({problem}); pass a directory written by classcache or `skopeo copy … oci:DIR`, or a new or empty directory to write to")]
    NotALayout { dir: PathBuf, problem: String },
    #[error("{dir} does not exist; create the OCI layout first (push an archive to oci:{dir}) or check the path", dir = .dir.display())]
    Missing { dir: PathBuf },
    #[error("oci:{dir}: {what} not found in index.json; list the tags with `jq '.manifests[].annotations' {dir}/index.json`", dir = .dir.display())]
    NotFound { dir: PathBuf, what: String },
    #[error("oci:{dir}: blob {digest} is missing from blobs/sha256; the layout is incomplete, write the archive again", dir = .dir.display())]
    BlobMissing { dir: PathBuf, digest: String },
    #[error("{path}: {source}; check the directory is readable and writable and has space")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("oci:{dir}: the image {digest} is not in the layout; pass the subject descriptor of the image the archive was trained in", dir = .dir.display())]
    SubjectNotFound { dir: PathBuf, digest: Digest },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI image-layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Opens an existing layout; a directory without `oci-layout` and `index.json` is refused.
    pub fn open(dir: &Path) -> Result<Self, LayoutError> {
        if !dir.exists() {
            return Err(LayoutError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let layout = Self {
            root: dir.to_path_buf(),
        };
        layout.check()?;
        Ok(layout)
    }

    /// Opens the layout at `dir`, creating it when `dir` is missing or empty; a non-empty
    /// directory that is not a layout is refused (nothing is written into it).
    pub fn create(dir: &Path) -> Result<Self, LayoutError> {
        let empty = match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(LayoutError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
        };
        if !empty {
            return Self::open(dir);
        }
        let layout = Self {
            root: dir.to_path_buf(),
        };
        fs::create_dir_all(layout.root.join("blobs").join("sha256")).map_err(io_err(dir))?;
        verified::write_bytes(
            OCI_LAYOUT_CONTENT.as_bytes(),
            &layout.root.join("oci-layout"),
        )?;
        layout.write_index(&ImageIndex::empty())?;
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn not_a_layout(&self, problem: impl Into<String>) -> LayoutError {
        LayoutError::NotALayout {
            dir: self.root.clone(),
            problem: problem.into(),
        }
    }

    fn check(&self) -> Result<(), LayoutError> {
        let marker = self.root.join("oci-layout");
        let text = match fs::read(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.not_a_layout("no oci-layout file"))
            }
            Err(e) => {
                return Err(LayoutError::Io {
                    path: marker,
                    source: e,
                })
            }
        };
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|_| self.not_a_layout("oci-layout is not JSON"))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(v) if v.starts_with("1.") => {}
            other => {
                return Err(self.not_a_layout(format!("unsupported imageLayoutVersion {other:?}")))
            }
        }
        self.read_index().map(|_| ())
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = match read_limited(&path) {
            Ok(b) => b,
            Err(LayoutError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(self.not_a_layout("no index.json"))
            }
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| self.not_a_layout(format!("index.json is not an OCI index: {e}")))
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), LayoutError> {
        let body = serde_json::to_vec(index).expect("an index always serializes");
        verified::write_bytes(&body, &self.root.join("index.json"))?;
        Ok(())
    }

    /// Path of a blob by digest.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    fn has_blob(&self, descriptor: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&descriptor.digest)).is_ok_and(|m| m.len() == descriptor.size)
    }

    /// Stores a small blob (manifest, config) atomically; returns its descriptor's digest.
    pub fn write_blob(&self, body: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of(body);
        let path = self.blob_path(&digest);
        if !path.exists() {
            verified::write_bytes(body, &path)?;
        }
        Ok(digest)
    }

    /// Stores the file at `source` as blob `descriptor`, copying through a temporary file and
    /// checking its digest before the rename.
    pub fn write_blob_file(
        &self,
        descriptor: &Descriptor,
        source: &Path,
    ) -> Result<(), LayoutError> {
        if self.has_blob(descriptor) {
            return Ok(());
        }
        let file = File::open(source).map_err(io_err(source))?;
        self.write_blob_reader(descriptor, file)
    }

    /// Stores blob `descriptor` from a reader, checking size and digest before the rename.
    pub fn write_blob_reader<R: Read>(
        &self,
        descriptor: &Descriptor,
        reader: R,
    ) -> Result<(), LayoutError> {
        let dir = self.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        verified::write_verified(
            reader,
            &self.blob_path(&descriptor.digest),
            Some(&Expected::new(descriptor.digest.clone(), descriptor.size)),
        )?;
        Ok(())
    }

    /// Opens a blob for reading (not verified; the reader checks the digest as it reads).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, LayoutError> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LayoutError::BlobMissing {
                dir: self.root.clone(),
                digest: digest.to_string(),
            },
            _ => LayoutError::Io {
                path: self.blob_path(digest),
                source: e,
            },
        })
    }

    /// Reads a small blob and checks it against its descriptor.
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let file = self.open_blob(&descriptor.digest)?;
        let bytes = read_limited_from(file, &self.blob_path(&descriptor.digest))?;
        artifact::check_blob(
            &format!("oci:{}@{}", self.root.display(), descriptor.digest),
            "blob",
            descriptor,
            &bytes,
        )?;
        Ok(bytes)
    }

    /// The index entry for a tag (`ref.name`) or a digest.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<Descriptor, LayoutError> {
        let index = self.read_index()?;
        let found = match self.content_ref(tag, digest)? {
            ContentRef::Digest(d) => index.manifests.into_iter().find(|e| e.digest == d),
            ContentRef::Tag(t) => index
                .manifests
                .into_iter()
                .find(|e| e.annotation(ANNOTATION_REF_NAME) == Some(t.as_str())),
        };
        found.ok_or_else(|| LayoutError::NotFound {
            dir: self.root.clone(),
            what: digest
                .map(|d| format!("digest {d}"))
                .unwrap_or_else(|| format!("tag {:?}", tag.unwrap_or_default())),
        })
    }

    /// Reads a manifest or index by tag or digest, digest checked.
    pub fn get_manifest(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<RawManifest, LayoutError> {
        let descriptor = match (digest, tag) {
            // A digest may name a manifest that is only referenced from an index (per-platform).
            (Some(d), _) if self.blob_path(d).exists() => {
                let size = fs::metadata(self.blob_path(d))
                    .map_err(io_err(&self.blob_path(d)))?
                    .len();
                Descriptor::new(media_types::OCI_MANIFEST, d.clone(), size)
            }
            _ => self.resolve(tag, digest)?,
        };
        let bytes = self.read_blob(&descriptor)?;
        let media_type = MediaTypeProbe::media_type_of(&bytes).unwrap_or(descriptor.media_type);
        Ok(RawManifest {
            media_type,
            digest: descriptor.digest,
            bytes: bytes.into(),
        })
    }

    /// Adds or replaces an `index.json` entry; an entry with the same tag is moved to the new
    /// digest (a tag names one manifest), and untagged duplicates are not added.
    pub fn add_to_index(
        &self,
        mut entry: Descriptor,
        tag: Option<&str>,
    ) -> Result<(), LayoutError> {
        let mut index = self.read_index()?;
        if let Some(tag) = tag {
            entry
                .annotations
                .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
            index
                .manifests
                .retain(|e| e.annotation(ANNOTATION_REF_NAME) != Some(tag));
        }
        let already = index.manifests.iter().any(|e| {
            e.digest == entry.digest
                && e.annotation(ANNOTATION_REF_NAME) == entry.annotation(ANNOTATION_REF_NAME)
        });
        if !already {
            index.manifests.push(entry);
        }
        self.write_index(&index)
    }

    /// Writes a prepared archive (blobs, then manifest, then the `index.json` entry tagged `tag`).
    pub fn write_prepared(
        &self,
        prepared: &PreparedArchive,
        tag: &str,
    ) -> Result<Digest, LayoutError> {
        let layer_path = self.blob_path(&prepared.layer_descriptor.digest);
        // The layer was packed beside the blobs: a hard link publishes it without a copy, and
        // is atomic (it fails rather than replace an existing blob).
        if !self.has_blob(&prepared.layer_descriptor)
            && fs::hard_link(prepared.layer_file.path(), &layer_path).is_err()
        {
            self.write_blob_file(&prepared.layer_descriptor, prepared.layer_file.path())?;
        }
        self.write_blob(&prepared.config_json)?;
        // The archive manifest names its image-volume form, so the form goes first.
        let form = &prepared.image_volume;
        self.write_blob(&form.config_json)?;
        self.write_blob(&form.manifest_json)?;
        self.add_to_index(
            form.manifest_descriptor.clone(),
            Some(&artifact::image_volume_tag(&prepared.config)),
        )?;
        let digest = self.write_blob(&prepared.manifest_json)?;
        self.add_to_index(prepared.manifest_descriptor.clone(), Some(tag))?;
        Ok(digest)
    }

    /// Writes an index of per-platform archives under each of `tags` (its archives must be in
    /// the layout); its `index.json` entry carries `artifactType` and annotations so
    /// [`OciLayout::find_archives`] finds it from its subject. Returns the index digest.
    pub fn write_archive_index(
        &self,
        index: &ImageIndex,
        tags: &[String],
    ) -> Result<Digest, LayoutError> {
        for entry in &index.manifests {
            self.read_blob(entry)?;
        }
        let body = serde_json::to_vec(index).expect("an index always serializes");
        let digest = self.write_blob(&body)?;
        let entry = artifact::referrer_entry(
            media_types::OCI_INDEX,
            &body,
            index.artifact_type.as_deref(),
            &index.annotations,
        );
        for tag in tags {
            self.add_to_index(entry.clone(), Some(tag))?;
        }
        Ok(digest)
    }

    /// The subject descriptor for an image digest when the image is in this layout.
    pub fn find_subject(&self, image_digest: &Digest) -> Result<Option<Descriptor>, LayoutError> {
        let index = self.read_index()?;
        if let Some(e) = index.manifests.iter().find(|e| e.digest == *image_digest) {
            return Ok(Some(Descriptor::new(
                &e.media_type,
                e.digest.clone(),
                e.size,
            )));
        }
        // A manifest is small; a large blob (a layer) is not a subject and is not read whole.
        match read_limited(&self.blob_path(image_digest)) {
            Ok(bytes) if Digest::of(&bytes) == *image_digest => {
                let media_type = MediaTypeProbe::media_type_of(&bytes)
                    .unwrap_or_else(|| media_types::OCI_MANIFEST.to_string());
                Ok(Some(Descriptor::new(
                    &media_type,
                    image_digest.clone(),
                    bytes.len() as u64,
                )))
            }
            _ => Ok(None),
        }
    }

    /// Packs and writes an archive tagged with its key. `subject` defaults to the image
    /// `config.image.digest` names when the layout holds it; otherwise it must be given.
    pub fn push_archive(
        &self,
        config: ArchiveConfig,
        archive_path: &Path,
        subject: Option<Descriptor>,
    ) -> Result<(PreparedArchive, Digest), LayoutError> {
        let subject = match subject {
            Some(s) => s,
            None => self.find_subject(&config.image.digest)?.ok_or_else(|| {
                LayoutError::SubjectNotFound {
                    dir: self.root.clone(),
                    digest: config.image.digest.clone(),
                }
            })?,
        };
        let tag = config.key.to_string();
        let temp_dir = self.root.join("blobs").join("sha256");
        let prepared = prepare_archive(config, archive_path, subject, &temp_dir)?;
        let digest = self.write_prepared(&prepared, &tag)?;
        Ok((prepared, digest))
    }

    /// The archives in this layout whose manifest's subject is `image_digest`.
    pub fn find_archives(&self, image_digest: &Digest) -> Result<Vec<Descriptor>, LayoutError> {
        let mut found = Vec::new();
        for entry in self.read_index()?.manifests {
            if entry.artifact_type.as_deref() != Some(media_types::ARCHIVE_ARTIFACT_TYPE)
                || found.iter().any(|d: &Descriptor| d.digest == entry.digest)
            {
                continue;
            }
            let bytes = self.read_blob(&entry)?;
            // Manifests and indexes both carry `subject`; nothing else is needed here.
            #[derive(serde::Deserialize)]
            struct SubjectOnly {
                subject: Option<Descriptor>,
            }
            let Ok(parsed) = serde_json::from_slice::<SubjectOnly>(&bytes) else {
                continue;
            };
            if parsed
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == *image_digest)
            {
                found.push(entry);
            }
        }
        Ok(found)
    }

    /// What `tag` or `digest` names in this layout (the digest when both are given).
    pub fn content_ref(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<ContentRef, LayoutError> {
        ContentRef::from_parts(tag, digest).ok_or_else(|| LayoutError::NotFound {
            dir: self.root.clone(),
            what: "no tag or digest given (use oci:DIR:TAG)".into(),
        })
    }

    /// Unpacks the archive at tag or digest to `dest` atomically, every digest checked.
    pub fn pull_archive(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<PulledArchive, LayoutError> {
        let reference = self.content_ref(tag, digest)?;
        futures::executor::block_on(content::pull_archive(self, &reference, platform, dest))
    }
}

/// A layout is a content source. Its reads are local file reads done on the calling thread:
/// layouts serve the CLI tools and tests, never the fetcher's runtime.
impl ContentSource for OciLayout {
    type Error = LayoutError;

    fn name(&self, reference: &ContentRef) -> String {
        format!("oci:{}{reference}", self.root.display())
    }

    async fn get_manifest(&self, reference: &ContentRef) -> Result<RawManifest, LayoutError> {
        match reference {
            ContentRef::Tag(t) => self.get_manifest(Some(t), None),
            ContentRef::Digest(d) => self.get_manifest(None, Some(d)),
        }
    }

    async fn get_blob(&self, descriptor: &Descriptor) -> Result<Bytes, LayoutError> {
        self.read_blob(descriptor).map(Bytes::from)
    }

    async fn stream_blob(
        &self,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream<LayoutError>, LayoutError> {
        let path = self.blob_path(&descriptor.digest);
        let mut file = self.open_blob(&descriptor.digest)?;
        let total = file.metadata().map_err(io_err(&path))?.len();
        let offset = range.start.min(total);
        file.seek(io::SeekFrom::Start(offset))
            .map_err(io_err(&path))?;
        let file = file.take(range.end.saturating_sub(offset));
        let chunks = futures_util::stream::unfold(Some(file), move |file| {
            let path = path.clone();
            async move {
                let mut file = file?;
                let mut buf = vec![0u8; READ_CHUNK];
                match file.read(&mut buf) {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some(file)))
                    }
                    Err(source) => Some((Err(LayoutError::Io { path, source }), None)),
                }
            }
        });
        Ok(BlobStream {
            offset,
            total_size: Some(total),
            stream: Box::pin(chunks),
        })
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, LayoutError> {
    read_limited_from(File::open(path).map_err(io_err(path))?, path)
}

/// Reads at most [`MAX_MANIFEST_BYTES`] from `file` (opened at `path`); more is refused.
fn read_limited_from(file: File, path: &Path) -> Result<Vec<u8>, LayoutError> {
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(LayoutError::Io {
            path: path.to_path_buf(),
            source: io::Error::other("larger than 4 MiB, not a manifest"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_config() -> ArchiveConfig {
        classcache_core::testing::sample_config(
            "127.0.0.1:5000/app:1",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            classcache_core::key::ArchiveKind::DynamicCds,
            &[],
        )
    }
    use classcache_core::oci::ImageManifest;

    fn image_manifest(layout: &OciLayout) -> Descriptor {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = layout.write_blob(config).unwrap();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media_types::OCI_CONFIG, config_digest, config.len() as u64),
            layers: vec![],
            subject: None,
            annotations: Default::default(),
        };
        let body = serde_json::to_vec(&manifest).unwrap();
        let digest = layout.write_blob(&body).unwrap();
        let d = Descriptor::new(media_types::OCI_MANIFEST, digest, body.len() as u64);
        layout.add_to_index(d.clone(), Some("app")).unwrap();
        d
    }

    #[test]
    fn archive_round_trips_through_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        let layout = OciLayout::create(&root).unwrap();
        let subject = image_manifest(&layout);
        let mut config = sample_config();
        config.image.digest = subject.digest.clone();
        let src = dir.path().join("app.jsa");
        fs::write(&src, b"archive bytes ".repeat(5000)).unwrap();
        let (prepared, digest) = layout.push_archive(config, &src, None).unwrap();
        let tag = prepared.config.key.to_string();
        let layer_digest = prepared.layer_descriptor.digest.clone();
        drop(prepared);

        // Reopening finds it by tag, by digest and from the image digest.
        let layout = OciLayout::open(&root).unwrap();
        let found = layout.find_archives(&subject.digest).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].digest, digest);
        assert_eq!(
            found[0].annotation(artifact::ANNOTATION_KEY),
            Some(tag.as_str())
        );
        let out = dir.path().join("out.jsa");
        let pulled = layout.pull_archive(Some(&tag), None, None, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&src).unwrap());
        assert_eq!(pulled.manifest_digest, digest);
        layout
            .pull_archive(None, Some(&digest), None, &out)
            .unwrap();
        // Writing again adds no duplicate entry.
        let mut again = sample_config();
        again.image.digest = subject.digest.clone();
        layout.push_archive(again, &src, None).unwrap();
        // The image, the archive's image-volume form and the archive.
        let entries = layout.read_index().unwrap().manifests;
        assert_eq!(entries.len(), 3, "{entries:?}");
        let form = layout
            .get_manifest(Some(&format!("{tag}-image-volume")), None)
            .unwrap();
        let form: ImageManifest = serde_json::from_slice(&form.bytes).unwrap();
        assert_eq!(
            form.layers[0].digest, layer_digest,
            "the form reuses the layer blob"
        );
        layout.read_blob(&form.config).unwrap();
        assert!(fs::read_dir(root.join("blobs/sha256")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));

        // The image tag is not an archive.
        let e = layout
            .pull_archive(Some("app"), None, None, &out)
            .unwrap_err();
        assert!(e.to_string().contains("is not a classcache archive"), "{e}");
        let e = layout
            .pull_archive(Some("nope"), None, None, &out)
            .unwrap_err();
        assert!(e.to_string().contains("tag \"nope\" not found"), "{e}");

        // A corrupted layer blob is caught and the destination stays as it was.
        let layer = layout.blob_path(&layer_digest);
        let mut bytes = fs::read(&layer).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&layer, bytes).unwrap();
        let fresh = dir.path().join("fresh.jsa");
        let e = layout
            .pull_archive(Some(&tag), None, None, &fresh)
            .unwrap_err();
        assert!(
            e.to_string().contains("layer does not match its digest"),
            "{e}"
        );
        assert!(!fresh.exists());
    }

    #[test]
    fn an_index_of_per_platform_archives_is_found_and_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(&dir.path().join("l")).unwrap();
        let subject = image_manifest(&layout);
        let mut config = sample_config();
        config.image.digest = subject.digest.clone();
        let src = dir.path().join("a.jsa");
        fs::write(&src, b"amd64 archive").unwrap();
        let (prepared, _) = layout.push_archive(config, &src, None).unwrap();
        let image_index = Descriptor::new(media_types::OCI_INDEX, Digest::of(b"image index"), 300);
        let entry = artifact::archive_index_entry(&prepared.manifest_descriptor, &prepared.config);
        let index = artifact::build_archive_index(
            vec![entry.clone()],
            image_index.clone(),
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        let tag = format!(
            "{}{}",
            classcache_core::key::INDEX_KEY_PREFIX,
            image_index.digest.hex()
        );
        let digest = layout
            .write_archive_index(&index, std::slice::from_ref(&tag))
            .unwrap();

        let found = layout.find_archives(&image_index.digest).unwrap();
        assert_eq!(
            found.iter().map(|d| &d.digest).collect::<Vec<_>>(),
            [&digest]
        );
        let out = dir.path().join("out");
        let pulled = layout
            .pull_archive(Some(&tag), None, Some(&prepared.config.platform), &out)
            .unwrap();
        assert_eq!(pulled.manifest_digest, prepared.manifest_descriptor.digest);
        assert_eq!(fs::read(&out).unwrap(), b"amd64 archive");

        let e = artifact::build_archive_index(vec![entry.clone(), entry], image_index, "t")
            .unwrap_err();
        assert!(e.to_string().contains("two entries for linux/amd64"), "{e}");
    }

    #[test]
    fn directories_that_are_not_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let e = OciLayout::create(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not an OCI image layout (no oci-layout file)"),
            "{e}"
        );
        assert!(!dir.path().join("oci-layout").exists());
        let e = OciLayout::open(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, LayoutError::Missing { .. }), "{e}");
        fs::write(dir.path().join("oci-layout"), OCI_LAYOUT_CONTENT).unwrap();
        let e = OciLayout::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no index.json"), "{e}");
        fs::write(dir.path().join("index.json"), "[]").unwrap();
        let e = OciLayout::open(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("index.json is not an OCI index"),
            "{e}"
        );
    }

    #[test]
    fn subject_must_be_known() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(&dir.path().join("l")).unwrap();
        let src = dir.path().join("a.jsa");
        fs::write(&src, b"x").unwrap();
        let e = layout
            .push_archive(sample_config(), &src, None)
            .unwrap_err();
        assert!(e.to_string().contains("pass the subject descriptor"), "{e}");
    }
}
