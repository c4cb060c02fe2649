//! The archive artifact's format: its JSON config, its one tar+gzip layer, its manifest, and
//! the checks on what is read back. It defines the format; it must not do network I/O.

mod config;
mod layer;
mod manifest;

pub use config::*;
pub use layer::*;
pub use manifest::*;

use crate::digest::sha256_digest;
use crate::media_types;
use crate::oci::Descriptor;
use std::io;
use std::path::PathBuf;

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

#[cfg(test)]
pub(crate) mod format_tests {
    use super::*;
    use crate::key::ArchiveKind;
    use std::path::Path;

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
