//! The archive artifact's format: its JSON config and its one tar+gzip layer.
//! It defines and (de)serializes the format; it must not do network I/O.

use crate::key::{AgentIdentity, ArchiveKey, ArchiveKind};
use serde::{Deserialize, Serialize};

/// Version of [`ArchiveConfig`]'s schema; readers refuse a config with a newer one.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// The JSON config of an archive artifact (media type [`crate::media_types::ARCHIVE_CONFIG`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveConfig {
    pub schema_version: u32,
    pub key: ArchiveKey,
    pub kind: ArchiveKind,
    pub jvm: JvmIdentity,
    pub platform: Platform,
    pub image: ImageIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// The options the training run added (for the record; they are also in the key).
    pub training_options: Vec<String>,
    /// The options a workload must add at run time, with [`ARCHIVE_PATH_PLACEHOLDER`]
    /// where the archive's path goes (see [`ArchiveConfig::runtime_options_for`]).
    pub runtime_options: Vec<String>,
    /// The archive file inside the layer's tar, and its uncompressed size and sha256.
    pub archive: ArchiveFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// RFC 3339 time the archive was built.
    pub created: String,
}

/// Stands for the archive's path in [`ArchiveConfig::runtime_options`].
pub const ARCHIVE_PATH_PLACEHOLDER: &str = "{archive}";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JvmIdentity {
    /// Feature release, e.g. 17 or 25.
    pub feature_version: u32,
    /// `java.version`, e.g. `17.0.15`.
    pub version: String,
    /// `java.vendor`, e.g. `Debian`.
    pub vendor: String,
    /// `java.vm.version`: the exact build string the archive is bound to.
    pub build: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdentity {
    /// The image reference the build was given (for people; the digest is what counts).
    pub reference: String,
    /// The platform manifest digest: the artifact's `subject`.
    pub digest: String,
    /// The entrypoint and command of the training run, to warn when a workload differs.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    #[serde(flatten)]
    pub identity: AgentIdentity,
    /// Where the agent jar sits in the container at run time.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveFile {
    /// File name inside the layer's tar.
    pub name: String,
    pub size: u64,
    /// Lower-case hex sha256 of the uncompressed archive.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub classes_total: u64,
    pub classes_from_archive: u64,
    pub startup_runs: u32,
    pub startup_median_ms_without: f64,
    pub startup_median_ms_with: f64,
}

impl ArchiveConfig {
    /// The run-time JVM options with the archive's path filled in.
    pub fn runtime_options_for(&self, archive_path: &str) -> Vec<String> {
        self.runtime_options
            .iter()
            .map(|o| o.replace(ARCHIVE_PATH_PLACEHOLDER, archive_path))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest, the layer, and the checks on what is read back.

use crate::digest::{sha256_digest, HashingReader, HashingWriter, Sha256Counter};
use crate::media_types;
use crate::oci::{Descriptor, ImageIndex, ImageManifest, ANNOTATION_CREATED};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Manifest annotation with the archive key (also the tag), shown in referrer listings.
pub const ANNOTATION_KEY: &str = "dev.classcache.key";
/// Manifest annotation with the archive kind (`aot-cache`, `dynamic-cds`, `static-appcds`).
pub const ANNOTATION_KIND: &str = "dev.classcache.kind";
/// Manifest annotation with the platform, `os/architecture[/variant]`.
pub const ANNOTATION_PLATFORM: &str = "dev.classcache.platform";
/// Manifest annotation with the exact JVM build string.
pub const ANNOTATION_JVM_BUILD: &str = "dev.classcache.jvm.build";
/// Layer annotation with the archive's file name (as `oras` and others name layer files).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// gzip level of the layer. Measured on JDK 17's classes.jsa here (flate2's Rust backend):
/// level 1 packs 50 MB/s at 2.85:1, level 3 21 MB/s at 3.26:1, level 6 10 MB/s at 3.37:1.
/// The layer crosses the network once per cluster, so packing speed in CI wins.
pub const LAYER_GZIP_LEVEL: u32 = 1;

/// A problem with an archive artifact's content or format. `reference` names where it was read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read archive file {path}: {source}; check the path given for the archive")]
    ArchiveUnreadable { path: PathBuf, source: io::Error },
    #[error("archive file {path} changed while it was packed ({expected} bytes expected, {actual} read); pack it again once the JVM has finished writing it")]
    ArchiveChanged {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("archive file name {0:?} must be a plain file name (no `/`, not empty, not `.`/`..`)")]
    BadArchiveName(String),
    #[error(
        "cannot write {path}: {source}; check that the directory exists, is writable and has space"
    )]
    Write { path: PathBuf, source: io::Error },
    #[error("{reference}: the {what} is not valid JSON ({error}); the artifact is damaged or not a classcache archive, push it again")]
    BadJson {
        reference: String,
        what: &'static str,
        error: String,
    },
    #[error("{reference}: the {what} has no media type; it was not written by classcache, push the archive again with classcache")]
    MissingMediaType {
        reference: String,
        what: &'static str,
    },
    #[error("{reference}: the {what} has media type {found:?}, expected {expected:?}; it is not a classcache v1 archive, or a newer classcache wrote it (upgrade classcache)")]
    UnknownMediaType {
        reference: String,
        what: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("{reference} is not a classcache archive (artifactType {found:?}, expected {expected:?}); point at an archive tag (classcache-v1-…) or find the image's archives by its digest", expected = media_types::ARCHIVE_ARTIFACT_TYPE)]
    NotAnArchive {
        reference: String,
        found: Option<String>,
    },
    #[error("{reference}: the archive manifest has {count} layers, expected exactly 1; push the archive again with classcache")]
    LayerCount { reference: String, count: usize },
    #[error("{reference}: config schema version {found} is newer than this classcache reads ({supported}); upgrade classcache")]
    NewerSchema {
        reference: String,
        found: u32,
        supported: u32,
    },
    #[error("{reference}: the {what} does not match its digest (expected {expected}, got {actual}); the content is corrupted in storage or in transit, push the archive again")]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{reference}: the {what} has {actual} bytes, expected {expected}; the content is corrupted or truncated, push the archive again")]
    SizeMismatch {
        reference: String,
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("{reference}: the layer {problem}; it is not a classcache archive layer, push the archive again with classcache")]
    BadLayer { reference: String, problem: String },
    #[error("the subject {subject} is not the image the config names ({image}); pass the descriptor of the image the archive was trained in")]
    SubjectMismatch { subject: String, image: String },
    #[error("archive index for {subject}: {problem}; pass one archive manifest per platform, each with its platform")]
    BadIndexEntries { subject: String, problem: String },
}

