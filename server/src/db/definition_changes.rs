//! The `definition_changes` table: the changes each server publishes, read by the others.

use super::schema::definition_changes;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::definition::ChangeKind;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = definition_changes)]
pub struct ChangeRow {
    pub id: i64,
    #[diesel(deserialize_as = String)]
    pub kind: ChangeKind,
    pub entity_id: i64,
    pub name: String,
    pub instance: String,
    pub action: String,
    pub server: String,
    pub at: NaiveDateTime,
}

/// What a server records of a change it published.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    pub kind: ChangeKind,
    pub entity_id: i64,
    pub name: &'a str,
    pub instance: &'a str,
    pub action: &'a str,
    pub server: &'a str,
}

pub fn record(conn: &mut DbConn, c: &NewChange<'_>, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |conn| diesel::insert_into(definition_changes::table)
        .values((
            definition_changes::kind.eq(c.kind.as_str()),
            definition_changes::entity_id.eq(c.entity_id),
            definition_changes::name.eq(c.name),
            definition_changes::instance.eq(c.instance),
            definition_changes::action.eq(c.action),
            definition_changes::server.eq(c.server),
            definition_changes::at.eq(ts(now)),
        ))
        .execute(conn))?;
    Ok(())
}

pub fn last_id(conn: &mut DbConn) -> DbResult<i64> {
    let id: Option<i64> =
        with_conn!(conn, |c| definition_changes::table.select(diesel::dsl::max(definition_changes::id)).first(c))?;
    Ok(id.unwrap_or(0))
}

/// Changes after `after` published by servers other than `me`, in order; and the newest id read.
pub fn foreign_after(conn: &mut DbConn, after: i64, me: &str, limit: i64) -> DbResult<(i64, Vec<ChangeRow>)> {
    let rows: Vec<ChangeRow> = with_conn!(conn, |c| definition_changes::table
        .filter(definition_changes::id.gt(after))
        .order(definition_changes::id)
        .limit(limit)
        .select(ChangeRow::as_select())
        .load(c))?;
    let last = rows.last().map_or(after, |r| r.id);
    Ok((last, rows.into_iter().filter(|r| r.server != me).collect()))
}

/// Forgets changes older than `before` (the servers that follow them have long read them).
pub fn forget_before(conn: &mut DbConn, before: DateTime<Utc>) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(definition_changes::table.filter(definition_changes::at.lt(ts(before))))
        .execute(c))?)
}
