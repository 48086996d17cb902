//! What a task's run is made of when the engine creates it: the stored row (command and paths
//! with their placeholders expanded) and the job the driver sends to an agent.

use crate::db;
use crate::driver::{GroupRunRef, JobSpec};
use crate::service::execution::expand_command;
use baton_schema::definition::TaskDef;
use baton_schema::schedule::Slot;
use chrono::Utc;
use std::collections::HashMap;

/// Where a run comes from.
pub struct Origin<'a> {
    pub task_id: i64,
    pub instance_id: i64,
    /// The group and group run, with the group's name for `${T:group_name}`.
    pub group: Option<(GroupRunRef, &'a str)>,
    pub slot: &'a Slot,
}

/// The row to store (status IDLE) and the job to start once it may.
pub fn build(def: &TaskDef, origin: &Origin<'_>) -> (db::runs::NewRun, JobSpec) {
    let slot = origin.slot;
    let mut values: HashMap<String, String> = def.profile.iter().map(|(k, v)| (format!("E:{k}"), v.clone())).collect();
    values.insert("E:YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
    values.insert("E:HHMM".into(), slot.local.format("%H%M").to_string());
    values.insert("T:task_name".into(), def.name.to_string());
    values.insert("T:task_id".into(), origin.task_id.to_string());
    values.insert("T:group_name".into(), origin.group.map(|(_, n)| n.to_string()).unwrap_or_default());
    // Definitions are validated when saved, so expansion only fails on a stale row: keep the text.
    let expand = |t: &str| expand_command(t, &values).unwrap_or_else(|_| t.to_string());
    let command = expand(&def.command);
    let now = db::ts(Utc::now());
    let group_run = origin.group.map(|(g, _)| g);
    let row = db::runs::NewRun {
        kind: "scheduled".into(),
        task_id: Some(origin.task_id),
        task_name: def.name.to_string(),
        instance_id: Some(origin.instance_id),
        group_id: group_run.map(|g| g.group_id),
        group_run_id: group_run.map(|g| g.group_run_id),
        run_date: slot.run_date,
        slot: slot.key(),
        status: "IDLE".into(),
        command: command.clone(),
        target: def.target.to_string(),
        run_as_user: def.run_as_user.to_string(),
        scheduled_for: Some(db::ts(slot.at)),
        created_at: now,
        updated_at: now,
    };
    let mut env = def.profile.clone();
    env.insert("YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
    env.insert("HHMM".into(), slot.local.format("%H%M").to_string());
    let spec = JobSpec {
        task: def.name.to_string(),
        command,
        run_as_user: def.run_as_user.to_string(),
        env,
        stdout_path: def.stdout_path.as_deref().map(&expand),
        stderr_path: def.stderr_path.as_deref().map(&expand),
        max_run_time_seconds: def.max_run_time_seconds,
        accept_expiry_seconds: def.accept_expiry_seconds,
        retry: def.retry,
        target: def.target.to_string(),
        run_date: slot.run_date,
        group_run,
    };
    (row, spec)
}

/// The job of a stored run that was held (frozen) and may start now.
pub fn stored_job(c: &mut db::DbConn, run: &db::runs::RunRow) -> db::DbResult<Option<JobSpec>> {
    let Some(tid) = run.task_id else { return Ok(None) };
    let row = db::tasks::get(c, tid)?;
    let instance = db::instances::get(c, row.instance_id)?.name;
    let group = match row.group_id {
        Some(g) => Some(db::groups::get(c, g)?.name),
        None => None,
    };
    let Ok(def) = TaskDef::parse(&row.to_draft(&instance, group.as_deref(), Vec::new())?) else { return Ok(None) };
    let local = chrono::NaiveDateTime::parse_from_str(&run.slot, "%Y-%m-%dT%H:%M:%S")
        .unwrap_or_else(|_| run.run_date.and_hms_opt(0, 0, 0).unwrap_or_default());
    let at = run.scheduled_for.map_or_else(Utc::now, db::utc);
    let slot = Slot { run_date: run.run_date, local, at, utc_offset_seconds: 0, dst: None, holiday: None };
    let group_run =
        run.group_id.zip(run.group_run_id).map(|(group_id, group_run_id)| GroupRunRef { group_id, group_run_id });
    let origin =
        Origin { task_id: tid, instance_id: row.instance_id, group: group_run.zip(group.as_deref()), slot: &slot };
    let (_, mut spec) = build(&def, &origin);
    // The stored command is the one the run was made with.
    spec.command.clone_from(&run.command);
    Ok(Some(spec))
}
