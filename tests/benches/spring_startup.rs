//! Benchmark of the Spring Boot example (PetClinic-sized) against Spring Boot's own archive flow,
//! per JDK (Spring Boot 3 on JDK 17, Spring Boot 4 on JDK 25): the same image and JVM, one run,
//! start-ups interleaved so that the machine's noise hits every variant alike. Variants:
//!
//! - (a) no archive: the image as it ships;
//! - (b) Spring Boot's documented flow: one training run with `-Dspring.context.exit=onRefresh`
//!   and `-XX:AOTCacheOutput` (JDK 25) or `-XX:ArchiveClassesAtExit` (JDK 17), then
//!   `-XX:AOTCache` / `-XX:SharedArchiveFile` on the command line, as Spring documents it;
//! - (c) classcache's archive, delivered through the pipeline: trained and pushed by the
//!   workspace's `classcache-build`, pulled back from the registry with `classcache-oci` into a
//!   directory that is mounted read-only at `/classcache`, with the run-time options of the
//!   archive's config in `JAVA_TOOL_OPTIONS` (after the workload's own value), as a pod gets it.
//!
//! Each without and with the OpenTelemetry Java agent attached through `JAVA_TOOL_OPTIONS`, as
//! fleets attach it. (c) with the agent uses the archive `classcache-build --agent-in-image` made
//! for agent workloads. Spring's flow trained with the agent attached makes no archive (JDK 17
//! refuses to dump without `-XX:+AllowArchivingWithJavaAgent`, JDK 25's cache assembly crashes;
//! tried once per JDK and printed), so (b) with the agent uses Spring's archive trained without it.
//!
//! Every container runs as the image's user (65532) on the host network, on a free port
//! (`SERVER_PORT`). Figures per start-up: Spring's `Started … in X seconds (process running for
//! Y)` and the time from `docker run` to the first HTTP 200 on `/owners`. Prints medians and
//! ratios; asserts nothing about speed.
//!
//! Run: `cargo build --release -p classcache-build && cargo bench -p classcache-e2e --bench
//! spring_startup` (BENCH_RUNS=N start-ups per variant, default 3). It needs the harness
//! (`bash tests/harness/up.sh`) and the `classcache-build` binary of the workspace.

use classcache_core::jvm::java_tool_options;
use classcache_core::paths::{pod_archive_dir, pod_archive_path};
use classcache_core::reference::RegistryRef;
use classcache_e2e::apps::{
    free_port, otel_agent_version, spring_boot_image, spring_started_seconds, train_report,
    SpringBoot, OTEL_AGENT_ENV, OTEL_AGENT_IN_IMAGE, SPRING_APP_JAR_IN_IMAGE, SPRING_APP_MAIN,
};
use classcache_e2e::cluster::workspace_binary;
use classcache_e2e::container::Container;
use classcache_e2e::{harness, unique_name, Harness};
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long one start-up or one training run may take on this noisy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const TRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a start-up polls `/owners`: connecting to a closed port costs next to nothing.
const POLL: Duration = Duration::from_millis(50);
/// Where Spring's archive is mounted in the container.
const SPRING_DIR: &str = "/spring";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A directory of this benchmark that the container's user (65532) can read (`mode` 0755) or
/// write (0777); removed when dropped.
fn shared_dir(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("classcache-spring-bench-")
        .tempdir()
        .expect("create a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
        .expect("chmod the temporary directory");
    dir
}

/// How one variant's container is started.
#[derive(Debug, Clone, Default)]
struct Launch {
    env: Vec<(String, String)>,
    /// `-v` arguments (`host:container:ro`).
    mounts: Vec<String>,
    /// `java` arguments replacing the image's entrypoint, when set.
    java_args: Option<Vec<String>>,
}

/// `docker run -d` arguments for `image` with `launch` on the host network, `SERVER_PORT=port`.
fn run_args(h: &Harness, name: &str, port: u16, image: &str, launch: &Launch) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        name.into(),
        "--network".into(),
        h.docker_network.clone(),
        "-e".into(),
        format!("SERVER_PORT={port}"),
    ];
    for (key, value) in &launch.env {
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    for mount in &launch.mounts {
        args.push("-v".into());
        args.push(mount.clone());
    }
    if launch.java_args.is_some() {
        args.extend(["--entrypoint".into(), "java".into()]);
    }
    args.push(image.into());
    args.extend(launch.java_args.iter().flatten().cloned());
    args
}

