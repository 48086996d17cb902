//! What the task and group forms share: optional and schedule inputs, filling fields once per
//! loaded definition, a stored task as its input, and the save path of both.

use super::alert_rules::{alert_line, AlertRule};
use crate::gql;
use crate::ops::{self, create_group, create_task, group_definition, task_definition, update_group, update_task};
use std::collections::HashMap;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

/// A task as the task form edits it (the input of `UpdateTask`).
pub(super) type TaskInput = update_task::TaskInput;
/// A group as the group form edits it (the input of `UpdateGroup`).
pub(super) type GroupInput = update_group::GroupInput;
/// A schedule as the forms edit it (the task form's type; the group form's is converted).
pub(super) type Schedule = update_task::ScheduleInput;

use crate::ops::copy_fields;

macro_rules! schedule {
    ($value:expr => $target:path) => {
        copy_fields!($value => $target { trigger_times, run_frequency, cron, days, timezone, calendar })
    };
}

macro_rules! alert_rule {
    ($value:expr => $target:path) => {
        copy_fields!($value => $target { on, at, minutes, integration, message })
    };
}

/// A task read or edited as the input of operation module `$m` (group given apart: a stored task
/// names its group as an object, an input by name).
macro_rules! task_input {
    ($t:ident, group: $group:expr => $m:ident) => {
        $m::TaskInput {
            name: $t.name,
            description: $t.description,
            owner: $t.owner,
            team: $t.team,
            instance: $t.instance,
            group: $group,
            command: $t.command,
            target: $t.target,
            run_as_user: $t.run_as_user,
            stdout_path: $t.stdout_path,
            stderr_path: $t.stderr_path,
            profile: $t.profile.into_iter().map(|p| $m::EnvVarInput { name: p.name, value: p.value }).collect(),
            active: $t.active,
            schedule: $t.schedule.map(|s| schedule!(s => $m::ScheduleInput)),
            retry_attempts: $t.retry_attempts,
            retry_delay_seconds: $t.retry_delay_seconds,
            max_run_time_seconds: $t.max_run_time_seconds,
            accept_expiry_seconds: $t.accept_expiry_seconds,
            dependency: $t.dependency,
            misfire_policy: $t.misfire_policy,
            alerts: $t.alerts.into_iter().map(|r| alert_rule!(r => $m::AlertRuleInput)).collect(),
        }
    };
}

/// A group read or edited as the input of operation module `$m`.
macro_rules! group_input {
    ($g:ident => $m:ident) => {
        $m::GroupInput {
            name: $g.name,
            description: $g.description,
            owner: $g.owner,
            team: $g.team,
            instance: $g.instance,
            active: $g.active,
            schedule: $g.schedule.map(|s| schedule!(s => $m::ScheduleInput)),
            dependency: $g.dependency,
            alerts: $g.alerts.into_iter().map(|r| alert_rule!(r => $m::AlertRuleInput)).collect(),
        }
    };
}

/// A form's text as an optional value: blank is absent.
pub(super) fn optional(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The kind of a stored schedule (`triggerTimes`, `runFrequency` or `cron`) and its text.
fn schedule_kind(s: &Schedule) -> (&'static str, String) {
    [("triggerTimes", &s.trigger_times), ("runFrequency", &s.run_frequency), ("cron", &s.cron)]
        .into_iter()
        .find_map(|(k, v)| v.clone().map(|v| (k, v)))
        .unwrap_or(("triggerTimes", String::new()))
}

/// The initial values of the fields both forms have: the schedule's, `active` and the alert
/// rules as lines.
pub(super) fn schedule_active_and_alerts(
    schedule: Option<&Schedule>,
    active: bool,
    alerts: &[AlertRule],
) -> Vec<(&'static str, String)> {
    let (kind, when) = schedule.map(schedule_kind).unwrap_or(("triggerTimes", String::new()));
    let s = |f: fn(&Schedule) -> Option<&String>| schedule.and_then(f).cloned().unwrap_or_default();
    vec![
        ("kind", kind.to_string()),
        ("when", when),
        ("days", s(|s| s.days.as_ref())),
        ("timezone", schedule.map_or_else(|| "UTC".to_string(), |s| s.timezone.clone())),
        ("calendar", s(|s| s.calendar.as_ref())),
        ("active", active.to_string()),
        ("alerts", alerts.iter().map(alert_line).collect::<Vec<_>>().join("\n")),
    ]
}

/// The schedule a form's fields describe (`kind`, `when`, `timezone`, `days`, `calendar`); no
/// `when` means no schedule.
pub(super) fn schedule_input(v: &dyn Fn(&str) -> String) -> Option<Schedule> {
    let when = optional(&v("when"))?;
    let kind = v("kind");
    Some(Schedule {
        trigger_times: (kind == "triggerTimes").then(|| when.clone()),
        run_frequency: (kind == "runFrequency").then(|| when.clone()),
        cron: (kind == "cron").then_some(when),
        days: optional(&v("days")),
        timezone: v("timezone"),
        calendar: optional(&v("calendar")),
    })
}

/// The schedule as the preview's operation takes it.
pub(super) fn preview_schedule(s: Schedule) -> ops::schedule_preview::ScheduleInput {
    schedule!(s => ops::schedule_preview::ScheduleInput)
}

/// Puts the stored values into the fields once (the fields are not bound to state, so a
/// re-render never overwrites what the user is typing).
pub(super) fn fill_fields(refs: &HashMap<&'static str, NodeRef>, values: &[(&'static str, String)]) {
    for (k, v) in values {
        let Some(r) = refs.get(k) else { continue };
        if let Some(i) = r.cast::<HtmlInputElement>() {
            if i.type_() == "checkbox" {
                i.set_checked(v == "true");
            } else {
                i.set_value(v);
            }
        } else if let Some(t) = r.cast::<HtmlTextAreaElement>() {
            t.set_value(v);
        } else if let Some(sel) = r.cast::<HtmlSelectElement>() {
            sel.set_value(v);
        }
    }
}

