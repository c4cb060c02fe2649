//! classcache-build: the CI step's command line, a thin shell of I/O around classcache-core.
//! It must not define archive formats, keys or JVM flags itself.

use clap::Parser;
use classcache_build::cli::Args;
use classcache_build::console::Console;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CLASSCACHE_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
    let args = Args::parse();
    let console = Console::new();
    match classcache_build::run(&args, &console).await {
        Ok(report) => {
            println!("{}", report.summary_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let message = format!("{e:#}");
            if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
                // One annotation line; the full text follows in the log.
                eprintln!(
                    "::error title=classcache::{}",
                    message.lines().next().unwrap_or_default()
                );
            }
            eprintln!("classcache-build: error: {message}");
            ExitCode::FAILURE
        }
    }
}