/// What packing an archive into a layer produced: the layer's descriptor and the archive's
/// uncompressed size and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedLayer {
    pub descriptor: Descriptor,
    pub archive: ArchiveFile,
}

fn check_archive_name(name: &str) -> Result<(), ArtifactError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(ArtifactError::BadArchiveName(name.to_string()));
    }
    Ok(())
}

/// Writes the layer (a tar holding `archive` as `name`, gzip-compressed) to `out`, streaming:
/// memory stays at a few buffers whatever the archive's size. The layer's digest and size and
/// the archive's sha256 and size are computed while the bytes pass.
pub fn pack_layer<W: Write>(
    archive: &Path,
    name: &str,
    out: W,
) -> Result<(W, PackedLayer), ArtifactError> {
    check_archive_name(name)?;
    let unreadable = |source| ArtifactError::ArchiveUnreadable {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let write_err = |source| ArtifactError::Write {
        path: PathBuf::from("<layer>"),
        source,
    };

    let counted = HashingWriter::new(out);
    let gz = flate2::write::GzEncoder::new(counted, flate2::Compression::new(LAYER_GZIP_LEVEL));
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(write_err)?;
    header.set_size(size);
    header.set_mode(0o644);
    // mtime 0 keeps the layer digest a function of the archive's bytes alone.
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut reader = HashingReader::new(BufReader::with_capacity(256 * 1024, file).take(size));
    tar.append(&header, &mut reader).map_err(write_err)?;
    let (_, archive_counter) = reader.into_parts();
    if archive_counter.len() != size {
        return Err(ArtifactError::ArchiveChanged {
            path: archive.to_path_buf(),
            expected: size,
            actual: archive_counter.len(),
        });
    }
    let gz = tar.into_inner().map_err(write_err)?;
    let counted = gz.finish().map_err(write_err)?;
    let (out, layer_counter) = counted.into_parts();
    let layer_size = layer_counter.len();
    let mut descriptor = Descriptor::new(
        media_types::ARCHIVE_LAYER,
        layer_counter.finish_digest(),
        layer_size,
    );
    descriptor
        .annotations
        .insert(ANNOTATION_TITLE.to_string(), name.to_string());
    Ok((
        out,
        PackedLayer {
            descriptor,
            archive: ArchiveFile {
                name: name.to_string(),
                size,
                sha256: archive_counter.finish_hex(),
            },
        },
    ))
}

/// Reads a layer from `layer` (streamed, one pass) and writes its archive to `dest` atomically:
/// a temporary file beside `dest`, checked against the layer descriptor's digest and size and
/// the archive's sha256 and size, fsynced, then renamed; on any mismatch `dest` is untouched.
pub fn unpack_layer<R: Read>(
    layer: R,
    layer_descriptor: &Descriptor,
    archive: &ArchiveFile,
    dest: &Path,
    reference: &str,
) -> Result<(), ArtifactError> {
    check_archive_name(&archive.name)?;
    let bad = |problem: String| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem,
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write_err = |source| ArtifactError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".classcache-partial-")
        .tempfile_in(dir)
        .map_err(write_err)?;

    let mut hashed_layer = HashingReader::new(layer);
    let extracted = extract_single_file(&mut hashed_layer, archive, temp.as_file_mut(), reference);
    // The gzip trailer and any padding count towards the layer digest too; reading to the end
    // even after a decoding error lets a corrupted blob be reported as what it is.
    let drained = io::copy(&mut hashed_layer, &mut io::sink());
    let (_, layer_counter) = hashed_layer.into_parts();
    if drained.is_ok() {
        check_size(
            reference,
            "layer",
            layer_descriptor.size,
            layer_counter.len(),
        )?;
        check_digest(
            reference,
            "layer",
            &layer_descriptor.digest,
            layer_counter.finish_digest(),
        )?;
    }
    let archive_counter = extracted?;
    drained.map_err(|e| bad(format!("could not be read to its end ({e})")))?;
    check_size(
        reference,
        "archive file",
        archive.size,
        archive_counter.len(),
    )?;
    check_digest(
        reference,
        "archive file",
        &format!("sha256:{}", archive.sha256),
        archive_counter.finish_digest(),
    )?;

    temp.as_file().sync_all().map_err(write_err)?;
    temp.persist(dest).map_err(|e| write_err(e.error))?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; not every file system supports fsync on a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Decompresses the layer and copies its one file, `archive.name`, to `out`.
fn extract_single_file<R: Read>(
    layer: R,
    archive: &ArchiveFile,
    out: &mut File,
    reference: &str,
) -> Result<Sha256Counter, ArtifactError> {
    let bad = |problem: String| ArtifactError::BadLayer {
        reference: reference.to_string(),
        problem,
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut entries = tar
        .entries()
        .map_err(|e| bad(format!("is not a tar+gzip stream ({e})")))?;
    let mut entry = match entries.next() {
        Some(entry) => entry.map_err(|e| bad(format!("is not a tar+gzip stream ({e})")))?,
        None => return Err(bad("holds no file".to_string())),
    };
    let path = entry
        .path()
        .map_err(|e| bad(format!("has an unreadable entry name ({e})")))?
        .to_string_lossy()
        .into_owned();
    if path != archive.name || entry.header().entry_type() != tar::EntryType::Regular {
        return Err(bad(format!(
            "holds {path:?}, expected the file {:?}",
            archive.name
        )));
    }
    let mut writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
    io::copy(&mut entry, &mut writer)
        .map_err(|e| bad(format!("could not be decompressed ({e})")))?;
    let (buffered, counter) = writer.into_parts();
    buffered
        .into_inner()
        .map_err(|e| bad(format!("could not be written ({})", e.error())))?;
    if let Some(next) = entries.next() {
        let name = next
            .ok()
            .and_then(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()));
        return Err(bad(format!("holds more than one file (also {name:?})")));
    }
    Ok(counter)
}

/// Parses a JSON object read from `reference`; `what` names it in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    reference: &str,
    what: &'static str,
) -> Result<T, ArtifactError> {
    serde_json::from_slice(body).map_err(|e| ArtifactError::BadJson {
        reference: reference.to_string(),
        what,
        error: e.to_string(),
    })
}

