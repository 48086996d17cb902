//! The `group_runs` table: one row per (group, run date, slot) when a group fires.

use super::schema::group_runs;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::{GroupId, GroupRunId, InstanceId};
use baton_schema::run::RunStatus;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = group_runs)]
pub struct GroupRunRow {
    pub id: GroupRunId,
    pub group_id: GroupId,
    pub run_date: NaiveDate,
    pub slot: String,
    #[diesel(deserialize_as = String)]
    pub status: RunStatus,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Creates the group run for its slot unless it exists (status IDLE while it waits for its
/// group dependency, RUNNING otherwise); returns its id and whether it is new.
pub fn create(
    conn: &mut DbConn,
    group_id: GroupId,
    run_date: NaiveDate,
    slot: &str,
    status: RunStatus,
    now: DateTime<Utc>,
) -> DbResult<(GroupRunId, bool)> {
    let started = (status == RunStatus::Running).then(|| ts(now));
    let ended = (status == RunStatus::Skipped).then(|| ts(now));
    let n = with_conn!(conn, |c| diesel::insert_into(group_runs::table)
        .values((
            group_runs::group_id.eq(group_id),
            group_runs::run_date.eq(run_date),
            group_runs::slot.eq(slot),
            group_runs::status.eq(status.as_str()),
            group_runs::started_at.eq(started),
            group_runs::ended_at.eq(ended),
            group_runs::created_at.eq(ts(now)),
        ))
        .on_conflict((group_runs::group_id, group_runs::run_date, group_runs::slot))
        .do_nothing()
        .execute(c))?;
    let id = with_conn!(conn, |c| group_runs::table
        .filter(group_runs::group_id.eq(group_id).and(group_runs::run_date.eq(run_date)).and(group_runs::slot.eq(slot)))
        .select(group_runs::id)
        .first(c))?;
    Ok((id, n == 1))
}

/// A group run starts its tasks (its group dependency holds, or an operator's change lets an
/// ended one go on).
pub fn set_running(conn: &mut DbConn, id: GroupRunId, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(group_runs::table.find(id))
        .set((group_runs::status.eq(RunStatus::Running.as_str()), group_runs::ended_at.eq(None::<NaiveDateTime>)))
        .execute(c))?;
    with_conn!(conn, |c| diesel::update(group_runs::table.find(id).filter(group_runs::started_at.is_null()))
        .set(group_runs::started_at.eq(Some(ts(now))))
        .execute(c))?;
    Ok(())
}

/// The group runs of a group that have not ended.
pub fn open_of_group(conn: &mut DbConn, group_id: GroupId) -> DbResult<Vec<GroupRunRow>> {
    Ok(with_conn!(conn, |c| group_runs::table
        .filter(
            group_runs::group_id
                .eq(group_id)
                .and(group_runs::status.eq_any([RunStatus::Idle.as_str(), RunStatus::Running.as_str()]))
        )
        .order(group_runs::id)
        .select(GroupRunRow::as_select())
        .load(c))?)
}

/// The latest status of each group of an instance on a run date, by group name.
pub fn states_on(
    conn: &mut DbConn,
    instance_id: InstanceId,
    run_date: NaiveDate,
) -> DbResult<Vec<(String, RunStatus)>> {
    use super::schema::groups;
    /// A group's name and one of its runs' status, read as the rows read statuses.
    #[derive(Queryable)]
    struct GroupState {
        name: String,
        #[diesel(deserialize_as = String)]
        status: RunStatus,
    }
    let rows: Vec<GroupState> = with_conn!(conn, |c| group_runs::table
        .inner_join(groups::table)
        .filter(groups::instance_id.eq(instance_id).and(group_runs::run_date.eq(run_date)))
        .order(group_runs::id)
        .select((groups::name, group_runs::status))
        .load(c))?;
    Ok(rows.into_iter().map(|r| (r.name, r.status)).collect())
}

/// Newest first, for the API.
pub fn of_group(conn: &mut DbConn, group_id: GroupId, limit: i64) -> DbResult<Vec<GroupRunRow>> {
    Ok(with_conn!(conn, |c| group_runs::table
        .filter(group_runs::group_id.eq(group_id))
        .order(group_runs::id.desc())
        .limit(limit)
        .select(GroupRunRow::as_select())
        .load(c))?)
}

pub fn finish(conn: &mut DbConn, id: GroupRunId, status: RunStatus, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(group_runs::table.find(id))
        .set((group_runs::status.eq(status.as_str()), group_runs::ended_at.eq(Some(ts(now)))))
        .execute(c))?;
    Ok(())
}

pub fn get(conn: &mut DbConn, id: GroupRunId) -> DbResult<GroupRunRow> {
    Ok(with_conn!(conn, |c| group_runs::table.find(id).select(GroupRunRow::as_select()).first(c))?)
}

/// A group's runs of one run date, in order.
pub fn of_group_on(conn: &mut DbConn, group_id: GroupId, run_date: NaiveDate) -> DbResult<Vec<GroupRunRow>> {
    Ok(with_conn!(conn, |c| group_runs::table
        .filter(group_runs::group_id.eq(group_id).and(group_runs::run_date.eq(run_date)))
        .order(group_runs::id)
        .select(GroupRunRow::as_select())
        .load(c))?)
}

/// The run dates on which any of the groups `names` of an instance opened a group run since
/// `since` (a group that follows them owes a run on each), oldest first.
pub fn dates_opened_by(
    conn: &mut DbConn,
    instance_id: InstanceId,
    names: &[String],
    since: DateTime<Utc>,
) -> DbResult<Vec<NaiveDate>> {
    use super::schema::groups;
    Ok(with_conn!(conn, |c| group_runs::table
        .inner_join(groups::table)
        .filter(groups::instance_id.eq(instance_id).and(groups::name.eq_any(names)))
        .filter(group_runs::created_at.ge(ts(since)))
        .select(group_runs::run_date)
        .distinct()
        .order(group_runs::run_date)
        .load(c))?)
}
