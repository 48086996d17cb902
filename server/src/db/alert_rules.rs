//! The `alert_rules` table: who is told what when a task or group does something.

use super::schema::alert_rules;
use super::{from_json, to_json, with_conn, DbConn, DbResult};
use baton_schema::definition::{AlertRule, AlertRuleDraft, AlertTrigger};
use baton_schema::ids::{GroupId, TaskId};
use diesel::prelude::*;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_rules)]
pub struct AlertRuleRow {
    pub id: i64,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub trigger_on: String,
    pub integration: String,
    pub message: Option<String>,
    pub position: i32,
}

impl AlertRuleRow {
    pub fn to_rule(&self) -> DbResult<AlertRule> {
        Ok(AlertRule {
            trigger: from_json::<AlertTrigger>("alert trigger", &self.trigger_on)?,
            integration: self.integration.clone(),
            message: self.message.clone(),
        })
    }

    pub fn to_draft(&self) -> DbResult<AlertRuleDraft> {
        Ok(self.to_rule()?.to_draft())
    }
}

/// The owner of a set of rules.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    Task(TaskId),
    Group(GroupId),
}

pub fn replace(conn: &mut DbConn, owner: Owner, rules: &[AlertRule]) -> DbResult<()> {
    let (task_id, group_id) = match owner {
        Owner::Task(t) => (Some(t), None),
        Owner::Group(g) => (None, Some(g)),
    };
    let rows: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                alert_rules::task_id.eq(task_id),
                alert_rules::group_id.eq(group_id),
                alert_rules::trigger_on.eq(to_json(&r.trigger)),
                alert_rules::integration.eq(r.integration.clone()),
                alert_rules::message.eq(r.message.clone()),
                alert_rules::position.eq(i32::try_from(i).unwrap_or(i32::MAX)),
            )
        })
        .collect();
    with_conn!(conn, |c| {
        match owner {
            Owner::Task(t) => diesel::delete(alert_rules::table.filter(alert_rules::task_id.eq(t))).execute(c)?,
            Owner::Group(g) => diesel::delete(alert_rules::table.filter(alert_rules::group_id.eq(g))).execute(c)?,
        };
        if !rows.is_empty() {
            diesel::insert_into(alert_rules::table).values(&rows).execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

pub fn of(conn: &mut DbConn, owner: Owner) -> DbResult<Vec<AlertRuleRow>> {
    Ok(with_conn!(conn, |c| {
        let q = alert_rules::table.select(AlertRuleRow::as_select()).order(alert_rules::position).into_boxed();
        match owner {
            Owner::Task(t) => q.filter(alert_rules::task_id.eq(t)).load(c),
            Owner::Group(g) => q.filter(alert_rules::group_id.eq(g)).load(c),
        }
    })?)
}

/// The rules of many tasks in a few queries, by task.
pub fn of_tasks(conn: &mut DbConn, ids: &[TaskId]) -> DbResult<HashMap<TaskId, Vec<AlertRuleRow>>> {
    let rows = super::in_chunks(ids, |ids| {
        Ok(with_conn!(conn, |c| alert_rules::table
            .filter(alert_rules::task_id.eq_any(ids))
            .select(AlertRuleRow::as_select())
            .load(c))?)
    })?;
    Ok(by_owner(rows, |r| r.task_id))
}

/// The rules of many groups in a few queries, by group.
pub fn of_groups(conn: &mut DbConn, ids: &[GroupId]) -> DbResult<HashMap<GroupId, Vec<AlertRuleRow>>> {
    let rows = super::in_chunks(ids, |ids| {
        Ok(with_conn!(conn, |c| alert_rules::table
            .filter(alert_rules::group_id.eq_any(ids))
            .select(AlertRuleRow::as_select())
            .load(c))?)
    })?;
    Ok(by_owner(rows, |r| r.group_id))
}

/// Rules by their owner, each owner's in their order.
fn by_owner<I: Eq + Hash>(
    rows: Vec<AlertRuleRow>,
    owner: impl Fn(&AlertRuleRow) -> Option<I>,
) -> HashMap<I, Vec<AlertRuleRow>> {
    let mut out: HashMap<I, Vec<AlertRuleRow>> = HashMap::new();
    for r in rows {
        if let Some(o) = owner(&r) {
            out.entry(o).or_default().push(r);
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|r| (r.position, r.id));
    }
    out
}

/// Every rule with a deadline trigger (not_started_by, still_running_at, longer_than).
pub fn with_deadlines(conn: &mut DbConn) -> DbResult<Vec<AlertRuleRow>> {
    Ok(with_conn!(conn, |c| alert_rules::table
        .filter(
            alert_rules::trigger_on
                .like("%not_started_by%")
                .or(alert_rules::trigger_on.like("%still_running_at%"))
                .or(alert_rules::trigger_on.like("%longer_than%"))
        )
        .order(alert_rules::id)
        .select(AlertRuleRow::as_select())
        .load(c))?)
}

/// How many rules name this integration.
pub fn count_naming(conn: &mut DbConn, integration: &str) -> DbResult<i64> {
    Ok(with_conn!(conn, |c| alert_rules::table.filter(alert_rules::integration.eq(integration)).count().get_result(c))?)
}

/// The names of the tasks that have at least one rule.
pub fn task_names_with_rules(conn: &mut DbConn) -> DbResult<std::collections::HashSet<String>> {
    use super::schema::tasks;
    let names: Vec<String> = with_conn!(conn, |c| alert_rules::table
        .inner_join(tasks::table.on(alert_rules::task_id.eq(tasks::id.nullable())))
        .select(tasks::name)
        .distinct()
        .load(c))?;
    Ok(names.into_iter().collect())
}
