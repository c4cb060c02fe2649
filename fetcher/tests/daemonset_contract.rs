//! The DaemonSet in `templates/` runs this binary: its arguments must be ones `serve` accepts,
//! and the presence endpoint `kubectl classcache status` asks must answer. No cluster involved.

use classcache_core::fetcher::http::{self as api, routes};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The template's fetcher container, with the install parameters filled in.
fn daemonset_container(store: &str, port: u16) -> serde_json::Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/daemonset.yaml");
    let text = std::fs::read_to_string(root).unwrap();
    let text = [
        ("${image}", "classcache-fetcher:test"),
        ("${max_size}", "1Gi"),
        ("${namespace}", "classcache"),
        ("${port}", &port.to_string()),
        ("${store_dir}", store),
        (
            "${allowed_registries}",
            "registry.example/shop,127.0.0.1:5000",
        ),
    ]
    .iter()
    .fold(text, |t, (var, value)| t.replace(var, value));
    assert!(
        !text.contains("${"),
        "a template parameter is left unfilled:\n{text}"
    );
    let daemonset: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    daemonset["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The fetcher container's args from the template, with the install parameters and the
/// downward-API variables filled in as the cluster would.
fn daemonset_args(store: &str, port: u16) -> Vec<String> {
    let container = daemonset_container(store, port);
    assert_eq!(container["command"][0], "classcache-fetcher");
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("$(NODE_NAME)", "node-a")
                .replace("$(POD_NAMESPACE)", "classcache")
                .replace(&format!("0.0.0.0:{port}"), &format!("127.0.0.1:{port}"))
        })
        .collect()
}

#[test]
fn the_daemonset_arguments_start_the_fetcher_and_status_can_ask_it() {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = daemonset_args(store.path().to_str().unwrap(), port);
    let child = Command::new(env!("CARGO_BIN_EXE_classcache-fetcher"))
        .args(&args)
        // A static peer list stands in for the EndpointSlice watch, which needs an API server.
        .env(
            "CLASSCACHE_PEERS",
            format!("node-a=http://127.0.0.1:{port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fetcher = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        if let Some(status) = fetcher.0.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            fetcher
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the fetcher refused the DaemonSet's args {args:?} ({status}):\n{err}");
        }
        if get(&format!("{base}{}", routes::HEALTHZ)).is_some_and(|(code, _)| code == 200) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        healthy,
        "the fetcher started with {args:?} never answered /healthz"
    );

    let digest = format!("sha256:{}", "0".repeat(64));
    let path = api::archive_path(&digest);
    let (code, body) = get(&format!("{base}{path}")).unwrap();
    assert_eq!(code, 404, "an archive that is not on the node: {body}");
    assert!(body.contains("not published"), "{body}");
}

/// The template's `serve` arguments parse, through the fetcher's own parser, to the install
/// parameters; its probe asks the contract's health route on the port it listens on.
#[test]
fn the_daemonset_arguments_parse_to_the_install_parameters() {
    use classcache_fetcher::cli::{Cli, Command};
    let container = daemonset_container("/var/lib/classcache", 8787);
    let args = daemonset_args("/var/lib/classcache", 8787);
    let cli = <Cli as clap::Parser>::try_parse_from(
        std::iter::once("classcache-fetcher".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Command::Serve(serve) = cli.command else {
        panic!("{args:?} is not serve")
    };
    assert_eq!(serve.store, std::path::Path::new("/var/lib/classcache"));
    assert_eq!(serve.listen, "127.0.0.1:8787");
    assert_eq!(serve.max_store_bytes.bytes(), 1 << 30);
    assert_eq!(serve.node_id, "node-a");
    assert_eq!(serve.namespace, "classcache");
    let allowed: Vec<String> = serve
        .allowed_registries
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(allowed, ["registry.example/shop", "127.0.0.1:5000"]);
    assert_eq!(
        serve.peers_service,
        classcache_core::podtemplate::PEERS_SERVICE
    );
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"], routes::READYZ);
    assert_eq!(probe["port"], container["ports"][0]["name"]);
    let liveness = &container["livenessProbe"]["httpGet"];
    assert_eq!(liveness["path"], routes::HEALTHZ);
    assert_eq!(liveness["port"], container["ports"][0]["name"]);
    assert_eq!(container["ports"][0]["containerPort"], 8787);
}

/// A plain HTTP/1.0 GET (no client library needed for two requests on loopback).
fn get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

/// `install --stats` appends core's `--stats` to the template's args: the fetcher takes it and
/// answers the stats route (to a peer: this process, from the static peer list); without it the
/// route answers 404 with how to turn stats on.
#[test]
fn the_stats_flag_turns_the_stats_route_on() {
    use classcache_core::fetcher::args::STATS_FLAG;
    for stats in [false, true] {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut args = daemonset_args(store.path().to_str().unwrap(), port);
        if stats {
            args.push(format!("--{STATS_FLAG}"));
        }
        let _fetcher = Killed(
            Command::new(env!("CARGO_BIN_EXE_classcache-fetcher"))
                .args(&args)
                .env(
                    "CLASSCACHE_PEERS",
                    format!("node-a=http://127.0.0.1:{port}"),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&format!("{base}{}", routes::HEALTHZ)).is_none_or(|(code, _)| code != 200) {
            assert!(Instant::now() < deadline, "{args:?}: never healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (code, body) = get(&format!("{base}{}", routes::STATS)).unwrap();
        if stats {
            assert_eq!(code, 200, "{body}");
            let answer: api::SharingStats = serde_json::from_str(&body).unwrap();
            assert_eq!(answer.node, "node-a");
            assert!(answer.archives.is_empty(), "{answer:?}");
        } else {
            assert_eq!(code, 404, "{body}");
            assert_eq!(body.trim(), api::STATS_OFF);
        }
    }
}
