//! The Grafana dashboard in examples/grafana against a real Prometheus (Debian's, started here
//! with its own config and data dir on a free loopback port) scraping a real fetcher that served
//! an archive: every panel's PromQL runs without error and has data, and every metric it names
//! is one the fetcher exports (and every metric the fetcher exports is on the dashboard).

mod support;

use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::local::{get, LocalFetcher};

const DASHBOARD: &str = include_str!("../../examples/grafana/classcache-fetcher.json");
/// Debian's package (tests/harness/up.sh installs it).
const PROMETHEUS: &str = "/usr/bin/prometheus";
/// What Grafana puts for its interval variables, at the 1 s scrape interval used here.
const GRAFANA_VARIABLES: [(&str, &str); 3] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$__range", "5m"),
];
const METRIC_PREFIX: &str = "classcache_fetcher_";
/// The panels the test's traffic (a miss from the registry, a hit, a blob sent to a peer) must
/// move above zero; the others (failures, refusals, evictions) show zeros, which is data too.
const MOVED_BY_TRAFFIC: [&str; 8] = [
    "Fetchers reporting",
    "Archive hit ratio",
    "Store size",
    "Archive requests",
    "Fetch latency",
    "Bytes received by source",
    "Bytes uploaded",
    "Store size per node",
];

