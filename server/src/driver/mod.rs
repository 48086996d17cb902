//! The run driver: carries runs through their lifecycle on agents. It feeds the pure
//! `RunMachine` of `baton-schema` with dispatches, agent events and the passing of time, stores
//! every transition before publishing it, and carries out what follows (send to an agent, retry,
//! fail with a reason).

use crate::agents::AgentHub;
use crate::clock::SharedClock;
use crate::db::{self, Db};
use baton_schema::agent::v1::{AgentEvent, Dispatch, ServerMsg, Stream as OutStream};
use baton_schema::ids::{AgentId, InstanceId, RunId};
use baton_schema::run::{Outcome, RetryPolicy, RunEvent, RunMachine, RunStatus, Transition};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

use credentials::Resolved;
use feed::RunFeed;
use job::legacy_job;
pub use job::{GroupRunRef, JobSpec, StoredJob};
pub use queue::Holding;

/// Applies an event to a stored run that is not on an agent, through the run machine, and
/// stores the result with its transitions (inside the caller's transaction). An illegal event is
/// `Ok(Err(why))` and changes nothing. Publishing is the caller's.
pub fn settle_stored(
    c: &mut db::DbConn,
    run_id: RunId,
    event: &RunEvent,
    now: DateTime<Utc>,
    server: &str,
) -> db::DbResult<Result<Settled, String>> {
    let row = db::runs::get(c, run_id)?;
    let mut m = RunMachine::new(RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 });
    m.status = row.status;
    m.attempt = u32::try_from(row.attempt).unwrap_or(0);
    let trs = match m.apply(event, now) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let change = db::runs::RunChange {
        status: m.status,
        attempt: row.attempt,
        reason: Some(m.reason.as_ref().map(db::to_json)),
        agent_id: None,
        pid: None,
        exit_code: None,
        triggered_at: None,
        started_at: None,
        ended_at: Some(m.status.is_final().then(|| db::ts(now))),
        updated_at: db::ts(now),
    };
    let expected = db::runs::Expected { status: row.status, attempt: row.attempt, agent_id: row.agent_id };
    let step =
        db::runs::Step { run_id, expected: &expected, change: &change, transitions: &trs, server, fence: None, now };
    let first_seq = db::runs::advance(c, &step)?;
    Ok(Ok(Settled { status: m.status, row, transitions: trs, first_seq }))
}

/// A stored run after `settle_stored`.
pub struct Settled {
    pub status: RunStatus,
    pub row: db::runs::RunRow,
    pub transitions: Vec<Transition>,
    /// The `seq` of the first of them.
    pub first_seq: i32,
}

/// Ends once an agent's event is dealt with: true when it may be acknowledged (stored and
/// published, or ignored), false when its write failed or was refused: then it must not be, so
/// that the agent sends it again.
pub type Stored = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// How the write of a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Stored (then published), or nothing to store.
    Done,
    /// Refused for good: another server moved the run on, or this one lost its lease.
    Refused,
    /// Not stored: the database failed; the change may be made again.
    Failed,
}

/// Ends once a change is written or not.
type StoredOk = std::pin::Pin<Box<dyn std::future::Future<Output = Written> + Send>>;

/// Publishes stored transitions, the first of which has `seq` `first_seq` in its run.
fn publish(
    feed: &Arc<RunFeed>,
    run_id: RunId,
    task_name: &str,
    group_run: Option<GroupRunRef>,
    first_seq: i32,
    transitions: Vec<Transition>,
) {
    for (seq, t) in (first_seq..).zip(transitions) {
        feed.publish(RunUpdate { run_id, task_name: task_name.to_string(), group_run, seq, transition: t });
    }
}

/// A run transition, as subscribers see it.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    pub run_id: RunId,
    pub task_name: String,
    pub group_run: Option<GroupRunRef>,
    /// Its place among the run's transitions (from 1).
    pub seq: i32,
    pub transition: Transition,
}

