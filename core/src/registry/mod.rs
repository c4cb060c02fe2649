//! Registry I/O over the OCI distribution API: push, find, resolve and pull archive artifacts,
//! stream blobs. It speaks HTTP only; it must not decide which archive a workload should use.
//!
//! Blobs go up as one streamed monolithic `PUT` from the file (constant memory) and come down as
//! streams hashed on the fly. The manifest, and so the tag, is written only once every blob it
//! names is confirmed present, and the referrers tag-schema fallback index is kept up to date
//! when the registry has no referrers API (CNCF distribution 2.8 answers 404 there).

mod archives;
mod auth;
mod blobs;
mod client;
mod manifests;
mod referrers;

pub use archives::pick_platform_archive;
pub use blobs::BlobStream;
pub use client::RegistryClient;
pub use referrers::{archive_entries, fallback_tag};

use crate::artifact::{self, ArchiveConfig, ArtifactError, Platform, PreparedArchive};
use crate::digest::sha256_digest;
use crate::docker_config::{Credentials, DockerConfig, DockerConfigError};
use crate::media_types;
use crate::oci::{Descriptor, ImageConfigPlatform, ImageIndex, ImageManifest, MediaTypeProbe};
use crate::reference::RegistryRef;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Largest manifest or config classcache reads into memory; larger answers are refused.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Options of a [`RegistryClient`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP besides loopback ones
    /// (`localhost`, `127.*`, `[::1]`, always plain HTTP).
    pub insecure_registries: Vec<String>,
    /// Plain HTTP for every registry (tests, air-gapped labs).
    pub insecure_all: bool,
    /// The Docker client config to take credentials from; default
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Credentials that win over the Docker config, by registry `host[:port]`.
    pub credentials: HashMap<String, Credentials>,
}

/// A registry error; each names the registry or reference and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry} at {url}: {error}; check that the registry runs and the address is right (a plain-HTTP registry not on localhost needs the insecure option)")]
    Unreachable {
        registry: String,
        url: String,
        error: String,
    },
    #[error("registry {registry} refused {action} {repository} without valid credentials (HTTP 401); run `docker login {registry}` (credentials are read from $DOCKER_CONFIG/config.json or ~/.docker/config.json)")]
    Unauthorized {
        registry: String,
        repository: String,
        action: &'static str,
    },
    #[error("registry {registry} denied {action} {repository} (HTTP 403); the credentials lack that permission: ask for access or `docker login {registry}` as an account that has it")]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
    },
    #[error("{reference}: {what} not found (HTTP 404); check the repository, tag or digest")]
    NotFound { reference: String, what: String },
    #[error("{reference}: the registry answered HTTP {status} to {method} {url}: {body}")]
    Http {
        reference: String,
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{reference}: {problem}")]
    Protocol { reference: String, problem: String },
    #[error("{reference}: blob {digest} is not in the registry after its upload; nothing was tagged, push again")]
    BlobMissingAfterPush { reference: String, digest: String },
    #[error("{reference}: the image {digest} is not in {repository}; an archive must be pushed to the repository of the image it was trained in (or pass the subject descriptor)")]
    SubjectNotFound {
        reference: String,
        repository: String,
        digest: String,
    },
    #[error("{reference}: no archive for platform {platform} in the index (it has: {available}); build the archive on that platform")]
    NoArchiveForPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference} names no tag or digest; add `:TAG` or `@sha256:…`")]
    NoTagOrDigest { reference: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
}

/// A manifest or index as read from a registry or layout, its digest checked.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Bytes,
}

impl RawManifest {
    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// An archive artifact's manifest and config, checked, without its layer.
#[derive(Debug, Clone)]
pub struct ArchiveManifest {
    /// Where it was read, pinned to the archive manifest's digest.
    pub reference: String,
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: ArchiveConfig,
}

impl ArchiveManifest {
    /// The one layer (tar+gzip holding `config.archive.name`).
    pub fn layer(&self) -> &Descriptor {
        &self.manifest.layers[0]
    }
}

/// The result of a pull: the archive is complete and verified at `path`.
#[derive(Debug, Clone)]
pub struct PulledArchive {
    pub manifest_digest: String,
    pub config: ArchiveConfig,
    pub path: PathBuf,
}

/// How the push made the archive findable from its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersUpdate {
    /// The registry has the referrers API and indexes `subject` itself.
    NativeApi,
    /// The registry has none: the archive was added to the `sha256-<hex>` fallback index.
    FallbackIndexUpdated,
    /// The fallback index listed the archive already.
    FallbackIndexUnchanged,
    /// An OCI layout: the `index.json` entry (with `artifactType` and annotations) is the listing.
    LayoutIndex,
}

/// The result of a push.
#[derive(Debug, Clone)]
pub struct PushedArchive {
    /// `registry/repo:key@sha256:<manifest digest>`.
    pub reference: String,
    pub manifest_digest: String,
    /// The referrer entry: manifest descriptor with artifactType and annotations.
    pub manifest_descriptor: Descriptor,
    pub layer: Descriptor,
    pub config: ArchiveConfig,
    pub tag: String,
    pub referrers: ReferrersUpdate,
    /// Bytes uploaded (blobs already present are not sent again).
    pub bytes_uploaded: u64,
}

/// An image reference resolved to its manifest(s).
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The digest the reference points at (an index or a single manifest).
    pub digest: String,
    pub media_type: String,
    /// The platform manifests, each with `platform` filled in (from the index entry, or from
    /// the image config for a single-platform image); attestation entries are left out.
    pub manifests: Vec<Descriptor>,
}

impl ResolvedImage {
    /// The platform manifest for `os`/`architecture` (variant ignored when `None`).
    pub fn for_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(p, platform))
        })
    }
}

/// True when `have` satisfies `want` (a `want` without variant accepts any variant).
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && (want.variant.is_none() || have.variant == want.variant)
}

/// The OCI platform of this process (`linux/amd64`, `linux/arm64`, …).
pub fn current_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: std::env::consts::OS.to_string(),
        architecture: architecture.to_string(),
        variant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::ImageIndex;

    #[test]
    fn fallback_tags_and_platforms() {
        assert_eq!(fallback_tag("sha256:abc"), "sha256-abc");
        let p = current_platform();
        assert_eq!(p.os, "linux");
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(platform_matches(
            &arm,
            &Platform {
                variant: None,
                ..arm.clone()
            }
        ));
        assert!(!platform_matches(
            &arm,
            &Platform {
                architecture: "amd64".into(),
                ..arm.clone()
            }
        ));
        let mut index = ImageIndex::empty();
        let mut d = Descriptor::new(media_types::OCI_MANIFEST, "sha256:aa".into(), 1);
        d.platform = Some(arm.clone());
        index.manifests.push(d);
        assert!(pick_platform_archive("r", &index, Some(&arm)).is_ok());
        let e = pick_platform_archive(
            "r",
            &index,
            Some(&Platform {
                architecture: "s390x".into(),
                ..arm
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("it has: linux/arm64"), "{e}");
    }
}
