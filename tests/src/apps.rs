//! Images of JVM apps that run as a non-root user, built here and pushed to the harness
//! registry (the cluster's nodes pull them under the same reference), and their training with
//! the workspace's `classcache-build`:
//!
//! - [`example_app_image`]: the example shop app (`examples/`) on the harness's JDK 17.
//! - [`tomcat_image`]: Debian's Tomcat 10 with its examples and manager webapps on the same JDK.
//! - [`spring_boot_image`]: the PetClinic-sized Spring Boot service (`examples/spring-boot-3`
//!   on JDK 17, `examples/spring-boot-4` on JDK 25), built with Maven from Maven Central, with
//!   the OpenTelemetry Java agent ([`otel_agent_jar`]) in the image at [`OTEL_AGENT_IN_IMAGE`].
//!
//! Each image is built once per test process; the references are unique, so concurrent test
//! processes never share (or overwrite) one another's images and archives.

use crate::cluster::workspace_binary;
use crate::{repo_root, unique_name, Harness};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The user every app image runs as: a user that owns nothing on the node, as production
/// images do (distroless's `nonroot`).
pub const APP_USER: &str = "65532:65532";

/// Tomcat's HTTP port inside the image. Training runs on the host network, so it moves the
/// port with [`TOMCAT_PORT_ENV`] there; pods have their own network and keep this one.
pub const TOMCAT_PORT: u16 = 8080;

/// The environment variable the Tomcat image's `server.xml` takes its HTTP port from
/// (`${TOMCAT_HTTP_PORT:-8080}`, resolved by Tomcat's `EnvironmentPropertySource`).
pub const TOMCAT_PORT_ENV: &str = "TOMCAT_HTTP_PORT";

/// A JSP (compiled by Jasper at the first request) and a servlet of Debian's examples webapp,
/// requested during training so their classes are in the archive too.
pub const TOMCAT_WARMUP_PATHS: &[&str] = &[
    "/examples/jsp/jsp2/el/basic-arithmetic.jsp",
    "/examples/servlets/servlet/HelloWorldExample",
];

/// The example app's jar, built once per test process with the project's own script
/// (`examples/build-example-app.sh`); it lives as long as the process.
pub fn example_jar() -> &'static Path {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| {
        let out = tempfile::tempdir().unwrap().keep();
        let status = Command::new("bash")
            .arg(repo_root().join("examples/build-example-app.sh"))
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run examples/build-example-app.sh");
        assert!(status.success(), "examples/build-example-app.sh failed");
        out.join("app.jar")
    })
}

/// An image of the example app (`examples/docker/Dockerfile`) `FROM base` with `cmd` and the
/// `extra_dockerfile` lines, pushed to the harness registry under a fresh repository.
/// Returns (reference, repository, platform manifest digest).
pub fn app_image(
    h: &Harness,
    base: &str,
    cmd: &[&str],
    extra_dockerfile: &str,
) -> (String, String, String) {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(example_jar(), context.path().join("app.jar")).unwrap();
    let dockerfile =
        std::fs::read_to_string(repo_root().join("examples/docker/Dockerfile")).unwrap();
    let dockerfile = dockerfile.replace(
        "ARG BASE=eclipse-temurin:25-jre",
        &format!("ARG BASE={base}"),
    );
    let cmd_json = serde_json::to_string(cmd).unwrap();
    let dockerfile = format!("{dockerfile}\nCMD {cmd_json}\n{extra_dockerfile}\n");
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let repository = h.registry_ref(&unique_name("build-test/app"));
    let reference = format!("{repository}:1");
    h.docker_build(context.path(), &reference);
    h.docker_ok(&["push", "-q", &reference]);
    let digest = h.repo_digest(&reference);
    (reference, repository, digest)
}

/// The example app on the harness's JDK 17 as the non-root user [`APP_USER`], as production
/// images run, in the harness registry (built once per process). Its CMD trains (`run`);
/// Deployments pass `serve`. Returns its reference.
pub fn example_app_image(h: &Harness) -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| app_image(h, &h.jdk17_image, &["run"], &format!("USER {APP_USER}")).0)
        .clone()
}

/// Trains `image` with the workspace's `classcache-build` (`extra_args` are its options,
/// such as `--verify-runs 1`) and pushes the archive next to the image; panics with its output
/// when it fails.
pub fn train(h: &Harness, image: &str, extra_args: &[&str]) {
    train_report(h, image, extra_args);
}

