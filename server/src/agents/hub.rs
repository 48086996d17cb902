//! The registry of connected agents: who is online (here and, with a shared database, on the
//! other servers), sending them frames, picking candidates for a target, heartbeat deadlines and
//! revoked tokens. The driver depends on this and on nothing of the socket.

use crate::db::{self, Db};
use baton_schema::access::InstanceAccess;
use baton_schema::agent::v1::ServerMsg;
use baton_schema::agent::AgentStatus;
use baton_schema::ids::{AgentId, AgentTokenId, InstanceId};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Heartbeat settings the server gives its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatPolicy {
    pub interval_seconds: u32,
    /// Missed heartbeats after which an agent is OFFLINE.
    pub missed: u32,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self { interval_seconds: 5, missed: 3 }
    }
}

/// A change in an agent's presence or figures, for subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentChange {
    pub name: String,
    pub status: AgentStatus,
}

/// One connected agent.
pub(crate) struct Conn {
    /// None while its registration is being written.
    pub(crate) id: Option<AgentId>,
    pub(crate) hostname: String,
    pub(crate) queues: Vec<String>,
    /// Frames for the agent.
    pub(crate) tx: mpsc::UnboundedSender<ServerMsg>,
    pub(crate) last_heartbeat: DateTime<Utc>,
    pub(crate) online: bool,
    /// Which connection this is, so a stale close cannot remove a newer one.
    pub(crate) serial: u64,
    /// The enrollment token it came with: revoking it closes the connection.
    pub(crate) token_id: AgentTokenId,
    /// The instances whose runs it takes (its `instances` setting), none until it is registered.
    pub(crate) serves: Serves,
    /// The name of its state (`Hello::incarnation`): the same agent reconnecting has the same.
    pub(crate) incarnation: String,
}

/// The instances whose runs an agent takes: every one, or those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serves {
    All,
    Only(Vec<InstanceId>),
}

impl Serves {
    /// An agent's `instances` setting with its names made ids (names of no instance match
    /// nothing; an unreadable setting serves none).
    pub fn of(setting: &str, known: &[db::instances::InstanceRow]) -> Serves {
        match InstanceAccess::parse(setting) {
            Ok(InstanceAccess::All) => Serves::All,
            Ok(InstanceAccess::Only(names)) => {
                Serves::Only(known.iter().filter(|i| names.contains(&i.name)).map(|i| i.id).collect())
            }
            Err(_) => Serves::Only(Vec::new()),
        }
    }

    /// Whether a run of `instance` (none for adhoc runs, checked when they are asked for) may go
    /// to the agent.
    pub fn takes(&self, instance: Option<InstanceId>) -> bool {
        match (self, instance) {
            (Serves::All, _) | (_, None) => true,
            (Serves::Only(ids), Some(i)) => ids.contains(&i),
        }
    }
}

