//! The `events` table: operators' commands to the scheduler, with who, when, origin and result.

use super::schema::events;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::{GroupId, RunId, TaskId};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub actor: String,
    pub origin: String,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub run_id: Option<RunId>,
    pub run_date: Option<NaiveDate>,
    pub payload: String,
    pub result: Option<String>,
    pub ok: Option<bool>,
    pub created_at: NaiveDateTime,
    pub acknowledged_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub kind: String,
    pub actor: String,
    pub origin: String,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub run_id: Option<RunId>,
    pub run_date: Option<NaiveDate>,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, e: &NewEvent) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(events::table).values(e).returning(events::id).get_result(c))?)
}

/// Records the scheduler's acknowledgement of an event.
pub fn acknowledge(conn: &mut DbConn, id: i64, ok: bool, result: &str, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(events::table.find(id))
        .set((events::ok.eq(Some(ok)), events::result.eq(Some(result)), events::acknowledged_at.eq(Some(ts(now)))))
        .execute(c))?;
    Ok(())
}

/// Newest first, before the cursor.
pub fn page(conn: &mut DbConn, task_id: Option<TaskId>, before: Option<i64>, limit: i64) -> DbResult<Vec<EventRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = events::table.select(EventRow::as_select()).order(events::id.desc()).limit(limit).into_boxed();
        if let Some(t) = task_id {
            q = q.filter(events::task_id.eq(t));
        }
        if let Some(b) = before {
            q = q.filter(events::id.lt(b));
        }
        q.load(c)
    })?)
}

/// Whether a task is frozen for a run date: its latest freeze or unfreeze that took effect
/// was a freeze.
pub fn frozen(conn: &mut DbConn, task_id: TaskId, run_date: NaiveDate) -> DbResult<bool> {
    let last: Option<String> = with_conn!(conn, |c| events::table
        .filter(events::task_id.eq(task_id).and(events::run_date.eq(run_date)))
        .filter(events::kind.eq_any(["freeze", "unfreeze"]).and(events::ok.eq(Some(true))))
        .order(events::id.desc())
        .select(events::kind)
        .first(c)
        .optional())?;
    Ok(last.as_deref() == Some("freeze"))
}

pub fn get(conn: &mut DbConn, id: i64) -> DbResult<EventRow> {
    Ok(with_conn!(conn, |c| events::table.find(id).select(EventRow::as_select()).first(c))?)
}

/// The runs named by events of one kind since a time, newest first (the missed-runs ledger).
pub fn of_kind_since(conn: &mut DbConn, kind: &str, since: DateTime<Utc>, limit: i64) -> DbResult<Vec<RunId>> {
    let ids: Vec<Option<RunId>> = with_conn!(conn, |c| events::table
        .filter(events::kind.eq(kind).and(events::created_at.ge(ts(since))))
        .order(events::id.desc())
        .limit(limit)
        .select(events::run_id)
        .load(c))?;
    Ok(ids.into_iter().flatten().collect())
}
