//! classcache-fetcher as a library: store, serving, ranking, peer-to-peer downloads, discovery and init mode; `main.rs` is a thin command line over it.
//! It must not publish a file whose sha256 has not been checked.

pub mod archive;
pub mod callers;
pub mod cli;
pub mod discovery;
pub mod download;
pub mod follow;
pub mod init;
pub mod locks;
pub mod metrics;
pub mod node;
pub mod peer_client;
pub mod peers;
pub mod pod_watch;
pub mod ranking;
pub mod schedule;
pub mod serve;
pub mod sharing;
pub mod signature;
pub mod sources;
pub mod store;
#[cfg(test)]
pub mod testing;
