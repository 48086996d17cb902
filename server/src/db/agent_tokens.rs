//! The `agent_tokens` table: enrollment tokens agents authenticate with (only hashes are stored).

use super::schema::agent_tokens;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::AgentTokenId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agent_tokens)]
pub struct AgentTokenRow {
    pub id: AgentTokenId,
    pub name: String,
    pub token_hash: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// The agent it enrolled (its first registration).
    pub agent_name: Option<String>,
    /// The instances its agent serves when it first registers (its maker's).
    pub instances: String,
    /// The hostname and queues (comma-separated) its agent claimed when it first registered.
    pub hostname: Option<String>,
    pub queues: Option<String>,
}

pub fn insert(
    conn: &mut DbConn,
    name: &str,
    token_hash: &str,
    (created_by, instances): (&str, &str),
    now: DateTime<Utc>,
) -> DbResult<AgentTokenId> {
    Ok(with_conn!(conn, |c| diesel::insert_into(agent_tokens::table)
        .values((
            agent_tokens::instances.eq(instances),
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

pub fn revoke(conn: &mut DbConn, id: AgentTokenId, now: DateTime<Utc>) -> DbResult<()> {
    let n =
        with_conn!(conn, |c| diesel::update(agent_tokens::table.find(id).filter(agent_tokens::revoked_at.is_null()))
            .set(agent_tokens::revoked_at.eq(Some(ts(now))))
            .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Binds the live token `id` to the agent `name` on its first registration: Ok(None) when it is
/// (or already was) bound to that name, Ok(Some(why)) when the token is another agent's or the
/// name is another live token's.
pub fn bind(conn: &mut DbConn, id: AgentTokenId, name: &str) -> DbResult<Option<String>> {
    let token = with_conn!(conn, |c| agent_tokens::table.find(id).select(AgentTokenRow::as_select()).first(c))?;
    match token.agent_name.as_deref() {
        Some(n) if n == name => return Ok(None),
        Some(n) => return Ok(Some(format!("this enrollment token belongs to agent {n}, not {name}"))),
        None => {}
    }
    let holder: Option<i64> = with_conn!(conn, |c| agent_tokens::table
        .filter(agent_tokens::agent_name.eq(name).and(agent_tokens::revoked_at.is_null()))
        .select(agent_tokens::id)
        .first(c)
        .optional())?;
    if holder.is_some() {
        return Ok(Some(format!("agent {name} is enrolled with another token")));
    }
    // The unique index on live tokens' names settles a race between two tokens.
    let bound =
        with_conn!(conn, |c| diesel::update(agent_tokens::table.find(id).filter(agent_tokens::agent_name.is_null()))
            .set(agent_tokens::agent_name.eq(Some(name)))
            .execute(c));
    match bound {
        Ok(1) => Ok(None),
        Ok(_) | Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(Some(format!("agent {name} is enrolled with another token")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds the hostname and queues an agent claims to its token at its first registration; later,
/// a claim beyond them is refused (the reason: `Some`). Targets match hostnames and queues, so
/// an agent is only what its first registration said.
pub fn bind_claims(conn: &mut DbConn, id: AgentTokenId, hostname: &str, queues: &[String]) -> DbResult<Option<String>> {
    let token = with_conn!(conn, |c| agent_tokens::table.find(id).select(AgentTokenRow::as_select()).first(c))?;
    if let Some(bound) = token.hostname.as_deref().filter(|h| *h != hostname) {
        return Ok(Some(format!("this enrollment token is bound to hostname {bound}, not {hostname}")));
    }
    if let Some(bound) = token.queues.as_deref() {
        let allowed: Vec<&str> = bound.split(',').filter(|q| !q.is_empty()).collect();
        let extra: Vec<&str> = queues.iter().map(String::as_str).filter(|q| !allowed.contains(q)).collect();
        if !extra.is_empty() {
            return Ok(Some(format!(
                "queues {} are not this enrollment token's (it was bound to: {bound})",
                extra.join(", ")
            )));
        }
    }
    if token.hostname.is_none() || token.queues.is_none() {
        with_conn!(conn, |c| diesel::update(agent_tokens::table.find(id))
            .set((
                agent_tokens::hostname.eq(token.hostname.as_deref().unwrap_or(hostname)),
                agent_tokens::queues.eq(token.queues.clone().unwrap_or_else(|| queues.join(","))),
            ))
            .execute(c))?;
    }
    Ok(None)
}

/// Of these token ids, those revoked (their agents must go).
pub fn revoked_among(conn: &mut DbConn, ids: &[AgentTokenId]) -> DbResult<Vec<AgentTokenId>> {
    Ok(with_conn!(conn, |c| agent_tokens::table
        .filter(agent_tokens::id.eq_any(ids).and(agent_tokens::revoked_at.is_not_null()))
        .select(agent_tokens::id)
        .load(c))?)
}
