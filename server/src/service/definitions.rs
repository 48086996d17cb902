//! Tasks, groups, calendars and flow graphs: validated against their instance, written with their
//! dependency edges and alert rules in one transaction, audited, and published.

use super::{audit_in, check_instance_id, instance_for, visible_instances, Found, Services, SvcResult};
use crate::db::{self, to_json, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::calendar::{Calendar, CalendarDraft};
use baton_schema::definition::{GroupDef, GroupDraft, TaskDef, TaskDraft};
use baton_schema::dependency::{check_graph, DependencyExpr};
use baton_schema::ids::{GroupId, InstanceId, TaskId};
use baton_schema::{FieldError, FieldErrors};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// Builds full task records (instance and group names, alert rules) for rows, in a few queries.
pub(crate) fn task_records(c: &mut DbConn, rows: Vec<db::tasks::TaskRow>) -> SvcResult<Vec<TaskRecord>> {
    let instances: HashMap<InstanceId, String> = db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
    let mut group_ids: Vec<GroupId> = rows.iter().filter_map(|r| r.group_id).collect();
    group_ids.sort_unstable();
    group_ids.dedup();
    let groups: HashMap<GroupId, String> =
        db::groups::get_many(c, &group_ids)?.into_iter().map(|g| (g.id, g.name)).collect();
    let ids: Vec<TaskId> = rows.iter().map(|r| r.id).collect();
    let mut alerts = db::alert_rules::of_tasks(c, &ids)?;
    rows.into_iter()
        .map(|r| {
            let rules =
                alerts.remove(&r.id).unwrap_or_default().iter().map(|a| a.to_draft()).collect::<Result<Vec<_>, _>>()?;
            let instance = instances.get(&r.instance_id).cloned().unwrap_or_default();
            let group = r.group_id.and_then(|g| groups.get(&g).cloned());
            Ok(TaskRecord {
                draft: r.to_draft(&instance, group.as_deref(), rules)?,
                instance_id: r.instance_id,
                group_id: r.group_id,
                version: r.version,
                created_at: db::utc(r.created_at),
                updated_at: db::utc(r.updated_at),
            })
        })
        .collect()
}

pub(crate) fn group_records(c: &mut DbConn, rows: Vec<db::groups::GroupRow>) -> SvcResult<Vec<GroupRecord>> {
    let instances: HashMap<InstanceId, String> = db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
    let ids: Vec<GroupId> = rows.iter().map(|r| r.id).collect();
    let mut alerts = db::alert_rules::of_groups(c, &ids)?;
    rows.into_iter()
        .map(|r| {
            let rules =
                alerts.remove(&r.id).unwrap_or_default().iter().map(|a| a.to_draft()).collect::<Result<Vec<_>, _>>()?;
            let instance = instances.get(&r.instance_id).cloned().unwrap_or_default();
            Ok(GroupRecord {
                draft: r.to_draft(&instance, rules)?,
                instance_id: r.instance_id,
                version: r.version,
                created_at: db::utc(r.created_at),
                updated_at: db::utc(r.updated_at),
            })
        })
        .collect()
}

fn parse_expr(raw: &Option<String>) -> Option<DependencyExpr> {
    raw.as_deref().and_then(|s| DependencyExpr::parse(s).ok())
}

/// Checks what a task needs from its instance and returns its group's id: the group exists, the
/// calendar exists, dependency names exist in the group with no cycle, and a rename breaks no one.
pub(crate) fn check_task_context(
    c: &mut DbConn,
    t: &TaskDef,
    instance_id: InstanceId,
    self_tid: Option<TaskId>,
    writer: &Principal,
) -> SvcResult<Option<GroupId>> {
    let mut errors = FieldErrors::new();
    if let Some(cal) = t.schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
        if db::calendars::by_name(c, instance_id, cal.as_str())?.is_none() {
            errors.push(FieldError::new(
                "schedule.calendar",
                "unknown_calendar",
                format!("no calendar {cal} in instance {}", t.instance),
            ));
        }
    }
    let old = match self_tid {
        Some(tid) => Some(db::tasks::get(c, tid)?),
        None => None,
    };
    let group_id = match &t.group {
        Some(g) => match db::groups::by_name(c, instance_id, g.as_str())? {
            Some(row) => Some(row.id),
            None => {
                errors.push(FieldError::new(
                    "group",
                    "unknown_group",
                    format!("no group {g} in instance {}", t.instance),
                ));
                None
            }
        },
        None => None,
    };
    // Tasks that depend on this one by its old name, in its old group.
    if let Some(old) = &old {
        if old.name != t.name.as_str() || old.group_id != group_id {
            if let Some(og) = old.group_id {
                for other in db::tasks::in_group(c, og)?.into_iter().filter(|o| o.id != old.id) {
                    if parse_expr(&other.dependency).is_some_and(|e| e.names().contains(&old.name.as_str())) {
                        errors.push(FieldError::new(
                            "name",
                            "still_referenced",
                            format!("{} depends on {}; change that dependency first", other.name, old.name),
                        ));
                    }
                }
            }
        }
    }
    if let Some(gid) = group_id {
        let mut nodes: BTreeMap<String, Option<DependencyExpr>> = BTreeMap::new();
        for other in db::tasks::in_group(c, gid)?.into_iter().filter(|o| Some(o.id) != self_tid) {
            let expr = parse_expr(&other.dependency);
            nodes.insert(other.name, expr);
        }
        nodes.insert(t.name.to_string(), t.dependency.clone());
        if let Err(e) = check_graph(&nodes) {
            errors.push(e.into_field_error());
        }
    }
    super::alerting::check_references(c, &t.alerts, Some(&t.profile), instance_id, writer, &mut errors)?;
    if errors.is_empty() {
        Ok(group_id)
    } else {
        Err(errors.into())
    }
}

