//! `baton-agent`: connects out to a Baton server, registers, heartbeats, and (with the run
//! lifecycle) runs the work it is given. It reconnects with backoff across its servers; a refusal
//! the agent cannot fix by retrying (a bad token, its name already online) ends it with a clear
//! error and exit code 2.

mod config;
mod stats;

use anyhow::{Context, Result};
use baton_schema::agent::v1::{AgentMsg, ServerMsg, PROTOCOL_VERSION};
use clap::Parser;
use config::{Cli, Config};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How a connection ended.
enum End {
    /// The server refused us; retrying will not help.
    Refused(String),
    /// The connection dropped or could not be made; try again.
    Lost(String),
}

async fn session(cfg: &Config, url: &str, sampler: &mut stats::Sampler) -> End {
    let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(c) => c,
        Err(e) => return End::Lost(format!("connecting to {url}: {e}")),
    };
    let hello = AgentMsg::Hello {
        protocol: PROTOCOL_VERSION,
        token: cfg.token.clone(),
        name: cfg.name.clone(),
        hostname: cfg.hostname.clone(),
        queues: cfg.queues.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        last_acked_seq: 0,
    };
    let text = serde_json::to_string(&hello).unwrap_or_default();
    if let Err(e) = ws.send(Message::Text(text.into())).await {
        return End::Lost(format!("sending hello: {e}"));
    }
    let heartbeat = match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ServerMsg>(&t) {
            Ok(ServerMsg::Welcome { heartbeat_seconds, .. }) => heartbeat_seconds.max(1),
            Ok(ServerMsg::Refused { reason }) => return End::Refused(reason),
            Ok(other) => return End::Lost(format!("unexpected first frame: {other:?}")),
            Err(e) => return End::Lost(format!("unreadable first frame: {e}")),
        },
        Ok(Some(Ok(other))) => return End::Lost(format!("unexpected first frame: {other:?}")),
        Ok(Some(Err(e))) => return End::Lost(e.to_string()),
        Ok(None) => return End::Lost("the server closed the connection".into()),
        Err(_) => return End::Lost("no answer to hello within 15 s".into()),
    };
    tracing::info!(server = %url, name = %cfg.name, "registered");
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(heartbeat)));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let msg = AgentMsg::Heartbeat { stats: sampler.sample(0) };
                let text = serde_json::to_string(&msg).unwrap_or_default();
                if let Err(e) = ws.send(Message::Text(text.into())).await {
                    return End::Lost(format!("sending a heartbeat: {e}"));
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMsg>(&t) {
                    Ok(ServerMsg::Error { code, message }) => tracing::warn!(%code, %message, "the server reported an error"),
                    Ok(ServerMsg::Refused { reason }) => return End::Refused(reason),
                    Ok(other) => tracing::debug!(?other, "frame not handled by this agent yet"),
                    Err(e) => tracing::warn!(error = %e, "unreadable frame from the server"),
                },
                Some(Ok(Message::Close(_))) | None => return End::Lost("the server closed the connection".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return End::Lost(e.to_string()),
            }
        }
    }
}

async fn run(cfg: Config) -> Result<()> {
    tracing::info!(name = %cfg.name, state_dir = %cfg.state_dir.display(), servers = ?cfg.servers, "starting");
    let mut sampler = stats::Sampler::default();
    let mut backoff = Duration::from_millis(250);
    let mut i = 0usize;
    loop {
        let url = Config::socket_url(&cfg.servers[i % cfg.servers.len()]);
        match session(&cfg, &url, &mut sampler).await {
            End::Refused(reason) => anyhow::bail!("refused by {url}: {reason}"),
            End::Lost(why) => {
                tracing::warn!(server = %url, %why, retry_in_ms = backoff.as_millis() as u64, "disconnected");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                i += 1;
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = Config::from_cli(cli).and_then(|cfg| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(run(cfg))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton-agent: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
