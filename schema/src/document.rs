//! The import/export document: every calendar, group and task of the chosen instances, versioned.
//!
//! Secrets never appear here: alert rules name integrations, and integrations' secrets live in the
//! credential store. Parsing validates the whole document and reports every problem with its JSON
//! path, so an import is either applied whole or not at all.

use crate::calendar::{Calendar, CalendarDraft};
use crate::definition::{GroupDef, GroupDraft, TaskDef, TaskDraft};
use crate::dependency::check_graph;
use crate::error::{FieldError, FieldErrors};
use crate::names::InstanceName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DOCUMENT_VERSION: u32 = 1;
pub const DOCUMENT_KIND: &str = "baton.definitions";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub kind: String,
    pub version: u32,
    pub instances: Vec<InstanceDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceDoc {
    pub name: String,
    #[serde(default)]
    pub calendars: Vec<CalendarDraft>,
    #[serde(default)]
    pub groups: Vec<GroupDraft>,
    #[serde(default)]
    pub tasks: Vec<TaskDraft>,
}

/// A document whose every part is valid, ready to be planned against the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidDocument {
    pub instances: Vec<ValidInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidInstance {
    pub name: InstanceName,
    pub calendars: Vec<Calendar>,
    pub groups: Vec<GroupDef>,
    pub tasks: Vec<TaskDef>,
}

impl Document {
    pub fn new(instances: Vec<InstanceDoc>) -> Self {
        Self { kind: DOCUMENT_KIND.into(), version: DOCUMENT_VERSION, instances }
    }