/// Replaces a task's dependency edges from its expression (names resolved within its group).
pub(crate) fn write_task_edges(
    c: &mut DbConn,
    tid: TaskId,
    group_id: Option<GroupId>,
    dep: Option<&DependencyExpr>,
) -> SvcResult<()> {
    let mut edges = Vec::new();
    if let (Some(gid), Some(expr)) = (group_id, dep) {
        let ids: HashMap<String, TaskId> = db::tasks::in_group(c, gid)?.into_iter().map(|t| (t.name, t.id)).collect();
        collect_edges(expr, &ids, &mut edges);
    }
    db::dependencies::replace_for_task(c, tid, &edges)?;
    Ok(())
}

fn collect_edges<I: Copy + PartialEq>(expr: &DependencyExpr, ids: &HashMap<String, I>, out: &mut Vec<(I, char)>) {
    match expr {
        DependencyExpr::State { state, name } => {
            if let Some(id) = ids.get(name) {
                if !out.contains(&(*id, state.letter())) {
                    out.push((*id, state.letter()));
                }
            }
        }
        DependencyExpr::And(a, b) | DependencyExpr::Or(a, b) => {
            collect_edges(a, ids, out);
            collect_edges(b, ids, out);
        }
    }
}

/// Checks a group against its instance: calendar, dependency names among groups, no cycle.
pub(crate) fn check_group_context(
    c: &mut DbConn,
    g: &GroupDef,
    instance_id: InstanceId,
    self_gid: Option<GroupId>,
    writer: &Principal,
) -> SvcResult<()> {
    let mut errors = FieldErrors::new();
    if let Some(cal) = g.schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
        if db::calendars::by_name(c, instance_id, cal.as_str())?.is_none() {
            errors.push(FieldError::new(
                "schedule.calendar",
                "unknown_calendar",
                format!("no calendar {cal} in instance {}", g.instance),
            ));
        }
    }
    if let Some(gid) = self_gid {
        let old = db::groups::get(c, gid)?;
        if old.instance_id != instance_id && !db::tasks::in_group(c, gid)?.is_empty() {
            errors.push(FieldError::new("instance", "has_tasks", "a group with tasks cannot move to another instance"));
        }
        if old.name != g.name.as_str() {
            for other in db::groups::in_instance(c, old.instance_id)?.into_iter().filter(|o| o.id != gid) {
                if parse_expr(&other.dependency).is_some_and(|e| e.names().contains(&old.name.as_str())) {
                    errors.push(FieldError::new(
                        "name",
                        "still_referenced",
                        format!("group {} depends on {}", other.name, old.name),
                    ));
                }
            }
        }
    }
    let mut nodes: BTreeMap<String, Option<DependencyExpr>> = BTreeMap::new();
    for other in db::groups::in_instance(c, instance_id)?.into_iter().filter(|o| Some(o.id) != self_gid) {
        let expr = parse_expr(&other.dependency);
        nodes.insert(other.name, expr);
    }
    nodes.insert(g.name.to_string(), g.dependency.clone());
    if let Err(e) = check_graph(&nodes) {
        errors.push(e.into_field_error());
    }
    super::alerting::check_references(c, &g.alerts, None, instance_id, writer, &mut errors)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}

