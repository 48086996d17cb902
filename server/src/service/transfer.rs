//! Import and export of definitions: the whole document is validated first, planned against the
//! database (created, changed field by field, deleted), and applied in one transaction or not at all.

use super::definitions::{group_records, task_records, write_group_edges, write_task_edges};
use super::{audit, audit_in, Services, SvcError};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::calendar::CalendarDraft;
use baton_schema::definition::{GroupDef, TaskDef};
use baton_schema::dependency::{check_graph, DependencyExpr};
use baton_schema::document::{Document, InstanceDoc};
use baton_schema::ids::{GroupId, InstanceId, TaskId};
use baton_schema::FieldError;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why an import transaction was rolled back.
enum Abort {
    /// A dry run: the plan is complete, nothing is kept.
    DryRun(ImportPlan),
    /// Problems found while planning; nothing is kept.
    Invalid(ImportPlan),
    Failed(SvcError),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Failed(e.into())
    }
}
impl From<SvcError> for Abort {
    fn from(e: SvcError) -> Self {
        Abort::Failed(e)
    }
}
impl From<db::DbError> for Abort {
    fn from(e: db::DbError) -> Self {
        Abort::Failed(e.into())
    }
}

/// Top-level fields whose values differ between two drafts (ids left out).
fn diff(before: &serde_json::Value, after: &serde_json::Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).filter(|k| *k != "tid" && *k != "gid").collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (bv, av) = (b.get(k).cloned().unwrap_or_default(), a.get(k).cloned().unwrap_or_default());
            (bv != av).then(|| FieldChange { field: k.clone(), before: bv, after: av })
        })
        .collect()
}

/// The fields in which a stored definition's draft (none: a new one) differs from the document's.
fn diff_drafts<T: serde::Serialize>(before: Option<&T>, after: &T) -> Vec<FieldChange> {
    let value = |d: &T| serde_json::to_value(d).unwrap_or_default();
    diff(&before.map(value).unwrap_or_default(), &value(after))
}