    /// Reads JSON text; a structural error carries the JSON path where serde stopped.
    pub fn from_json(text: &str) -> Result<Document, FieldErrors> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FieldError::new("$", "json", format!("not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    pub fn from_value(value: serde_json::Value) -> Result<Document, FieldErrors> {
        // Check the envelope first so a wrong version is reported as such, not as a field error.
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(DOCUMENT_VERSION) => {}
            Some(v) => {
                return Err(FieldError::new(
                    "$.version",
                    "version",
                    format!("version {v} is not supported (expected {DOCUMENT_VERSION})"),
                )
                .into())
            }
            None => {
                return Err(FieldError::new("$.version", "required", "the document must have a numeric version").into())
            }
        }
        // Locate structural errors item by item so the path points at the broken element.
        let mut errors = FieldErrors::new();
        if let Some(instances) = value.get("instances").and_then(|v| v.as_array()) {
            for (i, inst) in instances.iter().enumerate() {
                for (key, parse) in [
                    (
                        "calendars",
                        (|v: &serde_json::Value| serde_json::from_value::<CalendarDraft>(v.clone()).map(|_| ()))
                            as fn(&serde_json::Value) -> Result<(), serde_json::Error>,
                    ),
                    ("groups", |v| serde_json::from_value::<GroupDraft>(v.clone()).map(|_| ())),
                    ("tasks", |v| serde_json::from_value::<TaskDraft>(v.clone()).map(|_| ())),
                ] {
                    for (j, item) in inst.get(key).and_then(|v| v.as_array()).into_iter().flatten().enumerate() {
                        if let Err(e) = parse(item) {
                            errors.push(FieldError::new(
                                format!("$.instances[{i}].{key}[{j}]"),
                                "structure",
                                e.to_string(),
                            ));
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        serde_json::from_value(value).map_err(|e| FieldError::new("$", "structure", e.to_string()).into())
    }

    /// Validates every definition, the names' uniqueness, group references and the dependency
    /// graphs; every error carries its JSON path (`$.instances[0].tasks[3].schedule.timezone`).
    pub fn validate(&self) -> Result<ValidDocument, FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.kind != DOCUMENT_KIND {
            errors.push(FieldError::new("$.kind", "kind", format!("expected {DOCUMENT_KIND:?}")));
        }
        let mut out = Vec::new();
        let mut seen_instances = BTreeSet::new();
        for (i, inst) in self.instances.iter().enumerate() {
            let at = format!("$.instances[{i}]");
            let name = errors.take(InstanceName::parse(&inst.name).map_err(|e| e.under(&at)));
            if !seen_instances.insert(inst.name.clone()) {
                errors.push(FieldError::new(
                    format!("{at}.name"),
                    "unique",
                    format!("instance {:?} appears twice", inst.name),
                ));
            }
            let mut calendars = Vec::new();
            let mut cal_names = BTreeSet::new();
            for (j, c) in inst.calendars.iter().enumerate() {
                let cat = format!("{at}.calendars[{j}]");
                match Calendar::parse(c) {
                    Ok(c) => {
                        if !cal_names.insert(c.name.to_string()) {
                            errors.push(FieldError::new(
                                format!("{cat}.name"),
                                "unique",
                                format!("calendar {} appears twice", c.name),
                            ));
                        }
                        calendars.push(c);
                    }
                    Err(e) => errors.extend_under(&cat, e),
                }
            }
            let mut groups = Vec::new();
            let mut group_names = BTreeSet::new();
            for (j, g) in inst.groups.iter().enumerate() {
                let gat = format!("{at}.groups[{j}]");
                if g.instance != inst.name {
                    errors.push(FieldError::new(
                        format!("{gat}.instance"),
                        "instance_mismatch",
                        format!("must be {:?}, the instance it is listed under", inst.name),
                    ));
                }
                match GroupDef::parse(g) {
                    Ok(g) => {
                        if !group_names.insert(g.name.to_string()) {
                            errors.push(FieldError::new(
                                format!("{gat}.name"),
                                "unique",
                                format!("group {} appears twice", g.name),
                            ));
                        }
                        if let Some(c) = g.schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
                            if !cal_names.contains(c.as_str()) {
                                errors.push(FieldError::new(
                                    format!("{gat}.schedule.calendar"),
                                    "unknown_calendar",
                                    format!("no calendar {c} in this instance"),
                                ));
                            }
                        }
                        groups.push(g);
                    }
                    Err(e) => errors.extend_under(&gat, e),
                }
            }
            if groups.len() == inst.groups.len() {
                let nodes = groups.iter().map(|g| (g.name.to_string(), g.dependency.clone())).collect();
                if let Err(e) = check_graph(&nodes) {
                    let j = inst.groups.iter().position(|g| g.name == e.owner()).unwrap_or(0);
                    errors.push(e.into_field_error().under(&format!("{at}.groups[{j}]")));
                }
            }
            let mut tasks = Vec::new();
            let mut task_names = BTreeSet::new();
            let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            // Groups with a member that failed to parse are not graph-checked: the missing member
            // would show up as a misleading unknown name.
            let mut incomplete: BTreeSet<String> = BTreeSet::new();
            for (j, t) in inst.tasks.iter().enumerate() {
                let tat = format!("{at}.tasks[{j}]");
                if t.instance != inst.name {
                    errors.push(FieldError::new(
                        format!("{tat}.instance"),
                        "instance_mismatch",
                        format!("must be {:?}, the instance it is listed under", inst.name),
                    ));
                }
                match TaskDef::parse(t) {
                    Ok(t) => {
                        if !task_names.insert(t.name.to_string()) {
                            errors.push(FieldError::new(
                                format!("{tat}.name"),
                                "unique",
                                format!("task {} appears twice", t.name),
                            ));
                        }
                        if let Some(g) = &t.group {
                            if !group_names.contains(g.as_str()) {
                                errors.push(FieldError::new(
                                    format!("{tat}.group"),
                                    "unknown_group",
                                    format!("no group {g} in this instance"),
                                ));
                            }
                            members.entry(g.to_string()).or_default().push(tasks.len());
                        }
                        if let Some(c) = t.schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
                            if !cal_names.contains(c.as_str()) {
                                errors.push(FieldError::new(
                                    format!("{tat}.schedule.calendar"),
                                    "unknown_calendar",
                                    format!("no calendar {c} in this instance"),
                                ));
                            }
                        }
                        tasks.push(t);
                    }
                    Err(e) => {
                        incomplete.extend(t.group.clone());
                        errors.extend_under(&tat, e)
                    }
                }
            }
            for (group, idx) in members.iter().filter(|(g, _)| !incomplete.contains(*g)) {
                let nodes = idx.iter().map(|k| (tasks[*k].name.to_string(), tasks[*k].dependency.clone())).collect();
                if let Err(e) = check_graph(&nodes) {
                    let j = inst
                        .tasks
                        .iter()
                        .position(|t| t.name == e.owner() && t.group.as_deref() == Some(group))
                        .unwrap_or(0);
                    errors.push(e.into_field_error().under(&format!("{at}.tasks[{j}]")));
                }
            }
            if let Some(name) = name {
                out.push(ValidInstance { name, calendars, groups, tasks });
            }
        }
        errors.into_result(|| ValidDocument { instances: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleDraft;

    fn doc() -> Document {
        let mut g = GroupDraft::new("nightly");
        g.schedule = Some(ScheduleDraft {
            trigger_times: Some("02:00".into()),
            timezone: "UTC".into(),
            calendar: Some("HOL".into()),
            ..Default::default()
        });
        let mut a = TaskDraft::new("extract", "true", "etl", "batch");
        a.group = Some("nightly".into());
        let mut b = TaskDraft::new("load", "true", "etl", "batch");
        b.group = Some("nightly".into());
        b.dependency = Some("S:extract".into());
        Document::new(vec![InstanceDoc {
            name: "default".into(),
            calendars: vec![CalendarDraft { name: "HOL".into(), ..Default::default() }],
            groups: vec![g],
            tasks: vec![a, b],
        }])
    }

    #[test]
    fn json_round_trip() {
        let d = doc();
        let text = serde_json::to_string_pretty(&d).unwrap();
        assert_eq!(Document::from_json(&text).unwrap(), d);
        let valid = d.validate().unwrap();
        assert_eq!(valid.instances[0].tasks.len(), 2);
    }

    #[test]
    fn every_error_has_its_json_path() {
        let mut d = doc();
        d.instances[0].tasks[0].schedule = None;
        d.instances[0].tasks[1].run_as_user = "".into();
        d.instances[0].tasks[0].dependency = Some("S:load".into());
        d.instances[0].groups[0].schedule.as_mut().unwrap().calendar = Some("NOPE".into());
        let mut orphan = TaskDraft::new("orphan", "true", "etl", "batch");
        orphan.group = Some("missing".into());
        d.instances[0].tasks.push(orphan);
        let e = d.validate().unwrap_err();
        let got: Vec<(&str, &str)> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("$.instances[0].groups[0].schedule.calendar", "unknown_calendar"),
                ("$.instances[0].tasks[1].run_as_user", "required"),
                ("$.instances[0].tasks[2].group", "unknown_group"),
            ]
        );
        // With the user fixed, the cycle extract <-> load is found and named.
        d.instances[0].tasks[1].run_as_user = "batch".into();
        d.instances[0].tasks.pop();
        d.instances[0].groups[0].schedule.as_mut().unwrap().calendar = None;
        let e = d.validate().unwrap_err();
        assert_eq!((e.0[0].field.as_str(), e.0[0].rule.as_str()), ("$.instances[0].tasks[0].dependency", "cycle"));
        assert_eq!(e.0[0].message, "dependency cycle: extract -> load -> extract");
    }

    #[test]
    fn structure_errors_point_at_the_item() {
        let text = r#"{"kind":"baton.definitions","version":1,"instances":[{"name":"default","tasks":[{"name":"a","command":"x","target":"t","run_as_user":"u","retries":3}]}]}"#;
        let e = Document::from_json(text).unwrap_err();
        assert_eq!(e.0[0].field, "$.instances[0].tasks[0]");
        assert!(e.0[0].message.contains("retries"), "{}", e.0[0].message);
        let e = Document::from_json(r#"{"kind":"baton.definitions","version":2,"instances":[]}"#).unwrap_err();
        assert_eq!(e.0[0].rule, "version");
        assert_eq!(Document::from_json("{").unwrap_err().0[0].rule, "json");
    }
}
