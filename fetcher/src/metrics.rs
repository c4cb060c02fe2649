//! The fetcher's counters and their Prometheus text rendering (written by hand: a few atomics).
//! It only counts and renders; it must not decide anything from the numbers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds, in seconds, of the fetch-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why a peer transfer failed; one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerFailure {
    Connect,
    Status,
    Busy,
    Stalled,
    Truncated,
    DigestMismatch,
}

impl PeerFailure {
    const ALL: [PeerFailure; 6] = [
        Self::Connect,
        Self::Status,
        Self::Busy,
        Self::Stalled,
        Self::Truncated,
        Self::DigestMismatch,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Status => "status",
            Self::Busy => "busy",
            Self::Stalled => "stalled",
            Self::Truncated => "truncated",
            Self::DigestMismatch => "digest_mismatch",
        }
    }
}

/// Errors that are not a peer's fault; one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Registry,
    NotAnArchive,
    DiskFull,
    Store,
    Exhausted,
    /// A request for a registry outside `--allowed-registry`.
    RegistryNotAllowed,
    /// An archive whose config carries options no archive needs.
    RefusedOptions,
    /// An archive without a valid signature under `--require-signature`.
    Unsigned,
}

impl ErrorKind {
    const ALL: [ErrorKind; 8] = [
        Self::Registry,
        Self::NotAnArchive,
        Self::DiskFull,
        Self::Store,
        Self::Exhausted,
        Self::RegistryNotAllowed,
        Self::RefusedOptions,
        Self::Unsigned,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::NotAnArchive => "not_an_archive",
            Self::DiskFull => "disk_full",
            Self::Store => "store",
            Self::Exhausted => "no_source_left",
            Self::RegistryNotAllowed => "registry_not_allowed",
            Self::RefusedOptions => "refused_options",
            Self::Unsigned => "unsigned",
        }
    }
}

/// Why a caller got 403; one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NotAPeer,
    NotOnThisNode,
    NotPinned,
    /// A caller that is neither the API server nor a peer asked for page-sharing stats.
    NotAStatsReader,
}

impl Denial {
    const ALL: [Denial; 4] = [
        Self::NotAPeer,
        Self::NotOnThisNode,
        Self::NotPinned,
        Self::NotAStatsReader,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::NotAPeer => "not_a_peer",
            Self::NotOnThisNode => "not_on_this_node",
            Self::NotPinned => "not_pinned",
            Self::NotAStatsReader => "not_a_stats_reader",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    pub bytes_from_registry: AtomicU64,
    pub bytes_from_peers: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub uploads_active: AtomicU64,
    pub uploads_rejected: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub store_bytes: AtomicU64,
    peer_failures: [AtomicU64; PeerFailure::ALL.len()],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    denials: [AtomicU64; Denial::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn peer_failure(&self, why: PeerFailure) {
        self.peer_failures[why as usize].fetch_add(1, Relaxed);
    }

    pub fn peer_failures(&self, why: PeerFailure) -> u64 {
        self.peer_failures[why as usize].load(Relaxed)
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Relaxed)
    }

    pub fn denied(&self, why: Denial) {
        self.denials[why as usize].fetch_add(1, Relaxed);
    }

    pub fn denials(&self, why: Denial) -> u64 {
        self.denials[why as usize].load(Relaxed)
    }

    /// Records how long one archive request took until it was published (hit or miss).
    pub fn observe_fetch(&self, seconds: f64) {
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP classcache_fetcher_bytes_received_total Blob bytes received, by source.\n\
             # TYPE classcache_fetcher_bytes_received_total counter\n\
             classcache_fetcher_bytes_received_total{{source=\"registry\"}} {}\n\
             classcache_fetcher_bytes_received_total{{source=\"peer\"}} {}",
            self.bytes_from_registry.load(Relaxed),
            self.bytes_from_peers.load(Relaxed)
        );
        counter(
            &mut out,
            "classcache_fetcher_bytes_uploaded_total",
            "Blob bytes sent to peers and pods.",
            self.bytes_uploaded.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP classcache_fetcher_uploads_active Transfers being sent right now.\n\
             # TYPE classcache_fetcher_uploads_active gauge\nclasscache_fetcher_uploads_active {}",
            self.uploads_active.load(Relaxed)
        );
        counter(
            &mut out,
            "classcache_fetcher_uploads_rejected_total",
            "Peer requests turned away by the upload cap.",
            self.uploads_rejected.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP classcache_fetcher_archive_requests_total Archive requests, by whether the archive was already published.\n\
             # TYPE classcache_fetcher_archive_requests_total counter\n\
             classcache_fetcher_archive_requests_total{{result=\"hit\"}} {}\n\
             classcache_fetcher_archive_requests_total{{result=\"miss\"}} {}",
            self.hits.load(Relaxed),
            self.misses.load(Relaxed)
        );
        labeled_counter(
            &mut out,
            "classcache_fetcher_peer_failures_total",
            "Failed peer transfers, by reason.",
            "reason",
            PeerFailure::ALL.map(|why| (why.label(), self.peer_failures(why))),
        );
        labeled_counter(
            &mut out,
            "classcache_fetcher_errors_total",
            "Failed fetches and store operations, by kind.",
            "kind",
            ErrorKind::ALL.map(|kind| (kind.label(), self.errors(kind))),
        );
        labeled_counter(
            &mut out,
            "classcache_fetcher_denied_total",
            "Requests refused with 403, by reason.",
            "reason",
            Denial::ALL.map(|why| (why.label(), self.denials(why))),
        );
        counter(
            &mut out,
            "classcache_fetcher_evictions_total",
            "Store entries removed to stay under the size cap.",
            self.evictions.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP classcache_fetcher_store_bytes Bytes held in the store.\n\
             # TYPE classcache_fetcher_store_bytes gauge\nclasscache_fetcher_store_bytes {}",
            self.store_bytes.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP classcache_fetcher_fetch_seconds Time from an archive request until it was published.\n\
             # TYPE classcache_fetcher_fetch_seconds histogram"
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "classcache_fetcher_fetch_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "classcache_fetcher_fetch_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             classcache_fetcher_fetch_seconds_sum {}\n\
             classcache_fetcher_fetch_seconds_count {count}",
            self.latency_sum_micros.load(Relaxed) as f64 / 1e6
        );
        out
    }
}

/// A counter family with one label: its HELP and TYPE lines, then one line per value.
fn labeled_counter<const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: [(&str, u64); N],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::default();
        m.bytes_from_registry.fetch_add(10, Relaxed);
        m.peer_failure(PeerFailure::DigestMismatch);
        m.observe_fetch(0.003);
        m.denied(Denial::NotPinned);
        m.observe_fetch(2.0);
        let text = m.render();
        assert!(text.contains("classcache_fetcher_bytes_received_total{source=\"registry\"} 10"));
        assert!(
            text.contains("classcache_fetcher_peer_failures_total{reason=\"digest_mismatch\"} 1")
        );
        assert!(text.contains("classcache_fetcher_fetch_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("classcache_fetcher_fetch_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("classcache_fetcher_fetch_seconds_count 2"));
        assert!(text.contains("classcache_fetcher_denied_total{reason=\"not_pinned\"} 1"));
    }
}
