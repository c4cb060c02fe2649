//! Registry I/O over the OCI distribution API: push, find, resolve and pull archive artifacts,
//! stream blobs. It speaks HTTP only; it must not decide which archive a workload should use.
//!
//! Blobs go up as one streamed monolithic `PUT` from the file (constant memory) and come down as
//! streams hashed on the fly. The manifest, and so the tag, is written only once every blob it
//! names is confirmed present, and the referrers tag-schema fallback index is kept up to date
//! when the registry has no referrers API (CNCF distribution 2.8 answers 404 there).

mod archive_index;
mod archives;
mod auth;
mod blobs;
mod client;
mod manifests;
mod referrers;
mod signatures;
mod source;

pub use crate::content::{ArchiveManifest, PulledArchive, RawManifest, ResolvedImage};
pub use archive_index::UpdatedIndex;
pub use client::RegistryClient;
pub use referrers::{archive_entries, fallback_tag};
pub use signatures::PushedSignature;
pub use source::RegistrySource;

/// A blob streamed from a registry.
pub type BlobStream = crate::content::BlobStream<RegistryError>;

use crate::archive_file::PreparedArchive;
use crate::content::MAX_MANIFEST_BYTES;
use crate::docker_config::{Credentials, DockerConfig, DockerConfigError};
use bytes::Bytes;
use classcache_core::artifact::{self, ArchiveConfig, ArtifactError};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageIndex};
use classcache_core::reference::RegistryRef;
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Longest silence while waiting for an answer or for the next bytes of a body: a registry
    /// that accepts and never answers fails the call instead of stalling it. None: no limit
    /// (pushes of large layers over a slow link may wait long for the registry's answer).
    pub read_timeout: Option<std::time::Duration>,
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
    BlobMissingAfterPush { reference: String, digest: Digest },
    #[error("{reference}: the image {digest} is not in {repository}; an archive must be pushed to the repository of the image it was trained in (or pass the subject descriptor)")]
    SubjectNotFound {
        reference: String,
        repository: String,
        digest: String,
    },
    #[error("{reference} names no tag or digest; add `:TAG` or `@sha256:…`")]
    NoTagOrDigest { reference: String },
    #[error("cannot read {path}: {source}; check the file exists and is readable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),
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
    pub manifest_digest: Digest,
    /// The referrer entry: manifest descriptor with artifactType and annotations.
    pub manifest_descriptor: Descriptor,
    pub layer: Descriptor,
    pub config: ArchiveConfig,
    pub tag: String,
    pub referrers: ReferrersUpdate,
    /// Bytes uploaded (blobs already present are not sent again).
    pub bytes_uploaded: u64,
}