/// [`example_app_image`], trained and pushed once per test process by classcache-build with one
/// verification run (its archive's subject is this image). Returns the image reference.
pub fn trained_example_app(h: &Harness) -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = example_app_image(h);
        train(h, &image, &["--verify-runs", "1"]);
        image
    })
}

/// [`train`], returning `classcache-build`'s JSON report (`classes.total`,
/// `classes.fromArchive`, `archive.reference`…).
pub fn train_report(h: &Harness, image: &str, extra_args: &[&str]) -> Value {
    let report_dir = tempfile::tempdir().unwrap();
    let report = report_dir.path().join("report.json");
    let output = h
        .command(workspace_binary("classcache-build"))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_EVENT_NAME")
        .arg("--report")
        .arg(&report)
        .args(extra_args)
        .arg(image)
        .output()
        .expect("run classcache-build");
    assert!(
        output.status.success(),
        "classcache-build {extra_args:?} {image} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("classcache-build wrote no report {}: {e}", report.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", report.display()))
}

/// Trains the [`tomcat_image`] `image`: Tomcat serves until stopped, so the run ends with
/// SIGTERM (Tomcat's clean shutdown, at which the JVM writes the archive) once its root page
/// answers and the [`TOMCAT_WARMUP_PATHS`] were requested. Training runs on the host network,
/// on a free port. Returns the report.
pub fn train_tomcat(h: &Harness, image: &str) -> Value {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = format!("{TOMCAT_PORT_ENV}={port}");
    let ready = format!("{base}/");
    let warmups: Vec<String> = TOMCAT_WARMUP_PATHS
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    let mut args = vec![
        "--env",
        &env,
        "--ready-url",
        &ready,
        "--warmup-requests",
        "3",
        "--verify-runs",
        "1",
        "--timeout",
        "5m",
    ];
    for url in &warmups {
        args.extend(["--warmup-url", url.as_str()]);
    }
    train_report(h, image, &args)
}

/// A TCP port nothing listens on right now (on loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port on 127.0.0.1")
}

/// Where Debian puts what the image is made of (packages `tomcat10`, `tomcat10-examples`,
/// `tomcat10-admin`, and their `libtomcat10-java`, `libeclipse-jdt-core-java`).
const TOMCAT_HOST_FILES: &[&str] = &[
    "/usr/share/tomcat10/bin/bootstrap.jar",
    "/usr/share/tomcat10/bin/tomcat-juli.jar",
    "/usr/share/tomcat10/lib/catalina.jar",
    "/usr/share/java/eclipse-jdt-core.jar",
    "/etc/tomcat10/server.xml",
    "/etc/tomcat10/web.xml",
    "/var/lib/tomcat10/webapps/ROOT/index.html",
    "/usr/share/tomcat10-examples/examples/WEB-INF/web.xml",
    "/usr/share/tomcat10-admin/manager/WEB-INF/web.xml",
];
const TOMCAT_PACKAGES: &[&str] = &["tomcat10", "tomcat10-examples", "tomcat10-admin"];

