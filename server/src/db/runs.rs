//! The `runs` table: one row per (task, run date, slot), carrying every step's time.

use super::groups::like_pattern;
use super::schema::runs;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::{AgentId, GroupId, GroupRunId, InstanceId, RunId, TaskId};
use baton_schema::run::RunStatus;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

/// Statuses as stored, from the run machine's enum: a run waiting to be dispatched or retried,
/// sent to an agent, or on one.
const IDLE: &str = RunStatus::Idle.as_str();
const TRIGGERED: &str = RunStatus::Triggered.as_str();
const ON_AGENT: [&str; 3] = [TRIGGERED, RunStatus::Started.as_str(), RunStatus::Running.as_str()];
const UNENDED: [&str; 4] = [IDLE, TRIGGERED, RunStatus::Started.as_str(), RunStatus::Running.as_str()];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = runs)]
pub struct RunRow {
    pub id: RunId,
    pub kind: String,
    pub task_id: Option<TaskId>,
    pub task_name: String,
    pub instance_id: Option<InstanceId>,
    pub group_id: Option<GroupId>,
    pub group_run_id: Option<GroupRunId>,
    pub run_date: NaiveDate,
    pub slot: String,
    #[diesel(deserialize_as = String)]
    pub status: RunStatus,
    pub attempt: i32,
    pub reason: Option<String>,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    pub agent_id: Option<AgentId>,
    pub pid: Option<i64>,
    pub exit_code: Option<i32>,
    pub scheduled_for: Option<NaiveDateTime>,
    pub triggered_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    pub output_truncated_bytes: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// What the run needs to be carried out again (`driver::StoredJob` as JSON).
    pub job: Option<String>,
    /// Who asked another server to terminate it (see `request_terminate`).
    pub terminate_by: Option<String>,
    /// An adhoc run's reach: the instances its agent served when it went (see `Reach`).
    pub adhoc_instances: Option<String>,
}

/// What a new run is made of. `kind` is scheduled, forced or adhoc.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = runs)]
pub struct NewRun {
    pub kind: String,
    pub task_id: Option<TaskId>,
    pub task_name: String,
    pub instance_id: Option<InstanceId>,
    pub group_id: Option<GroupId>,
    pub group_run_id: Option<GroupRunId>,
    pub run_date: NaiveDate,
    pub slot: String,
    #[diesel(serialize_as = String)]
    pub status: RunStatus,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    pub scheduled_for: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub job: Option<String>,
}

/// Whether `create` made the run or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New(RunId),
    Existing(RunId),
}

impl Created {
    pub fn id(self) -> RunId {
        match self {
            Self::New(i) | Self::Existing(i) => i,
        }
    }
}

/// Creates the run for its (task, run date, slot) unless it exists: a second call for the same
/// slot, from a restart or a race, finds the first run instead of making another.
pub fn create(conn: &mut DbConn, new: &NewRun) -> DbResult<Created> {
    let inserted: Vec<RunId> = with_conn!(conn, |c| diesel::insert_into(runs::table)
        .values(new.clone())
        .on_conflict((runs::task_id, runs::run_date, runs::slot))
        .do_nothing()
        .returning(runs::id)
        .get_results(c))?;
    if let Some(id) = inserted.first() {
        return Ok(Created::New(*id));
    }
    let existing: RunId = with_conn!(conn, |c| runs::table
        .filter(runs::task_id.eq(new.task_id).and(runs::run_date.eq(new.run_date)).and(runs::slot.eq(&new.slot)))
        .select(runs::id)
        .first(c))?;
    Ok(Created::Existing(existing))
}

pub fn get(conn: &mut DbConn, id: RunId) -> DbResult<RunRow> {
    Ok(with_conn!(conn, |c| runs::table.find(id).select(RunRow::as_select()).first(c))?)
}

/// The new state of a run after some transitions, written with them in one transaction.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = runs)]
pub struct RunChange {
    #[diesel(serialize_as = String)]
    pub status: RunStatus,
    pub attempt: i32,
    pub reason: Option<Option<String>>,
    pub agent_id: Option<Option<AgentId>>,
    pub pid: Option<Option<i64>>,
    pub exit_code: Option<Option<i32>>,
    pub triggered_at: Option<Option<NaiveDateTime>>,
    pub started_at: Option<Option<NaiveDateTime>>,
    pub ended_at: Option<Option<NaiveDateTime>>,
    pub updated_at: NaiveDateTime,
}

/// What a run must still be for a change computed from it to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: RunStatus,
    pub attempt: i32,
    pub agent_id: Option<AgentId>,
}

