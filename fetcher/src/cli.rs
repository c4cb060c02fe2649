//! The fetcher's command line: `serve` (the DaemonSet's container) and `init`, whose arguments are core's `fetcher::args::InitArgs`.
//! It parses only; it must not start anything.

use clap::{Parser, Subcommand};
use classcache_core::artifact::Platform;
use classcache_core::fetcher::args::{InitArgs, INIT_SUBCOMMAND, SERVE_SUBCOMMAND};
use classcache_core::fetcher::stripes::StripeChoice;
use classcache_core::paths::NODE_STORE_DIR;
use classcache_core::podtemplate::cluster::{FETCHER_PORT, NAMESPACE, PEERS_SERVICE};
use classcache_core::size::ByteSize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "classcache-fetcher",
    version,
    about = "Node cache for classcache archives: one registry pull per cluster, peer to peer, verified atomic publish"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node fetcher (the DaemonSet's container).
    #[command(name = SERVE_SUBCOMMAND)]
    Serve(Box<ServeArgs>),
    /// Make the pod's archives available before its JVM starts (the init container).
    #[command(name = INIT_SUBCOMMAND)]
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = format!("0.0.0.0:{FETCHER_PORT}"))]
    pub listen: String,
    /// The node store (a hostPath); pods mount its `published` directory. Not `/` nor a system
    /// directory.
    #[arg(long, default_value = NODE_STORE_DIR, value_parser = parse_store)]
    pub store: PathBuf,
    /// This node's name: what peers rank (set it from the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_id: String,
    /// Static peer list NODE=http://IP:PORT,… or NODE@ZONE=http://IP:PORT,… (tests, clusters
    /// without API access; the zone is what an EndpointSlice would carry); only these
    /// addresses may then fetch blobs. Without it, peers come from the peers Service's
    /// EndpointSlices and this node's pods from a pod watch.
    #[arg(long, env = "CLASSCACHE_PEERS")]
    pub peers: Option<String>,
    /// Namespace of the peers Service (EndpointSlice discovery).
    #[arg(long, env = "POD_NAMESPACE", default_value = NAMESPACE)]
    pub namespace: String,
    /// Name of the peers Service (EndpointSlice discovery).
    #[arg(long, default_value = PEERS_SERVICE)]
    pub peers_service: String,
    /// Size cap of the store (bytes, or a quantity such as 10Gi or 500Mi, as `kubectl classcache
    /// install --max-size` writes it); least recently used entries not in use are evicted.
    #[arg(long = "max-size", default_value = "10Gi")]
    pub max_store_bytes: ByteSize,
    /// Entries used this recently are never evicted (a pod may be starting on them).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub in_use_grace: Duration,
    /// Stripes a blob is cut into (at least 1 MiB each, at most one per node), each sent down its
    /// own tree of fanout --stripes in which every node forwards only its home stripe: each node
    /// uploads about one copy in all and the depth grows as log(nodes). 1 sends one stream down
    /// one tree of --fanout, whose depth grows with the nodes. auto: one stream below 500 nodes,
    /// 8 stripes from there (where the fleet simulation, `cargo bench --bench fleet`, has the
    /// two cross; 8 stripes hold 1.3 times size / link rate at 10,000 nodes).
    #[arg(long, default_value_t = StripeChoice::Auto)]
    pub stripes: StripeChoice,
    /// Children per node in the distribution tree of a blob sent in one stripe (--stripes 1, or a
    /// blob under 2 MiB); 1 makes a chain, which keeps every node's uplink at one copy.
    #[arg(long, default_value_t = 1)]
    pub fanout: usize,
    /// Order the distribution zone by zone (the zone each peer's EndpointSlice entry carries, or
    /// NODE@ZONE in --peers), so the archive crosses into each zone once; false ignores zones.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub zone_aware: bool,
    /// Concurrent uploads to peers; more get 503 and go to another node. Default: for each blob
    /// its stripe count + 2, at least 4 (a node's children in its home stripe number up to the
    /// stripe count).
    #[arg(long)]
    pub upload_cap: Option<usize>,
    /// Blob downloads running at once; more wait for a slot, and peers asking for yet another
    /// get 503 and go elsewhere. Each counts its whole size against --max-size while it runs.
    #[arg(long, default_value_t = 8)]
    pub max_downloads: usize,
    /// Longest silence from a registry (waiting for an answer or for body bytes) before the
    /// call fails: a registry that accepts and never answers must not stall archive requests.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub registry_read_timeout: Duration,
    /// No byte from a source for this long: check it and move to another.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
    /// Registries (host:port) spoken to over plain HTTP; loopback ones always are.
    #[arg(
        long = "insecure-registry",
        env = "CLASSCACHE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Platform to pick from archive indexes, os/arch[/variant] (default: this machine's).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Callers in these networks (an address or a CIDR; repeatable) may request any archive: for
    /// nodes without a Kubernetes API server, and tests. In a cluster leave it out: the watch of
    /// this node's pods lets each pod have exactly the archives its own template pins.
    #[arg(long = "allow-pods-from", value_parser = crate::callers::parse_network)]
    pub allow_pods_from: Vec<ipnet::IpNet>,
    /// How long an archive request from an address the pod watch does not show yet waits for
    /// it (a new pod's IP reaches the API server while its init container already runs).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub pod_wait: Duration,
    /// A registry this fetcher may pull from, HOST[:PORT][/repo-prefix]; repeat for several.
    /// Requests for any other registry get 403 and no connection is made. None given: every
    /// registry request is refused (`kubectl classcache install --allowed-registry` sets it).
    #[arg(
        long = "allowed-registry",
        env = classcache_core::allowed_registry::ALLOWED_REGISTRIES_ENV,
        value_delimiter = ','
    )]
    pub allowed_registries: Vec<classcache_core::allowed_registry::AllowedRegistry>,
    #[command(flatten)]
    pub signatures: classcache_core::fetcher::args::SignatureArgs,
    /// Serve page-sharing stats (which pods map each published archive, Σ Pss / Σ Rss) to the
    /// API server and peers. Reading other processes' memory maps needs the host's PID namespace
    /// and CAP_SYS_PTRACE: `kubectl classcache install --stats` adds both.
    #[arg(long = classcache_core::fetcher::args::STATS_FLAG)]
    pub stats: bool,
    /// Where the proc filesystem is (the host's, with hostPID).
    #[arg(long, default_value = "/proc", hide = true)]
    pub proc_root: PathBuf,
    /// Test only: corrupt every chunk uploaded to peers.
    #[arg(long, hide = true)]
    pub corrupt_uploads: bool,
}

