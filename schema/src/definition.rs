//! Task and group definitions: the draft a user types, and the validated definition it parses into.
//!
//! Every rule of the spec that can be judged on one definition is enforced here; the rules that
//! need the rest of the instance (the group exists, dependency names exist, no cycle) are in
//! [`check_group_members`], so the server, the import and the UI all apply the same ones.

use crate::dependency::{check_graph, DependencyExpr};
use crate::error::{FieldError, FieldErrors};
use crate::ids::{GroupId, TaskId};
use crate::names::{GroupName, InstanceName, RunAsUser, Target, TaskName};
use crate::placeholder::{scan, PlaceholderContext};
use crate::run::RetryPolicy;
use crate::schedule::{Schedule, ScheduleDraft};
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_RUN_TIME_SECONDS: i64 = 82_800;
pub const MAX_RETRY_ATTEMPTS: i64 = 10;

fn default_true() -> bool {
    true
}
fn default_instance() -> String {
    "default".into()
}
fn default_retry_delay() -> i64 {
    60
}
fn default_max_run_time() -> i64 {
    3600
}
fn default_accept_expiry() -> i64 {
    300
}
fn default_misfire() -> String {
    "run_once".into()
}
fn is_default_misfire(s: &String) -> bool {
    s == "run_once"
}

/// What to do with slots missed while the server was down (within the grace period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    #[default]
    RunOnce,
    RunAll,
    Skip,
}

impl MisfirePolicy {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "run_once" => Ok(Self::RunOnce),
            "run_all" => Ok(Self::RunAll),
            "skip" => Ok(Self::Skip),
            other => {
                Err(FieldError::new("misfire_policy", "one_of", format!("{other:?} must be run_once, run_all or skip")))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunOnce => "run_once",
            Self::RunAll => "run_all",
            Self::Skip => "skip",
        }
    }
}

/// When an alert rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum AlertTrigger {
    Failure,
    Success,
    Always,
    Retry,
    Timeout,
    /// The run has not started by this local time of its run date.
    NotStartedBy {
        at: NaiveTime,
    },
    /// The run is still running at this local time of its run date.
    StillRunningAt {
        at: NaiveTime,
    },
    /// The run has been running longer than this.
    LongerThan {
        minutes: u32,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleDraft {
    /// failure, success, always, retry, timeout, not_started_by, still_running_at, longer_than
    pub on: String,
    /// `HH:MM`, for not_started_by and still_running_at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// For longer_than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<i64>,
    /// The integration's name.
    pub integration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub trigger: AlertTrigger,
    pub integration: String,
    pub message: Option<String>,
}

impl AlertRule {
    pub fn parse(d: &AlertRuleDraft) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let at = || -> Result<NaiveTime, FieldError> {
            let raw =
                d.at.as_deref()
                    .ok_or_else(|| FieldError::new("at", "required", format!("{} needs at: HH:MM", d.on)))?;
            crate::schedule::parse_time(raw).map_err(|e| FieldError { field: "at".into(), ..e })
        };
        let trigger = match d.on.as_str() {
            "failure" => Some(AlertTrigger::Failure),
            "success" => Some(AlertTrigger::Success),
            "always" => Some(AlertTrigger::Always),
            "retry" => Some(AlertTrigger::Retry),
            "timeout" => Some(AlertTrigger::Timeout),
            "not_started_by" => errors.take(at()).map(|at| AlertTrigger::NotStartedBy { at }),
            "still_running_at" => errors.take(at()).map(|at| AlertTrigger::StillRunningAt { at }),
            "longer_than" => match d.minutes {
                Some(m) if (1..=10_080).contains(&m) => Some(AlertTrigger::LongerThan { minutes: m as u32 }),
                _ => {
                    errors.push(FieldError::new("minutes", "range", "longer_than needs minutes between 1 and 10080"));
                    None
                }
            },
            other => {
                errors.push(FieldError::new(
                    "on",
                    "one_of",
                    format!("{other:?} must be failure, success, always, retry, timeout, not_started_by, still_running_at or longer_than"),
                ));
                None
            }
        };
        if d.integration.trim().is_empty() {
            errors.push(FieldError::new("integration", "required", "name the integration to notify"));
        }
        if let Some(m) = &d.message {
            errors.take(scan("message", m, PlaceholderContext::Alert));
        }
        errors.into_result(|| AlertRule {
            trigger: trigger.expect("checked"),
            integration: d.integration.trim().to_string(),
            message: d.message.clone(),
        })
    }

    pub fn to_draft(&self) -> AlertRuleDraft {
        let (on, at, minutes) = match self.trigger {
            AlertTrigger::Failure => ("failure", None, None),
            AlertTrigger::Success => ("success", None, None),
            AlertTrigger::Always => ("always", None, None),
            AlertTrigger::Retry => ("retry", None, None),
            AlertTrigger::Timeout => ("timeout", None, None),
            AlertTrigger::NotStartedBy { at } => ("not_started_by", Some(at.format("%H:%M").to_string()), None),
            AlertTrigger::StillRunningAt { at } => ("still_running_at", Some(at.format("%H:%M").to_string()), None),
            AlertTrigger::LongerThan { minutes } => ("longer_than", None, Some(i64::from(minutes))),
        };
        AlertRuleDraft {
            on: on.into(),
            at,
            minutes,
            integration: self.integration.clone(),
            message: self.message.clone(),
        }
    }
}

