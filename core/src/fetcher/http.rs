//! The fetcher's HTTP contract: routes, query parameters, headers, Range syntax and answers, for `serve`, peers, `init` and `kubectl classcache status`.
//! It builds and parses paths, headers and JSON only; it must not do I/O.

use super::stripes::Stripes;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Display, Write as _};

/// Route templates as the fetcher's router declares them; `{digest}` is a `sha256:<hex>` digest.
pub mod routes {
    /// Liveness (the DaemonSet's liveness probe): `ok` unless the process is wedged (its
    /// runtime or store locks stop answering).
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness (the DaemonSet's readiness probe): 503 when the store takes no new files
    /// (not writable, over its size cap, a lock poisoned by a panic).
    pub const READYZ: &str = "/readyz";
    /// Prometheus text.
    pub const METRICS: &str = "/metrics";
    /// A blob's download state on a node ([`super::BlobStatus`]); query [`super::StatusQuery`].
    pub const STATUS: &str = "/v1/status/{digest}";
    /// A blob for peers (GET and HEAD, Range); query [`super::BlobQuery`].
    pub const BLOB: &str = "/v1/blobs/{digest}";
    /// An archive by its pinned digest ([`super::ArchiveAnswer`]); query [`super::ArchiveQuery`].
    pub const ARCHIVE: &str = "/v1/archives/{digest}";
    /// The bytes of a published archive (copy mode; Range).
    pub const ARCHIVE_FILE: &str = "/v1/archives/{digest}/file";
    /// Page sharing of the published archives among this node's pods ([`super::SharingStats`]);
    /// only with `serve --stats`, else 404 with [`super::STATS_OFF`].
    pub const STATS: &str = "/v1/stats";
}

/// The placeholder in [`routes`] that a digest fills.
const DIGEST_PARAM: &str = "{digest}";

/// Request header: how many fetchers this request already went through (stops loops when two
/// nodes briefly disagree about the peer list).
pub const HOPS_HEADER: &str = "x-classcache-hops";
/// Request header: the requesting node's id, for logs.
pub const FROM_HEADER: &str = "x-classcache-from";
/// Request header: answer only from a complete blob, never start a download for it.
pub const COMPLETE_ONLY_HEADER: &str = "x-classcache-complete-only";
/// The value [`COMPLETE_ONLY_HEADER`] is sent with (its presence is what counts).
pub const COMPLETE_ONLY_VALUE: &str = "1";
/// Response header: the id of the download attempt whose bytes a blob stream carries. A child
/// whose stream broke asks the parent's status with it: a discarded attempt means start over.
pub const ATTEMPT_HEADER: &str = "x-classcache-attempt";
/// Content type of [`routes::METRICS`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn route(template: &str, digest: impl Display) -> String {
    template.replace(DIGEST_PARAM, &digest.to_string())
}

/// `GET` it: 200 with an [`ArchiveAnswer`] when the archive `pinned` names is published on the
/// node, 404 when not (what `kubectl classcache status` asks every fetcher).
pub fn archive_path(pinned: impl Display) -> String {
    route(routes::ARCHIVE, pinned)
}

/// Asks the node's fetcher to publish the archive `reference` (`<registry>/<repo>@<pinned>`)
/// pins: `/v1/archives/<pinned>?ref=<reference>`.
pub fn archive_request_path(pinned: impl Display, reference: &str) -> String {
    with_query(
        archive_path(pinned),
        &ArchiveQuery {
            reference: Some(reference.to_string()),
        }
        .pairs(),
    )
}

/// The bytes of the published archive `pinned` names.
pub fn archive_file_path(pinned: impl Display) -> String {
    route(routes::ARCHIVE_FILE, pinned)
}

/// A blob on a peer, only if complete there (send [`COMPLETE_ONLY_HEADER`]).
pub fn blob_path(digest: impl Display) -> String {
    route(routes::BLOB, digest)
}

/// A blob on a peer with what the peer needs to fetch it itself: the pinned archive reference
/// (`<registry>/<repo>@<pinned digest>`) the layer belongs to. The peer derives the repository
/// and the layer's size from that archive's verified manifests, never from the asker.
pub fn blob_request_path(digest: impl Display, archive: &str) -> String {
    with_query(
        blob_path(digest),
        &BlobQuery {
            reference: Some(archive.to_string()),
        }
        .pairs(),
    )
}

/// A blob's status on a node; `attempt` asks whether that attempt was discarded.
pub fn status_path(digest: impl Display, attempt: Option<u64>) -> String {
    with_query(
        route(routes::STATUS, digest),
        &StatusQuery { attempt }.pairs(),
    )
}

fn with_query(mut path: String, pairs: &[(&str, String)]) -> String {
    for (i, (key, value)) in pairs.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str(key);
        path.push('=');
        percent_encode(value, &mut path);
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The `ref=` pair of a query that names a pinned reference.
fn ref_pairs(reference: &Option<String>) -> Vec<(&'static str, String)> {
    reference.iter().map(|r| ("ref", r.clone())).collect()
}

/// Query of [`routes::ARCHIVE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveQuery {
    /// The pinned reference to fetch from; without it the request only asks whether the
    /// archive is published on the node.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

impl ArchiveQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        ref_pairs(&self.reference)
    }
}

