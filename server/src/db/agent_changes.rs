//! The `agent_changes` table: agents going online or offline as each server sees them, read by
//! the other servers for their `agentEvents` subscribers.

use super::schema::agent_changes;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::agent::AgentStatus;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agent_changes)]
pub struct AgentChangeRow {
    pub id: i64,
    pub name: String,
    #[diesel(deserialize_as = String)]
    pub status: AgentStatus,
    pub server: String,
    pub at: NaiveDateTime,
}

pub fn record(conn: &mut DbConn, name: &str, status: AgentStatus, server: &str, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::insert_into(agent_changes::table)
        .values((
            agent_changes::name.eq(name),
            agent_changes::status.eq(status.as_str()),
            agent_changes::server.eq(server),
            agent_changes::at.eq(ts(now)),
        ))
        .execute(c))?;
    Ok(())
}

pub fn last_id(conn: &mut DbConn) -> DbResult<i64> {
    let id: Option<i64> =
        with_conn!(conn, |c| agent_changes::table.select(diesel::dsl::max(agent_changes::id)).first(c))?;
    Ok(id.unwrap_or(0))
}

/// Changes after `after` seen by servers other than `me`, in order; and the newest id read.
pub fn foreign_after(conn: &mut DbConn, after: i64, me: &str, limit: i64) -> DbResult<(i64, Vec<AgentChangeRow>)> {
    let rows: Vec<AgentChangeRow> = with_conn!(conn, |c| agent_changes::table
        .filter(agent_changes::id.gt(after))
        .order(agent_changes::id)
        .limit(limit)
        .select(AgentChangeRow::as_select())
        .load(c))?;
    let last = rows.last().map_or(after, |r| r.id);
    Ok((last, rows.into_iter().filter(|r| r.server != me).collect()))
}

/// Forgets changes older than `before` (the servers that follow them have long read them).
pub fn forget_before(conn: &mut DbConn, before: DateTime<Utc>) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(agent_changes::table.filter(agent_changes::at.lt(ts(before)))).execute(c))?)
}
