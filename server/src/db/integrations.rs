//! The `integrations` table: alert channels; their secrets live in `credentials`, referenced by key.

use super::schema::integrations;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::{InstanceId, IntegrationId};
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
    /// The instance it belongs to; none for a global one.
    pub instance_id: Option<InstanceId>,
}

/// What an integration is stored as, besides its name.
pub struct Stored<'a> {
    pub kind: &'a str,
    pub config: &'a str,
    pub credential_key: Option<&'a str>,
}

pub fn insert(
    conn: &mut DbConn,
    name: &str,
    s: &Stored<'_>,
    instance: Option<InstanceId>,
    now: DateTime<Utc>,
) -> DbResult<IntegrationId> {
    Ok(with_conn!(conn, |c| diesel::insert_into(integrations::table)
        .values((
            integrations::name.eq(name),
            integrations::kind.eq(s.kind),
            integrations::config.eq(s.config),
            integrations::credential_key.eq(s.credential_key),
            integrations::instance_id.eq(instance),
            integrations::created_at.eq(ts(now)),
            integrations::updated_at.eq(ts(now)),
        ))
        .returning(integrations::id)
        .get_result(c))?)
}

pub fn update(conn: &mut DbConn, id: IntegrationId, s: &Stored<'_>, now: DateTime<Utc>) -> DbResult<()> {
    let n = with_conn!(conn, |c| diesel::update(integrations::table.find(id))
        .set((
            integrations::kind.eq(s.kind),
            integrations::config.eq(s.config),
            integrations::credential_key.eq(s.credential_key),
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