/// Applies a change only if the run is still as `expected` (status, attempt and agent): servers
/// sharing the database change a run one at a time, and a server whose view is stale is refused
/// (`Conflict`) instead of overwriting what another stored.
pub fn set_if(conn: &mut DbConn, id: RunId, expected: &Expected, change: &RunChange) -> DbResult<()> {
    let n = with_conn!(conn, |c| {
        let target = runs::table
            .find(id)
            .filter(runs::status.eq(expected.status.as_str()))
            .filter(runs::attempt.eq(expected.attempt))
            .into_boxed();
        let target = match expected.agent_id {
            Some(a) => target.filter(runs::agent_id.eq(a)),
            None => target.filter(runs::agent_id.is_null()),
        };
        diesel::update(runs::table.filter(runs::id.eq_any(target.select(runs::id)))).set(change.clone()).execute(c)
    })?;
    if n == 0 {
        return Err(DbError::Conflict(format!("run {id} changed meanwhile (another server holds it)")));
    }
    Ok(())
}

/// One step of a run: its change, applied only if it is still as `expected`, with the
/// transitions it made, stored by `server` at `now`.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub run_id: RunId,
    pub expected: &'a Expected,
    pub change: &'a RunChange,
    pub transitions: &'a [baton_schema::run::Transition],
    pub server: &'a str,
    pub fence: Option<&'a super::instance_leases::Fence>,
    pub now: DateTime<Utc>,
}

/// Stores a step atomically on its own (one statement on PostgreSQL, see the
/// `baton_advance_run` migration; a transaction, or a savepoint inside the caller's, on SQLite).
/// `Conflict` when the lease is not held or the run changed meanwhile. Returns the `seq` of the
/// first transition stored.
pub fn advance(conn: &mut DbConn, step: &Step<'_>) -> DbResult<i32> {
    match conn {
        DbConn::Pg(c) => advance_pg(c, step),
        DbConn::Sqlite(_) => conn.transaction(|c| {
            if let Some(f) = step.fence {
                f.check(c, step.now)?;
            }
            set_if(c, step.run_id, step.expected, step.change)?;
            super::run_transitions::append(c, step.run_id, step.transitions, step.server)
        }),
    }
}

fn advance_pg(c: &mut PgConnection, step: &Step<'_>) -> DbResult<i32> {
    use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Nullable<Text>)]
        refused: Option<String>,
        #[diesel(sql_type = Nullable<Integer>)]
        first_seq: Option<i32>,
    }
    let (ch, trs) = (step.change, step.transitions);
    let flat = |v: &Option<Option<NaiveDateTime>>| (v.is_some(), v.flatten());
    let (set_triggered, triggered) = flat(&ch.triggered_at);
    let (set_started, started) = flat(&ch.started_at);
    let (set_ended, ended) = flat(&ch.ended_at);
    let steps_from: Vec<&str> = trs.iter().map(|t| t.from.as_str()).collect();
    let steps_to: Vec<&str> = trs.iter().map(|t| t.to.as_str()).collect();
    let attempts: Vec<i32> = trs.iter().map(|t| i32::try_from(t.attempt).unwrap_or(i32::MAX)).collect();
    let at: Vec<NaiveDateTime> = trs.iter().map(|t| ts(t.at)).collect();
    let reasons: Vec<Option<String>> = trs.iter().map(|t| t.reason.as_ref().map(super::to_json)).collect();
    let out: Outcome = diesel::sql_query(
        "SELECT refused, first_seq FROM baton_advance_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)",
    )
    .bind::<BigInt, _>(step.run_id)
    .bind::<Text, _>(step.expected.status.as_str())
    .bind::<Integer, _>(step.expected.attempt)
    .bind::<Nullable<BigInt>, _>(step.expected.agent_id)
    .bind::<Text, _>(ch.status.as_str())
    .bind::<Integer, _>(ch.attempt)
    .bind::<Timestamp, _>(ch.updated_at)
    .bind::<Bool, _>(ch.reason.is_some())
    .bind::<Nullable<Text>, _>(ch.reason.clone().flatten())
    .bind::<Bool, _>(ch.agent_id.is_some())
    .bind::<Nullable<BigInt>, _>(ch.agent_id.flatten())
    .bind::<Bool, _>(ch.pid.is_some())
    .bind::<Nullable<BigInt>, _>(ch.pid.flatten())
    .bind::<Bool, _>(ch.exit_code.is_some())
    .bind::<Nullable<Integer>, _>(ch.exit_code.flatten())
    .bind::<Bool, _>(set_triggered)
    .bind::<Nullable<Timestamp>, _>(triggered)
    .bind::<Bool, _>(set_started)
    .bind::<Nullable<Timestamp>, _>(started)
    .bind::<Bool, _>(set_ended)
    .bind::<Nullable<Timestamp>, _>(ended)
    .bind::<Array<Text>, _>(steps_from)
    .bind::<Array<Text>, _>(steps_to)
    .bind::<Array<Integer>, _>(attempts)
    .bind::<Array<Timestamp>, _>(at)
    .bind::<Array<Nullable<Text>>, _>(reasons)
    .bind::<Text, _>(step.server)
    .bind::<Nullable<BigInt>, _>(step.fence.map(|f| f.instance_id))
    .bind::<Nullable<Text>, _>(step.fence.map(|f| f.owner.as_str()))
    .bind::<Nullable<BigInt>, _>(step.fence.map(|f| f.token))
    .bind::<Timestamp, _>(ts(step.now))
    .get_result(c)?;
    match (out.refused.as_deref(), step.fence) {
        (None, _) => Ok(out.first_seq.unwrap_or(0)),
        (Some("fence"), Some(f)) => Err(super::instance_leases::lost(f.instance_id)),
        _ => Err(DbError::Conflict(format!("run {} changed meanwhile (another server holds it)", step.run_id))),
    }
}

