//! classcache-fetcher: node cache daemon (`serve`) and init-container mode (`init`).
//! A thin command line over the library; it must not hold logic of its own.

use anyhow::Context;
use clap::Parser;
use classcache_core::allowed_registry::AllowedRegistries;
use classcache_core::artifact::Platform;
use classcache_fetcher::archive::Archives;
use classcache_fetcher::callers::Callers;
use classcache_fetcher::cli::{Cli, Command, ServeArgs};
use classcache_fetcher::init;
use classcache_fetcher::metrics::Metrics;
use classcache_fetcher::node::{Node, PullConfig};
use classcache_fetcher::peer_client::HttpPeers;
use classcache_fetcher::peers::{parse_static, PeerSet};
use classcache_fetcher::serve::UploadCap;
use classcache_fetcher::serve::{router, ServeState};
use classcache_fetcher::sources::{AllowedOrigin, ContentOrigin};
use classcache_fetcher::store::Store;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use std::net::SocketAddr;
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
    // Without a pod watch no caller can become known by waiting.
    let pod_wait = if args.peers.is_none() {
        args.pod_wait
    } else {
        std::time::Duration::ZERO
    };
    let callers = Callers::new(
        peers.clone(),
        args.allow_pods_from.clone(),
        pod_wait,
        metrics.clone(),
    );
    if args.peers.is_none() {
        let client = kube::Client::try_default()
            .await
            .context("no --peers given and no Kubernetes API access for EndpointSlice discovery; pass --peers NODE=URL,… or run in a cluster")?;
        let peers = peers.clone();
        let (namespace, service) = (args.namespace.clone(), args.peers_service.clone());
        let slices = client.clone();
        tokio::spawn(async move {
            classcache_fetcher::discovery::watch_endpoint_slices(
                slices, &namespace, &service, peers,
            )
            .await
        });
        let pinned = callers.clone();
        store.keep_pinned_by_pods(move || {
            pinned
                .pinned_on_node()
                .into_iter()
                .filter_map(|r| r.digest)
                .collect()
        });
        if args.stats {
            let (client, callers) = (client.clone(), callers.clone());
            tokio::spawn(async move {
                classcache_fetcher::sharing::watch_api_servers(client, callers).await
            });
        }
        let (node, callers) = (args.node_id.clone(), callers.clone());
        tokio::spawn(async move {
            classcache_fetcher::pod_watch::watch_node_pods(client, &node, callers).await
        });
    }
    let registry = RegistryClient::new(RegistryOptions {
        insecure_registries: args.insecure_registries.clone(),
        read_timeout: Some(args.registry_read_timeout),
        ..Default::default()
    })
    .context("setting up the registry client (credentials from $DOCKER_CONFIG/config.json)")?;
    if args.allowed_registries.is_empty() {
        tracing::warn!("no --allowed-registry: every registry request will be refused (kubectl classcache install --allowed-registry HOST[:PORT][/repo-prefix])");
    }
    let signature_registry = registry.clone();
    let origin = Arc::new(AllowedOrigin::new(
        AllowedRegistries(args.allowed_registries.clone()),
        ContentOrigin::new(move |repo: &_| registry.source(repo)),
    ));
    let transport = Arc::new(HttpPeers::new(&args.node_id));
    if let Some(upload_cap) = args.upload_cap.filter(|&c| c < args.stripes.most() + 2) {
        tracing::warn!(upload_cap, stripes = %args.stripes, "--upload-cap is below the stripe count + 2: some children will be turned away and fetch from further up; raise --upload-cap, lower --stripes, or leave --upload-cap out");
    }
    let config = PullConfig {
        fanout: args.fanout.max(1),
        stripes: args.stripes,
        zone_aware: args.zone_aware,
        stall_timeout: args.stall_timeout,
        max_hops: 32,
        max_downloads: args.max_downloads,
    };
    let node = Node::new(config, store, peers, origin, transport, metrics);
    let platform = args.platform.clone().unwrap_or_else(Platform::current);
    let archives = Archives::new(node, platform);
    if args.signatures.require_signature {
        let keys = &args.signatures.signature_keys;
        let policy = classcache_fetcher::signature::SignaturePolicy::from_key_files(
            keys,
            signature_registry,
        )?;
        tracing::info!(?keys, "publishing only signed archives");
        let _ = archives.signatures.set(policy);
    }
    let state = ServeState {
        archives,
        callers,
        uploads: Arc::new(UploadCap::new(args.upload_cap, args.stripes)),
        corrupt_uploads: args.corrupt_uploads,
        stats: args.stats.then(|| {
            Arc::new(classcache_fetcher::sharing::StatsSource {
                proc_root: args.proc_root.clone(),
                node_id: args.node_id.clone(),
            })
        }),
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
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server")
}