/// A task as typed in a form or found in an import document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDraft {
    /// The TID when updating or importing by id; absent when creating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<TaskId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub team: String,
    #[serde(default = "default_instance")]
    pub instance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_path: Option<String>,
    #[serde(default)]
    pub profile: BTreeMap<String, String>,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleDraft>,
    #[serde(default)]
    pub retry_attempts: i64,
    #[serde(default = "default_retry_delay")]
    pub retry_delay_seconds: i64,
    #[serde(default = "default_max_run_time")]
    pub max_run_time_seconds: i64,
    #[serde(default = "default_accept_expiry")]
    pub accept_expiry_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    #[serde(default = "default_misfire", skip_serializing_if = "is_default_misfire")]
    pub misfire_policy: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRuleDraft>,
}

impl TaskDraft {
    /// A draft with every optional field at its default.
    pub fn new(name: &str, command: &str, target: &str, run_as_user: &str) -> Self {
        Self {
            tid: None,
            name: name.into(),
            description: String::new(),
            owner: String::new(),
            team: String::new(),
            instance: default_instance(),
            group: None,
            command: command.into(),
            target: target.into(),
            run_as_user: run_as_user.into(),
            stdout_path: None,
            stderr_path: None,
            profile: BTreeMap::new(),
            active: true,
            schedule: None,
            retry_attempts: 0,
            retry_delay_seconds: default_retry_delay(),
            max_run_time_seconds: default_max_run_time(),
            accept_expiry_seconds: default_accept_expiry(),
            dependency: None,
            misfire_policy: default_misfire(),
            alerts: Vec::new(),
        }
    }
}

/// A validated task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub tid: Option<TaskId>,
    pub name: TaskName,
    pub description: String,
    pub owner: String,
    pub team: String,
    pub instance: InstanceName,
    pub group: Option<GroupName>,
    pub command: String,
    pub target: Target,
    pub run_as_user: RunAsUser,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub profile: BTreeMap<String, String>,
    pub active: bool,
    pub schedule: Option<Schedule>,
    pub retry: RetryPolicy,
    pub max_run_time_seconds: u32,
    pub accept_expiry_seconds: u32,
    pub dependency: Option<DependencyExpr>,
    pub misfire_policy: MisfirePolicy,
    pub alerts: Vec<AlertRule>,
}

fn check_len(errors: &mut FieldErrors, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.push(FieldError::new(field, "max_length", format!("must be at most {max} characters")));
    }
}

fn check_range(errors: &mut FieldErrors, field: &str, value: i64, min: i64, max: i64) -> u32 {
    if value < min || value > max {
        errors.push(FieldError::new(field, "range", format!("{value} must be between {min} and {max}")));
        0
    } else {
        value as u32
    }
}

