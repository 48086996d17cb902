//! The agent gateway, the socket at `/agent`: admission (token, name binding, one connection per
//! name), the frames each way with their caps and rate limits, heartbeats and acknowledgements,
//! and agent events handed to the driver. It sits above both the hub (who is online) and the
//! driver (what runs where), which do not know it.

use crate::agents::{AgentHub, Conn, Serves};
use crate::db;
use crate::driver::{Driver, Holding};
use crate::service::auth::token_hash;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::AggregatedMessage;
use baton_schema::agent::v1::{self, AgentMsg, ServerMsg, PROTOCOL_VERSION};
use baton_schema::agent::AgentStatus;
use baton_schema::ids::AgentId;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Frames that make no sense count against a connection; past this many it is closed.
const MAX_BAD_FRAMES: u32 = 100;

/// An agent numbers its events one after the other; one further than this past the last stored
/// is not an agent's (it would make the server ignore the real events after it).
pub const MAX_SEQ_AHEAD: u64 = 1000;

/// What one connection may send: frames and bytes per second, and how much may come at once.
const FRAMES_PER_SECOND: f64 = 10_000.0;
const FRAMES_BURST: f64 = 50_000.0;
const BYTES_PER_SECOND: f64 = 16.0 * 1024.0 * 1024.0;
const BYTES_BURST: f64 = 64.0 * 1024.0 * 1024.0;

/// A token bucket: `rate` per second, up to `burst` saved up. A connection over its budget is
/// read more slowly (the agent's frames wait in its socket), so nothing is lost.
struct Bucket {
    rate: f64,
    burst: f64,
    level: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Bucket {
        Bucket { rate, burst, level: burst, at: std::time::Instant::now() }
    }

