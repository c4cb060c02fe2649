//! The fetcher's allow-lists against hostile input, with the real binary: archives whose config
//! carries options no archive needs, registries outside `--allowed-registry`, and a hostile
//! registry whose blob redirects aim at plain HTTP or at a host that would collect credentials.

mod support;

use classcache_core::artifact::{describe_archive, pack_layer, ArchiveConfig};
use classcache_core::digest::Digest;
use classcache_core::fetcher::http::{archive_request_path, blob_request_path, routes};
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::paths::published_dir_name;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use support::local::{get, pinned_reference, LocalFetcher};
use support::{noise, push_archive_with, test_config};

/// Options an attacker who can push to the registry would like in production JVMs.
const EVIL_OPTIONS: [&str; 3] = [
    "-javaagent:/tmp/evil.jar",
    "-XX:OnError=/bin/sh -c id",
    "-Djava.security.manager=allow",
];

fn error_count(node: &LocalFetcher, kind: &str) -> u64 {
    let (_, metrics) = get(&format!("{}{}", node.url, routes::METRICS)).unwrap();
    let line = format!("classcache_fetcher_errors_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// Pushes an archive whose config `edit` changed; its pinned reference and digest.
fn push_with(edit: impl FnOnce(&mut ArchiveConfig)) -> (String, String) {
    let fixture = push_archive_with(256 << 10, edit);
    (pinned_reference(&fixture), fixture.pinned)
}

fn request_archive(node: &LocalFetcher, reference: &str, pinned: &str) -> (u16, String) {
    get(&format!(
        "{}{}",
        node.url,
        archive_request_path(pinned, reference)
    ))
    .expect("the fetcher answers")
}

fn published(node: &LocalFetcher, pinned: &str) -> bool {
    node.store
        .join("published")
        .join(published_dir_name(pinned))
        .exists()
}

#[test]
fn an_archive_carrying_non_archive_options_is_never_published() {
    let (evil, evil_pinned) = push_with(|c| {
        c.runtime_options
            .extend(EVIL_OPTIONS.iter().map(|o| o.to_string()))
    });
    let (good, good_pinned) = push_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let node = LocalFetcher::start(&dir.path().join("store"), &dir.path().join("log"), &[]);

    let (status, body) = request_archive(&node, &evil, &evil_pinned);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("-javaagent:/tmp/evil.jar") && body.contains("loads an agent"),
        "the init container is told which option and why: {body}"
    );
    assert!(!published(&node, &evil_pinned), "nothing published");
    assert_eq!(error_count(&node, "refused_options"), 1);
    // Asking again changes nothing (no half-published state to find).
    let (status, _) = request_archive(&node, &evil, &evil_pinned);
    assert_eq!(status, 502);
    assert!(!published(&node, &evil_pinned));

    // The node still serves good archives.
    let (status, body) = request_archive(&node, &good, &good_pinned);
    assert_eq!(status, 200, "{body}\n{}", node.log_text());
    assert!(published(&node, &good_pinned));
}

/// What a hostile server saw: one entry per connection (`(connection)`) and per request,
/// `(request line, had Authorization)`.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// A hostile server's answer: status line, headers, body.
type Answer = (String, Vec<(String, String)>, Vec<u8>);

/// A tiny HTTP/1.1 server on loopback that answers each request with `answer(request line,
/// had Authorization)` = (status line, headers, body) and records what it saw.
fn serve(answer: impl Fn(&str, bool) -> Answer + Send + Sync + 'static) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let (record, answer) = (seen.clone(), Arc::new(answer));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (record, answer) = (record.clone(), answer.clone());
            std::thread::spawn(move || handle(stream, &record, &*answer));
        }
    });
    (port, seen)
}

fn handle(stream: TcpStream, record: &Seen, answer: &dyn Fn(&str, bool) -> Answer) {
    record.lock().unwrap().push(("(connection)".into(), false));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim().to_string();
        let mut authorized = false;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            authorized |= lower.starts_with("authorization:");
            if let Some(n) = lower.strip_prefix("content-length:") {
                length = n.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        record.lock().unwrap().push((request.clone(), authorized));
        let (status, headers, body) = answer(&request, authorized);
        let mut out = stream.try_clone().unwrap();
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let head_only = request.starts_with("HEAD ");
        if out.write_all(head.as_bytes()).is_err() || (!head_only && out.write_all(&body).is_err())
        {
            return;
        }
    }
}

/// A registry that wants Basic credentials, serves a real archive's manifest and config, and
/// answers the layer's `GET` with a redirect to `layer_location`.
struct HostileRegistry {
    port: u16,
    seen: Seen,
    reference: String,
    pinned: String,
    layer: Descriptor,
}

