//! The fetcher's HTTP API: blobs for peers (Range, streamed while downloading, upload cap), archives for init containers, health, readiness, metrics.
//! It must not serve bytes of a download attempt that was discarded.

use crate::archive::{ArchiveError, Archives};
use crate::callers::{Callers, Refusal, Wanted};
use crate::follow::Cursor;
use crate::metrics::Metrics;
use crate::node::{Availability, Node, Progress};
use crate::sharing::StatsSource;
use crate::store::ReadGuard;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::{
    self as api, routes, ArchiveAnswer, ArchiveQuery, BlobQuery, StatusQuery, ATTEMPT_HEADER,
    COMPLETE_ONLY_HEADER, HOPS_HEADER,
};
use classcache_core::fetcher::stripes::{upload_cap_for, StripeChoice};
use classcache_core::reference::RegistryRef;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The most a blob upload reads and sends at once: a node forwards what it has, up to this, so
/// it is also the store-and-forward unit of a hop, and each hop of a chain lags its parent by
/// about this much (the fleet simulation uses it as such). 256 KiB cost a 64-host chain of a
/// 64 MB blob a quarter of the transfer time in hops alone.
pub const CHUNK: usize = 64 * 1024;

/// Concurrent uploads to peers, capped by the asked blob's stripe count (a chain's node serves
/// few, a striped one its home stripe's children) unless `--upload-cap` fixes one cap for all.
pub struct UploadCap {
    slots: Arc<Semaphore>,
    total: usize,
    fixed: Option<usize>,
}

impl UploadCap {
    /// `fixed` is `--upload-cap`; without it the slots cover the most stripes `stripes` cuts.
    pub fn new(fixed: Option<usize>, stripes: StripeChoice) -> Self {
        let total = fixed
            .unwrap_or_else(|| upload_cap_for(stripes.most()))
            .max(1);
        Self {
            slots: Arc::new(Semaphore::new(total)),
            total,
            fixed,
        }
    }

    /// The cap for a blob cut into `stripes` stripes.
    pub fn cap(&self, stripes: usize) -> usize {
        self.fixed
            .unwrap_or_else(|| upload_cap_for(stripes))
            .clamp(1, self.total)
    }

    /// A slot for one upload of a blob cut into `stripes` stripes, if under its cap. Two askers
    /// at once may both pass the check: the cap is a spread, not a bound; `total` is the bound.
    fn take(&self, stripes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let in_use = self.total - self.slots.available_permits();
        if in_use >= self.cap(stripes) {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }
}

#[derive(Clone)]
pub struct ServeState {
    pub archives: Arc<Archives>,
    /// Who may ask for what: peers for blobs, this node's pods for the archives they pin.
    pub callers: Arc<Callers>,
    /// Concurrent blob uploads to peers; beyond it peers get 503 and try another source.
    pub uploads: Arc<UploadCap>,
    /// Test only: flip a bit in every chunk sent to peers, to prove they never publish it.
    pub corrupt_uploads: bool,
    /// `--stats`: where page-sharing stats come from; `None`: the stats route answers 404.
    pub stats: Option<Arc<StatsSource>>,
}

impl ServeState {
    fn node(&self) -> &Arc<Node> {
        self.archives.node()
    }
}

pub fn router(state: ServeState) -> Router {
    Router::new()
        .route(routes::HEALTHZ, get(live))
        .route(routes::READYZ, get(ready))
        .route(routes::METRICS, get(metrics))
        .route(routes::STATUS, get(status))
        .route(routes::BLOB, get(blob).head(blob))
        .route(routes::ARCHIVE, get(archive))
        .route(routes::ARCHIVE_FILE, get(archive_file))
        .route(routes::STATS, get(stats))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, format!("{}\n", message.into())).into_response()
}

fn forbidden(refusal: Refusal) -> Response {
    error(StatusCode::FORBIDDEN, refusal.to_string())
}

