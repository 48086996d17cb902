//! The `run_transitions` table: every step of every run, with its time, in order.

use super::schema::run_transitions;
use super::{to_json, ts, with_conn, DbConn, DbResult};
use baton_schema::ids::{GroupId, GroupRunId, RunId};
use baton_schema::run::{Reason, RunStatus, Transition};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = run_transitions)]
pub struct TransitionRow {
    pub id: i64,
    pub run_id: RunId,
    pub seq: i32,
    #[diesel(deserialize_as = String)]
    pub from_status: RunStatus,
    #[diesel(deserialize_as = String)]
    pub to_status: RunStatus,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub reason: Option<String>,
    /// The server that stored it.
    pub server: Option<String>,
}

impl TransitionRow {
    /// The step as the run machine made it (a reason that does not read is left out).
    pub fn transition(&self) -> Transition {
        Transition {
            from: self.from_status,
            to: self.to_status,
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            at: super::utc(self.at),
            reason: self.reason.as_deref().and_then(|r| serde_json::from_str::<Reason>(r).ok()),
        }
    }
}

/// Appends transitions after the run's last one; `(run_id, seq)` is unique, so two writers
/// cannot both append the same step.
/// `server` is the server storing them (the others publish them to their subscribers).
/// Returns the `seq` of the first one.
pub fn append(conn: &mut DbConn, run_id: RunId, transitions: &[Transition], server: &str) -> DbResult<i32> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
    // One statement per step, its `seq` taken in the statement itself: a round trip fewer than
    // reading the last `seq` first.
    let mut first = None;
    for t in transitions {
        let next = run_transitions::table.filter(run_transitions::run_id.eq(run_id)).select((
            run_id.into_sql::<BigInt>(),
            sql::<Integer>("COALESCE(MAX(seq), 0) + 1"),
            t.from.as_str().into_sql::<Text>(),
            t.to.as_str().into_sql::<Text>(),
            i32::try_from(t.attempt).unwrap_or(i32::MAX).into_sql::<Integer>(),
            ts(t.at).into_sql::<Timestamp>(),
            t.reason.as_ref().map(to_json).into_sql::<Nullable<Text>>(),
            Some(server).into_sql::<Nullable<Text>>(),
        ));
        let seq: i32 = with_conn!(conn, |c| diesel::insert_into(run_transitions::table)
            .values(next.clone())
            .into_columns((
                run_transitions::run_id,
                run_transitions::seq,
                run_transitions::from_status,
                run_transitions::to_status,
                run_transitions::attempt,
                run_transitions::at,
                run_transitions::reason,
                run_transitions::server,
            ))
            .returning(run_transitions::seq)
            .get_result(c))?;
        first.get_or_insert(seq);
    }
    Ok(first.unwrap_or(0))
}

pub fn of_run(conn: &mut DbConn, run_id: RunId) -> DbResult<Vec<TransitionRow>> {
    Ok(with_conn!(conn, |c| run_transitions::table
        .filter(run_transitions::run_id.eq(run_id))
        .order(run_transitions::seq)
        .select(TransitionRow::as_select())
        .load(c))?)
}

/// A run's transitions after `seq` (and after `id`, when given), in order.
pub fn of_run_after(conn: &mut DbConn, run_id: RunId, seq: i32, id: Option<i64>) -> DbResult<Vec<TransitionRow>> {
    Ok(with_conn!(conn, |c| run_transitions::table
        .filter(run_transitions::run_id.eq(run_id))
        .filter(run_transitions::seq.gt(seq))
        .filter(run_transitions::id.gt(id.unwrap_or(0)))
        .order(run_transitions::seq)
        .select(TransitionRow::as_select())
        .load(c))?)
}

/// The newest transition's id (where a server starts following the others' transitions).
pub fn last_id(conn: &mut DbConn) -> DbResult<i64> {
    let id: Option<i64> =
        with_conn!(conn, |c| run_transitions::table.select(diesel::dsl::max(run_transitions::id)).first(c))?;
    Ok(id.unwrap_or(0))
}

/// A transition another server stored, with what subscribers see of its run.
#[derive(Debug, Clone)]
pub struct Foreign {
    pub row: TransitionRow,
    pub task_name: String,
    pub group_id: Option<GroupId>,
    pub group_run_id: Option<GroupRunId>,
}

/// Transitions after `after` stored by servers other than `me`, in the order they were stored.
pub fn foreign_after(conn: &mut DbConn, after: i64, me: &str, limit: i64) -> DbResult<(i64, Vec<Foreign>)> {
    use super::schema::runs;
    let rows: Vec<(TransitionRow, String, Option<GroupId>, Option<GroupRunId>)> = with_conn!(conn, |c| {
        run_transitions::table
            .inner_join(runs::table)
            .filter(run_transitions::id.gt(after))
            .order(run_transitions::id)
            .limit(limit)
            .select((TransitionRow::as_select(), runs::task_name, runs::group_id, runs::group_run_id))
            .load(c)
    })?;
    let last = rows.last().map_or(after, |r| r.0.id);
    let foreign = rows
        .into_iter()
        .filter(|r| r.0.server.as_deref() != Some(me))
        .map(|(row, task_name, group_id, group_run_id)| Foreign { row, task_name, group_id, group_run_id })
        .collect();
    Ok((last, foreign))
}
