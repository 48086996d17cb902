//! Operators' commands to the scheduler: modify a run's status, freeze and unfreeze a task for a
//! day; each is recorded in the `events` table (who, when, origin, target) before it is carried
//! out, and acknowledged with its result. Also the ledger of slots missed while the server was
//! down, and a group's runs.

use super::runs::record as run_record;
use super::Found;
use super::{audit_in, check_instance_id, require, visible_instances, Services, SvcError, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::Role;
use baton_schema::ids::{GroupId, RunId, TaskId};
use baton_schema::run::{RunEvent, RunStatus};
use chrono::{DateTime, NaiveDate, Utc};

pub(crate) fn event_record(e: db::events::EventRow) -> OperatorEventRecord {
    OperatorEventRecord {
        id: e.id,
        kind: e.kind,
        actor: e.actor,
        origin: e.origin,
        task_id: e.task_id,
        group_id: e.group_id,
        run_id: e.run_id,
        run_date: e.run_date,
        payload: e.payload,
        result: e.result,
        ok: e.ok,
        created_at: db::utc(e.created_at),
        acknowledged_at: e.acknowledged_at.map(db::utc),
    }
}

/// What an event is about.
#[derive(Default, Clone)]
pub(crate) struct Target {
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub run_id: Option<RunId>,
    pub run_date: Option<NaiveDate>,
}

/// Records an operator's event before it is carried out.
pub(crate) fn record_event(
    c: &mut DbConn,
    now: DateTime<Utc>,
    actor: &str,
    kind: &str,
    t: &Target,
    payload: String,
) -> SvcResult<i64> {
    Ok(db::events::insert(
        c,
        &db::events::NewEvent {
            kind: kind.into(),
            actor: actor.into(),
            origin: "api".into(),
            task_id: t.task_id,
            group_id: t.group_id,
            run_id: t.run_id,
            run_date: t.run_date,
            payload,
            created_at: db::ts(now),
        },
    )?)
}

impl Services {
    /// Stores the scheduler's answer to an event and returns the event as stored.
    pub(crate) async fn acknowledge(
        &self,
        id: i64,
        outcome: Result<String, String>,
    ) -> BackendResult<OperatorEventRecord> {
        let now = self.now();
        let (ok, text) = match outcome {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.run(move |c| {
            db::events::acknowledge(c, id, ok, &text, now)?;
            Ok(event_record(db::events::get(c, id)?))
        })
        .await
    }
}

#[async_trait]
impl baton_graphql::Operations for Services {
    async fn modify_run_status(&self, p: &Principal, id: RunId, to: RunStatus) -> BackendResult<OperatorEventRecord> {
        let now = self.now();
        if !matches!(to, RunStatus::Success | RunStatus::Failed | RunStatus::Skipped) {
            return Err(ApiError::invalid("status", "one_of", "must be SUCCESS, FAILED or SKIPPED"));
        }
        let pc = p.clone();
        let event = self
            .run(move |c| {
                require(&pc, Role::Operator)?;
                let row = super::runs::visible_run(c, &pc, id)?;
                let target = Target {
                    task_id: row.task_id,
                    group_id: row.group_id,
                    run_id: Some(id),
                    run_date: Some(row.run_date),
                };
                let payload = format!("{{\"from\":\"{}\",\"to\":\"{}\"}}", row.status, to.as_str());
                audit_in(
                    c,
                    now,
                    row.instance_id,
                    &pc.username,
                    "modifyRunStatus",
                    &format!("run {id}"),
                    Some(row.status.to_string()),
                    Some(to.as_str().into()),
                )?;
                record_event(c, now, &pc.username, "modify_status", &target, payload)
            })
            .await?;
        let outcome = self
            .driver
            .settle(id, RunEvent::ModifyStatus { to, user: p.username.clone() })
            .await
            .map(|s| format!("run {id} is now {}", s.as_str()));
        let failed = outcome.as_ref().err().cloned();
        let rec = self.acknowledge(event, outcome).await?;
        match failed {
            Some(why) => Err(ApiError::Conflict(why)),
            None => Ok(rec),
        }
    }

    async fn freeze_task(
        &self,
        p: &Principal,
        tid: TaskId,
        run_date: Option<NaiveDate>,
        freeze: bool,
    ) -> BackendResult<OperatorEventRecord> {
        let now = self.now();
        let pc = p.clone();
        let kind = if freeze { "freeze" } else { "unfreeze" };
        let (event, date, runs) = self
            .run(move |c| {
                require(&pc, Role::Operator)?;
                let row = db::tasks::get(c, tid).found("task")?;
                check_instance_id(c, &pc, row.instance_id).found("task")?;
                // Today is the day in the task's timezone (its group's when grouped).
                let tz = super::task_timezone(c, &row)?;
                let date = run_date.unwrap_or_else(|| now.with_timezone(&tz).date_naive());
                let target = Target { task_id: Some(tid), group_id: row.group_id, run_id: None, run_date: Some(date) };
                audit_in(
                    c,
                    now,
                    Some(row.instance_id),
                    &pc.username,
                    if freeze { "freezeTask" } else { "unfreezeTask" },
                    &format!("task {tid} {}", row.name),
                    None,
                    Some(date.to_string()),
                )?;
                let event = record_event(c, now, &pc.username, kind, &target, format!("{{\"run_date\":\"{date}\"}}"))?;
                // Waiting runs of the day are frozen; frozen ones are released.
                let status = if freeze { RunStatus::Idle } else { RunStatus::Frozen };
                let runs: Vec<db::runs::RunRow> =
                    db::runs::of_task_on(c, tid, date, status)?.into_iter().filter(|r| r.attempt == 0).collect();
                Ok::<_, SvcError>((event, date, runs))
            })
            .await?;
        let mut touched = 0;
        for r in &runs {
            let ev = if freeze { RunEvent::Freeze } else { RunEvent::Unfreeze };
            if self.driver.settle(r.id, ev).await.is_ok() {
                touched += 1;
                // A released run outside any group starts now (its slot has passed); a grouped one
                // goes back to its group's flow, which starts it when its dependency holds.
                if !freeze && r.group_run_id.is_none() {
                    let row = r.clone();
                    let now = self.driver.now();
                    if let Ok(Some(spec)) =
                        self.run(move |c| Ok(crate::engine::launch::stored_job(c, &row, now)?)).await
                    {
                        self.driver.start(r.id, spec).await;
                    }
                }
            }
        }
        let text = format!(
            "task {tid} {} for {date}; {touched} run(s) {}",
            if freeze { "frozen" } else { "unfrozen" },
            if freeze { "held" } else { "released" }
        );
        self.acknowledge(event, Ok(text)).await
    }

    async fn operator_events(
        &self,
        p: &Principal,
        task_id: Option<TaskId>,
        limit: i64,
    ) -> BackendResult<Vec<OperatorEventRecord>> {
        let p = p.clone();
        self.run(move |c| {
            let visible = visible_instances(c, &p.instances)?;
            let rows = db::events::page(c, task_id, None, limit)?;
            let mut out = Vec::new();
            for e in rows {
                // Events about a task are shown to those who may see the task, events about a
                // run to those who may see the run; the rest to those who see every instance.
                let shown = match (e.task_id, e.run_id) {
                    (Some(t), _) => match &visible {
                        None => true,
                        Some(ids) => db::tasks::get(c, t).is_ok_and(|row| ids.contains(&row.instance_id)),
                    },
                    (None, Some(r)) => super::runs::visible_run(c, &p, r).is_ok(),
                    (None, None) => visible.is_none(),
                };
                if !shown {
                    continue;
                }
                out.push(event_record(e));
            }
            Ok(out)
        })
        .await
    }

    async fn missed_runs(&self, p: &Principal, since: DateTime<Utc>, limit: i64) -> BackendResult<Vec<RunRecord>> {
        let p = p.clone();
        self.run(move |c| {
            let visible = visible_instances(c, &p.instances)?;
            let ids = db::events::of_kind_since(c, "missed", since, limit)?;
            let mut out = Vec::new();
            for id in ids {
                let Ok(row) = db::runs::get(c, id) else { continue };
                if let (Some(v), Some(i)) = (&visible, row.instance_id) {
                    if !v.contains(&i) {
                        continue;
                    }
                }
                out.push(run_record(c, row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn group_runs(&self, p: &Principal, gid: GroupId, limit: i64) -> BackendResult<Vec<GroupRunRecord>> {
        let p = p.clone();
        self.run(move |c| {
            let g = db::groups::get(c, gid).found("group")?;
            check_instance_id(c, &p, g.instance_id).found("group")?;
            Ok(db::group_runs::of_group(c, gid, limit)?
                .into_iter()
                .map(|r| GroupRunRecord {
                    id: r.id,
                    group_id: r.group_id,
                    run_date: r.run_date,
                    slot: r.slot,
                    status: r.status,
                    started_at: r.started_at.map(db::utc),
                    ended_at: r.ended_at.map(db::utc),
                })
                .collect())
        })
        .await
    }
}