/// Compares a computed digest with the expected one.
pub fn check_digest(
    reference: &str,
    what: &'static str,
    expected: &str,
    actual: String,
) -> Result<(), ArtifactError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ArtifactError::DigestMismatch {
            reference: reference.to_string(),
            what,
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Compares a counted size with the expected one.
pub fn check_size(
    reference: &str,
    what: &'static str,
    expected: u64,
    actual: u64,
) -> Result<(), ArtifactError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ArtifactError::SizeMismatch {
            reference: reference.to_string(),
            what,
            expected,
            actual,
        })
    }
}

/// Checks that `body` is the content `descriptor` names (size, then digest).
pub fn check_blob(
    reference: &str,
    what: &'static str,
    descriptor: &Descriptor,
    body: &[u8],
) -> Result<(), ArtifactError> {
    check_size(reference, what, descriptor.size, body.len() as u64)?;
    check_digest(reference, what, &descriptor.digest, sha256_digest(body))
}

/// An archive artifact ready to be written: config and manifest bytes and the packed layer
/// in a temporary file (removed when this is dropped).
#[derive(Debug)]
pub struct PreparedArchive {
    pub config: ArchiveConfig,
    pub config_json: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub layer_descriptor: Descriptor,
    pub layer_file: tempfile::NamedTempFile,
    pub manifest: ImageManifest,
    pub manifest_json: Vec<u8>,
    /// The manifest's descriptor with `artifactType` and annotations: the referrer entry.
    pub manifest_descriptor: Descriptor,
}

