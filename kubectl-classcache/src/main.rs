//! kubectl-classcache: the plugin's command line, a thin shell of I/O around classcache-core.
//! It must not hold pod-template edit logic itself; that lives in core.

mod archive;
mod cli;
mod completion;
mod files;
mod helm;
mod install;
mod live;
mod manifest;
mod plan;
mod report;
mod targets;

use anyhow::{bail, Context, Result};
use clap::Parser;
use classcache_core::podtemplate::{fetcher_url, DeliveryMode, DisableOptions};
use std::process::ExitCode;

use crate::cli::{Cli, Command, DryRun, ModeChoice, Output};
use crate::plan::EnableSettings;
use crate::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    match runtime.block_on(run(cli, &mut report)) {
        Ok(()) if !report.failed() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            report.fail(e);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, report: &mut Report) -> Result<()> {
    match cli.command {
        Command::Enable(args) => {
            let settings = EnableSettings {
                containers: args.containers.clone(),
                archive: args.archive.clone(),
                mode: match args.mode {
                    ModeChoice::Fixed(mode) => mode,
                    ModeChoice::Auto => DeliveryMode::HostPath,
                },
                auto_mode: args.mode == ModeChoice::Auto,
                fetcher_image: args.fetcher_image.clone(),
                fetcher_url: fetcher_url(),
                store_dir: classcache_core::paths::check_store_dir(&args.store_dir)
                    .context("--store-dir")?
                    .to_string(),
                timeout_secs: args.timeout.as_secs().max(1),
                fail_closed: args.fail_closed,
                pin_image: args.pin_image,
                force: args.force,
            };
            let mut resolver = archive::Resolver::new(&args.registry);
            if args.target.files.is_empty() {
                live::edit(
                    &args.target,
                    &args.cluster,
                    Some(&settings),
                    DisableOptions::default(),
                    &mut resolver,
                    report,
                )
                .await
            } else {
                check_file_mode(&args.target)?;
                if settings.auto_mode {
                    bail!("--mode auto asks the cluster whether it mounts image volumes; with -f nothing is asked: pass --mode hostpath, copy or image-volume");
                }
                files::run(
                    &args.target,
                    Some(&settings),
                    DisableOptions::default(),
                    &mut resolver,
                    report,
                )
                .await
            }
        }
        Command::Disable(args) => {
            let mut resolver = archive::Resolver::new(&Default::default());
            let options = DisableOptions {
                keep_image: args.keep_image,
            };
            if args.target.files.is_empty() {
                live::edit(
                    &args.target,
                    &args.cluster,
                    None,
                    options,
                    &mut resolver,
                    report,
                )
                .await
            } else {
                check_file_mode(&args.target)?;
                files::run(&args.target, None, options, &mut resolver, report).await
            }
        }
        Command::Status(args) => live::status(&args, report).await,
        Command::Install(args) => {
            let objects = install::render(&args.render)?;
            if args.dry_run == DryRun::Client {
                print!(
                    "{}",
                    manifest::render(&objects, args.output.unwrap_or(Output::Yaml))?
                );
                return Ok(());
            }
            live::install(&objects, &args, report).await
        }
        Command::Uninstall(args) => live::uninstall(&args, report).await,
        Command::Completion(args) => completion::print(args.shell, &mut std::io::stdout().lock()),
        Command::HelmChart(args) => helm::write_chart(&args.out),
    }
}

/// File mode writes to stdout and never touches a cluster: flags that only mean something
/// against a cluster are refused rather than silently ignored.
fn check_file_mode(target: &cli::TargetArgs) -> Result<()> {
    if target.dry_run == DryRun::Server {
        bail!("--dry-run=server needs a cluster; with -f the result is printed and nothing is sent (drop --dry-run)");
    }
    if target.all_namespaces {
        bail!("-A selects namespaces of a cluster; with -f every object in the files is considered (drop -A)");
    }
    Ok(())
}