pub fn set(conn: &mut DbConn, id: RunId, change: &RunChange) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(runs::table.find(id)).set(change.clone()).execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Adds to the byte counts of a run's output.
pub fn add_output_bytes(conn: &mut DbConn, id: RunId, stdout: i64, stderr: i64, truncated: i64) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(runs::table.find(id))
        .set((
            runs::stdout_bytes.eq(runs::stdout_bytes + stdout),
            runs::stderr_bytes.eq(runs::stderr_bytes + stderr),
            runs::output_truncated_bytes.eq(runs::output_truncated_bytes + truncated),
        ))
        .execute(c))?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub statuses: Option<Vec<RunStatus>>,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub instance_ids: Option<Vec<InstanceId>>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub run_date: Option<NaiveDate>,
    /// Part of the task's name.
    pub search: Option<String>,
    /// Which adhoc runs (those without an instance) to include.
    pub adhoc: AdhocRuns,
}

/// Which adhoc runs a list includes: they belong to no instance but reach those of their agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AdhocRuns {
    /// All of them (the caller sees every instance and adhoc runs).
    #[default]
    All,
    /// None (the caller may not see adhoc runs).
    None,
    /// Those whose agent served one of these instances, or every instance.
    Reaching(Vec<String>),
}

/// How an adhoc run's reach is stored: `*`, or the names between commas (`,a,b,`).
pub fn reach_text(access: &baton_schema::access::InstanceAccess) -> String {
    match access {
        baton_schema::access::InstanceAccess::All => "*".into(),
        baton_schema::access::InstanceAccess::Only(names) => format!(",{},", names.join(",")),
    }
}

/// The instances an adhoc run reaches, from its stored text (None: not recorded).
pub fn reach_of(text: Option<&str>) -> Option<baton_schema::access::InstanceAccess> {
    match text? {
        "*" => Some(baton_schema::access::InstanceAccess::All),
        t => Some(baton_schema::access::InstanceAccess::Only(
            t.split(',').filter(|n| !n.is_empty()).map(String::from).collect(),
        )),
    }
}

/// Records an adhoc run's reach, in the transaction that made it.
pub fn set_reach(conn: &mut DbConn, id: RunId, access: &baton_schema::access::InstanceAccess) -> DbResult<()> {
    let text = reach_text(access);
    with_conn!(conn, |c| diesel::update(runs::table.find(id)).set(runs::adhoc_instances.eq(&text)).execute(c))?;
    Ok(())
}

