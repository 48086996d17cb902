//! The `instances` table: namespaces of tasks and groups (`default` always exists).

use super::schema::instances;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = instances)]
pub struct InstanceRow {
    pub id: InstanceId,
    pub name: String,
    pub description: String,
    pub created_at: NaiveDateTime,
}

pub fn list(conn: &mut DbConn) -> DbResult<Vec<InstanceRow>> {
    Ok(with_conn!(conn, |c| instances::table.order(instances::name).select(InstanceRow::as_select()).load(c))?)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> DbResult<Option<InstanceRow>> {
    Ok(with_conn!(conn, |c| instances::table
        .filter(instances::name.eq(name))
        .select(InstanceRow::as_select())
        .first(c)
        .optional())?)
}

pub fn get(conn: &mut DbConn, id: InstanceId) -> DbResult<InstanceRow> {
    Ok(with_conn!(conn, |c| instances::table.find(id).select(InstanceRow::as_select()).first(c))?)
}

/// The instance of that name, created if it does not exist yet.
pub fn ensure(conn: &mut DbConn, name: &str, now: DateTime<Utc>) -> DbResult<InstanceRow> {
    if let Some(row) = by_name(conn, name)? {
        return Ok(row);
    }
    Ok(with_conn!(conn, |c| diesel::insert_into(instances::table)
        .values((instances::name.eq(name), instances::description.eq(""), instances::created_at.eq(ts(now))))
        .returning(InstanceRow::as_returning())
        .get_result(c))?)
}

pub fn set_description(conn: &mut DbConn, id: InstanceId, description: &str) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(instances::table.find(id))
        .set(instances::description.eq(description))
        .execute(c))?;
    Ok(())
}
