//! The HTTP client of other fetchers (the node's `PeerTransport`): blob streams with Range, status and small blobs, over core's HTTP contract.
//! It reports what peers answer; it must not choose peers or trust their bytes.

use crate::download::DownloadError;
use crate::node::BlobRef;
use crate::peers::Peer;
use crate::sources::{NoStatus, PeerStream, PeerTransport, StreamError};
use bytes::Bytes;
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::{
    self as api, BlobStatus, ATTEMPT_HEADER, COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE,
    FROM_HEADER, HOPS_HEADER,
};
use classcache_oci::content::MAX_MANIFEST_BYTES;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use std::time::Duration;

/// How long a peer gets to send a small blob.
const SMALL_BLOB_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence on a peer connection: a parent waiting upstream answers its children's
/// status questions, but a blob stream silent this long is dead.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpPeers {
    http: reqwest::Client,
    /// This node's id, sent for the peers' logs.
    self_id: String,
}

/// An HTTP client for fetchers in the cluster (peers, and the init container's node fetcher).
pub(crate) fn fetcher_http() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(crate::schedule::CONNECT_TIMEOUT)
        // Plain HTTP inside the cluster: loading the system's TLS roots would cost the
        // init container ~150 file reads at every pod start.
        .tls_certs_only([])
}

impl HttpPeers {
    pub fn new(self_id: &str) -> Self {
        let http = fetcher_http()
            .pool_idle_timeout(Duration::from_secs(30))
            .read_timeout(READ_TIMEOUT)
            .build()
            .expect("a plain HTTP client builds");
        Self {
            http,
            self_id: self_id.to_string(),
        }
    }
}

/// A peer's URL for a blob; the query names the pinned archive it is the layer of, from which
/// the peer derives where and how big it is.
pub fn blob_url(peer: &Peer, blob: &BlobRef) -> String {
    format!(
        "{}{}",
        peer.url,
        api::blob_request_path(&blob.digest, &blob.archive.to_string())
    )
}

impl PeerTransport for HttpPeers {
    fn blob<'a>(
        &'a self,
        peer: &'a Peer,
        blob: &'a BlobRef,
        range: std::ops::Range<u64>,
        hops: u32,
        complete_only: bool,
    ) -> BoxFuture<'a, Result<PeerStream, DownloadError>> {
        Box::pin(async move {
            let url = blob_url(peer, blob);
            let mut request = self
                .http
                .get(&url)
                .header(HOPS_HEADER, hops + 1)
                .header(FROM_HEADER, &self.self_id);
            let asked = classcache_core::oci::range_request(range, blob.size);
            if let Some(value) = &asked {
                request = request.header(http::header::RANGE, value);
            }
            if complete_only {
                request = request.header(COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE);
            }
            let response = request
                .send()
                .await
                .map_err(|source| DownloadError::Connect {
                    url: url.clone(),
                    source,
                })?;
            let status = response.status();
            let expected = if asked.is_some() {
                http::StatusCode::PARTIAL_CONTENT
            } else {
                http::StatusCode::OK
            };
            if status == http::StatusCode::SERVICE_UNAVAILABLE {
                return Err(DownloadError::Busy { url });
            }
            if status != expected {
                return Err(DownloadError::Status {
                    url,
                    status,
                    expected,
                });
            }
            let attempt = response
                .headers()
                .get(ATTEMPT_HEADER)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            let stream = response
                .bytes_stream()
                .map_err(|e| Box::new(e) as StreamError)
                .boxed();
            Ok(PeerStream { stream, attempt })
        })
    }

    fn status<'a>(
        &'a self,
        peer: &'a Peer,
        digest: &'a Digest,
        attempt: Option<u64>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<BlobStatus, NoStatus>> {
        Box::pin(async move {
            let response = self
                .http
                .get(format!("{}{}", peer.url, api::status_path(digest, attempt)))
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| {
                    if e.is_connect() && !e.is_timeout() {
                        NoStatus::Refused
                    } else {
                        NoStatus::Silent
                    }
                })?;
            response.json().await.map_err(|_| NoStatus::Silent)
        })
    }

    fn small_blob<'a>(
        &'a self,
        peer: &'a Peer,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let response = self
                .http
                .get(format!("{}{}", peer.url, api::blob_path(digest)))
                .header(COMPLETE_ONLY_HEADER, COMPLETE_ONLY_VALUE)
                .timeout(SMALL_BLOB_TIMEOUT)
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            read_capped(response, MAX_MANIFEST_BYTES).await
        })
    }
}

/// A body of at most `limit` bytes, read chunk by chunk: None as soon as it is longer (a peer
/// answering a huge "manifest" costs no memory).
async fn read_capped(response: reqwest::Response, limit: usize) -> Option<Bytes> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if out.len().saturating_add(chunk.len()) > limit {
            tracing::warn!(
                limit,
                "a peer sent a small object over the cap; ignoring it"
            );
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_at(addr: std::net::SocketAddr) -> Peer {
        Peer {
            id: "parent".into(),
            url: format!("http://{addr}"),
            zone: None,
        }
    }

    #[tokio::test]
    async fn a_status_question_tells_a_gone_fetcher_from_a_silent_one() {
        let peers = HttpPeers::new("child");
        let digest = Digest::of(b"the layer");
        // Nothing listens on the port any more: the fetcher is gone.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = peer_at(closed.local_addr().unwrap());
        drop(closed);
        let timeout = Duration::from_millis(300);
        let answer = peers.status(&gone, &digest, None, timeout).await;
        assert_eq!(answer.unwrap_err(), NoStatus::Refused);
        // It accepts the connection and says nothing: loaded, or wedged; not known gone.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quiet = peer_at(silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let (conn, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let answer = peers.status(&quiet, &digest, None, timeout).await;
        assert_eq!(answer.unwrap_err(), NoStatus::Silent);
        held.abort();
    }
}
