//! The `api_tokens` table: named tokens for automation clients, with expiry and revocation.

use super::schema::api_tokens;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::{ApiTokenId, UserId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub name: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

pub fn insert(
    conn: &mut DbConn,
    user_id: UserId,
    name: &str,
    token_hash: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DbResult<ApiTokenId> {
    Ok(with_conn!(conn, |c| diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash),
            api_tokens::created_at.eq(ts(now)),
            api_tokens::expires_at.eq(expires_at.map(ts)),
        ))
        .returning(api_tokens::id)
        .get_result(c))?)
}

/// The token with this hash if it is neither revoked nor expired.
pub fn find_live(conn: &mut DbConn, token_hash: &str, now: DateTime<Utc>) -> DbResult<Option<ApiTokenRow>> {
    Ok(with_conn!(conn, |c| api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::revoked_at.is_null())
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(ts(now))))
        .select(ApiTokenRow::as_select())
        .first(c)
        .optional())?)
}

pub fn touch(conn: &mut DbConn, id: ApiTokenId, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(Some(ts(now))))
        .execute(c))?;
    Ok(())
}

pub fn list(conn: &mut DbConn, user_id: Option<UserId>) -> DbResult<Vec<ApiTokenRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = api_tokens::table.order(api_tokens::id).select(ApiTokenRow::as_select()).into_boxed();
        if let Some(u) = user_id {
            q = q.filter(api_tokens::user_id.eq(u));
        }
        q.load(c)
    })?)
}

/// Revokes every live token of a user (their password was reset); how many there were.
pub fn revoke_for_user(conn: &mut DbConn, user_id: UserId, now: DateTime<Utc>) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::update(
        api_tokens::table.filter(api_tokens::user_id.eq(user_id).and(api_tokens::revoked_at.is_null()))
    )
    .set(api_tokens::revoked_at.eq(Some(ts(now))))
    .execute(c))?)
}

pub fn revoke(conn: &mut DbConn, id: ApiTokenId, now: DateTime<Utc>) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(api_tokens::table.find(id).filter(api_tokens::revoked_at.is_null()))
        .set(api_tokens::revoked_at.eq(Some(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
