//! The contracts with `classcache-fetcher`, each written once for both sides: its HTTP API (`http`) and its init command line (`args`).
//! It only names, builds and parses; it must not do I/O.

pub mod args;
pub mod http;