/// A chunk of output, as subscribers see it.
#[derive(Debug, Clone)]
pub struct OutputUpdate {
    pub run_id: RunId,
    pub attempt: u32,
    pub stream: OutStream,
    pub offset: i64,
    pub data: String,
}

struct Active {
    machine: RunMachine,
    spec: JobSpec,
    /// When the current dispatch must have been accepted.
    accept_by: Option<DateTime<Utc>>,
    /// Whether the current attempt reached its agent's connection. A run taken over after a
    /// restart, or whose agent was away when it was sent, is sent (again) to the same agent once
    /// it is online: the agent accepts an attempt once, so a second copy changes nothing.
    sent: bool,
    /// When it was last sent: a frame can go down with a connection that closes as it is sent,
    /// so an attempt not accepted `RESEND_AFTER` later is sent again.
    sent_at: Option<DateTime<Utc>>,
    /// The write of its latest step: until it is done, memory is ahead of the database, and an
    /// agent's event judged against memory is acknowledged only once it is (`settled`).
    pending: Option<Pending>,
}

/// A write any number of waiters may await.
type Pending = futures_util::future::Shared<StoredOk>;

/// How long an attempt sent to an agent connected here may stay unaccepted before it is sent
/// again (the agent accepts it once; a second copy changes nothing).
const RESEND_AFTER: Duration = Duration::seconds(5);

impl Active {
    fn new(machine: RunMachine, spec: JobSpec) -> Self {
        Self { machine, spec, accept_by: None, sent: false, sent_at: None, pending: None }
    }

    /// Whether the attempt should go (again) to its agent, connected here, at `now`.
    fn unsent(&self, now: DateTime<Utc>) -> bool {
        !self.sent || self.sent_at.is_some_and(|at| now - at >= RESEND_AFTER)
    }
}

pub struct Driver {
    db: Db,
    hub: Arc<AgentHub>,
    runs: Arc<Mutex<HashMap<RunId, Active>>>,
    feed: Arc<RunFeed>,
    output: broadcast::Sender<OutputUpdate>,
    /// Bytes kept per stream and attempt; beyond it the tail is kept.
    pub output_cap: i64,
    /// How long a run's agent may stay away before the run fails with `agent lost`.
    pub agent_lost_after: Duration,
    pub kill_grace_seconds: u32,
    /// The credential store, for `${C:key}` in profiles.
    vault: Arc<crate::vault::Vault>,
    clock: SharedClock,
    /// This server's name and the instances it schedules (their queued runs are its to carry on).
    leases: Arc<crate::lease::Leases>,
    /// Runs per agent as last counted, and when.
    load: Mutex<(Option<std::time::Instant>, HashMap<String, usize>)>,
    /// Where the next sweep of the queue reads from: each reads one page after the last, and
    /// starts over at the end, so no run waits behind a page of runs this server cannot act on.
    swept_to: std::sync::atomic::AtomicI64,
}

/// A run's agent, resolved to its id inside a write (by name when it is not connected here).
struct AgentRef {
    name: Option<String>,
    id: Option<AgentId>,
}

impl AgentRef {
    fn id(&self, c: &mut db::DbConn) -> db::DbResult<Option<AgentId>> {
        match (&self.name, self.id) {
            (_, Some(id)) => Ok(Some(id)),
            (Some(n), None) => Ok(db::agents::by_name(c, n)?.map(|a| a.id)),
            (None, None) => Ok(None),
        }
    }
}

/// How long a count of runs per agent serves for picking agents.
const LOAD_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

