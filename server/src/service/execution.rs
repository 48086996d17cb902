//! Starting and stopping runs: adhoc commands, force-run of a task, terminate.

use super::definitions::task_records;
use super::Found;
use super::{audit, audit_in, check_instance_id, require, task_timezone, Services, SvcError};
use crate::db::{self, to_json};
use crate::driver::JobSpec;
use crate::engine::launch::{self, Origin};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::Role;
use baton_schema::definition::TaskDef;
use baton_schema::ids::{RunId, TaskId};
use baton_schema::run::RetryPolicy;
use baton_schema::schedule::Slot;
use chrono::{NaiveDate, Utc};
use std::collections::BTreeMap;

/// A new run for `target`, not yet tied to a task (adhoc).
fn new_run(run_date: NaiveDate, slot: String, spec: &JobSpec, now: chrono::DateTime<Utc>) -> db::runs::NewRun {
    let (kind, command, target, user) = ("adhoc", &spec.command, &spec.target, &spec.run_as_user);
    let now = db::ts(now);
    db::runs::NewRun {
        kind: kind.into(),
        task_id: None,
        task_name: kind.into(),
        instance_id: None,
        group_id: None,
        group_run_id: None,
        run_date,
        slot,
        status: baton_schema::run::RunStatus::Idle,
        command: command.into(),
        target: target.into(),
        run_as_user: user.into(),
        scheduled_for: Some(now),
        created_at: now,
        updated_at: now,
        job: Some(spec.stored()),
    }
}

impl Services {
    async fn run_record(&self, p: &Principal, id: RunId) -> BackendResult<RunRecord> {
        baton_graphql::Runs::run(self, p, id).await
    }
}