/// Query of [`routes::BLOB`]: with it, a node that lacks the blob starts downloading it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobQuery {
    /// The pinned archive reference whose manifest (or, for an index, one of whose platform
    /// manifests) lists the blob as its layer.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

impl BlobQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        ref_pairs(&self.reference)
    }
}

/// Query of [`routes::STATUS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQuery {
    /// The attempt id a child's stream carried ([`ATTEMPT_HEADER`]).
    pub attempt: Option<u64>,
}

impl StatusQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        self.attempt
            .iter()
            .map(|a| ("attempt", a.to_string()))
            .collect()
    }
}

/// What [`routes::ARCHIVE`] answers about a published archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveAnswer {
    /// The archive's own file name (`config.archive.name`) in its directory
    /// (`paths::published_dir_name(pinned)`): the pod sees it at
    /// `paths::pod_archive_path(pinned, file_name)`.
    pub file_name: String,
    pub size: u64,
    /// The archive file's sha256 (hex).
    pub sha256: String,
    /// It was published before this request.
    pub hit: bool,
    /// The artifact's run-time JVM options, `{archive}` standing for the path.
    pub runtime_options: Vec<String>,
}

/// What [`routes::STATUS`] answers, so a child can tell a dead parent from one waiting upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStatus {
    pub complete: bool,
    pub running: bool,
    pub written: u64,
    /// The attempt being downloaded, or the one that completed the blob (if this process did).
    pub attempt: Option<u64>,
    /// Whether the attempt the asker named (`?attempt=`) was discarded for wrong bytes.
    #[serde(default)]
    pub discarded: bool,
    /// While a striped download runs: the bytes of each stripe written, from its start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stripes: Vec<u64>,
}

impl BlobStatus {
    /// The bytes of stripe `j` of `layout` this peer has, when its answer tells.
    pub fn stripe_written(&self, layout: &Stripes, j: usize) -> Option<u64> {
        if self.complete {
            return Some(layout.len(j));
        }
        match self.stripes.len() {
            n if n == layout.count() => self.stripes.get(j).copied(),
            0 if layout.count() == 1 => Some(self.written),
            _ => None,
        }
    }

    /// Whether this peer has all of stripe `j` of `layout`, so it can send it at once.
    pub fn has_stripe(&self, layout: &Stripes, j: usize) -> bool {
        self.stripe_written(layout, j)
            .is_some_and(|w| w >= layout.len(j))
    }
}

/// The body of [`routes::STATS`]'s 404 when the fetcher runs without `--stats`: the fix.
pub const STATS_OFF: &str = "page-sharing stats are off on this fetcher; turn them on with `kubectl classcache install --stats` (it adds hostPID and CAP_SYS_PTRACE to the fetcher, see docs/security.md)";

/// What [`routes::STATS`] answers: for each archive published on the node, the pods whose
/// processes map it and the memory of those mappings (sums of `/proc/<pid>/smaps` entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharingStats {
    /// The node's id (`--node-id`).
    pub node: String,
    pub archives: Vec<ArchiveSharing>,
    /// Processes of this node's pods whose memory maps could not be read (no CAP_SYS_PTRACE,
    /// or they exited while being read): their mappings are missing from the sums.
    pub unreadable: u32,
}

/// One published archive's mappings on a node; the sums are over [`Self::pods`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSharing {
    /// The pinned digest the archive is published under (its directory).
    pub pinned: String,
    pub file_name: String,
    pub pods: Vec<PodSharing>,
    /// Σ Pss in bytes: each shared page counts 1/n in each of the n processes mapping it.
    pub pss: u64,
    /// Σ Rss in bytes: each page counts fully in each process.
    pub rss: u64,
}

/// One pod's processes mapping an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSharing {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    pub processes: u32,
    pub pss: u64,
    pub rss: u64,
}

impl ArchiveSharing {
    /// Σ Pss / Σ Rss: 1 when nothing is shared, 1/n when n processes share every page; `None`
    /// when nothing maps it.
    pub fn pss_per_rss(&self) -> Option<f64> {
        (self.rss > 0).then(|| self.pss as f64 / self.rss as f64)
    }
}

/// A `Range` header the fetcher cannot satisfy (answer 416 with [`unsatisfied_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRange;

impl Display for BadRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported or unsatisfiable Range")
    }
}

impl std::error::Error for BadRange {}

/// Parses `Range: bytes=N-` or `bytes=N-M` (one range: all peers and JVM tooling send) against
/// a `size`-byte body into `start..end` (end exclusive); `None` when there is no header.
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, BadRange> {
    let Some(value) = value else {
        return Ok(None);
    };
    let spec = value.strip_prefix("bytes=").ok_or(BadRange)?;
    let (start, end) = spec.split_once('-').ok_or(BadRange)?;
    let start: u64 = start.trim().parse().map_err(|_| BadRange)?;
    let end: u64 = match end.trim() {
        "" => size.saturating_sub(1),
        e => e
            .parse::<u64>()
            .map_err(|_| BadRange)?
            .min(size.saturating_sub(1)),
    };
    if start >= size || end < start {
        return Err(BadRange);
    }
    Ok(Some((start, end + 1)))
}