/// Which stored record a document entry stands for: the one its id names when that exists (an
/// error at `at.ID_FIELD` when it is another instance's), else the one `by_name` finds, else none
/// (a new one). `kind` is the entry's kind and its id field (`("task", "tid")`).
fn resolve<I: Copy + std::fmt::Display>(
    c: &mut DbConn,
    (kind, id_field): (&str, &str),
    id: Option<I>,
    instance_id: InstanceId,
    instance_of: impl FnOnce(&mut DbConn, I) -> db::DbResult<InstanceId>,
    by_name: impl FnOnce() -> Option<I>,
    at: &str,
) -> Result<Result<Option<I>, FieldError>, Abort> {
    let by_id = match id {
        Some(id) => match instance_of(c, id) {
            Ok(other) if other != instance_id => {
                let why = format!("{kind} {id} belongs to another instance");
                return Ok(Err(FieldError::new(format!("{at}.{id_field}"), "other_instance", why)));
            }
            Ok(_) => Some(id),
            Err(db::DbError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    Ok(Ok(by_id.or_else(by_name)))
}

fn item(kind: &str, instance: &str, name: &str) -> PlanItem {
    PlanItem { kind: kind.into(), instance: instance.into(), name: name.into() }
}

impl Services {}

fn doc_instances(plan: &ImportPlan) -> HashSet<&str> {
    plan.created
        .iter()
        .chain(plan.deleted.iter())
        .chain(plan.changed.iter().map(|c| &c.item))
        .map(|i| i.instance.as_str())
        .collect()
}

/// One instance of a document being imported: what each step of it needs.
struct Importing<'a> {
    /// Its JSON path, `$.instances[i]`.
    at: String,
    name: String,
    instance: InstanceId,
    inst: &'a baton_schema::document::ValidInstance,
    raw: &'a InstanceDoc,
    /// The integrations and credentials its definitions may name.
    references: super::alerting::References,
    now: chrono::DateTime<chrono::Utc>,
}

/// The groups as they were and those the document kept.
struct GroupsDone {
    before: Vec<GroupRecord>,
    kept: HashSet<GroupId>,
}

/// The tasks as they were, those the document kept, and those written (position in the
/// document, id, new); the instance's groups by name.
struct TasksDone {
    before: Vec<TaskRecord>,
    kept: HashSet<TaskId>,
    written: Vec<(usize, TaskId, bool)>,
    group_ids: HashMap<String, GroupId>,
}

/// Plans and writes one instance of the document (`i`-th, as validated and as written);
/// problems go to `plan.errors` with JSON paths.
fn apply_instance(
    c: &mut DbConn,
    (i, inst, raw): (usize, &baton_schema::document::ValidInstance, &InstanceDoc),
    mode: ImportMode,
    writer: &Principal,
    now: chrono::DateTime<chrono::Utc>,
    plan: &mut ImportPlan,
) -> Result<(), Abort> {
    let name = inst.name.to_string();
    let instance = match db::instances::by_name(c, &name)? {
        Some(row) => row,
        None => {
            plan.created.push(item("instance", &name, &name));
            db::instances::ensure(c, &name, now)?
        }
    };
    let references = super::alerting::References::load(c, writer)?;
    let step = Importing { at: format!("$.instances[{i}]"), name, instance: instance.id, inst, raw, references, now };
    let calendars_left = step.calendars(c, plan)?;
    let groups = step.groups(c, plan)?;
    let tasks = step.tasks(c, plan)?;
    if mode == ImportMode::Replace {
        step.remove_missing(c, plan, &groups, &tasks, calendars_left)?;
    }
    step.dependencies(c, plan, &tasks)
}

impl Importing<'_> {
    /// Calendars, by name; returns those the instance had and the document does not name.
    fn calendars(
        &self,
        c: &mut DbConn,
        plan: &mut ImportPlan,
    ) -> Result<HashMap<String, db::calendars::CalendarRow>, Abort> {
        let (name, now, inst) = (&self.name, self.now, self.inst);
        let mut existing_cals: HashMap<String, db::calendars::CalendarRow> =
            db::calendars::list(c, Some(self.instance))?.into_iter().map(|r| (r.name.clone(), r)).collect();
        for cal in &inst.calendars {
            let after = cal.to_draft();
            match existing_cals.remove(cal.name.as_str()) {
                Some(row) => {
                    let before: CalendarDraft = db::calendars::draft(c, &row)?;
                    let fields = diff_drafts(Some(&before), &after);
                    if !fields.is_empty() {
                        plan.changed.push(PlanChange { item: item("calendar", name, cal.name.as_str()), fields });
                        db::calendars::save(c, self.instance, cal, now)?;
                    }
                }
                None => {
                    plan.created.push(item("calendar", name, cal.name.as_str()));
                    db::calendars::save(c, self.instance, cal, now)?;
                }
            }
        }
        Ok(existing_cals)
    }

    /// Groups: by GID when given and present, else by name.
    fn groups(&self, c: &mut DbConn, plan: &mut ImportPlan) -> Result<GroupsDone, Abort> {
        let (name, now, inst, at, references) = (&self.name, self.now, self.inst, &self.at, &self.references);
        let before_groups = {
            let rows = db::groups::in_instance(c, self.instance)?;
            group_records(c, rows)
        }?;
        let mut kept_groups: HashSet<GroupId> = HashSet::new();
        for (j, g) in inst.groups.iter().enumerate() {
            let gat = format!("{at}.groups[{j}]");
            let mut found = baton_schema::FieldErrors::new();
            references.check(&g.alerts, None, self.instance, &format!("{gat}."), &mut found);
            plan.errors.extend(found.0);
            let by_name = || before_groups.iter().find(|b| b.draft.name == g.name.as_str()).and_then(|b| b.draft.gid);
            let instance_of = |c: &mut DbConn, id| Ok(db::groups::get(c, id)?.instance_id);
            let existing = match resolve(c, ("group", "gid"), g.gid, self.instance, instance_of, by_name, &gat)? {
                Ok(found) => found,
                Err(e) => {
                    plan.errors.push(e);
                    continue;
                }
            };
            match existing {
                Some(id) => {
                    kept_groups.insert(id);
                    let before = before_groups.iter().find(|b| b.draft.gid == Some(id));
                    let after = GroupDef { gid: Some(id), ..g.clone() }.to_draft();
                    let fields = diff_drafts(before.map(|b| &b.draft), &after);
                    if !fields.is_empty() {
                        plan.changed.push(PlanChange { item: item("group", name, g.name.as_str()), fields });
                        if let Err(e) = db::groups::update(c, id, self.instance, g, now) {
                            plan.errors.push(FieldError::new(format!("{gat}.name"), "conflict", e.to_string()));
                        }
                    }
                }
                None => {
                    plan.created.push(item("group", name, g.name.as_str()));
                    match db::groups::insert(c, self.instance, g, now) {
                        Ok(id) => {
                            kept_groups.insert(id);
                        }
                        Err(e) => plan.errors.push(FieldError::new(format!("{gat}.name"), "conflict", e.to_string())),
                    }
                }
            }
        }
        Ok(GroupsDone { before: before_groups, kept: kept_groups })
    }

    /// Tasks: by TID when given and present, else by name.
    fn tasks(&self, c: &mut DbConn, plan: &mut ImportPlan) -> Result<TasksDone, Abort> {
        let (name, now, inst, at, references) = (&self.name, self.now, self.inst, &self.at, &self.references);
        let before_tasks = {
            let rows = db::tasks::in_instance(c, self.instance)?;
            task_records(c, rows)
        }?;
        let group_ids: HashMap<String, GroupId> =
            db::groups::in_instance(c, self.instance)?.into_iter().map(|g| (g.name, g.id)).collect();
        let calendar_names: HashSet<String> =
            db::calendars::list(c, Some(self.instance))?.into_iter().map(|r| r.name).collect();
        let mut kept_tasks: HashSet<TaskId> = HashSet::new();
        let mut written: Vec<(usize, TaskId, bool)> = Vec::new();
        for (j, t) in inst.tasks.iter().enumerate() {
            let tat = format!("{at}.tasks[{j}]");
            let mut found = baton_schema::FieldErrors::new();
            references.check(&t.alerts, Some(&t.profile), self.instance, &format!("{tat}."), &mut found);
            plan.errors.extend(found.0);
            let group_id = match &t.group {
                Some(g) => match group_ids.get(g.as_str()) {
                    Some(id) => Some(*id),
                    None => {
                        plan.errors.push(FieldError::new(
                            format!("{tat}.group"),
                            "unknown_group",
                            format!("no group {g} in instance {name}"),
                        ));
                        continue;
                    }
                },
                None => None,
            };
            if let Some(cal) = t.schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
                if !calendar_names.contains(cal.as_str()) {
                    plan.errors.push(FieldError::new(
                        format!("{tat}.schedule.calendar"),
                        "unknown_calendar",
                        format!("no calendar {cal} in instance {name}"),
                    ));
                }
            }
            let by_name = || before_tasks.iter().find(|b| b.draft.name == t.name.as_str()).and_then(|b| b.draft.tid);
            let instance_of = |c: &mut DbConn, id| Ok(db::tasks::get(c, id)?.instance_id);
            let existing = match resolve(c, ("task", "tid"), t.tid, self.instance, instance_of, by_name, &tat)? {
                Ok(found) => found,
                Err(e) => {
                    plan.errors.push(e);
                    continue;
                }
            };
            let is_new = existing.is_none();
            let id = match existing {
                Some(id) => {
                    let before = before_tasks.iter().find(|b| b.draft.tid == Some(id));
                    let after = TaskDef { tid: Some(id), ..t.clone() }.to_draft();
                    let fields = diff_drafts(before.map(|b| &b.draft), &after);
                    if !fields.is_empty() {
                        plan.changed.push(PlanChange { item: item("task", name, t.name.as_str()), fields });
                        if let Err(e) = db::tasks::update(c, id, self.instance, group_id, t, now) {
                            plan.errors.push(FieldError::new(format!("{tat}.name"), "conflict", e.to_string()));
                            continue;
                        }
                    }
                    id
                }
                None => {
                    plan.created.push(item("task", name, t.name.as_str()));
                    match db::tasks::insert(c, self.instance, group_id, t, now) {
                        Ok(id) => id,
                        Err(e) => {
                            plan.errors.push(FieldError::new(format!("{tat}.name"), "conflict", e.to_string()));
                            continue;
                        }
                    }
                }
            };
            kept_tasks.insert(id);
            written.push((j, id, is_new));
            // A new task has no rules or edges to replace yet.
            if !(is_new && t.alerts.is_empty()) {
                db::alert_rules::replace(c, db::alert_rules::Owner::Task(id), &t.alerts).map_err(SvcError::from)?;
            }
        }
        Ok(TasksDone { before: before_tasks, kept: kept_tasks, written, group_ids })
    }

    /// Replace mode: what the instance has and the document lacks goes.
    fn remove_missing(
        &self,
        c: &mut DbConn,
        plan: &mut ImportPlan,
        groups: &GroupsDone,
        tasks: &TasksDone,
        existing_cals: HashMap<String, db::calendars::CalendarRow>,
    ) -> Result<(), Abort> {
        let (name, at) = (&self.name, &self.at);
        let (before_tasks, kept_tasks, before_groups, kept_groups) =
            (&tasks.before, &tasks.kept, &groups.before, &groups.kept);
        for b in before_tasks {
            let Some(id) = b.draft.tid else { continue };
            if !kept_tasks.contains(&id) {
                plan.deleted.push(item("task", name, &b.draft.name));
                db::dependencies::replace_for_task(c, id, &[])?;
            }
        }
        for b in before_tasks {
            let Some(id) = b.draft.tid else { continue };
            if !kept_tasks.contains(&id) {
                if let Err(e) = db::tasks::delete(c, id) {
                    plan.errors.push(FieldError::new(
                        format!("{at}.tasks"),
                        "still_referenced",
                        format!("cannot delete task {}: {e}", b.draft.name),
                    ));
                }
            }
        }
        for b in before_groups {
            let Some(id) = b.draft.gid else { continue };
            if !kept_groups.contains(&id) {
                plan.deleted.push(item("group", name, &b.draft.name));
                db::dependencies::replace_for_group(c, id, &[])?;
                if let Err(e) = db::groups::delete(c, id) {
                    plan.errors.push(FieldError::new(
                        format!("{at}.groups"),
                        "still_referenced",
                        format!("cannot delete group {}: {e}", b.draft.name),
                    ));
                }
            }
        }
        for (cal_name, row) in existing_cals {
            plan.deleted.push(item("calendar", name, &cal_name));
            db::calendars::delete(c, row.id)?;
        }
        Ok(())
    }

    /// Dependencies are checked on the merged result, one group at a time, then written as edges.
    fn dependencies(&self, c: &mut DbConn, plan: &mut ImportPlan, tasks: &TasksDone) -> Result<(), Abort> {
        let (inst, raw, at) = (self.inst, self.raw, &self.at);
        let (written, group_ids) = (&tasks.written, &tasks.group_ids);
        let mut by_group: BTreeMap<GroupId, Vec<db::tasks::TaskRow>> = BTreeMap::new();
        for row in db::tasks::in_instance(c, self.instance)? {
            if let Some(g) = row.group_id {
                by_group.entry(g).or_default().push(row);
            }
        }
        for (gid, members) in &by_group {
            let nodes: BTreeMap<String, Option<DependencyExpr>> = members
                .iter()
                .map(|m| (m.name.clone(), m.dependency.as_deref().and_then(|d| DependencyExpr::parse(d).ok())))
                .collect();
            if let Err(e) = check_graph(&nodes) {
                let j = inst.tasks.iter().position(|t| t.name.as_str() == e.owner()).unwrap_or(0);
                plan.errors.push(e.into_field_error().under(&format!("{at}.tasks[{j}]")));
                continue;
            }
            let _ = gid;
        }
        if plan.errors.is_empty() {
            for (j, id, is_new) in written {
                let t = &inst.tasks[*j];
                if *is_new && t.dependency.is_none() {
                    continue;
                }
                let gid = t.group.as_ref().and_then(|g| group_ids.get(g.as_str()).copied());
                write_task_edges(c, *id, gid, t.dependency.as_ref())?;
            }
            let groups_now = db::groups::in_instance(c, self.instance)?;
            let nodes: BTreeMap<String, Option<DependencyExpr>> = groups_now
                .iter()
                .map(|g| (g.name.clone(), g.dependency.as_deref().and_then(|d| DependencyExpr::parse(d).ok())))
                .collect();
            if let Err(e) = check_graph(&nodes) {
                let j = raw.groups.iter().position(|g| g.name == e.owner()).unwrap_or(0);
                plan.errors.push(e.into_field_error().under(&format!("{at}.groups[{j}]")));
            } else {
                for g in &inst.groups {
                    if let Some(id) = group_ids.get(g.name.as_str()) {
                        write_group_edges(c, *id, self.instance, g.dependency.as_ref())?;
                        db::alert_rules::replace(c, db::alert_rules::Owner::Group(*id), &g.alerts)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl baton_graphql::Transfer for Services {
    async fn export(&self, p: &Principal, instances: Option<Vec<String>>) -> BackendResult<Document> {
        let p = p.clone();
        self.run(move |c| {
            let all = db::instances::list(c)?;
            let chosen: Vec<db::instances::InstanceRow> = match &instances {
                Some(names) => {
                    let mut out = Vec::new();
                    for (i, n) in names.iter().enumerate() {
                        let row = all.iter().find(|r| &r.name == n).ok_or_else(|| {
                            ApiError::invalid(
                                &format!("instances[{i}]"),
                                "unknown_instance",
                                format!("no instance {n}"),
                            )
                        })?;
                        if !p.instances.allows(n) {
                            return Err(ApiError::Forbidden(format!("no access to instance {n}")).into());
                        }
                        out.push(row.clone());
                    }
                    out
                }
                None => all.into_iter().filter(|r| p.instances.allows(&r.name)).collect(),
            };
            let mut docs = Vec::new();
            for inst in chosen {
                let mut calendars = Vec::new();
                for row in db::calendars::list(c, Some(inst.id))? {
                    calendars.push(db::calendars::draft(c, &row)?);
                }
                let groups = {
                    let rows = db::groups::in_instance(c, inst.id)?;
                    group_records(c, rows)
                }?
                .into_iter()
                .map(|g| g.draft)
                .collect();
                let tasks = {
                    let rows = db::tasks::in_instance(c, inst.id)?;
                    task_records(c, rows)
                }?
                .into_iter()
                .map(|t| t.draft)
                .collect();
                docs.push(InstanceDoc { name: inst.name, calendars, groups, tasks });
            }
            Ok(Document::new(docs))
        })
        .await
    }

    async fn import(
        &self,
        p: &Principal,
        value: serde_json::Value,
        mode: ImportMode,
        dry_run: bool,
    ) -> BackendResult<ImportPlan> {
        let now = self.now();
        let doc = match Document::from_value(value) {
            Ok(d) => d,
            Err(e) => return Ok(ImportPlan { errors: e.0, ..Default::default() }),
        };
        let valid = match doc.validate() {
            Ok(v) => v,
            Err(e) => return Ok(ImportPlan { errors: e.0, ..Default::default() }),
        };
        let mut errors = Vec::new();
        for (i, inst) in valid.instances.iter().enumerate() {
            if !p.instances.allows(inst.name.as_str()) {
                errors.push(FieldError::new(
                    format!("$.instances[{i}].name"),
                    "forbidden",
                    format!("no access to instance {}", inst.name),
                ));
            }
        }
        if !errors.is_empty() {
            return Ok(ImportPlan { errors, ..Default::default() });
        }
        let p = p.clone();
        let started = std::time::Instant::now();
        let plan = self
            .run(move |c| {
                let result = db::transaction(c, |c| -> Result<ImportPlan, Abort> {
                    let mut plan = ImportPlan::default();
                    for (i, inst) in valid.instances.iter().enumerate() {
                        apply_instance(c, (i, inst, &doc.instances[i]), mode, &p, now, &mut plan)?;
                    }
                    db::sync_id_sequences(c)?;
                    if !plan.errors.is_empty() {
                        return Err(Abort::Invalid(plan));
                    }
                    if dry_run {
                        return Err(Abort::DryRun(plan));
                    }
                    let summary = format!(
                        "{{\"created\":{},\"changed\":{},\"deleted\":{}}}",
                        plan.created.len(),
                        plan.changed.len(),
                        plan.deleted.len()
                    );
                    // One entry per instance of the document, so each instance's admins read it.
                    for inst in &valid.instances {
                        let id = db::instances::by_name(c, inst.name.as_str())?.map(|r| r.id);
                        let target = format!("definitions of {}", inst.name);
                        audit_in(c, now, id, &p.username, "importDefinitions", &target, None, Some(summary.clone()))?;
                    }
                    if valid.instances.is_empty() {
                        audit(c, now, &p.username, "importDefinitions", "definitions", None, Some(summary))?;
                    }
                    plan.applied = true;
                    Ok(plan)
                });
                match result {
                    Ok(plan) | Err(Abort::DryRun(plan)) | Err(Abort::Invalid(plan)) => Ok(plan),
                    Err(Abort::Failed(e)) => Err(e),
                }
            })
            .await?;
        tracing::info!(
            applied = plan.applied,
            created = plan.created.len(),
            changed = plan.changed.len(),
            deleted = plan.deleted.len(),
            ms = started.elapsed().as_millis() as u64,
            "import"
        );
        if plan.applied {
            let instances: HashSet<&str> = doc_instances(&plan);
            for inst in instances {
                self.publish(ChangeKind::Instance, 0, inst, inst, "imported");
            }
        }
        Ok(plan)
    }
}