macro_rules! filtered {
    ($f:expr) => {{
        let f: &RunFilter = $f;
        let mut q = runs::table.into_boxed();
        // Who may see which runs comes first: the filters after it are ANDed to the whole.
        match (&f.instance_ids, &f.adhoc) {
            (None, AdhocRuns::All) => {}
            (None, _) => q = q.filter(runs::instance_id.is_not_null()),
            (Some(ids), AdhocRuns::Reaching(names)) => {
                q = q.filter(runs::instance_id.eq_any(ids.clone())).or_filter(runs::adhoc_instances.eq("*"));
                for n in names {
                    let escaped = n.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    q = q.or_filter(runs::adhoc_instances.like(format!("%,{escaped},%")).escape('\\'));
                }
            }
            (Some(ids), AdhocRuns::None) => q = q.filter(runs::instance_id.eq_any(ids.clone())),
            (Some(ids), AdhocRuns::All) => {
                q = q.filter(runs::instance_id.eq_any(ids.clone()).or(runs::instance_id.is_null()))
            }
        }
        if let Some(s) = &f.statuses {
            q = q.filter(runs::status.eq_any(s.iter().map(|s| s.as_str())));
        }
        if let Some(t) = f.task_id {
            q = q.filter(runs::task_id.eq(t));
        }
        if let Some(g) = f.group_id {
            q = q.filter(runs::group_id.eq(g));
        }
        if let Some(k) = &f.kind {
            q = q.filter(runs::kind.eq(k.clone()));
        }
        if let Some(since) = f.since {
            q = q.filter(runs::created_at.ge(ts(since)));
        }
        if let Some(d) = f.run_date {
            q = q.filter(runs::run_date.eq(d));
        }
        if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
            q = q.filter(runs::task_name.like(like_pattern(s)).escape('\\'));
        }
        q
    }};
}

/// One page of runs, newest first, before the cursor `before` (a run id).
pub fn page(conn: &mut DbConn, f: &RunFilter, before: Option<RunId>, limit: i64) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = filtered!(f).select(RunRow::as_select()).order(runs::id.desc()).limit(limit);
        if let Some(b) = before {
            q = q.filter(runs::id.lt(b));
        }
        q.load(c)
    })?)
}

pub fn count(conn: &mut DbConn, f: &RunFilter) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| filtered!(f).count().get_result(c))?)
}

/// Counts of runs by status for one run date (the dashboard).
pub fn status_counts(
    conn: &mut DbConn,
    run_date: NaiveDate,
    instance_ids: Option<&[InstanceId]>,
) -> DbResult<Vec<(RunStatus, i64)>> {
    use diesel::dsl::count_star;
    let counts: Vec<(String, i64)> = with_conn!(conn, |c| match instance_ids {
        Some(ids) => runs::table
            .filter(runs::run_date.eq(run_date).and(runs::instance_id.eq_any(ids)))
            .group_by(runs::status)
            .select((runs::status, count_star()))
            .load(c),
        None => runs::table
            .filter(runs::run_date.eq(run_date))
            .group_by(runs::status)
            .select((runs::status, count_star()))
            .load(c),
    })?;
    // The column is checked text: every word is a status.
    Ok(counts.into_iter().filter_map(|(s, n)| RunStatus::try_from(s).ok().map(|s| (s, n))).collect())
}

/// Runs the driver carries on after a restart: those on (or sent to) an agent, those waiting
/// for a retry, and those made but never dispatched outside a group (a grouped run's first
/// attempt is its group's to start).
pub fn unfinished(conn: &mut DbConn) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(
            runs::status
                .eq_any(ON_AGENT)
                .or(runs::status.eq(IDLE).and(runs::attempt.gt(0).or(runs::group_run_id.is_null()))),
        )
        .order(runs::id)
        .select(RunRow::as_select())
        .load(c))?)
}

/// Claims a waiting run (sent while no agent was there) for an agent before it is sent: one
/// server wins, and a restart sends it to that agent again (whose journal accepts an attempt
/// once), never to a second one. False when another claimed it first, or it moved on.
pub fn claim(conn: &mut DbConn, id: RunId, attempt: i32, agent_id: AgentId, now: DateTime<Utc>) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::update(
        runs::table
            .find(id)
            .filter(runs::status.eq(TRIGGERED))
            .filter(runs::attempt.eq(attempt))
            .filter(runs::agent_id.is_null())
    )
    .set((runs::agent_id.eq(agent_id), runs::updated_at.eq(ts(now))))
    .execute(c))?;
    Ok(n == 1)
}

/// Asks whichever server holds an unfinished run to terminate it; false when it is not unfinished.
pub fn request_terminate(conn: &mut DbConn, id: RunId, user: &str, now: DateTime<Utc>) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::update(runs::table.find(id).filter(runs::status.eq_any(UNENDED)))
        .set((runs::terminate_by.eq(Some(user)), runs::updated_at.eq(ts(now))))
        .execute(c))?;
    Ok(n == 1)
}

/// Unfinished runs someone asked to terminate.
pub fn terminate_requested(conn: &mut DbConn) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::terminate_by.is_not_null())
        .filter(runs::status.eq_any(UNENDED))
        .select(RunRow::as_select())
        .load(c))?)
}

