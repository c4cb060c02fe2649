//! classcache-build: trains a JVM archive in the app's own image, verifies it and publishes it.
//! The library holds the steps (for tests and benchmarks); `main.rs` is the thin command line.

pub mod build;
pub mod cli;
pub mod console;
pub mod http_probe;
pub mod report;
pub mod runtime;
pub mod verify;

use anyhow::Result;
use std::time::Instant;

/// Runs a whole build as the command line does, removing its containers on every path
/// (success, error, Ctrl-C). Writes the report files; returns the report.
pub async fn run(args: &cli::Args, console: &console::Console) -> Result<report::Report> {
    let started = Instant::now();
    let agent = build::check_agent(args)?;
    let destination = build::destination(args)?;
    let runtime = build::open_runtime(args, agent.as_ref(), console).await?;
    let work = async {
        // The image's own agent is hashed in the image, once the runtime has it.
        let agent = match agent {
            Some(uploaded) => Some(uploaded),
            None => build::agent_in_image(args, &runtime).await?,
        };
        build::build(
            args,
            agent.as_ref(),
            &destination,
            &runtime,
            console,
            started,
        )
        .await
    };
    let result = tokio::select! {
        result = work => result,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted ({signal}); nothing was pushed")),
    };
    runtime.cleanup().await;
    let report = result?;
    report.write_json(&args.report)?;
    report.write_github()?;
    Ok(report)
}

/// Waits for Ctrl-C or SIGTERM (a cancelled CI job), naming which came.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "Ctrl-C";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}
