//! The `agent_tokens` table: enrollment tokens agents authenticate with (only hashes are stored).

use super::schema::agent_tokens;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agent_tokens)]
pub struct AgentTokenRow {
    pub id: i64,
    pub name: String,
    pub token_hash: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConn, name: &str, token_hash: &str, created_by: &str, now: DateTime<Utc>) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(agent_tokens::table)
        .values((
            agent_tokens::name.eq(name),
            agent_tokens::token_hash.eq(token_hash),
            agent_tokens::created_by.eq(created_by),
            agent_tokens::created_at.eq(ts(now)),
        ))
        .returning(agent_tokens::id)
        .get_result(c))?)
}

/// The live (not revoked) token with this hash.
pub fn find_live(conn: &mut DbConn, token_hash: &str) -> DbResult<Option<AgentTokenRow>> {
    Ok(with_conn!(conn, |c| agent_tokens::table
        .filter(agent_tokens::token_hash.eq(token_hash).and(agent_tokens::revoked_at.is_null()))
        .select(AgentTokenRow::as_select())
        .first(c)
        .optional())?)
}

pub fn list(conn: &mut DbConn) -> DbResult<Vec<AgentTokenRow>> {
    Ok(with_conn!(conn, |c| agent_tokens::table.order(agent_tokens::id).select(AgentTokenRow::as_select()).load(c))?)
}

pub fn revoke(conn: &mut DbConn, id: i64, now: DateTime<Utc>) -> DbResult<()> {
    let n =
        with_conn!(conn, |c| diesel::update(agent_tokens::table.find(id).filter(agent_tokens::revoked_at.is_null()))
            .set(agent_tokens::revoked_at.eq(Some(ts(now))))
            .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
