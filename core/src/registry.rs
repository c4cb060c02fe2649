//! Registry I/O over the OCI distribution API: push, find, resolve and pull archive artifacts,
//! stream blobs. It speaks HTTP only; it must not decide which archive a workload should use.
//!
//! Blobs go up as one streamed monolithic `PUT` from the file (constant memory) and come down as
//! streams hashed on the fly. The manifest, and so the tag, is written only once every blob it
//! names is confirmed present, and the referrers tag-schema fallback index is kept up to date
//! when the registry has no referrers API (CNCF distribution 2.8 answers 404 there).

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
/// Read buffer of streamed blob uploads.
const UPLOAD_CHUNK: usize = 256 * 1024;
/// How often the fallback index update is re-read and retried when another pusher raced it.
const FALLBACK_INDEX_ATTEMPTS: usize = 4;

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

/// Whether a request reads or writes a repository; tokens are scoped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn action(self) -> &'static str {
        match self {
            Access::Pull => "pulling from",
            Access::Push => "pushing to",
        }
    }
}

/// A client for OCI registries, cheap to clone (shares connections and tokens).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    options: RegistryOptions,
    docker_config: DockerConfig,
    /// `Authorization` header values by (api host, repository, access).
    auth_headers: Mutex<HashMap<(String, String, Access), HeaderValue>>,
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

/// A blob's bytes as a stream, from `offset` on.
pub struct BlobStream {
    /// Where the stream starts in the blob: the offset asked for, or 0 when the registry
    /// ignored the Range header and sends the whole blob.
    pub offset: u64,
    /// The whole blob's size when the registry said it.
    pub total_size: Option<u64>,
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("offset", &self.offset)
            .field("total_size", &self.total_size)
            .finish()
    }
}

/// The `sha256-<hex>` tag of the referrers tag-schema fallback index for a subject digest.
pub fn fallback_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

/// Parses a `WWW-Authenticate` challenge: scheme and `key="value"` parameters.
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

impl RegistryClient {
    /// A client with the given options; reads the Docker config once, here.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let docker_config = match &options.docker_config {
            Some(path) => DockerConfig::load(path)?,
            None => DockerConfig::load_default()?,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("classcache/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| RegistryError::Protocol {
                reference: "(client)".into(),
                problem: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                options,
                docker_config,
                auth_headers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client with default options (Docker config credentials, plain HTTP on loopback only).
    pub fn with_defaults() -> Result<Self, RegistryError> {
        Self::new(RegistryOptions::default())
    }

    fn scheme(&self, r: &RegistryRef) -> &'static str {
        let o = &self.inner.options;
        if o.insecure_all
            || r.is_loopback()
            || o.insecure_registries.iter().any(|h| h == &r.registry)
        {
            "http"
        } else {
            "https"
        }
    }

    fn url(&self, r: &RegistryRef, path: &str) -> String {
        format!(
            "{}://{}/v2/{}/{}",
            self.scheme(r),
            r.api_host(),
            r.repository,
            path
        )
    }

    fn credentials(&self, r: &RegistryRef) -> Result<Credentials, RegistryError> {
        if let Some(c) = self.inner.options.credentials.get(&r.registry) {
            return Ok(c.clone());
        }
        Ok(self.inner.docker_config.credentials_for(&r.registry)?)
    }

