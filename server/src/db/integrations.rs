//! The `integrations` table: alert channels; their secrets live in `credentials`, referenced by key.

use super::schema::integrations;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::IntegrationId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = integrations)]
pub struct IntegrationRow {
    pub id: IntegrationId,
    pub name: String,
    /// webhook, slack, teams, discord, email, pagerduty
    pub kind: String,
    /// Non-secret settings as JSON (method, headers, SMTP host...).
    pub config: String,
    pub credential_key: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConn,
    name: &str,
    kind: &str,
    config: &str,
    credential_key: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<IntegrationId> {
    Ok(with_conn!(conn, |c| diesel::insert_into(integrations::table)
        .values((
            integrations::name.eq(name),
            integrations::kind.eq(kind),
            integrations::config.eq(config),
            integrations::credential_key.eq(credential_key),
            integrations::created_at.eq(ts(now)),
            integrations::updated_at.eq(ts(now)),
        ))
        .returning(integrations::id)
        .get_result(c))?)
}

pub fn update(
    conn: &mut DbConn,
    id: IntegrationId,
    kind: &str,
    config: &str,
    credential_key: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(integrations::table.find(id))
        .set((
            integrations::kind.eq(kind),
            integrations::config.eq(config),
            integrations::credential_key.eq(credential_key),
            integrations::updated_at.eq(ts(now))
        ))
        .execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn list(conn: &mut DbConn) -> DbResult<Vec<IntegrationRow>> {
    Ok(with_conn!(conn, |c| integrations::table.order(integrations::name).select(IntegrationRow::as_select()).load(c))?)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> DbResult<Option<IntegrationRow>> {
    Ok(with_conn!(conn, |c| integrations::table
        .filter(integrations::name.eq(name))
        .select(IntegrationRow::as_select())
        .first(c)
        .optional())?)
}

pub fn delete(conn: &mut DbConn, id: IntegrationId) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::delete(integrations::table.find(id)).execute(c))?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
