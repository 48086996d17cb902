//! The `dependencies` table: the edges of dependency expressions, for the flow graph.

use super::schema::dependencies;
use super::{with_conn, DbConn, DbResult};
use baton_schema::ids::{GroupId, TaskId};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = dependencies)]
pub struct DependencyRow {
    pub id: i64,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub depends_on_task_id: Option<TaskId>,
    pub depends_on_group_id: Option<GroupId>,
    pub state: String,
}

/// Replaces a task's edges: `(the task it depends on, the state letter)`.
pub fn replace_for_task(conn: &mut DbConn, task_id: TaskId, edges: &[(TaskId, char)]) -> DbResult<()> {
    let rows: Vec<_> = edges
        .iter()
        .map(|(to, st)| {
            (
                dependencies::task_id.eq(task_id),
                dependencies::depends_on_task_id.eq(*to),
                dependencies::state.eq(st.to_string()),
            )
        })
        .collect();
    with_conn!(conn, |c| {
        diesel::delete(dependencies::table.filter(dependencies::task_id.eq(task_id))).execute(c)?;
        if !rows.is_empty() {
            diesel::insert_into(dependencies::table).values(&rows).execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Replaces a group's edges to other groups.
pub fn replace_for_group(conn: &mut DbConn, group_id: GroupId, edges: &[(GroupId, char)]) -> DbResult<()> {
    let rows: Vec<_> = edges
        .iter()
        .map(|(to, st)| {
            (
                dependencies::group_id.eq(group_id),
                dependencies::depends_on_group_id.eq(*to),
                dependencies::state.eq(st.to_string()),
            )
        })
        .collect();
    with_conn!(conn, |c| {
        diesel::delete(dependencies::table.filter(dependencies::group_id.eq(group_id))).execute(c)?;
        if !rows.is_empty() {
            diesel::insert_into(dependencies::table).values(&rows).execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// The edges among the tasks of a group.
pub fn of_tasks(conn: &mut DbConn, task_ids: &[TaskId]) -> DbResult<Vec<DependencyRow>> {
    let mut rows = super::in_chunks(task_ids, |ids| {
        Ok(with_conn!(conn, |c| dependencies::table
            .filter(dependencies::task_id.eq_any(ids))
            .select(DependencyRow::as_select())
            .load(c))?)
    })?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// The edges among groups.
pub fn of_groups(conn: &mut DbConn, group_ids: &[GroupId]) -> DbResult<Vec<DependencyRow>> {
    let mut rows = super::in_chunks(group_ids, |ids| {
        Ok(with_conn!(conn, |c| dependencies::table
            .filter(dependencies::group_id.eq_any(ids))
            .select(DependencyRow::as_select())
            .load(c))?)
    })?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}
