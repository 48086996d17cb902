//! Alerts: turns run transitions, group run ends and passed deadlines into deliveries queued in
//! storage, and a worker thread that sends them, retrying with backoff and logging each attempt.
//! Nothing here runs on the engine's path: the engine only publishes, and queueing reads the bus.
//! Here: queueing from the buses; `policy` (retries and backoff), `facts` (what a message says),
//! `deadlines` (deadline alerts), `worker` (the delivery thread), `send` (one channel's request).

mod deadlines;
mod facts;
mod outbound;
mod policy;
pub mod send;
mod worker;

use baton_schema::ids::{AlertDeliveryId, GroupId, GroupRunId};
pub use deadlines::check_deadlines;
use facts::{queue_rule, run_facts, Facts};
pub use policy::AlertPolicy;
use worker::Bell;

use crate::db::{self, alert_deliveries::NewDelivery, alert_rules::Owner, Db, DbConn, DbResult};
use crate::driver::RunUpdate;
use crate::vault::Vault;
use baton_schema::alert::answers;
use baton_schema::definition::AlertRule;
use baton_schema::run::{Reason, RunStatus};
use chrono::NaiveDate;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A group run that ended, as the engine announces it.
#[derive(Debug, Clone)]
pub struct GroupRunEnd {
    pub group_id: GroupId,
    pub group_run_id: GroupRunId,
    pub run_date: NaiveDate,
    /// SUCCESS or FAILED.
    pub status: RunStatus,
}

pub struct Alerts {
    db: Db,
    vault: Arc<Vault>,
    policy: AlertPolicy,
    bell: Arc<Bell>,
    /// The id of the delivery last attempted (a test alert waits for its own).
    attempted: tokio::sync::watch::Sender<Option<AlertDeliveryId>>,
    /// Names of the tasks that have alert rules (None: to be read again). A run of any other
    /// task ends without a query: with SQLite's one connection, a query per run would compete
    /// with the writer on every run.
    with_rules: Mutex<Option<std::collections::HashSet<String>>>,
    /// The server's clock: deliveries are queued, due and tried by it.
    clock: crate::clock::SharedClock,
}

fn rules_of(c: &mut DbConn, owner: Owner) -> DbResult<Vec<AlertRule>> {
    db::alert_rules::of(c, owner)?.iter().map(|r| r.to_rule()).collect()
}

