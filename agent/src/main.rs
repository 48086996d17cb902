//! `baton-agent`: the per-host agent. Its connection to the server, the process runner and the
//! durable event log arrive with the agents issue; until then it only states what it is.

use clap::Parser;

/// Baton's agent: runs commands on this host for a Baton server and reports every step.
#[derive(Parser, Debug)]
#[command(name = "baton-agent", version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _ = Cli::parse();
    eprintln!("baton-agent: error: this build cannot connect to a server yet (the agent lands with the agents issue)");
    std::process::ExitCode::FAILURE
}
