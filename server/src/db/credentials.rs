//! The `credentials` table: secrets under path keys, stored only as ciphertext with their nonce.

use super::schema::credentials;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    pub id: i64,
    pub key: String,
    pub nonce: String,
    pub ciphertext: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The instance it belongs to; none for a global one.
    pub instance_id: Option<InstanceId>,
}

/// A credential without its value.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct KeyRow {
    pub key: String,
    pub version: i64,
    pub updated_at: NaiveDateTime,
    pub instance_id: Option<InstanceId>,
}

/// The sealed form of a value.
pub struct Sealed<'a> {
    pub nonce: &'a str,
    pub ciphertext: &'a str,
}

/// Sets the encrypted value under `key` in `instance` (none: global): a new key at version 1,
/// or a rotation (one more) of the key as it stands in that instance. A key of another instance
/// is never touched, even by two callers racing: it is a `Conflict` and nothing changes.
pub fn put(
    conn: &mut DbConn,
    key: &str,
    sealed: &Sealed<'_>,
    instance: Option<InstanceId>,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    let (nonce, ciphertext) = (sealed.nonce, sealed.ciphertext);
    super::transaction(conn, |conn| {
        // The update locks the row; a rotation of another instance's key is rolled back.
        let rotated: Option<(i64, Option<InstanceId>)> =
            with_conn!(conn, |c| diesel::update(credentials::table.filter(credentials::key.eq(key)))
                .set((
                    credentials::nonce.eq(nonce),
                    credentials::ciphertext.eq(ciphertext),
                    credentials::version.eq(credentials::version + 1),
                    credentials::updated_at.eq(ts(now)),
                ))
                .returning((credentials::version, credentials::instance_id))
                .get_result(c)
                .optional())?;
        match rotated {
            Some((version, owner)) if owner == instance => Ok(version),
            Some(_) => Err(DbError::Conflict(format!("credential {key} exists elsewhere"))),
            None => {
                with_conn!(conn, |c| diesel::insert_into(credentials::table)
                    .values((
                        credentials::key.eq(key),
                        credentials::nonce.eq(nonce),
                        credentials::ciphertext.eq(ciphertext),
                        credentials::version.eq(1),
                        credentials::instance_id.eq(instance),
                        credentials::created_at.eq(ts(now)),
                        credentials::updated_at.eq(ts(now)),
                    ))
                    .execute(c))?;
                Ok(1)
            }
        }
    })
}

pub fn get(conn: &mut DbConn, key: &str) -> DbResult<Option<CredentialRow>> {
    Ok(with_conn!(conn, |c| credentials::table
        .filter(credentials::key.eq(key))
        .select(CredentialRow::as_select())
        .first(c)
        .optional())?)
}

/// Keys only, never values.
pub fn keys(conn: &mut DbConn) -> DbResult<Vec<KeyRow>> {
    Ok(with_conn!(conn, |c| credentials::table.order(credentials::key).select(KeyRow::as_select()).load(c))?)
}

pub fn delete(conn: &mut DbConn, key: &str) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::delete(credentials::table.filter(credentials::key.eq(key))).execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Replaces the sealed form of a value (the master key changed; the value and its version did not).
pub fn reseal(conn: &mut DbConn, key: &str, nonce: &str, ciphertext: &str) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(credentials::table.filter(credentials::key.eq(key)))
        .set((credentials::nonce.eq(nonce), credentials::ciphertext.eq(ciphertext)))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