async fn ready(AxState(s): AxState<ServeState>) -> Response {
    // Ready means the store can take new files: a full or read-only disk makes the node
    // useless as a parent, so peers (via EndpointSlice readiness) route around it.
    match s.node().store.run(|store| store.health()).await {
        Ok(()) => "ready\n".into_response(),
        Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// How long the liveness check waits for the blocking pool and the store's locks.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Liveness: fails only when the process is wedged (the blocking pool or a store lock does not
/// answer), never for a full or read-only store, which readiness reports.
async fn live(AxState(s): AxState<ServeState>) -> Response {
    let answered = tokio::time::timeout(
        LIVENESS_TIMEOUT,
        s.node().store.run(|store| store.locks_answer()),
    )
    .await;
    match answered {
        Ok(()) => "ok\n".into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store's locks did not answer within {LIVENESS_TIMEOUT:?}: the process is wedged"),
        ),
    }
}

async fn metrics(AxState(s): AxState<ServeState>) -> Response {
    (
        [(header::CONTENT_TYPE, api::METRICS_CONTENT_TYPE)],
        s.node().metrics.render(),
    )
        .into_response()
}

/// Page-sharing stats: who maps each published archive and how much of it is shared. Pod names
/// leave the node here, so only stats readers may ask (crate::callers); no archive bytes do.
async fn stats(
    AxState(s): AxState<ServeState>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
) -> Response {
    // Off: say so to anyone (the fix names nothing of the node; and without --stats the
    // fetcher does not know the API server's addresses, so `status` could not be told apart).
    let Some(source) = s.stats.clone() else {
        return error(StatusCode::NOT_FOUND, api::STATS_OFF);
    };
    if let Err(refusal) = s.callers.check_stats_reader(caller.ip()) {
        return forbidden(refusal);
    }
    let (store, callers) = (s.node().store.clone(), s.callers.clone());
    match tokio::task::spawn_blocking(move || source.collect(&store, &callers)).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("collecting stats: {e}"),
        ),
    }
}

/// A rejection built early in a handler (boxed: a response is large).
type Rejected = Box<Response>;

fn parse_digest(d: &str) -> Result<Digest, Rejected> {
    d.parse().map_err(|e: classcache_core::digest::BadDigest| {
        Box::new(error(StatusCode::BAD_REQUEST, e.to_string()))
    })
}

async fn status(
    AxState(s): AxState<ServeState>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(d): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    if let Err(refusal) = s.callers.check_status_reader(caller.ip()) {
        return forbidden(refusal);
    }
    match parse_digest(&d) {
        Ok(digest) => Json(s.node().status(&digest, q.attempt).await).into_response(),
        Err(r) => *r,
    }
}

/// The request's `Range` (the contract's syntax), or the 416 answer.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Rejected> {
    // A header that is not text is no range the contract knows.
    let value = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("\0"));
    api::parse_range(value, size).map_err(|e| {
        let mut r = error(StatusCode::RANGE_NOT_SATISFIABLE, e.to_string());
        if let Ok(v) = HeaderValue::from_str(&api::unsatisfied_range(size)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        Box::new(r)
    })
}

/// Headers and status for bytes `start..end` of a `size`-byte body.
fn ranged(range: Option<(u64, u64)>, size: u64, body: Body) -> Response {
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&api::content_range(start, end, size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    response
}

/// Counts an upload while it lasts.
struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.metrics.uploads_active.fetch_sub(1, Relaxed);
    }
}

