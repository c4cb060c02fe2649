//! The command line: subcommands, flags and help text, kubectl style.
//! It only declares and parses; it must not act on anything.

use clap::{Args, Parser, Subcommand, ValueEnum};
use classcache_core::podtemplate::{self, DeliveryMode};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  # Enable classcache on a Deployment (finds the image's archive in its registry)
  kubectl classcache enable deploy/my-app

  # Only the JVM container, with a given archive, showing the change without applying it
  kubectl classcache enable deployment my-app -c app --archive registry.example/app@sha256:… --dry-run=client -o yaml

  # Edit manifests in a GitOps repository (multi-document YAML, Lists, Helm output)
  kubectl classcache enable -f k8s/ > k8s-enabled.yaml
  kubectl get deploy my-app -o yaml | kubectl classcache enable -f - | kubectl apply -f -

  # Undo, exactly
  kubectl classcache disable deploy/my-app

  # What runs with which archive
  kubectl classcache status -A

  # Install the node fetcher; it pulls archives only from the registries allowed here
  kubectl classcache install --image registry.example/classcache-fetcher:0.1.0 --allowed-registry registry.example/shop
";

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-classcache",
    bin_name = "kubectl classcache",
    version,
    about = "Deliver trained JVM class-data-sharing / AOT-cache archives to Kubernetes workloads",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add the archive init container, volume and JVM options to workloads
    #[command(after_help = EXAMPLES)]
    Enable(EnableArgs),
    /// Restore workloads exactly as they were before `enable`
    Disable(DisableArgs),
    /// Show enabled workloads: archive, nodes that have it, pods that run with it
    Status(StatusArgs),
    /// Install the node fetcher (namespace, RBAC, DaemonSet, Services)
    Install(InstallArgs),
    /// Remove the node fetcher (refuses while workloads are still enabled, unless --force)
    Uninstall(UninstallArgs),
    /// Print a shell completion script (see `completion --help`)
    Completion(CompletionArgs),
    /// Write the Helm chart generated from the templates `install` renders (scripts/helm-chart.sh)
    #[command(hide = true)]
    HelmChart(HelmChartArgs),
}

const COMPLETION_HELP: &str = "\
Setup:
  # bash (completes kubectl-classcache; `kubectl classcache` goes through kubectl's completion)
  source <(kubectl-classcache completion bash)

  # kubectl 1.26+ completes `kubectl classcache <TAB>` by running kubectl_complete-classcache
  # from PATH; put it next to the plugin (krew: its bin directory)
  kubectl classcache completion kubectl > \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-classcache\"
  chmod +x \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-classcache\"

  # zsh / fish (complete kubectl-classcache)
  kubectl-classcache completion zsh > \"${fpath[1]}/_kubectl-classcache\"
  kubectl-classcache completion fish > ~/.config/fish/completions/kubectl-classcache.fish
";

#[derive(Args, Debug, Clone)]
#[command(after_help = COMPLETION_HELP)]
pub struct CompletionArgs {
    /// bash, zsh or fish: a completion script for `kubectl-classcache`; kubectl: the
    /// `kubectl_complete-classcache` program kubectl 1.26+ runs to complete `kubectl classcache`
    /// (it needs bash)
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Kubectl,
}

#[derive(Args, Debug, Clone)]
pub struct HelmChartArgs {
    /// The chart directory to create (it must not exist, or be empty)
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// TYPE NAME, TYPE/NAME... (deploy/my-app, statefulset db, cronjob/report, rollout/web), or TYPE with -l / --all
    pub targets: Vec<String>,
    /// Manifests to edit instead of a cluster: a file, a directory (*.yaml, *.yml, *.json) or - for stdin; output goes to stdout
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Label selector (key=value, key!=value, key), like kubectl -l
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the given TYPE
    #[arg(long)]
    pub all: bool,
    /// Namespace of the workloads (default: the kubeconfig context's)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// client: print what would be sent; server: let the API server check it without storing it
    #[arg(long, value_enum, default_missing_value = "client", num_args = 0..=1, require_equals = true, default_value = "none")]
    pub dry_run: DryRun,
    /// Print the resulting objects
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Args, Debug, Clone)]
pub struct EnableArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Containers to enable (default: every container whose image has an archive)
    #[arg(short = 'c', long = "container")]
    pub containers: Vec<String>,
    /// The archive to use instead of looking the image up: registry/repo:tag, registry/repo@sha256:…, oci:DIR:TAG
    #[arg(long)]
    pub archive: Option<String>,
    /// hostpath: share the node's copy (pages shared between pods); copy: per-pod emptyDir (restricted
    /// namespaces); image-volume: the kubelet mounts the archive (Kubernetes 1.35+, no fetcher);
    /// auto: image-volume where the cluster supports it, else hostpath
    #[arg(long, value_parser = parse_mode, default_value = "hostpath")]
    pub mode: ModeChoice,
    /// The fetcher image the init container runs
    #[arg(long, default_value = podtemplate::DEFAULT_FETCHER_IMAGE)]
    pub fetcher_image: String,
    /// The fetcher's store directory on the nodes (must match `install --store-dir`)
    #[arg(long, default_value = classcache_core::paths::NODE_STORE_DIR)]
    pub store_dir: String,
    /// How long the init container waits for the archive before the pod starts without it
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub timeout: std::time::Duration,
    /// Keep the pod from starting when the archive cannot be fetched (default: start without it)
    #[arg(long)]
    pub fail_closed: bool,
    /// Replace a moving image tag by the digest the archive was trained on
    #[arg(long)]
    pub pin_image: bool,
    /// Go ahead despite a JAVA_TOOL_OPTIONS taken from valueFrom
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DisableArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Keep a container's current image when it changed since `enable --pin-image` (default:
    /// refuse rather than roll it back)
    #[arg(long)]
    pub keep_image: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// TYPE/NAME or TYPE NAME of one workload (default: every enabled workload)
    pub targets: Vec<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Namespace the fetcher is installed in
    #[arg(long, default_value = podtemplate::NAMESPACE)]
    pub fetcher_namespace: String,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug, Clone)]
