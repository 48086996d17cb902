//! The `tasks` table: units of work, each a command on a target run as a user.

use super::groups::like_pattern;
use super::schema::tasks;
use super::{from_json, to_json, ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::definition::{AlertRuleDraft, TaskDef, TaskDraft};
use baton_schema::ids::{GroupId, InstanceId, TaskId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tasks)]
pub struct TaskRow {
    pub id: TaskId,
    pub instance_id: InstanceId,
    pub group_id: Option<GroupId>,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub team: String,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub profile: String,
    pub active: bool,
    pub schedule: Option<String>,
    pub retry_attempts: i32,
    pub retry_delay_seconds: i32,
    pub max_run_time_seconds: i32,
    pub accept_expiry_seconds: i32,
    pub dependency: Option<String>,
    pub misfire_policy: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl TaskRow {
    /// The stored task as a draft; `group` is its group's name (the caller resolves it).
    pub fn to_draft(&self, instance: &str, group: Option<&str>, alerts: Vec<AlertRuleDraft>) -> DbResult<TaskDraft> {
        Ok(TaskDraft {
            tid: Some(self.id),
            name: self.name.clone(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            team: self.team.clone(),
            instance: instance.to_string(),
            group: group.map(str::to_string),
            command: self.command.clone(),
            target: self.target.clone(),
            run_as_user: self.run_as_user.clone(),
            stdout_path: self.stdout_path.clone(),
            stderr_path: self.stderr_path.clone(),
            profile: from_json::<BTreeMap<String, String>>("task profile", &self.profile)?,
            active: self.active,
            schedule: self.schedule.as_deref().map(|s| from_json("task schedule", s)).transpose()?,
            retry_attempts: i64::from(self.retry_attempts),
            retry_delay_seconds: i64::from(self.retry_delay_seconds),
            max_run_time_seconds: i64::from(self.max_run_time_seconds),
            accept_expiry_seconds: i64::from(self.accept_expiry_seconds),
            dependency: self.dependency.clone(),
            misfire_policy: self.misfire_policy.clone(),
            alerts,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub instance_ids: Option<Vec<InstanceId>>,
    pub group_id: Option<GroupId>,
    /// Only tasks without a group.
    pub ungrouped: bool,
    pub active: Option<bool>,
    /// Part of the name.
    pub search: Option<String>,
}

macro_rules! filtered {
    ($f:expr) => {{
        let f: &TaskFilter = $f;
        let mut q = tasks::table.into_boxed();
        if let Some(ids) = &f.instance_ids {
            q = q.filter(tasks::instance_id.eq_any(ids.clone()));
        }
        if let Some(g) = f.group_id {
            q = q.filter(tasks::group_id.eq(g));
        }
        if f.ungrouped {
            q = q.filter(tasks::group_id.is_null());
        }
        if let Some(a) = f.active {
            q = q.filter(tasks::active.eq(a));
        }
        if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
            q = q.filter(tasks::name.like(like_pattern(s)).escape('\\'));
        }
        q
    }};
}

/// One page of tasks by ascending TID after the cursor `after`.
pub fn page(conn: &mut DbConn, f: &TaskFilter, after: Option<TaskId>, limit: i64) -> DbResult<Vec<TaskRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = filtered!(f).select(TaskRow::as_select()).order(tasks::id.asc()).limit(limit);
        if let Some(a) = after {
            q = q.filter(tasks::id.gt(a));
        }
        q.load(c)
    })?)
}

pub fn count(conn: &mut DbConn, f: &TaskFilter) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| filtered!(f).count().get_result(c))?)
}

pub fn get(conn: &mut DbConn, id: TaskId) -> DbResult<TaskRow> {
    Ok(with_conn!(conn, |c| tasks::table.find(id).select(TaskRow::as_select()).first(c))?)
}

pub fn get_many(conn: &mut DbConn, ids: &[TaskId]) -> DbResult<Vec<TaskRow>> {
    super::in_chunks(ids, |ids| {
        Ok(with_conn!(conn, |c| tasks::table.filter(tasks::id.eq_any(ids)).select(TaskRow::as_select()).load(c))?)
    })
}

pub fn by_name(conn: &mut DbConn, instance_id: InstanceId, name: &str) -> DbResult<Option<TaskRow>> {
    Ok(with_conn!(conn, |c| tasks::table
        .filter(tasks::instance_id.eq(instance_id).and(tasks::name.eq(name)))
        .select(TaskRow::as_select())
        .first(c)
        .optional())?)
}

pub fn in_group(conn: &mut DbConn, group_id: GroupId) -> DbResult<Vec<TaskRow>> {
    Ok(with_conn!(conn, |c| tasks::table
        .filter(tasks::group_id.eq(group_id))
        .order(tasks::id)
        .select(TaskRow::as_select())
        .load(c))?)
}

