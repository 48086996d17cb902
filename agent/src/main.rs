//! `baton-agent`: connects out to a Baton server, registers, heartbeats, and (with the run
//! lifecycle) runs the work it is given. It reconnects with backoff across its servers; a refusal
//! the agent cannot fix by retrying (a bad token, its name already online) ends it with a clear
//! error and exit code 2.

mod config;
mod journal;
mod launcher;
mod log;
mod mask;
mod paths;
mod runner;
mod shim;
mod stats;

use anyhow::{Context, Result};
use baton_schema::agent::v1::{self, AgentMsg, ServerMsg, PROTOCOL_VERSION};
use clap::Parser;
use config::{Cli, Config};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How a connection ended.
enum End {
    /// The server refused us; retrying will not help.
    Refused(String),
    /// The connection dropped or could not be made; try again.
    Lost(String),
}

/// What outlives a connection: the event log, the runner and the queue of frames to send.
struct Agent {
    log: Arc<Mutex<log::EventLog>>,
    /// The name of this agent's state (`Hello::incarnation`).
    incarnation: String,
    runner: runner::Runner,
    outbox: mpsc::UnboundedReceiver<AgentMsg>,
}

/// An event's kind, for the debug log.
fn event_name(e: &v1::AgentEvent) -> &'static str {
    match e {
        v1::AgentEvent::Accepted => "accepted",
        v1::AgentEvent::Refused { .. } => "refused",
        v1::AgentEvent::Spawned { .. } => "spawned",
        v1::AgentEvent::Output { .. } => "output",
        v1::AgentEvent::Ended { .. } => "ended",
    }
}