    fn unreachable(&self, r: &RegistryRef, url: &str, e: reqwest::Error) -> RegistryError {
        let mut error = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            error = format!("{error}: {s}");
            source = s.source();
        }
        RegistryError::Unreachable {
            registry: r.registry.clone(),
            url: url.to_string(),
            error,
        }
    }

    /// Answers a 401 challenge: Basic credentials, or a Bearer token from the realm.
    async fn authorize(
        &self,
        r: &RegistryRef,
        access: Access,
        challenge: Option<&str>,
    ) -> Result<HeaderValue, RegistryError> {
        let unauthorized = || RegistryError::Unauthorized {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            action: access.action(),
        };
        let creds = self.credentials(r)?;
        let (scheme, params) = parse_challenge(challenge.unwrap_or("Basic"));
        if scheme != "bearer" {
            return match creds {
                Credentials::Basic { username, password } => Ok(basic_header(&username, &password)),
                _ => Err(unauthorized()),
            };
        }
        let realm = params.get("realm").ok_or_else(|| RegistryError::Protocol {
            reference: r.to_string(),
            problem: "the registry's Bearer challenge names no realm".into(),
        })?;
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", r.repository),
            Access::Push => format!("repository:{}:pull,push", r.repository),
        };
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol {
            reference: r.to_string(),
            problem: format!("bad token realm {realm:?}: {e}"),
        })?;
        let request = match &creds {
            Credentials::IdentityToken { token, .. } => {
                let mut form = Url::parse("http://form").expect("static URL");
                form.query_pairs_mut()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair(
                        "service",
                        params.get("service").map(String::as_str).unwrap_or(""),
                    )
                    .append_pair("scope", &scope)
                    .append_pair("client_id", "classcache")
                    .append_pair("refresh_token", token);
                self.inner
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or("").to_string())
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", &scope);
                }
                let req = self.inner.http.get(url.clone());
                match &creds {
                    Credentials::Basic { username, password } => {
                        req.header(AUTHORIZATION, basic_header(username, password))
                    }
                    _ => req,
                }
            }
        };
        url.set_query(None);
        let resp = request
            .send()
            .await
            .map_err(|e| self.unreachable(r, url.as_str(), e))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(unauthorized()),
            StatusCode::FORBIDDEN => {
                return Err(RegistryError::Denied {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    action: access.action(),
                })
            }
            s => {
                let body = resp.text().await.unwrap_or_default();
                return Err(RegistryError::Http {
                    reference: r.to_string(),
                    method: "GET".into(),
                    url: url.to_string(),
                    status: s.as_u16(),
                    body: snippet(&body),
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let answer: TokenAnswer = resp.json().await.map_err(|e| RegistryError::Protocol {
            reference: r.to_string(),
            problem: format!("unreadable token answer from {url}: {e}"),
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                reference: r.to_string(),
                problem: format!("the token service {url} returned no token"),
            })?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RegistryError::Protocol {
                reference: r.to_string(),
                problem: "the token service returned an invalid token".into(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn cached_auth(&self, r: &RegistryRef, access: Access) -> Option<HeaderValue> {
        let key = (r.api_host().to_string(), r.repository.clone(), access);
        self.inner
            .auth_headers
            .lock()
            .expect("auth cache lock")
            .get(&key)
            .cloned()
    }

    /// Sends a request built by `build`, answering one auth challenge; the request must be
    /// rebuildable (no streamed body).
    async fn send(
        &self,
        r: &RegistryRef,
        access: Access,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, RegistryError> {
        let build = |auth: Option<&HeaderValue>| {
            let mut req = self
                .inner
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            req
        };
        let cached = self.cached_auth(r, access);
        let resp = build(cached.as_ref())
            .send()
            .await
            .map_err(|e| self.unreachable(r, url, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header = self.authorize(r, access, challenge.as_deref()).await?;
        self.inner
            .auth_headers
            .lock()
            .expect("auth cache lock")
            .insert(
                (r.api_host().to_string(), r.repository.clone(), access),
                header.clone(),
            );
        let resp = build(Some(&header))
            .send()
            .await
            .map_err(|e| self.unreachable(r, url, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                action: access.action(),
            });
        }
        Ok(resp)
    }

    /// Maps a non-success answer to a named error.
    async fn fail(
        &self,
        r: &RegistryRef,
        access: Access,
        what: &str,
        method: &str,
        url: &str,
        resp: reqwest::Response,
    ) -> RegistryError {
        match resp.status() {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                action: access.action(),
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                action: access.action(),
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                reference: r.to_string(),
                what: what.to_string(),
            },
            status => {
                let body = resp.text().await.unwrap_or_default();
                RegistryError::Http {
                    reference: r.to_string(),
                    method: method.into(),
                    url: url.into(),
                    status: status.as_u16(),
                    body: snippet(&body),
                }
            }
        }
    }

    /// Reads the body, refusing more than `limit` bytes.
    async fn read_limited(
        &self,
        r: &RegistryRef,
        what: &str,
        resp: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(RegistryError::Protocol {
                reference: r.to_string(),
                problem: format!(
                    "the {what} is larger than {limit} bytes; it is not a classcache object"
                ),
            });
        }
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(r, "(body)", e))?;
            if out.len() + chunk.len() > limit {
                return Err(RegistryError::Protocol {
                    reference: r.to_string(),
                    problem: format!(
                        "the {what} is larger than {limit} bytes; it is not a classcache object"
                    ),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    // ---- manifests --------------------------------------------------------------------------

    /// URL and `Accept` header to read the manifest `reference` names.
    fn manifest_request(&self, reference: &RegistryRef) -> (String, HeaderMap) {
        let url = self.url(
            reference,
            &format!("manifests/{}", reference.reference_for_manifest()),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(media_types::MANIFEST_ACCEPT),
        );
        (url, headers)
    }

    /// Reads the manifest or index `reference` names (its digest, else its tag). The body's
    /// sha256 is checked against a pinned digest and against the registry's
    /// `Docker-Content-Digest`; a mismatch is [`ArtifactError::DigestMismatch`].
    pub async fn get_manifest(
        &self,
        reference: &RegistryRef,
    ) -> Result<RawManifest, RegistryError> {
        let (url, headers) = self.manifest_request(reference);
        let resp = self
            .send(reference, Access::Pull, Method::GET, &url, headers, None)
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(reference, Access::Pull, "manifest", "GET", &url, resp)
                .await);
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = self
            .read_limited(reference, "manifest", resp, MAX_MANIFEST_BYTES)
            .await?;
        let digest = sha256_digest(&bytes);
        let name = reference.to_string();
        if let Some(pinned) = &reference.digest {
            artifact::check_digest(&name, "manifest", pinned, digest.clone())?;
        }
        if let Some(header) = header_digest.filter(|h| h.starts_with("sha256:")) {
            artifact::check_digest(&name, "manifest", &header, digest.clone())?;
        }
        let media_type = MediaTypeProbe::media_type_of(&bytes)
            .or(content_type)
            .ok_or_else(|| ArtifactError::MissingMediaType {
                reference: name.clone(),
                what: "manifest",
            })?;
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Whether a manifest exists, and its descriptor (`HEAD`), without reading it.
    pub async fn head_manifest(
        &self,
        reference: &RegistryRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let (url, headers) = self.manifest_request(reference);
        let resp = self
            .send(reference, Access::Pull, Method::HEAD, &url, headers, None)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let h = resp.headers();
                let media_type = h
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(media_types::OCI_MANIFEST);
                let digest = h
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let size = header_length(&resp).unwrap_or(0);
                match digest {
                    Some(d) if size > 0 => Ok(Some(Descriptor::new(
                        media_type.split(';').next().unwrap_or(media_type).trim(),
                        d,
                        size,
                    ))),
                    // Without digest or size in the headers, read the manifest to know them.
                    _ => Ok(Some(self.get_manifest(reference).await?.descriptor())),
                }
            }
            _ => Err(self
                .fail(reference, Access::Pull, "manifest", "HEAD", &url, resp)
                .await),
        }
    }

    /// Writes a manifest under `reference`'s tag (or digest) and returns its digest. The caller
    /// makes sure every blob it names is present first.
    pub async fn put_manifest(
        &self,
        reference: &RegistryRef,
        media_type: &str,
        body: Bytes,
    ) -> Result<String, RegistryError> {
        Ok(self
            .put_manifest_with_headers(reference, media_type, body)
            .await?
            .0)
    }

    async fn put_manifest_with_headers(
        &self,
        reference: &RegistryRef,
        media_type: &str,
        body: Bytes,
    ) -> Result<(String, HeaderMap), RegistryError> {
        let digest = sha256_digest(&body);
        let url = self.url(
            reference,
            &format!("manifests/{}", reference.reference_for_manifest()),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::Protocol {
                reference: reference.to_string(),
                problem: format!("bad media type {media_type:?}"),
            })?,
        );
        let resp = self
            .send(
                reference,
                Access::Push,
                Method::PUT,
                &url,
                headers,
                Some(body),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(reference, Access::Push, "manifest", "PUT", &url, resp)
                .await);
        }
        if let Some(stored) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            artifact::check_digest(
                &reference.to_string(),
                "stored manifest",
                stored,
                digest.clone(),
            )?;
        }
        Ok((digest, resp.headers().clone()))
    }

    // ---- blobs ------------------------------------------------------------------------------

    /// The size of blob `digest` in `repository` if it is there (`HEAD`).
    pub async fn blob_size(
        &self,
        repository: &RegistryRef,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let resp = self
            .send(
                repository,
                Access::Pull,
                Method::HEAD,
                &url,
                HeaderMap::new(),
                None,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(header_length(&resp).unwrap_or(0))),
            _ => Err(self
                .fail(repository, Access::Pull, "blob", "HEAD", &url, resp)
                .await),
        }
    }

    /// Opens an upload session (`POST …/blobs/uploads/`) and returns its location.
    async fn start_upload(&self, repository: &RegistryRef) -> Result<Url, RegistryError> {
        let url = self.url(repository, "blobs/uploads/");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .send(repository, Access::Push, Method::POST, &url, headers, None)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self
                .fail(
                    repository,
                    Access::Push,
                    "upload session",
                    "POST",
                    &url,
                    resp,
                )
                .await);
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                reference: repository.to_string(),
                problem: "the registry opened an upload without a Location header".into(),
            })?;
        Url::parse(&url)
            .and_then(|base| base.join(location))
            .map_err(|e| RegistryError::Protocol {
                reference: repository.to_string(),
                problem: format!("bad upload location {location:?}: {e}"),
            })
    }

    /// Uploads a blob from a stream in one streamed `PUT` (monolithic upload): constant memory.
    pub async fn push_blob_stream<S>(
        &self,
        repository: &RegistryRef,
        descriptor: &Descriptor,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let mut location = self.start_upload(repository).await?;
        location
            .query_pairs_mut()
            .append_pair("digest", &descriptor.digest);
        let mut req = self
            .inner
            .http
            .put(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, descriptor.size)
            .body(reqwest::Body::wrap_stream(body));
        // The POST above answered any challenge; a stream cannot be replayed, so use its answer.
        if let Some(auth) = self.cached_auth(repository, Access::Push) {
            req = req.header(AUTHORIZATION, auth);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.unreachable(repository, location.as_str(), e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .fail(
                    repository,
                    Access::Push,
                    "upload session",
                    "PUT",
                    location.as_str(),
                    resp,
                )
                .await);
        }
        Ok(())
    }

    /// Uploads the file at `path` as blob `descriptor` unless the registry has it; streamed
    /// from disk. Returns the bytes sent (0 when it was there).
    pub async fn push_blob_file(
        &self,
        repository: &RegistryRef,
        descriptor: &Descriptor,
        path: &Path,
    ) -> Result<u64, RegistryError> {
        if self.blob_size(repository, &descriptor.digest).await? == Some(descriptor.size) {
            return Ok(0);
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| RegistryError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK);
        self.push_blob_stream(repository, descriptor, stream)
            .await?;
        Ok(descriptor.size)
    }

    /// Uploads a small blob from memory unless the registry has it. Returns the bytes sent.
    pub async fn push_blob_bytes(
        &self,
        repository: &RegistryRef,
        descriptor: &Descriptor,
        body: Bytes,
    ) -> Result<u64, RegistryError> {
        if self.blob_size(repository, &descriptor.digest).await? == Some(descriptor.size) {
            return Ok(0);
        }
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        self.push_blob_stream(repository, descriptor, stream)
            .await?;
        Ok(descriptor.size)
    }

    /// Streams blob `digest` of `repository` from byte `offset` on (HTTP Range). The bytes are
    /// not verified here: a caller that reads the whole blob checks its sha256 (the fetcher
    /// hashes as it writes; [`RegistryClient::pull_archive`] does it for archives).
    pub async fn blob_stream(
        &self,
        repository: &RegistryRef,
        digest: &str,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                reqwest::header::RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-"))
                    .expect("digits are a valid header"),
            );
        }
        let resp = self
            .send(repository, Access::Pull, Method::GET, &url, headers, None)
            .await?;
        let (start, total_size) = match resp.status() {
            StatusCode::OK => (0, resp.content_length()),
            StatusCode::PARTIAL_CONTENT => {
                let total = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|t| t.parse().ok());
                (offset, total)
            }
            _ => {
                return Err(self
                    .fail(
                        repository,
                        Access::Pull,
                        &format!("blob {digest}"),
                        "GET",
                        &url,
                        resp,
                    )
                    .await)
            }
        };
        let this = self.clone();
        let repo = repository.clone();
        let stream = resp
            .bytes_stream()
            .map_err(move |e| this.unreachable(&repo, "(blob body)", e));
        Ok(BlobStream {
            offset: start,
            total_size,
            stream: Box::pin(stream),
        })
    }

    /// Reads a small blob (config) and checks it against its descriptor.
    pub async fn get_blob_bytes(
        &self,
        repository: &RegistryRef,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let url = self.url(repository, &format!("blobs/{}", descriptor.digest));
        let resp = self
            .send(
                repository,
                Access::Pull,
                Method::GET,
                &url,
                HeaderMap::new(),
                None,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .fail(
                    repository,
                    Access::Pull,
                    &format!("blob {}", descriptor.digest),
                    "GET",
                    &url,
                    resp,
                )
                .await);
        }
        let bytes = self
            .read_limited(repository, "blob", resp, MAX_MANIFEST_BYTES)
            .await?;
        artifact::check_blob(
            &repository.with_digest(&descriptor.digest).to_string(),
            "blob",
            descriptor,
            &bytes,
        )?;
        Ok(bytes)
    }

    // ---- archives ---------------------------------------------------------------------------

    /// Pushes a prepared archive to `repository` tagged `tag` (normally the key): blobs first
    /// (streamed, skipped when present), then a check that each is present with its size, then
    /// the manifest, then the referrers fallback index when the registry has no referrers API.
    /// A failure before the manifest leaves no tag; the subject must be in `repository`.
    pub async fn push_prepared(
        &self,
        repository: &RegistryRef,
        prepared: &PreparedArchive,
        tag: &str,
    ) -> Result<PushedArchive, RegistryError> {
        let repo = repository.repository_only();
        let mut bytes_uploaded = self
            .push_blob_file(
                &repo,
                &prepared.layer_descriptor,
                prepared.layer_file.path(),
            )
            .await?;
        bytes_uploaded += self
            .push_blob_bytes(
                &repo,
                &prepared.config_descriptor,
                Bytes::from(prepared.config_json.clone()),
            )
            .await?;
        for blob in [&prepared.layer_descriptor, &prepared.config_descriptor] {
            if self.blob_size(&repo, &blob.digest).await? != Some(blob.size) {
                return Err(RegistryError::BlobMissingAfterPush {
                    reference: repo.to_string(),
                    digest: blob.digest.clone(),
                });
            }
        }
        let tagged = repo.with_tag(tag);
        let (manifest_digest, headers) = self
            .put_manifest_with_headers(
                &tagged,
                media_types::OCI_MANIFEST,
                Bytes::from(prepared.manifest_json.clone()),
            )
            .await?;
        let subject = prepared
            .manifest
            .subject
            .as_ref()
            .expect("prepared archives have a subject");
        let referrers = if headers.contains_key("oci-subject") {
            ReferrersUpdate::NativeApi
        } else {
            self.add_to_referrers(&repo, &subject.digest, &prepared.manifest_descriptor)
                .await?
        };
        Ok(PushedArchive {
            reference: format!("{}@{manifest_digest}", tagged),
            manifest_digest,
            manifest_descriptor: prepared.manifest_descriptor.clone(),
            layer: prepared.layer_descriptor.clone(),
            config: prepared.config.clone(),
            tag: tag.to_string(),
            referrers,
            bytes_uploaded,
        })
    }

    /// Packs `archive_path` and pushes it with `config` to `repository`, tagged with the key.
    /// `subject` is the app image's platform manifest descriptor; when `None` it is looked up
    /// as `repository@config.image.digest`. The layer is packed into a temporary file first.
    pub async fn push_archive(
        &self,
        repository: &RegistryRef,
        config: ArchiveConfig,
        archive_path: &Path,
        subject: Option<Descriptor>,
    ) -> Result<PushedArchive, RegistryError> {
        let repo = repository.repository_only();
        let subject = match subject {
            Some(s) => s,
            None => self
                .head_manifest(&repo.with_digest(&config.image.digest))
                .await?
                .ok_or_else(|| RegistryError::SubjectNotFound {
                    reference: repo.to_string(),
                    repository: repo.to_string(),
                    digest: config.image.digest.clone(),
                })?,
        };
        let tag = config.key.to_string();
        let prepared = prepare_blocking(config, archive_path, subject).await?;
        self.push_prepared(&repo, &prepared, &tag).await
    }

    /// Pushes an index of per-platform archives (from [`artifact::build_archive_index`]) under
    /// each of `tags`, after checking every entry is in the repository, then adds it to the
    /// referrers of its subject (the image index). Returns the index digest.
    pub async fn push_archive_index(
        &self,
        repository: &RegistryRef,
        index: &ImageIndex,
        tags: &[String],
    ) -> Result<String, RegistryError> {
        let repo = repository.repository_only();
        for entry in &index.manifests {
            if self
                .head_manifest(&repo.with_digest(&entry.digest))
                .await?
                .is_none()
            {
                return Err(RegistryError::NotFound {
                    reference: repo.with_digest(&entry.digest).to_string(),
                    what: "archive manifest named by the index".into(),
                });
            }
        }
        let body = serde_json::to_vec(index).expect("an index always serializes");
        let mut digest = String::new();
        for tag in tags {
            digest = self
                .put_manifest(
                    &repo.with_tag(tag),
                    media_types::OCI_INDEX,
                    Bytes::from(body.clone()),
                )
                .await?;
        }
        if let Some(subject) = &index.subject {
            let entry = artifact::referrer_entry(
                media_types::OCI_INDEX,
                &body,
                index.artifact_type.as_deref(),
                &index.annotations,
            );
            self.add_to_referrers(&repo, &subject.digest, &entry)
                .await?;
        }
        Ok(digest)
    }

    /// Whether `repository` has the referrers API: `Some(index)` with the listing when it has.
    pub async fn referrers_api(
        &self,
        repository: &RegistryRef,
        subject_digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<ImageIndex>, RegistryError> {
        let mut url = self.url(repository, &format!("referrers/{subject_digest}"));
        if let Some(t) = artifact_type {
            url = format!("{url}?artifactType={}", t.replace('+', "%2B"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(media_types::OCI_INDEX),
        );
        let resp = self
            .send(repository, Access::Pull, Method::GET, &url, headers, None)
            .await?;
        match resp.status() {
            // The spec's signal for "no referrers API": use the tag schema.
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let body = self
                    .read_limited(repository, "referrers index", resp, MAX_MANIFEST_BYTES)
                    .await?;
                let index: ImageIndex =
                    artifact::parse_json(&body, &repository.to_string(), "referrers index")?;
                Ok(Some(index))
            }
            _ => Err(self
                .fail(repository, Access::Pull, "referrers", "GET", &url, resp)
                .await),
        }
    }

    /// Reads the `sha256-<hex>` fallback index (empty when the tag does not exist).
    pub async fn fallback_index(
        &self,
        repository: &RegistryRef,
        subject_digest: &str,
    ) -> Result<ImageIndex, RegistryError> {
        let tagged = repository.with_tag(&fallback_tag(subject_digest));
        let raw = match self.get_manifest(&tagged).await {
            Ok(raw) => raw,
            Err(RegistryError::NotFound { .. }) => return Ok(ImageIndex::empty()),
            Err(e) => return Err(e),
        };
        if raw.media_type != media_types::OCI_INDEX {
            return Err(RegistryError::Protocol {
                reference: tagged.to_string(),
                problem: format!("the referrers fallback tag holds a {} rather than an OCI index; delete or retag it, then push again", raw.media_type),
            });
        }
        Ok(artifact::parse_json(
            &raw.bytes,
            &tagged.to_string(),
            "referrers fallback index",
        )?)
    }

    /// Makes `entry` findable from `subject_digest`: nothing when the registry has the referrers
    /// API, else read-modify-write of the fallback index, re-read to catch a racing pusher.
    pub async fn add_to_referrers(
        &self,
        repository: &RegistryRef,
        subject_digest: &str,
        entry: &Descriptor,
    ) -> Result<ReferrersUpdate, RegistryError> {
        let repo = repository.repository_only();
        if self
            .referrers_api(&repo, subject_digest, None)
            .await?
            .is_some()
        {
            return Ok(ReferrersUpdate::NativeApi);
        }
        let tagged = repo.with_tag(&fallback_tag(subject_digest));
        let mut updated = false;
        for _ in 0..FALLBACK_INDEX_ATTEMPTS {
            let mut index = self.fallback_index(&repo, subject_digest).await?;
            if !index.add_unique(entry.clone()) {
                return Ok(if updated {
                    ReferrersUpdate::FallbackIndexUpdated
                } else {
                    ReferrersUpdate::FallbackIndexUnchanged
                });
            }
            let body = serde_json::to_vec(&index).expect("an index always serializes");
            self.put_manifest(&tagged, media_types::OCI_INDEX, Bytes::from(body))
                .await?;
            updated = true;
        }
        Err(RegistryError::Protocol {
            reference: tagged.to_string(),
            problem: "other pushes kept replacing the referrers fallback index; push again".into(),
        })
    }

    /// The archives attached to image `image_digest` in `repository`: the referrers API when the
    /// registry has it, else the fallback index; only entries with the archive `artifactType`.
    pub async fn find_archives(
        &self,
        repository: &RegistryRef,
        image_digest: &str,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let repo = repository.repository_only();
        let index = match self
            .referrers_api(
                &repo,
                image_digest,
                Some(media_types::ARCHIVE_ARTIFACT_TYPE),
            )
            .await?
        {
            Some(index) => index,
            None => self.fallback_index(&repo, image_digest).await?,
        };
        Ok(archive_entries(index))
    }

    /// Resolves an image reference (tag or digest) to its platform manifest(s).
    pub async fn resolve_image(&self, image: &RegistryRef) -> Result<ResolvedImage, RegistryError> {
        let raw = self.get_manifest(image).await?;
        if media_types::is_index(&raw.media_type) {
            let index: ImageIndex =
                artifact::parse_json(&raw.bytes, &image.to_string(), "image index")?;
            let manifests = index
                .manifests
                .into_iter()
                .filter(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
                })
                .collect();
            return Ok(ResolvedImage {
                digest: raw.digest,
                media_type: raw.media_type,
                manifests,
            });
        }
        if !media_types::is_image_manifest(&raw.media_type) {
            return Err(ArtifactError::UnknownMediaType {
                reference: image.to_string(),
                what: "image manifest",
                found: raw.media_type,
                expected: media_types::OCI_MANIFEST,
            }
            .into());
        }
        let manifest: ImageManifest =
            artifact::parse_json(&raw.bytes, &image.to_string(), "image manifest")?;
        let config_bytes = self
            .get_blob_bytes(&image.repository_only(), &manifest.config)
            .await?;
        let platform: ImageConfigPlatform =
            artifact::parse_json(&config_bytes, &image.to_string(), "image config")?;
        let mut descriptor = raw.descriptor();
        descriptor.platform = Some(Platform {
            os: platform.os,
            architecture: platform.architecture,
            variant: platform.variant,
        });
        Ok(ResolvedImage {
            digest: raw.digest,
            media_type: raw.media_type,
            manifests: vec![descriptor],
        })
    }

    /// Reads and checks the archive manifest and config `reference` names (tag or digest). When
    /// it names an index of per-platform archives, the entry for `platform` (default: this
    /// machine's) is taken.
    pub async fn fetch_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
    ) -> Result<ArchiveManifest, RegistryError> {
        if reference.tag.is_none() && reference.digest.is_none() {
            return Err(RegistryError::NoTagOrDigest {
                reference: reference.to_string(),
            });
        }
        let repo = reference.repository_only();
        let mut raw = self.get_manifest(reference).await?;
        let mut name = reference.to_string();
        if media_types::is_index(&raw.media_type) {
            let index: ImageIndex = artifact::parse_json(&raw.bytes, &name, "index")?;
            let entry = pick_platform_archive(&name, &index, platform)?;
            let pinned = repo.with_digest(&entry.digest);
            raw = self.get_manifest(&pinned).await?;
            name = pinned.to_string();
        }
        let manifest = artifact::parse_archive_manifest(&raw.bytes, &name)?;
        let config_bytes = self.get_blob_bytes(&repo, &manifest.config).await?;
        let config = artifact::parse_archive_config(&config_bytes, &manifest.config, &name)?;
        Ok(ArchiveManifest {
            reference: repo.with_digest(&raw.digest).to_string(),
            manifest_digest: raw.digest,
            manifest,
            config,
        })
    }

    /// Pulls the archive `reference` names to `dest`: manifest and config checked, the layer
    /// streamed and hashed on the fly, unpacked into a temporary file beside `dest` that is
    /// renamed into place only after layer digest and archive sha256 both match.
    pub async fn pull_archive(
        &self,
        reference: &RegistryRef,
        platform: Option<&Platform>,
        dest: &Path,
    ) -> Result<PulledArchive, RegistryError> {
        let fetched = self.fetch_archive(reference, platform).await?;
        let layer = fetched.layer().clone();
        let mut blob = self
            .blob_stream(&reference.repository_only(), &layer.digest, 0)
            .await?;
        let archive = fetched.config.archive.clone();
        let dest_owned = dest.to_path_buf();
        let name = fetched.reference.clone();
        // The unpacking is blocking (gzip, tar, fsync): it reads the network stream through a
        // small bounded channel, which also gives back-pressure.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let unpack = tokio::task::spawn_blocking(move || {
            artifact::unpack_layer(
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
                &layer,
                &archive,
                &dest_owned,
                &name,
            )
        });
        let mut transfer_error = None;
        while let Some(chunk) = blob.stream.next().await {
            let item = chunk.map_err(|e| {
                let message = e.to_string();
                transfer_error = Some(e);
                std::io::Error::other(message)
            });
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let unpacked = unpack.await.map_err(|e| RegistryError::Protocol {
            reference: fetched.reference.clone(),
            problem: format!("the unpacking task failed: {e}"),
        })?;
        if let Some(e) = transfer_error {
            return Err(e);
        }
        unpacked?;
        Ok(PulledArchive {
            manifest_digest: fetched.manifest_digest,
            config: fetched.config,
            path: dest.to_path_buf(),
        })
    }
}

