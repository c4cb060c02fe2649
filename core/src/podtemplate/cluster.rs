//! The names the plugin, the templates and the fetcher agree on in a cluster, and the exact command
//! line of the init container. It only defines names and argument lists; it must not do I/O.

pub use crate::fetcher::args::InitArgs;
use std::fmt;
use std::str::FromStr;

/// Namespace `kubectl classcache install` puts the fetcher in by default.
pub const NAMESPACE: &str = "classcache";
/// Name of the fetcher DaemonSet (also its ServiceAccount, Role and RoleBinding).
///
/// Its container runs (see `templates/daemonset.yaml`, the contract with `classcache-fetcher`):
///
/// ```text
/// classcache-fetcher serve --store /var/lib/classcache --listen 0.0.0.0:8787 --max-size 10Gi \
///     --peers-service classcache-peers --namespace $(POD_NAMESPACE) --node-id $(NODE_NAME)
/// ```
///
/// with `DOCKER_CONFIG=/etc/classcache/registry` (the optional [`REGISTRY_SECRET`], as
/// `config.json`), the store as a hostPath at the same path, readiness `GET /readyz` and liveness `GET /healthz` on the
/// `http` port, and [`fetcher_archive_path`] answering whether an archive is published (the
/// routes are [`crate::fetcher::http`]).
pub const DAEMONSET: &str = "classcache-fetcher";
/// Headless Service whose EndpointSlices list every fetcher: the peer set for ranking.
pub const PEERS_SERVICE: &str = "classcache-peers";
/// Optional Secret holding registry credentials as a Docker `config.json`.
pub const REGISTRY_SECRET: &str = "classcache-registry";
/// Where the fetcher mounts [`REGISTRY_SECRET`]; the fetcher reads `$DOCKER_CONFIG/config.json`.
pub const REGISTRY_CONFIG_DIR: &str = "/etc/classcache/registry";
/// TCP port of the fetcher's HTTP server on the node's host network (peers, init containers).
pub const FETCHER_PORT: u16 = 8787;
/// The fetcher binary inside the fetcher image; both the DaemonSet and the init container run it.
pub const FETCHER_BINARY: &str = "classcache-fetcher";
/// The repository of the fetcher image the project builds (`scripts/fetcher-image.sh` reads
/// the literal on the next line, so the script and the plugin name the same image).
macro_rules! fetcher_image_repository {
    () => {
        "ghcr.io/classcache/classcache-fetcher"
    };
}
/// Repository of the fetcher image; the image is tagged with the workspace version.
pub const DEFAULT_FETCHER_IMAGE_REPOSITORY: &str = fetcher_image_repository!();
/// Fetcher image used when `--fetcher-image` / `--image` is not given: the one
/// `scripts/fetcher-image.sh` builds from this very version of the code.
pub const DEFAULT_FETCHER_IMAGE: &str =
    concat!(fetcher_image_repository!(), ":", env!("CARGO_PKG_VERSION"));
/// Field manager of every write the plugin makes (not `kubectl-…`: Flux strips those).
pub const FIELD_MANAGER: &str = "classcache";
/// Label every object `install` creates carries, so `uninstall` finds exactly those.
pub const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "classcache");
/// Label that selects the fetcher pods.
pub const FETCHER_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "classcache-fetcher");

/// Pod-template annotation pinning each enabled container's archive by digest:
/// a JSON object `{"<container>": "<registry>/<repo>@sha256:<hex>"}`. Pods inherit it, so
/// `status` finds the pods that run with an archive by reading their annotations.
pub const ANNOTATION_ARCHIVE: &str = "classcache.io/archive";
/// Pod-template annotation holding the undo record (JSON): the exact prior values of everything
/// `enable` changed, so `disable` restores the original without any other state.
pub const ANNOTATION_ORIGINAL: &str = "classcache.io/original";
/// Name of the init container `enable` adds.
pub const INIT_CONTAINER: &str = "classcache-init";
/// Name of the pod volume `enable` adds.
pub const VOLUME: &str = "classcache";
/// The environment variable the run-time JVM options are merged into.
pub const JAVA_TOOL_OPTIONS: &str = "JAVA_TOOL_OPTIONS";
/// Default init-container wait for the archive before giving up.
pub const DEFAULT_INIT_TIMEOUT_SECS: u64 = 120;
/// User and group the init container runs as (restricted Pod Security profile: non-root).
pub const INIT_RUN_AS: u64 = 65532;

