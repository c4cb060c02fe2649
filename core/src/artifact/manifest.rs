//! The archive artifact's manifest: building it, and parsing and checking what is read back
//! (the index of per-platform archives is `index.rs`). It must not fetch anything.

use super::{
    build_image_volume_form, check_blob, parse_json, ArchiveConfig, ArtifactError, ImageVolumeForm,
    PackedLayer, ANNOTATION_IMAGE_VOLUME, ANNOTATION_JVM_BUILD, ANNOTATION_KEY, ANNOTATION_KIND,
    ANNOTATION_PLATFORM, CONFIG_SCHEMA_VERSION,
};
use crate::digest::Digest;
use crate::media_types;
use crate::oci::{Descriptor, ImageManifest, ANNOTATION_CREATED};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The blobs and manifest of an archive artifact, described: config and manifest bytes and
/// the descriptors of all three blobs. The layer's bytes are the caller's (see
/// [`super::pack_layer`]).
#[derive(Debug, Clone)]
pub struct ArchiveBlobs {
    pub config: ArchiveConfig,
    pub config_json: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub layer_descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub manifest_json: Vec<u8>,
    /// The manifest's descriptor with `artifactType` and annotations: the referrer entry.
    pub manifest_descriptor: Descriptor,
    /// The image-volume form over the same layer; the manifest names it
    /// ([`super::ANNOTATION_IMAGE_VOLUME`]), so it is stored before the manifest.
    pub image_volume: ImageVolumeForm,
}

/// The manifest annotations a referrer listing shows without fetching the config.
pub fn manifest_annotations(config: &ArchiveConfig) -> BTreeMap<String, String> {
    let platform = config.platform.to_string();
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

/// The referrer entry of a manifest or index: its descriptor with `artifactType` and annotations.
pub fn referrer_entry(
    media_type: &str,
    body: &[u8],
    artifact_type: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Descriptor {
    let mut entry = Descriptor::new(media_type, Digest::of(body), body.len() as u64);
    entry.artifact_type = artifact_type.map(str::to_string);
    entry.annotations = annotations.clone();
    entry
}

/// The RFC 3339 time now, for [`ArchiveConfig::created`].
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Checks that `subject` is the image `config.image.digest` names.
pub fn check_subject(config: &ArchiveConfig, subject: &Descriptor) -> Result<(), ArtifactError> {
    if subject.digest != config.image.digest {
        return Err(ArtifactError::SubjectMismatch {
            subject: subject.digest.to_string(),
            image: config.image.digest.to_string(),
        });
    }
    Ok(())
}

/// Builds config and manifest around a packed layer: `config.archive` is taken from the bytes
/// packed and the schema version set; `subject` must be the image `config.image.digest` names.
pub fn describe_archive(
    mut config: ArchiveConfig,
    packed: PackedLayer,
    subject: Descriptor,
) -> Result<ArchiveBlobs, ArtifactError> {
    check_subject(&config, &subject)?;
    config.schema_version = CONFIG_SCHEMA_VERSION;
    config.archive = packed.archive;
    let config_json = serde_json::to_vec(&config).expect("an ArchiveConfig always serializes");
    let config_descriptor = Descriptor::new(
        media_types::ARCHIVE_CONFIG,
        Digest::of(&config_json),
        config_json.len() as u64,
    );
    let layer_descriptor = packed.descriptor;
    let image_volume = build_image_volume_form(&config, &layer_descriptor, &packed.diff_id);
    let mut manifest = build_manifest(
        &config,
        config_descriptor.clone(),
        layer_descriptor.clone(),
        subject,
    );
    manifest.annotations.insert(
        ANNOTATION_IMAGE_VOLUME.to_string(),
        image_volume.manifest_descriptor.digest.to_string(),
    );
    let manifest_json = serde_json::to_vec(&manifest).expect("a manifest always serializes");
    let manifest_descriptor = referrer_entry(
        media_types::OCI_MANIFEST,
        &manifest_json,
        manifest.artifact_type.as_deref(),
        &manifest.annotations,
    );
    Ok(ArchiveBlobs {
        config,
        config_json,
        config_descriptor,
        layer_descriptor,
        manifest,
        manifest_json,
        manifest_descriptor,
        image_volume,
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