/// The next message of a bus, past any it fell behind on (logged); None once it is closed.
async fn next<T: Clone>(rx: &mut broadcast::Receiver<T>, what: &str) -> Option<T> {
    loop {
        match rx.recv().await {
            Ok(m) => return Some(m),
            Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "alerts fell behind the {what}"),
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

impl Alerts {
    /// Starts queueing from the driver's transitions and the engine's group run ends, the
    /// deadline watch, and the delivery worker.
    pub fn start(
        db: Db,
        vault: Arc<Vault>,
        policy: AlertPolicy,
        clock: crate::clock::SharedClock,
        mut updates: broadcast::Receiver<RunUpdate>,
        mut group_ends: broadcast::Receiver<GroupRunEnd>,
    ) -> anyhow::Result<Arc<Alerts>> {
        let alerts = Arc::new(Alerts {
            db,
            vault,
            policy,
            bell: Arc::new(Bell::default()),
            attempted: tokio::sync::watch::Sender::new(None),
            with_rules: Mutex::new(None),
            clock,
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            while let Some(u) = next(&mut updates, "run updates").await {
                me.on_transition(u).await;
            }
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            while let Some(e) = next(&mut group_ends, "group run ends").await {
                me.on_group_end(e).await;
            }
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(me.policy.check_every);
            loop {
                every.tick().await;
                let now = me.clock.now();
                match me.db.run(move |c| check_deadlines(c, now)).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(queued = n, "deadline alerts");
                        me.bell.ring();
                    }
                    Err(e) => tracing::error!(error = %e, "checking alert deadlines"),
                }
            }
        });
        let me = alerts.clone();
        std::thread::Builder::new()
            .name("baton-alerts".into())
            .spawn(move || me.deliver_forever())
            .map_err(|e| anyhow::anyhow!("starting the alert delivery thread: {e}"))?;
        Ok(alerts)
    }

    async fn on_transition(&self, u: RunUpdate) {
        let t = u.transition;
        let relevant = matches!(t.to, RunStatus::Success | RunStatus::Failed | RunStatus::Terminated)
            || matches!(t.reason, Some(Reason::RetryScheduled { .. }));
        if !relevant {
            return;
        }
        if !self.may_have_rules(&u.task_name).await {
            return;
        }
        let (run_id, now) = (u.run_id, self.clock.now());
        let res = self
            .db
            .run(move |c| {
                let run = db::runs::get(c, run_id)?;
                let Some(tid) = run.task_id else { return Ok(0) };
                let rules = rules_of(c, Owner::Task(tid))?;
                let answering: Vec<(usize, &AlertRule)> =
                    rules.iter().enumerate().filter(|(_, r)| answers(&r.trigger, &t)).collect();
                if answering.is_empty() {
                    return Ok(0);
                }
                let task = db::tasks::get(c, tid).ok();
                let mut facts = run_facts(c, &run, task.as_ref(), now)?;
                facts.source = format!("task:{tid}");
                // The status the transition reached (the run may have moved on since).
                facts.status = t.to.as_str().to_string();
                facts.attempt = Some(i32::try_from(t.attempt).unwrap_or(i32::MAX));
                if let Some(r) = &t.reason {
                    facts.reason = Some(r.to_string());
                }
                let occasion = format!("run{run_id}:a{}:{}", t.attempt, t.to.as_str());
                let mut queued = 0;
                for (i, rule) in answering {
                    if queue_rule(c, rule, i, &facts, &occasion, None, now)?.is_some() {
                        queued += 1;
                    }
                }
                Ok(queued)
            })
            .await;
        match res {
            Ok(0) => {}
            Ok(_) => self.bell.ring(),
            Err(e) => tracing::error!(run = %run_id, error = %e, "queueing alerts"),
        }
    }

    async fn on_group_end(&self, e: GroupRunEnd) {
        let now = self.clock.now();
        let res = self
            .db
            .run(move |c| {
                let rules = rules_of(c, Owner::Group(e.group_id))?;
                let status = e.status;
                let as_transition = baton_schema::run::Transition {
                    from: RunStatus::Running,
                    to: status,
                    attempt: 1,
                    at: now,
                    reason: None,
                };
                let group = db::groups::get(c, e.group_id)?;
                let run = db::group_runs::get(c, e.group_run_id)?;
                let facts = Facts {
                    source: format!("group:{}", e.group_id),
                    group_name: group.name,
                    run_date: Some(e.run_date),
                    status: e.status.to_string(),
                    duration_seconds: run.started_at.zip(run.ended_at).map(|(s, en)| (en - s).num_seconds()),
                    ..Default::default()
                };
                let occasion = format!("grouprun{}:{}", e.group_run_id, e.status);
                let mut queued = 0;
                for (i, rule) in rules.iter().enumerate() {
                    if answers(&rule.trigger, &as_transition)
                        && queue_rule(c, rule, i, &facts, &occasion, None, now)?.is_some()
                    {
                        queued += 1;
                    }
                }
                Ok(queued)
            })
            .await;
        match res {
            Ok(0) => {}
            Ok(_) => self.bell.ring(),
            Err(err) => tracing::error!(group = %e.group_id, error = %err, "queueing group alerts"),
        }
    }

    /// Definitions changed: which tasks have rules is read again when next needed.
    pub fn definitions_changed(&self) {
        if let Ok(mut w) = self.with_rules.lock() {
            *w = None;
        }
    }

    async fn may_have_rules(&self, task_name: &str) -> bool {
        if let Some(known) = self.with_rules.lock().ok().and_then(|w| w.as_ref().map(|n| n.contains(task_name))) {
            return known;
        }
        match self.db.run(db::alert_rules::task_names_with_rules).await {
            Ok(names) => {
                let found = names.contains(task_name);
                if let Ok(mut w) = self.with_rules.lock() {
                    *w = Some(names);
                }
                found
            }
            Err(e) => {
                tracing::error!(error = %e, "reading which tasks have alert rules");
                true
            }
        }
    }

    /// Queues a test alert through `integration` and waits (a little) for its first attempt.
    pub async fn send_test(&self, integration: &str, actor: &str) -> DbResult<db::alert_deliveries::DeliveryRow> {
        let now = self.clock.now();
        let subject = format!("[Baton] Test alert from {actor}");
        let facts = Facts {
            source: "test".into(),
            task_name: "baton_test".into(),
            status: "TEST".into(),
            ..Default::default()
        };
        let new = NewDelivery {
            dedupe_key: format!("test:{integration}:{}", now.timestamp_nanos_opt().unwrap_or_default()),
            integration: integration.to_string(),
            source: "test".into(),
            run_id: None,
            trigger_on: "test".into(),
            subject: subject.clone(),
            message: format!("This is a test alert sent by {actor} through {integration}."),
            details: facts.details(&facts.values(), "test", &subject, None).to_string(),
        };
        let mut attempted = self.attempted.subscribe();
        let id = self
            .db
            .run(move |c| db::alert_deliveries::enqueue(c, &new, now))
            .await?
            .ok_or(db::DbError::Conflict("a test alert was queued at the same instant".into()))?;
        self.bell.ring();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let row = self.db.run(move |c| db::alert_deliveries::get(c, id)).await?.ok_or(db::DbError::NotFound)?;
            if row.attempts > 0 {
                return Ok(row);
            }
            // Read again after the worker's next attempt, or answer as it is at the deadline.
            match tokio::time::timeout_at(deadline, attempted.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(row),
            }
        }
    }
}