/// The manifest annotations a referrer listing shows without fetching the config.
pub fn manifest_annotations(config: &ArchiveConfig) -> BTreeMap<String, String> {
    let mut platform = format!("{}/{}", config.platform.os, config.platform.architecture);
    if let Some(variant) = &config.platform.variant {
        platform = format!("{platform}/{variant}");
    }
    BTreeMap::from([
        (ANNOTATION_CREATED.to_string(), config.created.clone()),
        (ANNOTATION_KEY.to_string(), config.key.to_string()),
        (ANNOTATION_KIND.to_string(), config.kind.to_string()),
        (ANNOTATION_PLATFORM.to_string(), platform),
        (ANNOTATION_JVM_BUILD.to_string(), config.jvm.build.clone()),
    ])
}

/// Builds the archive manifest for a config, its layer and the app image (`subject`).
pub fn build_manifest(
    config: &ArchiveConfig,
    config_descriptor: Descriptor,
    layer_descriptor: Descriptor,
    subject: Descriptor,
) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_string()),
        artifact_type: Some(media_types::ARCHIVE_ARTIFACT_TYPE.to_string()),
        config: config_descriptor,
        layers: vec![layer_descriptor],
        subject: Some(subject),
        annotations: manifest_annotations(config),
    }
}

/// The tag of the index of per-platform archives attached to a multi-platform image index:
/// `classcache-index-<hex of the image index digest>` (never a key nor a fallback tag).
pub fn archive_index_tag(image_index_digest: &str) -> String {
    format!(
        "classcache-index-{}",
        crate::digest::digest_hex(image_index_digest)
    )
}

/// The descriptor of an archive manifest as an entry of an index of per-platform archives.
pub fn archive_index_entry(manifest_descriptor: &Descriptor, config: &ArchiveConfig) -> Descriptor {
    let mut entry = manifest_descriptor.clone();
    entry.platform = Some(config.platform.clone());
    entry.artifact_type = Some(media_types::ARCHIVE_ARTIFACT_TYPE.to_string());
    entry
}

/// Builds the index of per-platform archives of a multi-platform image: `artifactType` the
/// archive type, `subject` the image index, one entry per platform (see
/// [`archive_index_entry`]). Pods pin its digest, the same on every node; each node takes the
/// entry for its own platform.
pub fn build_archive_index(
    entries: Vec<Descriptor>,
    subject: Descriptor,
    created: &str,
) -> Result<ImageIndex, ArtifactError> {
    let bad = |problem: String| ArtifactError::BadIndexEntries {
        subject: subject.digest.clone(),
        problem,
    };
    if entries.is_empty() {
        return Err(bad("no entries".into()));
    }
    let mut seen = Vec::new();
    for e in &entries {
        let Some(p) = &e.platform else {
            return Err(bad(format!("entry {} has no platform", e.digest)));
        };
        if e.artifact_type.as_deref() != Some(media_types::ARCHIVE_ARTIFACT_TYPE)
            || e.media_type != media_types::OCI_MANIFEST
        {
            return Err(bad(format!(
                "entry {} is not an archive manifest",
                e.digest
            )));
        }
        if seen.contains(p) {
            return Err(bad(format!("two entries for {}/{}", p.os, p.architecture)));
        }
        seen.push(p.clone());
    }
    Ok(ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_string()),
        artifact_type: Some(media_types::ARCHIVE_ARTIFACT_TYPE.to_string()),
        manifests: entries,
        subject: Some(subject),
        annotations: BTreeMap::from([(ANNOTATION_CREATED.to_string(), created.to_string())]),
    })
}

