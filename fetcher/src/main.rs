//! classcache-fetcher: node cache daemon (`serve`) and init-container mode (`init`).
//! A thin command line over the library; it must not hold logic of its own.

use anyhow::Context;
use clap::{Parser, Subcommand};
use classcache_core::artifact::Platform;
use classcache_core::paths::NODE_STORE_DIR;
use classcache_core::podtemplate::cluster::{
    DeliveryMode, DEFAULT_INIT_TIMEOUT_SECS, FETCHER_PORT, NAMESPACE, PEERS_SERVICE,
};
use classcache_core::size::ByteSize;
use classcache_fetcher::archive::Archives;
use classcache_fetcher::init::{self, InitJob};
use classcache_fetcher::metrics::Metrics;
use classcache_fetcher::peers::{parse_static, PeerSet};
use classcache_fetcher::pull::{Node, PullConfig};
use classcache_fetcher::registry::Origin;
use classcache_fetcher::serve::{router, ServeState};
use classcache_fetcher::store::Store;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "classcache-fetcher",
    version,
    about = "Node cache for classcache archives: one registry pull per cluster, peer to peer, verified atomic publish"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node fetcher (the DaemonSet's container).
    Serve(Box<ServeArgs>),
    /// Make the pod's archives available before its JVM starts (the init container).
    Init(InitArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = format!("0.0.0.0:{FETCHER_PORT}"))]
    listen: String,
    /// The node store (a hostPath); pods mount its `published` directory.
    #[arg(long, default_value = NODE_STORE_DIR)]
    store: PathBuf,
    /// This node's name: what peers rank (set it from the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_id: String,
    /// Static peer list NODE=http://HOST:PORT,… (tests, clusters without API access);
    /// without it, peers come from the peers Service's EndpointSlices.
    #[arg(long, env = "CLASSCACHE_PEERS")]
    peers: Option<String>,
    /// Namespace of the peers Service (EndpointSlice discovery).
    #[arg(long, env = "POD_NAMESPACE", default_value = NAMESPACE)]
    namespace: String,
    /// Name of the peers Service (EndpointSlice discovery).
    #[arg(long, default_value = PEERS_SERVICE)]
    peers_service: String,
    /// Size cap of the store (bytes, or a quantity such as 10Gi or 500Mi, as `kubectl classcache
    /// install --max-size` writes it); least recently used entries not in use are evicted.
    #[arg(long = "max-size", default_value = "10Gi")]
    max_store_bytes: ByteSize,
    /// Entries used this recently are never evicted (a pod may be starting on them).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    in_use_grace: Duration,
    /// Children per node in the distribution tree; 1 makes a chain, which keeps every node's
    /// uplink at one copy and the last node within one transfer time plus per-hop latency.
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Concurrent uploads to peers; more get 503 and go to another node.
    #[arg(long, default_value_t = 4)]
    upload_cap: usize,
    /// No byte from a source for this long: check it and move to another.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    stall_timeout: Duration,
    /// Registries (host:port) spoken to over plain HTTP; loopback ones always are.
    #[arg(
        long = "insecure-registry",
        env = "CLASSCACHE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Platform to pick from archive indexes, os/arch[/variant] (default: this machine's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Test only: corrupt every chunk uploaded to peers.
    #[arg(long, hide = true)]
    corrupt_uploads: bool,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Pinned archive reference <registry>/<repo>@sha256:<hex>; repeat for several.
    #[arg(long = "archive", required = true)]
    archives: Vec<String>,
    #[arg(long, default_value = "hostpath")]
    mode: DeliveryMode,
    #[arg(long, default_value = classcache_core::paths::POD_ARCHIVE_DIR)]
    dir: PathBuf,
    #[arg(long)]
    fetcher_url: String,
    #[arg(long, default_value_t = humantime::Duration::from(Duration::from_secs(DEFAULT_INIT_TIMEOUT_SECS)))]
    timeout: humantime::Duration,
    /// Exit non-zero when the archive cannot be made available (the pod does not start).
    #[arg(long)]
    fail_closed: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .enable_all()
            .build()?
            .block_on(serve(*args)),
        Command::Init(args) => {
            let fail_closed = args.fail_closed;
            let job = InitJob {
                archives: args.archives,
                mode: args.mode,
                dir: args.dir,
                fetcher_url: args.fetcher_url,
                timeout: args.timeout.into(),
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(init::run(&job));
            match result {
                Ok(_) => Ok(()),
                Err(e) if fail_closed => Err(e).context("archive not available (--fail-closed)"),
                Err(e) => {
                    eprintln!(
                        "classcache: starting without the archive (the JVM starts normally): {e}"
                    );
                    Ok(())
                }
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(
        &args.store,
        args.max_store_bytes.bytes(),
        args.in_use_grace,
        metrics.clone(),
    )
    .with_context(|| format!("opening the store at {}", args.store.display()))?;
    let static_peers = match &args.peers {
        Some(list) => parse_static(list)?,
        None => Vec::new(),
    };
    let peers = Arc::new(PeerSet::new(&args.node_id, static_peers));
    if args.peers.is_none() {
        let client = kube::Client::try_default()
            .await
            .context("no --peers given and no Kubernetes API access for EndpointSlice discovery; pass --peers NODE=URL,… or run in a cluster")?;
        let peers = peers.clone();
        let (namespace, service) = (args.namespace.clone(), args.peers_service.clone());
        tokio::spawn(async move {
            classcache_fetcher::discovery::watch_endpoint_slices(
                client, &namespace, &service, peers,
            )
            .await
        });
    }
    let registry = RegistryClient::new(RegistryOptions {
        insecure_registries: args.insecure_registries.clone(),
        ..Default::default()
    })
    .context("setting up the registry client (credentials from $DOCKER_CONFIG/config.json)")?;
    let origin = Arc::new(Origin::new(registry));
    let config = PullConfig {
        fanout: args.fanout.max(1),
        stall_timeout: args.stall_timeout,
        max_hops: 32,
    };
    let node = Node::new(config, store, peers, origin, metrics);
    let platform = args.platform.clone().unwrap_or_else(Platform::current);
    let archives = Archives::new(node, platform);
    let state = ServeState {
        archives,
        uploads: Arc::new(tokio::sync::Semaphore::new(args.upload_cap.max(1))),
        corrupt_uploads: args.corrupt_uploads,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}; is the port taken?", args.listen))?;
    tracing::info!(listen = %args.listen, node = %args.node_id, store = %args.store.display(), "serving");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