pub fn in_instance(conn: &mut DbConn, instance_id: InstanceId) -> DbResult<Vec<TaskRow>> {
    Ok(with_conn!(conn, |c| tasks::table
        .filter(tasks::instance_id.eq(instance_id))
        .order(tasks::id)
        .select(TaskRow::as_select())
        .load(c))?)
}

fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Every column a definition sets, for inserts and updates alike.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = tasks, treat_none_as_null = true)]
struct TaskFields {
    instance_id: InstanceId,
    group_id: Option<GroupId>,
    name: String,
    description: String,
    owner: String,
    team: String,
    command: String,
    target: String,
    run_as_user: String,
    stdout_path: Option<String>,
    stderr_path: Option<String>,
    profile: String,
    active: bool,
    schedule: Option<String>,
    retry_attempts: i32,
    retry_delay_seconds: i32,
    max_run_time_seconds: i32,
    accept_expiry_seconds: i32,
    dependency: Option<String>,
    misfire_policy: String,
}

impl TaskFields {
    fn new(instance_id: InstanceId, group_id: Option<GroupId>, t: &TaskDef) -> Self {
        TaskFields {
            instance_id,
            group_id,
            name: t.name.to_string(),
            description: t.description.clone(),
            owner: t.owner.clone(),
            team: t.team.clone(),
            command: t.command.clone(),
            target: t.target.to_string(),
            run_as_user: t.run_as_user.to_string(),
            stdout_path: t.stdout_path.clone(),
            stderr_path: t.stderr_path.clone(),
            profile: to_json(&t.profile),
            active: t.active,
            schedule: t.schedule.as_ref().map(|s| to_json(&s.to_draft())),
            retry_attempts: clamp(t.retry.retry_attempts),
            retry_delay_seconds: clamp(t.retry.retry_delay_seconds),
            max_run_time_seconds: clamp(t.max_run_time_seconds),
            accept_expiry_seconds: clamp(t.accept_expiry_seconds),
            dependency: t.dependency.as_ref().map(ToString::to_string),
            misfire_policy: t.misfire_policy.as_str().to_string(),
        }
    }
}

/// Inserts a task (with its TID when importing by id) and returns the TID.
pub fn insert(
    conn: &mut DbConn,
    instance_id: InstanceId,
    group_id: Option<GroupId>,
    t: &TaskDef,
    now: DateTime<Utc>,
) -> DbResult<TaskId> {
    let fields = TaskFields::new(instance_id, group_id, t);
    let stamps = (tasks::version.eq(1), tasks::created_at.eq(ts(now)), tasks::updated_at.eq(ts(now)));
    Ok(with_conn!(conn, |c| match t.tid {
        Some(id) => diesel::insert_into(tasks::table)
            .values((tasks::id.eq(id.0), &fields, stamps))
            .returning(tasks::id)
            .get_result(c),
        None => diesel::insert_into(tasks::table).values((&fields, stamps)).returning(tasks::id).get_result(c),
    })?)
}

/// Updates every field of a task and bumps its version.
pub fn update(
    conn: &mut DbConn,
    id: TaskId,
    instance_id: InstanceId,
    group_id: Option<GroupId>,
    t: &TaskDef,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let fields = TaskFields::new(instance_id, group_id, t);
    let n = with_conn!(conn, |c| diesel::update(tasks::table.find(id))
        .set((&fields, tasks::version.eq(tasks::version + 1), tasks::updated_at.eq(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn set_active(conn: &mut DbConn, id: TaskId, active: bool, now: DateTime<Utc>) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(tasks::table.find(id))
        .set((tasks::active.eq(active), tasks::version.eq(tasks::version + 1), tasks::updated_at.eq(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: TaskId) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::delete(tasks::table.find(id)).execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// (instance, task name, credential key) for every `${C:key}` in a task's profile.
pub fn naming_credentials(conn: &mut DbConn) -> DbResult<Vec<(InstanceId, String, String)>> {
    let rows: Vec<(InstanceId, String, String)> = with_conn!(conn, |c| tasks::table
        .filter(tasks::profile.like("%${C:%"))
        .order(tasks::id)
        .select((tasks::instance_id, tasks::name, tasks::profile))
        .load(c))?;
    let mut out = Vec::new();
    for (instance, name, profile) in rows {
        let profile: std::collections::BTreeMap<String, String> = super::from_json("task profile", &profile)?;
        for (var, value) in &profile {
            for key in baton_schema::placeholder::credential_refs(var, value).unwrap_or_default() {
                out.push((instance, name.clone(), key.to_string()));
            }
        }
    }
    Ok(out)
}