/// The referrer entry of a manifest or index: its descriptor with `artifactType` and annotations.
pub fn referrer_entry(
    media_type: &str,
    body: &[u8],
    artifact_type: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Descriptor {
    let mut entry = Descriptor::new(media_type, sha256_digest(body), body.len() as u64);
    entry.artifact_type = artifact_type.map(str::to_string);
    entry.annotations = annotations.clone();
    entry
}

/// The RFC 3339 time now, for [`ArchiveConfig::created`].
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Packs `archive_path` into a layer in `temp_dir` and builds config and manifest around it.
/// `config.archive.size` and `.sha256` are filled from the bytes packed (the name is kept, or
/// taken from the file name when empty); `subject` must be the image `config.image.digest` names.
pub fn prepare_archive(
    mut config: ArchiveConfig,
    archive_path: &Path,
    subject: Descriptor,
    temp_dir: &Path,
) -> Result<PreparedArchive, ArtifactError> {
    if subject.digest != config.image.digest {
        return Err(ArtifactError::SubjectMismatch {
            subject: subject.digest,
            image: config.image.digest,
        });
    }
    if config.archive.name.is_empty() {
        config.archive.name = archive_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    config.schema_version = CONFIG_SCHEMA_VERSION;
    let write_err = |source| ArtifactError::Write {
        path: temp_dir.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".classcache-layer-")
        .tempfile_in(temp_dir)
        .map_err(write_err)?;
    let (writer, packed) = pack_layer(
        archive_path,
        &config.archive.name,
        BufWriter::with_capacity(256 * 1024, temp),
    )?;
    let layer_file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    layer_file.as_file().sync_all().map_err(write_err)?;
    config.archive = packed.archive;

    let config_json = serde_json::to_vec(&config).expect("an ArchiveConfig always serializes");
    let config_descriptor = Descriptor::new(
        media_types::ARCHIVE_CONFIG,
        sha256_digest(&config_json),
        config_json.len() as u64,
    );
    let layer_descriptor = packed.descriptor;
    let manifest = build_manifest(
        &config,
        config_descriptor.clone(),
        layer_descriptor.clone(),
        subject,
    );
    let manifest_json = serde_json::to_vec(&manifest).expect("a manifest always serializes");
    let manifest_descriptor = referrer_entry(
        media_types::OCI_MANIFEST,
        &manifest_json,
        manifest.artifact_type.as_deref(),
        &manifest.annotations,
    );
    Ok(PreparedArchive {
        config,
        config_json,
        config_descriptor,
        layer_descriptor,
        layer_file,
        manifest,
        manifest_json,
        manifest_descriptor,
    })
}

/// Parses and checks an archive manifest read from `reference`: JSON, media types,
/// `artifactType`, one layer. The caller checks the body's digest against what it asked for.
pub fn parse_archive_manifest(
    body: &[u8],
    reference: &str,
) -> Result<ImageManifest, ArtifactError> {
    let reference_s = reference.to_string();
    let media_type = crate::oci::MediaTypeProbe::media_type_of(body);
    match media_type.as_deref() {
        None if serde_json::from_slice::<serde_json::Value>(body).is_err() => {
            return Err(ArtifactError::BadJson {
                reference: reference_s,
                what: "manifest",
                error: "not JSON".into(),
            })
        }
        None => {
            return Err(ArtifactError::MissingMediaType {
                reference: reference_s,
                what: "manifest",
            })
        }
        Some(t) if t == media_types::OCI_MANIFEST => {}
        Some(t) if media_types::is_image_manifest(t) || media_types::is_index(t) => {
            return Err(ArtifactError::NotAnArchive {
                reference: reference_s,
                found: None,
            })
        }
        Some(t) => {
            return Err(ArtifactError::UnknownMediaType {
                reference: reference_s,
                what: "manifest",
                found: t.to_string(),
                expected: media_types::OCI_MANIFEST,
            })
        }
    }
    let manifest: ImageManifest = parse_json(body, reference, "manifest")?;
    if manifest.artifact_type.as_deref() != Some(media_types::ARCHIVE_ARTIFACT_TYPE) {
        return Err(ArtifactError::NotAnArchive {
            reference: reference_s,
            found: manifest.artifact_type,
        });
    }
    check_media_type(
        reference,
        "config",
        &manifest.config.media_type,
        media_types::ARCHIVE_CONFIG,
    )?;
    if manifest.layers.len() != 1 {
        return Err(ArtifactError::LayerCount {
            reference: reference_s,
            count: manifest.layers.len(),
        });
    }
    check_media_type(
        reference,
        "layer",
        &manifest.layers[0].media_type,
        media_types::ARCHIVE_LAYER,
    )?;
    Ok(manifest)
}

fn check_media_type(
    reference: &str,
    what: &'static str,
    found: &str,
    expected: &'static str,
) -> Result<(), ArtifactError> {
    if found.is_empty() {
        Err(ArtifactError::MissingMediaType {
            reference: reference.to_string(),
            what,
        })
    } else if found != expected {
        Err(ArtifactError::UnknownMediaType {
            reference: reference.to_string(),
            what,
            found: found.to_string(),
            expected,
        })
    } else {
        Ok(())
    }
}

/// Parses and checks an archive config blob against its descriptor: digest, size, schema version.
pub fn parse_archive_config(
    body: &[u8],
    descriptor: &Descriptor,
    reference: &str,
) -> Result<ArchiveConfig, ArtifactError> {
    check_blob(reference, "config", descriptor, body)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SchemaProbe {
        schema_version: Option<u32>,
    }
    let probe: SchemaProbe = parse_json(body, reference, "config")?;
    match probe.schema_version {
        Some(v) if v > CONFIG_SCHEMA_VERSION => {
            return Err(ArtifactError::NewerSchema {
                reference: reference.to_string(),
                found: v,
                supported: CONFIG_SCHEMA_VERSION,
            })
        }
        _ => {}
    }
    parse_json(body, reference, "config")
}

#[cfg(test)]
pub(crate) mod format_tests {
    use super::*;
    use crate::key::ArchiveKind;

    const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A config as the CI build writes it; tests elsewhere in core use it too.
    pub(crate) fn sample_config() -> ArchiveConfig {
        crate::testing::sample_config("127.0.0.1:5000/app:1", IMAGE, ArchiveKind::DynamicCds, &[])
    }

    fn subject() -> Descriptor {
        Descriptor::new(media_types::OCI_MANIFEST, IMAGE.into(), 500)
    }

    fn archive_file(dir: &Path, len: usize) -> PathBuf {
        let path = dir.join("app.jsa");
        let data: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn pack_then_unpack_gives_the_same_bytes_and_checks_everything() {
        let dir = tempfile::tempdir().unwrap();
        let src = archive_file(dir.path(), 300_000);
        let prepared = prepare_archive(sample_config(), &src, subject(), dir.path()).unwrap();
        assert_eq!(prepared.config.archive.size, 300_000);
        assert_eq!(
            format!("sha256:{}", prepared.config.archive.sha256),
            sha256_digest(&std::fs::read(&src).unwrap())
        );
        let layer = std::fs::read(prepared.layer_file.path()).unwrap();
        check_blob("t", "layer", &prepared.layer_descriptor, &layer).unwrap();

        let dest = dir.path().join("out.jsa");
        unpack_layer(
            &layer[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            &dest,
            "t",
        )
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());

        // One flipped byte in the compressed layer: refused, destination untouched.
        let dest2 = dir.path().join("out2.jsa");
        let mut bad = layer.clone();
        let n = bad.len() / 2;
        bad[n] ^= 0x55;
        let e = unpack_layer(
            &bad[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            &dest2,
            "t",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                ArtifactError::BadLayer { .. } | ArtifactError::DigestMismatch { .. }
            ),
            "{e}"
        );
        assert!(!dest2.exists());
        // A config whose recorded sha256 differs from the bytes: refused.
        let mut wrong = prepared.config.archive.clone();
        wrong.sha256 = "0".repeat(64);
        let e =
            unpack_layer(&layer[..], &prepared.layer_descriptor, &wrong, &dest2, "t").unwrap_err();
        assert!(
            e.to_string()
                .contains("archive file does not match its digest"),
            "{e}"
        );
        assert!(!dest2.exists());
        // Only the partial-file prefix would remain, and it must not.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".classcache-partial-")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn identical_archives_give_identical_layers() {
        let dir = tempfile::tempdir().unwrap();
        let src = archive_file(dir.path(), 10_000);
        let (a, pa) = pack_layer(&src, "x.jsa", Vec::new()).unwrap();
        let (b, pb) = pack_layer(&src, "x.jsa", Vec::new()).unwrap();
        assert_eq!(a, b);
        assert_eq!(pa, pb);
        assert!(matches!(
            pack_layer(&src, "../x", Vec::new()),
            Err(ArtifactError::BadArchiveName(_))
        ));
        let e = pack_layer(&dir.path().join("missing"), "x", Vec::new()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn manifest_round_trips_and_bad_manifests_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = archive_file(dir.path(), 1000);
        let p = prepare_archive(sample_config(), &src, subject(), dir.path()).unwrap();
        let m = parse_archive_manifest(&p.manifest_json, "reg/app:k").unwrap();
        assert_eq!(m, p.manifest);
        assert_eq!(m.annotations[ANNOTATION_KEY], p.config.key.as_str());
        assert_eq!(m.subject.as_ref().unwrap().digest, IMAGE);
        let c = parse_archive_config(&p.config_json, &p.config_descriptor, "reg/app:k").unwrap();
        assert_eq!(c, p.config);

        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_slice(&p.manifest_json).unwrap();
            f(&mut v);
            serde_json::to_vec(&v).unwrap()
        };
        let e = parse_archive_manifest(
            &edit(&|v| v["artifactType"] = "application/vnd.other".into()),
            "reg/app:k",
        )
        .unwrap_err();
        assert!(
            matches!(e, ArtifactError::NotAnArchive { .. })
                && e.to_string()
                    .contains("reg/app:k is not a classcache archive"),
            "{e}"
        );
        let e = parse_archive_manifest(
            &edit(&|v| v["layers"][0]["mediaType"] = "application/x-foo".into()),
            "r",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("layer has media type \"application/x-foo\""),
            "{e}"
        );
        let e = parse_archive_manifest(&edit(&|v| v["config"]["mediaType"] = "".into()), "r")
            .unwrap_err();
        assert!(e.to_string().contains("config has no media type"), "{e}");
        let e =
            parse_archive_manifest(&edit(&|v| v["mediaType"] = "application/x-new".into()), "r")
                .unwrap_err();
        assert!(e.to_string().contains("manifest has media type"), "{e}");
        let e = parse_archive_manifest(
            &edit(&|v| {
                v.as_object_mut().unwrap().remove("mediaType");
                v.as_object_mut().unwrap().remove("config");
            }),
            "r",
        )
        .unwrap_err();
        assert!(e.to_string().contains("manifest has no media type"), "{e}");
        let e = parse_archive_manifest(b"<html>", "r").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = parse_archive_manifest(
            &edit(&|v| v["mediaType"] = media_types::OCI_INDEX.into()),
            "r",
        )
        .unwrap_err();
        assert!(matches!(e, ArtifactError::NotAnArchive { .. }), "{e}");

        let mut newer: serde_json::Value = serde_json::from_slice(&p.config_json).unwrap();
        newer["schemaVersion"] = 2.into();
        let body = serde_json::to_vec(&newer).unwrap();
        let desc = Descriptor::new(
            media_types::ARCHIVE_CONFIG,
            sha256_digest(&body),
            body.len() as u64,
        );
        let e = parse_archive_config(&body, &desc, "r").unwrap_err();
        assert!(e.to_string().contains("upgrade classcache"), "{e}");
        let e = parse_archive_config(&body, &p.config_descriptor, "r").unwrap_err();
        assert!(
            matches!(
                e,
                ArtifactError::SizeMismatch { .. } | ArtifactError::DigestMismatch { .. }
            ),
            "{e}"
        );
    }

    #[test]
    fn subject_must_be_the_configured_image() {
        let dir = tempfile::tempdir().unwrap();
        let src = archive_file(dir.path(), 10);
        let other = Descriptor::new(
            media_types::OCI_MANIFEST,
            format!("sha256:{}", "f".repeat(64)),
            1,
        );
        let e = prepare_archive(sample_config(), &src, other, dir.path()).unwrap_err();
        assert!(matches!(e, ArtifactError::SubjectMismatch { .. }));
    }
}