/// The request to terminate a run was carried out (or sent to its agent).
pub fn clear_terminate(conn: &mut DbConn, id: RunId) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(runs::table.find(id)).set(runs::terminate_by.eq(None::<String>)).execute(c))?;
    Ok(())
}

/// Runs on (or sent to) one agent: a server that gets the agent's connection takes charge of them.
pub fn on_agent(conn: &mut DbConn, agent_id: AgentId) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::agent_id.eq(agent_id))
        .filter(runs::status.eq_any(ON_AGENT))
        .order(runs::id)
        .select(RunRow::as_select())
        .load(c))?)
}

/// The run queue, as the database holds it: runs waiting for a retry or never dispatched,
/// runs sent while no agent was there, and runs on the given (silent) agents.
pub fn queued(
    conn: &mut DbConn,
    (silent_agents, agents_here): (&[AgentId], &[AgentId]),
    after: RunId,
    limit: i64,
) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::id.gt(after))
        .filter(
            runs::status
                .eq(IDLE)
                .and(runs::attempt.gt(0).or(runs::group_run_id.is_null()))
                .or(runs::status.eq(TRIGGERED).and(runs::agent_id.is_null().or(runs::agent_id.eq_any(agents_here))))
                .or(runs::status.eq_any(ON_AGENT).and(runs::agent_id.eq_any(silent_agents))),
        )
        .order(runs::id)
        .limit(limit)
        .select(RunRow::as_select())
        .load(c))?)
}

/// The latest slot instant since `floor` of one task's scheduled runs (or one group's).
pub fn last_slot_of(
    conn: &mut DbConn,
    task_id: Option<TaskId>,
    group_id: Option<GroupId>,
    floor: DateTime<Utc>,
) -> DbResult<Option<DateTime<Utc>>> {
    use diesel::dsl::max;
    let floor = ts(floor);
    let at: Option<NaiveDateTime> = with_conn!(conn, |c| {
        let mut q = runs::table
            .filter(runs::scheduled_for.ge(floor).and(runs::kind.eq("scheduled")))
            .select(max(runs::scheduled_for))
            .into_boxed();
        q = match (task_id, group_id) {
            (_, Some(g)) => q.filter(runs::group_id.eq(g)),
            (t, None) => q.filter(runs::task_id.eq(t).and(runs::group_id.is_null())),
        };
        q.first(c)
    })?;
    Ok(at.map(super::utc))
}

/// The latest slot instant of scheduled runs since `floor` per ungrouped task: where the engine
/// got to before it stopped, so the slots of a downtime (even across midnight) are handled by the
/// misfire policy.
pub fn last_slots(
    conn: &mut DbConn,
    floor: DateTime<Utc>,
) -> DbResult<std::collections::HashMap<TaskId, DateTime<Utc>>> {
    use diesel::dsl::max;
    let floor = ts(floor);
    let rows: Vec<(Option<TaskId>, Option<NaiveDateTime>)> = with_conn!(conn, |c| runs::table
        .filter(runs::scheduled_for.ge(floor).and(runs::kind.eq("scheduled")).and(runs::group_id.is_null()))
        .group_by(runs::task_id)
        .select((runs::task_id, max(runs::scheduled_for)))
        .load(c))?;
    Ok(rows.into_iter().filter_map(|(id, at)| Some((id?, super::utc(at?)))).collect())
}
/// The runs of one group run, in order of creation.
pub fn of_group_run(conn: &mut DbConn, group_run_id: GroupRunId) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::group_run_id.eq(group_run_id))
        .order(runs::id)
        .select(RunRow::as_select())
        .load(c))?)
}

/// A task's runs of one run date that an operator may freeze (waiting) or unfreeze (frozen).
pub fn of_task_on(conn: &mut DbConn, task_id: TaskId, run_date: NaiveDate, status: RunStatus) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::task_id.eq(task_id).and(runs::run_date.eq(run_date)).and(runs::status.eq(status.as_str())))
        .order(runs::id)
        .select(RunRow::as_select())
        .load(c))?)
}

/// Every run of a task on one run date, in order of creation.
pub fn of_task_on_date(conn: &mut DbConn, task_id: TaskId, run_date: NaiveDate) -> DbResult<Vec<RunRow>> {
    Ok(with_conn!(conn, |c| runs::table
        .filter(runs::task_id.eq(task_id).and(runs::run_date.eq(run_date)))
        .order(runs::id)
        .select(RunRow::as_select())
        .load(c))?)
}
