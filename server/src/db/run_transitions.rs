//! The `run_transitions` table: every step of every run, with its time, in order.

use super::schema::run_transitions;
use super::{to_json, ts, with_conn, DbConn, DbResult};
use baton_schema::run::Transition;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = run_transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub run_id: i64,
    pub seq: i32,
    pub from_status: String,
    pub to_status: String,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub reason: Option<String>,
}

/// Appends transitions after the run's last one; `(run_id, seq)` is unique, so two writers
/// cannot both append the same step.
pub fn append(conn: &mut DbConn, run_id: i64, transitions: &[Transition]) -> DbResult<()> {
    if transitions.is_empty() {
        return Ok(());
    }
    with_conn!(conn, |c| {
        let last: Option<i32> = run_transitions::table
            .filter(run_transitions::run_id.eq(run_id))
            .select(diesel::dsl::max(run_transitions::seq))
            .first(c)?;
        let start = last.unwrap_or(0) + 1;
        let rows: Vec<_> = transitions
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    run_transitions::run_id.eq(run_id),
                    run_transitions::seq.eq(start + i32::try_from(i).unwrap_or(0)),
                    run_transitions::from_status.eq(t.from.as_str()),
                    run_transitions::to_status.eq(t.to.as_str()),
                    run_transitions::attempt.eq(i32::try_from(t.attempt).unwrap_or(i32::MAX)),
                    run_transitions::at.eq(ts(t.at)),
                    run_transitions::reason.eq(t.reason.as_ref().map(to_json)),
                )
            })
            .collect();
        diesel::insert_into(run_transitions::table).values(&rows).execute(c)
    })?;
    Ok(())
}

pub fn of_run(conn: &mut DbConn, run_id: i64) -> DbResult<Vec<TransitionRow>> {
    Ok(with_conn!(conn, |c| run_transitions::table
        .filter(run_transitions::run_id.eq(run_id))
        .order(run_transitions::seq)
        .select(TransitionRow::as_select())
        .load(c))?)
}
