//! Registry blobs: presence checks, streamed monolithic uploads, ranged streamed downloads and
//! small digest-checked reads. It must not buffer a large blob in memory.

use super::client::{header_length, Access};
use super::*;

/// Read buffer of streamed blob uploads.
const UPLOAD_CHUNK: usize = 256 * 1024;

impl RegistryClient {
    /// The size of blob `digest` in `repository` if it is there (`HEAD`).
    pub async fn blob_size(
        &self,
        repository: &RegistryRef,
        digest: &Digest,
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
    pub(super) async fn start_upload(
        &self,
        repository: &RegistryRef,
    ) -> Result<Url, RegistryError> {
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
            .append_pair("digest", descriptor.digest.as_str());
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

    /// Streams bytes `range` of the blob `descriptor` names in `repository` (HTTP Range). The
    /// bytes are not verified here: a caller that reads the whole blob checks its sha256 (the
    /// fetcher at commit; [`RegistryClient::pull_archive`] does it for archives).
    pub async fn blob_stream(
        &self,
        repository: &RegistryRef,
        descriptor: &Descriptor,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream, RegistryError> {
        let digest = &descriptor.digest;
        let offset = range.start;
        let url = self.url(repository, &format!("blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if let Some(value) = classcache_core::oci::range_request(range, descriptor.size) {
            headers.insert(
                reqwest::header::RANGE,
                HeaderValue::from_str(&value).expect("digits are a valid header"),
            );
        }
        let resp = self.get_blob(repository, &url, headers).await?;
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
        let resp = self.get_blob(repository, &url, HeaderMap::new()).await?;
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
}
