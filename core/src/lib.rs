//! classcache-core: the shared truth of classcache as plain functions on data.
//! It defines the key, formats and edits once; it must not do I/O of any kind (files, network,
//! processes): that is `classcache-oci`'s and the programs' job.

pub mod allowed_registry;
pub mod artifact;
pub mod digest;
pub mod fetcher;
pub mod jvm;
pub mod key;
pub mod media_types;
pub mod oci;
pub mod paths;
pub mod platform;
pub mod podtemplate;
pub mod reference;
pub mod size;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