pub(crate) fn write_group_edges(
    c: &mut DbConn,
    gid: GroupId,
    instance_id: InstanceId,
    dep: Option<&DependencyExpr>,
) -> SvcResult<()> {
    let mut edges = Vec::new();
    if let Some(expr) = dep {
        let ids: HashMap<String, GroupId> =
            db::groups::in_instance(c, instance_id)?.into_iter().map(|g| (g.name, g.id)).collect();
        collect_edges(expr, &ids, &mut edges);
    }
    db::dependencies::replace_for_group(c, gid, &edges)?;
    Ok(())
}

fn not_found(what: &str) -> super::SvcError {
    ApiError::NotFound(what.into()).into()
}

impl Services {
    pub(super) async fn save_task(
        &self,
        p: &Principal,
        tid: Option<TaskId>,
        draft: TaskDraft,
    ) -> BackendResult<TaskRecord> {
        let now = self.now();
        let p = p.clone();
        let (record, instance) = self
            .run(move |c| {
                let def = TaskDef::parse(&draft)?;
                db::transaction(c, |c| {
                    let before = match tid {
                        Some(t) => {
                            let row = db::tasks::get(c, t).found("task")?;
                            check_instance_id(c, &p, row.instance_id).found("task")?;
                            Some(task_records(c, vec![row])?.remove(0))
                        }
                        None => None,
                    };
                    let inst = instance_for(c, &p, def.instance.as_str())?;
                    let group_id = check_task_context(c, &def, inst.id, tid, &p)?;
                    let id = match tid {
                        Some(t) => {
                            db::tasks::update(c, t, inst.id, group_id, &TaskDef { tid: Some(t), ..def.clone() }, now)
                                .map_err(|e| conflict_as_name(e, &def.name.to_string(), &inst.name))?;
                            t
                        }
                        None => db::tasks::insert(c, inst.id, group_id, &TaskDef { tid: None, ..def.clone() }, now)
                            .map_err(|e| conflict_as_name(e, &def.name.to_string(), &inst.name))?,
                    };
                    write_task_edges(c, id, group_id, def.dependency.as_ref())?;
                    db::alert_rules::replace(c, db::alert_rules::Owner::Task(id), &def.alerts)?;
                    let after = {
                        let rows = db::tasks::get(c, id)?;
                        task_records(c, vec![rows])
                    }?
                    .remove(0);
                    let action = if tid.is_some() { "updateTask" } else { "createTask" };
                    audit_in(
                        c,
                        now,
                        Some(inst.id),
                        &p.username,
                        action,
                        &format!("task {id} {}", def.name),
                        before.map(|b| to_json(&b.draft)),
                        Some(to_json(&after.draft)),
                    )?;
                    Ok((after, inst.name))
                })
            })
            .await?;
        let action = if tid.is_some() { "updated" } else { "created" };
        self.publish(ChangeKind::Task, record.draft.tid.map_or(0, |t| t.0), &record.draft.name, &instance, action);
        Ok(record)
    }

