//! The contracts with `classcache-fetcher`, each written once for both sides: its HTTP API (`http`) and its init command line (`args`); the pure half of its page-sharing stats (`sharing`); and how a blob is cut into stripes (`stripes`).
//! It only names, builds and parses; it must not do I/O.

pub mod args;
pub mod http;
pub mod sharing;
pub mod stripes;
