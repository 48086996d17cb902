//! The database is the run queue: what must reach an agent is found there, not in one server's
//! memory. A server holds (in memory) the runs on the agents connected to it, taking them over
//! when an agent connects and letting them go when it leaves; the holder of an instance's lease
//! carries on its queued runs (due retries, runs never dispatched, expired accepts, runs whose
//! agent stayed away); a server with a fitting agent claims runs that wait for one. Every write
//! is a compare-and-set on the run (`db::runs::set_if`), so two servers never both advance it,
//! and transitions another server stored are published here too (`follow_others`).

use super::job::legacy_job;
use super::{Active, Driver, GroupRunRef, JobSpec, OutputUpdate, RunUpdate};
use crate::db;
use baton_schema::agent::v1::AttemptRef;
use baton_schema::ids::{AgentId, RunId};
use baton_schema::run::{RunEvent, RunMachine, RunStatus};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A run made this long ago and still not dispatched was left by a server that stopped.
const UNDISPATCHED_AFTER: Duration = Duration::seconds(5);

/// How many queued runs one sweep looks at; the next sweep looks at the page after it.
pub(super) const SWEEP_LIMIT: i64 = 1_000;

/// What a connecting agent says of the attempts it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// A new incarnation under a known name (its state was made anew): none of the old ones.
    Reinstalled,
    /// The attempts whose files it has.
    Only(Vec<AttemptRef>),
    /// An agent from before it says nothing: its attempts are judged as before (accept expiry,
    /// agent lost).
    Unknown,
}

impl Holding {
    /// Why an attempt the database has on the agent, with `status`, is lost; None while it may
    /// still be there. An attempt sent but not accepted may not have reached the agent: it is
    /// sent again (or expires) as before, unless the agent was reinstalled.
    pub fn lost(&self, status: RunStatus, attempt: AttemptRef) -> Option<&'static str> {
        match self {
            Self::Reinstalled if matches!(status, RunStatus::Triggered | RunStatus::Started | RunStatus::Running) => {
                Some("agent reinstalled")
            }
            Self::Only(list)
                if matches!(status, RunStatus::Started | RunStatus::Running) && !list.contains(&attempt) =>
            {
                Some("the agent no longer has it")
            }
            _ => None,
        }
    }
}

impl Driver {
    /// An agent connected here: this server holds its runs from now on (before its replayed
    /// events are read), and sends again what it was sent but may not have had. Attempts the
    /// agent no longer has (`holding`) fail at once as lost, and are retried if their task allows:
    /// none stays running with nothing behind it.
    /// False when its runs could not be read: the connection must not go on (the agent's events
    /// for runs not held here would be taken as not its own), and the agent connects again.
    pub async fn adopt_agent(&self, name: &str, agent_id: AgentId, holding: Holding) -> bool {
        let rows = match self.db.run(move |c| db::runs::on_agent(c, agent_id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(agent = %name, error = %e, "loading the runs of a connected agent");
                return false;
            }
        };
        let names = std::collections::HashMap::from([(agent_id, name.to_string())]);
        let now = self.clock.now();
        let held = rows.iter().filter(|r| self.hold(r, &names, now)).count();
        if held > 0 {
            tracing::info!(agent = %name, runs = held, "took charge of the runs of a connected agent");
        }
        // An attempt sent to it but not accepted may have gone down with the old connection (a
        // frame queued as it closed): it is sent again; the agent accepts an attempt once.
        if let Ok(mut runs) = self.runs.lock() {
            for r in rows.iter().filter(|r| r.status == RunStatus::Triggered) {
                if let Some(a) = runs.get_mut(&r.id).filter(|a| a.machine.agent.as_deref() == Some(name)) {
                    a.sent = false;
                }
            }
        }
        // A lost attempt whose failure cannot be stored turns the agent away for now: it comes
        // back, and is judged again, rather than stay connected with the run let go of.
        let mut stored = true;
        for r in &rows {
            let attempt = AttemptRef { run_id: r.id, attempt: u32::try_from(r.attempt).unwrap_or(0) };
            let Some(cause) = holding.lost(r.status, attempt) else { continue };
            tracing::warn!(agent = %name, run = %r.id, attempt = attempt.attempt, %cause, "attempt lost");
            stored &= self.written(r.id, RunEvent::AttemptLost { cause: cause.into() }).await;
        }
        stored
    }

