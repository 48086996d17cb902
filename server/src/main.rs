//! `baton`: the scheduler server and its command line.

use anyhow::Context;
use baton_server::config::{Config, Overrides};
use baton_server::db::Db;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Baton: a workload-automation scheduler.
#[derive(Parser, Debug)]
#[command(
    name = "baton",
    version,
    about = "Baton: a workload-automation scheduler. `baton serve` runs the server, its API at /graphql and its web UI at /."
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "BATON_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: the scheduler, the API at /graphql and the web UI at /.
    Serve {
        /// A TOML file with listen, data_dir and database_url.
        #[arg(long, env = "BATON_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long, env = "BATON_LISTEN")]
        listen: Option<String>,
        /// Directory for the embedded SQLite database and other state (default ./data).
        #[arg(long, env = "BATON_DATA")]
        data: Option<PathBuf>,
        /// postgres://user:pass@host/db, or a SQLite file path (default DATA/baton.db).
        #[arg(long, env = "BATON_DATABASE_URL")]
        database_url: Option<String>,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen, data, database_url } => {
            let config = Config::load(config.as_deref(), Overrides { listen, data_dir: data, database_url })?;
            tracing::info!(database = %config.database.redacted(), backend = config.database.backend_name(), "opening the database");
            let db = Db::open(config.database.clone())?;
            let rt = actix_web::rt::System::new();
            rt.block_on(baton_server::http::serve(config, db)).context("serving")
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_json);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the cause chain (libpq, for one, writes several).
            let msg = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("baton: error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
