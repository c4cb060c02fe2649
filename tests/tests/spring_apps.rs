//! The Spring Boot example images as they ship, on the harness's real Docker engine: each starts
//! as its non-root user and serves, alone and with the OpenTelemetry Java agent attached through
//! `JAVA_TOOL_OPTIONS` as production attaches it. It must not train or time-assert anything: it
//! prints the start-up time Spring reports, the benchmarks compare them.

use classcache_e2e::apps::{
    free_port, otel_agent_version, spring_boot_image, spring_started_seconds, SpringBoot,
    OTEL_AGENT_ENV, OTEL_AGENT_IN_IMAGE, SPRING_APP_JAR_IN_IMAGE, SPRING_APP_MAIN,
};
use classcache_e2e::container::Container;
use classcache_e2e::{harness, step, unique_name, Harness};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each run needs both cores for a start-up time worth printing: one container at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long a start may take on this noisy 2-core machine (the JDK 25 image has no base CDS
/// archive, and the agent instruments as the classes load).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// `curl` to `url`: (HTTP status, body); status 0 when nothing answers.
fn http(method: &str, url: &str, json_body: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(body) = json_body {
        command.args(["-H", "content-type: application/json", "--data", body]);
    }
    let output = command.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// What one run of the image showed: Spring's own figures and the wall clock to the first 200.
struct Run {
    started_s: f64,
    process_s: f64,
    first_200: Duration,
    logs: String,
}

/// Runs `image` on the host network on a free port (`SERVER_PORT`) with `env`, waits for
/// Spring's `Started` line and a 200 on /owners, checks the API and the user, and stops it.
fn run_and_check(h: &Harness, image: &str, env: &[(&str, &str)]) -> Run {
    let port = free_port();
    let name = unique_name("spring-app");
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--network".into(),
        h.docker_network.clone(),
        "-e".into(),
        format!("SERVER_PORT={port}"),
    ];
    for (key, value) in env {
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    args.push(image.to_string());
    let begun = Instant::now();
    h.docker_ok(&args);
    let container = Container { h, name };
    let base = format!("http://127.0.0.1:{port}");

    let mut first_200 = None;
    let (started_s, process_s) = loop {
        let logs = container.logs();
        if first_200.is_none() && http("GET", &format!("{base}/owners"), None).0 == 200 {
            first_200 = Some(begun.elapsed());
        }
        if let Some(seconds) = spring_started_seconds(&logs) {
            break seconds;
        }
        assert!(
            container.running(),
            "{image} exited before Spring's `Started {SPRING_APP_MAIN}` line:\n{logs}"
        );
        assert!(
            begun.elapsed() < START_TIMEOUT,
            "{image} logged no `Started {SPRING_APP_MAIN}` line in {START_TIMEOUT:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let owners = loop {
        let (status, body) = http("GET", &format!("{base}/owners"), None);
        if status == 200 {
            first_200.get_or_insert_with(|| begun.elapsed());
            break body;
        }
        assert!(
            begun.elapsed() < START_TIMEOUT,
            "{image}: GET /owners answered {status} after Spring started:\n{body}\n{}",
            container.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        owners.starts_with('[') && owners.contains("\"lastName\":\"Franklin\""),
        "{image}: GET /owners is not the seeded owners as a JSON list: {owners}"
    );
    let (status, health) = http("GET", &format!("{base}/actuator/health"), None);
    assert!(
        status == 200 && health.contains("\"UP\""),
        "{image}: /actuator/health answered {status}: {health}"
    );
    // A validated request body: an owner without a last name or telephone is refused.
    let (status, body) = http(
        "POST",
        &format!("{base}/owners"),
        Some(r#"{"firstName":"Ada","address":"1 Main St.","city":"Madison"}"#),
    );
    assert!(
        status == 400 && body.contains("telephone"),
        "{image}: an invalid owner answered {status}: {body}"
    );
    // The JVM runs as the image's non-root user (it is PID 1).
    let status = h.docker_ok(&["exec", &container.name, "cat", "/proc/1/status"]);
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{image}: the JVM does not run as uid 65532: {uid}"
    );
    Run {
        started_s,
        process_s,
        first_200: first_200.expect("set once /owners answered 200"),
        logs: container.logs(),
    }
}

fn check_image(boot: SpringBoot) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let h = harness();
    step(&format!("build the Spring Boot {} image", boot.version()));
    let image = spring_boot_image(h, boot);
    let config = h.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}} {{json .Config.Entrypoint}}",
        &image,
    ]);
    assert_eq!(
        config,
        format!(r#"65532:65532 ["java","-jar","{SPRING_APP_JAR_IN_IMAGE}"]"#),
        "{image}: user and entrypoint"
    );

    step(&format!("{image} as it ships"));
    let plain = run_and_check(h, &image, &[]);
    assert!(
        !plain.logs.contains("opentelemetry-javaagent"),
        "{image} attached the agent by default:\n{}",
        plain.logs
    );

    step(&format!("{image} with the OpenTelemetry agent"));
    let with_agent = run_and_check(h, &image, OTEL_AGENT_ENV);
    let version = otel_agent_version();
    let banner = format!("opentelemetry-javaagent - version: {version}");
    assert!(
        with_agent.logs.contains(&banner),
        "{image} with JAVA_TOOL_OPTIONS=-javaagent:{OTEL_AGENT_IN_IMAGE}: no `{banner}` in its log:\n{}",
        with_agent.logs
    );
    assert!(
        with_agent.logs.contains("Picked up JAVA_TOOL_OPTIONS"),
        "{image}: the JVM did not pick up JAVA_TOOL_OPTIONS:\n{}",
        with_agent.logs
    );

    let with_label = format!("with the agent {version}");
    for (what, run) in [("without the agent", &plain), (&*with_label, &with_agent)] {
        eprintln!(
            "Spring Boot {} on JDK {} {what}: Started in {:.3} s (process running for {:.3} s), first HTTP 200 {:.1} s after docker run",
            boot.version(),
            boot.jdk(),
            run.started_s,
            run.process_s,
            run.first_200.as_secs_f64()
        );
    }
}

#[test]
fn spring_boot_3_on_jdk17_serves_with_and_without_the_otel_agent() {
    check_image(SpringBoot::Three);
}

#[test]
fn spring_boot_4_on_jdk25_serves_with_and_without_the_otel_agent() {
    check_image(SpringBoot::Four);
}