fn check_path(errors: &mut FieldErrors, field: &str, value: &Option<String>) -> Option<String> {
    let v = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
    if !v.starts_with('/') {
        errors.push(FieldError::new(field, "absolute_path", "must be an absolute path on the agent's host"));
    }
    check_len(errors, field, v, 4096);
    errors.take(scan(field, v, PlaceholderContext::Command));
    Some(v.to_string())
}

fn check_alerts(errors: &mut FieldErrors, alerts: &[AlertRuleDraft]) -> Vec<AlertRule> {
    let mut out = Vec::new();
    for (i, a) in alerts.iter().enumerate() {
        match AlertRule::parse(a) {
            Ok(r) => out.push(r),
            Err(e) => errors.extend_under(&format!("alerts[{i}]"), e),
        }
    }
    out
}

fn parse_dependency(errors: &mut FieldErrors, raw: &Option<String>) -> Option<DependencyExpr> {
    let raw = raw.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    errors.take(DependencyExpr::parse(raw).map_err(|e| e.into_field_error()))
}

fn parse_schedule(errors: &mut FieldErrors, draft: &Option<ScheduleDraft>) -> Option<Schedule> {
    match Schedule::parse(draft.as_ref()?) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend_under("schedule", e);
            None
        }
    }
}

fn named<T>(r: Result<T, FieldError>, field: &str) -> Result<T, FieldError> {
    r.map_err(|e| FieldError { field: field.into(), ..e })
}

