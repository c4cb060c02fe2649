//! One fetcher process on loopback, talking to the harness registry directly: for tests of a
//! single node (init mode, bad input, restarts). It must kill what it started.

use classcache_core::fetcher::http::{self as api, routes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_classcache-fetcher");

pub struct LocalFetcher {
    pub url: String,
    pub store: PathBuf,
    pub log: PathBuf,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl LocalFetcher {
    /// Starts `serve` with `store` and waits until it answers /healthz.
    pub fn start(store: &Path, log: &Path, extra: &[&str]) -> LocalFetcher {
        Self::start_with_peers(store, log, &[], extra)
    }

    /// As [`LocalFetcher::start`], with `other_peers` (`id=url`) in its peer list beside itself.
    pub fn start_with_peers(
        store: &Path,
        log: &Path,
        other_peers: &[String],
        extra: &[&str],
    ) -> LocalFetcher {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--node-id",
                "solo",
            ])
            // The test process calls from loopback, as the node's pods would: allowed every archive.
            .args([
                "--peers",
                &peer_list(&url, other_peers),
                "--allow-pods-from",
                "127.0.0.0/8",
            ])
            // The harness registry is the one it pulls from; tests add others to `extra`.
            .args(["--allowed-registry", &classcache_e2e::harness().registry])
            .arg("--store")
            .arg(store)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn the fetcher");
        let fetcher = LocalFetcher {
            url,
            store: store.to_path_buf(),
            log: log.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if get(&format!("{}{}", fetcher.url, routes::HEALTHZ)).is_some_and(|(s, _)| s == 200) {
                return fetcher;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!(
            "the fetcher did not become healthy:\n{}",
            fetcher.log_text()
        );
    }

    /// Asks it to publish the archive `reference` (`<registry>/<repo>@<pinned>`) pins.
    pub fn ask(&self, reference: &str) -> (u16, String) {
        let digest = reference.rsplit('@').next().unwrap();
        get(&format!(
            "{}{}",
            self.url,
            api::archive_request_path(digest, reference)
        ))
        .expect("the fetcher answers")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it (SIGKILL, as a crash would).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalFetcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer_list(own_url: &str, others: &[String]) -> String {
    std::iter::once(format!("solo={own_url}"))
        .chain(others.iter().cloned())
        .collect::<Vec<_>>()
        .join(",")
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Runs `classcache-fetcher init …`.
pub fn init(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("init")
        .args(args)
        .output()
        .expect("run init")
}

/// Runs `init --fail-closed` as an init container would, for the fixture's archive in `mode`
/// into `dir`, against `node`.
pub fn init_fail_closed(
    fixture: &super::Fixture,
    node: &LocalFetcher,
    mode: &str,
    dir: &Path,
) -> Output {
    init(&[
        "--archive",
        &pinned_reference(fixture),
        "--mode",
        mode,
        "--dir",
        dir.to_str().unwrap(),
        "--fetcher-url",
        &node.url,
        "--timeout",
        "60s",
        "--fail-closed",
    ])
}

/// The fixture's pinned reference on the harness registry (loopback).
pub fn pinned_reference(fixture: &super::Fixture) -> String {
    let h = classcache_e2e::harness();
    format!("{}/{}@{}", h.registry, fixture.repository, fixture.pinned)
}

/// A reference into the fixture's repository whose digest does not exist.
pub fn missing_reference(fixture: &super::Fixture) -> String {
    let h = classcache_e2e::harness();
    format!(
        "{}/{}@sha256:{}",
        h.registry,
        fixture.repository,
        "0".repeat(64)
    )
}
