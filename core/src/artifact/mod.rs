//! The archive artifact's format: its JSON config, its one tar+gzip layer, its manifest, and
//! the checks on what is read back. It defines the format; it must not do network I/O.

mod config;
mod image_volume;
mod index;
mod layer;
mod manifest;
pub mod signature;

pub use config::*;
pub use image_volume::*;
pub use index::*;
pub use layer::*;
pub use manifest::*;

use crate::digest::Digest;
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
    #[error("archive file {name} changed while it was packed ({expected} bytes expected, {actual} read); pack it again once the JVM has finished writing it")]
    ArchiveChanged {
        name: String,
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
    #[error("{reference}: no archive for platform {platform} in the index (it has: {available}); build the archive on that platform")]
    NoArchiveForPlatform {
        reference: String,
        platform: String,
        available: String,
    },
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
    expected: &Digest,
    actual: Digest,
) -> Result<(), ArtifactError> {
    if *expected == actual {
        Ok(())
    } else {
        Err(ArtifactError::DigestMismatch {
            reference: reference.to_string(),
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
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
    check_digest(reference, what, &descriptor.digest, Digest::of(body))
}

#[cfg(test)]
pub(crate) mod format_tests {
    use super::*;
    use crate::digest::sha256_digest;
    use crate::key::ArchiveKind;
    use crate::oci::ImageIndex;

    const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A config as the CI build writes it; tests elsewhere in core use it too.
    pub(crate) fn sample_config() -> ArchiveConfig {
        crate::testing::sample_config("127.0.0.1:5000/app:1", IMAGE, ArchiveKind::DynamicCds, &[])
    }

    fn subject() -> Descriptor {
        Descriptor::new(media_types::OCI_MANIFEST, IMAGE.parse().unwrap(), 500)
    }

    fn archive_bytes(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect()
    }

    /// Packs `data` as the sample config's archive: (layer bytes, described blobs).
    fn prepare(data: &[u8]) -> (Vec<u8>, ArchiveBlobs) {
        let (layer, packed) = pack_layer(data, data.len() as u64, "app.jsa", Vec::new()).unwrap();
        let blobs = describe_archive(sample_config(), packed, subject()).unwrap();
        (layer, blobs)
    }

    #[test]
    fn pack_then_unpack_gives_the_same_bytes_and_checks_everything() {
        let data = archive_bytes(300_000);
        let (layer, prepared) = prepare(&data);
        assert_eq!(prepared.config.archive.size, 300_000);
        assert_eq!(
            format!("sha256:{}", prepared.config.archive.sha256),
            sha256_digest(&data)
        );
        check_blob("t", "layer", &prepared.layer_descriptor, &layer).unwrap();

        let out = unpack_layer(
            &layer[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            Vec::new(),
            "t",
        )
        .unwrap();
        assert_eq!(out, data);

        // One flipped byte in the compressed layer: refused.
        let mut bad = layer.clone();
        let n = bad.len() / 2;
        bad[n] ^= 0x55;
        let e = unpack_layer(
            &bad[..],
            &prepared.layer_descriptor,
            &prepared.config.archive,
            Vec::new(),
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
        // A config whose recorded sha256 differs from the bytes: refused.
        let mut wrong = prepared.config.archive.clone();
        wrong.sha256 = "0".repeat(64);
        let e = unpack_layer(
            &layer[..],
            &prepared.layer_descriptor,
            &wrong,
            Vec::new(),
            "t",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("archive file does not match its digest"),
            "{e}"
        );
    }

    #[test]
    fn identical_archives_give_identical_layers() {
        let data = archive_bytes(10_000);
        let n = data.len() as u64;
        let (a, pa) = pack_layer(&data[..], n, "x.jsa", Vec::new()).unwrap();
        let (b, pb) = pack_layer(&data[..], n, "x.jsa", Vec::new()).unwrap();
        assert_eq!(a, b);
        assert_eq!(pa, pb);
        assert!(matches!(
            pack_layer(&data[..], n, "../x", Vec::new()),
            Err(ArtifactError::BadArchiveName(_))
        ));
        // Fewer bytes than announced: the archive changed while it was packed.
        let e = pack_layer(&data[..100], n, "x.jsa", Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("x.jsa changed while it was packed"),
            "{e}"
        );
    }

    #[test]
    fn manifest_round_trips_and_bad_manifests_are_named() {
        let (_, p) = prepare(&archive_bytes(1000));
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
            Digest::of(&body),
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
        let data = archive_bytes(10);
        let (_, packed) = pack_layer(&data[..], 10, "a.jsa", Vec::new()).unwrap();
        let other = Descriptor::new(media_types::OCI_MANIFEST, Digest::of(b"other"), 1);
        let e = describe_archive(sample_config(), packed, other).unwrap_err();
        assert!(matches!(e, ArtifactError::SubjectMismatch { .. }));
    }

    #[test]
    fn the_platform_entry_is_picked_and_a_missing_one_named() {
        let arm: crate::platform::Platform = "linux/arm64/v8".parse().unwrap();
        let mut index = ImageIndex::empty();
        let mut d = Descriptor::new(media_types::OCI_MANIFEST, Digest::of(b"a"), 1);
        d.platform = Some(arm.clone());
        index.manifests.push(d);
        assert!(pick_platform_archive("r", &index, &arm.without_variant()).is_ok());
        let e = pick_platform_archive("r", &index, &"linux/s390x".parse().unwrap()).unwrap_err();
        assert!(
            e.to_string().contains(
                "no archive for platform linux/s390x in the index (it has: linux/arm64/v8)"
            ),
            "{e}"
        );
    }
}