async fn send(ws: &mut Socket, msg: &AgentMsg) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    ws.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection to one server; `registered` tells whether the server welcomed it.
async fn session(
    cfg: &Config,
    url: &str,
    sampler: &mut stats::Sampler,
    agent: &mut Agent,
    registered: &mut bool,
) -> End {
    // Small frames must go out at once: with Nagle's algorithm each waits for the last ACK.
    // wss:// is checked against --ca when given, else the system's roots.
    let connector = cfg.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (mut ws, _) = match tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector).await {
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
        last_acked_seq: agent.log.lock().map(|l| l.acked()).unwrap_or(0),
        incarnation: agent.incarnation.clone(),
        attempts: Some(agent.runner.attempts()),
    };
    if let Err(e) = send(&mut ws, &hello).await {
        return End::Lost(format!("sending hello: {e}"));
    }
    let heartbeat = match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ServerMsg>(&t) {
            Ok(ServerMsg::Welcome { heartbeat_seconds, acked_seq, .. }) => {
                // Replay, in order, what the server has not stored; frames queued while away are
                // in the log too, so the queue is dropped (under the log's lock, which the writer
                // holds while it makes an event pending and queues it: none is missed).
                let pending = match agent.log.lock() {
                    Ok(mut l) => {
                        l.ack(acked_seq);
                        while agent.outbox.try_recv().is_ok() {}
                        l.pending()
                    }
                    Err(_) => Vec::new(),
                };
                if !pending.is_empty() {
                    tracing::info!(events = pending.len(), "replaying events the server has not acknowledged");
                }
                for m in &pending {
                    if let Err(e) = send(&mut ws, m).await {
                        return End::Lost(format!("replaying: {e}"));
                    }
                }
                for m in agent.runner.secrets_wanted() {
                    if let Err(e) = send(&mut ws, &m).await {
                        return End::Lost(format!("asking for credentials: {e}"));
                    }
                }
                heartbeat_seconds.max(1)
            }
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
    *registered = true;
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(heartbeat)));
    // A server that stopped answering (stopped, or cut off without a reset) is left for the
    // next one: it is pinged with every heartbeat, and three heartbeats without a frame end it.
    let silent_after = Duration::from_secs(u64::from(heartbeat) * 3);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if heard.elapsed() > silent_after {
                    return End::Lost(format!("the server stopped answering for {} s", silent_after.as_secs()));
                }
                let msg = AgentMsg::Heartbeat {
                    stats: sampler.sample(agent.runner.running()),
                    attempts: Some(agent.runner.attempts()),
                };
                if let Err(e) = send(&mut ws, &msg).await {
                    return End::Lost(format!("sending a heartbeat: {e}"));
                }
                if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                    return End::Lost(format!("pinging the server: {e}"));
                }
            }
            out = agent.outbox.recv() => {
                if let Some(m) = out {
                    if let AgentMsg::Event { seq, run_id, attempt, event } = &m {
                        // Output is too frequent to log; every step of a run is logged at debug.
                        if !matches!(event, v1::AgentEvent::Output { .. }) {
                            tracing::debug!(seq, run = run_id.0, attempt, event = event_name(event), "sending");
                        }
                    }
                    if let Err(e) = send(&mut ws, &m).await {
                        return End::Lost(format!("sending an event: {e}"));
                    }
                }
            }
            frame = ws.next() => match frame.inspect(|_| heard = tokio::time::Instant::now()) {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMsg>(&t) {
                    Ok(ServerMsg::Error { code, message }) => tracing::warn!(%code, %message, "the server reported an error"),
                    Ok(ServerMsg::Refused { reason }) => return End::Refused(reason),
                    Ok(ServerMsg::Dispatch(d)) => {
                        tracing::info!(run = d.run_id.0, attempt = d.attempt, "dispatched");
                        agent.runner.accept(d);
                    }
                    Ok(ServerMsg::Terminate { run_id, attempt, grace_seconds, by }) => {
                        tracing::info!(run = run_id.0, attempt, %by, "terminate");
                        agent.runner.terminate(run_id.0, attempt, grace_seconds, by);
                    }
                    Ok(ServerMsg::Ack { seq }) => {
                        tracing::debug!(seq, "acknowledged");
                        if let Ok(mut l) = agent.log.lock() {
                            l.ack(seq);
                        }
                    }
                    Ok(ServerMsg::Secrets { run_id, attempt, values }) => {
                        tracing::info!(run = run_id.0, attempt, "credentials given again to mask its output");
                        agent.runner.secrets_answered(run_id.0, attempt, Some(values));
                    }
                    Ok(ServerMsg::NoSecrets { run_id, attempt, reason }) => {
                        tracing::warn!(run = run_id.0, attempt, %reason, "credentials not given again; its output is withheld");
                        agent.runner.secrets_answered(run_id.0, attempt, None);
                    }
                    Ok(ServerMsg::Welcome { .. }) => {}
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
    let incarnation = log::EventLog::incarnation(&cfg.state_dir)?;
    let log = Arc::new(Mutex::new(log::EventLog::open(&cfg.state_dir)?));
    let (tx, outbox) = mpsc::unbounded_channel();
    let events = log::start_writer(log.clone(), tx)?;
    if cfg.allow_run_as.is_empty() {
        tracing::warn!("no run-as user is allowed (the agent runs as root: name users, root included, with --allow-run-as); every dispatch will be refused");
    }
    let runner = runner::Runner::new(&cfg.state_dir, events, cfg.allow_run_as.clone())?;
    runner.resume();
    runner.sweep_forever(cfg.keep_runs);
    let mut agent = Agent { log, incarnation, runner, outbox };
    let mut sampler = stats::Sampler::default();
    let mut backoff = Duration::from_millis(250);
    let mut i = 0usize;
    loop {
        let url = Config::socket_url(&cfg.servers[i % cfg.servers.len()]);
        let mut registered = false;
        match session(&cfg, &url, &mut sampler, &mut agent, &mut registered).await {
            End::Refused(reason) => anyhow::bail!("refused by {url}: {reason}"),
            End::Lost(why) => {
                // A connection that worked starts the backoff over: only failures in a row grow it.
                if registered {
                    backoff = Duration::from_millis(250);
                }
                tracing::warn!(server = %url, %why, retry_in_ms = backoff.as_millis() as u64, "disconnected");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                i += 1;
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    // `baton-agent launcher RUNS_DIR` forks the shims (started by the agent itself).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "launcher") {
        let Some(runs_dir) = args.get(2) else { return std::process::ExitCode::from(2) };
        return launcher::serve(std::path::Path::new(runs_dir));
    }
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
