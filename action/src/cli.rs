//! The command line of classcache-build; `action.yml` maps its inputs one to one onto these flags.
//! It declares and checks arguments only; it must not run anything.

use clap::{Parser, ValueEnum};
use classcache_core::key::{AgentMode, ArchiveKind};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "classcache-build",
    version,
    about = "Train a JVM class-data-sharing archive (CDS / AOT cache) in the app's own image, verify it, push it",
    after_help = "Examples:\n  \
      classcache-build registry.example.com/team/app:1.4.2\n  \
      classcache-build --ready-url http://127.0.0.1:8080/ready registry.example.com/team/app@sha256:…\n  \
      classcache-build --runtime local --to oci:/tmp/archives:latest examples/app/build/app.jar -- run"
)]
pub struct Args {
    /// The app image (`registry/repo:tag` or `…@sha256:…`); with the local runtime, `local`
    /// (ARGS are then the `java` arguments) or the path of a runnable jar.
    pub image: String,

    /// Replaces the image's command (docker runtime); the `java` arguments (`local`); or the
    /// jar's program arguments (jar).
    #[arg(last = true)]
    pub args: Vec<String>,

    /// Where the JVM runs: docker (bollard, DOCKER_HOST), local (a `java` on this machine), or
    /// auto (local for `local` and *.jar, else docker).
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,

    /// The `java` command of the local runtime (default: $JAVA_HOME/bin/java, else `java` on PATH).
    #[arg(long, value_name = "PATH")]
    pub java: Option<PathBuf>,

    /// Archive kind; auto picks aot-cache for JDK 24+, dynamic-cds for 13-23 (static-appcds
    /// when the JDK has no base CDS archive), static-appcds for 11-12.
    #[arg(long, value_enum, default_value_t = KindChoice::Auto)]
    pub kind: KindChoice,

    /// A Java agent jar to train with (uploaded into the container before start).
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,

    /// attached: the agent also runs in production (-javaagent at run time); baked: the classes
    /// it transformed are archived and the agent jar goes on the boot class path at run time.
    #[arg(long, value_enum, default_value_t = AgentModeChoice::Attached)]
    pub agent_mode: AgentModeChoice,

    /// Where the agent jar is inside the container, at training and at run time
    /// (default /opt/classcache/agent/<file name>).
    #[arg(long, value_name = "PATH")]
    pub agent_path: Option<String>,

    /// Train with the agent jar the image already has at PATH (the one production attaches with
    /// -javaagent:PATH); nothing is uploaded, the jar is hashed where it is.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["agent", "agent_path"])]
    pub agent_in_image: Option<String>,

    /// A JVM option the workload also runs with and that shapes the archive (for example
    /// -XX:+UseG1GC); repeat for several. Part of the key; it stays in the workload's template
    /// (an archive carries only archive options).
    #[arg(long = "jvm-option", value_name = "OPTION", allow_hyphen_values = true)]
    pub jvm_options: Vec<String>,

    /// An environment variable for every run of the app, KEY=VALUE; repeat for several.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Training ends when Spring has refreshed its context (-Dspring.context.exit=onRefresh).
    #[arg(long, conflicts_with_all = ["stop_after", "ready_url"])]
    pub spring: bool,

    /// Training ends with SIGTERM this long after start (e.g. 30s), for apps that never exit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "ready_url")]
    pub stop_after: Option<Duration>,

    /// Training ends with SIGTERM once this URL answers 2xx (after the warm-up requests).
    #[arg(long, value_name = "URL")]
    pub ready_url: Option<String>,

    /// A URL to request during training once ready (GET, plain http); repeat for several.
    #[arg(long = "warmup-url", value_name = "URL", requires = "ready_url")]
    pub warmup_urls: Vec<String>,

    /// How many times each warm-up URL is requested.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup_requests: u32,

    /// The longest a training run may take before it is killed and the build fails.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,

    /// Start-up timing runs with and without the archive (interleaved); 0 skips timing.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub verify_runs: u32,

    /// Warn when fewer of the app's own classes than this percentage load from the archive.
    #[arg(long, value_name = "PERCENT", default_value_t = 90.0)]
    pub min_coverage: f64,

    /// Where the archive goes: a registry repository (tag = key, subject = the image;
    /// default: the image's own repository) or an OCI layout `oci:DIR[:TAG]`.
    #[arg(long, value_name = "REF")]
    pub to: Option<String>,

    /// Sign the pushed archive manifest with this PEM private key (ECDSA P-256, unencrypted
    /// PKCS#8 or SEC 1), in cosign's format: at the `sha256-<hex>.sig` tag and as a referrer, so
    /// `cosign verify --key PUB` and the fetcher's `--require-signature` accept it. Make a key
    /// with `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt
    /// -out classcache.key`, its public key with `openssl ec -in classcache.key -pubout -out
    /// classcache.pub`. (Keyless signing: run `cosign sign` on the pushed digest instead.)
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// Train and verify only; push or write nothing.
    #[arg(long)]
    pub no_push: bool,

    /// Push also on `pull_request` events (by default builds of pull requests push nothing,
    /// so untrusted code cannot write the shared cache).
    #[arg(long)]
    pub push_on_pull_request: bool,

    /// The JSON report file.
    #[arg(long, value_name = "FILE", default_value = "classcache-report.json")]
    pub report: PathBuf,

    /// Docker network mode of the app's containers (host lets --ready-url use 127.0.0.1).
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub network: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    Auto,
    Docker,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindChoice {
    Auto,
    AotCache,
    DynamicCds,
    StaticAppcds,
}

impl KindChoice {
    pub fn kind(self) -> Option<ArchiveKind> {
        match self {
            Self::Auto => None,
            Self::AotCache => Some(ArchiveKind::AotCache),
            Self::DynamicCds => Some(ArchiveKind::DynamicCds),
            Self::StaticAppcds => Some(ArchiveKind::StaticAppcds),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentModeChoice {
    Attached,
    Baked,
}

impl From<AgentModeChoice> for AgentMode {
    fn from(choice: AgentModeChoice) -> AgentMode {
        match choice {
            AgentModeChoice::Attached => AgentMode::Attached,
            AgentModeChoice::Baked => AgentMode::Baked,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it like 30s, 2m or 1h"))
}

impl Args {
    /// True when the local runtime trains (explicitly, or `local` / a jar with auto).
    pub fn uses_local_runtime(&self) -> bool {
        match self.runtime {
            RuntimeChoice::Local => true,
            RuntimeChoice::Docker => false,
            RuntimeChoice::Auto => self.image == "local" || self.image.ends_with(".jar"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn jars_and_local_pick_the_local_runtime() {
        let args = Args::parse_from(["classcache-build", "app.jar", "--", "run"]);
        assert!(args.uses_local_runtime());
        assert_eq!(args.args, ["run"]);
        let args = Args::parse_from(["classcache-build", "127.0.0.1:5000/app:1"]);
        assert!(!args.uses_local_runtime());
        let args = Args::parse_from([
            "classcache-build",
            "--jvm-option",
            "-XX:+UseG1GC",
            "--stop-after",
            "3s",
            "x",
        ]);
        assert_eq!(args.jvm_options, ["-XX:+UseG1GC"]);
        assert_eq!(args.stop_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn bad_durations_say_how_to_write_them() {
        let e = Args::try_parse_from(["classcache-build", "--timeout", "soon", "x"]).unwrap_err();
        assert!(e.to_string().contains("write it like 30s"), "{e}");
    }
}
