//! Pod-template edits: enable and disable classcache on any object with a pod template, as pure
//! functions on JSON values. It must not resolve images, read files or talk to a registry or cluster.
//!
//! `enable` adds the init container (none for an image volume), the volume, a read-only mount and
//! the archive's run-time JVM options (merged into `JAVA_TOOL_OPTIONS`), and records in two pod-template annotations the
//! pinned archives and the exact prior values of everything it changed, so that `disable` needs
//! no other state: `disable(enable(x)) == x` and `enable(enable(x)) == enable(x)`.

pub mod cluster;
mod edit;
pub mod image_volume;
mod locate;
mod options;
#[cfg(test)]
mod tests;

pub use cluster::*;
pub use edit::{
    archives_in_annotation, delivery_mode, disable_object, disable_object_with, disable_template,
    disable_template_with, enable_object, enable_template, enabled_archives, DisableOptions,
};
pub use locate::{containers, object_label, pod_template, pod_template_mut, ContainerView};
pub use options::{command_warning, merge_java_tool_options, quote_option};

/// One container to enable, with the archive it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArchive {
    /// The container's name in the pod template.
    pub container: String,
    /// The archive pinned by digest: `<registry>/<repo>@sha256:<hex>`.
    pub archive: String,
    /// The archive's run-time options, with [`crate::artifact::ARCHIVE_PATH_PLACEHOLDER`] for its path.
    pub runtime_options: Vec<String>,
    /// When set, the container's image is replaced by this digest-pinned reference.
    pub pin_image: Option<String>,
    /// The archive's file name in its layer (`config.archive.name`): where the file sits in
    /// the directory an image volume mounts.
    pub archive_file: String,
    /// The archive's image-volume form pinned by digest (`<registry>/<repo>@sha256:<hex>`), which
    /// [`DeliveryMode::ImageVolume`] mounts; `None` when the archive has none.
    pub image_volume: Option<String>,
    /// The jar of the agent the archive was trained with attached (`config.agent.path`), which
    /// the container must itself run; the edit never adds an agent.
    pub trained_agent: Option<String>,
}

/// Everything `enable` needs beyond the object itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnablePlan {
    pub containers: Vec<ContainerArchive>,
    pub mode: DeliveryMode,
    /// The node store directory (its `published` subdirectory is the hostPath).
    pub node_store_dir: String,
    pub fetcher_image: String,
    pub fetcher_url: String,
    pub timeout_secs: u64,
    pub fail_closed: bool,
    /// `--force`: accept a `JAVA_TOOL_OPTIONS` taken from `valueFrom` (adding a second entry that
    /// expands it) and an agent that differs from the one the archive was trained with (a warning).
    pub force: bool,
}

/// Something `enable` did that the user should know about, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub object: String,
    pub container: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, container {:?}: {}",
            self.object, self.container, self.message
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{object} has no pod template (spec.template, spec.jobTemplate.spec.template or a Pod's spec); only objects that run pods can be enabled")]
    NoPodTemplate { object: String },
    #[error("{object}: container {container:?} does not exist; its containers are {available}; pass one of them with -c")]
    NoSuchContainer {
        object: String,
        container: String,
        available: String,
    },
    #[error("{object}: no container selected; pass -c <container>")]
    NothingSelected { object: String },
    #[error("{object}: container {container:?} takes JAVA_TOOL_OPTIONS from valueFrom, which classcache cannot merge into; set it as a plain value, or pass --force to add a second JAVA_TOOL_OPTIONS entry that expands $(JAVA_TOOL_OPTIONS) and appends the archive's options")]
    ValueFrom { object: String, container: String },
    #[error("{object}: container {container:?} has {count} JAVA_TOOL_OPTIONS entries; keep only one, then retry")]
    DuplicateJavaToolOptions {
        object: String,
        container: String,
        count: usize,
    },
    #[error("{object}: {field} is {found}, not a list; fix the manifest, then retry")]
    NotAList {
        object: String,
        field: String,
        found: String,
    },
    #[error("{object}: {what} {name:?} already exists and was not added by classcache; rename it, then retry")]
    NameTaken {
        object: String,
        what: &'static str,
        name: String,
    },
    #[error("{object}: archive reference {reference:?} is not pinned by digest (<registry>/<repo>@sha256:<64 hex>); resolve it first")]
    UnpinnedArchive { object: String, reference: String },
    #[error("{object}: archive {archive} names its file {name:?}, not a plain file name (no `/`, not empty, not `.`/`..`); build and push it again with classcache-build")]
    BadArchiveFile {
        object: String,
        archive: String,
        name: String,
    },
    #[error("{object}: archive {archive} has no image-volume form (it is an index of per-platform archives, or was pushed by a classcache-build older than image-volume support); push it again with this version's classcache-build, or pass --mode hostpath")]
    NoImageVolume { object: String, archive: String },
    #[error("{object}: container {container:?} {runs}, but its archive was trained with the agent {trained} attached; classcache never adds an agent to a workload (a jar missing from the image stops the JVM): train with the agent the container runs (classcache-build --agent-in-image <its path>), or pass --force to enable anyway (the JVM then skips what it cannot use)")]
    AgentMismatch {
        object: String,
        container: String,
        trained: String,
        runs: String,
    },
    #[error("{object}: container {container:?} runs {current}, not the image enable pinned ({pinned}); disable would roll it back to {original}: pass --keep-image to keep {current}, or set the image you want after disabling")]
    ImageChanged {
        object: String,
        container: String,
        current: String,
        pinned: String,
        original: String,
    },
    #[error("{object}: annotation {annotation} is not a valid classcache record ({reason}); restore the pod template by hand (kubectl rollout history / undo), then remove the classcache.io/ annotations")]
    BadRecord {
        object: String,
        annotation: &'static str,
        reason: String,
    },
}