/// A stored task as the input that saves it unchanged.
pub(super) async fn load_task_input(tid: i64) -> Result<TaskInput, gql::Error> {
    let t = gql::run::<ops::TaskDefinition>(task_definition::Variables { tid }).await?.task;
    let group = t.group.map(|g| g.name);
    Ok(task_input!(t, group: group => update_task))
}

/// A stored group as the input that saves it unchanged.
pub(super) async fn load_group_input(gid: i64) -> Result<GroupInput, gql::Error> {
    let g = gql::run::<ops::GroupDefinition>(group_definition::Variables { gid }).await?.group;
    Ok(group_input!(g => update_group))
}

/// A group's schedule and alert rules as the forms edit them.
pub(super) fn group_schedule_and_alerts(g: &GroupInput) -> (Option<Schedule>, Vec<AlertRule>) {
    let schedule = g.schedule.clone().map(|s| schedule!(s => Schedule));
    (schedule, g.alerts.iter().cloned().map(|r| alert_rule!(r => AlertRule)).collect())
}

/// The group form's schedule and alert rules as its input takes them.
pub(super) fn group_input_parts(
    schedule: Option<Schedule>,
    alerts: Vec<AlertRule>,
) -> (Option<update_group::ScheduleInput>, Vec<update_group::AlertRuleInput>) {
    let schedule = schedule.map(|s| schedule!(s => update_group::ScheduleInput));
    (schedule, alerts.into_iter().map(|r| alert_rule!(r => update_group::AlertRuleInput)).collect())
}

/// Creates (no `tid`) or updates a task: the saved one's id and name, or the server's error with
/// its field messages.
pub(super) async fn save_task(tid: Option<i64>, t: TaskInput) -> Result<(i64, String), gql::Error> {
    Ok(match tid {
        Some(tid) => {
            let d = gql::run::<ops::UpdateTask>(update_task::Variables { tid, input: t }).await?;
            (d.update_task.tid, d.update_task.name)
        }
        None => {
            let group = t.group.clone();
            let input = task_input!(t, group: group => create_task);
            let d = gql::run::<ops::CreateTask>(create_task::Variables { input }).await?;
            (d.create_task.tid, d.create_task.name)
        }
    })
}

/// Creates (no `gid`) or updates a group, as `save_task`.
pub(super) async fn save_group(gid: Option<i64>, g: GroupInput) -> Result<(i64, String), gql::Error> {
    Ok(match gid {
        Some(gid) => {
            let d = gql::run::<ops::UpdateGroup>(update_group::Variables { gid, input: g }).await?;
            (d.update_group.gid, d.update_group.name)
        }
        None => {
            let input = group_input!(g => create_group);
            let d = gql::run::<ops::CreateGroup>(create_group::Variables { input }).await?;
            (d.create_group.gid, d.create_group.name)
        }
    })
}

/// One `NodeRef` per field name, kept across renders: a form reads its fields when it saves.
#[hook]
pub(super) fn use_field_refs(names: &'static [&'static str]) -> HashMap<&'static str, NodeRef> {
    (*use_state(|| names.iter().map(|k| (*k, NodeRef::default())).collect::<HashMap<_, _>>())).clone()
}