pub struct InstallArgs {
    #[command(flatten)]
    pub render: RenderArgs,
    #[arg(long, value_enum, default_missing_value = "client", num_args = 0..=1, require_equals = true, default_value = "none")]
    pub dry_run: DryRun,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// The fetcher image
    #[arg(long, default_value = podtemplate::DEFAULT_FETCHER_IMAGE)]
    pub image: String,
    /// Namespace to install into
    #[arg(short = 'n', long, default_value = podtemplate::NAMESPACE)]
    pub namespace: String,
    /// The store directory on every node (hostPath)
    #[arg(long, default_value = classcache_core::paths::NODE_STORE_DIR)]
    pub store_dir: String,
    /// Most bytes the store keeps on a node before evicting unused archives (e.g. 10Gi, 500Mi)
    #[arg(long, default_value = "10Gi")]
    pub max_size: String,
    /// A Docker config.json with registry credentials, stored as a Secret the fetcher reads
    #[arg(long)]
    pub registry_config: Option<PathBuf>,
    /// An image pull secret for the fetcher image itself
    #[arg(long)]
    pub image_pull_secret: Option<String>,
    /// A registry the fetcher may pull archives from, HOST[:PORT][/repo-prefix] (exact host, the
    /// port as written, whole path segments); repeat for several. Required: the fetcher holds
    /// the cluster's registry credentials, so it speaks to no other registry
    #[arg(
        long = "allowed-registry",
        value_name = "HOST[:PORT][/REPO-PREFIX]",
        required = true
    )]
    pub allowed_registries: Vec<classcache_core::allowed_registry::AllowedRegistry>,
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// Page-sharing stats in `status` (pods per archive, Σ Pss / Σ Rss): gives the fetcher the
    /// host's PID namespace and CAP_SYS_PTRACE to read the JVMs' /proc/<pid>/smaps (see
    /// docs/security.md). Off by default
    #[arg(long)]
    pub stats: bool,
}

/// `install --require-signature --signature-key FILE…`: the fetchers' signature policy; the
/// keys go into a ConfigMap, the flags into the DaemonSet's fetcher args.
pub use classcache_core::fetcher::args::SignatureArgs;

#[derive(Args, Debug, Clone)]
pub struct UninstallArgs {
    /// Namespace the fetcher is installed in
    #[arg(short = 'n', long, default_value = podtemplate::NAMESPACE)]
    pub namespace: String,
    /// Remove even though workloads are still enabled (their init containers then time out)
    #[arg(long)]
    pub force: bool,
    /// Wait until the fetcher's namespace is gone before returning, as `kubectl delete` does
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub wait: bool,
    /// How long --wait waits
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub timeout: std::time::Duration,
    #[arg(long, value_enum, default_missing_value = "client", num_args = 0..=1, require_equals = true, default_value = "none")]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registries (host[:port]) reached over plain HTTP (loopback ones always are)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json)
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Yaml,
    Json,
}

/// `--mode`: a delivery mode, or `auto` (decided by asking the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    Auto,
    Fixed(DeliveryMode),
}

fn parse_mode(s: &str) -> Result<ModeChoice, String> {
    if s == "auto" {
        return Ok(ModeChoice::Auto);
    }
    s.parse()
        .map(ModeChoice::Fixed)
        .map_err(|e: String| e.replace("or image-volume", "image-volume or auto"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
