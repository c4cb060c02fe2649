//! The registry client's transport: URLs, plain HTTP or TLS, sending a request with one auth
//! challenge answered, and naming failures. It must not know what a manifest or blob means.

use super::*;

/// A client for OCI registries, cheap to clone (shares connections and tokens).
#[derive(Clone)]
pub struct RegistryClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) options: RegistryOptions,
    pub(super) docker_config: DockerConfig,
    /// `Authorization` header values by (api host, repository, access).
    pub(super) auth_headers: Mutex<HashMap<(String, String, Access), HeaderValue>>,
}

/// Whether a request reads or writes a repository; tokens are scoped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Access {
    Pull,
    Push,
}

impl Access {
    pub(super) fn action(self) -> &'static str {
        match self {
            Access::Pull => "pulling from",
            Access::Push => "pushing to",
        }
    }
}

impl RegistryClient {
    /// A client with the given options; reads the Docker config once, here.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let docker_config = match &options.docker_config {
            Some(path) => DockerConfig::load(path)?,
            None => DockerConfig::load_default()?,
        };
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("classcache/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            // No request follows a redirect by itself: only blob GETs do, by `get_blob`'s rules.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(60));
        if let Some(timeout) = options.read_timeout {
            http = http.read_timeout(timeout);
        }
        let http = http.build().map_err(|e| RegistryError::Protocol {
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

    pub(super) fn scheme(&self, r: &RegistryRef) -> &'static str {
        if self.plain_http_allowed(r) {
            "http"
        } else {
            "https"
        }
    }

    /// Loopback, a registry configured insecure, or every one (`insecure_all`).
    fn plain_http_allowed(&self, r: &RegistryRef) -> bool {
        let o = &self.inner.options;
        o.insecure_all || r.is_loopback() || o.insecure_registries.iter().any(|h| h == &r.registry)
    }

    /// A blob `GET`, following the registry's redirects (to a CDN or object store, say) under
    /// rules that keep the node's credentials and the transport safe: at most
    /// [`MAX_BLOB_REDIRECTS`] hops, no credentials to the target (its URL is its own
    /// authorization), https unless the target is loopback or configured insecure, no user
    /// name in the target URL. Bytes from anywhere are checked against the digest by the caller.
    pub(super) async fn get_blob(
        &self,
        r: &RegistryRef,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut resp = self
            .send(r, Access::Pull, Method::GET, url, headers.clone(), None)
            .await?;
        let mut at = Url::parse(url).map_err(|e| RegistryError::Protocol {
            reference: r.to_string(),
            problem: format!("bad blob URL {url}: {e}"),
        })?;
        for hop in 0.. {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let refuse = |problem: String| RegistryError::Protocol {
                reference: r.to_string(),
                problem: format!("blob redirect from {at}: {problem}; nothing was fetched from it"),
            };
            if hop == MAX_BLOB_REDIRECTS {
                return Err(refuse(format!("more than {MAX_BLOB_REDIRECTS} redirects")));
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| refuse("no Location header".into()))?;
            let target = at
                .join(location)
                .map_err(|e| refuse(format!("bad Location {location:?}: {e}")))?;
            check_redirect_target(&target, |authority| {
                self.plain_http_allowed(&RegistryRef {
                    registry: authority.to_string(),
                    repository: r.repository.clone(),
                    tag: None,
                    digest: None,
                })
            })
            .map_err(refuse)?;
            // Only the caller's own headers (Range): never Authorization.
            resp = self
                .inner
                .http
                .get(target.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(|e| self.unreachable(r, target.as_str(), e))?;
            at = target;
        }
        unreachable!("the loop returns")
    }

    pub(super) fn url(&self, r: &RegistryRef, path: &str) -> String {
        format!(
            "{}://{}/v2/{}/{}",
            self.scheme(r),
            r.api_host(),
            r.repository,
            path
        )
    }

    /// The credentials for `r`'s registry. A Docker credential helper is a process that may
    /// take seconds to answer: it runs on a blocking thread, not on the runtime.
    pub(super) async fn credentials(&self, r: &RegistryRef) -> Result<Credentials, RegistryError> {
        if let Some(c) = self.inner.options.credentials.get(&r.registry) {
            return Ok(c.clone());
        }
        let (client, registry) = (self.clone(), r.registry.clone());
        let found = tokio::task::spawn_blocking(move || {
            client.inner.docker_config.credentials_for(&registry)
        })
        .await
        .expect("the credentials lookup does not panic");
        Ok(found?)
    }

    pub(super) fn unreachable(
        &self,
        r: &RegistryRef,
        url: &str,
        e: reqwest::Error,
    ) -> RegistryError {
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

    pub(super) fn cached_auth(&self, r: &RegistryRef, access: Access) -> Option<HeaderValue> {
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
    pub(super) async fn send(
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
    pub(super) async fn fail(
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
    pub(super) async fn read_limited(
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
}

/// Redirect hops a blob `GET` follows; a registry's CDN takes one.
pub(super) const MAX_BLOB_REDIRECTS: usize = 3;

/// A redirect target a blob `GET` may follow: http(s), no user name or password, and https
/// unless `plain_http_allowed(host[:port])`.
fn check_redirect_target(
    target: &Url,
    plain_http_allowed: impl Fn(&str) -> bool,
) -> Result<(), String> {
    if !target.username().is_empty() || target.password().is_some() {
        return Err(format!("the target {target} carries credentials"));
    }
    let host = target
        .host_str()
        .ok_or_else(|| format!("the target {target} names no host"))?;
    let authority = match target.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    match target.scheme() {
        "https" => Ok(()),
        "http" if plain_http_allowed(&authority) => Ok(()),
        "http" => Err(format!(
            "the target {target} is plain HTTP and {authority} is not a registry configured insecure"
        )),
        other => Err(format!("the target {target} uses {other}:, not https")),
    }
}

/// The `Content-Length` header itself: for `HEAD` answers reqwest's `content_length()` is the
/// (empty) body's length, not the size of the object.
pub(super) fn header_length(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(super) fn snippet(body: &str) -> String {
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
    fn redirect_targets_are_https_without_credentials() {
        let insecure = |a: &str| a == "127.0.0.1:9000" || a == "[::1]:9000";
        let check = |u: &str| check_redirect_target(&Url::parse(u).unwrap(), insecure);
        assert!(check("https://cdn.example/blob?sig=1").is_ok());
        assert!(check("http://127.0.0.1:9000/b").is_ok());
        assert!(check("http://[::1]:9000/b").is_ok());
        for bad in [
            "http://cdn.example/b",
            "http://127.0.0.1:9001/b",
            "https://user:pw@cdn.example/b",
            "https://user@cdn.example/b",
            "ftp://cdn.example/b",
            "file:///etc/passwd",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check("http://cdn.example/b")
            .unwrap_err()
            .contains("plain HTTP"));
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
