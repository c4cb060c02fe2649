//! The archive artifact's config: the JSON that says which JVM, image and platform an archive
//! is for and how a JVM uses it. It defines and (de)serializes the config; it must not do I/O.

use crate::digest::Digest;
use crate::key::{AgentIdentity, ArchiveKey, ArchiveKind};
use serde::{Deserialize, Serialize};

pub use crate::platform::Platform;

/// Version of [`ArchiveConfig`]'s schema; readers refuse a config with a newer one.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// The JSON config of an archive artifact (media type [`crate::media_types::ARCHIVE_CONFIG`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveConfig {
    pub schema_version: u32,
    pub key: ArchiveKey,
    pub kind: ArchiveKind,
    pub jvm: JvmIdentity,
    pub platform: Platform,
    pub image: ImageIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// The options the training run added (for the record; they are also in the key).
    pub training_options: Vec<String>,
    /// The options a workload must add at run time, with [`ARCHIVE_PATH_PLACEHOLDER`]
    /// where the archive's path goes (see [`ArchiveConfig::runtime_options_for`]).
    pub runtime_options: Vec<String>,
    /// The archive file inside the layer's tar, and its uncompressed size and sha256.
    pub archive: ArchiveFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// RFC 3339 time the archive was built.
    pub created: String,
}

/// Stands for the archive's path in [`ArchiveConfig::runtime_options`].
pub const ARCHIVE_PATH_PLACEHOLDER: &str = "{archive}";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JvmIdentity {
    /// Feature release, e.g. 17 or 25.
    pub feature_version: u32,
    /// `java.version`, e.g. `17.0.15`.
    pub version: String,
    /// `java.vendor`, e.g. `Debian`.
    pub vendor: String,
    /// `java.vm.version`: the exact build string the archive is bound to.
    pub build: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdentity {
    /// The image reference the build was given (for people; the digest is what counts).
    pub reference: String,
    /// The platform manifest digest: the artifact's `subject`.
    pub digest: Digest,
    /// The entrypoint and command of the training run, to warn when a workload differs.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    #[serde(flatten)]
    pub identity: AgentIdentity,
    /// Where the agent jar sits in the container at run time.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveFile {
    /// File name inside the layer's tar.
    pub name: String,
    pub size: u64,
    /// Lower-case hex sha256 of the uncompressed archive.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub classes_total: u64,
    pub classes_from_archive: u64,
    pub startup_runs: u32,
    pub startup_median_ms_without: f64,
    pub startup_median_ms_with: f64,
}

impl ArchiveConfig {
    /// Refuses run-time options no archive needs (see [`crate::jvm::check_archive_options`]): the
    /// one check `enable` and the fetcher make before an archive reaches a workload.
    pub fn check_runtime_options(&self) -> Result<(), crate::jvm::RefusedOption> {
        let baked_agent = self
            .agent
            .as_ref()
            .filter(|a| a.identity.mode == crate::key::AgentMode::Baked)
            .map(|a| a.path.as_str());
        crate::jvm::check_archive_options(&self.runtime_options, baked_agent)
    }

    /// The run-time JVM options with the archive's path filled in.
    pub fn runtime_options_for(&self, archive_path: &str) -> Vec<String> {
        self.runtime_options
            .iter()
            .map(|o| o.replace(ARCHIVE_PATH_PLACEHOLDER, archive_path))
            .collect()
    }
}
