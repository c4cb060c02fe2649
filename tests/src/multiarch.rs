//! Multi-platform app images and per-platform archives in the harness registry, for the tests of
//! the index of per-platform archives. It builds inputs with the project's own code; it must not assert anything about the code under test.
//!
//! No arm64 JVM runs on this machine, so the arm64 side is a **fixture**: an arm64 platform
//! manifest that reuses the amd64 image's layers under a config that says `arm64` (never run),
//! and an archive of made-up bytes for it, pushed and added to the index through the same
//! `RegistryClient::update_archive_index` that classcache-build runs after its push.

use crate::harness;
use classcache_core::artifact::{ArchiveConfig, ArchiveFile, ImageIdentity, JvmIdentity};
use classcache_core::digest::Digest;
use classcache_core::key::{ArchiveKind, IndexKey, KeyInputs};
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageIndex, ImageManifest};
use classcache_core::platform::Platform;
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::{PushedArchive, RegistryClient, RegistryOptions, UpdatedIndex};
use std::path::PathBuf;

/// The tag of the multi-platform image (an OCI index) in its repository.
pub const MULTI_TAG: &str = "multi";

/// A multi-platform image in the harness registry: an OCI index over platform manifests.
#[derive(Debug, Clone)]
pub struct MultiPlatformImage {
    /// The repository (no tag).
    pub repository: RegistryRef,
    /// `<repository>:multi`: what workloads and classcache-build are given.
    pub reference: String,
    /// The image index.
    pub index: Descriptor,
    /// Its platform manifests, in index order (`linux/amd64`, then `linux/arm64`).
    pub platforms: Vec<(Platform, Descriptor)>,
}

impl MultiPlatformImage {
    /// The platform manifest of `platform` (`linux/arm64`).
    pub fn manifest(&self, platform: &str) -> &Descriptor {
        let want: Platform = platform.parse().expect("a platform");
        &self
            .platforms
            .iter()
            .find(|(p, _)| p.satisfies(&want))
            .unwrap_or_else(|| panic!("{} has no {platform} manifest", self.reference))
            .1
    }
}

/// A registry client that ignores the machine's Docker credentials (the harness registry is
/// anonymous).
pub fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        docker_config: Some(PathBuf::from("/nonexistent/classcache-test/config.json")),
        ..Default::default()
    })
    .expect("a registry client builds")
}

/// Runs `work` on a runtime of its own (tests are plain threads).
pub fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

/// Pushes a tiny `linux/amd64` image (one layer, never run) to a fresh repository of the
/// harness registry, tagged `amd64`; returns its reference `<repository>:amd64`.
pub async fn synthetic_image(name: &str) -> String {
    let repository: RegistryRef = harness()
        .registry_ref(&crate::unique_name(name))
        .parse()
        .expect("a repository");
    let client = client();
    let layer = format!("layer of {repository}").into_bytes();
    let layer_desc = Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar",
        Digest::of(&layer),
        layer.len() as u64,
    );
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
    }))
    .unwrap();
    let config_desc = Descriptor::new(
        media_types::OCI_CONFIG,
        Digest::of(&config),
        config.len() as u64,
    );
    client
        .push_blob_bytes(&repository, &layer_desc, layer.into())
        .await
        .expect("push the layer");
    client
        .push_blob_bytes(&repository, &config_desc, config.into())
        .await
        .expect("push the config");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers: vec![layer_desc],
        subject: None,
        annotations: Default::default(),
    };
    let reference = repository.with_tag("amd64");
    client
        .put_manifest(
            &reference,
            media_types::OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap().into(),
        )
        .await
        .expect("push the manifest");
    reference.to_string()
}

/// Makes the single-platform `linux/amd64` image `amd64_image` (in the harness registry)
/// multi-platform: adds a `linux/arm64` fixture manifest (the amd64 layers under a config
/// that says arm64; nothing runs it) and an OCI index of both, tagged [`MULTI_TAG`].
pub async fn with_arm64_fixture(amd64_image: &str) -> MultiPlatformImage {
    let client = client();
    let image: RegistryRef = amd64_image.parse().expect("an image reference");
    let repository = image.repository_only();
    let amd = client
        .get_manifest(&image)
        .await
        .unwrap_or_else(|e| panic!("read {amd64_image}: {e}"));
    let mut manifest: serde_json::Value = serde_json::from_slice(&amd.bytes).unwrap();
    let config_desc: Descriptor = serde_json::from_value(manifest["config"].clone()).unwrap();
    let config = client
        .get_blob_bytes(&repository, &config_desc)
        .await
        .expect("read the image config");
    let mut config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["architecture"], "amd64",
        "{amd64_image} is not amd64"
    );
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let config = serde_json::to_vec(&config).unwrap();
    let arm_config = Descriptor::new(
        &config_desc.media_type,
        Digest::of(&config),
        config.len() as u64,
    );
    client
        .push_blob_bytes(&repository, &arm_config, config.into())
        .await
        .expect("push the arm64 config");
    manifest["config"] = serde_json::to_value(&arm_config).unwrap();
    let arm_body = serde_json::to_vec(&manifest).unwrap();
    let arm = Descriptor::new(
        &amd.media_type,
        Digest::of(&arm_body),
        arm_body.len() as u64,
    );
    client
        .put_manifest(
            &repository.with_digest(&arm.digest),
            &amd.media_type,
            arm_body.into(),
        )
        .await
        .expect("push the arm64 manifest");
    let platforms = vec![
        (Platform::new("linux", "amd64", None), amd.descriptor()),
        (Platform::new("linux", "arm64", Some("v8")), arm),
    ];
    let mut index = ImageIndex::empty();
    index.manifests = platforms
        .iter()
        .map(|(p, d)| {
            let mut d = d.clone();
            d.platform = Some(p.clone());
            d
        })
        .collect();
    let body = serde_json::to_vec(&index).unwrap();
    let index_desc = Descriptor::new(media_types::OCI_INDEX, Digest::of(&body), body.len() as u64);
    let tagged = repository.with_tag(MULTI_TAG);
    client
        .put_manifest(&tagged, media_types::OCI_INDEX, body.into())
        .await
        .expect("push the image index");
    MultiPlatformImage {
        repository,
        reference: tagged.to_string(),
        index: index_desc,
        platforms,
    }
}