impl Driver {
    pub fn new(
        db: Db,
        hub: Arc<AgentHub>,
        agent_lost_after: Duration,
        output_cap: i64,
        clock: SharedClock,
        leases: Arc<crate::lease::Leases>,
        vault: Arc<crate::vault::Vault>,
    ) -> Arc<Driver> {
        let (output, _) = broadcast::channel(16_384);
        Arc::new(Driver {
            feed: RunFeed::new(db.clone()),
            db,
            hub,
            runs: Arc::new(Mutex::new(HashMap::new())),
            output,
            output_cap,
            agent_lost_after,
            kill_grace_seconds: 5,
            vault,
            clock,
            leases,
            load: Mutex::new((None, HashMap::new())),
            swept_to: Default::default(),
        })
    }

    /// The clock this driver reads (the engine shares it).
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// Whether other servers may share this server's database.
    pub fn shares_database(&self) -> bool {
        self.leases.shared()
    }

    /// This server's name among the servers sharing the database.
    pub fn server(&self) -> &str {
        self.leases.owner()
    }

    /// The time, as this driver's clock tells it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunUpdate> {
        self.feed.subscribe()
    }

    pub fn subscribe_output(&self) -> broadcast::Receiver<OutputUpdate> {
        self.output.subscribe()
    }

    /// Runs currently on agents, per agent (for choosing the least busy).
    fn load_by_agent(&self) -> HashMap<String, usize> {
        let mut load = HashMap::new();
        if let Ok(runs) = self.runs.lock() {
            for a in runs.values().filter(|a| a.machine.status.is_active()) {
                if let Some(agent) = &a.machine.agent {
                    *load.entry(agent.clone()).or_insert(0) += 1;
                }
            }
        }
        load
    }

    /// The least busy online agent whose name, hostname or queue is `target` and that takes runs
    /// of `instance`. The load is
    /// counted afresh at most every `LOAD_FRESH` (counting walks every active run) and each pick
    /// adds to it meanwhile, so a burst of thousands of dispatches is spread without being
    /// quadratic.
    fn pick_agent(&self, spec: &JobSpec) -> Option<String> {
        let (target, instance) = (spec.target.as_str(), spec.instance_id);
        // A global credential goes only to agents that serve every instance: an agent enrolled
        // by an instance's admin must never receive one, even in that instance's task.
        let global_secrets = instance.is_some() && spec.credential_keys().iter().any(|k| self.vault.is_global(k));
        let Ok(mut cached) = self.load.lock() else { return None };
        let now = std::time::Instant::now();
        if cached.0.is_none_or(|at| now.duration_since(at) >= LOAD_FRESH) {
            *cached = (Some(now), self.load_by_agent());
        }
        let load = &mut cached.1;
        let name = self
            .hub
            .candidates(target, instance, global_secrets)
            .into_iter()
            .min_by_key(|(name, _)| (load.get(name).copied().unwrap_or(0), name.clone()))
            .map(|(name, _)| name)?;
        *load.entry(name.clone()).or_insert(0) += 1;
        Some(name)
    }

    /// A run's agent as a write needs it: its id when it is connected here, else its name.
    fn agent_ref(&self, agent: &Option<String>) -> AgentRef {
        let name = agent.clone().filter(|n| !n.is_empty());
        let id = name.as_deref().and_then(|n| self.hub.id_of(n));
        AgentRef { name, id }
    }

    /// Queues the storing of transitions (with the run's new state) in one savepoint of the
    /// next batch; the future tells the `seq` of the first when they were stored.
    fn store(
        &self,
        run_id: RunId,
        before: &RunMachine,
        machine: &RunMachine,
        transitions: &[Transition],
        exit_code: Option<i32>,
        fence: Option<InstanceId>,
    ) -> impl std::future::Future<Output = Result<i32, Written>> + Send + 'static {
        let now = self.clock.now();
        let (server, leases) = (self.leases.owner().to_string(), self.leases.clone());
        let (was_status, was_attempt) = (before.status, i32::try_from(before.attempt).unwrap_or(i32::MAX));
        let (was_agent, agent) = (self.agent_ref(&before.agent), self.agent_ref(&machine.agent));
        let status = machine.status;
        let reason = machine.reason.as_ref().map(db::to_json);
        let attempt = i32::try_from(machine.attempt).unwrap_or(i32::MAX);
        let pid = machine.pid.map(i64::from);
        let trs = transitions.to_vec();
        let stored = self.db.submit_atomic_for(run_id, move |c| {
            let fence = fence.map(|instance| leases.fence_for(instance)).transpose()?;
            let agent_id = agent.id(c)?;
            let last = trs.last().map(|t| t.to);
            let change = db::runs::RunChange {
                status,
                attempt,
                reason: Some(reason),
                agent_id: Some(agent_id),
                pid: Some(pid),
                exit_code: exit_code.map(Some),
                triggered_at: trs.iter().any(|t| t.to == RunStatus::Triggered).then(|| Some(db::ts(now))),
                started_at: trs.iter().any(|t| t.to == RunStatus::Running).then(|| Some(db::ts(now))),
                ended_at: last.filter(|s| s.is_final()).map(|_| Some(db::ts(now))),
                updated_at: db::ts(now),
            };
            let expected = db::runs::Expected { status: was_status, attempt: was_attempt, agent_id: was_agent.id(c)? };
            db::runs::advance(
                c,
                &db::runs::Step {
                    run_id,
                    expected: &expected,
                    change: &change,
                    transitions: &trs,
                    server: &server,
                    fence: fence.as_ref(),
                    now,
                },
            )
        });
        async move {
            match stored.await {
                Ok(first_seq) => Ok(first_seq),
                Err(db::DbError::Conflict(why)) => {
                    tracing::info!(run = %run_id, %why, "another server carries this run on");
                    Err(Written::Refused)
                }
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "storing run transitions");
                    Err(Written::Failed)
                }
            }
        }
    }

    /// Applies an operator's or the engine's event to a stored run that is not on an agent
    /// (skip, freeze, unfreeze, modify status): stored, then published. Returns the new status.
    pub async fn settle(&self, run_id: RunId, event: RunEvent) -> Result<RunStatus, String> {
        if self.runs.lock().map_err(|_| "internal error".to_string())?.contains_key(&run_id) {
            return Err(format!("run {run_id} is on an agent; terminate it first"));
        }
        let (now, server) = (self.clock.now(), self.leases.owner().to_string());
        let res = self
            .db
            .run(move |c| {
                db::transaction(c, |c| {
                    Ok::<_, db::DbError>(settle_stored(c, run_id, &event, now, &server)?.map(|s| {
                        let group_run = GroupRunRef::of(s.row.group_id, s.row.group_run_id);
                        (s.status, s.row.task_name, group_run, s.first_seq, s.transitions)
                    }))
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        let (status, task, group_run, first_seq, trs) = res?;
        publish(&self.feed, run_id, &task, group_run, first_seq, trs);
        Ok(status)
    }

    /// Applies an event to an active run; illegal events are logged and ignored. Returns
    /// whether it applied and was stored (then published).
    async fn apply(&self, run_id: RunId, event: RunEvent, exit_code: Option<i32>) -> bool {
        match self.apply_now(run_id, event, exit_code) {
            Some(done) => done.await == Written::Done,
            None => false,
        }
    }

    /// Applies an event to an active run at once (events are applied in the order they come)
    /// and queues its transitions for storing; the future ends once they are stored and
    /// published. None when the run is not active or the event is illegal (logged, ignored).
    fn apply_now(&self, run_id: RunId, event: RunEvent, exit_code: Option<i32>) -> Option<StoredOk> {
        let now = self.clock.now();
        let (before, machine, transitions, task, group_run, fence) = {
            let mut runs = self.runs.lock().ok()?;
            let active = runs.get_mut(&run_id)?;
            // What this server decides as its instance's lease holder (a dispatch, a deadline) is
            // fenced by the lease: a server that was deposed while stopped decides nothing.
            let fence = match event {
                RunEvent::Dispatched { .. } | RunEvent::AcceptExpired | RunEvent::AgentLost => {
                    active.spec.instance_id.filter(|i| self.leases.holds(*i))
                }
                _ => None,
            };
            let before = active.machine.clone();
            match active.machine.apply(&event, now) {
                Ok(t) => {
                    if active.machine.status != RunStatus::Triggered {
                        active.accept_by = None;
                    }
                    // `dispatch` sends the attempt once its Triggered step is stored: the clock
                    // must not send it before (a crash in between would leave an attempt on an
                    // agent that the database does not know was sent).
                    if matches!(event, RunEvent::Dispatched { .. }) {
                        active.sent = true;
                    }
                    (before, active.machine.clone(), t, active.spec.task.clone(), active.spec.group_run, fence)
                }
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "ignored");
                    return None;
                }
            }
        };
        let stored =
            (!transitions.is_empty()).then(|| self.store(run_id, &before, &machine, &transitions, exit_code, fence));
        let (feed, runs) = (self.feed.clone(), self.runs.clone());
        let done: StoredOk = Box::pin(async move {
            let written = match stored {
                Some(stored) => match stored.await {
                    Ok(first_seq) => {
                        publish(&feed, run_id, &task, group_run, first_seq, transitions);
                        Written::Done
                    }
                    Err(w) => w,
                },
                None => Written::Done,
            };
            // A run that ended, or that another server changed meanwhile, is no longer this
            // server's to hold; nor one whose step was not stored (what is in memory is ahead of
            // the database): it is read again from there when its agent comes back.
            if machine.status.is_final() || written != Written::Done {
                if let Ok(mut runs) = runs.lock() {
                    runs.remove(&run_id);
                }
            }
            written
        });
        let shared = futures_util::FutureExt::shared(done);
        if let Ok(mut runs) = self.runs.lock() {
            if let Some(active) = runs.get_mut(&run_id) {
                active.pending = Some(shared.clone());
            }
        }
        Some(Box::pin(shared))
    }

    /// Ends once the latest write of a run held here is done: true when it was stored (or there
    /// is none), so that an agent's event judged against memory may be acknowledged; false when
    /// it failed (memory was ahead of the database: the event must come again).
    pub fn settled(&self, run_id: RunId) -> Stored {
        let pending = self.runs.lock().ok().and_then(|r| r.get(&run_id).and_then(|a| a.pending.clone()));
        Self::after(pending)
    }

    fn after(pending: Option<Pending>) -> Stored {
        Box::pin(async move {
            match pending {
                Some(p) => p.await == Written::Done,
                None => true,
            }
        })
    }

    /// Takes charge of a stored run (status Idle) and dispatches its first attempt. The dispatch
    /// runs on its own: a caller dropped meanwhile (an actor retired while it handled a slot)
    /// cannot leave it stored as sent but never sent. False when the dispatch was not stored (the
    /// run is still Idle): a group run reads its state again and starts it again.
    pub async fn start(self: &Arc<Self>, run_id: RunId, spec: JobSpec) -> bool {
        let machine = RunMachine::new(spec.retry);
        if let Ok(mut runs) = self.runs.lock() {
            if runs.contains_key(&run_id) {
                return true;
            }
            runs.insert(run_id, Active::new(machine, spec));
        }
        let me = self.clone();
        tokio::spawn(async move { me.dispatch(run_id).await }).await.unwrap_or(false)
    }

    /// Sends the next attempt to an agent (or waits for one until the accept deadline); whether
    /// its dispatch was stored.
    async fn dispatch(&self, run_id: RunId) -> bool {
        let Some(spec) = self.runs.lock().ok().and_then(|r| r.get(&run_id).map(|a| a.spec.clone())) else {
            return false;
        };
        let agent = self.pick_agent(&spec);
        if !self.apply(run_id, RunEvent::Dispatched { agent: agent.clone().unwrap_or_default() }, None).await {
            return false;
        }
        let attempt = {
            let Ok(mut runs) = self.runs.lock() else { return true };
            let Some(a) = runs.get_mut(&run_id) else { return true };
            a.accept_by = Some(self.clock.now() + Duration::seconds(i64::from(spec.accept_expiry_seconds)));
            a.machine.attempt
        };
        if let Some(agent) = agent {
            self.send_attempt(run_id, attempt, &agent, &spec).await;
        }
        true
    }

    /// Sends an attempt to its agent and notes whether it reached the connection; a profile that
    /// names a credential that is not set fails the attempt.
    async fn send_attempt(&self, run_id: RunId, attempt: u32, agent: &str, spec: &JobSpec) {
        self.read_missing_credentials(spec).await;
        match self.send_dispatch(run_id, attempt, agent, spec) {
            Ok(sent) => {
                if let Ok(mut runs) = self.runs.lock() {
                    if let Some(a) = runs.get_mut(&run_id).filter(|a| a.machine.attempt == attempt) {
                        a.sent = sent;
                        a.sent_at = sent.then(|| self.clock.now());
                    }
                }
            }
            Err(message) => {
                self.apply(run_id, RunEvent::AgentRefused { message }, None).await;
            }
        }
    }

    /// Sends an attempt to its agent: whether it reached the agent's connection. A credential its
    /// profile names that is not set, or belongs to another instance, is an error (the run fails
    /// with it rather than run without: `resolve_credentials`).
    fn send_dispatch(&self, run_id: RunId, attempt: u32, agent: &str, spec: &JobSpec) -> Result<bool, String> {
        let Resolved { mut env, secrets, credentials } = self.resolve_credentials(spec)?;
        env.insert("BATON_RUN_ID".into(), run_id.to_string());
        env.insert("BATON_TASK".into(), spec.task.clone());
        env.insert("BATON_RUN_DATE".into(), spec.run_date.format("%Y%m%d").to_string());
        env.insert("BATON_ATTEMPT".into(), attempt.to_string());
        let msg = ServerMsg::Dispatch(Dispatch {
            run_id,
            attempt,
            task: spec.task.clone(),
            command: spec.command.clone(),
            run_as_user: spec.run_as_user.clone(),
            env,
            stdout_path: spec.stdout_path.clone(),
            stderr_path: spec.stderr_path.clone(),
            max_run_time_seconds: spec.max_run_time_seconds,
            kill_grace_seconds: self.kill_grace_seconds,
            secrets,
            credentials,
        });
        let sent = self.hub.send(agent, msg);
        if !sent {
            tracing::warn!(run = %run_id, %agent, "the agent is away; the dispatch is sent when it is back");
        }
        Ok(sent)
    }

    /// Stops a run this server holds: its agent, connected here, kills the process group; a run
    /// on no agent ends at once. False when it is not this server's to stop.
    pub(crate) async fn terminate_here(&self, run_id: RunId, user: &str) -> bool {
        let held =
            self.runs.lock().ok().and_then(|runs| {
                runs.get(&run_id).map(|a| (a.machine.status, a.machine.agent.clone(), a.machine.attempt))
            });
        match held {
            Some((RunStatus::Started | RunStatus::Running, Some(agent), attempt)) if !agent.is_empty() => {
                let stop =
                    ServerMsg::Terminate { run_id, attempt, grace_seconds: self.kill_grace_seconds, by: user.into() };
                self.hub.send(&agent, stop)
            }
            Some((RunStatus::Started | RunStatus::Running, _, _)) | None => false,
            Some(_) => self.apply(run_id, RunEvent::Terminate { user: user.into() }, None).await,
        }
    }

    /// An event from an agent, applied at once and queued for storing behind the events before
    /// it; the future ends once it is stored (and published). None when the run is not this
    /// agent's (the caller answers with an error).
    pub fn on_agent_event(&self, agent: &str, run_id: RunId, attempt: u32, event: AgentEvent) -> Option<Stored> {
        // The write of the step before this event, if it is still going: an event the machine
        // refuses against memory is acknowledged only once memory is what is stored.
        let pending = {
            let runs = self.runs.lock().ok()?;
            let a = runs.get(&run_id)?;
            if a.machine.agent.as_deref() != Some(agent) || a.machine.attempt != attempt {
                return None;
            }
            a.pending.clone()
        };
        let applied = match event {
            AgentEvent::Accepted => self.apply_now(run_id, RunEvent::Accepted, None),
            AgentEvent::Refused { reason } => self.apply_now(run_id, RunEvent::AgentRefused { message: reason }, None),
            AgentEvent::Spawned { pid } => self.apply_now(run_id, RunEvent::Spawned { pid }, None),
            AgentEvent::Ended { outcome } => {
                let code = match &outcome {
                    Outcome::Exited { code } => Some(*code),
                    _ => None,
                };
                self.apply_now(run_id, RunEvent::Ended { outcome }, code)
            }
            AgentEvent::Output { stream, offset, data } => {
                let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                return Some(self.store_output(run_id, attempt, stream, offset, data));
            }
        };
        // An event the run's machine refuses is ignored (logged); it is still acknowledged. One
        // whose write failed is not, nor one whose write was refused because the run changed
        // meanwhile (this server's view of it was stale: another server stored the agent's
        // earlier events late): the agent sends it again, and it is judged against the run as
        // stored.
        Some(match applied {
            Some(stored) => Box::pin(async move { stored.await == Written::Done }),
            None => Self::after(pending),
        })
    }

    /// Stores a chunk, keeping at most `output_cap` bytes per stream: past the cap, the oldest
    /// chunks are dropped and counted as truncated.
    fn store_output(&self, run_id: RunId, attempt: u32, stream: OutStream, offset: i64, data: String) -> Stored {
        let cap = self.output_cap;
        let (now, server) = (self.clock.now(), self.leases.owner().to_string());
        let len = data.len() as i64;
        let att = i32::try_from(attempt).unwrap_or(i32::MAX);
        let chunk = data.clone();
        let stored = self.db.submit_for(run_id, move |c| {
            let piece = db::run_output::Chunk { run_id, attempt: att, stream, offset, data: &chunk };
            let new = db::run_output::append(c, piece, now, &server)?;
            if !new {
                return Ok(false);
            }
            let dropped = db::run_output::trim_to(c, run_id, att, stream, offset + len - cap)?;
            let (o, e) = match stream {
                OutStream::Stdout => (len, 0),
                OutStream::Stderr => (0, len),
            };
            db::runs::add_output_bytes(c, run_id, o, e, dropped)?;
            Ok(true)
        });
        let output = self.output.clone();
        Box::pin(async move {
            match stored.await {
                Ok(true) => {
                    let _ = output.send(OutputUpdate { run_id, attempt, stream, offset, data });
                    true
                }
                Ok(false) => true,
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "storing output");
                    false
                }
            }
        })
    }

    /// Stops a run: here when this server holds it, else through the server that does (a request
    /// in the database, carried out at its next sweep).
    pub async fn terminate(&self, run_id: RunId, user: &str) -> Result<(), String> {
        if self.terminate_here(run_id, user).await {
            return Ok(());
        }
        // Held by another server (its agent is connected there, or it moved on meanwhile): the
        // server holding it carries the request out.
        let (by, now) = (user.to_string(), self.clock.now());
        match self.db.run(move |c| db::runs::request_terminate(c, run_id, &by, now)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("run {run_id} is not active")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The passing of time for the runs this server holds: accept deadlines, retries that are
    /// due, and attempts that wait for their agent (agents that stay away are judged from the
    /// database, in `sweep`).
    pub async fn tick(&self, now: DateTime<Utc>) {
        let online = self.hub.online();
        let mut expired = Vec::new();
        let mut retry = Vec::new();
        let mut waiting = Vec::new();
        let mut unsent = Vec::new();
        if let Ok(runs) = self.runs.lock() {
            for (id, a) in runs.iter() {
                let agent = a.machine.agent.clone().filter(|n| !n.is_empty());
                let here = agent.as_ref().is_some_and(|n| online.contains(n));
                match (a.machine.status, agent) {
                    (RunStatus::Triggered, _) if a.accept_by.is_some_and(|t| now >= t) => expired.push(*id),
                    (RunStatus::Triggered, None) => waiting.push(*id),
                    (RunStatus::Triggered, Some(agent)) if here && a.unsent(now) => {
                        unsent.push((*id, a.machine.attempt, agent, a.spec.clone()));
                    }
                    (RunStatus::Idle, _) if a.machine.retry_at.is_some_and(|t| now >= t) => retry.push(*id),
                    _ => {}
                }
            }
        }
        for id in expired {
            self.apply(id, RunEvent::AcceptExpired, None).await;
        }
        for id in retry {
            self.dispatch(id).await;
        }
        for (id, attempt, agent, spec) in unsent {
            tracing::info!(run = %id, attempt, %agent, "sending an attempt its agent has not had");
            self.send_attempt(id, attempt, &agent, &spec).await;
        }
        // Dispatched while no agent was there: send as soon as one is.
        for id in waiting {
            self.send_waiting(id, now).await;
        }
    }

    /// Gives a run that waits for an agent to the least busy fitting one here, if any is online.
    /// The run is claimed in the database first: one server wins, and after a restart it goes to
    /// that agent again, never to a second one.
    async fn send_waiting(&self, id: RunId, now: DateTime<Utc>) {
        let Some((spec, attempt)) =
            self.runs.lock().ok().and_then(|r| r.get(&id).map(|a| (a.spec.clone(), a.machine.attempt)))
        else {
            return;
        };
        let Some(agent) = self.pick_agent(&spec) else { return };
        let Some(agent_id) = self.hub.id_of(&agent) else { return };
        let stored_attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        match self.db.run(move |c| db::runs::claim(c, id, stored_attempt, agent_id, now)).await {
            Ok(true) => {}
            Ok(false) => {
                // Another server claimed it (or it moved on): it is that server's now.
                self.forget(id);
                return;
            }
            Err(e) => {
                tracing::error!(run = %id, error = %e, "claiming a waiting run");
                return;
            }
        }
        {
            let Ok(mut runs) = self.runs.lock() else { return };
            let Some(a) = runs.get_mut(&id).filter(|a| a.machine.status == RunStatus::Triggered) else { return };
            a.machine.agent = Some(agent.clone());
        }
        self.send_attempt(id, attempt, &agent, &spec).await;
    }

    /// Lets go of the runs of instances whose leases this server lost, but for those on its
    /// connected agents: their new holder carries them on.
    pub fn let_go(&self, instances: &[InstanceId]) {
        let online = self.hub.online();
        if let Ok(mut runs) = self.runs.lock() {
            runs.retain(|_, a| {
                let lost = a.spec.instance_id.is_some_and(|i| instances.contains(&i));
                let here = a.machine.status.is_active() && a.machine.agent.as_ref().is_some_and(|n| online.contains(n));
                !lost || here
            });
        }
    }

    /// Stops holding a run (another server carries it on).
    fn forget(&self, id: RunId) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(&id);
        }
    }

    /// Runs `tick` until the server stops.
    pub async fn run_clock(self: Arc<Self>) {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            every.tick().await;
            self.tick(self.clock.now()).await;
        }
    }
}

mod credentials;
mod feed;
mod job;
mod queue;
#[cfg(test)]
mod tests;
