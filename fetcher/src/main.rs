//! classcache-fetcher: node cache daemon (`serve`) and init-container mode (`init`).
//! A thin command line over the library; it must not hold logic of its own.

use anyhow::Context;
use clap::Parser;
use classcache_core::artifact::Platform;
use classcache_fetcher::archive::Archives;
use classcache_fetcher::cli::{Cli, Command, ServeArgs};
use classcache_fetcher::init;
use classcache_fetcher::metrics::Metrics;
use classcache_fetcher::node::{Node, PullConfig};
use classcache_fetcher::peer_client::HttpPeers;
use classcache_fetcher::peers::{parse_static, PeerSet};
use classcache_fetcher::serve::{router, ServeState};
use classcache_fetcher::sources::ContentOrigin;
use classcache_fetcher::store::Store;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use std::sync::Arc;

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
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(init::run(&args));
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
    let origin = Arc::new(ContentOrigin::new(move |repo: &_| registry.source(repo)));
    let transport = Arc::new(HttpPeers::new(&args.node_id));
    let config = PullConfig {
        fanout: args.fanout.max(1),
        stall_timeout: args.stall_timeout,
        max_hops: 32,
    };
    let node = Node::new(config, store, peers, origin, transport, metrics);
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
