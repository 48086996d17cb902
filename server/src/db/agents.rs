//! The `agents` table: every agent that ever registered, its last known figures and status.

use super::schema::agents;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::agent::AgentStatus;
use baton_schema::ids::AgentId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agents)]
pub struct AgentRow {
    pub id: AgentId,
    pub name: String,
    pub hostname: String,
    pub queues: String,
    pub version: String,
    pub os: String,
    #[diesel(deserialize_as = String)]
    pub status: AgentStatus,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub uptime_seconds: Option<i64>,
    pub last_acked_seq: i64,
    pub last_seen_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// `*` or the instances whose runs it takes (their tasks' runs and their operators' adhoc runs).
    pub instances: String,
    /// Failed writes to its own state, as its last heartbeat said.
    pub write_failures: i64,
    /// The name of its state (empty from agents before it), see `Hello::incarnation`.
    pub incarnation: String,
    /// Why it is degraded now, as its last heartbeat said (see `AgentStats::degraded`).
    pub degraded: Option<String>,
}

impl AgentRow {
    pub fn queue_list(&self) -> Vec<&str> {
        self.queues.split(',').filter(|q| !q.is_empty()).collect()
    }
}

/// What an agent says about itself when it connects.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub name: &'a str,
    pub hostname: &'a str,
    pub queues: &'a [String],
    pub version: &'a str,
    pub os: &'a str,
    pub incarnation: &'a str,
}

/// Records a (re)connecting agent as ONLINE, creating it on first contact; returns its row and
/// whether it is a new incarnation of an agent known under that name (its state was made anew:
/// a rebuilt host), whose event numbering then starts again (`last_acked_seq` 0).
pub fn register(conn: &mut DbConn, r: &Registration<'_>, now: DateTime<Utc>) -> DbResult<(AgentRow, bool)> {
    super::transaction(conn, |conn| {
        let before: Option<String> = with_conn!(conn, |c| agents::table
            .filter(agents::name.eq(r.name))
            .select(agents::incarnation)
            .first(c)
            .optional())?;
        let reinstalled =
            before.as_deref().is_some_and(|b| !b.is_empty() && !r.incarnation.is_empty() && b != r.incarnation);
        // An agent from before incarnations keeps the one it had.
        let incarnation = if r.incarnation.is_empty() { before.unwrap_or_default() } else { r.incarnation.to_string() };
        let row = upsert(conn, r, &incarnation, now)?;
        if !reinstalled {
            return Ok((row, false));
        }
        let row = with_conn!(conn, |c| diesel::update(agents::table.find(row.id))
            .set(agents::last_acked_seq.eq(0))
            .returning(AgentRow::as_returning())
            .get_result(c))?;
        Ok((row, true))
    })
}

fn upsert(conn: &mut DbConn, r: &Registration<'_>, incarnation: &str, now: DateTime<Utc>) -> DbResult<AgentRow> {
    let queues = r.queues.join(",");
    Ok(with_conn!(conn, |c| diesel::insert_into(agents::table)
        .values((
            agents::name.eq(r.name),
            agents::hostname.eq(r.hostname),
            agents::queues.eq(&queues),
            agents::version.eq(r.version),
            agents::os.eq(r.os),
            agents::status.eq(AgentStatus::Online.as_str()),
            agents::last_seen_at.eq(Some(ts(now))),
            agents::created_at.eq(ts(now)),
            agents::incarnation.eq(incarnation),
        ))
        .on_conflict(agents::name)
        .do_update()
        .set((
            agents::hostname.eq(r.hostname),
            agents::queues.eq(&queues),
            agents::version.eq(r.version),
            agents::os.eq(r.os),
            agents::status.eq(AgentStatus::Online.as_str()),
            agents::last_seen_at.eq(Some(ts(now))),
            agents::incarnation.eq(incarnation),
        ))
        .returning(AgentRow::as_returning())
        .get_result(c))?)
}

/// Agents not seen (registered, heartbeat) since `since`: their runs are lost once it is long enough.
pub fn silent_since(conn: &mut DbConn, since: DateTime<Utc>) -> DbResult<Vec<AgentId>> {
    Ok(with_conn!(conn, |c| agents::table
        .filter(agents::last_seen_at.lt(ts(since)).or(agents::last_seen_at.is_null()))
        .select(agents::id)
        .load(c))?)
}

/// What a heartbeat says of an agent.
#[derive(Debug, Clone)]
pub struct Beat {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub uptime_seconds: i64,
    pub write_failures: i64,
    pub degraded: Option<String>,
}

pub fn heartbeat(conn: &mut DbConn, id: AgentId, beat: Beat, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(agents::table.find(id))
        .set((
            agents::cpu_percent.eq(Some(beat.cpu_percent)),
            agents::memory_percent.eq(Some(beat.memory_percent)),
            agents::uptime_seconds.eq(Some(beat.uptime_seconds)),
            agents::write_failures.eq(beat.write_failures),
            agents::degraded.eq(beat.degraded),
            agents::last_seen_at.eq(Some(ts(now))),
        ))
        .execute(c))?;
    Ok(())
}

pub fn set_status(conn: &mut DbConn, id: AgentId, status: AgentStatus) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(agents::table.find(id)).set(agents::status.eq(status.as_str())).execute(c))?;
    Ok(())
}

/// Marks an agent OFFLINE unless a server has seen it after `seen_until` (it went on to another
/// server sharing the database): false when it was seen since.
pub fn set_offline(conn: &mut DbConn, id: AgentId, seen_until: DateTime<Utc>) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::update(
        agents::table.find(id).filter(agents::last_seen_at.is_null().or(agents::last_seen_at.le(Some(ts(seen_until)))))
    )
    .set(agents::status.eq(AgentStatus::Offline.as_str()))
    .execute(c))?;
    Ok(n == 1)
}

/// Remembers the highest event sequence stored for an agent (what the server acknowledged), of
/// one incarnation: what a connection of an older one stores late does not count for the new.
pub fn set_acked(conn: &mut DbConn, id: AgentId, incarnation: &str, seq: i64) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(
        agents::table.find(id).filter(agents::last_acked_seq.lt(seq)).filter(agents::incarnation.eq(incarnation))
    )
    .set(agents::last_acked_seq.eq(seq))
    .execute(c))?;
    Ok(())
}

/// Sets the instances whose runs the agent takes; false when there is no such agent.
pub fn set_instances(conn: &mut DbConn, name: &str, instances: &str) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::update(agents::table.filter(agents::name.eq(name)))
        .set(agents::instances.eq(instances))
        .execute(c))?;
    Ok(n == 1)
}

/// On server start nothing is connected yet.
pub fn mark_all_offline(conn: &mut DbConn) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::update(agents::table)
        .set(agents::status.eq(AgentStatus::Offline.as_str()))
        .execute(c))?)
}

pub fn list(conn: &mut DbConn) -> DbResult<Vec<AgentRow>> {
    Ok(with_conn!(conn, |c| agents::table.order(agents::name).select(AgentRow::as_select()).load(c))?)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> DbResult<Option<AgentRow>> {
    Ok(with_conn!(conn, |c| agents::table
        .filter(agents::name.eq(name))
        .select(AgentRow::as_select())
        .first(c)
        .optional())?)
}
