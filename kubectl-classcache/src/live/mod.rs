//! Live mode: reads and writes workloads through the Kubernetes API (kube), with optimistic
//! concurrency, dry runs and the `classcache` field manager. It must not edit pod templates
//! itself (core does) nor overwrite a concurrent change.

mod cluster;
mod edit;
mod image_volume;
mod install;
mod status;

pub use edit::edit;
pub use install::{install, uninstall};
pub use status::status;