    /// Takes `cost`; how long to wait before going on.
    fn take(&mut self, cost: f64) -> Duration {
        let now = std::time::Instant::now();
        self.level = (self.level + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        self.level -= cost;
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }
}

/// The most attempts a hello or a heartbeat may list.
const MAX_ATTEMPTS_LISTED: usize = 100_000;

/// An event being stored: its sequence, and whether it may be acknowledged (false: its write
/// failed).
type Storing = Pin<Box<dyn Future<Output = (u64, bool)> + Send>>;

/// Why an agent was not let in.
enum TurnedAway {
    /// For good (a bad token, a name taken, another protocol): the agent is told, and stops.
    Refused(String),
    /// For now (the database did not answer): the connection closes, and the agent tries again.
    Unavailable(String),
}

fn unavailable(e: db::DbError) -> TurnedAway {
    TurnedAway::Unavailable(e.to_string())
}

/// Checks the first frame of a connection and registers the agent.
async fn admit(hub: &AgentHub, hello: AgentMsg, tx: &mpsc::UnboundedSender<ServerMsg>) -> Result<Admitted, TurnedAway> {
    use TurnedAway::{Refused, Unavailable};
    let AgentMsg::Hello { protocol, token, name, hostname, queues, version, os, incarnation, attempts, .. } = hello
    else {
        return Err(Refused("the first frame must be hello".into()));
    };
    if protocol != PROTOCOL_VERSION {
        return Err(Refused(format!("protocol {protocol} is not supported (the server speaks {PROTOCOL_VERSION})")));
    }
    let now = hub.clock.now();
    if baton_schema::names::Target::parse(&name).is_err()
        || queues.iter().any(|q| baton_schema::names::Target::parse(q).is_err())
    {
        return Err(Refused("agent and queue names may contain only letters, digits, '_', '-' and '.'".into()));
    }
    // Checked before anything is hashed, stored or looked up.
    if token.len() > crate::service::auth::MAX_TOKEN_BYTES {
        return Err(Refused("the enrollment token is unknown or revoked".into()));
    }
    let fields =
        [("hostname", &hostname, 255), ("version", &version, 64), ("os", &os, 128), ("incarnation", &incarnation, 64)];
    for (field, value, most) in fields {
        if value.len() > most {
            return Err(Refused(format!("{field}: at most {most} bytes")));
        }
    }
    if queues.len() > 64 {
        return Err(Refused("queues: at most 64".into()));
    }
    if attempts.as_ref().is_some_and(|a| a.len() > MAX_ATTEMPTS_LISTED) {
        return Err(Refused(format!("attempts: at most {MAX_ATTEMPTS_LISTED}")));
    }
    let hash = token_hash(&token);
    let known = hub.db.run(move |c| db::agent_tokens::find_live(c, &hash)).await.map_err(unavailable)?;
    let Some(token) = known else {
        return Err(Refused("the enrollment token is unknown or revoked".into()));
    };
    // A token enrolls one agent, the name it first registered; no other token takes that name.
    let (token_id, bind_name) = (token.id, name.clone());
    // And what it first said of itself (hostname, queues), since targets match them.
    let (claimed_host, claimed_queues) = (hostname.clone(), queues.clone());
    let refused = hub
        .db
        .run(move |c| {
            db::transaction(c, |c| match db::agent_tokens::bind(c, token_id, &bind_name)? {
                Some(why) => Ok(Some(why)),
                None => db::agent_tokens::bind_claims(c, token_id, &claimed_host, &claimed_queues),
            })
        })
        .await
        .map_err(unavailable)?;
    if let Some(why) = refused {
        tracing::warn!(agent = %name, %why, "an agent claimed more than its enrollment token allows");
        return Err(Refused(why));
    }
    let serial = hub.serial.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    {
        let mut conns = hub.conns.lock().map_err(|_| Unavailable("internal error".into()))?;
        // A live agent of that name keeps it; a stale one (missed heartbeats) is replaced, and
        // dropping its sender ends its connection. The same agent (its incarnation) reconnecting
        // before this server saw its old connection close replaces it too.
        if let Some(old) = conns.get(&name).filter(|c| c.online) {
            if incarnation.is_empty() || old.incarnation != incarnation {
                return Err(Refused(format!("an agent named {name} is already online")));
            }
            tracing::info!(agent = %name, "the agent reconnected before its old connection closed; the new one takes over");
        }
        // Reserve the name before the database write, so two racing agents cannot both get it.
        let conn = Conn {
            id: None,
            hostname: hostname.clone(),
            queues: queues.clone(),
            tx: tx.clone(),
            last_heartbeat: now,
            online: false,
            serial,
            token_id,
            serves: Serves::Only(Vec::new()),
            incarnation: incarnation.clone(),
        };
        conns.insert(name.clone(), conn);
    }
    let (reg_name, reg_incarnation, token_instances) = (name.clone(), incarnation.clone(), token.instances.clone());
    let fresh = token.agent_name.is_none();
    let row = hub
        .db
        .run(move |c| {
            let new = db::agents::by_name(c, &reg_name)?.is_none();
            let (mut row, reinstalled) = db::agents::register(
                c,
                &db::agents::Registration {
                    name: &reg_name,
                    hostname: &hostname,
                    queues: &queues,
                    version: &version,
                    os: &os,
                    incarnation: &reg_incarnation,
                },
                now,
            )?;
            // A new agent serves the instances of whoever made its token, no more; so does an
            // agent whose name a new token took (its old token was revoked).
            if (new || fresh) && row.instances != token_instances {
                db::agents::set_instances(c, &reg_name, &token_instances)?;
                row.instances = token_instances;
            }
            let serves = Serves::of(&row.instances, &db::instances::list(c)?);
            Ok::<_, db::DbError>((row, reinstalled, serves))
        })
        .await;
    let (row, reinstalled, serves) = match row {
        Ok(r) => r,
        Err(e) => {
            if let Ok(mut conns) = hub.conns.lock() {
                conns.remove(&name);
            }
            return Err(Unavailable(format!("registration failed: {e}")));
        }
    };
    if let Ok(mut conns) = hub.conns.lock() {
        if let Some(c) = conns.get_mut(&name) {
            c.id = Some(row.id);
            c.serves = serves;
            c.online = true;
        }
    }
    let holding = match attempts {
        _ if reinstalled => {
            tracing::warn!(agent = %name, "a new incarnation of the agent (its state was made anew): its old attempts are lost");
            Holding::Reinstalled
        }
        Some(list) => Holding::Only(list),
        None => Holding::Unknown,
    };
    let acked = u64::try_from(row.last_acked_seq).unwrap_or(0);
    Ok(Admitted { name, id: row.id, acked, incarnation: row.incarnation, holding, serial })
}

/// An agent let in: who it is, the last event stored of its incarnation, and what it holds.
struct Admitted {
    name: String,
    id: AgentId,
    acked: u64,
    incarnation: String,
    holding: Holding,
    /// Which connection this is in the registry.
    serial: u64,
}

/// `GET /agent`: the WebSocket of one agent.
pub async fn agent_socket(
    hub: web::Data<Arc<AgentHub>>,
    driver: web::Data<Arc<Driver>>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
    let mut stream =
        stream.max_frame_size(v1::MAX_FRAME_BYTES).aggregate_continuations().max_continuation_size(v1::MAX_FRAME_BYTES);
    let hub = hub.get_ref().clone();
    let driver = driver.get_ref().clone();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    actix_web::rt::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
        // A stopping server lets no agent in: closed without a refusal, it tries another.
        let mut closing = hub.closing();
        if *closing.borrow_and_update() {
            let _ = session.close(Some(actix_ws::CloseCode::Restart.into())).await;
            return;
        }
        let send = |s: &mut actix_ws::Session, m: &ServerMsg| {
            let text = serde_json::to_string(m).unwrap_or_default();
            let mut s = s.clone();
            async move { s.text(text).await.is_ok() }
        };
        // The first frame must be a hello, within ten seconds.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        let hello = match first {
            Ok(Some(Ok(AggregatedMessage::Text(t)))) => v1::parse_agent_frame(&t),
            _ => Err("expected a hello frame within 10 s".into()),
        };
        let admitted = match hello {
            Ok(h) => admit(&hub, h, &tx).await,
            Err(e) => Err(TurnedAway::Refused(e)),
        };
        let Admitted { name, id, mut acked, incarnation, holding, serial } = match admitted {
            Ok(a) => a,
            Err(TurnedAway::Refused(reason)) => {
                tracing::warn!(%peer, %reason, "agent refused");
                send(&mut session, &ServerMsg::Refused { reason }).await;
                let _ = session.close(None).await;
                return;
            }
            Err(TurnedAway::Unavailable(reason)) => {
                tracing::warn!(%peer, %reason, "agent not let in for now; it tries again");
                let _ = session.close(Some(actix_ws::CloseCode::Again.into())).await;
                return;
            }
        };
        tracing::info!(agent = %name, %peer, "agent connected");
        // The registry holds the only sender: a newer connection of the agent, or a stale one
        // dropped, ends this one.
        drop(tx);
        // The agent's connection before this one (replaced, or closed while the database was
        // slow) finishes storing what it received before this one takes the agent's runs.
        let _writing = hub.writing(&name).await;
        // Its runs are this server's before its replayed events are read.
        if !driver.adopt_agent(&name, id, holding).await {
            if let Ok(mut conns) = hub.conns.lock() {
                if conns.get(&name).is_some_and(|c| c.serial == serial) {
                    conns.remove(&name);
                }
            }
            let _ = session.close(Some(actix_ws::CloseCode::Again.into())).await;
            return;
        }
        hub.publish(&name, AgentStatus::Online);
        send(
            &mut session,
            &ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                server_version: env!("CARGO_PKG_VERSION").into(),
                heartbeat_seconds: hub.policy.interval_seconds,
                acked_seq: acked,
            },
        )
        .await;
        let mut bad = 0u32;
        let (mut frames, mut bytes) =
            (Bucket::new(FRAMES_PER_SECOND, FRAMES_BURST), Bucket::new(BYTES_PER_SECOND, BYTES_BURST));
        // Events being stored, in the order they came: each is acknowledged once it and every
        // event before it are stored.
        // An event whose write failed (the database is away) is not acknowledged, nor is any
        // after it: the connection is closed, and the agent sends them again when it is back.
        let mut storing: FuturesOrdered<Storing> = FuturesOrdered::new();
        let mut failed = false;
        let mut going_away = false;
        loop {
            tokio::select! {
                Ok(()) = closing.changed() => {
                    tracing::info!(agent = %name, "the server is stopping: closing, so the agent moves to another");
                    going_away = true;
                    break;
                }
                Some((seq, ok)) = storing.next(), if !storing.is_empty() => {
                    // One acknowledgement for all that is stored by now.
                    let mut last = ok.then_some(seq);
                    failed = !ok;
                    while !failed {
                        let Some(Some((s, ok))) = storing.next().now_or_never() else { break };
                        if ok { last = Some(s) } else { failed = true }
                    }
                    // Recorded once every event up to it is stored (a run's writes may go on
                    // another connection than this one), and before the agent hears of it.
                    if let Some(last) = last {
                        record_ack(&hub, &name, id, &incarnation, last).await;
                        send(&mut session, &ServerMsg::Ack { seq: last }).await;
                    }
                    if failed {
                        tracing::warn!(agent = %name, "an event was not stored; closing, so the agent sends it again");
                        break;
                    }
                }
                out = rx.recv() => match out {
                    // A refusal (its token was revoked) is the last frame.
                    Some(m) => if !send(&mut session, &m).await || matches!(m, ServerMsg::Refused { .. }) { break },
                    None => break,
                },
                frame = stream.next() => match frame {
                    Some(Ok(AggregatedMessage::Text(t))) => {
                        let wait = frames.take(1.0).max(bytes.take(t.len() as f64));
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        match v1::parse_agent_frame(&t) {
                            Ok(AgentMsg::Heartbeat { stats, attempts }) => {
                                on_heartbeat(&hub, &name, id, stats).await;
                                if let Some(list) = attempts {
                                    if list.len() > MAX_ATTEMPTS_LISTED {
                                        bad += 1;
                                        let message = format!("attempts: at most {MAX_ATTEMPTS_LISTED}");
                                        send(&mut session, &ServerMsg::Error { code: "malformed".into(), message }).await;
                                    } else if !driver.attempts_held(&name, &list).await {
                                        tracing::warn!(agent = %name, "a lost attempt's failure was not stored; closing, so the agent is judged again");
                                        break;
                                    }
                                }
                            }
                            Ok(AgentMsg::Hello { .. }) => {
                                bad += 1;
                                send(&mut session, &ServerMsg::Error { code: "protocol".into(), message: "already registered".into() }).await;
                            }
                            Ok(AgentMsg::Event { seq, run_id, attempt, event }) => {
                                if seq == 0 {
                                    bad += 1;
                                    send(&mut session, &ServerMsg::Error { code: "malformed".into(), message: "sequence numbers start at 1".into() }).await;
                                    continue;
                                }
                                if seq > acked.saturating_add(MAX_SEQ_AHEAD) {
                                    bad += 1;
                                    let message = format!("event {seq} is more than {MAX_SEQ_AHEAD} past the last one stored ({acked}); ignored");
                                    send(&mut session, &ServerMsg::Error { code: "malformed".into(), message }).await;
                                    continue;
                                }
                                // Applied now, stored in order with the events before it; acknowledged
                                // (in order) once stored. A replay of what is stored already changes
                                // nothing and is acknowledged again.
                                if seq > acked {
                                    let mut stored = driver.on_agent_event(&name, run_id, attempt, event.clone());
                                    if stored.is_none() {
                                        // Judged against the run as stored: this server may have let go of it.
                                        match driver.take_over(&name, id, run_id, attempt).await {
                                            // Stored as this agent's, yet memory is elsewhere (a
                                            // newer attempt being written): once that write is
                                            // done, the event is stale; if it fails, it comes again.
                                            Ok(true) => {
                                                stored = driver.on_agent_event(&name, run_id, attempt, event)
                                                    .or_else(|| Some(driver.settled(run_id)));
                                            }
                                            Ok(false) => {}
                                            Err(()) => stored = Some(Box::pin(std::future::ready(false))),
                                        }
                                    }
                                    if stored.is_none() {
                                        bad += 1;
                                        let message = format!("run {run_id} attempt {attempt} is not dispatched to this agent (event {seq} ignored)");
                                        send(&mut session, &ServerMsg::Error { code: "unknown_run".into(), message }).await;
                                    }
                                    acked = seq;
                                    storing.push_back(Box::pin(async move {
                                        match stored {
                                            Some(stored) => (seq, stored.await),
                                            None => (seq, true),
                                        }
                                    }));
                                } else {
                                    storing.push_back(Box::pin(std::future::ready((seq, true))));
                                }
                            }
                            Ok(AgentMsg::SecretsWanted { run_id, attempt, credentials }) => {
                                let answer = match driver.secrets_again(id, run_id, attempt, credentials).await {
                                    Ok(values) => ServerMsg::Secrets { run_id, attempt, values },
                                    Err(reason) => {
                                        tracing::warn!(agent = %name, run = %run_id, attempt, %reason, "credentials not given again");
                                        ServerMsg::NoSecrets { run_id, attempt, reason }
                                    }
                                };
                                send(&mut session, &answer).await;
                            }
                            Err(message) => {
                                bad += 1;
                                send(&mut session, &ServerMsg::Error { code: "malformed".into(), message }).await;
                            }
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(p))) => { let _ = session.pong(&p).await; }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        bad += 1;
                        send(&mut session, &ServerMsg::Error { code: "malformed".into(), message: "binary frames are not part of the protocol".into() }).await;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::warn!(agent = %name, error = %e, "bad frame; closing");
                        send(&mut session, &ServerMsg::Error { code: "protocol".into(), message: e.to_string() }).await;
                        break;
                    }
                },
            }
            if bad > MAX_BAD_FRAMES {
                tracing::warn!(agent = %name, "too many bad frames; closing");
                break;
            }
        }
        // The connection is over: the agent is let in again at once when it reconnects, even
        // while what it sent here is still being stored (the database may be slow to answer).
        if let Ok(mut conns) = hub.conns.lock() {
            if let Some(c) = conns.get_mut(&name).filter(|c| c.serial == serial) {
                c.online = false;
            }
        }
        // What is queued is stored whatever happens to the connection; wait for it, so that
        // each transition is published too (the agent's replay is acknowledged as a duplicate).
        let mut last = None;
        while let Some((seq, ok)) = storing.next().await {
            failed |= !ok;
            if !failed {
                last = Some(seq);
            }
        }
        if let Some(last) = last {
            record_ack(&hub, &name, id, &incarnation, last).await;
            // Told before the close, so the agent does not replay what is stored.
            send(&mut session, &ServerMsg::Ack { seq: last }).await;
        }
        let code = if going_away { actix_ws::CloseCode::Restart } else { actix_ws::CloseCode::Normal };
        let _ = session.close(Some(code.into())).await;
        let removed = hub.conns.lock().ok().and_then(|mut c| {
            if c.get(&name).is_some_and(|x| x.serial == serial) {
                c.remove(&name).map(|x| x.last_heartbeat)
            } else {
                None
            }
        });
        if let Some(seen) = removed {
            driver.release_agent(&name);
            hub.went_offline(&name, id, seen).await;
            tracing::info!(agent = %name, "agent disconnected");
        }
    });
    Ok(response)
}

