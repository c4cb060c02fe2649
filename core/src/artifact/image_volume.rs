//! The image-volume form of an archive: an image-shaped manifest over the archive's own layer,
//! which the kubelet mounts as an `image` volume. It builds and reads JSON; it must not fetch.
//!
//! containerd mounts only image-shaped manifests (an image config with `rootfs.diff_ids`, tar
//! layers); given the archive manifest itself it mounts an empty directory (measured on the
//! harness's containerd 2.2, see `docs/artifact-format.md`). The form reuses the archive's layer
//! blob under the OCI layer media type, so it costs a config and a manifest of a few hundred bytes.

use super::{ArchiveConfig, ANNOTATION_KEY};
use crate::digest::Digest;
use crate::media_types;
use crate::oci::{Descriptor, ImageManifest};
use serde_json::json;
use std::collections::BTreeMap;

/// Archive-manifest annotation naming the digest of its image-volume form (same repository).
pub const ANNOTATION_IMAGE_VOLUME: &str = "dev.classcache.image-volume";

/// The image-volume form's config, manifest and descriptors; the layer is the archive's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageVolumeForm {
    pub config_json: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub manifest_json: Vec<u8>,
    pub manifest_descriptor: Descriptor,
}

/// The tag of an archive's image-volume form: `<key>-image-volume` (never a key, a fallback
/// tag nor an index tag), so registries that collect untagged manifests keep it.
pub fn image_volume_tag(config: &ArchiveConfig) -> String {
    format!("{}-image-volume", config.key.as_str())
}

/// Builds the image-volume form of an archive whose layer is `layer` and whose uncompressed
/// tar has digest `diff_id`. The archive file sits at the root of the mounted directory under
/// its own name (`config.archive.name`).
pub fn build_image_volume_form(
    config: &ArchiveConfig,
    layer: &Descriptor,
    diff_id: &Digest,
) -> ImageVolumeForm {
    let mut image_config = json!({
        "architecture": config.platform.architecture,
        "os": config.platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    if let Some(variant) = &config.platform.variant {
        image_config["variant"] = json!(variant);
    }
    let config_json = serde_json::to_vec(&image_config).expect("JSON always serializes");
    let config_descriptor = Descriptor::new(
        media_types::OCI_CONFIG,
        Digest::of(&config_json),
        config_json.len() as u64,
    );
    let mut layer = Descriptor::new(
        media_types::OCI_LAYER_TAR_GZIP,
        layer.digest.clone(),
        layer.size,
    );
    layer.annotations = BTreeMap::new();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: vec![layer],
        subject: None,
        annotations: BTreeMap::from([(ANNOTATION_KEY.to_string(), config.key.to_string())]),
    };
    let manifest_json = serde_json::to_vec(&manifest).expect("a manifest always serializes");
    let manifest_descriptor = Descriptor::new(
        media_types::OCI_MANIFEST,
        Digest::of(&manifest_json),
        manifest_json.len() as u64,
    );
    ImageVolumeForm {
        config_json,
        config_descriptor,
        manifest_json,
        manifest_descriptor,
    }
}

/// The digest of the image-volume form an archive manifest names, if it names one (archives
/// pushed before the form existed do not); `None` also for a value that is not a digest.
pub fn image_volume_of(manifest: &ImageManifest) -> Option<Digest> {
    manifest
        .annotations
        .get(ANNOTATION_IMAGE_VOLUME)
        .and_then(|d| d.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{describe_archive, pack_layer};
    use crate::testing::sample_config;
    use std::io::Read;

    #[test]
    fn the_form_is_an_image_over_the_archive_layer() {
        let data = b"archive bytes".repeat(100);
        let (layer, packed) =
            pack_layer(&data[..], data.len() as u64, "app.jsa", Vec::new()).unwrap();
        let mut tar = vec![];
        flate2::read::GzDecoder::new(&layer[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            packed.diff_id,
            Digest::of(&tar),
            "diff_id is the tar's digest"
        );

        let config = sample_config(
            "reg.example/app:1",
            &format!("sha256:{}", "ab".repeat(32)),
            crate::key::ArchiveKind::DynamicCds,
            &[],
        );
        let subject = Descriptor::new(media_types::OCI_MANIFEST, config.image.digest.clone(), 10);
        let blobs = describe_archive(config.clone(), packed.clone(), subject).unwrap();
        let form = &blobs.image_volume;
        let manifest: ImageManifest = serde_json::from_slice(&form.manifest_json).unwrap();
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(
            manifest.layers[0].digest, packed.descriptor.digest,
            "the same blob"
        );
        assert_eq!(
            manifest.layers[0].media_type,
            media_types::OCI_LAYER_TAR_GZIP
        );
        assert_eq!(manifest.config.media_type, media_types::OCI_CONFIG);
        assert_eq!(
            form.manifest_descriptor.digest,
            Digest::of(&form.manifest_json)
        );
        let image_config: serde_json::Value = serde_json::from_slice(&form.config_json).unwrap();
        assert_eq!(
            image_config["rootfs"]["diff_ids"][0],
            packed.diff_id.to_string()
        );
        assert_eq!(image_config["architecture"], config.platform.architecture);
        assert_eq!(
            image_volume_of(&blobs.manifest),
            Some(form.manifest_descriptor.digest.clone()),
            "the archive manifest names its form"
        );
        assert_eq!(
            blobs
                .manifest_descriptor
                .annotation(ANNOTATION_IMAGE_VOLUME),
            Some(form.manifest_descriptor.digest.to_string().as_str()),
            "and so does its referrer entry"
        );
        assert_ne!(image_volume_tag(&config), config.key.to_string());
    }
}
