//! The fetcher's only object name: core's validated `sha256:<64 lower-case hex>` digest.
//! It re-exports core's type; it must not define another.

pub use classcache_core::digest::{BadDigest, Digest};
