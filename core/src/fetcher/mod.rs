//! The contracts with `classcache-fetcher`, each written once for both sides: its HTTP API (`http`) and its init command line (`args`); and the pure half of its page-sharing stats (`sharing`).
//! It only names, builds and parses; it must not do I/O.

pub mod args;
pub mod http;
pub mod sharing;
