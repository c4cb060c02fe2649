//! A lab of namespace hosts on one bridge, or two zones' bridges joined by one link, links optionally `tc`-shaped.
//! It must clean up everything it made, on panic too.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The lab's private subnet; every lab has its own namespaces, so labs never see each other.
pub const SUBNET: &str = "10.77.0";
/// The bridge's address: where the registry proxy listens.
pub const GATEWAY: &str = "10.77.0.1";

/// A per-host link rate, both directions.
#[derive(Debug, Clone, Copy)]
pub struct LinkRate {
    pub bytes_per_sec: u64,
}

impl LinkRate {
    pub fn mbit(mbit: u64) -> Self {
        Self {
            bytes_per_sec: mbit * 1_000_000 / 8,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} Mbit/s ({:.2} MB/s)",
            self.bytes_per_sec * 8 / 1_000_000,
            self.bytes_per_sec as f64 / 1e6
        )
    }
}

pub struct Host {
    pub ns: String,
    pub ip: String,
}

/// A second zone: `hosts` attach to a bridge of their own, joined to zone a's bridge by one
/// veth pair shaped to `rate` each way, so all traffic between the zones crosses that one link.
#[derive(Debug, Clone)]
pub struct ZoneB {
    pub hosts: std::ops::Range<usize>,
    pub rate: LinkRate,
}

/// The cross-zone link's ends: zone a's in the bridge namespace, zone b's in its own.
const CROSS_A: &str = "xz-a";
const CROSS_B: &str = "xz-b";

pub struct Lab {
    pub id: String,
    pub bridge_ns: String,
    /// Zone b's bridge namespace, when the lab has a second zone.
    pub zone_b_ns: Option<String>,
    pub hosts: Vec<Host>,
    made: Mutex<Vec<String>>,
    children: Mutex<Vec<Child>>,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?}: {e} (install iproute2; the test needs root)")
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}; the multi-node tests need root and the veth, bridge and sch_tbf kernel modules",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Enters namespace `ns` on the calling thread (only that thread).
pub fn enter_netns(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {ns}: {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a fresh thread inside namespace `ns` (sockets it creates stay in `ns`).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .expect("thread in namespace panicked")
}

impl Lab {
    /// Makes `n` hosts at 10.77.0.10+i, each with its own namespace and a veth to the bridge.
    pub fn new(n: usize, rate: Option<LinkRate>) -> Lab {
        Lab::zoned(n, rate, None)
    }

    /// [`Lab::new`] with `zone_b`'s hosts on a second bridge behind the shaped cross-zone link.
    /// One subnet still: the bridged veth makes both zones one L2 domain, so nothing routes and
    /// the registry proxy on zone a's bridge is reached the same way from either zone.
    pub fn zoned(n: usize, rate: Option<LinkRate>, zone_b: Option<ZoneB>) -> Lab {
        assert!(n <= 200, "at most 200 hosts in a /24");
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "cc{}{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            bridge_ns: format!("{id}-br"),
            zone_b_ns: zone_b.as_ref().map(|_| format!("{id}-brb")),
            id: id.clone(),
            hosts: Vec::new(),
            made: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
        };
        let mut lab = lab;
        lab.add_ns(&lab.bridge_ns.clone());
        let br = lab.bridge_ns.clone();
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"]);
        run(&[
            "ip",
            "-n",
            &br,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            "br0",
        ]);
        run(&["ip", "-n", &br, "link", "set", "br0", "up"]);
        if let (Some(zb), Some(brb)) = (&zone_b, lab.zone_b_ns.clone()) {
            lab.add_ns(&brb);
            run(&["ip", "-n", &brb, "link", "add", "br0", "type", "bridge"]);
            run(&["ip", "-n", &brb, "link", "set", "br0", "up"]);
            run(&[
                "ip", "link", "add", "name", CROSS_A, "netns", &br, "type", "veth", "peer", "name",
                CROSS_B, "netns", &brb,
            ]);
            run(&[
                "ip", "-n", &br, "link", "set", CROSS_A, "master", "br0", "up",
            ]);
            run(&[
                "ip", "-n", &brb, "link", "set", CROSS_B, "master", "br0", "up",
            ]);
            shape(&br, CROSS_A, zb.rate);
            shape(&brb, CROSS_B, zb.rate);
        }
        for i in 0..n {
            let ns = format!("{id}-h{i}");
            lab.add_ns(&ns);
            let ip = format!("{SUBNET}.{}", 10 + i);
            let port = format!("vh{i}");
            // The host's bridge: zone b's when it is one of zone b's hosts.
            let br = match (&zone_b, &lab.zone_b_ns) {
                (Some(zb), Some(brb)) if zb.hosts.contains(&i) => brb.clone(),
                _ => br.clone(),
            };
            run(&[
                "ip", "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name",
                &port, "netns", &br,
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &br, "link", "set", &port, "master", "br0", "up"]);
            if let Some(rate) = rate {
                shape(&ns, "eth0", rate);
                shape(&br, &port, rate);
            }
            lab.hosts.push(Host { ns, ip });
        }
        lab
    }

    fn add_ns(&mut self, ns: &str) {
        run(&["ip", "netns", "add", ns]);
        self.made.lock().unwrap().push(ns.to_string());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// Starts `program args…` inside host `i`'s namespace; killed when the lab drops.
    pub fn spawn(&self, i: usize, program: &str, args: &[String], log: &std::path::Path) -> u32 {
        let log = File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn in namespace");
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Kills one process the lab started (SIGKILL: a crash, not a shutdown).
    pub fn kill(&self, pid: u32) {
        let mut children = self.children.lock().unwrap();
        if let Some(c) = children.iter_mut().find(|c| c.id() == pid) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Bytes sent over the cross-zone link so far, (zone a to b, zone b to a); None without a
    /// zone b. Each end's tx counter: what its egress (and so its shaper) let through.
    pub fn cross_zone_bytes(&self) -> Option<(u64, u64)> {
        let brb = self.zone_b_ns.as_ref()?;
        Some((tx_bytes(&self.bridge_ns, CROSS_A), tx_bytes(brb, CROSS_B)))
    }

    /// Runs a command inside host `i`'s namespace and returns its output.
    pub fn exec(&self, i: usize, program: &str, args: &[String]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].ns, program])
            .args(args)
            .output()
            .expect("run in namespace")
    }
}

/// A device's transmitted bytes, from `ip -j -s link` (no sysfs remount needed for another ns).
fn tx_bytes(ns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-j", "-s", "-n", ns, "link", "show", "dev", dev])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip link show {dev} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v[0]["stats64"]["tx"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tx bytes for {dev} in {ns}: {v}"))
}

fn shape(ns: &str, dev: &str, rate: LinkRate) {
    let bits = rate.bytes_per_sec * 8;
    // tbf needs a bucket of at least one timer tick of traffic; 10 ms of it, min 32 KiB.
    let burst = (rate.bytes_per_sec / 100).max(32 * 1024);
    run(&[
        "tc",
        "-n",
        ns,
        "qdisc",
        "add",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        &format!("{bits}bit"),
        "burst",
        &burst.to_string(),
        "latency",
        "50ms",
    ]);
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.lock().unwrap().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace removes its veth ends and the bridge with it.
        for ns in self.made.lock().unwrap().iter() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