fn hostile_registry(
    seed: u64,
    layer_location: impl Fn(u16) -> String + Send + Sync + 'static,
) -> HostileRegistry {
    let data = noise(64 << 10, seed);
    let (layer_bytes, packed) =
        pack_layer(&data[..], data.len() as u64, "app.jsa", Vec::new()).unwrap();
    drop(layer_bytes);
    let (mut config, _) = test_config("hostile/app");
    config.archive = packed.archive.clone();
    let subject = Descriptor::new(media_types::OCI_MANIFEST, config.image.digest.clone(), 1);
    let blobs = describe_archive(config, packed, subject).unwrap();
    let manifest = blobs.manifest_json.clone();
    let config_json = blobs.config_json.clone();
    let pinned = Digest::of(&manifest).to_string();
    let config_digest = Digest::of(&config_json).to_string();
    let layer = blobs.layer_descriptor.clone();
    let layer_digest = layer.digest.to_string();
    let port_cell: Arc<Mutex<u16>> = Arc::default();
    let own_port = port_cell.clone();
    let (port, seen) = serve(move |request, authorized| {
        let ok = |ct: &str, body: &[u8]| {
            (
                "200 OK".to_string(),
                vec![("Content-Type".to_string(), ct.to_string())],
                body.to_vec(),
            )
        };
        let port = *own_port.lock().unwrap();
        if request.contains("/loop") {
            return (
                "307 Temporary Redirect".into(),
                vec![("Location".into(), format!("http://127.0.0.1:{port}/loop"))],
                vec![],
            );
        }
        if !authorized {
            return (
                "401 Unauthorized".into(),
                vec![("WWW-Authenticate".into(), "Basic realm=\"hostile\"".into())],
                vec![],
            );
        }
        if request.contains("/manifests/") {
            ok(media_types::OCI_MANIFEST, &manifest)
        } else if request.contains(&format!("/blobs/{config_digest}")) {
            ok(media_types::ARCHIVE_CONFIG, &config_json)
        } else if request.contains(&format!("/blobs/{layer_digest}")) {
            (
                "307 Temporary Redirect".into(),
                vec![("Location".into(), layer_location(port))],
                vec![],
            )
        } else {
            ("404 Not Found".into(), vec![], vec![])
        }
    });
    *port_cell.lock().unwrap() = port;
    HostileRegistry {
        port,
        seen,
        reference: format!("127.0.0.1:{port}/hostile/app@{pinned}"),
        pinned,
        layer,
    }
}

/// A Docker config with credentials for `registries`, as the node's would hold.
fn docker_config(dir: &std::path::Path, registries: &[String]) -> std::path::PathBuf {
    let auths: serde_json::Map<String, serde_json::Value> = registries
        .iter()
        .map(|r| {
            // "node:secret"
            (r.clone(), serde_json::json!({"auth": "bm9kZTpzZWNyZXQ="}))
        })
        .collect();
    let path = dir.join("docker");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(
        path.join("config.json"),
        serde_json::json!({ "auths": auths }).to_string(),
    )
    .unwrap();
    path
}

#[test]
fn registries_outside_the_list_and_hostile_redirects_are_refused() {
    // (a) plain HTTP to another host; (b) a loopback "CDN" that records credentials and sends
    // bytes that are not the layer; (c) a redirect loop.
    let garbage_size: Arc<Mutex<usize>> = Arc::default();
    let size = garbage_size.clone();
    let (collector, collected) = serve(move |_, _| {
        // As many bytes as the layer has, none of them right.
        ("200 OK".into(), vec![], vec![0x5a; *size.lock().unwrap()])
    });
    let plain = hostile_registry(21, |_| "http://cdn.example.invalid/layer".to_string());
    let leak = hostile_registry(22, move |_| {
        format!("http://127.0.0.1:{collector}/layer?sig=x")
    });
    *garbage_size.lock().unwrap() = leak.layer.size as usize;
    let looping = hostile_registry(23, |own| format!("http://127.0.0.1:{own}/loop"));
    // A registry nobody allowed: it must see no connection at all.
    let (stranger, stranger_seen) = serve(|_, _| ("200 OK".into(), vec![], b"{}".to_vec()));

    let dir = tempfile::tempdir().unwrap();
    let hostile: Vec<String> = [&plain, &leak, &looping]
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port))
        .collect();
    let config = docker_config(dir.path(), &hostile);
    std::env::set_var("DOCKER_CONFIG", &config);
    let mut extra = vec![];
    for h in &hostile {
        extra.extend(["--allowed-registry", h.as_str()]);
    }
    let node = LocalFetcher::start(&dir.path().join("store"), &dir.path().join("log"), &extra);

    for registry in [&plain, &leak, &looping] {
        let (status, body) = request_archive(&node, &registry.reference, &registry.pinned);
        assert_eq!(status, 502, "{body}");
        assert!(
            !published(&node, &registry.pinned),
            "nothing published: {body}"
        );
        let seen = registry.seen.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|(r, auth)| r.contains("/blobs/sha256:") && *auth),
            "the registry got the node's credentials and was asked for the layer: {seen:?}"
        );
    }
    let log = node.log_text();
    assert!(
        log.contains("plain HTTP"),
        "(a) refused for its scheme:\n{log}"
    );
    assert!(log.contains("more than 3 redirects"), "(c) bounded:\n{log}");
    let collected = collected.lock().unwrap().clone();
    assert!(
        !collected.is_empty(),
        "(b) was followed (loopback is plain HTTP here)"
    );
    assert!(
        collected.iter().all(|(_, auth)| !auth),
        "(b) no credentials to a redirect target: {collected:?}"
    );

    // Not allowed: 403 naming the fix, for archives and for peers' blob requests alike.
    let reference = format!("127.0.0.1:{stranger}/shop/app@{}", plain.pinned);
    let (status, body) = request_archive(&node, &reference, &plain.pinned);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(&format!(
            "kubectl classcache install --allowed-registry 127.0.0.1:{stranger}"
        )),
        "{body}"
    );
    let (status, body) = get(&format!(
        "{}{}",
        node.url,
        blob_request_path(&plain.layer.digest, &reference)
    ))
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        stranger_seen.lock().unwrap().is_empty(),
        "no connection to a registry outside the list"
    );
    assert!(error_count(&node, "registry_not_allowed") >= 2);
    assert_eq!(
        get(&format!("{}{}", node.url, routes::HEALTHZ)).map(|(s, _)| s),
        Some(200),
        "the node still serves"
    );
}
