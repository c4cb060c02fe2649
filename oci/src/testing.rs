//! Test helpers for every crate's registry tests (feature `testing`): pushing a minimal image
//! for archives to attach to, finding partial files left behind. It must not be used by programs.

use crate::registry::{RegistryClient, RegistryError};
use bytes::Bytes;
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageManifest};
use classcache_core::reference::RegistryRef;
use std::path::Path;

/// The names of the partial files (see [`crate::verified::PARTIAL_PREFIX`]) left in `dir`.
pub fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(crate::verified::PARTIAL_PREFIX))
        .collect()
}

/// Pushes a minimal single-platform image to `image` (tagged as `image` says): an image config
/// (`config`, e.g. `{"architecture":"amd64","os":"linux",…}`), the given layers' bytes, and
/// the manifest. Returns the manifest's descriptor: the subject archives attach to.
pub async fn push_minimal_image(
    client: &RegistryClient,
    image: &RegistryRef,
    config: &serde_json::Value,
    layers: &[&[u8]],
) -> Result<Descriptor, RegistryError> {
    let repo = image.repository_only();
    let mut layer_descs = vec![];
    for layer in layers {
        let d = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            Digest::of(layer),
            layer.len() as u64,
        );
        client
            .push_blob_bytes(&repo, &d, Bytes::copy_from_slice(layer))
            .await?;
        layer_descs.push(d);
    }
    let config = serde_json::to_vec(config).expect("JSON serializes");
    let config_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        Digest::of(&config),
        config.len() as u64,
    );
    client
        .push_blob_bytes(&repo, &config_desc, Bytes::from(config))
        .await?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers: layer_descs,
        subject: None,
        annotations: Default::default(),
    };
    let body = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let size = body.len() as u64;
    let digest = client
        .put_manifest(image, media_types::OCI_MANIFEST, Bytes::from(body))
        .await?;
    Ok(Descriptor::new(media_types::OCI_MANIFEST, digest, size))
}