    pub(super) async fn save_group(
        &self,
        p: &Principal,
        gid: Option<GroupId>,
        draft: GroupDraft,
    ) -> BackendResult<GroupRecord> {
        let now = self.now();
        let p = p.clone();
        let (record, instance) = self
            .run(move |c| {
                let def = GroupDef::parse(&draft)?;
                db::transaction(c, |c| {
                    let before = match gid {
                        Some(g) => {
                            let row = db::groups::get(c, g).found("group")?;
                            check_instance_id(c, &p, row.instance_id).found("group")?;
                            Some(group_records(c, vec![row])?.remove(0))
                        }
                        None => None,
                    };
                    let inst = instance_for(c, &p, def.instance.as_str())?;
                    check_group_context(c, &def, inst.id, gid, &p)?;
                    let id = match gid {
                        Some(g) => {
                            db::groups::update(c, g, inst.id, &def, now)
                                .map_err(|e| conflict_as_name(e, &def.name.to_string(), &inst.name))?;
                            g
                        }
                        None => db::groups::insert(c, inst.id, &GroupDef { gid: None, ..def.clone() }, now)
                            .map_err(|e| conflict_as_name(e, &def.name.to_string(), &inst.name))?,
                    };
                    write_group_edges(c, id, inst.id, def.dependency.as_ref())?;
                    db::alert_rules::replace(c, db::alert_rules::Owner::Group(id), &def.alerts)?;
                    let after = {
                        let rows = db::groups::get(c, id)?;
                        group_records(c, vec![rows])
                    }?
                    .remove(0);
                    let action = if gid.is_some() { "updateGroup" } else { "createGroup" };
                    audit_in(
                        c,
                        now,
                        Some(inst.id),
                        &p.username,
                        action,
                        &format!("group {id} {}", def.name),
                        before.map(|b| to_json(&b.draft)),
                        Some(to_json(&after.draft)),
                    )?;
                    Ok((after, inst.name))
                })
            })
            .await?;
        let action = if gid.is_some() { "updated" } else { "created" };
        self.publish(ChangeKind::Group, record.draft.gid.map_or(0, |g| g.0), &record.draft.name, &instance, action);
        Ok(record)
    }
}

/// A unique-name violation, said in the user's words.
fn conflict_as_name(e: db::DbError, name: &str, instance: &str) -> super::SvcError {
    match e {
        db::DbError::Conflict(_) => ApiError::Conflict(format!("{name} already exists in instance {instance}")).into(),
        other => other.into(),
    }
}