/// The registry of connected agents.
pub struct AgentHub {
    pub(crate) db: Db,
    pub policy: HeartbeatPolicy,
    pub(crate) conns: Mutex<HashMap<String, Conn>>,
    pub(crate) serial: std::sync::atomic::AtomicU64,
    changes: broadcast::Sender<AgentChange>,
    /// Heartbeat times and agents' last-seen times come from it.
    pub(crate) clock: crate::clock::SharedClock,
    /// This server's name when it shares its database: the changes it sees are recorded under it
    /// for the other servers.
    server: Option<String>,
    /// Set when the server stops: every agent connection closes (the agents move to another
    /// server) and no new one is let in.
    closing: tokio::sync::watch::Sender<bool>,
    /// One per agent name, held by a connection from the moment it takes the agent's runs until
    /// every event it received is stored or failed: a reconnection waits for the connection
    /// before it, so a replayed event is judged against the run as stored, never against a step
    /// still being written (or about to fail).
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl AgentHub {
    /// The right to write an agent's events on this server; one connection at a time holds it.
    pub(crate) async fn writing(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = match self.writers.lock() {
            Ok(mut w) => w.entry(name.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        lock.lock_owned().await
    }

    /// Closes every agent connection and lets none in again (a graceful stop).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Whether the server is stopping; `changed()` wakes when it starts to.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn new(
        db: Db,
        policy: HeartbeatPolicy,
        clock: crate::clock::SharedClock,
        server: Option<String>,
    ) -> Arc<AgentHub> {
        let (changes, _) = broadcast::channel(1024);
        let conns = Mutex::new(HashMap::new());
        let closing = tokio::sync::watch::Sender::new(false);
        let writers = Mutex::default();
        Arc::new(AgentHub { db, policy, conns, serial: Default::default(), changes, clock, server, closing, writers })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AgentChange> {
        self.changes.subscribe()
    }

    /// Ids of the agents online here now.
    pub fn online_ids(&self) -> Vec<AgentId> {
        self.conns.lock().map(|c| c.values().filter(|v| v.online).filter_map(|v| v.id).collect()).unwrap_or_default()
    }

    /// Names of the agents online now.
    pub fn online(&self) -> Vec<String> {
        self.conns
            .lock()
            .map(|c| c.iter().filter(|(_, v)| v.online).map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// Online agents a target (an agent name, a hostname or a queue) reaches that take runs of
    /// `instance` (and, for a run that carries a global credential, serve every instance: only
    /// an admin of every instance makes or sets those), with their ids; read from memory, so
    /// dispatch costs no database round trip.
    pub fn candidates(
        &self,
        target: &str,
        instance: Option<InstanceId>,
        global_secrets: bool,
    ) -> Vec<(String, AgentId)> {
        self.conns
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|(name, v)| {
                        v.online && (*name == target || v.hostname == target || v.queues.iter().any(|q| q == target))
                    })
                    .filter(|(_, v)| v.serves.takes(instance))
                    .filter(|(_, v)| !global_secrets || v.serves == Serves::All)
                    .filter_map(|(name, v)| Some((name.clone(), v.id?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id of a connected agent.
    pub fn id_of(&self, name: &str) -> Option<AgentId> {
        self.conns.lock().ok().and_then(|c| c.get(name).and_then(|v| v.id))
    }

    /// Sends a frame to an online agent; false when it is not connected.
    pub fn send(&self, name: &str, msg: ServerMsg) -> bool {
        self.conns.lock().ok().and_then(|c| c.get(name).map(|c| c.tx.send(msg).is_ok())).unwrap_or(false)
    }

    /// Publishes a change here, and records it for the other servers sharing the database.
    pub(crate) fn publish(&self, name: &str, status: AgentStatus) {
        let _ = self.changes.send(AgentChange { name: name.into(), status });
        let Some(server) = self.server.clone() else { return };
        let (name, now) = (name.to_string(), self.clock.now());
        let recorded = self.db.submit(move |c| db::agent_changes::record(c, &name, status, &server, now));
        actix_web::rt::spawn(async move {
            if let Err(e) = recorded.await {
                tracing::error!(error = %e, "recording an agent change for the other servers");
            }
        });
    }

    /// Publishes the agent changes other servers record, in order, to this server's subscribers.
    pub async fn follow_others(self: Arc<Self>) {
        let me = self.server.clone().unwrap_or_default();
        let read = move |c: &mut db::DbConn, from| db::agent_changes::foreign_after(c, from, &me, 1_000);
        let every = Duration::from_millis(200);
        db::tail::follow(
            self.db.clone(),
            every,
            "agent changes",
            db::agent_changes::last_id,
            read,
            |r| r.id,
            |r| {
                let _ = self.changes.send(AgentChange { name: r.name, status: r.status });
            },
        )
        .await;
    }

    /// Marks an agent this server last saw at `seen` OFFLINE and says so, unless another server
    /// has seen it since (it moved there).
    pub(crate) async fn went_offline(&self, name: &str, id: AgentId, seen: DateTime<Utc>) {
        match self.db.run(move |c| db::agents::set_offline(c, id, seen)).await {
            Ok(true) => self.publish(name, AgentStatus::Offline),
            Ok(false) => tracing::info!(agent = %name, "left this server for another"),
            Err(e) => tracing::error!(error = %e, agent = %id, "recording an agent's status"),
        }
    }

    /// Closes the connections of agents enrolled with the token `token_id` (it was revoked):
    /// they are told why, which ends them. Returns how many there were.
    pub fn disconnect_token(&self, token_id: AgentTokenId) -> usize {
        let Ok(conns) = self.conns.lock() else { return 0 };
        let reason = "the enrollment token was revoked".to_string();
        conns
            .values()
            .filter(|c| c.token_id == token_id)
            .filter(|c| c.tx.send(ServerMsg::Refused { reason: reason.clone() }).is_ok())
            .count()
    }

    /// Closes the connections whose tokens were revoked, here or through another server.
    async fn drop_revoked(&self) {
        let ids: Vec<AgentTokenId> = match self.conns.lock() {
            Ok(conns) => conns.values().map(|c| c.token_id).collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        match self.db.run(move |c| db::agent_tokens::revoked_among(c, &ids)).await {
            Ok(revoked) => {
                for id in revoked {
                    self.disconnect_token(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking the agents' tokens"),
        }
    }

    /// Reads again which instances the connected agents serve: after `setAgentInstances` here,
    /// and (with a shared database) now and then for changes made through other servers.
    pub async fn read_serves(&self) {
        let read = self.db.run(|c| Ok::<_, db::DbError>((db::agents::list(c)?, db::instances::list(c)?))).await;
        let (agents, known) = match read {
            Ok(read) => read,
            Err(e) => return tracing::warn!(error = %e, "reading which instances the agents serve"),
        };
        let Ok(mut conns) = self.conns.lock() else { return };
        for a in agents {
            if let Some(c) = conns.get_mut(&a.name) {
                c.serves = Serves::of(&a.instances, &known);
            }
        }
    }

    /// Marks agents that missed their heartbeats OFFLINE, closes those whose tokens were
    /// revoked and reads their instance settings again; runs until the server stops.
    pub async fn watch_heartbeats(self: Arc<Self>) {
        let limit = chrono::Duration::seconds(i64::from(self.policy.interval_seconds * self.policy.missed));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        for round in 0u64.. {
            tick.tick().await;
            if round % 8 == 0 {
                self.drop_revoked().await;
                // Alone on its database, every change of a setting is made through this server.
                if self.server.is_some() {
                    self.read_serves().await;
                }
            }
            let now = self.clock.now();
            let lost: Vec<(String, AgentId, DateTime<Utc>)> = match self.conns.lock() {
                Ok(mut conns) => conns
                    .iter_mut()
                    .filter(|(_, c)| c.online && now - c.last_heartbeat > limit)
                    .filter_map(|(name, c)| {
                        c.online = false;
                        Some((name.clone(), c.id?, c.last_heartbeat))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            for (name, id, seen) in lost {
                tracing::warn!(agent = %name, "missed its heartbeats: OFFLINE");
                self.went_offline(&name, id, seen).await;
            }
        }
    }
}