async fn blob(
    AxState(s): AxState<ServeState>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    method: Method,
    Path(d): Path<String>,
    Query(q): Query<BlobQuery>,
    headers: HeaderMap,
) -> Response {
    // Blob bytes may be unverified (streamed while downloading) and name any digest: peers only.
    if let Err(refusal) = s.callers.check_peer(caller.ip()) {
        return forbidden(refusal);
    }
    let digest = match parse_digest(&d) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let node = s.node().clone();
    let hops: u32 = headers
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let complete_only = headers.contains_key(COMPLETE_ONLY_HEADER) || method == Method::HEAD;
    if hops > node.config.max_hops {
        return error(
            StatusCode::LOOP_DETECTED,
            format!("{hops} hops: the nodes disagree about the peer list; retry later"),
        );
    }
    let availability = match (node.complete(&digest).await, &q.reference) {
        (Some(complete), _) => Some(complete),
        (None, Some(archive)) if !complete_only => {
            match start_for_peer(&s, archive, &digest, hops).await {
                Ok(available) => available,
                Err(r) => return *r,
            }
        }
        (None, _) => None,
    };
    let not_here = || {
        error(
            StatusCode::NOT_FOUND,
            format!("{digest} is not complete here"),
        )
    };
    let Some(availability) = availability else {
        return not_here();
    };
    let size = match &availability {
        Availability::Complete { size, .. } => *size,
        Availability::InFlight(t) => t.size,
    };
    let range = match parse_range(&headers, size) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    // Complete only: a download in flight qualifies when the asked bytes are all written
    // already (a stripe it finished), so the asker never waits on it.
    if let (true, Availability::InFlight(t)) = (complete_only, &availability) {
        let (start, end) = range.unwrap_or((0, size));
        if !t.progress.borrow().has(start, end) {
            return not_here();
        }
    }
    if method == Method::HEAD {
        return ranged(range, size, Body::empty());
    }
    let stripes = match &availability {
        Availability::Complete { size, .. } => node.stripes_of(*size).count(),
        Availability::InFlight(t) => t.progress.borrow().layout.count(),
    };
    let Some(permit) = s.uploads.take(stripes) else {
        node.metrics.uploads_rejected.fetch_add(1, Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "upload cap reached; try another peer",
        );
    };
    node.metrics.uploads_active.fetch_add(1, Relaxed);
    let slot = UploadSlot {
        _permit: permit,
        metrics: node.metrics.clone(),
    };
    let (start, end) = range.unwrap_or((0, size));
    let follow = match availability {
        Availability::Complete { path, .. } => open_complete(&node, path)
            .await
            .map(|(file, guard, _)| Follow::over_file(&node, file, guard, start, end)),
        Availability::InFlight(t) => {
            Ok(Follow::in_flight(&node, &digest, t.subscribe(), start, end))
        }
    };
    let mut follow = match follow {
        Ok(f) => f,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    follow.corrupt = s.corrupt_uploads;
    follow.slot = Some(slot);
    let attempt = follow.cursor.as_ref().and_then(Cursor::attempt);
    let mut response = ranged(range, size, follow.into_body());
    if let Some(attempt) = attempt {
        response
            .headers_mut()
            .insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
    }
    response
}

/// Joins or starts the download of `digest` for a peer, which names the pinned archive the
/// blob is the layer of: where it is and how big come from that archive's verified manifests.
async fn start_for_peer(
    s: &ServeState,
    archive: &str,
    digest: &Digest,
    hops: u32,
) -> Result<Option<Availability>, Rejected> {
    let node = s.node();
    let archive: RegistryRef =
        archive
            .parse()
            .map_err(|e: classcache_core::reference::ReferenceError| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    format!("ref={archive}: {e}"),
                ))
            })?;
    let blob = s.archives.layer_of(&archive, digest).await.map_err(|e| {
        let status = match e {
            ArchiveError::NotItsLayer { .. } => StatusCode::NOT_FOUND,
            ref e if e.is_refusal() => StatusCode::FORBIDDEN,
            ArchiveError::NotPinned(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        Box::new(error(status, e.to_string()))
    })?;
    if node.downloads_full() && !node.in_flight(digest) {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "every download slot is taken (--max-downloads); try another source",
        )));
    }
    Ok(node.availability(&blob, hops, true).await)
}

async fn archive(
    AxState(s): AxState<ServeState>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(d): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Response {
    // Without `ref=` it only reads a record (is it published here, with what options): it starts
    // nothing and sends no archive bytes, and `kubectl classcache status` asks it through the API
    // server's pod proxy, whose address the fetcher cannot tell from any other caller's.
    let Some(reference) = q.reference else {
        let digest = match parse_digest(&d) {
            Ok(digest) => digest,
            Err(r) => return *r,
        };
        return match s.node().store.run(move |st| st.published(&digest)).await {
            Some(record) => Json(ArchiveAnswer {
                file_name: record.archive.name,
                size: record.archive.size,
                sha256: record.archive.sha256,
                hit: true,
                runtime_options: record.runtime_options,
            })
            .into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!("{d} is not published on this node"),
            ),
        };
    };
    let reference: RegistryRef = match reference.parse() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if reference.digest.as_ref().map(|p| p.to_string()).as_deref() != Some(d.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the path names {d} but ref= pins {:?}", reference.digest),
        );
    }
    if let Err(refusal) = s
        .callers
        .check_pod(caller.ip(), Wanted::Reference(&reference))
        .await
    {
        return forbidden(refusal);
    }
    match s.archives.ensure(&reference).await {
        Ok(p) => Json(ArchiveAnswer {
            file_name: p.record.archive.name,
            size: p.record.archive.size,
            sha256: p.record.archive.sha256,
            hit: p.hit,
            runtime_options: p.record.runtime_options,
        })
        .into_response(),
        Err(e) if e.is_refusal() => error(StatusCode::FORBIDDEN, e.to_string()),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// The bytes of a published archive (copy mode: pods that cannot mount the node's store).
async fn archive_file(
    AxState(s): AxState<ServeState>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(d): Path<String>,
    headers: HeaderMap,
) -> Response {
    let pinned = match parse_digest(&d) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if let Err(refusal) = s
        .callers
        .check_pod(caller.ip(), Wanted::Digest(&pinned))
        .await
    {
        return forbidden(refusal);
    }
    let node = s.node();
    let p = pinned.clone();
    let Some(record) = node.store.run(move |st| st.published(&p)).await else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "{pinned} is not published here; request {}?ref=… first",
                api::archive_path(&pinned)
            ),
        );
    };
    let path = node.store.published_path(&pinned, &record.archive.name);
    let (file, guard, size) = match open_complete(node, path).await {
        Ok(opened) => opened,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let range = match parse_range(&headers, size) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let (start, end) = range.unwrap_or((0, size));
    ranged(
        range,
        size,
        Follow::over_file(node, file, guard, start, end).into_body(),
    )
}