#[async_trait]
impl baton_graphql::Definitions for Services {
    async fn tasks(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<TaskRecord>> {
        let (p, f) = (p.clone(), f.clone());
        self.run(move |c| {
            let mut filter = db::tasks::TaskFilter {
                instance_ids: visible_instances(c, &p.instances)?,
                group_id: f.group_id,
                active: f.active,
                search: f.search.clone(),
                ..Default::default()
            };
            if let Some(name) = &f.instance {
                let inst = instance_for(c, &p, name)?;
                filter.instance_ids = Some(vec![inst.id]);
            }
            let mut rows = db::tasks::page(c, &filter, page.after.map(TaskId), page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::tasks::count(c, &filter)?;
            Ok(Page { items: task_records(c, rows)?, total, has_next })
        })
        .await
    }

    async fn task(&self, p: &Principal, tid: TaskId) -> BackendResult<TaskRecord> {
        let p = p.clone();
        self.run(move |c| {
            let row = db::tasks::get(c, tid).found("task")?;
            check_instance_id(c, &p, row.instance_id).found("task")?;
            Ok(task_records(c, vec![row])?.remove(0))
        })
        .await
    }

    async fn create_task(&self, p: &Principal, draft: TaskDraft) -> BackendResult<TaskRecord> {
        self.save_task(p, None, draft).await
    }

    async fn update_task(&self, p: &Principal, tid: TaskId, draft: TaskDraft) -> BackendResult<TaskRecord> {
        self.save_task(p, Some(tid), draft).await
    }

    async fn delete_task(&self, p: &Principal, tid: TaskId) -> BackendResult<bool> {
        let now = self.now();
        let p = p.clone();
        let (name, instance) = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let row = db::tasks::get(c, tid).found("task")?;
                    let instance = check_instance_id(c, &p, row.instance_id).found("task")?;
                    let before = task_records(c, vec![row.clone()])?.remove(0);
                    db::tasks::delete(c, tid).map_err(|e| match e {
                        db::DbError::Conflict(_) => {
                            ApiError::Conflict(format!("other tasks depend on {}", row.name)).into()
                        }
                        other => super::SvcError::from(other),
                    })?;
                    audit_in(
                        c,
                        now,
                        Some(row.instance_id),
                        &p.username,
                        "deleteTask",
                        &format!("task {tid} {}", row.name),
                        Some(to_json(&before.draft)),
                        None,
                    )?;
                    Ok((row.name, instance))
                })
            })
            .await?;
        self.publish(ChangeKind::Task, tid.0, &name, &instance, "deleted");
        Ok(true)
    }

    async fn set_task_active(&self, p: &Principal, tid: TaskId, active: bool) -> BackendResult<TaskRecord> {
        let now = self.now();
        let p = p.clone();
        let (record, instance) = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let row = db::tasks::get(c, tid).found("task")?;
                    let instance = check_instance_id(c, &p, row.instance_id).found("task")?;
                    db::tasks::set_active(c, tid, active, now)?;
                    let target = super::operator::Target {
                        task_id: Some(tid),
                        group_id: row.group_id,
                        run_id: None,
                        run_date: None,
                    };
                    let kind = if active { "enable" } else { "disable" };
                    let event = super::operator::record_event(c, now, &p.username, kind, &target, "{}".into())?;
                    let result = format!("task {} {kind}d", row.name);
                    db::events::acknowledge(c, event, true, &result, now)?;
                    audit_in(
                        c,
                        now,
                        Some(row.instance_id),
                        &p.username,
                        "setTaskActive",
                        &format!("task {tid} {}", row.name),
                        Some(row.active.to_string()),
                        Some(active.to_string()),
                    )?;
                    Ok((
                        {
                            let rows = db::tasks::get(c, tid)?;
                            task_records(c, vec![rows])
                        }?
                        .remove(0),
                        instance,
                    ))
                })
            })
            .await?;
        self.publish(ChangeKind::Task, tid.0, &record.draft.name, &instance, "updated");
        Ok(record)
    }

    async fn groups(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<GroupRecord>> {
        let (p, f) = (p.clone(), f.clone());
        self.run(move |c| {
            let mut filter = db::groups::GroupFilter {
                instance_ids: visible_instances(c, &p.instances)?,
                active: f.active,
                search: f.search.clone(),
            };
            if let Some(name) = &f.instance {
                filter.instance_ids = Some(vec![instance_for(c, &p, name)?.id]);
            }
            let mut rows = db::groups::page(c, &filter, page.after.map(GroupId), page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::groups::count(c, &filter)?;
            Ok(Page { items: group_records(c, rows)?, total, has_next })
        })
        .await
    }

    async fn group(&self, p: &Principal, gid: GroupId) -> BackendResult<GroupRecord> {
        let p = p.clone();
        self.run(move |c| {
            let row = db::groups::get(c, gid).found("group")?;
            check_instance_id(c, &p, row.instance_id).found("group")?;
            Ok(group_records(c, vec![row])?.remove(0))
        })
        .await
    }

    async fn groups_by_ids(&self, p: &Principal, ids: &[GroupId]) -> BackendResult<Vec<GroupRecord>> {
        let (p, ids) = (p.clone(), ids.to_vec());
        self.run(move |c| {
            let rows = db::groups::get_many(c, &ids)?;
            let rows = rows.into_iter().filter(|r| check_instance_id(c, &p, r.instance_id).is_ok()).collect();
            group_records(c, rows)
        })
        .await
    }

    async fn create_group(&self, p: &Principal, draft: GroupDraft) -> BackendResult<GroupRecord> {
        self.save_group(p, None, draft).await
    }

    async fn update_group(&self, p: &Principal, gid: GroupId, draft: GroupDraft) -> BackendResult<GroupRecord> {
        self.save_group(p, Some(gid), draft).await
    }

    async fn delete_group(&self, p: &Principal, gid: GroupId) -> BackendResult<bool> {
        let now = self.now();
        let p = p.clone();
        let (name, instance) = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let row = db::groups::get(c, gid).found("group")?;
                    let instance = check_instance_id(c, &p, row.instance_id).found("group")?;
                    let before = group_records(c, vec![row.clone()])?.remove(0);
                    db::groups::delete(c, gid).map_err(|e| match e {
                        db::DbError::Conflict(_) => {
                            ApiError::Conflict(format!("group {} still has tasks or dependants", row.name)).into()
                        }
                        other => super::SvcError::from(other),
                    })?;
                    audit_in(
                        c,
                        now,
                        Some(row.instance_id),
                        &p.username,
                        "deleteGroup",
                        &format!("group {gid} {}", row.name),
                        Some(to_json(&before.draft)),
                        None,
                    )?;
                    Ok((row.name, instance))
                })
            })
            .await?;
        self.publish(ChangeKind::Group, gid.0, &name, &instance, "deleted");
        Ok(true)
    }

    async fn set_group_active(&self, p: &Principal, gid: GroupId, active: bool) -> BackendResult<GroupRecord> {
        let now = self.now();
        let p = p.clone();
        let (record, instance) = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let row = db::groups::get(c, gid).found("group")?;
                    let instance = check_instance_id(c, &p, row.instance_id).found("group")?;
                    db::groups::set_active(c, gid, active, now)?;
                    let target = super::operator::Target { group_id: Some(gid), ..Default::default() };
                    let kind = if active { "enable" } else { "disable" };
                    let event = super::operator::record_event(c, now, &p.username, kind, &target, "{}".into())?;
                    let result = format!("group {} {kind}d", row.name);
                    db::events::acknowledge(c, event, true, &result, now)?;
                    audit_in(
                        c,
                        now,
                        Some(row.instance_id),
                        &p.username,
                        "setGroupActive",
                        &format!("group {gid} {}", row.name),
                        Some(row.active.to_string()),
                        Some(active.to_string()),
                    )?;
                    Ok((
                        {
                            let rows = db::groups::get(c, gid)?;
                            group_records(c, vec![rows])
                        }?
                        .remove(0),
                        instance,
                    ))
                })
            })
            .await?;
        self.publish(ChangeKind::Group, gid.0, &record.draft.name, &instance, "updated");
        Ok(record)
    }

    async fn flow_graph(&self, p: &Principal, gid: GroupId) -> BackendResult<FlowGraphData> {
        let p = p.clone();
        self.run(move |c| {
            let row = db::groups::get(c, gid).found("group")?;
            check_instance_id(c, &p, row.instance_id).found("group")?;
            let group = group_records(c, vec![row])?.remove(0);
            let task_rows = db::tasks::in_group(c, gid)?;
            let ids: Vec<TaskId> = task_rows.iter().map(|t| t.id).collect();
            let edges = db::dependencies::of_tasks(c, &ids)?
                .into_iter()
                .filter_map(|d| Some((d.task_id?, d.depends_on_task_id?, d.state)))
                .collect();
            Ok(FlowGraphData { group, tasks: task_records(c, task_rows)?, edges })
        })
        .await
    }

    fn definition_changes(&self) -> BoxStream<'static, DefinitionChange> {
        tokio_stream::wrappers::BroadcastStream::new(self.changes.subscribe())
            .filter_map(|r| async move { r.ok() })
            .boxed()
    }
}