/// The fetcher's HTTP path that says whether an archive is published on its node; it lives in
/// the HTTP contract, [`crate::fetcher::http::archive_path`] (`status` asks it through the API
/// server's pod proxy).
pub use crate::fetcher::http::archive_path as fetcher_archive_path;

/// The init container's variable holding its node's IP (the downward API's `status.hostIP`).
pub const NODE_IP_ENV: &str = "CLASSCACHE_NODE_IP";

/// The URL an init container reaches its own node's fetcher at: the node's IP and the
/// fetcher's port (the DaemonSet runs on the host network). The kubelet expands `$(…)` in
/// `args`. Chosen over a Service with `internalTrafficPolicy: Local`, which needs cluster DNS
/// and a kube-proxy (or a replacement) on every node; this needs neither (see
/// `tests/harness/README.md` for what was tried on the harness's cluster).
pub fn fetcher_url() -> String {
    format!("http://$({NODE_IP_ENV}):{FETCHER_PORT}")
}

/// How the archive reaches the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Each pinned archive's own directory in the node store is mounted read-only (never the
    /// whole store: a pod sees only what it pins): every pod on a node maps the same file, so its
    /// pages are shared. Needs a namespace that allows hostPath volumes.
    HostPath,
    /// The init container copies the archive from the node fetcher into an emptyDir: works
    /// under the restricted Pod Security profile, without page sharing.
    Copy,
    /// The kubelet mounts the archive's image-volume form (an `image` volume, Kubernetes 1.35+):
    /// no fetcher and no init container; the container runtime pulls it once per node and every
    /// pod on the node maps the same file.
    ImageVolume,
}

impl DeliveryMode {
    pub const ALL: [DeliveryMode; 3] = [Self::HostPath, Self::Copy, Self::ImageVolume];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostPath => "hostpath",
            Self::Copy => "copy",
            Self::ImageVolume => "image-volume",
        }
    }

    /// Whether the pod gets the init container (and so needs the node fetcher).
    pub fn uses_fetcher(self) -> bool {
        self != Self::ImageVolume
    }
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown delivery mode {s:?}; use hostpath, copy or image-volume")
            })
    }
}

/// The init container the pod-template edit adds: the fetcher image, running
/// `classcache-fetcher init` with [`InitArgs`] (the one definition of that command line, parsed
/// by the fetcher with the same clap struct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitContainerSpec {
    pub image: String,
    pub init: InitArgs,
}

impl InitContainerSpec {
    /// The container's `command`.
    pub fn command(&self) -> Vec<String> {
        vec![FETCHER_BINARY.to_string()]
    }

    /// The container's `args`: see [`InitArgs`] for the contract.
    pub fn args(&self) -> Vec<String> {
        self.init.to_args()
    }

    /// Reads a spec back from an init container's `image` and `args` (for `status`).
    pub fn from_args(image: &str, args: &[String]) -> Option<Self> {
        Some(InitContainerSpec {
            image: image.to_string(),
            init: InitArgs::from_args(args).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_args_are_the_documented_contract() {
        let spec = InitContainerSpec {
            image: "fetcher:1".into(),
            init: InitArgs {
                archives: vec![
                    "reg.example/app@sha256:aa".into(),
                    "reg.example/b@sha256:bb".into(),
                ],
                mode: DeliveryMode::Copy,
                dir: "/classcache".into(),
                fetcher_url: fetcher_url(),
                timeout: InitArgs::DEFAULT_TIMEOUT,
                fail_closed: true,
            },
        };
        assert_eq!(
            spec.args().join(" "),
            "init --archive reg.example/app@sha256:aa --archive reg.example/b@sha256:bb --mode copy \
             --dir /classcache --fetcher-url http://$(CLASSCACHE_NODE_IP):8787 --timeout 120s --fail-closed"
        );
        assert_eq!(
            InitContainerSpec::from_args("fetcher:1", &spec.args()),
            Some(spec)
        );
    }
}
