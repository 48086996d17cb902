//! The `users` table: accounts, their role, their instances, and whether they are disabled.

use super::schema::users;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    /// `*` or a comma-separated list of instance names.
    pub instances: String,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    role: &str,
    instances: &str,
    now: DateTime<Utc>,
) -> DbResult<UserId> {
    Ok(with_conn!(conn, |c| diesel::insert_into(users::table)
        .values((
            users::username.eq(username),
            users::password_hash.eq(password_hash),
            users::role.eq(role),
            users::instances.eq(instances),
            users::disabled.eq(false),
            users::created_at.eq(ts(now)),
            users::updated_at.eq(ts(now)),
        ))
        .returning(users::id)
        .get_result(c))?)
}

pub fn by_username(conn: &mut DbConn, username: &str) -> DbResult<Option<UserRow>> {
    Ok(with_conn!(conn, |c| users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(c)
        .optional())?)
}

pub fn get(conn: &mut DbConn, id: UserId) -> DbResult<UserRow> {
    Ok(with_conn!(conn, |c| users::table.find(id).select(UserRow::as_select()).first(c))?)
}

pub fn list(conn: &mut DbConn) -> DbResult<Vec<UserRow>> {
    Ok(with_conn!(conn, |c| users::table.order(users::username).select(UserRow::as_select()).load(c))?)
}

pub fn count(conn: &mut DbConn) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| users::table.count().get_result(c))?)
}

/// Changes role, instances and disabled flag together.
pub fn update_access(
    conn: &mut DbConn,
    id: UserId,
    role: &str,
    instances: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set((
            users::role.eq(role),
            users::instances.eq(instances),
            users::disabled.eq(disabled),
            users::updated_at.eq(ts(now))
        ))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn set_password(conn: &mut DbConn, id: UserId, password_hash: &str, now: DateTime<Utc>) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set((users::password_hash.eq(password_hash), users::updated_at.eq(ts(now))))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
