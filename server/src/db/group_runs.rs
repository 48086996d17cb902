//! The `group_runs` table: one row per (group, run date, slot) when a group fires.

use super::schema::group_runs;
use super::{ts, with_conn, DbConn, DbResult};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = group_runs)]
pub struct GroupRunRow {
    pub id: i64,
    pub group_id: i64,
    pub run_date: NaiveDate,
    pub slot: String,
    pub status: String,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Creates the group run for its slot unless it exists; returns its id either way.
pub fn create(conn: &mut DbConn, group_id: i64, run_date: NaiveDate, slot: &str, now: DateTime<Utc>) -> DbResult<i64> {
    with_conn!(conn, |c| diesel::insert_into(group_runs::table)
        .values((
            group_runs::group_id.eq(group_id),
            group_runs::run_date.eq(run_date),
            group_runs::slot.eq(slot),
            group_runs::status.eq("RUNNING"),
            group_runs::started_at.eq(Some(ts(now))),
            group_runs::created_at.eq(ts(now)),
        ))
        .on_conflict((group_runs::group_id, group_runs::run_date, group_runs::slot))
        .do_nothing()
        .execute(c))?;
    Ok(with_conn!(conn, |c| group_runs::table
        .filter(group_runs::group_id.eq(group_id).and(group_runs::run_date.eq(run_date)).and(group_runs::slot.eq(slot)))
        .select(group_runs::id)
        .first(c))?)
}

pub fn finish(conn: &mut DbConn, id: i64, status: &str, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(group_runs::table.find(id))
        .set((group_runs::status.eq(status), group_runs::ended_at.eq(Some(ts(now)))))
        .execute(c))?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: i64) -> DbResult<GroupRunRow> {
    Ok(with_conn!(conn, |c| group_runs::table.find(id).select(GroupRunRow::as_select()).first(c))?)
}