/// Opens a complete store file on the blocking pool, kept from eviction while the guard lives;
/// with its size.
async fn open_complete(node: &Arc<Node>, path: PathBuf) -> std::io::Result<(File, ReadGuard, u64)> {
    let guard = node.store.guard(&path);
    let (file, size) = node
        .store
        .run(move |_| {
            let file = File::open(&path)?;
            let size = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, size))
        })
        .await?;
    Ok((file, guard, size))
}

/// A response body over a cursor: a complete file, or a download still in progress (children
/// get bytes while the parent still downloads).
struct Follow {
    node: Arc<Node>,
    /// None only while a read runs on the blocking pool.
    cursor: Option<Cursor>,
    corrupt: bool,
    slot: Option<UploadSlot>,
    _guard: Option<ReadGuard>,
}

impl Follow {
    fn over_file(node: &Arc<Node>, file: File, guard: ReadGuard, start: u64, end: u64) -> Self {
        Self {
            node: node.clone(),
            cursor: Some(Cursor::over_file(&node.store, file, start, end)),
            corrupt: false,
            slot: None,
            _guard: Some(guard),
        }
    }

    fn in_flight(
        node: &Arc<Node>,
        digest: &Digest,
        progress: watch::Receiver<Progress>,
        start: u64,
        end: u64,
    ) -> Self {
        Self {
            node: node.clone(),
            cursor: Some(Cursor::over_transfer(
                &node.store,
                digest,
                progress,
                start,
                end,
            )),
            corrupt: false,
            slot: None,
            _guard: None,
        }
    }

    fn into_body(self) -> Body {
        let stream = futures_util::stream::unfold(self, |mut f| async move {
            match f.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), f)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "aborting a transfer");
                    Some((Err(e), f))
                }
            }
        });
        // After an error the stream must end: the client sees a truncated body.
        let mut failed = false;
        let stream = futures_util::StreamExt::take_while(stream, move |r| {
            let go = !failed;
            failed |= r.is_err();
            std::future::ready(go)
        });
        Body::from_stream(stream)
    }

    /// The next bytes: waits on the download's progress here, reads on the blocking pool.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        let mut buf = loop {
            let mut cursor = self.cursor.take().ok_or_else(|| {
                std::io::Error::other("an earlier read of this transfer was interrupted")
            })?;
            if cursor.done() {
                self.cursor = Some(cursor);
                return Ok(None);
            }
            if let Err(e) = cursor.wait_readable().await {
                self.cursor = Some(cursor);
                return Err(e);
            }
            let (cursor, read) = match tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; ((cursor.end - cursor.pos) as usize).min(CHUNK)];
                let read = cursor.read_blocking(&mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                (cursor, read)
            })
            .await
            {
                Ok(done) => done,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            self.cursor = Some(cursor);
            let buf = read?;
            if !buf.is_empty() {
                break buf;
            }
        };
        let len = buf.len();
        if self.corrupt {
            buf[0] ^= 0x01;
        }
        if self.slot.is_some() {
            self.node
                .metrics
                .bytes_uploaded
                .fetch_add(len as u64, Relaxed);
        }
        Ok(Some(Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chained_blob_keeps_the_small_cap_while_a_striped_one_gets_room_for_its_children() {
        let caps = UploadCap::new(None, StripeChoice::Auto);
        assert_eq!(caps.cap(1), 4);
        assert_eq!(caps.cap(8), 10);
        let held: Vec<_> = (0..4).map(|_| caps.take(1).expect("under 4")).collect();
        assert!(
            caps.take(1).is_none(),
            "a chain's fifth asker goes elsewhere"
        );
        let more: Vec<_> = (4..10).map(|_| caps.take(8).expect("under 10")).collect();
        assert!(caps.take(8).is_none());
        drop((held, more));
        let fixed = UploadCap::new(Some(3), StripeChoice::Auto);
        assert_eq!(
            (fixed.cap(1), fixed.cap(8)),
            (3, 3),
            "--upload-cap is one cap for all"
        );
        assert_eq!(UploadCap::new(Some(0), StripeChoice::Auto).cap(1), 1);
    }

    #[test]
    fn a_bad_range_is_a_416_naming_the_size() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_range(&h, 10).unwrap(), None);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=4-"));
        assert_eq!(parse_range(&h, 10).unwrap(), Some((4, 10)));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=10-"));
        let r = parse_range(&h, 10).unwrap_err();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */10");
    }
}
