//! classcache-core: the shared truth of classcache as plain functions on data.
//! It defines the key, formats and edits once; it must not talk to Docker or Kubernetes.

pub mod artifact;
pub mod digest;
pub mod docker_config;
pub mod jvm;
pub mod key;
pub mod layout;
pub mod media_types;
pub mod oci;
pub mod paths;
pub mod podtemplate;
pub mod reference;
pub mod registry;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