/// Copies the files of Debian's Tomcat 10 into `fs/` of the build context: CATALINA_HOME
/// `/usr/share/tomcat10` with real jars (`cp -L` through Debian's links into
/// `/usr/share/java`, plus Jasper's JSP compiler, which its manifest names), the examples and
/// manager webapps at the paths their context files name, and CATALINA_BASE
/// `/var/lib/tomcat10` (conf/, webapps/ROOT, logs/, temp/, work/). The HTTP connector takes
/// its port from `$TOMCAT_HTTP_PORT` (default 8080).
const TOMCAT_CONTEXT_SCRIPT: &str = r#"set -euo pipefail
fs=$1/fs
home=$fs/usr/share/tomcat10 base=$fs/var/lib/tomcat10
mkdir -p "$home/bin" "$home/lib" "$base/webapps" "$fs/usr/share"
cp -L /usr/share/tomcat10/bin/bootstrap.jar /usr/share/tomcat10/bin/tomcat-juli.jar "$home/bin/"
cp -L /usr/share/tomcat10/lib/*.jar /usr/share/java/eclipse-jdt-core.jar "$home/lib/"
cp -rL /usr/share/tomcat10-examples /usr/share/tomcat10-admin "$fs/usr/share/"
cp -rL /etc/tomcat10 "$base/conf"
rm -rf "$base/conf/policy.d"
cp -rL /var/lib/tomcat10/webapps/ROOT "$base/webapps/"
mkdir -p "$base/logs" "$base/temp" "$base/work" "$base/lib"
sed -i 's|<Connector port="8080" protocol="HTTP/1.1"|<Connector port="${TOMCAT_HTTP_PORT:-8080}" protocol="HTTP/1.1"|' "$base/conf/server.xml"
grep -q 'TOMCAT_HTTP_PORT' "$base/conf/server.xml" || { echo "server.xml has no HTTP connector on 8080 to parameterize" >&2; exit 1; }
if find "$fs" -type l | grep -q .; then echo "symbolic links left in the image: $(find "$fs" -type l)" >&2; exit 1; fi
chmod -R a+rX,go-w "$fs"
"#;

/// The `java` command line Tomcat's `catalina.sh run` would build (JDK 17, no
/// `setenv.sh`), in the foreground, with Debian's CATALINA_HOME and CATALINA_BASE.
const TOMCAT_COMMAND: &[&str] = &[
    "java",
    "-Dorg.apache.tomcat.util.digester.PROPERTY_SOURCE=org.apache.tomcat.util.digester.EnvironmentPropertySource",
    "-Djava.util.logging.config.file=/var/lib/tomcat10/conf/logging.properties",
    "-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djava.protocol.handler.pkgs=org.apache.catalina.webresources",
    "-Dorg.apache.catalina.security.SecurityListener.UMASK=0022",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.rmi/sun.rmi.transport=ALL-UNNAMED",
    "-classpath",
    "/usr/share/tomcat10/bin/bootstrap.jar:/usr/share/tomcat10/bin/tomcat-juli.jar",
    "-Dcatalina.base=/var/lib/tomcat10",
    "-Dcatalina.home=/usr/share/tomcat10",
    "-Djava.io.tmpdir=/var/lib/tomcat10/temp",
    "org.apache.catalina.startup.Bootstrap",
    "start",
];

/// Debian's Tomcat 10 (with the examples, manager and host-manager webapps) on the harness's
/// JDK 17 image, running as uid 65532, pushed to the harness registry (built once per
/// process). Returns its reference, `127.0.0.1:5055/apps/tomcat10-…:10`.
pub fn tomcat_image(h: &Harness) -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            check_tomcat_files();
            let context = tempfile::tempdir().unwrap();
            let output = Command::new("bash")
                .arg("-c")
                .arg(TOMCAT_CONTEXT_SCRIPT)
                .arg("tomcat-context")
                .arg(context.path())
                .output()
                .expect("bash runs");
            assert!(
                output.status.success(),
                "copying Debian's Tomcat 10 into {} failed: {}",
                context.path().display(),
                String::from_utf8_lossy(&output.stderr)
            );
            let command = serde_json::to_string(TOMCAT_COMMAND).unwrap();
            let dockerfile = format!(
                "FROM {base}\n\
                 COPY fs/usr/ /usr/\n\
                 COPY --chown={APP_USER} fs/var/lib/tomcat10/ /var/lib/tomcat10/\n\
                 ENV CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/var/lib/tomcat10\n\
                 WORKDIR /var/lib/tomcat10\n\
                 USER {APP_USER}\n\
                 EXPOSE {TOMCAT_PORT}\n\
                 CMD {command}\n",
                base = h.jdk17_image,
            );
            std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
            let image = format!("{}:10", h.registry_ref(&unique_name("apps/tomcat10")));
            h.docker_build(context.path(), &image);
            h.docker_ok(&["push", "-q", &image]);
            image
        })
        .clone()
}

/// Fails, naming the fix, when a file of Debian's Tomcat the image needs is missing:
/// `tests/harness/up.sh` installs the packages, tests install nothing.
fn check_tomcat_files() {
    let missing: Vec<_> = TOMCAT_HOST_FILES
        .iter()
        .filter(|f| !Path::new(f).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} missing: run tests/harness/up.sh, which installs {}",
        TOMCAT_PACKAGES.join(" ")
    );
}

/// A Spring Boot generation of the PetClinic example: one source tree
/// (`examples/spring-boot-3/src`), built under each parent by `examples/spring-apps.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpringBoot {
    /// `examples/spring-boot-3`: Spring Boot 3.5.7, on the harness's JDK 17.
    Three,
    /// `examples/spring-boot-4`: Spring Boot 4.0.7 (compiled for Java 17), on the harness's JDK 25.
    Four,
}

impl SpringBoot {
    pub const ALL: [SpringBoot; 2] = [SpringBoot::Three, SpringBoot::Four];

    /// The version of `spring-boot-starter-parent` in its pom (the image's tag).
    pub fn version(self) -> &'static str {
        match self {
            SpringBoot::Three => "3.5.7",
            SpringBoot::Four => "4.0.7",
        }
    }

    /// The major version, as `examples/spring-apps.sh jar` takes it.
    pub fn major(self) -> u8 {
        match self {
            SpringBoot::Three => 3,
            SpringBoot::Four => 4,
        }
    }

    /// The feature release of the JDK its image runs on.
    pub fn jdk(self) -> u8 {
        match self {
            SpringBoot::Three => 17,
            SpringBoot::Four => 25,
        }
    }

    /// The harness's JDK image its image is built `FROM`.
    pub fn base_image(self, h: &Harness) -> &str {
        match self {
            SpringBoot::Three => &h.jdk17_image,
            SpringBoot::Four => &h.jdk25_image,
        }
    }
}

/// The class Spring logs as `Started PetClinicApplication in X seconds (process running for Y)`.
pub const SPRING_APP_MAIN: &str = "PetClinicApplication";

/// The Spring Boot image's HTTP port (Spring's default). Runs on the host network move it with
/// the `SERVER_PORT` environment variable; pods keep this one.
pub const SPRING_PORT: u16 = 8080;

/// The extracted application jar the Spring Boot image runs (`java -jar` this); its manifest's
/// class path names `/app/lib/`.
pub const SPRING_APP_JAR_IN_IMAGE: &str = "/app/petclinic.jar";

/// Where the Spring Boot images hold the OpenTelemetry Java agent; nothing attaches it by default.
pub const OTEL_AGENT_IN_IMAGE: &str = "/otel/opentelemetry-javaagent.jar";

/// The environment that attaches the agent in the image as production fleets do, exporting
/// nothing (so it needs no collector). Pass each as `docker run -e NAME=VALUE`.
pub const OTEL_AGENT_ENV: &[(&str, &str)] = &[
    (
        "JAVA_TOOL_OPTIONS",
        "-javaagent:/otel/opentelemetry-javaagent.jar",
    ),
    ("OTEL_TRACES_EXPORTER", "none"),
    ("OTEL_METRICS_EXPORTER", "none"),
    ("OTEL_LOGS_EXPORTER", "none"),
];

/// Runs `examples/spring-apps.sh` with `args` and returns the path it prints; panics with its
/// output when it fails.
fn spring_apps_script(args: &[&str]) -> PathBuf {
    let script = repo_root().join("examples/spring-apps.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{}{}",
        script.display(),
        args.join(" "),
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(stdout.trim());
    assert!(
        path.is_file(),
        "{} {} printed {path:?}, which is no file",
        script.display(),
        args.join(" ")
    );
    path
}

/// The Spring Boot example's executable jar (`petclinic.jar`), built by Maven once per pom and
/// source hash and cached under `/var/cache/classcache` (`examples/spring-apps.sh jar`).
pub fn spring_boot_jar(boot: SpringBoot) -> PathBuf {
    static THREE: OnceLock<PathBuf> = OnceLock::new();
    static FOUR: OnceLock<PathBuf> = OnceLock::new();
    let cell = match boot {
        SpringBoot::Three => &THREE,
        SpringBoot::Four => &FOUR,
    };
    cell.get_or_init(|| spring_apps_script(&["jar", &boot.major().to_string()]))
        .clone()
}

/// The OpenTelemetry Java agent's jar (`io.opentelemetry.javaagent:opentelemetry-javaagent`,
/// the version `examples/spring-apps.sh` pins), downloaded once into the cached Maven repository.
pub fn otel_agent_jar() -> PathBuf {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| spring_apps_script(&["otel-agent"]))
        .clone()
}

/// The version of [`otel_agent_jar`], from its Maven file name
/// (`opentelemetry-javaagent-<version>.jar`): the agent logs it at start-up.
pub fn otel_agent_version() -> String {
    let jar = otel_agent_jar();
    let name = jar.file_name().unwrap_or_default().to_string_lossy();
    name.strip_prefix("opentelemetry-javaagent-")
        .and_then(|n| n.strip_suffix(".jar"))
        .unwrap_or_else(|| panic!("{}: not a Maven opentelemetry-javaagent jar", jar.display()))
        .to_string()
}

/// The Spring Boot example's image (`examples/docker/spring-boot.Dockerfile`) `FROM` the
/// harness's JDK image for `boot`: the jar extracted with Spring Boot's tools jarmode at build
/// time, the OpenTelemetry agent at [`OTEL_AGENT_IN_IMAGE`] (not attached), user 65532,
/// entrypoint `java -jar /app/petclinic.jar`. Pushed to the harness registry once per process;
/// returns its reference, `127.0.0.1:5055/examples/spring-boot-3-…:3.5.7`.
pub fn spring_boot_image(h: &Harness, boot: SpringBoot) -> String {
    static THREE: OnceLock<String> = OnceLock::new();
    static FOUR: OnceLock<String> = OnceLock::new();
    let cell = match boot {
        SpringBoot::Three => &THREE,
        SpringBoot::Four => &FOUR,
    };
    cell.get_or_init(|| {
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(spring_boot_jar(boot), context.path().join("petclinic.jar")).unwrap();
        std::fs::copy(
            otel_agent_jar(),
            context.path().join("opentelemetry-javaagent.jar"),
        )
        .unwrap();
        let dockerfile =
            std::fs::read_to_string(repo_root().join("examples/docker/spring-boot.Dockerfile"))
                .unwrap();
        let default_base = "ARG BASE=eclipse-temurin:25-jre";
        assert!(
            dockerfile.contains(default_base),
            "examples/docker/spring-boot.Dockerfile has no `{default_base}` line to replace"
        );
        let dockerfile =
            dockerfile.replace(default_base, &format!("ARG BASE={}", boot.base_image(h)));
        std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
        let repository = h.registry_ref(&unique_name(&format!(
            "examples/spring-boot-{}",
            boot.major()
        )));
        let image = format!("{repository}:{}", boot.version());
        h.docker_build(context.path(), &image);
        h.docker_ok(&["push", "-q", &image]);
        image
    })
    .clone()
}

/// The seconds Spring reports in its `Started <App> in X seconds (process running for Y)` line
/// of `log`: (X, Y), or None before that line.
pub fn spring_started_seconds(log: &str) -> Option<(f64, f64)> {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("Started {SPRING_APP_MAIN} in ")))?;
    let after = line.split_once(" in ")?.1;
    let started = after.split_whitespace().next()?.parse().ok()?;
    let running = after
        .split_once("process running for ")?
        .1
        .trim_end_matches(')')
        .trim()
        .parse()
        .ok()?;
    Some((started, running))
}

/// Trains the Spring Boot example's image for `boot` with the workspace's classcache-build, for a
/// workload that attaches the OpenTelemetry agent the image ships (`with_agent`: trained with
/// `--agent-in-image`) or none, driving it to its first `/owners` answer on a free port of the
/// host network (the agent exports nothing). Pushes the archive; returns the build's report.
pub fn train_spring_boot(
    h: &Harness,
    boot: SpringBoot,
    with_agent: bool,
    extra_args: &[&str],
) -> Value {
    let image = spring_boot_image(h, boot);
    let port = free_port();
    let server_port = format!("SERVER_PORT={port}");
    let ready = format!("http://127.0.0.1:{port}/owners");
    let exporters: Vec<String> = OTEL_AGENT_ENV
        .iter()
        .filter(|(name, _)| *name != "JAVA_TOOL_OPTIONS")
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut args: Vec<&str> = vec!["--env", &server_port, "--ready-url", &ready];
    for e in &exporters {
        args.extend(["--env", e.as_str()]);
    }
    if with_agent {
        args.extend(["--agent-in-image", OTEL_AGENT_IN_IMAGE]);
    }
    args.extend(extra_args);
    train_report(h, &image, &args)
}
