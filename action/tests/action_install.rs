//! Runs action.yml's install step with bash, as a runner would, against a fake release on loopback
//! and against the real assets of `scripts/release.sh --dry-run`. It must not copy the step's
//! script: the one under test is read from action.yml.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// The release assets action.yml expects (see its header): one archive per target and the sums.
/// Stated again here on purpose: the release workflow must publish exactly these names.
const TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];
const SUMS: &str = "SHA256SUMS";
const REPOSITORY: &str = "classcache-test/classcache";
const REF: &str = "v0.0.1-test";
/// What the fake classcache-build prints, so the test knows the installed binary is the served one.
const MARKER: &str = "fake classcache-build from the test release";

fn asset(target: &str) -> String {
    format!("classcache-build-{target}.tar.gz")
}

/// The install step's script and its `env:` block, read from action.yml.
fn install_step() -> (String, Vec<(String, String)>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../action.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let action: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let step = action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "install")
        .expect("action.yml has a step with id: install");
    assert_eq!(step["shell"], "bash", "the install step runs with bash");
    let env = step["env"]
        .as_object()
        .expect("the install step has an env: block")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (step["run"].as_str().unwrap().to_string(), env)
}

/// A release directory tree served by Python's http.server on 127.0.0.1 (a real HTTP server:
/// missing files get a real 404).
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(root: &Path) -> Server {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (tests/harness/up.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 39123 (http://127.0.0.1:39123/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("http.server did not say its port: {line:?}"));
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What SHA256SUMS the fake release publishes.
enum Sums {
    /// The true sums of every asset, in `sha256sum` format.
    Right,
    /// A sum for every asset, none of them true (the archives were swapped after the sums).
    Wrong,
    /// No SHA256SUMS asset at all.
    Missing,
    /// True sums, but under names that only look like the assets' own.
    NoLineForTheAsset,
}

struct Run {
    success: bool,
    output: String,
    installed: PathBuf,
    github_path: String,
    github_output: String,
    /// Holds the runner's temp dir (and the installed binary) until the test ends.
    _work: TempDir,
}

/// Publishes a fake release (a real small executable, packed per target), serves it, and runs the
/// install step against it.
fn install_from_fake_release(sums: Sums, publish_archives: bool) -> Run {
    let work = TempDir::new().unwrap();
    let release = release_dir(&work);
    std::fs::create_dir_all(&release).unwrap();
    let pack = work.path().join("pack");
    std::fs::create_dir_all(&pack).unwrap();
    let binary = pack.join("classcache-build");
    std::fs::write(&binary, format!("#!/bin/sh\necho \"{MARKER} $*\"\n")).unwrap();
    make_executable(&binary);

    let mut lines = String::new();
    for target in TARGETS {
        let archive = release.join(asset(target));
        let status = Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&pack)
            .arg("classcache-build")
            .status()
            .unwrap();
        assert!(status.success(), "tar -czf {}", archive.display());
        let sum = hex::encode(Sha256::digest(std::fs::read(&archive).unwrap()));
        match sums {
            Sums::Right => lines += &format!("{sum}  {}\n", asset(target)),
            Sums::Wrong => lines += &format!("{}  {}\n", "0".repeat(64), asset(target)),
            Sums::NoLineForTheAsset => {
                lines += &format!("{sum}  other/{}\n", asset(target));
                lines += &format!("{sum}  {}.sig\n", asset(target));
            }
            Sums::Missing => {}
        }
        if !publish_archives {
            std::fs::remove_file(&archive).unwrap();
        }
    }
    if !matches!(sums, Sums::Missing) {
        std::fs::write(release.join(SUMS), lines).unwrap();
    }
    install_from_release(work)
}

/// Where the release of [`REF`] is served from under `work` (GitHub's download URL layout).
fn release_dir(work: &TempDir) -> PathBuf {
    work.path()
        .join("www")
        .join(REPOSITORY)
        .join("releases/download")
        .join(REF)
}

/// Serves the release in [`release_dir`] and runs the install step against it with the
/// variables a GitHub runner sets.
fn install_from_release(work: TempDir) -> Run {
    let server = Server::start(&work.path().join("www"));

    let runner_temp = work.path().join("runner-temp");
    let home = work.path().join("home");
    let action_path = work.path().join("action-path");
    for dir in [&runner_temp, &home, &action_path] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let github_path = work.path().join("github_path");
    let github_output = work.path().join("github_output");
    let github_env = work.path().join("github_env");
    for file in [&github_path, &github_output, &github_env] {
        std::fs::write(file, "").unwrap();
    }

    let (script, step_env) = install_step();
    // The runner writes the step's script to a file and runs `bash --noprofile --norc -eo
    // pipefail {0}`, with the step's env: evaluated from the github context.
    let script_file = work.path().join("install.sh");
    std::fs::write(&script_file, &script).unwrap();
    let context = [
        ("github.action_repository", REPOSITORY.to_string()),
        ("github.action_ref", REF.to_string()),
        ("github.action_path", action_path.display().to_string()),
        ("github.server_url", server.url.clone()),
    ];
    let mut command = Command::new("bash");
    command
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script_file)
        .env_clear()
        // System directories only: no cargo, so a fallback to a source build shows as a failure.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", &home)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("RUNNER_TEMP", &runner_temp)
        .env("GITHUB_PATH", &github_path)
        .env("GITHUB_OUTPUT", &github_output)
        .env("GITHUB_ENV", &github_env)
        .stdin(Stdio::null());
    for (name, value) in step_env {
        command.env(name, evaluate(&value, &context));
    }
    let out = command.output().unwrap();
    drop(server);
    Run {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        installed: runner_temp.join("classcache/bin/classcache-build"),
        github_path: std::fs::read_to_string(&github_path).unwrap(),
        github_output: std::fs::read_to_string(&github_output).unwrap(),
        _work: work,
    }
}

/// `${{ github.x }}` as the runner evaluates it; any other expression in the step's env is one
/// this test does not know how GitHub fills, so it fails rather than guess.
fn evaluate(value: &str, context: &[(&str, String)]) -> String {
    let Some(expression) = value
        .trim()
        .strip_prefix("${{")
        .and_then(|v| v.strip_suffix("}}"))
    else {
        return value.to_string();
    };
    let name = expression.trim();
    context
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            panic!(
                "the install step's env uses {value}; give this test its value as a runner would"
            )
        })
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn host_asset() -> String {
    let target = match std::env::consts::ARCH {
        "x86_64" => TARGETS[0],
        "aarch64" => TARGETS[1],
        other => panic!("no release target for {other}"),
    };
    asset(target)
}