/// A config of a `dynamic-cds` archive of JDK 17 for `platform` of `image`, as a CI job on
/// that platform with no agent and no options writes it (its `archive` is filled in by the push).
pub fn fixture_config(image: &MultiPlatformImage, platform: &str) -> ArchiveConfig {
    let inputs = KeyInputs {
        image_digest: image.manifest(platform).digest.to_string(),
        jvm_build: "17.0.15+6-Debian-1deb12u1".into(),
        os: "linux".into(),
        arch: platform.parse::<Platform>().unwrap().architecture,
        kind: ArchiveKind::DynamicCds,
        agent: None,
        jvm_options: vec![],
    };
    ArchiveConfig {
        schema_version: classcache_core::artifact::CONFIG_SCHEMA_VERSION,
        key: inputs.key().expect("valid key inputs"),
        kind: inputs.kind,
        jvm: JvmIdentity {
            feature_version: 17,
            version: "17.0.15".into(),
            vendor: "Debian".into(),
            build: inputs.jvm_build.clone(),
        },
        platform: platform.parse().unwrap(),
        image: ImageIdentity {
            reference: image.reference.clone(),
            digest: image.manifest(platform).digest.clone(),
            entrypoint: vec![],
            cmd: vec![],
        },
        agent: None,
        training_options: vec!["-XX:ArchiveClassesAtExit={archive}".into()],
        runtime_options: vec![
            "-XX:SharedArchiveFile={archive}".into(),
            "-Xshare:auto".into(),
        ],
        archive: ArchiveFile {
            name: "app.jsa".into(),
            size: 0,
            sha256: String::new(),
        },
        verification: None,
        created: classcache_core::artifact::now_rfc3339(),
    }
}

/// The index key of `fixture_config`'s archives of `image` (every platform's is the same).
pub fn fixture_index_key(image: &MultiPlatformImage) -> IndexKey {
    KeyInputs {
        image_digest: image.platforms[0].1.digest.to_string(),
        jvm_build: "any".into(),
        os: "linux".into(),
        arch: "any".into(),
        kind: ArchiveKind::DynamicCds,
        agent: None,
        jvm_options: vec![],
    }
    .index_key(image.index.digest.as_str())
    .expect("valid key inputs")
}

/// The fixture path of one platform's CI job: pushes `data` as the archive of `platform` of
/// `image` with a config like `like` (the kind, JVM build, run-time options and file name a
/// job with the same options writes; platform, image, key and time its own), then adds it to
/// the index `index_key` through the same [`RegistryClient::update_archive_index`]
/// classcache-build runs. Returns the pushed archive and the index after the update.
pub async fn push_platform_archive(
    image: &MultiPlatformImage,
    platform: &str,
    like: &ArchiveConfig,
    data: &[u8],
    index_key: &IndexKey,
) -> (PushedArchive, UpdatedIndex) {
    let client = client();
    let want: Platform = platform.parse().unwrap();
    let subject = image.manifest(platform).clone();
    let mut config = like.clone();
    let inputs = KeyInputs {
        image_digest: subject.digest.to_string(),
        jvm_build: like.jvm.build.clone(),
        os: want.os.clone(),
        arch: want.architecture.clone(),
        kind: like.kind,
        agent: like.agent.as_ref().map(|a| a.identity.clone()),
        jvm_options: vec![],
    };
    config.key = inputs.key().expect("valid key inputs");
    config.platform = want;
    config.image.digest = subject.digest.clone();
    config.image.reference = image.reference.clone();
    config.verification = None;
    config.created = classcache_core::artifact::now_rfc3339();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(&like.archive.name);
    std::fs::write(&file, data).unwrap();
    let pushed = client
        .push_archive(&image.repository, config, &file, Some(subject))
        .await
        .unwrap_or_else(|e| panic!("push the {platform} archive to {}: {e}", image.repository));
    let updated = client
        .update_archive_index(&image.repository, index_key, &image.index, &pushed)
        .await
        .unwrap_or_else(|e| panic!("add the {platform} archive to the index {index_key}: {e}"));
    (pushed, updated)
}

/// The index of per-platform archives at `tag` (its index key) in `image`'s repository: its
/// digest and (platform, archive manifest digest) per entry.
pub async fn read_index(image: &MultiPlatformImage, tag: &str) -> (Digest, Vec<(String, Digest)>) {
    let raw = client()
        .get_manifest(&image.repository.with_tag(tag))
        .await
        .unwrap_or_else(|e| panic!("read the index {tag}: {e}"));
    let index: ImageIndex = serde_json::from_slice(&raw.bytes).unwrap();
    (
        raw.digest,
        index
            .manifests
            .into_iter()
            .map(|d| {
                (
                    d.platform.expect("entries name their platform").to_string(),
                    d.digest,
                )
            })
            .collect(),
    )
}
