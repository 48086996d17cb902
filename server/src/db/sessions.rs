//! The `sessions` table: browser and client logins (only token hashes are stored).

use super::schema::{sessions, users};
use super::users::UserRow;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConn,
    user_id: UserId,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(sessions::table)
        .values((
            sessions::user_id.eq(user_id),
            sessions::token_hash.eq(token_hash),
            sessions::created_at.eq(ts(now)),
            sessions::expires_at.eq(ts(expires_at)),
            sessions::last_seen_at.eq(ts(now)),
        ))
        .returning(sessions::id)
        .get_result(c))?)
}

/// The user of the unexpired session with this token hash: one statement for the look-up every
/// request makes.
pub fn live_user(conn: &mut DbConn, token_hash: &str, now: DateTime<Utc>) -> DbResult<Option<UserRow>> {
    Ok(with_conn!(conn, |c| sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash).and(sessions::expires_at.gt(ts(now))))
        .select(UserRow::as_select())
        .first(c)
        .optional())?)
}

pub fn delete_by_hash(conn: &mut DbConn, token_hash: &str) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash))).execute(c))?)
}

/// Ends every session of a user (after a role change, a disable or a password change).
pub fn delete_for_user(conn: &mut DbConn, user_id: UserId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(c))?)
}

pub fn delete_expired(conn: &mut DbConn, now: DateTime<Utc>) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(sessions::table.filter(sessions::expires_at.le(ts(now)))).execute(c))?)
}