    /// An event came from an agent connected here for a run this server does not hold: judged
    /// against the run as stored. A run whose current attempt is on that agent is taken over
    /// (this server let go of it: a write of it failed, or its lease moved), so the event is
    /// applied, never acknowledged away; one that moved on is not the agent's any more. Err
    /// when the database did not answer: the event is not acknowledged, and comes again.
    pub async fn take_over(&self, name: &str, agent_id: AgentId, run_id: RunId, attempt: u32) -> Result<bool, ()> {
        let row = match self.db.run(move |c| db::runs::get(c, run_id)).await {
            Ok(row) => row,
            Err(db::DbError::NotFound) => return Ok(false),
            Err(e) => {
                tracing::warn!(agent = %name, run = %run_id, error = %e, "reading a run an agent sent an event for");
                return Err(());
            }
        };
        let on_agent = matches!(row.status, RunStatus::Triggered | RunStatus::Started | RunStatus::Running);
        if !on_agent || row.agent_id != Some(agent_id) || u32::try_from(row.attempt).ok() != Some(attempt) {
            return Ok(false);
        }
        let names = HashMap::from([(agent_id, name.to_string())]);
        if self.hold(&row, &names, self.clock.now()) {
            tracing::info!(agent = %name, run = %run_id, "took over a run its agent sent an event for");
        }
        Ok(true)
    }

    /// What an agent connected here holds, as its heartbeat says: an attempt this server has on
    /// it as started or running that is not among them was lost (its files went), and fails at
    /// once, retried if its task allows. The heartbeat is read after every event the agent sent
    /// before it, and the agent creates an attempt's files before it says it accepted it, so an
    /// attempt the server has as started is in the list unless the agent lost it.
    /// False when a lost attempt's failure could not be stored: the caller closes the agent's
    /// connection, so its runs are read again from the database when it comes back (the run was
    /// let go of, and nothing else would judge it while the agent stays connected).
    pub async fn attempts_held(&self, name: &str, holds: &[AttemptRef]) -> bool {
        let holds: std::collections::HashSet<&AttemptRef> = holds.iter().collect();
        let lost: Vec<(RunId, u32)> = match self.runs.lock() {
            Ok(runs) => runs
                .iter()
                .filter(|(_, a)| a.machine.agent.as_deref() == Some(name))
                .filter(|(_, a)| matches!(a.machine.status, RunStatus::Started | RunStatus::Running))
                .filter(|(id, a)| !holds.contains(&AttemptRef { run_id: **id, attempt: a.machine.attempt }))
                .map(|(id, a)| (*id, a.machine.attempt))
                .collect(),
            Err(_) => return true,
        };
        let mut stored = true;
        for (id, attempt) in lost {
            let cause = "the agent no longer has it";
            tracing::warn!(agent = %name, run = %id, attempt, %cause, "attempt lost");
            stored &= self.written(id, RunEvent::AttemptLost { cause: cause.into() }).await;
        }
        stored
    }

    /// Applies an event and stores it; false only when it applied and its write did not go
    /// through (an event the run's machine refuses is no failure here).
    async fn written(&self, id: RunId, event: RunEvent) -> bool {
        match self.apply_now(id, event, None) {
            Some(done) => done.await == super::Written::Done,
            None => true,
        }
    }

