//! Copies a multi-platform image from an OCI layout to a registry with the oci crate's client:
//! blobs, then each platform's manifest by digest, then the index under the tag. It must not
//! build images or read credentials beyond what it is given and the Docker config.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use classcache_core::media_types;
use classcache_core::oci::{ImageIndex, ImageManifest};
use classcache_core::reference::RegistryRef;
use classcache_oci::layout::OciLayout;
use classcache_oci::registry::RegistryClient;
use std::path::Path;

/// Pushes the index tagged `tag` in the layout at `dir` (and everything it names) to `target`
/// (`host/repo:tag`); returns the pushed index's digest.
pub async fn push_layout(
    dir: &Path,
    tag: &str,
    client: &RegistryClient,
    target: &RegistryRef,
) -> Result<String> {
    if target.tag.is_none() {
        bail!("{target} names no tag; push to host/repo:TAG (the release pushes :<version>)");
    }
    let layout = OciLayout::open(dir)?;
    let entry = layout.resolve(Some(tag), None)?;
    if !media_types::is_index(&entry.media_type) {
        bail!(
            "oci:{}:{tag} is a {}, not an image index; write the image with `classcache-release image`",
            dir.display(),
            entry.media_type
        );
    }
    let index_bytes = layout.read_blob(&entry)?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .with_context(|| format!("oci:{}:{tag}: the index is not JSON", dir.display()))?;
    let repo = target.repository_only();
    for platform in &index.manifests {
        let manifest_bytes = layout.read_blob(platform)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).with_context(|| {
                format!(
                    "oci:{}: manifest {} is not JSON",
                    dir.display(),
                    platform.digest
                )
            })?;
        for blob in manifest.layers.iter().chain([&manifest.config]) {
            client
                .push_blob_file(&repo, blob, &layout.blob_path(&blob.digest))
                .await?;
        }
        client
            .put_manifest(
                &repo.with_digest(&platform.digest),
                &platform.media_type,
                Bytes::from(manifest_bytes),
            )
            .await?;
    }
    let digest = client
        .put_manifest(target, &entry.media_type, Bytes::from(index_bytes))
        .await?;
    Ok(digest.to_string())
}
