//! kubectl-classcache: the plugin's command line, a thin shell of I/O around classcache-core.
//! It must not hold pod-template edit logic itself; that lives in core.

fn main() {}
