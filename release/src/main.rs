//! classcache-release: the fetcher image as a multi-platform OCI layout or a docker-archive, and
//! its push to a registry; a thin CLI over the oci crate that scripts/release.sh and
//! scripts/fetcher-image.sh run. It must not compile binaries nor publish anything but images.

mod image;
mod push;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use classcache_core::platform::Platform;
use classcache_core::reference::RegistryRef;
use classcache_oci::docker_config::Credentials;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use std::path::PathBuf;

/// The environment variable holding the registry password or token for `push --username`
/// (never a flag: flags show in process listings).
const PASSWORD_ENV: &str = "CLASSCACHE_REGISTRY_PASSWORD";

#[derive(Debug, Parser)]
#[command(
    name = "classcache-release",
    version,
    about = "Builds the classcache-fetcher image from static binaries and pushes it (used by scripts/release.sh and scripts/fetcher-image.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the image reference `kubectl classcache install` uses by default.
    DefaultImage,
    /// Builds the image: an OCI layout with one index over every platform, and/or one
    /// platform's docker-archive for `docker load` / `ctr images import`.
    Image {
        /// PLATFORM=PATH: the static classcache-fetcher for that platform (e.g.
        /// linux/amd64=target/…/classcache-fetcher); once per platform.
        #[arg(long = "binary", value_name = "PLATFORM=PATH", required = true)]
        binaries: Vec<String>,
        /// The CA bundle the image trusts for HTTPS registries.
        #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
        ca_bundle: PathBuf,
        /// The URL of the source repository, labelled in the image.
        #[arg(long)]
        source: Option<String>,
        /// Write the OCI layout here (a missing or empty directory).
        #[arg(long)]
        layout: Option<PathBuf>,
        /// Write this platform's image as a docker-archive here.
        #[arg(long, requires = "archive_platform")]
        docker_archive: Option<PathBuf>,
        /// The platform of --docker-archive.
        #[arg(long, requires = "docker_archive")]
        archive_platform: Option<Platform>,
        /// The references the docker-archive's image is tagged with (default: the default
        /// image reference); repeatable.
        #[arg(long = "repo-tag")]
        repo_tags: Vec<String>,
    },
    /// Pushes the index tagged with the version in an OCI layout written by `image` to a
    /// registry (credentials: --username with $CLASSCACHE_REGISTRY_PASSWORD, else the Docker
    /// config).
    Push {
        /// The OCI layout written by `image --layout`.
        #[arg(long)]
        layout: PathBuf,
        /// The reference to push to, host/repo:tag.
        #[arg(long)]
        to: RegistryRef,
        /// Log in as this user with the password or token in $CLASSCACHE_REGISTRY_PASSWORD.
        #[arg(long)]
        username: Option<String>,
        /// Talk plain HTTP to this registry host[:port] (loopback ones always are).
        #[arg(long)]
        insecure_registry: Vec<String>,
    },
}

/// The version every artifact is labelled and tagged with (Cargo.toml [workspace.package]).
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn parse_binary(arg: &str) -> Result<(Platform, Vec<u8>)> {
    let (platform, path) = arg.split_once('=').with_context(|| {
        format!("--binary {arg:?} is not PLATFORM=PATH; write e.g. --binary linux/amd64=target/x/classcache-fetcher")
    })?;
    let platform: Platform = platform.parse()?;
    let binary = std::fs::read(path).with_context(|| {
        format!("cannot read the {platform} binary {path}; build it first (scripts/release.sh)")
    })?;
    Ok((platform, binary))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::DefaultImage => println!("{}", image::default_reference(VERSION)),
        Command::Image {
            binaries,
            ca_bundle,
            source,
            layout,
            docker_archive,
            archive_platform,
            repo_tags,
        } => {
            let binaries = binaries
                .iter()
                .map(|b| parse_binary(b))
                .collect::<Result<Vec<_>>>()?;
            let contents = image::Contents {
                ca_bundle: std::fs::read(&ca_bundle).with_context(|| {
                    format!(
                        "cannot read the CA bundle {}; install ca-certificates or pass --ca-bundle FILE",
                        ca_bundle.display()
                    )
                })?,
                version: VERSION.to_string(),
                source,
            };
            let built = image::image(&binaries, &contents)?;
            if let Some(dir) = &layout {
                image::write_layout(&built, dir, VERSION)?;
                eprintln!(
                    "classcache-release: wrote oci:{}:{VERSION} (index {})",
                    dir.display(),
                    built.index_descriptor.digest
                );
            }
            if let (Some(path), Some(platform)) = (&docker_archive, &archive_platform) {
                let one = built
                    .platforms
                    .iter()
                    .find(|p| &p.platform == platform)
                    .with_context(|| {
                        format!("--archive-platform {platform} has no --binary; add --binary {platform}=PATH")
                    })?;
                let tags = if repo_tags.is_empty() {
                    vec![image::default_reference(VERSION)]
                } else {
                    repo_tags
                };
                image::write_docker_archive(one, path, &tags)?;
                eprintln!(
                    "classcache-release: wrote the {platform} docker-archive {} ({})",
                    path.display(),
                    tags.join(", ")
                );
            }
        }
        Command::Push {
            layout,
            to,
            username,
            insecure_registry,
        } => {
            let mut options = RegistryOptions {
                insecure_registries: insecure_registry,
                ..Default::default()
            };
            if let Some(username) = username {
                let password = std::env::var(PASSWORD_ENV).with_context(|| {
                    format!("--username {username} needs the password or token in ${PASSWORD_ENV}")
                })?;
                options.credentials.insert(
                    to.registry.clone(),
                    Credentials::Basic { username, password },
                );
            }
            let client = RegistryClient::new(options)?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start tokio")?;
            let digest = runtime.block_on(push::push_layout(&layout, VERSION, &client, &to))?;
            println!("{to}@{digest}");
        }
    }
    Ok(())
}
