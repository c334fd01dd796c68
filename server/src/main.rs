//! The `veil` binary: `veil serve` runs the HTTP API over the secret store.

mod api;
mod auth;
mod error;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veil: a rule engine whose configurations take credentials from an encrypted secret store.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: REST API over the embedded SQLite store.
    Serve(ServeArgs),
}

/// Options of `veil serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "VEIL_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Directory for the database and the generated master key.
    #[arg(long, default_value = "./veil-data", env = "VEIL_DATA_DIR")]
    pub(crate) data_dir: PathBuf,
    /// File holding the master key (base64 of 32 bytes). `VEIL_MASTER_KEY` takes precedence.
    #[arg(long, env = "VEIL_MASTER_KEY_FILE")]
    pub(crate) master_key_file: Option<PathBuf>,
}

/// Broker clients that print protocol frames at debug/trace level — frames that carry the
/// credentials Veil injected (AMQP's SASL response, MQTT's CONNECT). Capped whatever the user asks.
const CREDENTIAL_FRAME_LOGGERS: &str = "lapin=info,amq_protocol=info,rumqttc=info";

fn log_filter() -> tracing_subscriber::EnvFilter {
    let wanted =
        std::env::var("VEIL_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    tracing_subscriber::EnvFilter::try_new(format!("{wanted},{CREDENTIAL_FRAME_LOGGERS}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("info,{CREDENTIAL_FRAME_LOGGERS}")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