/// A blocking reader over chunks sent from an async task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs [`artifact::prepare_archive`] on a blocking thread, the layer in the system temp dir.
pub(crate) async fn prepare_blocking(
    config: ArchiveConfig,
    archive_path: &Path,
    subject: Descriptor,
) -> Result<PreparedArchive, ArtifactError> {
    let archive_path = archive_path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        artifact::prepare_archive(config, &archive_path, subject, &std::env::temp_dir())
    })
    .await
    .expect("the packing task does not panic")
}

/// The archive entries of a referrers listing.
pub fn archive_entries(index: ImageIndex) -> Vec<Descriptor> {
    index
        .manifests
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(media_types::ARCHIVE_ARTIFACT_TYPE))
        .collect()
}

/// The entry of an index of per-platform archives for `platform` (default: this machine's).
pub fn pick_platform_archive<'a>(
    reference: &str,
    index: &'a ImageIndex,
    platform: Option<&Platform>,
) -> Result<&'a Descriptor, RegistryError> {
    let want = platform.cloned().unwrap_or_else(current_platform);
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(p, &want))
        })
        .ok_or_else(|| RegistryError::NoArchiveForPlatform {
            reference: reference.to_string(),
            platform: format!("{}/{}", want.os, want.architecture),
            available: index
                .manifests
                .iter()
                .filter_map(|d| {
                    d.platform
                        .as_ref()
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The `Content-Length` header itself: for `HEAD` answers reqwest's `content_length()` is the
/// (empty) body's length, not the size of the object.
fn header_length(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.len() > 300 {
        let mut end = 300;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &body[..end])
    } else {
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("basic", "Registry Realm")
        );
    }

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

    #[test]
    fn loopback_is_plain_http_and_others_https() {
        let c = RegistryClient::new(RegistryOptions {
            insecure_registries: vec!["lab:5000".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.scheme(&"127.0.0.1:5000/a".parse().unwrap()), "http");
        assert_eq!(c.scheme(&"localhost:5000/a".parse().unwrap()), "http");
        assert_eq!(c.scheme(&"lab:5000/a".parse().unwrap()), "http");
        assert_eq!(c.scheme(&"ghcr.io/a".parse().unwrap()), "https");
        assert_eq!(
            c.url(&"busybox".parse().unwrap(), "manifests/latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
    }
}
