//! Helpers of classcache-build's integration tests: the example app, its images on the harness,
//! running the binary, and checks that a failed build left nothing behind.
//! They build test inputs only; they must not reach outside the harness's engine and registry.

#![allow(dead_code)]

use classcache_e2e::Harness;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A directory for this test process's files (under target/, removed by nobody but cargo clean).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example app's jar and images: one definition for every crate's tests (each test
/// binary uses some of them).
#[allow(unused_imports)]
pub use classcache_e2e::apps::{app_image, example_jar};

/// A finished run of the classcache-build binary.
pub struct BuildRun {
    pub output: Output,
    pub run_id: String,
    pub report_path: PathBuf,
    pub stderr: String,
}

impl BuildRun {
    pub fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.report_path).unwrap_or_else(|e| {
            panic!(
                "no report at {}: {e}\nstderr:\n{}",
                self.report_path.display(),
                self.stderr
            )
        });
        serde_json::from_str(&text).unwrap()
    }

    pub fn assert_ok(&self) {
        assert!(
            self.output.status.success(),
            "classcache-build failed:\n{}",
            self.stderr
        );
    }

    /// Fails unless the build succeeded with an archive of `kind` that serves at least 90% of
    /// the app's classes and left no container; returns the report.
    pub fn assert_trained(&self, h: &Harness, kind: &str) -> serde_json::Value {
        self.assert_ok();
        assert_eq!(
            leftover_containers(h, self),
            Vec::<String>::new(),
            "containers left behind"
        );
        let report = self.report();
        assert_eq!(report["kind"], kind, "{report:#}");
        let coverage = report["classes"]["appCoveragePercent"].as_f64().unwrap();
        assert!(
            coverage >= 90.0,
            "only {coverage}% of the app's classes came from the archive: {report:#}"
        );
        report
    }

    /// Fails unless the build failed with a message containing every one of `parts`.
    pub fn assert_failed_with(&self, parts: &[&str]) {
        assert!(
            !self.output.status.success(),
            "classcache-build succeeded, expected a failure:\n{}",
            self.stderr
        );
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "the error does not say {part:?}:\n{}",
                self.stderr
            );
        }
    }
}

/// Runs classcache-build with the harness's environment (DOCKER_HOST…), outside GitHub Actions.
pub fn run_build(h: &Harness, args: &[&str], env: &[(&str, &str)]) -> BuildRun {
    let run_id = classcache_e2e::unique_name("run");
    let dir = tempfile::tempdir().unwrap().keep();
    let report_path = dir.join("report.json");
    let mut command = h.command(env!("CARGO_BIN_EXE_classcache-build"));
    command
        .current_dir(&dir)
        .env("CLASSCACHE_RUN_ID", &run_id)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_EVENT_NAME")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .arg("--report")
        .arg(&report_path)
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run classcache-build");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("--- classcache-build {}\n{stderr}", args.join(" "));
    BuildRun {
        output,
        run_id,
        report_path,
        stderr,
    }
}

/// Containers a build left on the harness engine (by its run id label).
pub fn leftover_containers(h: &Harness, run: &BuildRun) -> Vec<String> {
    let filter = format!("label=dev.classcache.build={}", run.run_id);
    let out = h.docker_ok(&["ps", "-a", "-q", "--filter", &filter]);
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The tags of a repository in the harness registry (empty when it has none).
pub fn registry_tags(h: &Harness, repository: &str) -> Vec<String> {
    let path = repository
        .strip_prefix(&format!("{}/", h.registry))
        .expect("a harness repository");
    let url = format!("{}/v2/{path}/tags/list", h.registry_url());
    let out = Command::new("curl")
        .args(["-sS", &url])
        .output()
        .expect("run curl");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    body["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Fails unless the build left no container and pushed no archive tag into `repository`.
pub fn assert_nothing_left(h: &Harness, run: &BuildRun, repository: Option<&str>) {
    assert_eq!(
        leftover_containers(h, run),
        Vec::<String>::new(),
        "containers left behind"
    );
    if let Some(repository) = repository {
        let tags = registry_tags(h, repository);
        let pushed: Vec<_> = tags
            .iter()
            .filter(|t| t.starts_with("classcache-") || t.starts_with("sha256-"))
            .collect();
        assert!(
            pushed.is_empty(),
            "the failed build pushed {pushed:?} to {repository}"
        );
    }
}

/// A small Java agent jar (sees every class load, transforms none), built once per process.
pub fn agent_jar() -> PathBuf {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| build_agent("CountingAgent", "counting-agent.jar"))
        .clone()
}

/// The report records the agent `jar` as trained with at `path` (its sha256 from the jar
/// itself), and the run-time options leave attaching it to the workload.
pub fn assert_agent_recorded(report: &serde_json::Value, path: &str, jar: &Path) {
    assert_eq!(
        report["archive"]["agent"]["path"].as_str(),
        Some(path),
        "{report:#}"
    );
    let sha256 = classcache_build::runtime::local::sha256_file(jar).unwrap();
    assert_eq!(
        report["archive"]["agent"]["sha256"].as_str(),
        Some(sha256.as_str()),
        "the agent's own bytes are hashed"
    );
    let options: Vec<String> =
        serde_json::from_value(report["archive"]["runtimeOptions"].clone()).unwrap();
    assert!(
        !options.iter().any(|o| o.starts_with("-javaagent")),
        "the workload attaches its agent itself: {options:?}"
    );
}

/// A test agent whose premain throws (`fixtures/agent/.../ThrowingAgent.java`).
pub fn throwing_agent_jar() -> PathBuf {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| build_agent("ThrowingAgent", "throwing-agent.jar"))
        .clone()
}

/// Compiles `fixtures/agent/src/com/example/agent/<class>.java` into an agent jar named `jar_name`.
fn build_agent(class: &str, jar_name: &str) -> PathBuf {
    // One directory per agent: tests build them concurrently.
    let dir = scratch(&format!("agent-{class}"));
    let src = repo_root().join(format!(
        "action/tests/fixtures/agent/src/com/example/agent/{class}.java"
    ));
    let classes = dir.join("classes");
    let ok = Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(&classes)
        .arg(&src)
        .status()
        .unwrap();
    assert!(ok.success(), "javac of the test agent {class} failed");
    let manifest = dir.join("MANIFEST.MF");
    std::fs::write(
        &manifest,
        format!("Premain-Class: com.example.agent.{class}\n"),
    )
    .unwrap();
    let jar = dir.join(jar_name);
    let ok = Command::new("jar")
        .arg("--create")
        .arg("--file")
        .arg(&jar)
        .arg("--manifest")
        .arg(&manifest)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success(), "jar of the test agent {class} failed");
    jar
}

/// `image` with `jar` copied in at `path` (as an image that ships its APM agent), pushed to the
/// harness registry under a fresh repository. Returns (reference, repository).
pub fn image_with_file(
    h: &Harness,
    image: &str,
    jar: &std::path::Path,
    path: &str,
) -> (String, String) {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(jar, context.path().join("agent.jar")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY agent.jar {path}\n"),
    )
    .unwrap();
    let repository = h.registry_ref(&classcache_e2e::unique_name("build-test/agent"));
    let reference = format!("{repository}:1");
    h.docker_build(context.path(), &reference);
    h.docker_ok(&["push", "-q", &reference]);
    (reference, repository)
}