impl TaskDef {
    /// The credential keys its profile names with `${C:key}`, in order, each once.
    pub fn credential_keys(&self) -> Vec<crate::names::CredentialKey> {
        let mut keys = Vec::new();
        for (k, v) in &self.profile {
            for key in crate::placeholder::credential_refs(k, v).unwrap_or_default() {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    pub fn parse(d: &TaskDraft) -> Result<TaskDef, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = errors.take(TaskName::parse(&d.name));
        check_len(&mut errors, "description", &d.description, 4096);
        check_len(&mut errors, "owner", &d.owner, 128);
        check_len(&mut errors, "team", &d.team, 128);
        let instance = errors.take(InstanceName::parse(&d.instance));
        let group = match d.group.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) => errors.take(named(GroupName::parse(g), "group")),
            None => None,
        };
        if d.command.trim().is_empty() {
            errors.push(FieldError::new("command", "required", "must not be empty"));
        }
        check_len(&mut errors, "command", &d.command, 65_536);
        errors.take(scan("command", &d.command, PlaceholderContext::Command));
        let target = errors.take(Target::parse(&d.target));
        let run_as_user = errors.take(RunAsUser::parse(&d.run_as_user));
        let stdout_path = check_path(&mut errors, "stdout_path", &d.stdout_path);
        let stderr_path = check_path(&mut errors, "stderr_path", &d.stderr_path);
        for (k, v) in &d.profile {
            let field = format!("profile.{k}");
            let valid_name = {
                let mut c = k.chars();
                matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
                    && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !valid_name {
                errors.push(FieldError::new(
                    &field,
                    "env_name",
                    "an environment variable name: letters, digits and '_', not starting with a digit",
                ));
            } else if k.starts_with("BATON_") {
                errors.push(FieldError::new(&field, "reserved", "BATON_* variables are set by Baton"));
            }
            if v.contains('\0') {
                errors.push(FieldError::new(&field, "no_nul", "must not contain a NUL character"));
            }
            errors.take(crate::placeholder::credential_refs(&field, v));
            check_len(&mut errors, &field, v, 32_768);
        }
        let schedule = parse_schedule(&mut errors, &d.schedule);
        let retry_attempts = check_range(&mut errors, "retry_attempts", d.retry_attempts, 0, MAX_RETRY_ATTEMPTS);
        let retry_delay_seconds = check_range(&mut errors, "retry_delay_seconds", d.retry_delay_seconds, 0, 86_400);
        let max_run_time_seconds =
            check_range(&mut errors, "max_run_time_seconds", d.max_run_time_seconds, 1, MAX_RUN_TIME_SECONDS);
        let accept_expiry_seconds =
            check_range(&mut errors, "accept_expiry_seconds", d.accept_expiry_seconds, 1, 86_400);
        let dependency = parse_dependency(&mut errors, &d.dependency);
        let misfire_policy = errors.take(MisfirePolicy::parse(&d.misfire_policy));
        let alerts = check_alerts(&mut errors, &d.alerts);
        if d.group.as_deref().is_some_and(|g| !g.trim().is_empty()) {
            if d.schedule.is_some() {
                errors.push(FieldError::new(
                    "schedule",
                    "inherited",
                    "a grouped task inherits its group's schedule and must not set its own",
                ));
            }
        } else if d.dependency.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            errors.push(FieldError::new(
                "dependency",
                "grouped_only",
                "only a task in a group can depend on other tasks",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(name), Some(instance), Some(target), Some(run_as_user), Some(misfire_policy)) =
            (name, instance, target, run_as_user, misfire_policy)
        else {
            return Err(errors);
        };
        Ok(TaskDef {
            tid: d.tid,
            name,
            description: d.description.clone(),
            owner: d.owner.trim().to_string(),
            team: d.team.trim().to_string(),
            instance,
            group,
            command: d.command.clone(),
            target,
            run_as_user,
            stdout_path,
            stderr_path,
            profile: d.profile.clone(),
            active: d.active,
            schedule,
            retry: RetryPolicy { retry_attempts, retry_delay_seconds },
            max_run_time_seconds,
            accept_expiry_seconds,
            dependency,
            misfire_policy,
            alerts,
        })
    }

    pub fn to_draft(&self) -> TaskDraft {
        TaskDraft {
            tid: self.tid,
            name: self.name.to_string(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            team: self.team.clone(),
            instance: self.instance.to_string(),
            group: self.group.as_ref().map(ToString::to_string),
            command: self.command.clone(),
            target: self.target.to_string(),
            run_as_user: self.run_as_user.to_string(),
            stdout_path: self.stdout_path.clone(),
            stderr_path: self.stderr_path.clone(),
            profile: self.profile.clone(),
            active: self.active,
            schedule: self.schedule.as_ref().map(Schedule::to_draft),
            retry_attempts: i64::from(self.retry.retry_attempts),
            retry_delay_seconds: i64::from(self.retry.retry_delay_seconds),
            max_run_time_seconds: i64::from(self.max_run_time_seconds),
            accept_expiry_seconds: i64::from(self.accept_expiry_seconds),
            dependency: self.dependency.as_ref().map(ToString::to_string),
            misfire_policy: self.misfire_policy.as_str().to_string(),
            alerts: self.alerts.iter().map(AlertRule::to_draft).collect(),
        }
    }
}

/// A group as typed in a form or found in an import document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<GroupId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub team: String,
    #[serde(default = "default_instance")]
    pub instance: String,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleDraft>,
    /// An expression over same-day states of other groups of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRuleDraft>,
}

impl GroupDraft {
    pub fn new(name: &str) -> Self {
        Self {
            gid: None,
            name: name.into(),
            description: String::new(),
            owner: String::new(),
            team: String::new(),
            instance: default_instance(),
            active: true,
            schedule: None,
            dependency: None,
            alerts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDef {
    pub gid: Option<GroupId>,
    pub name: GroupName,
    pub description: String,
    pub owner: String,
    pub team: String,
    pub instance: InstanceName,
    pub active: bool,
    pub schedule: Option<Schedule>,
    pub dependency: Option<DependencyExpr>,
    pub alerts: Vec<AlertRule>,
}

impl GroupDef {
    pub fn parse(d: &GroupDraft) -> Result<GroupDef, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = errors.take(GroupName::parse(&d.name));
        check_len(&mut errors, "description", &d.description, 4096);
        check_len(&mut errors, "owner", &d.owner, 128);
        check_len(&mut errors, "team", &d.team, 128);
        let instance = errors.take(InstanceName::parse(&d.instance));
        let schedule = parse_schedule(&mut errors, &d.schedule);
        let dependency = parse_dependency(&mut errors, &d.dependency);
        let alerts = check_alerts(&mut errors, &d.alerts);
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(name), Some(instance)) = (name, instance) else {
            return Err(errors);
        };
        Ok(GroupDef {
            gid: d.gid,
            name,
            description: d.description.clone(),
            owner: d.owner.trim().to_string(),
            team: d.team.trim().to_string(),
            instance,
            active: d.active,
            schedule,
            dependency,
            alerts,
        })
    }

    pub fn to_draft(&self) -> GroupDraft {
        GroupDraft {
            gid: self.gid,
            name: self.name.to_string(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            team: self.team.clone(),
            instance: self.instance.to_string(),
            active: self.active,
            schedule: self.schedule.as_ref().map(Schedule::to_draft),
            dependency: self.dependency.as_ref().map(ToString::to_string),
            alerts: self.alerts.iter().map(AlertRule::to_draft).collect(),
        }
    }
}

/// Checks the dependencies among the members of one group (or among the groups of one instance):
/// every name exists among `members`, and there is no cycle. Errors name the field and the cycle.
pub fn check_group_members<'a>(
    members: impl IntoIterator<Item = (&'a str, Option<&'a DependencyExpr>)>,
) -> Result<(), FieldError> {
    let nodes: BTreeMap<String, Option<DependencyExpr>> =
        members.into_iter().map(|(n, e)| (n.to_string(), e.cloned())).collect();
    check_graph(&nodes).map_err(|e| e.into_field_error())
}

/// What a definition change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Task,
    Group,
    Calendar,
    /// A whole instance, after an import.
    Instance,
}

impl ChangeKind {
    /// As stored for other servers and as the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Group => "group",
            Self::Calendar => "calendar",
            Self::Instance => "instance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Task, Self::Group, Self::Calendar, Self::Instance].into_iter().find(|k| k.as_str() == s)
    }
}

impl TryFrom<String> for ChangeKind {
    type Error = crate::error::UnknownWord;
    fn try_from(word: String) -> Result<Self, Self::Error> {
        Self::parse(&word).ok_or(crate::error::UnknownWord { what: "a kind of definition change", word })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> TaskDraft {
        let mut d = TaskDraft::new("extract", "run.sh ${E:YYYYMMDD}", "etl-hosts", "batch");
        d.schedule = Some(ScheduleDraft {
            trigger_times: Some("02:00".into()),
            timezone: "Europe/London".into(),
            ..Default::default()
        });
        d
    }

    fn rules(d: &TaskDraft) -> Vec<(String, String)> {
        TaskDef::parse(d).unwrap_err().0.into_iter().map(|e| (e.field, e.rule)).collect()
    }

    #[test]
    fn a_valid_task_round_trips() {
        let mut d = valid();
        d.profile.insert("PATH".into(), "/usr/bin".into());
        d.alerts.push(AlertRuleDraft {
            on: "not_started_by".into(),
            at: Some("06:30".into()),
            minutes: None,
            integration: "ops".into(),
            message: Some("${T:task_name} late".into()),
        });
        let t = TaskDef::parse(&d).unwrap();
        assert_eq!(t.to_draft(), d);
    }

    #[test]
    fn every_rule_names_its_field() {
        type Mutation = Box<dyn Fn(&mut TaskDraft)>;
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (Box::new(|d| d.name = "bad name".into()), "name", "charset"),
            (Box::new(|d| d.command = " ".into()), "command", "required"),
            (Box::new(|d| d.command = "echo ${T:nope}".into()), "command", "placeholder"),
            (Box::new(|d| d.target = "".into()), "target", "required"),
            (Box::new(|d| d.run_as_user = "9x".into()), "run_as_user", "posix_user"),
            (Box::new(|d| d.stdout_path = Some("relative/out.log".into())), "stdout_path", "absolute_path"),
            (Box::new(|d| d.stderr_path = Some("/x/${P:status}".into())), "stderr_path", "placeholder"),
            (
                Box::new(|d| {
                    d.profile.insert("BATON_RUN_ID".into(), "1".into());
                }),
                "profile.BATON_RUN_ID",
                "reserved",
            ),
            (
                Box::new(|d| {
                    d.profile.insert("1X".into(), "1".into());
                }),
                "profile.1X",
                "env_name",
            ),
            (Box::new(|d| d.retry_attempts = 11), "retry_attempts", "range"),
            (Box::new(|d| d.retry_attempts = -1), "retry_attempts", "range"),
            (Box::new(|d| d.max_run_time_seconds = 0), "max_run_time_seconds", "range"),
            (Box::new(|d| d.max_run_time_seconds = 82_801), "max_run_time_seconds", "range"),
            (Box::new(|d| d.accept_expiry_seconds = 0), "accept_expiry_seconds", "range"),
            (Box::new(|d| d.misfire_policy = "twice".into()), "misfire_policy", "one_of"),
            (Box::new(|d| d.dependency = Some("S:other".into())), "dependency", "grouped_only"),
            (Box::new(|d| d.group = Some("etl".into())), "schedule", "inherited"),
            (
                Box::new(|d| {
                    d.group = Some("etl".into());
                    d.schedule = None;
                    d.dependency = Some("S:a and".into());
                }),
                "dependency",
                "dependency_syntax",
            ),
            (
                Box::new(|d| d.schedule.as_mut().unwrap().timezone = "Nowhere".into()),
                "schedule.timezone",
                "iana_timezone",
            ),
            (Box::new(|d| d.instance = "".into()), "instance", "required"),
            (Box::new(|d| d.description = "x".repeat(4097)), "description", "max_length"),
            (
                Box::new(|d| {
                    d.alerts.push(AlertRuleDraft {
                        on: "sometimes".into(),
                        integration: "x".into(),
                        ..Default::default()
                    })
                }),
                "alerts[0].on",
                "one_of",
            ),
            (
                Box::new(|d| {
                    d.alerts.push(AlertRuleDraft {
                        on: "failure".into(),
                        integration: "x".into(),
                        message: Some("${P:nope}".into()),
                        ..Default::default()
                    })
                }),
                "alerts[0].message",
                "placeholder",
            ),
        ];
        for (mutate, field, rule) in cases {
            let mut d = valid();
            mutate(&mut d);
            assert_eq!(rules(&d), vec![(field.to_string(), rule.to_string())], "{field}/{rule}");
        }
    }