    /// An agent left this server: its runs are no longer this server's to hold. Where it connects
    /// next takes them over; if it stays away, the holder of their instance fails them.
    pub fn release_agent(&self, name: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.retain(|_, a| !(a.machine.status.is_active() && a.machine.agent.as_deref() == Some(name)));
        }
    }

    /// One look at the queue in the database, at `now`: carries on what this server should.
    pub async fn sweep(&self, now: DateTime<Utc>) {
        let lost_since = now - self.agent_lost_after;
        let after = RunId(self.swept_to.load(Ordering::Relaxed));
        let here = self.hub.online_ids();
        let here_too = here.clone();
        let found = self
            .db
            .run(move |c| {
                let silent = db::agents::silent_since(c, lost_since)?;
                let names = db::agents::list(c)?.into_iter().map(|a| (a.id, a.name)).collect();
                let queued = db::runs::queued(c, (&silent, &here_too), after, SWEEP_LIMIT)?;
                Ok((silent, names, queued))
            })
            .await;
        let (silent, names, rows) = match found {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "reading the run queue");
                return;
            }
        };
        // The next sweep reads the page after this one; after a short page, from the start.
        let next = match rows.last() {
            Some(last) if rows.len() as i64 == SWEEP_LIMIT => last.id.0,
            _ => 0,
        };
        self.swept_to.store(next, Ordering::Relaxed);
        self.terminate_requested(now, &names).await;
        for r in rows {
            let held = self.runs.lock().is_ok_and(|runs| runs.contains_key(&r.id));
            // Runs of an instance are its lease holder's to carry on; adhoc runs anyone's (the
            // compare-and-set keeps it to one).
            let mine = r.instance_id.is_none_or(|i| self.leases.holds(i));
            let agent_silent = r.agent_id.is_some_and(|a| silent.contains(&a));
            match (r.status, r.agent_id) {
                // Its agent stopped heartbeating (gone, or connected but stopped) too long ago.
                (RunStatus::Started | RunStatus::Running, Some(_))
                    if mine && agent_silent && (held || self.hold(&r, &names, now)) =>
                {
                    tracing::warn!(run = %r.id, "its agent stayed away: agent lost");
                    self.apply(r.id, RunEvent::AgentLost, None).await;
                }
                // The rest of what this server holds is `tick`'s.
                _ if held => {}
                (RunStatus::Idle, _) if mine => {
                    let stale = r.attempt > 0 || db::utc(r.created_at) <= now - UNDISPATCHED_AFTER;
                    if stale && self.hold(&r, &names, now) && r.attempt == 0 {
                        tracing::info!(run = %r.id, "dispatching a run its server left behind");
                        self.dispatch(r.id).await;
                    }
                }
                // Waiting for an agent: the holder judges its accept deadline; a server with a
                // fitting agent online here (`candidates`) claims it, in `tick`.
                (RunStatus::Triggered, None)
                    if mine || !self.hub.candidates(&r.target, r.instance_id, false).is_empty() =>
                {
                    self.hold(&r, &names, now);
                }
                // Sent to an agent connected here by a server that does not hold it (another
                // server, before the agent moved here; or this one, which let go of it): held
                // here and sent again (the agent accepts an attempt once).
                (RunStatus::Triggered, Some(agent)) if here.contains(&agent) && self.hold(&r, &names, now) => {
                    tracing::info!(run = %r.id, "holding an attempt sent to an agent connected here");
                }
                (RunStatus::Triggered, Some(_)) if mine => {
                    let expiry =
                        super::JobSpec::of_row(&r).unwrap_or_else(|| super::legacy_job(&r)).accept_expiry_seconds;
                    let expired =
                        r.triggered_at.is_some_and(|t| db::utc(t) + Duration::seconds(i64::from(expiry)) <= now);
                    if expired && self.hold(&r, &names, now) {
                        self.apply(r.id, RunEvent::AcceptExpired, None).await;
                    }
                }
                _ => {}
            }
        }
    }

    /// Carries out requests to terminate runs made through other servers: those this server
    /// holds, and those on no agent of the instances it holds leases on.
    async fn terminate_requested(&self, now: DateTime<Utc>, names: &std::collections::HashMap<AgentId, String>) {
        let rows = match self.db.run(db::runs::terminate_requested).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading requests to terminate runs");
                return;
            }
        };
        for r in rows {
            let held = self.runs.lock().is_ok_and(|runs| runs.contains_key(&r.id));
            let mine = r.instance_id.is_none_or(|i| self.leases.holds(i));
            let on_agent = matches!(r.status, RunStatus::Started | RunStatus::Running);
            if !(held || (mine && !on_agent && self.hold(&r, names, now))) {
                continue;
            }
            let by = r.terminate_by.clone().unwrap_or_default();
            if !self.terminate_here(r.id, &by).await {
                continue;
            }
            tracing::info!(run = %r.id, %by, "terminated a run as asked through another server");
            let id = r.id;
            if let Err(e) = self.db.run(move |c| db::runs::clear_terminate(c, id)).await {
                tracing::error!(run = %id, error = %e, "clearing a request to terminate");
            }
        }
    }

    /// Sweeps the queue every second until the server stops.
    pub async fn run_queue(self: Arc<Self>) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            self.sweep(self.clock.now()).await;
        }
    }

    /// Publishes the transitions other servers store, in each run's order, to this server's
    /// subscribers and engine (servers sharing a PostgreSQL database).
    pub async fn follow_others(self: Arc<Self>) {
        let me = self.leases.owner().to_string();
        let read = move |c: &mut db::DbConn, from| db::run_transitions::foreign_after(c, from, &me, 5_000);
        let every = std::time::Duration::from_millis(100);
        let feed = self.feed.clone();
        let last = move |c: &mut db::DbConn| {
            let id = db::run_transitions::last_id(c)?;
            feed.following_since(id);
            Ok(id)
        };
        db::tail::follow(
            self.db.clone(),
            every,
            "transitions",
            last,
            read,
            |f| f.row.id,
            |f| {
                let transition = f.row.transition();
                self.feed.publish(RunUpdate {
                    run_id: f.row.run_id,
                    task_name: f.task_name,
                    group_run: GroupRunRef::of(f.group_id, f.group_run_id),
                    seq: f.row.seq,
                    transition,
                });
            },
        )
        .await;
    }

    /// Publishes the output other servers store, in the order it was stored, to this server's
    /// `runOutput` subscribers.
    pub async fn follow_others_output(self: Arc<Self>) {
        let me = self.leases.owner().to_string();
        let read = move |c: &mut db::DbConn, from| db::run_output::foreign_after(c, from, &me, 1_000);
        let every = std::time::Duration::from_millis(100);
        db::tail::follow(
            self.db.clone(),
            every,
            "output",
            db::run_output::last_id,
            read,
            |c| c.id,
            |c| {
                let attempt = u32::try_from(c.attempt).unwrap_or(0);
                let _ = self.output.send(OutputUpdate {
                    run_id: c.run_id,
                    attempt,
                    stream: c.stream,
                    offset: c.byte_offset,
                    data: c.data,
                });
            },
        )
        .await;
    }
}