#[async_trait]
impl baton_graphql::Calendars for Services {
    async fn calendars(&self, p: &Principal, instance: Option<&str>) -> BackendResult<Vec<CalendarRecord>> {
        let (p, instance) = (p.clone(), instance.map(str::to_string));
        self.run(move |c| {
            let only = match &instance {
                Some(name) => Some(instance_for(c, &p, name)?.id),
                None => None,
            };
            let names: HashMap<InstanceId, String> =
                db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
            let mut out = Vec::new();
            for row in db::calendars::list(c, only)? {
                let inst = names.get(&row.instance_id).cloned().unwrap_or_default();
                if !p.instances.allows(&inst) {
                    continue;
                }
                let draft = db::calendars::draft(c, &row)?;
                out.push(CalendarRecord { id: row.id, instance: inst, draft, updated_at: db::utc(row.updated_at) });
            }
            Ok(out)
        })
        .await
    }

    async fn calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<Option<CalendarRecord>> {
        let (p, instance, name) = (p.clone(), instance.to_string(), name.to_string());
        self.run(move |c| {
            let inst = instance_for(c, &p, &instance)?;
            let Some(row) = db::calendars::by_name(c, inst.id, &name)? else { return Ok(None) };
            let draft = db::calendars::draft(c, &row)?;
            Ok(Some(CalendarRecord { id: row.id, instance, draft, updated_at: db::utc(row.updated_at) }))
        })
        .await
    }