/// Stores the highest event sequence acknowledged to an agent (its replay starts after it).
async fn record_ack(hub: &AgentHub, name: &str, id: AgentId, incarnation: &str, seq: u64) {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let incarnation = incarnation.to_string();
    if let Err(e) = hub.db.submit(move |c| db::agents::set_acked(c, id, &incarnation, seq)).await {
        tracing::error!(agent = %name, error = %e, "recording an acknowledgement");
    }
}

async fn on_heartbeat(hub: &AgentHub, name: &str, id: AgentId, stats: v1::AgentStats) {
    // The same instant in memory and in the database: a server marking the agent OFFLINE later
    // compares them to tell whether another server saw it since.
    let now = hub.clock.now();
    let came_back = match hub.conns.lock() {
        Ok(mut conns) => match conns.get_mut(name) {
            Some(c) => {
                c.last_heartbeat = now;
                let back = !c.online;
                c.online = true;
                back
            }
            None => false,
        },
        Err(_) => false,
    };
    let beat = db::agents::Beat {
        cpu_percent: f64::from(stats.cpu_percent),
        memory_percent: f64::from(stats.memory_percent),
        uptime_seconds: i64::try_from(stats.uptime_seconds).unwrap_or(i64::MAX),
        write_failures: i64::try_from(stats.write_failures).unwrap_or(i64::MAX),
        // An agent's words, kept short.
        degraded: stats.degraded.map(|d| d.chars().take(500).collect()),
    };
    if stats.write_failures > 0 {
        tracing::warn!(agent = %name, failures = stats.write_failures, "the agent failed to write its own state");
    }
    let res = hub
        .db
        .run(move |c| {
            db::agents::heartbeat(c, id, beat, now)?;
            if came_back {
                db::agents::set_status(c, id, AgentStatus::Online)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, agent = %name, "recording a heartbeat");
    }
    if came_back {
        tracing::info!(agent = %name, "heartbeats resumed: ONLINE");
        hub.publish(name, AgentStatus::Online);
    }
}