    #[test]
    fn grouped_task_with_dependency() {
        let mut d = valid();
        d.schedule = None;
        d.group = Some("nightly".into());
        d.dependency = Some("(S:a) and ((S:b) or (F:c))".into());
        let t = TaskDef::parse(&d).unwrap();
        assert_eq!(t.dependency.unwrap().to_string(), "S:a and (S:b or F:c)");
    }

    #[test]
    fn group_members_checked_together() {
        let a = DependencyExpr::parse("S:c").unwrap();
        let c = DependencyExpr::parse("S:a").unwrap();
        let e = check_group_members([("a", Some(&a)), ("b", None), ("c", Some(&c))]).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str(), e.message.as_str()),
            ("dependency", "cycle", "dependency cycle: a -> c -> a")
        );
    }

    #[test]
    fn group_rules() {
        let mut g = GroupDraft::new("nightly");
        g.schedule =
            Some(ScheduleDraft { cron: Some("0 2 * * *".into()), timezone: "UTC".into(), ..Default::default() });
        assert_eq!(GroupDef::parse(&g).unwrap().to_draft(), g);
        g.name = "night-ly".into();
        g.schedule.as_mut().unwrap().cron = Some("0 2 * *".into());
        let e = GroupDef::parse(&g).unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(got, vec![("name", "charset"), ("schedule.cron", "cron_fields")]);
    }
}
