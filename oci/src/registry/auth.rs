//! Registry authentication: parsing `WWW-Authenticate` challenges and answering them with
//! Basic credentials or a Bearer token. It must not cache or print secrets beyond the client's header cache.

use super::client::{snippet, Access};
use super::*;

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

pub(super) fn basic_header(username: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

impl RegistryClient {
    /// Answers a 401 challenge: Basic credentials, or a Bearer token from the realm.
    pub(super) async fn authorize(
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
        let creds = self.credentials(r).await?;
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
}
