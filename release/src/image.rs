//! The fetcher image: its one layer, its config, one manifest per platform and the index over them,
//! written as an OCI layout or a docker-archive. It builds bytes; it must not compile or push.
//!
//! The layer holds the static binary at /usr/local/bin, /etc/passwd and /etc/group with the
//! non-root user 65532 (`nonroot`), the CA bundle for HTTPS registries and a world-writable
//! /tmp. Every entry has mtime 0 and owner 0:0, and gzip carries no time, so the same binary
//! gives the same layer digest on every build.

use anyhow::{bail, Context, Result};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageIndex, ImageManifest};
use classcache_core::platform::Platform;
use classcache_core::podtemplate::{DEFAULT_FETCHER_IMAGE_REPOSITORY, FETCHER_BINARY};
use classcache_oci::layout::OciLayout;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The image's user and group: non-root, so the init container passes the restricted Pod
/// Security profile; the DaemonSet states in its own securityContext what the node store needs.
pub const USER: &str = "65532:65532";
/// Where the binary sits; PATH holds its directory, so `command: ["classcache-fetcher"]` works.
pub const BIN_DIR: &str = "usr/local/bin";
/// Annotation and label values the image carries (OCI image spec names).
const TITLE: &str = "org.opencontainers.image.title";
const VERSION: &str = "org.opencontainers.image.version";
const SOURCE: &str = "org.opencontainers.image.source";

/// The files the layer holds besides the binary.
pub struct Contents {
    /// The CA bundle (PEM), stored as /etc/ssl/certs/ca-certificates.crt.
    pub ca_bundle: Vec<u8>,
    /// The version the image is labelled with.
    pub version: String,
    /// The source repository's URL, labelled so registries (ghcr.io) link the image to it.
    pub source: Option<String>,
}

/// One platform's image: its blobs and the manifest descriptor (with its platform) that the
/// index lists.
pub struct PlatformImage {
    pub platform: Platform,
    pub layer: Vec<u8>,
    pub layer_descriptor: Descriptor,
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub manifest: Vec<u8>,
    pub manifest_descriptor: Descriptor,
}

/// A multi-platform image: the platforms' images and the index over them.
pub struct Image {
    pub platforms: Vec<PlatformImage>,
    pub index: Vec<u8>,
    pub index_descriptor: Descriptor,
}

/// The image reference `kubectl classcache install` uses by default, for a version.
pub fn default_reference(version: &str) -> String {
    format!("{DEFAULT_FETCHER_IMAGE_REPOSITORY}:{version}")
}

fn tar_entry(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    body: Option<&[u8]>,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mode(mode);
    match body {
        Some(body) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(body.len() as u64);
            tar.append_data(&mut header, path, body)
        }
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{path}/"), std::io::empty())
        }
    }
    .with_context(|| format!("cannot add {path} to the image layer"))
}

/// The uncompressed layer tar: directories first, entries in a fixed order.
pub fn layer_tar(binary: &[u8], contents: &Contents) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for dir in [
        "etc",
        "etc/ssl",
        "etc/ssl/certs",
        "usr",
        "usr/local",
        BIN_DIR,
    ] {
        tar_entry(&mut tar, dir, 0o755, None)?;
    }
    tar_entry(&mut tar, "tmp", 0o1777, None)?;
    let files: [(&str, u32, &[u8]); 5] = [
        (
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
        ),
        ("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n"),
        ("etc/nsswitch.conf", 0o644, b"hosts: files dns\n"),
        ("etc/ssl/certs/ca-certificates.crt", 0o644, &contents.ca_bundle),
        (&format!("{BIN_DIR}/{FETCHER_BINARY}"), 0o755, binary),
    ];
    for (path, mode, body) in files {
        tar_entry(&mut tar, path, mode, Some(body))?;
    }
    tar.into_inner().context("cannot finish the image layer")
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    // GzBuilder writes mtime 0 and no file name: the output depends on the input only.
    let mut encoder = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn descriptor(media_type: &str, body: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::of(body), body.len() as u64)
}

/// Builds one platform's image around `binary` (a static executable for `platform`).
pub fn platform_image(
    platform: &Platform,
    binary: &[u8],
    contents: &Contents,
) -> Result<PlatformImage> {
    let tar = layer_tar(binary, contents)?;
    let diff_id = Digest::of(&tar);
    let layer = gzip(&tar)?;
    let layer_descriptor = descriptor(media_types::OCI_LAYER_TAR_GZIP, &layer);
    let mut labels = json!({TITLE: FETCHER_BINARY, VERSION: contents.version});
    if let Some(source) = &contents.source {
        labels[SOURCE] = json!(source);
    }
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {
            "User": USER,
            "Env": [format!("PATH=/{BIN_DIR}")],
            "Entrypoint": [format!("/{BIN_DIR}/{FETCHER_BINARY}")],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": "classcache-release image (scripts/release.sh, scripts/fetcher-image.sh)"}],
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = json!(variant);
    }
    let config = serde_json::to_vec(&config)?;
    let config_descriptor = descriptor(media_types::OCI_CONFIG, &config);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: vec![layer_descriptor.clone()],
        subject: None,
        annotations: BTreeMap::from([
            (TITLE.to_string(), FETCHER_BINARY.to_string()),
            (VERSION.to_string(), contents.version.clone()),
        ]),
    };
    let manifest = serde_json::to_vec(&manifest)?;
    let mut manifest_descriptor = descriptor(media_types::OCI_MANIFEST, &manifest);
    manifest_descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        layer,
        layer_descriptor,
        config,
        config_descriptor,
        manifest,
        manifest_descriptor,
    })
}

