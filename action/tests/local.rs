//! Tests of classcache-build's local runtime (a `java` on this machine, no Docker): the README's
//! main job into an OCI layout, GitHub Actions outputs, agents, and the bad inputs it must refuse.

mod common;

use classcache_oci::layout::OciLayout;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run_local(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let report = dir.join("report.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_classcache-build"));
    command
        .current_dir(&dir)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_EVENT_NAME")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("JAVA_TOOL_OPTIONS")
        .arg("--report")
        .arg(&report)
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("--- classcache-build {}\n{stderr}", args.join(" "));
    (output, stderr, report)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A build of the example jar (`run` mode) that only trains and verifies (no timing, nothing
/// written): returns its report and log, failing the test when the build fails.
fn train_only(extra: &[&str]) -> (serde_json::Value, String) {
    train_only_with(extra, "run")
}

fn train_only_with(extra: &[&str], mode: &str) -> (serde_json::Value, String) {
    let jar = example_jar().display().to_string();
    let args: Vec<&str> = extra
        .iter()
        .copied()
        .chain(["--verify-runs", "0", "--no-push", &jar, "--", mode])
        .collect();
    let (output, stderr, report) = run_local(&args, &[]);
    assert!(output.status.success(), "{stderr}");
    (read_json(&report), stderr)
}

#[test]
fn the_main_job_writes_an_oci_layout_and_github_outputs() {
    let jar = example_jar().display().to_string();
    let out = tempfile::tempdir().unwrap();
    let layout_dir = out.path().join("archives");
    let to = format!("oci:{}:latest", layout_dir.display());
    let github_output = out.path().join("github-output");
    let summary = out.path().join("summary.md");
    let (output, stderr, report) = run_local(
        &["--verify-runs", "1", "--to", &to, &jar, "--", "run"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", github_output.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    );
    assert!(output.status.success(), "{stderr}");
    let report = read_json(&report);
    assert_eq!(
        report["kind"], "dynamic-cds",
        "the machine's JDK 17 has a base archive: {report:#}"
    );
    assert!(
        report["classes"]["appCoveragePercent"].as_f64().unwrap() >= 90.0,
        "{report:#}"
    );
    let key = report["key"].as_str().unwrap();
    let digest = report["archive"]["digest"].as_str().unwrap();

    let layout = OciLayout::open(&layout_dir).unwrap();
    assert_eq!(layout.resolve(Some("latest"), None).unwrap().digest, digest);
    assert_eq!(layout.resolve(Some(key), None).unwrap().digest, digest);
    let image_digest = report["image"]["digest"].as_str().unwrap();
    let found = layout
        .find_archives(&image_digest.parse().unwrap())
        .unwrap();
    assert!(
        found.iter().any(|d| d.digest == digest),
        "not findable from the class-path digest"
    );

    let outputs = std::fs::read_to_string(&github_output).unwrap();
    assert!(outputs.contains(&format!("key={key}\n")), "{outputs}");
    assert!(outputs.contains(&format!("archive={to}\n")), "{outputs}");
    assert!(outputs.contains(&format!("digest={digest}\n")), "{outputs}");
    assert!(
        outputs
            .lines()
            .any(|l| l.starts_with("speedup=") && l.len() > "speedup=".len()),
        "{outputs}"
    );
    assert!(
        outputs.contains("index=\n"),
        "a local build joins no index of per-platform archives: {outputs}"
    );
    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(markdown.contains("| Kind | dynamic-cds |"), "{markdown}");
}

#[test]
fn jdk25_trains_an_aot_cache_locally() {
    let h = classcache_e2e::harness();
    let java = h.java25().display().to_string();
    let (report, _) = train_only(&["--java", &java]);
    assert_eq!(report["kind"], "aot-cache");
    assert!(
        report["jvm"]["build"].as_str().unwrap().starts_with("25"),
        "{report:#}"
    );
    assert!(
        report["classes"]["appCoveragePercent"].as_f64().unwrap() >= 90.0,
        "{report:#}"
    );
}

#[test]
fn an_attached_agent_is_trained_with_and_recorded() {
    let agent = agent_jar();
    let (report, stderr) = train_only(&["--agent", agent.to_str().unwrap()]);
    assert!(stderr.contains("classcache: archive loads"), "{stderr}");
    let path = report["archive"]["agent"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(path.ends_with("counting-agent.jar"), "{report:#}");
    assert_agent_recorded(&report, &path, &agent);
    assert!(
        report["classes"]["appCoveragePercent"].as_f64().unwrap() >= 90.0,
        "{report:#}"
    );
    // The agent is part of the key: the same build without it has another key.
    let (plain, _) = train_only(&[]);
    assert_ne!(plain["key"], report["key"]);
}

#[test]
fn a_missing_agent_is_named() {
    let jar = example_jar().display().to_string();
    let out = tempfile::tempdir().unwrap();
    let to = format!("oci:{}:latest", out.path().join("archives").display());
    let (output, stderr, report) = run_local(
        &["--agent", "/nonexistent/agent.jar", "--to", &to, &jar],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        stderr.contains("the agent file /nonexistent/agent.jar does not exist"),
        "{stderr}"
    );
    assert!(
        !out.path().join("archives").exists(),
        "a failed build wrote the layout"
    );
    assert!(!report.exists());
}

#[test]
fn an_agent_that_is_not_a_jar_is_named() {
    let jar = example_jar().display().to_string();
    let out = tempfile::tempdir().unwrap();
    let script = out.path().join("agent.sh");
    std::fs::write(&script, "#!/bin/sh\necho I am not a jar\n").unwrap();
    let to = format!("oci:{}:latest", out.path().join("archives").display());
    let (output, stderr, _) = run_local(
        &["--agent", script.to_str().unwrap(), "--to", &to, &jar],
        &[],
    );
    assert!(!output.status.success());
    assert!(stderr.contains("is not a jar"), "{stderr}");
    assert!(!out.path().join("archives").exists());
}

#[test]
fn a_jvm_that_is_too_old_is_named() {
    let jar = example_jar().display().to_string();
    let out = tempfile::tempdir().unwrap();
    // A `java` that answers like a Java 8 runtime.
    let java = out.path().join("java");
    std::fs::write(
        &java,
        "#!/bin/sh\ncat >&2 <<'EOF'\nProperty settings:\n    java.home = /opt/jdk8/jre\n    java.vendor = Oracle Corporation\n    java.version = 1.8.0_392\n    java.vm.version = 25.392-b08\n    os.arch = amd64\n\njava version \"1.8.0_392\"\nEOF\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
    let to = format!("oci:{}:latest", out.path().join("archives").display());
    let (output, stderr, _) =
        run_local(&["--java", java.to_str().unwrap(), "--to", &to, &jar], &[]);
    assert!(!output.status.success());
    assert!(
        stderr.contains("Java 8 (1.8.0_392)") && stderr.contains("needs Java 11 or newer"),
        "{stderr}"
    );
    assert!(!out.path().join("archives").exists());
}

#[test]
fn the_local_runtime_needs_a_destination() {
    let jar = example_jar().display().to_string();
    let (output, stderr, _) = run_local(&[&jar], &[]);
    assert!(!output.status.success());
    assert!(stderr.contains("pass --to oci:DIR:TAG"), "{stderr}");
}

#[test]
fn a_timed_stop_sends_sigterm_and_the_archive_is_written() {
    // `serve` never exits by itself: --stop-after ends training with SIGTERM, the JVM's normal
    // shutdown writes the archive, and the timed stop gives no start-up time to report.
    let port = format!("PORT={}", 40000 + std::process::id() % 20000);
    let (report, stderr) = train_only_with(&["--env", &port, "--stop-after", "6s"], "serve");
    assert!(stderr.contains("start-up not timed"), "{stderr}");
    assert_eq!(report["kind"], "dynamic-cds");
    assert!(
        report["classes"]["appCoveragePercent"].as_f64().unwrap() >= 90.0,
        "{report:#}"
    );
    assert!(report.get("startup").is_none(), "{report:#}");
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root, as .ci/run has"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_at_the_destination_fails_and_tags_nothing() {
    let disk = SmallDisk::mount("1m");
    let layout_dir = disk.0.path().join("archives");
    let to = format!("oci:{}:latest", layout_dir.display());
    let jar = example_jar().display().to_string();
    let (output, stderr, _) =
        run_local(&["--verify-runs", "0", "--to", &to, &jar, "--", "run"], &[]);
    assert!(
        !output.status.success(),
        "a 1 MiB disk cannot hold the archive: {stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains(&layout_dir.display().to_string()),
        "names the destination: {stderr}"
    );
    if let Ok(layout) = OciLayout::open(&layout_dir) {
        assert!(
            layout.resolve(Some("latest"), None).is_err(),
            "a failed write must tag nothing"
        );
    }
}