/// `--store`: core's one check of a node store directory.
fn parse_store(s: &str) -> Result<PathBuf, String> {
    classcache_core::paths::check_store_dir(s)
        .map(PathBuf::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use classcache_core::podtemplate::cluster::{
        fetcher_url, DeliveryMode, InitContainerSpec, FETCHER_BINARY, INIT_CONTAINER,
    };
    use classcache_core::podtemplate::{enable_template, ContainerArchive, EnablePlan};

    const DIGESTS: [&str; 3] = [
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
        "sha256:3333333333333333333333333333333333333333333333333333333333333333",
    ];

    /// What the fetcher's own parser makes of a container's command and args.
    fn parse_init(command: &[String], args: &[String]) -> InitArgs {
        assert_eq!(command, [FETCHER_BINARY]);
        let cli = Cli::try_parse_from(command.iter().chain(args))
            .unwrap_or_else(|e| panic!("the fetcher refuses {args:?}: {e}"));
        match cli.command {
            Command::Init(parsed) => parsed,
            Command::Serve(_) => panic!("{args:?} parsed as serve"),
        }
    }

    /// Every init container core can build parses, through the fetcher's real parser, back to
    /// the very values it was built from.
    #[test]
    fn every_init_container_core_builds_parses_back_to_its_values() {
        let urls = [fetcher_url(), "http://127.0.0.1:8787/".to_string()];
        let timeouts = [
            InitArgs::DEFAULT_TIMEOUT,
            Duration::from_secs(1),
            Duration::from_millis(2500),
        ];
        let mut checked = 0;
        for mode in [DeliveryMode::HostPath, DeliveryMode::Copy] {
            for n in 1..=DIGESTS.len() {
                for fail_closed in [false, true] {
                    for url in &urls {
                        for timeout in timeouts {
                            let spec = InitContainerSpec {
                                image: "fetcher:1".into(),
                                init: InitArgs {
                                    archives: DIGESTS[..n]
                                        .iter()
                                        .map(|d| format!("127.0.0.1:5000/shop/app-{n}@{d}"))
                                        .collect(),
                                    mode,
                                    dir: "/classcache".into(),
                                    fetcher_url: url.clone(),
                                    timeout,
                                    fail_closed,
                                },
                            };
                            let parsed = parse_init(&spec.command(), &spec.args());
                            assert_eq!(parsed, spec.init, "{:?}", spec.args());
                            assert_eq!(
                                InitContainerSpec::from_args(&spec.image, &spec.args()),
                                Some(spec)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 3 * 2 * 2 * 3);
    }

    /// The init container the pod-template edit writes (what the kubelet runs) parses to the
    /// plan's values, with the URL of the node's fetcher left for the kubelet to expand.
    #[test]
    fn the_init_container_enable_writes_parses_to_the_plan() {
        for mode in [DeliveryMode::HostPath, DeliveryMode::Copy] {
            for fail_closed in [false, true] {
                let plan = EnablePlan {
                    containers: ["app", "sidecar", "third"]
                        .iter()
                        .enumerate()
                        .map(|(i, name)| ContainerArchive {
                            container: name.to_string(),
                            // Two containers share an archive: it is asked for once.
                            archive: format!("reg.example/shop/archives@{}", DIGESTS[i % 2]),
                            runtime_options: vec!["-XX:SharedArchiveFile={archive}".into()],
                            pin_image: None,
                            archive_file: "app.jsa".into(),
                            image_volume: None,
                            trained_agent: None,
                        })
                        .collect(),
                    mode,
                    node_store_dir: "/var/lib/classcache".into(),
                    fetcher_image: "fetcher:1".into(),
                    fetcher_url: fetcher_url(),
                    timeout_secs: 45,
                    fail_closed,
                    force: false,
                };
                let mut template = serde_json::json!({"spec": {"containers": [
                    {"name": "app", "image": "app:1"},
                    {"name": "sidecar", "image": "side:1"},
                    {"name": "third", "image": "third:1"},
                ]}});
                enable_template(&mut template, &plan, "deployment/app").unwrap();
                let init = &template["spec"]["initContainers"][0];
                assert_eq!(init["name"], INIT_CONTAINER);
                let strings = |v: &serde_json::Value| -> Vec<String> {
                    serde_json::from_value(v.clone()).unwrap()
                };
                let parsed = parse_init(&strings(&init["command"]), &strings(&init["args"]));
                assert_eq!(
                    parsed,
                    InitArgs {
                        archives: vec![
                            format!("reg.example/shop/archives@{}", DIGESTS[0]),
                            format!("reg.example/shop/archives@{}", DIGESTS[1]),
                        ],
                        mode,
                        dir: classcache_core::paths::POD_ARCHIVE_DIR.into(),
                        fetcher_url: "http://$(CLASSCACHE_NODE_IP):8787".into(),
                        timeout: Duration::from_secs(45),
                        fail_closed,
                    }
                );
            }
        }
    }

    /// `kubectl classcache install --max-size` renders its value into the DaemonSet as given:
    /// every size install accepts must start the fetcher.
    #[test]
    fn every_size_install_accepts_starts_the_fetcher() {
        for (text, bytes) in classcache_core::size::EXAMPLES {
            let cli = Cli::try_parse_from([
                "classcache-fetcher",
                "serve",
                "--node-id",
                "n1",
                "--max-size",
                text,
            ])
            .unwrap_or_else(|e| panic!("--max-size {text}: {e}"));
            let Command::Serve(args) = cli.command else {
                panic!("not serve")
            };
            assert_eq!(args.max_store_bytes.bytes(), *bytes, "{text}");
        }
        let e = Cli::try_parse_from([
            "classcache-fetcher",
            "serve",
            "--node-id",
            "n",
            "--max-size",
            "lots",
        ])
        .err()
        .unwrap();
        assert!(e.to_string().contains("such as 10Gi"), "{e}");
        let e = Cli::try_parse_from([
            "classcache-fetcher",
            "serve",
            "--node-id",
            "n",
            "--platform",
            "linux",
        ])
        .err()
        .unwrap();
        assert!(e.to_string().contains("e.g. linux/arm64"), "{e}");
    }

    #[test]
    fn stripes_default_to_auto_and_a_bad_count_says_what_to_give() {
        let serve = |extra: &[&str]| {
            let base = ["classcache-fetcher", "serve", "--node-id", "n"];
            match Cli::try_parse_from(base.iter().chain(extra))
                .unwrap()
                .command
            {
                Command::Serve(args) => args,
                Command::Init(_) => panic!("not serve"),
            }
        };
        assert_eq!(serve(&[]).stripes, StripeChoice::Auto);
        assert_eq!(serve(&[]).upload_cap, None);
        assert_eq!(serve(&["--stripes", "8"]).stripes, StripeChoice::Fixed(8));
        assert_eq!(serve(&["--upload-cap", "3"]).upload_cap, Some(3));
        let e = Cli::try_parse_from([
            "classcache-fetcher",
            "serve",
            "--node-id",
            "n",
            "--stripes",
            "0",
        ])
        .err()
        .unwrap();
        assert!(e.to_string().contains("give auto"), "{e}");
    }
}
