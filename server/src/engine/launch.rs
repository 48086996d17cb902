//! What a task's run is made of when the engine creates it: the stored row (command and paths
//! with their placeholders expanded) and the job the driver sends to an agent.

use crate::db;
use crate::driver::{GroupRunRef, JobSpec};
use baton_schema::definition::TaskDef;
use baton_schema::ids::{GroupId, GroupRunId, InstanceId, TaskId};
use baton_schema::placeholder::expand_command;
use baton_schema::schedule::Slot;
use baton_schema::FieldError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Where a run comes from.
pub struct Origin<'a> {
    pub task_id: TaskId,
    pub instance_id: InstanceId,
    /// The task's group (id, and name for `${T:group_name}`).
    pub group: Option<(GroupId, &'a str)>,
    /// The group run it belongs to, whose flow follows it (none for a forced run).
    pub group_run_id: Option<GroupRunId>,
    pub slot: &'a Slot,
}

/// The row to store (status IDLE, kind scheduled) and the job to start once it may. Definitions
/// are validated when saved, so expansion only fails on a stale row: the text is kept as it is.
pub fn build(def: &TaskDef, origin: &Origin<'_>, now: DateTime<Utc>) -> (db::runs::NewRun, JobSpec) {
    let lenient = |t: &str, values: &HashMap<String, String>| {
        Ok::<_, std::convert::Infallible>(expand_command(t, values).unwrap_or_else(|_| t.to_string()))
    };
    match make(def, origin, lenient, now) {
        Ok(built) => built,
        Err(never) => match never {},
    }
}

/// As `build`, but a placeholder that cannot be expanded is an error (for a run an operator asks for).
pub fn try_build(
    def: &TaskDef,
    origin: &Origin<'_>,
    now: DateTime<Utc>,
) -> Result<(db::runs::NewRun, JobSpec), FieldError> {
    make(def, origin, expand_command, now)
}

fn make<E>(
    def: &TaskDef,
    origin: &Origin<'_>,
    expand: impl Fn(&str, &HashMap<String, String>) -> Result<String, E>,
    now: DateTime<Utc>,
) -> Result<(db::runs::NewRun, JobSpec), E> {
    let slot = origin.slot;
    let mut values: HashMap<String, String> = def.profile.iter().map(|(k, v)| (format!("E:{k}"), v.clone())).collect();
    values.insert("E:YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
    values.insert("E:HHMM".into(), slot.local.format("%H%M").to_string());
    values.insert("T:task_name".into(), def.name.to_string());
    values.insert("T:task_id".into(), origin.task_id.to_string());
    values.insert("T:group_name".into(), origin.group.map(|(_, n)| n.to_string()).unwrap_or_default());
    let command = expand(&def.command, &values)?;
    let stdout_path = def.stdout_path.as_deref().map(|p| expand(p, &values)).transpose()?;
    let stderr_path = def.stderr_path.as_deref().map(|p| expand(p, &values)).transpose()?;
    let now = db::ts(now);
    let group_id = origin.group.map(|(g, _)| g);
    let row = db::runs::NewRun {
        kind: "scheduled".into(),
        task_id: Some(origin.task_id),
        task_name: def.name.to_string(),
        instance_id: Some(origin.instance_id),
        group_id,
        group_run_id: origin.group_run_id,
        run_date: slot.run_date,
        slot: slot.key(),
        status: baton_schema::run::RunStatus::Idle,
        command: command.clone(),
        target: def.target.to_string(),
        run_as_user: def.run_as_user.to_string(),
        scheduled_for: Some(db::ts(slot.at)),
        created_at: now,
        updated_at: now,
        job: None,
    };
    let mut env = def.profile.clone();
    env.insert("YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
    env.insert("HHMM".into(), slot.local.format("%H%M").to_string());
    let spec = JobSpec {
        task: def.name.to_string(),
        command,
        run_as_user: def.run_as_user.to_string(),
        env,
        stdout_path,
        stderr_path,
        max_run_time_seconds: def.max_run_time_seconds,
        accept_expiry_seconds: def.accept_expiry_seconds,
        retry: def.retry,
        target: def.target.to_string(),
        run_date: slot.run_date,
        group_run: GroupRunRef::of(group_id, origin.group_run_id),
        instance_id: Some(origin.instance_id),
    };
    let row = db::runs::NewRun { job: Some(spec.stored()), ..row };
    Ok((row, spec))
}

/// A slot as stored with a run (its key is the nominal local time; a following group's run has
/// no time of its own and gets the run date's midnight).
pub fn stored_slot(run_date: chrono::NaiveDate, key: &str, at: chrono::DateTime<Utc>) -> Slot {
    let local = chrono::NaiveDateTime::parse_from_str(key, "%Y-%m-%dT%H:%M:%S")
        .unwrap_or_else(|_| run_date.and_hms_opt(0, 0, 0).unwrap_or_default());
    Slot { run_date, local, at, utc_offset_seconds: 0, dst: None, holiday: None }
}

/// The job of a stored run that was held (frozen) and may start now.
pub fn stored_job(c: &mut db::DbConn, run: &db::runs::RunRow, now: DateTime<Utc>) -> db::DbResult<Option<JobSpec>> {
    if let Some(spec) = JobSpec::of_row(run) {
        return Ok(Some(spec));
    }
    let Some(tid) = run.task_id else { return Ok(None) };
    let row = db::tasks::get(c, tid)?;
    let instance = db::instances::get(c, row.instance_id)?.name;
    let group = match row.group_id {
        Some(g) => Some(db::groups::get(c, g)?.name),
        None => None,
    };
    let Ok(def) = TaskDef::parse(&row.to_draft(&instance, group.as_deref(), Vec::new())?) else { return Ok(None) };
    let slot = stored_slot(run.run_date, &run.slot, run.scheduled_for.map_or(now, db::utc));
    let origin = Origin {
        task_id: tid,
        instance_id: row.instance_id,
        group: row.group_id.zip(group.as_deref()),
        group_run_id: run.group_run_id,
        slot: &slot,
    };
    let (_, mut spec) = build(&def, &origin, now);
    // The stored command is the one the run was made with.
    spec.command.clone_from(&run.command);
    Ok(Some(spec))
}
