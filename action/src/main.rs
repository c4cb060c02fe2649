//! classcache-build: the CI step's command line, a thin shell of I/O around classcache-core.
//! It must not define archive formats, keys or JVM flags itself.

fn main() {}
