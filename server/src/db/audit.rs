//! The `audit_log` table: every mutation and adhoc command, who did it, and what changed.

use super::schema::audit_log;
use super::{ts, with_conn, DbConn, DbResult};
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
}

#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
    pub origin: &'a str,
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
        ))
        .returning(audit_log::id)
        .get_result(c))?)
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// Newest first, before the cursor.
pub fn page(conn: &mut DbConn, f: &AuditFilter, before: Option<i64>, limit: i64) -> DbResult<Vec<AuditRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q =
            audit_log::table.select(AuditRow::as_select()).order(audit_log::id.desc()).limit(limit).into_boxed();
        if let Some(a) = &f.actor {
            q = q.filter(audit_log::actor.eq(a.clone()));
        }
        if let Some(a) = &f.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(audit_log::at.ge(ts(s)));
        }
        if let Some(b) = before {
            q = q.filter(audit_log::id.lt(b));
        }
        q.load(c)
    })?)
}

pub fn count(conn: &mut DbConn, f: &AuditFilter) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| {
        let mut q = audit_log::table.into_boxed();
        if let Some(a) = &f.actor {
            q = q.filter(audit_log::actor.eq(a.clone()));
        }
        if let Some(a) = &f.action {
            q = q.filter(audit_log::action.eq(a.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(audit_log::at.ge(ts(s)));
        }
        q.count().get_result(c)
    })?)
}