/// The agent's environment as production sets it ([`OTEL_AGENT_ENV`]).
fn agent_env() -> Vec<(String, String)> {
    OTEL_AGENT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// GET /owners on `port`: the HTTP status, or None while nothing answers.
fn owners_status(port: u16) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    stream
        .write_all(b"GET /owners HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// One start-up's figures.
#[derive(Debug, Clone)]
struct Start {
    started_s: f64,
    process_s: f64,
    first_200_s: f64,
    logs: String,
}

/// Starts `image` with `launch`, waits for the first 200 on /owners (polling every [`POLL`])
/// and for Spring's `Started` line, and removes the container.
fn start_once(h: &Harness, image: &str, launch: &Launch) -> Start {
    let port = free_port();
    let name = unique_name("spring-bench");
    let args = run_args(h, &name, port, image, launch);
    let begun = Instant::now();
    h.docker_ok(&args);
    let container = Container { h, name };
    let mut polls = 0u32;
    let first_200 = loop {
        if owners_status(port) == Some(200) {
            break begun.elapsed();
        }
        polls += 1;
        if polls.is_multiple_of(40) {
            assert!(
                container.running(),
                "{image} {launch:?} exited before answering /owners:\n{}",
                container.logs()
            );
        }
        assert!(
            begun.elapsed() < START_TIMEOUT,
            "{image} {launch:?}: no 200 on /owners in {START_TIMEOUT:?}:\n{}",
            container.logs()
        );
        std::thread::sleep(POLL);
    };
    loop {
        let logs = container.logs();
        if let Some((started_s, process_s)) = spring_started_seconds(&logs) {
            return Start {
                started_s,
                process_s,
                first_200_s: first_200.as_secs_f64(),
                logs,
            };
        }
        assert!(
            begun.elapsed() < START_TIMEOUT,
            "{image} {launch:?}: no `Started {SPRING_APP_MAIN}` line in {START_TIMEOUT:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A training run of Spring Boot's documented flow: its exit code, the time from `docker run`
/// to the container's exit, and its log.
struct SpringTraining {
    exit_code: Option<i64>,
    duration: Duration,
    logs: String,
}

/// The archive file Spring's flow writes on this JDK, the training option and the run-time option.
fn spring_flow_options(boot: SpringBoot) -> (&'static str, String, String) {
    if boot.jdk() >= 25 {
        let file = "app.aot";
        (
            file,
            format!("-XX:AOTCacheOutput={SPRING_DIR}/{file}"),
            format!("-XX:AOTCache={SPRING_DIR}/{file}"),
        )
    } else {
        let file = "app.jsa";
        (
            file,
            format!("-XX:ArchiveClassesAtExit={SPRING_DIR}/{file}"),
            format!("-XX:SharedArchiveFile={SPRING_DIR}/{file}"),
        )
    }
}

/// Spring Boot's training run (`java <option> -Dspring.context.exit=onRefresh -jar …`) into
/// `dir` (writable by the container's user), with the agent attached when `with_agent`.
fn spring_flow_training(
    h: &Harness,
    image: &str,
    boot: SpringBoot,
    dir: &Path,
    with_agent: bool,
) -> SpringTraining {
    let (_, training_option, _) = spring_flow_options(boot);
    let launch = Launch {
        env: if with_agent { agent_env() } else { vec![] },
        mounts: vec![format!("{}:{SPRING_DIR}", dir.display())],
        java_args: Some(vec![
            training_option,
            "-Dspring.context.exit=onRefresh".into(),
            "-jar".into(),
            SPRING_APP_JAR_IN_IMAGE.into(),
        ]),
    };
    let name = unique_name("spring-bench-train");
    let args = run_args(h, &name, free_port(), image, &launch);
    let begun = Instant::now();
    h.docker_ok(&args);
    let container = Container { h, name };
    let mut wait = h
        .command(&h.docker_cli)
        .arg("-H")
        .arg(&h.docker_host)
        .args(["wait", &container.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run docker wait");
    let status = loop {
        if let Some(status) = wait.try_wait().expect("docker wait runs") {
            break status;
        }
        if begun.elapsed() > TRAIN_TIMEOUT {
            let _ = wait.kill();
            let _ = wait.wait();
            let _ = h.docker(&["kill", &container.name]);
            return SpringTraining {
                exit_code: None,
                duration: begun.elapsed(),
                logs: container.logs(),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let duration = begun.elapsed();
    let mut out = String::new();
    if let Some(mut stdout) = wait.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    SpringTraining {
        exit_code: status.success().then(|| out.trim().parse().ok()).flatten(),
        duration,
        logs: container.logs(),
    }
}

/// What a failed JVM said: a fatal error's signal and problematic frame, or the error line and
/// the one after it, else the log's last line.
fn failure_lines(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().map(str::trim).collect();
    let after = |i: usize| lines.get(i + 1).copied().unwrap_or("");
    let shown: Vec<&str> = if lines
        .iter()
        .any(|l| l.contains("A fatal error has been detected"))
    {
        let signal = lines
            .iter()
            .find(|l| l.starts_with("#  SIG") || l.starts_with("#  Internal Error"))
            .copied();
        let frame = lines
            .iter()
            .position(|l| l.contains("Problematic frame"))
            .map(after);
        ["A fatal error has been detected by the JVM"]
            .into_iter()
            .chain(signal)
            .chain(frame)
            .collect()
    } else if let Some(i) = lines.iter().position(|l| {
        l.starts_with("Error") || l.contains("Exception in thread") || l.contains("[error]")
    }) {
        vec![lines[i], after(i)]
    } else {
        lines
            .iter()
            .rev()
            .find(|l| !l.is_empty())
            .copied()
            .into_iter()
            .collect()
    };
    shown
        .iter()
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.chars().take(160).collect::<String>())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// classcache's archive for one workload kind: the build's report, the archive pulled from the
/// registry into the archive's own directory, mounted read-only at [`pod_archive_dir`] as a pod
/// mounts it, and its run-time options.
struct Classcache {
    report: Value,
    build_wall: Duration,
    dir: tempfile::TempDir,
    /// `pod_archive_dir(pinned)`, where the container sees `dir`.
    mount_at: String,
    runtime_options: Vec<String>,
    pulled_bytes: u64,
}

/// Trains `image` with the workspace's `classcache-build` (for an agent workload with
/// `--agent-in-image`), which pushes the archive to the registry, then pulls it back.
fn classcache_archive(
    h: &Harness,
    rt: &tokio::runtime::Runtime,
    image: &str,
    with_agent: bool,
) -> Classcache {
    let port = free_port();
    let server_port = format!("SERVER_PORT={port}");
    let ready = format!("http://127.0.0.1:{port}/owners");
    let mut args: Vec<String> = vec!["--env".into(), server_port];
    if with_agent {
        args.extend(["--agent-in-image".into(), OTEL_AGENT_IN_IMAGE.into()]);
        for (key, value) in OTEL_AGENT_ENV {
            if *key != "JAVA_TOOL_OPTIONS" {
                args.extend(["--env".into(), format!("{key}={value}")]);
            }
        }
    }
    args.extend([
        "--ready-url".into(),
        ready,
        "--verify-runs".into(),
        "0".into(),
    ]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let begun = Instant::now();
    let report = train_report(h, image, &arg_refs);
    let build_wall = begun.elapsed();
    let reference = report["archive"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("classcache-build pushed nothing: {report:#}"))
        .to_string();
    let reference: RegistryRef = reference
        .parse()
        .unwrap_or_else(|e| panic!("{reference}: {e}"));
    let pinned = reference
        .digest
        .clone()
        .unwrap_or_else(|| panic!("{reference} is not pinned to a digest"));

    // As the node fetcher does: pull the pinned archive from the registry, verified, into the
    // archive's own directory the pod mounts read-only, under its own file name (known once
    // its config is pulled).
    let dir = shared_dir(0o755);
    let dest = dir.path().join("pulled");
    let pulled = rt
        .block_on(async {
            let client = RegistryClient::new(RegistryOptions::default())?;
            client.pull_archive(&reference, None, &dest).await
        })
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
    let archive_file = pulled.config.archive.name.clone();
    let named = dir.path().join(&archive_file);
    std::fs::rename(&pulled.path, &named).expect("name the pulled archive");
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o444))
        .expect("chmod the pulled archive");
    let pulled_bytes = std::fs::metadata(&named)
        .expect("the pulled archive exists")
        .len();
    let runtime_options = pulled
        .config
        .runtime_options_for(&pod_archive_path(pinned.as_str(), &archive_file));
    Classcache {
        report,
        build_wall,
        dir,
        mount_at: pod_archive_dir(pinned.as_str()),
        runtime_options,
        pulled_bytes,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    None,
    Spring,
    Classcache,
}

impl Archive {
    const ALL: [Archive; 3] = [Archive::None, Archive::Spring, Archive::Classcache];

    fn label(self) -> &'static str {
        match self {
            Archive::None => "(a) no archive",
            Archive::Spring => "(b) Spring Boot's flow",
            Archive::Classcache => "(c) classcache, via the registry",
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Lines of the JVM's own CDS / AOT messages in a start-up's log (mismatches, disabled archives).
fn jvm_archive_notes(logs: &str) -> impl Iterator<Item = String> + '_ {
    logs.lines()
        .filter(|l| {
            l.contains("[cds")
                || l.contains("[aot")
                || l.contains("AOT cache")
                || l.contains("shared archive")
                || l.contains("Sharing is only supported")
        })
        .map(|l| {
            // Without the JVM's uptime decoration (`[0.011s]`), so that runs repeat one note.
            let l = l.trim();
            let l = match l.split_once("s]") {
                Some((time, rest))
                    if time
                        .strip_prefix('[')
                        .is_some_and(|t| t.parse::<f64>().is_ok()) =>
                {
                    rest
                }
                _ => l,
            };
            l.chars().take(200).collect()
        })
}

fn bench_jdk(h: &Harness, rt: &tokio::runtime::Runtime, boot: SpringBoot, runs: usize) {
    eprintln!(
        "spring_startup: Spring Boot {} on JDK {}: building the image",
        boot.version(),
        boot.jdk()
    );
    let image = spring_boot_image(h, boot);

    eprintln!("spring_startup: {image}: classcache-build for a workload without the agent");
    let cc_plain = classcache_archive(h, rt, &image, false);
    eprintln!("spring_startup: {image}: classcache-build --agent-in-image {OTEL_AGENT_IN_IMAGE}");
    let cc_agent = classcache_archive(h, rt, &image, true);

    eprintln!("spring_startup: {image}: Spring Boot's training run (without the agent)");
    let (spring_file, _, spring_runtime_option) = spring_flow_options(boot);
    let spring_dir = shared_dir(0o777);
    let spring = spring_flow_training(h, &image, boot, spring_dir.path(), false);
    let spring_archive = spring_dir.path().join(spring_file);
    assert!(
        spring.exit_code == Some(0) && spring_archive.is_file(),
        "Spring Boot's training run on {image} failed (exit {:?}) or wrote no {spring_file}:\n{}",
        spring.exit_code,
        spring.logs
    );
    std::fs::set_permissions(&spring_archive, std::fs::Permissions::from_mode(0o644))
        .expect("chmod Spring's archive");
    let spring_size = std::fs::metadata(&spring_archive).unwrap().len();

    eprintln!("spring_startup: {image}: Spring Boot's training run with the agent attached (once)");
    let crash_dir = shared_dir(0o777);
    let spring_with_agent = spring_flow_training(h, &image, boot, crash_dir.path(), true);
    let crash_archive = crash_dir.path().join(spring_file).is_file();
    drop(crash_dir);

    let launch = |archive: Archive, with_agent: bool| -> Launch {
        let mut env = if with_agent { agent_env() } else { vec![] };
        match archive {
            Archive::None => Launch {
                env,
                ..Launch::default()
            },
            Archive::Spring => Launch {
                env,
                mounts: vec![format!("{}:{SPRING_DIR}:ro", spring_dir.path().display())],
                java_args: Some(vec![
                    spring_runtime_option.clone(),
                    "-jar".into(),
                    SPRING_APP_JAR_IN_IMAGE.into(),
                ]),
            },
            Archive::Classcache => {
                let cc = if with_agent { &cc_agent } else { &cc_plain };
                // The pod template edit: the archive's options after the workload's own value.
                let own = env
                    .iter()
                    .position(|(k, _)| k == "JAVA_TOOL_OPTIONS")
                    .map(|i| env.remove(i).1);
                env.push((
                    "JAVA_TOOL_OPTIONS".into(),
                    java_tool_options(own.as_deref(), &cc.runtime_options),
                ));
                Launch {
                    env,
                    mounts: vec![format!("{}:{}:ro", cc.dir.path().display(), cc.mount_at)],
                    java_args: None,
                }
            }
        }
    };
    let variants: Vec<(Archive, bool)> = [false, true]
        .into_iter()
        .flat_map(|agent| Archive::ALL.map(|a| (a, agent)))
        .collect();
    let launches: Vec<Launch> = variants.iter().map(|&(a, g)| launch(a, g)).collect();
    let mut starts: Vec<Vec<Start>> = vec![vec![]; variants.len()];
    for round in 0..runs {
        // Rotate the order each round, so no variant always runs first or after the same one.
        for i in (0..variants.len()).map(|i| (i + round) % variants.len()) {
            let (archive, agent) = variants[i];
            let start = start_once(h, &image, &launches[i]);
            eprintln!(
                "spring_startup: JDK {} round {}/{runs} {} {}: Started in {:.3} s, running for {:.3} s, first 200 {:.2} s",
                boot.jdk(),
                round + 1,
                archive.label(),
                if agent { "with the agent" } else { "without the agent" },
                start.started_s,
                start.process_s,
                start.first_200_s
            );
            starts[i].push(start);
        }
    }

    let jvm = &cc_plain.report["jvm"];
    println!();
    println!(
        "Spring Boot {} on JDK {} ({} {}), {runs} start-ups per variant, interleaved; medians; first 200 = docker run to the first HTTP 200 on /owners",
        boot.version(),
        boot.jdk(),
        jvm["vendor"].as_str().unwrap_or("?"),
        jvm["version"].as_str().unwrap_or("?"),
    );
    println!(
        "  {:<44} {:>11} {:>12} {:>10} {:>16}",
        "", "Started in", "running for", "first 200", "first 200 range"
    );
    let version = otel_agent_version();
    for (group, agent) in [
        ("without the agent".to_string(), false),
        (format!("with the OpenTelemetry agent {version}"), true),
    ] {
        println!("  {group}");
        let starts_of = |archive: Archive| -> &[Start] {
            let i = variants
                .iter()
                .position(|&v| v == (archive, agent))
                .expect("every variant ran");
            &starts[i]
        };
        let figures = |archive: Archive| -> [f64; 3] {
            let s = starts_of(archive);
            [
                median(&s.iter().map(|s| s.started_s).collect::<Vec<_>>()),
                median(&s.iter().map(|s| s.process_s).collect::<Vec<_>>()),
                median(&s.iter().map(|s| s.first_200_s).collect::<Vec<_>>()),
            ]
        };
        for archive in Archive::ALL {
            let [x, y, t] = figures(archive);
            let first: Vec<f64> = starts_of(archive).iter().map(|s| s.first_200_s).collect();
            let low = first.iter().copied().fold(f64::INFINITY, f64::min);
            let high = first.iter().copied().fold(0.0, f64::max);
            println!(
                "    {:<42} {x:>9.3} s {y:>10.3} s {t:>8.2} s {:>14}",
                archive.label(),
                format!("{low:.1}-{high:.1} s"),
            );
        }
        let [ax, ay, at] = figures(Archive::None);
        let [bx, by, bt] = figures(Archive::Spring);
        let [cx, cy, ct] = figures(Archive::Classcache);
        println!(
            "    {:<42} {:>10.2}x {:>11.2}x {:>9.2}x",
            "(c) vs (b): (b)/(c) time, goal >= 1.00",
            bx / cx,
            by / cy,
            bt / ct
        );
        println!(
            "    {:<42} {:>10.2}x {:>11.2}x {:>9.2}x",
            "(c) vs (a): (a)/(c) time",
            ax / cx,
            ay / cy,
            at / ct
        );
    }
    println!("  archives and build times");
    println!(
        "    (b) Spring Boot's flow: {spring_file} {:.1} MB, training run {:.1} s (docker run to exit), trained without the agent; run with `{spring_runtime_option}`",
        mb(spring_size),
        spring.duration.as_secs_f64()
    );
    for (what, cc) in [
        ("without the agent", &cc_plain),
        ("--agent-in-image", &cc_agent),
    ] {
        let r = &cc.report;
        let ms = |v: &Value| v.as_f64().unwrap_or(0.0) / 1000.0;
        println!(
            "    (c) classcache {what}: {} {} {:.1} MB (pulled {:.1} MB), build {:.1} s total (training {:.1} s, phases.totalMs; {:.1} s wall), {} of {} classes from the archive; JAVA_TOOL_OPTIONS += {}",
            r["kind"].as_str().unwrap_or("?"),
            r["archive"]["fileName"].as_str().unwrap_or("?"),
            mb(r["archive"]["size"].as_u64().unwrap_or(0)),
            mb(cc.pulled_bytes),
            ms(&r["phases"]["totalMs"]),
            ms(&r["phases"]["trainingMs"]),
            cc.build_wall.as_secs_f64(),
            r["classes"]["fromArchive"],
            r["classes"]["total"],
            cc.runtime_options.join(" ")
        );
    }
    println!(
        "    Spring Boot's flow trained with the agent attached: {} after {:.1} s, {}: {}",
        match spring_with_agent.exit_code {
            Some(0) => "exit 0".to_string(),
            Some(code) => format!("exit {code}"),
            None => "no exit (killed at the time-out)".to_string(),
        },
        spring_with_agent.duration.as_secs_f64(),
        if crash_archive {
            format!("{spring_file} written")
        } else {
            format!("no {spring_file}")
        },
        failure_lines(&spring_with_agent.logs)
    );
    let mut noted = false;
    for (i, &(archive, agent)) in variants.iter().enumerate() {
        let notes: BTreeSet<String> = starts[i]
            .iter()
            .flat_map(|s| jvm_archive_notes(&s.logs))
            .collect();
        for note in notes.iter().take(4) {
            if !noted {
                println!("  the JVM's archive messages at start-up");
                noted = true;
            }
            println!(
                "    {} {}: {note}",
                archive.label(),
                if agent { "with the agent" } else { "without" }
            );
        }
    }
}

fn main() {
    let runs = env_number("BENCH_RUNS", 3).max(1);
    let h = harness();
    let build = workspace_binary("classcache-build");
    let built = std::fs::metadata(&build)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |age| {
            format!(", built {:.0} min ago", age.as_secs_f64() / 60.0)
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "spring_startup: Spring Boot's own archive flow vs classcache's, with and without the OpenTelemetry agent ({}{built})",
        build.display()
    );
    for boot in SpringBoot::ALL {
        bench_jdk(h, &rt, boot, runs);
    }
}