#[async_trait]
impl baton_graphql::Execution for Services {
    async fn run_adhoc(&self, p: &Principal, req: AdhocRequest) -> BackendResult<Vec<RunRecord>> {
        if req.command.trim().is_empty() {
            return Err(ApiError::invalid("command", "required", "must not be empty"));
        }
        baton_schema::names::RunAsUser::parse(&req.run_as_user)?;
        if !(1..=82_800).contains(&req.max_run_time_seconds) {
            return Err(ApiError::invalid("maxRunTimeSeconds", "range", "must be between 1 and 82800"));
        }
        let online = self.hub.online();
        let agents: Vec<String> = match (&req.queue, req.agents.is_empty()) {
            (Some(q), true) => {
                let q = q.clone();
                let rows = self.run(|c| Ok(db::agents::list(c)?)).await?;
                // Only the agents the caller's instances may reach.
                let list: Vec<String> = rows
                    .into_iter()
                    .filter(|a| online.contains(&a.name) && a.queue_list().contains(&q.as_str()))
                    .map(super::agents::agent_record)
                    .filter(|a| super::agents::adhoc_may_reach(&p.instances, &a.instances))
                    .map(|a| a.name)
                    .collect();
                if list.is_empty() {
                    return Err(ApiError::invalid("queue", "no_agent", format!("no online agent serves queue {q}")));
                }
                list
            }
            (None, false) => req.agents.clone(),
            _ => return Err(ApiError::invalid("agents", "one_of", "give agents or a queue, not both and not neither")),
        };
        let now = self.driver.now();
        let specs: Vec<JobSpec> = agents
            .iter()
            .map(|agent| JobSpec {
                task: "adhoc".into(),
                command: req.command.clone(),
                run_as_user: req.run_as_user.clone(),
                env: BTreeMap::new(),
                stdout_path: None,
                stderr_path: None,
                max_run_time_seconds: req.max_run_time_seconds,
                accept_expiry_seconds: 60,
                retry: RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 },
                target: agent.clone(),
                run_date: now.date_naive(),
                group_run: None,
                instance_id: None,
            })
            .collect();
        let (actor, command, user) = (p.username.clone(), req.command.clone(), req.run_as_user.clone());
        let names = agents.clone();
        let to_make = specs.clone();
        let caller = p.instances.clone();
        let ids: Vec<RunId> = self
            .run(move |c| {
                let mut reach = Vec::new();
                for a in &names {
                    let Some(row) = db::agents::by_name(c, a)? else {
                        return Err(ApiError::invalid("agents", "unknown_agent", format!("no agent {a}")).into());
                    };
                    let serves = super::agents::agent_record(row).instances;
                    if !super::agents::adhoc_may_reach(&caller, &serves) {
                        return Err(ApiError::Forbidden(format!(
                            "agent {a} serves instances {serves}, none of yours ({caller})"
                        ))
                        .into());
                    }
                    reach.push(serves);
                }
                db::transaction(c, |c| {
                    let stamp = now.format("%Y%m%dT%H%M%S%.6f").to_string();
                    let mut ids = Vec::new();
                    for (spec, serves) in to_make.iter().zip(&reach) {
                        let run = new_run(now.date_naive(), format!("adhoc-{stamp}-{}", spec.target), spec, now);
                        let id = db::runs::create(c, &run)?.id();
                        db::runs::set_reach(c, id, serves)?;
                        ids.push(id);
                    }
                    let after = format!(
                        "{{\"agents\":{},\"command\":{},\"run_as_user\":{}}}",
                        to_json(&names),
                        to_json(&command),
                        to_json(&user)
                    );
                    audit(c, now, &actor, "runAdhoc", &names.join(","), None, Some(after))?;
                    Ok::<_, SvcError>(ids)
                })
            })
            .await?;
        let mut out = Vec::new();
        for (id, spec) in ids.into_iter().zip(specs) {
            self.driver.start(id, spec).await;
            out.push(self.run_record(p, id).await?);
        }
        Ok(out)
    }

    async fn force_run(&self, p: &Principal, tid: TaskId, run_date: Option<NaiveDate>) -> BackendResult<RunRecord> {
        let pc = p.clone();
        let now = self.driver.now();
        let (id, spec, event) = self
            .run(move |c| {
                require(&pc, Role::Operator)?;
                let row = db::tasks::get(c, tid).found("task")?;
                check_instance_id(c, &pc, row.instance_id).found("task")?;
                let rec = task_records(c, vec![row.clone()])?.remove(0);
                let def = TaskDef::parse(&rec.draft)?;
                let local_now = now.with_timezone(&task_timezone(c, &row)?);
                let date = run_date.unwrap_or_else(|| local_now.date_naive());
                let slot = Slot {
                    run_date: date,
                    local: local_now.naive_local(),
                    at: now,
                    utc_offset_seconds: 0,
                    dst: None,
                    holiday: None,
                };
                let origin = Origin {
                    task_id: tid,
                    instance_id: row.instance_id,
                    group: row.group_id.zip(def.group.as_ref().map(|g| g.as_str())),
                    group_run_id: None,
                    slot: &slot,
                };
                let (mut run, spec) = launch::try_build(&def, &origin, now)?;
                run.kind = "forced".into();
                run.slot = format!("force-{}", now.format("%Y%m%dT%H%M%S%.6f"));
                let (id, event) = db::transaction(c, |c| {
                    let id = db::runs::create(c, &run)?.id();
                    let target = super::operator::Target {
                        task_id: Some(tid),
                        group_id: row.group_id,
                        run_id: Some(id),
                        run_date: Some(date),
                    };
                    let event = super::operator::record_event(
                        c,
                        now,
                        &pc.username,
                        "force_run",
                        &target,
                        format!("{{\"run_date\":\"{date}\"}}"),
                    )?;
                    audit_in(
                        c,
                        now,
                        Some(row.instance_id),
                        &pc.username,
                        "forceRun",
                        &format!("task {tid} {}", def.name),
                        None,
                        Some(format!("{{\"run\":{id},\"run_date\":\"{date}\"}}")),
                    )?;
                    Ok::<_, SvcError>((id, event))
                })?;
                Ok((id, spec, event))
            })
            .await?;
        self.driver.start(id, spec).await;
        self.acknowledge(event, Ok(format!("run {id} started"))).await?;
        self.run_record(p, id).await
    }

    async fn terminate_run(&self, p: &Principal, id: RunId) -> BackendResult<bool> {
        let now = self.now();
        require(p, Role::Operator).map_err(ApiError::from)?;
        let run = self.run_record(p, id).await?;
        let actor = p.username.clone();
        let target = super::operator::Target {
            task_id: run.task_id,
            group_id: run.group_id,
            run_id: Some(id),
            run_date: Some(run.run_date),
        };
        let event = self
            .run(move |c| {
                let instance = db::runs::get(c, id)?.instance_id;
                audit_in(c, now, instance, &actor, "terminateRun", &format!("run {id}"), None, None)?;
                super::operator::record_event(c, now, &actor, "terminate", &target, "{}".into())
            })
            .await?;
        let outcome = self.driver.terminate(id, &p.username).await;
        self.acknowledge(event, outcome.clone().map(|()| format!("run {id} is being terminated"))).await?;
        outcome.map_err(ApiError::Conflict)?;
        Ok(true)
    }
}