/// The dashboard's PromQL targets: (panel title, expr).
fn targets(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The `classcache_fetcher_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(at) = rest.find(METRIC_PREFIX) {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn the_dashboard_is_well_formed() {
    let d: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    for field in [
        "uid",
        "title",
        "schemaVersion",
        "panels",
        "templating",
        "time",
    ] {
        assert!(!d[field].is_null(), "the dashboard has no {field}");
    }
    let variables = d["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable, so the dashboard imports into any Grafana");
    assert_eq!(datasource["query"], "prometheus");
    let ds_ref = format!("${{{}}}", datasource["name"].as_str().unwrap());
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = HashSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric panel ids")),
            "panel id {} twice",
            p["id"]
        );
        assert!(
            matches!(p["type"].as_str(), Some("timeseries" | "stat")),
            "{title}: {}",
            p["type"]
        );
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        assert!(
            p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24,
            "{title}: wider than the grid"
        );
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "{title}: a description says what it shows"
        );
        assert_eq!(
            p["datasource"]["uid"], ds_ref,
            "{title}: the data source variable"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
            assert_eq!(t["datasource"]["uid"], ds_ref, "{title}");
            let expr = t["expr"].as_str().unwrap();
            assert!(
                !metric_names(expr).is_empty(),
                "{title}: {expr} names no fetcher metric"
            );
            // Every filter honours the fetcher selection.
            assert_eq!(
                expr.matches(METRIC_PREFIX).count(),
                expr.matches("instance=~\"$instance\"").count(),
                "{title}: {expr}"
            );
        }
    }
    // Other variables query through the data source variable too.
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], ds_ref, "{}", v["name"]);
    }
}

/// A Prometheus server of our own; killed on drop.
struct Prometheus {
    url: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: run tests/harness/up.sh (it installs Debian's prometheus package)"
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: classcache-fetcher\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        p.wait_for("Prometheus to be ready", || {
            get(&format!("{}/-/ready", p.url)).filter(|(s, _)| *s == 200)
        });
        p
    }

    /// An instant query through the HTTP API: the `data` of a successful answer.
    fn query(&self, expr: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--get", "--data-urlencode"])
            .arg(format!("query={expr}"))
            .arg(format!("{}/api/v1/query", self.url))
            .output()
            .expect("curl runs");
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{expr}: not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"].clone()
    }

    fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "waited a minute for {what}; Prometheus log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The values of an instant vector (or the scalar) `data`.
fn values(data: &Value) -> Vec<f64> {
    let parse = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok());
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| parse(&r["value"]))
            .collect(),
        Some("scalar") => parse(&data["result"]).into_iter().collect(),
        _ => vec![],
    }
}

#[test]
fn every_panel_has_data_from_a_real_scrape_of_a_fetcher_that_served_an_archive() {
    let d: Value = serde_json::from_str(DASHBOARD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let fetcher = LocalFetcher::start(&store, &dir.path().join("fetcher.log"), &[]);
    let target = fetcher.url.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(dir.path(), &target);

    // A first scrape before the traffic, so rates see the counters move.
    prometheus.wait_for("the first scrape of the fetcher", || {
        let data = prometheus.query("classcache_fetcher_store_bytes");
        (!values(&data).is_empty()).then_some(())
    });

    // Traffic: a miss (from the registry), a hit, and the archive's bytes.
    let fixture = support::push_archive(512 * 1024);
    let reference = support::local::pinned_reference(&fixture);
    for _ in 0..2 {
        let (status, body) = fetcher.ask(&reference);
        assert_eq!(status, 200, "{body}\n{}", fetcher.log_text());
    }
    let (status, bytes) = get(&format!(
        "{}{}",
        fetcher.url,
        classcache_core::fetcher::http::archive_file_path(&fixture.pinned)
    ))
    .unwrap();
    assert_eq!(status, 200);
    assert!(!bytes.is_empty());
    // The layer to a peer (this process on loopback is in the fetcher's peer list).
    let (status, _) = get(&format!(
        "{}{}",
        fetcher.url,
        classcache_core::fetcher::http::blob_path(&fixture.layer_digest)
    ))
    .unwrap();
    assert_eq!(status, 200);
    let exported = get(&format!("{}/metrics", fetcher.url)).unwrap().1;
    prometheus.wait_for("a scrape after the traffic", || {
        let data = prometheus.query(r#"classcache_fetcher_bytes_uploaded_total > 0"#);
        (!values(&data).is_empty()).then_some(())
    });

    step_names_match(&d, &exported);

    // The instance variable, as Grafana would resolve it: label values of its metric.
    let data = prometheus.query("classcache_fetcher_store_bytes");
    let instances: Vec<&str> = data["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metric"]["instance"].as_str())
        .collect();
    assert_eq!(instances, [target.as_str()]);

    for (panel, expr) in targets(&d) {
        let mut query = expr.replace("$instance", &target);
        for (name, value) in GRAFANA_VARIABLES {
            query = query.replace(name, value);
        }
        assert!(
            !query.contains('$'),
            "{panel}: a variable the test does not know: {query}"
        );
        let data = prometheus.query(&query);
        let found = values(&data);
        eprintln!("{panel}: {query} -> {found:?}");
        assert!(!found.is_empty(), "{panel}: no data for {query}: {data}");
        assert!(
            found.iter().any(|v| v.is_finite()),
            "{panel}: only NaN/Inf for {query} after the traffic: {data}"
        );
        if MOVED_BY_TRAFFIC.contains(&panel.as_str()) {
            assert!(
                found.iter().any(|v| *v > 0.0),
                "{panel}: the traffic must show in {query}: {data}"
            );
        }
    }
    for panel in MOVED_BY_TRAFFIC {
        assert!(
            targets(&d).iter().any(|(p, _)| p == panel),
            "no panel {panel}"
        );
    }
    // The figures the traffic made, through the dashboard's own queries.
    let hit_ratio = targets(&d)
        .into_iter()
        .find(|(p, _)| p == "Archive hit ratio")
        .expect("the hit ratio panel")
        .1
        .replace("$instance", &target)
        .replace("$__range", "5m");
    assert_eq!(
        values(&prometheus.query(&hit_ratio)),
        [0.5],
        "one miss, one hit"
    );
}

/// Every fetcher metric the dashboard names is exported, and every exported family is shown.
fn step_names_match(d: &Value, exported: &str) {
    let samples: BTreeSet<String> = exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    let families: BTreeSet<String> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(families.len() >= 10, "{families:?}");
    let used: BTreeSet<String> = targets(d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .collect();
    for name in &used {
        assert!(
            samples.contains(name),
            "the dashboard uses {name}, which the fetcher does not export:\n{exported}"
        );
    }
    for family in &families {
        assert!(
            used.iter().any(|u| u == family || u.strip_prefix(family.as_str()).is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
            "the fetcher exports {family}, which no panel shows; add it to examples/grafana/classcache-fetcher.json"
        );
    }
}
