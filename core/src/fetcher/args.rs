//! The init container's command line, defined once: the pod-template edit builds it (`InitArgs::to_args`), the fetcher parses it with this clap struct.
//! It builds and parses given arguments only; it must not read the process's own.

use crate::paths::POD_ARCHIVE_DIR;
use crate::podtemplate::cluster::{DeliveryMode, DEFAULT_INIT_TIMEOUT_SECS};
use std::time::Duration;

/// The subcommand the init container runs.
pub const INIT_SUBCOMMAND: &str = "init";
/// The subcommand the DaemonSet's container runs.
pub const SERVE_SUBCOMMAND: &str = "serve";

/// `serve` flag: publish only archives whose pinned digest has a cosign signature by one of
/// the `--signature-key` keys naming exactly that digest.
pub const REQUIRE_SIGNATURE_FLAG: &str = "require-signature";
/// `serve` flag, repeatable: a PEM public key (ECDSA P-256) archive signatures are checked against.
pub const SIGNATURE_KEY_FLAG: &str = "signature-key";
/// The ConfigMap (in the classcache namespace) `install --signature-key` stores the public keys in.
pub const SIGNATURE_KEYS_CONFIGMAP: &str = "classcache-signature-keys";
/// Where the DaemonSet mounts that ConfigMap; each key is `<dir>/<its key in the ConfigMap>`.
pub const SIGNATURE_KEYS_DIR: &str = "/etc/classcache/signature-keys";
/// `serve`'s flag that turns on page-sharing stats (`kubectl classcache install --stats` adds it).
pub const STATS_FLAG: &str = "stats";

/// `--require-signature --signature-key FILE…`, the same flags on `kubectl classcache install`
/// (which stores the keys and renders the flags into the DaemonSet) and on the fetcher's `serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SignatureArgs {
    /// Publish only archives whose pinned digest has a cosign signature (`classcache-build
    /// --sign-key`, `cosign sign --key`) by one of the --signature-key keys naming exactly that
    /// digest; others are refused before any byte of them is fetched
    #[arg(long = REQUIRE_SIGNATURE_FLAG, requires = "signature_keys")]
    pub require_signature: bool,
    /// A PEM public key (ECDSA P-256: cosign's .pub, `openssl ec -pubout`) that archive
    /// signatures are checked against; repeat for several
    #[arg(long = SIGNATURE_KEY_FLAG, value_name = "FILE", requires = "require_signature")]
    pub signature_keys: Vec<std::path::PathBuf>,
}

/// The init container's job: `classcache-fetcher init <InitArgs>`.
///
/// ```text
/// classcache-fetcher init \
///     --archive <registry>/<repo>@sha256:<hex>   (once per distinct archive, in container order)
///     --mode hostpath|copy \
///     --dir /classcache \
///     --fetcher-url http://$(CLASSCACHE_NODE_IP):8787 \
///     --timeout <seconds>s \
///     [--fail-closed]
/// ```
///
/// Meaning, for the fetcher's implementation:
/// - each `--archive` is pinned by digest: an archive manifest, or an OCI index of per-platform
///   archive manifests (the node fetcher picks its own platform's);
/// - the archive must end up at `<dir>/<paths::published_dir_name(digest)>/<file name>`, the file
///   name being the one the node fetcher answers (the archive's own, `config.archive.name`);
/// - `hostpath`: each `<dir>/<paths::published_dir_name(digest)>` is that archive's directory in
///   the node store, mounted read-only; ask the node fetcher to publish each archive and wait
///   until the file appears there;
/// - `copy`: `<dir>` is an empty, writable emptyDir; download each archive from the node fetcher,
///   check its sha256, write a temp file, fsync, rename into place;
/// - `--timeout` bounds the whole run; when it passes or anything fails, exit 0 with a message on
///   stderr (the JVM then starts without the archive: `-Xshare:auto`), or exit non-zero when
///   `--fail-closed` is given (the pod does not start).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct InitArgs {
    /// Pinned archive reference <registry>/<repo>@sha256:<hex>; repeat for several.
    #[arg(long = "archive", required = true)]
    pub archives: Vec<String>,
    /// hostpath: wait for the archive in the mounted node store; copy: copy it into --dir.
    #[arg(long, default_value = "hostpath", value_parser = parse_init_mode)]
    pub mode: DeliveryMode,
    /// Where the pod's containers see the archives.
    #[arg(long, default_value = POD_ARCHIVE_DIR)]
    pub dir: String,
    /// The node's fetcher, e.g. http://$(CLASSCACHE_NODE_IP):8787.
    #[arg(long)]
    pub fetcher_url: String,
    /// Bound of the whole run (e.g. 120s, 2m).
    #[arg(long, default_value = "120s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Exit non-zero when the archive cannot be made available (the pod does not start).
    #[arg(long)]
    pub fail_closed: bool,
}

/// The modes an init container serves: an image volume needs none.
fn parse_init_mode(s: &str) -> Result<DeliveryMode, String> {
    match s.parse()? {
        DeliveryMode::ImageVolume => Err(
            "image-volume pods have no init container: the kubelet mounts the archive; use hostpath or copy".into(),
        ),
        mode => Ok(mode),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write a duration such as 120s or 2m"))
}

/// A duration as `--timeout` takes it: whole seconds as `<n>s`, else milliseconds.
fn format_timeout(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl InitArgs {
    /// The default `--timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(DEFAULT_INIT_TIMEOUT_SECS);

    /// The container's `args`, subcommand first: the exact inverse of [`InitArgs::from_args`].
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![INIT_SUBCOMMAND.to_string()];
        for archive in &self.archives {
            args.push("--archive".to_string());
            args.push(archive.clone());
        }
        args.extend([
            "--mode".to_string(),
            self.mode.as_str().to_string(),
            "--dir".to_string(),
            self.dir.clone(),
            "--fetcher-url".to_string(),
            self.fetcher_url.clone(),
            "--timeout".to_string(),
            format_timeout(self.timeout),
        ]);
        if self.fail_closed {
            args.push("--fail-closed".to_string());
        }
        args
    }

    /// Reads `args` (subcommand first, as in a container's `args`) with the same clap
    /// definition the fetcher parses them with.
    pub fn from_args(args: &[String]) -> Result<Self, clap::Error> {
        use clap::Parser;
        #[derive(clap::Parser)]
        #[command(no_binary_name = true)]
        enum Only {
            Init(InitArgs),
        }
        let Only::Init(args) = Only::try_parse_from(args)?;
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_keep_their_precision() {
        for d in [Duration::from_secs(120), Duration::from_millis(1500)] {
            assert_eq!(parse_timeout(&format_timeout(d)), Ok(d));
        }
        assert!(parse_timeout("soon").unwrap_err().contains("such as 120s"));
    }
}
