//! The `audit_log` table: every mutation and adhoc command, who did it, and what changed.

use super::schema::audit_log;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_value: Option<String>,
    pub after_value: Option<String>,
    pub origin: String,
    /// The instance it is about; none for global things (users, tokens, credentials...).
    pub instance_id: Option<InstanceId>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
    pub origin: &'a str,
    pub instance: Option<InstanceId>,
}

pub fn record(conn: &mut DbConn, e: &AuditEntry<'_>, now: DateTime<Utc>) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(ts(now)),
            audit_log::actor.eq(e.actor),
            audit_log::action.eq(e.action),
            audit_log::target.eq(e.target),
            audit_log::before_value.eq(&e.before),
            audit_log::after_value.eq(&e.after),
            audit_log::origin.eq(e.origin),
            audit_log::instance_id.eq(e.instance),
        ))
        .returning(audit_log::id)
        .get_result(c))?)
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub instance: Option<InstanceId>,
    /// For a caller limited to some instances: only their own entries and those about their
    /// instances.
    pub visible_to: Option<Visible>,
}

/// What a caller limited to some instances may read of the log.
#[derive(Debug, Clone)]
pub struct Visible {
    pub actor: String,
    pub instances: Vec<InstanceId>,
}

/// The filter's conditions on a boxed query of the log.
macro_rules! filtered {
    ($q:expr, $f:expr) => {{
        let (mut q, f) = ($q, $f);
        if let Some(a) = &f.actor {
            q = q.filter(audit_log::actor.eq(a.clone()));
        }
        if let Some(a) = &f.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(audit_log::at.ge(ts(s)));
        }
        if let Some(i) = f.instance {
            q = q.filter(audit_log::instance_id.eq(i));
        }
        if let Some(v) = &f.visible_to {
            q = q.filter(audit_log::actor.eq(v.actor.clone()).or(audit_log::instance_id.eq_any(v.instances.clone())));
        }
        q
    }};
}

/// Newest first, before the cursor.
pub fn page(conn: &mut DbConn, f: &AuditFilter, before: Option<i64>, limit: i64) -> DbResult<Vec<AuditRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = filtered!(
            audit_log::table.select(AuditRow::as_select()).order(audit_log::id.desc()).limit(limit).into_boxed(),
            f
        );
        if let Some(b) = before {
            q = q.filter(audit_log::id.lt(b));
        }
        q.load(c)
    })?)
}

pub fn count(conn: &mut DbConn, f: &AuditFilter) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| filtered!(audit_log::table.into_boxed(), f).count().get_result(c))?)
}
