//! classcache-oci: every byte classcache moves to or from OCI storage — registries, OCI image
//! layouts, Docker credentials — and the one content walk over them. It must not decide which
//! archive a workload uses, nor define formats: those are `classcache-core`'s.

pub mod archive_file;
pub mod content;
pub mod docker_config;
pub mod layout;
pub mod memory;
pub mod registry;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verified;

pub use content::{ContentRef, ContentSource};
pub use memory::MemorySource;
