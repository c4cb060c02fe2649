//! classcache-fetcher: node cache daemon and init-container mode, I/O around classcache-core.
//! It must not publish a file whose sha256 has not been checked.

fn main() {}