    async fn save_calendar(
        &self,
        p: &Principal,
        instance: &str,
        draft: CalendarDraft,
    ) -> BackendResult<CalendarRecord> {
        let now = self.now();
        let (p, instance_name) = (p.clone(), instance.to_string());
        let record = self
            .run(move |c| {
                let cal = Calendar::parse(&draft)?;
                db::transaction(c, |c| {
                    let inst = instance_for(c, &p, &instance_name)?;
                    let before = match db::calendars::by_name(c, inst.id, cal.name.as_str())? {
                        Some(row) => Some(db::calendars::draft(c, &row)?),
                        None => None,
                    };
                    let id = db::calendars::save(c, inst.id, &cal, now)?;
                    let after = cal.to_draft();
                    audit_in(
                        c,
                        now,
                        Some(inst.id),
                        &p.username,
                        "saveCalendar",
                        &format!("calendar {}", cal.name),
                        before.map(|b| to_json(&b)),
                        Some(to_json(&after)),
                    )?;
                    Ok(CalendarRecord { id, instance: instance_name.clone(), draft: after, updated_at: now })
                })
            })
            .await?;
        self.publish(ChangeKind::Calendar, record.id.0, &record.draft.name, &record.instance, "updated");
        Ok(record)
    }

    async fn delete_calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<bool> {
        let now = self.now();
        let (p, instance_name, cal_name) = (p.clone(), instance.to_string(), name.to_string());
        let id = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let inst = instance_for(c, &p, &instance_name)?;
                    let row = db::calendars::by_name(c, inst.id, &cal_name)?.ok_or_else(|| not_found("calendar"))?;
                    let uses = |s: &Option<String>| {
                        s.as_deref()
                            .and_then(|j| serde_json::from_str::<baton_schema::schedule::ScheduleDraft>(j).ok())
                            .is_some_and(|d| d.calendar.as_deref() == Some(cal_name.as_str()))
                    };
                    let users: Vec<String> = db::tasks::in_instance(c, inst.id)?
                        .into_iter()
                        .filter(|t| uses(&t.schedule))
                        .map(|t| format!("task {}", t.name))
                        .chain(
                            db::groups::in_instance(c, inst.id)?
                                .into_iter()
                                .filter(|g| uses(&g.schedule))
                                .map(|g| format!("group {}", g.name)),
                        )
                        .collect();
                    if !users.is_empty() {
                        return Err(
                            ApiError::Conflict(format!("calendar {cal_name} is used by {}", users.join(", "))).into()
                        );
                    }
                    let before = db::calendars::draft(c, &row)?;
                    db::calendars::delete(c, row.id)?;
                    audit_in(
                        c,
                        now,
                        Some(inst.id),
                        &p.username,
                        "deleteCalendar",
                        &format!("calendar {cal_name}"),
                        Some(to_json(&before)),
                        None,
                    )?;
                    Ok(row.id)
                })
            })
            .await?;
        self.publish(ChangeKind::Calendar, id.0, name, instance, "deleted");
        Ok(true)
    }
}
