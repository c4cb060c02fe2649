//! Registry manifests: read (digest-checked), `HEAD`, and write. It must not decide which
//! manifest an archive is; that is the content walk's job.

use super::client::{header_length, Access};
use super::*;

impl RegistryClient {
    /// URL and `Accept` header to read the manifest `reference` names.
    pub(super) fn manifest_request(&self, reference: &RegistryRef) -> (String, HeaderMap) {
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
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = self
            .read_limited(reference, "manifest", resp, MAX_MANIFEST_BYTES)
            .await?;
        let digest = Digest::of(&bytes);
        let name = reference.to_string();
        if let Some(pinned) = &reference.digest {
            artifact::check_digest(&name, "manifest", pinned, digest.clone())?;
        }
        if let Some(header) = header_digest {
            artifact::check_digest(&name, "manifest", &header, digest.clone())?;
        }
        Ok(RawManifest::from_body(&name, digest, bytes, content_type)?)
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
                    .and_then(|v| v.parse::<Digest>().ok());
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
    ) -> Result<Digest, RegistryError> {
        Ok(self
            .put_manifest_with_headers(reference, media_type, body)
            .await?
            .0)
    }

    pub(super) async fn put_manifest_with_headers(
        &self,
        reference: &RegistryRef,
        media_type: &str,
        body: Bytes,
    ) -> Result<(Digest, HeaderMap), RegistryError> {
        let digest = Digest::of(&body);
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
            let name = reference.to_string();
            match stored.parse::<Digest>() {
                Ok(stored) => {
                    artifact::check_digest(&name, "stored manifest", &stored, digest.clone())?
                }
                Err(_) => {
                    return Err(ArtifactError::DigestMismatch {
                        reference: name,
                        what: "stored manifest",
                        expected: stored.to_string(),
                        actual: digest.to_string(),
                    }
                    .into())
                }
            }
        }
        Ok((digest, resp.headers().clone()))
    }
}