/// Builds the image for every `(platform, binary)`; each platform at most once.
pub fn image(binaries: &[(Platform, Vec<u8>)], contents: &Contents) -> Result<Image> {
    if binaries.is_empty() {
        bail!("no binary given; pass --binary linux/amd64=PATH (once per platform)");
    }
    let mut index = ImageIndex::empty();
    let mut platforms = Vec::new();
    for (platform, binary) in binaries {
        if platforms
            .iter()
            .any(|p: &PlatformImage| &p.platform == platform)
        {
            bail!("--binary names platform {platform} twice; give one binary per platform");
        }
        let image = platform_image(platform, binary, contents)?;
        index.manifests.push(image.manifest_descriptor.clone());
        platforms.push(image);
    }
    index
        .annotations
        .insert(VERSION.into(), contents.version.clone());
    let index = serde_json::to_vec(&index)?;
    let index_descriptor = descriptor(media_types::OCI_INDEX, &index);
    Ok(Image {
        platforms,
        index,
        index_descriptor,
    })
}

/// Writes `image` into the OCI layout at `dir` (created when missing or empty), its index
/// tagged `tag` in index.json.
pub fn write_layout(image: &Image, dir: &Path, tag: &str) -> Result<()> {
    let layout = OciLayout::create(dir)
        .with_context(|| format!("cannot create the OCI layout {}", dir.display()))?;
    for p in &image.platforms {
        for body in [&p.layer, &p.config, &p.manifest] {
            layout.write_blob(body)?;
        }
    }
    layout.write_blob(&image.index)?;
    layout.add_to_index(image.index_descriptor.clone(), Some(tag))?;
    Ok(())
}

/// Writes one platform's image as a docker-archive (`docker save` format: manifest.json, the
/// config and the gzip layer; `docker load` and `ctr images import` read it), tagged `tags`.
pub fn write_docker_archive(image: &PlatformImage, path: &Path, tags: &[String]) -> Result<()> {
    let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.digest.hex());
    let manifest = json!([{
        "Config": blob(&image.config_descriptor),
        "RepoTags": tags,
        "Layers": [blob(&image.layer_descriptor)],
    }]);
    let manifest = serde_json::to_vec(&manifest)?;
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["blobs", "blobs/sha256"] {
        tar_entry(&mut tar, dir, 0o755, None)?;
    }
    tar_entry(
        &mut tar,
        &blob(&image.config_descriptor),
        0o644,
        Some(&image.config),
    )?;
    tar_entry(
        &mut tar,
        &blob(&image.layer_descriptor),
        0o644,
        Some(&image.layer),
    )?;
    tar_entry(&mut tar, "manifest.json", 0o644, Some(&manifest))?;
    let body = tar.into_inner()?;
    std::fs::write(path, body)
        .with_context(|| format!("cannot write the docker-archive {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Contents {
        Contents {
            ca_bundle: b"-----BEGIN CERTIFICATE-----\n".to_vec(),
            version: "9.8.7".into(),
            source: None,
        }
    }

    #[test]
    fn the_same_binary_gives_the_same_digests() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let a = platform_image(&amd64, b"binary", &contents()).unwrap();
        let b = platform_image(&amd64, b"binary", &contents()).unwrap();
        assert_eq!(a.manifest_descriptor, b.manifest_descriptor);
        let c = platform_image(&amd64, b"other", &contents()).unwrap();
        assert_ne!(a.layer_descriptor.digest, c.layer_descriptor.digest);
    }

    #[test]
    fn config_runs_the_binary_as_non_root() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let image = platform_image(&arm64, b"binary", &contents()).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config["config"]["User"], USER);
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(
            config["config"]["Entrypoint"][0],
            "/usr/local/bin/classcache-fetcher"
        );
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Digest::of(&layer_tar(b"binary", &contents()).unwrap()).to_string()
        );
    }

    #[test]
    fn a_platform_given_twice_is_refused() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let binaries = vec![(amd64.clone(), b"a".to_vec()), (amd64, b"b".to_vec())];
        let err = image(&binaries, &contents()).err().unwrap().to_string();
        assert!(err.contains("names platform linux/amd64 twice"), "{err}");
    }
}
