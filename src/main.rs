//! The `portcullis` command: run, check, demo, certs. Thin: parsing arguments, printing, exit codes.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portcullis::clock::Clock;
use portcullis::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An identity gateway in front of your helpdesk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, default_value = "config/portcullis.toml")]
        config: PathBuf,
    },
    /// Check a config file: prints `ok`, or every error with file, line and key (exit 1).
    Check {
        #[arg(long, default_value = "config/portcullis.toml")]
        config: PathBuf,
    },
    /// Certificates for local use.
    Certs {
        #[command(subcommand)]
        what: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a self-signed certificate and key into a directory (default `certs/`).
    Dev {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// DNS names or IPs for the certificate (repeatable).
        #[arg(long = "name", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
        names: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("portcullis: refusing to start with an invalid configuration");
                    return ExitCode::FAILURE;
                }
            };
            init_tracing();
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Certs {
            what: CertsCommand::Dev { dir, names },
        } => match portcullis::server::tls::write_dev_cert(&dir, &names) {
            Ok((cert, key)) => {
                println!("wrote {} and {}", cert.display(), key.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}

fn run(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let mut running = portcullis::server::start(config, Clock::system()).await?;
        println!("portcullis listening on {}", running.addr);
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        if let Some(stop) = running.take_stop() {
            let _ = stop.send(());
        }
        running.wait().await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