/// The step failed, said each of `messages`, and installed nothing.
fn assert_refused(run: &Run, messages: &[String]) {
    assert!(!run.success, "the install step succeeded:\n{}", run.output);
    for message in messages {
        assert!(
            run.output.contains(message.as_str()),
            "the install step did not say {message:?}:\n{}",
            run.output
        );
    }
    assert_nothing_installed(run);
}

/// Nothing installed, nothing on the job's PATH.
fn assert_nothing_installed(run: &Run) {
    assert!(
        !run.installed.exists(),
        "{} was installed although the check failed:\n{}",
        run.installed.display(),
        run.output
    );
    assert_eq!(run.github_path, "", "the step writes to GITHUB_PATH");
}

#[test]
fn right_sum_installs_the_release_binary_and_it_runs() {
    let run = install_from_fake_release(Sums::Right, true);
    assert!(run.success, "install failed:\n{}", run.output);
    assert!(
        run.output.contains(&format!("{}: OK", host_asset())),
        "{}",
        run.output
    );
    assert_eq!(run.github_path, "", "the step writes to GITHUB_PATH");
    assert_eq!(
        run.github_output,
        format!("bin={}\n", run.installed.display()),
        "the step's `bin` output is the installed binary"
    );
    let out = Command::new(&run.installed).arg("--help").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{MARKER} --help")
    );
}

#[test]
fn wrong_sum_fails_and_installs_nothing() {
    let run = install_from_fake_release(Sums::Wrong, true);
    assert_refused(
        &run,
        &[
            format!(
                "::error title=classcache::sha256 mismatch for {} from http://127.0.0.1:",
                host_asset()
            ),
            format!("expected {} ({SUMS}), actual ", "0".repeat(64)),
            "nothing was installed. Re-run the job".to_string(),
        ],
    );
}

#[test]
fn missing_sums_fail_and_install_nothing() {
    let run = install_from_fake_release(Sums::Missing, true);
    assert_refused(
        &run,
        &[
            format!(
                "::error title=classcache::release {REF} of {REPOSITORY} has {} but no {SUMS}",
                host_asset()
            ),
            "nothing was installed. The release must publish SHA256SUMS".to_string(),
        ],
    );
}

#[test]
fn sums_without_a_line_for_the_asset_fail_and_install_nothing() {
    let run = install_from_fake_release(Sums::NoLineForTheAsset, true);
    assert_refused(
        &run,
        &[
            format!("::error title=classcache::{SUMS} of release {REF} of {REPOSITORY} (http://127.0.0.1:"),
            format!("has no single line \"<sha256>  {}\"", host_asset()),
            "nothing was installed. The release must list every binary asset".to_string(),
        ],
    );
}

#[test]
fn no_release_asset_falls_back_to_a_source_build() {
    let run = install_from_fake_release(Sums::Right, false);
    // PATH has no cargo here, so the source build cannot start and says what to add.
    assert_refused(
        &run,
        &[
            "no release asset at http://127.0.0.1:".to_string(),
            format!(
                "/{REPOSITORY}/releases/download/{REF}/{}; building from source",
                host_asset()
            ),
            "no cargo to build it".to_string(),
        ],
    );
}

#[test]
fn the_release_scripts_dry_run_assets_install_and_the_binary_runs() {
    // up.sh installs the cross compilers and qemu-user the release build needs.
    let _ = classcache_e2e::harness();
    let work = TempDir::new().unwrap();
    let release = release_dir(&work);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/release.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--dry-run", "--out"])
        .arg(&release)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} --dry-run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = install_from_release(work);
    assert!(run.success, "install failed:\n{}", run.output);
    assert!(
        run.output.contains(&format!("{}: OK", host_asset())),
        "{}",
        run.output
    );
    let out = Command::new(&run.installed)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("classcache-build ", env!("CARGO_PKG_VERSION")),
        "the installed binary is the release's classcache-build"
    );
}
