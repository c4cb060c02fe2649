//! A counting TCP proxy from the lab's bridge to the harness registry on loopback: it logs
//! every request line and counts bytes, can cap the registry's egress and can play "registry
//! down". It must not change the bytes it forwards.

use super::netns::in_netns;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    bytes_down: AtomicU64,
    stopped: AtomicBool,
    closing: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    /// Registry egress pacing: the instant the link is free again.
    pace: Mutex<Option<(u64, Instant)>>,
}

pub struct Proxy {
    pub addr: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on `listen` inside `ns` and forwards to `upstream` (reached from this namespace).
    pub fn start(
        ns: &str,
        listen: &str,
        upstream: &str,
        egress_bytes_per_sec: Option<u64>,
    ) -> Proxy {
        let listen_addr = listen.to_string();
        let listener = in_netns(ns, move || TcpListener::bind(&listen_addr))
            .unwrap_or_else(|e| panic!("proxy listen on {listen}: {e}"));
        let shared = Arc::new(Shared::default());
        *shared.pace.lock().unwrap() = egress_bytes_per_sec.map(|r| (r, Instant::now()));
        let s = shared.clone();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.closing.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if s.stopped.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                s.conns.lock().unwrap().push(client.try_clone().unwrap());
                s.conns.lock().unwrap().push(server.try_clone().unwrap());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let sh = s.clone();
                std::thread::spawn(move || up(client, server, sh));
                let sh = s.clone();
                std::thread::spawn(move || down(s2, c2, sh));
            }
        });
        Proxy {
            addr: listen.to_string(),
            shared,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// GET requests for blob `digest`.
    pub fn blob_gets(&self, digest: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/blobs/{digest}")))
            .collect()
    }

    /// The byte ranges `start..end` of blob `digest` (`size` bytes) the registry was asked for,
    /// in the order asked (a GET without Range asks for all of it).
    pub fn blob_ranges(&self, digest: &str, size: u64) -> Vec<(u64, u64)> {
        self.blob_gets(digest)
            .iter()
            .map(|r| {
                classcache_core::fetcher::http::parse_range(r.range.as_deref(), size)
                    .unwrap_or_else(|_| panic!("a fetcher sent a bad Range: {r:?}"))
                    .unwrap_or((0, size))
            })
            .collect()
    }

    /// Blob `digest` (`size` bytes) cut where any asked range starts or ends: each piece
    /// `start..end` with how many GETs asked for it.
    pub fn blob_asks(&self, digest: &str, size: u64) -> Vec<(u64, u64, usize)> {
        let ranges = self.blob_ranges(digest, size);
        let mut bounds: Vec<u64> = ranges.iter().flat_map(|&(a, b)| [a, b]).collect();
        bounds.extend([0, size]);
        bounds.sort_unstable();
        bounds.dedup();
        bounds
            .windows(2)
            .filter(|w| w[0] < size)
            .map(|w| {
                let n = ranges
                    .iter()
                    .filter(|&&(a, b)| a <= w[0] && w[1] <= b)
                    .count();
                (w[0], w[1], n)
            })
            .collect()
    }

    /// How often the registry was asked for each byte of blob `digest`: the least and the most
    /// over its bytes. (1, 1) is one copy, each byte once, however it was cut into stripes.
    pub fn blob_coverage(&self, digest: &str, size: u64) -> (usize, usize) {
        self.blob_asks(digest, size)
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), &(_, _, n)| {
                (lo.min(n), hi.max(n))
            })
    }

    /// Bytes the registry sent (headers and bodies).
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// The registry "goes down": open connections are cut, new ones refused.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        self.shared.closing.store(true, Ordering::SeqCst);
    }
}

/// Client to registry: only request heads (the fetcher sends no bodies); log each.
fn up(mut client: TcpStream, mut server: TcpStream, s: Arc<Shared>) {
    let mut buf = [0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = find(&pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            pending.drain(..end + 4);
            let mut lines = head.lines();
            let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
            let range = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("range"))
                .map(|(_, v)| v.trim().to_string());
            if first.len() >= 2 {
                s.requests.lock().unwrap().push(Request {
                    method: first[0].to_string(),
                    path: first[1].split('?').next().unwrap_or("").to_string(),
                    range,
                });
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// Registry to client: counted, optionally paced to the registry's egress rate.
fn down(mut server: TcpStream, mut client: TcpStream, s: Arc<Shared>) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let wait = {
            let mut pace = s.pace.lock().unwrap();
            match pace.as_mut() {
                Some((rate, free_at)) => {
                    let now = Instant::now();
                    let start = (*free_at).max(now);
                    *free_at = start + Duration::from_secs_f64(n as f64 / *rate as f64);
                    *free_at - now
                }
                None => Duration::ZERO,
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        s.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