impl Driver {
    /// Holds a stored run with the job it was made with, from where it is: its machine (status,
    /// attempt, agent, pid, reason, retry time) and its deadlines. False when already held.
    fn hold(&self, r: &db::runs::RunRow, agent_names: &HashMap<AgentId, String>, now: DateTime<Utc>) -> bool {
        let status = r.status;
        let spec = JobSpec::of_row(r).unwrap_or_else(|| {
            tracing::warn!(run = %r.id, "a run stored without its job: carried on with default limits");
            legacy_job(r)
        });
        let mut machine = RunMachine::new(spec.retry);
        machine.status = status;
        machine.attempt = u32::try_from(r.attempt).unwrap_or(0);
        machine.agent = r.agent_id.and_then(|a| agent_names.get(&a).cloned());
        machine.pid = r.pid.and_then(|p| u32::try_from(p).ok());
        machine.reason = r.reason.as_deref().and_then(|j| serde_json::from_str(j).ok());
        if let Some(baton_schema::run::Reason::RetryScheduled { at, .. }) = &machine.reason {
            machine.retry_at = Some(*at);
        }
        let mut active = Active::new(machine, spec);
        if status == RunStatus::Triggered {
            let since = r.triggered_at.map_or(now, db::utc);
            active.accept_by = Some(since + Duration::seconds(i64::from(active.spec.accept_expiry_seconds)));
        }
        let Ok(mut runs) = self.runs.lock() else { return false };
        if runs.contains_key(&r.id) {
            return false;
        }
        runs.insert(r.id, active);
        true
    }

    /// At start: carries every unfinished run on from where it was. Runs on agents are followed
    /// again (their agents' replayed events land, their deadlines hold); runs sent to an agent
    /// that may never have had them are sent again to that same agent once it is online; runs
    /// waiting for a retry are retried at their time; runs made but never dispatched are
    /// dispatched now. With several servers, `sweep` and `adopt_agent` share this out instead.
    pub async fn recover(&self) {
        // Both read at once, until they are: a run held without its agent's name would take none
        // of that agent's events as its own.
        let (rows, names) = loop {
            let read = self.db.run(|c| Ok((db::runs::unfinished(c)?, db::agents::list(c)?))).await;
            match read {
                Ok((rows, agents)) => {
                    break (rows, agents.into_iter().map(|a| (a.id, a.name)).collect::<HashMap<_, _>>())
                }
                Err(e) => {
                    tracing::error!(error = %e, "loading unfinished runs; trying again in a moment");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        let now = self.clock.now();
        let mut undispatched = Vec::new();
        let n = rows.len();
        for r in &rows {
            if self.hold(r, &names, now) && r.status == RunStatus::Idle && r.attempt == 0 {
                undispatched.push(r.id);
            }
        }
        for id in undispatched {
            self.dispatch(id).await;
        }
        if n > 0 {
            tracing::info!(runs = n, "carried on unfinished runs");
        }
    }
}