/// The `Content-Range` of bytes `start..end` (end exclusive) of a `size`-byte body.
pub fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{}/{size}", end - 1)
}

/// The `Content-Range` of a 416 answer.
pub fn unsatisfied_range(size: u64) -> String {
    format!("bytes */{size}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn paths_fill_the_routes_and_encode_their_queries() {
        assert_eq!(archive_path(D), format!("/v1/archives/{D}"));
        assert_eq!(archive_file_path(D), format!("/v1/archives/{D}/file"));
        assert_eq!(
            archive_request_path(D, &format!("reg:5000/a/b@{D}")),
            format!(
                "/v1/archives/{D}?ref=reg%3A5000%2Fa%2Fb%40sha256%3A{}",
                &D[7..]
            )
        );
        assert_eq!(
            blob_request_path(D, &format!("reg/app@{D}")),
            format!("/v1/blobs/{D}?ref=reg%2Fapp%40sha256%3A{}", &D[7..])
        );
        assert_eq!(status_path(D, None), format!("/v1/status/{D}"));
        assert_eq!(status_path(D, Some(7)), format!("/v1/status/{D}?attempt=7"));
    }

    #[test]
    fn answers_are_camel_case_json() {
        let answer = ArchiveAnswer {
            file_name: "app.jsa".into(),
            size: 3,
            sha256: "cd".into(),
            hit: true,
            runtime_options: vec!["-XX:SharedArchiveFile={archive}".into()],
        };
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["fileName"], "app.jsa");
        assert_eq!(json["runtimeOptions"][0], "-XX:SharedArchiveFile={archive}");
        let status: BlobStatus =
            serde_json::from_str(r#"{"complete":true,"running":false,"written":9,"attempt":null}"#)
                .unwrap();
        assert!(status.complete && !status.discarded);
    }

    #[test]
    fn sharing_stats_are_camel_case_and_give_the_ratio() {
        let a = ArchiveSharing {
            pinned: D.into(),
            file_name: "app.jsa".into(),
            pods: vec![PodSharing {
                pod: "shop/a".into(),
                uid: "u".into(),
                processes: 1,
                pss: 10,
                rss: 20,
            }],
            pss: 10,
            rss: 20,
        };
        assert_eq!(a.pss_per_rss(), Some(0.5));
        assert_eq!(ArchiveSharing::default().pss_per_rss(), None);
        let json = serde_json::to_value(SharingStats {
            node: "n".into(),
            archives: vec![a],
            unreadable: 0,
        })
        .unwrap();
        assert_eq!(json["archives"][0]["fileName"], "app.jsa");
        assert_eq!(json["archives"][0]["pods"][0]["pod"], "shop/a");
        assert_eq!(routes::STATS, "/v1/stats");
    }

    #[test]
    fn a_status_tells_a_stripes_progress_only_in_the_askers_layout() {
        use crate::fetcher::stripes::{Stripes, MIN_STRIPE};
        let layout = Stripes::new(4 * MIN_STRIPE, 4, 4);
        let running = BlobStatus {
            running: true,
            written: MIN_STRIPE + 7,
            stripes: vec![MIN_STRIPE, 7, 0, 0],
            ..BlobStatus::default()
        };
        assert_eq!(running.stripe_written(&layout, 1), Some(7));
        assert!(running.has_stripe(&layout, 0) && !running.has_stripe(&layout, 1));
        // Cut another way (another peer list): no answer, rather than a wrong one.
        assert_eq!(
            running.stripe_written(&Stripes::new(4 * MIN_STRIPE, 2, 4), 1),
            None
        );
        let complete = BlobStatus {
            complete: true,
            ..BlobStatus::default()
        };
        assert!(complete.has_stripe(&layout, 3));
        // One stripe: the plain written count, as fetchers before stripes sent it.
        let one = Stripes::new(100, 8, 8);
        let old = serde_json::from_str::<BlobStatus>(
            r#"{"complete":false,"running":true,"written":42,"attempt":3}"#,
        )
        .unwrap();
        assert_eq!(old.stripe_written(&one, 0), Some(42));
        assert!(!serde_json::to_string(&old).unwrap().contains("stripes"));
    }

    #[test]
    fn ranges_are_single_and_bounded() {
        assert_eq!(parse_range(None, 10), Ok(None));
        let asked = |start, end| crate::oci::range_request(start..end, 10).unwrap();
        assert_eq!(parse_range(Some(&asked(4, 10)), 10), Ok(Some((4, 10))));
        assert_eq!(parse_range(Some(&asked(4, 7)), 10), Ok(Some((4, 7))));
        assert_eq!(crate::oci::range_request(0..10, 10), None);
        assert_eq!(parse_range(Some("bytes=2-100"), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(BadRange));
        assert_eq!(parse_range(Some("bytes=-5"), 10), Err(BadRange));
        assert_eq!(content_range(2, 10, 10), "bytes 2-9/10");
        assert_eq!(unsatisfied_range(10), "bytes */10");
    }
}
