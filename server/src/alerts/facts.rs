//! What an alert message can say about what happened (a run's or a group run's facts, the tail
//! of its output, its task's variables), and a rule rendered from them into a queued delivery.

use crate::db::{self, alert_deliveries::NewDelivery, DbConn, DbResult};
use baton_schema::alert::trigger_name;
use baton_schema::definition::AlertRule;
use baton_schema::ids::{AlertDeliveryId, RunId, TaskId};
use baton_schema::placeholder::{expand, PlaceholderContext};
use baton_schema::run::Reason;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// What a message can say about the thing that happened.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    pub(super) source: String,
    pub(super) task_name: String,
    pub(super) task_id: Option<TaskId>,
    pub(super) group_name: String,
    pub(super) run_id: Option<RunId>,
    pub(super) run_date: Option<NaiveDate>,
    pub(super) status: String,
    pub(super) exit_code: Option<i32>,
    pub(super) duration_seconds: Option<i64>,
    pub(super) attempt: Option<i32>,
    pub(super) reason: Option<String>,
    pub(super) stdout_tail: String,
    pub(super) env: BTreeMap<String, String>,
}

/// Lines and bytes of stdout that `${P:stdout}` and default messages carry.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2_000;

pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

impl Facts {
    pub(super) fn values(&self) -> HashMap<String, String> {
        let mut v: HashMap<String, String> = self.env.iter().map(|(k, val)| (format!("E:{k}"), val.clone())).collect();
        v.insert("T:task_name".into(), self.task_name.clone());
        v.insert("T:task_id".into(), self.task_id.map(|t| t.to_string()).unwrap_or_default());
        v.insert("T:group_name".into(), self.group_name.clone());
        v.insert("P:status".into(), self.status.clone());
        v.insert("P:exit_code".into(), self.exit_code.map(|c| c.to_string()).unwrap_or_default());
        v.insert("P:duration".into(), self.duration_seconds.map(human_duration).unwrap_or_default());
        v.insert("P:stdout".into(), self.stdout_tail.clone());
        v
    }

    /// The facts for the channels' payloads, with the placeholder `values` they may render.
    pub(super) fn details(
        &self,
        values: &HashMap<String, String>,
        trigger: &str,
        subject: &str,
        what: Option<&str>,
    ) -> serde_json::Value {
        json!({
            "source": self.source,
            "trigger": trigger,
            "subject": subject,
            "what": what,
            "task_name": self.task_name,
            "task_id": self.task_id,
            "group_name": self.group_name,
            "run_id": self.run_id,
            "run_date": self.run_date.map(|d| d.to_string()),
            "status": self.status,
            "exit_code": self.exit_code,
            "duration_seconds": self.duration_seconds,
            "attempt": self.attempt,
            "reason": self.reason,
            "values": values,
        })
    }
}

/// The last lines of an attempt's stdout, as stored (masked on the agent).
pub(super) fn stdout_tail(c: &mut DbConn, run_id: RunId, attempt: i32, bytes: i64) -> DbResult<String> {
    let from = (bytes - TAIL_BYTES as i64).max(0);
    let chunks = db::run_output::read(c, run_id, attempt, baton_schema::agent::v1::Stream::Stdout, from, 64)?;
    let text: String = chunks.iter().map(|r| r.data.as_str()).collect();
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let lines: Vec<&str> = tail.lines().collect();
    Ok(lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n"))
}

pub(super) fn task_env(
    row: &db::tasks::TaskRow,
    run_date: Option<NaiveDate>,
    slot: Option<&str>,
) -> BTreeMap<String, String> {
    // Profile values are shown as written: a `${C:key}` stays a reference, never its value.
    let mut env: BTreeMap<String, String> = serde_json::from_str(&row.profile).unwrap_or_default();
    if let Some(d) = run_date {
        env.insert("YYYYMMDD".into(), d.format("%Y%m%d").to_string());
    }
    if let Some(hhmm) = slot.and_then(|s| s.get(11..16)) {
        env.insert("HHMM".into(), hhmm.replace(':', ""));
    }
    env
}

pub(super) fn run_facts(
    c: &mut DbConn,
    run: &db::runs::RunRow,
    task: Option<&db::tasks::TaskRow>,
    now: DateTime<Utc>,
) -> DbResult<Facts> {
    let group_name = match run.group_id {
        Some(g) => db::groups::get(c, g).map(|g| g.name).unwrap_or_default(),
        None => String::new(),
    };
    let reason = run
        .reason
        .as_deref()
        .and_then(|r| serde_json::from_str::<Option<Reason>>(r).ok().flatten())
        .map(|r| r.to_string());
    let duration_seconds = match (run.started_at, run.ended_at) {
        (Some(s), Some(e)) => Some((e - s).num_seconds()),
        (Some(s), None) => Some((now.naive_utc() - s).num_seconds()),
        _ => None,
    };
    Ok(Facts {
        source: task.map_or_else(|| format!("run:{}", run.id), |t| format!("task:{}", t.id)),
        task_name: run.task_name.clone(),
        task_id: run.task_id,
        group_name,
        run_id: Some(run.id),
        run_date: Some(run.run_date),
        status: run.status.to_string(),
        exit_code: run.exit_code,
        duration_seconds,
        attempt: Some(run.attempt),
        reason,
        stdout_tail: stdout_tail(c, run.id, run.attempt, run.stdout_bytes)?,
        env: task.map(|t| task_env(t, Some(run.run_date), Some(&run.slot))).unwrap_or_default(),
    })
}

/// What a status reads as in a subject.
pub(super) fn status_words(status: &str) -> &'static str {
    match status {
        "SUCCESS" => "succeeded",
        "FAILED" => "failed",
        "TERMINATED" => "was terminated",
        "RUNNING" => "is running",
        "IDLE" => "is waiting",
        "SKIPPED" => "was skipped",
        "FROZEN" => "is frozen",
        _ => "changed",
    }
}

/// Renders a rule for `facts` and queues it; returns the delivery id (None: already queued).
pub(super) fn queue_rule(
    c: &mut DbConn,
    rule: &AlertRule,
    position: usize,
    facts: &Facts,
    occasion: &str,
    what: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<Option<AlertDeliveryId>> {
    let trigger = trigger_name(&rule.trigger);
    let who = if facts.task_name.is_empty() { facts.group_name.as_str() } else { facts.task_name.as_str() };
    let subject = match (what, trigger) {
        (Some(w), _) => format!("[Baton] {who} {w}"),
        (None, "retry") => format!("[Baton] {who} failed attempt {}, retrying", facts.attempt.unwrap_or(1)),
        (None, "timeout") => format!("[Baton] {who} timed out"),
        (None, _) => format!("[Baton] {who} {}", status_words(&facts.status)),
    };
    let values = facts.values();
    let message = match &rule.message {
        Some(m) => expand(m, PlaceholderContext::Alert, &values).unwrap_or_else(|_| m.clone()),
        None => default_message(facts, &subject),
    };
    let details = facts.details(&values, trigger, &subject, what);
    let new = NewDelivery {
        dedupe_key: format!("{}:rule{position}:{trigger}:{occasion}", facts.source),
        integration: rule.integration.clone(),
        source: facts.source.clone(),
        run_id: facts.run_id,
        trigger_on: trigger.to_string(),
        subject,
        message,
        details: details.to_string(),
    };
    db::alert_deliveries::enqueue(c, &new, now)
}

pub(super) fn default_message(f: &Facts, subject: &str) -> String {
    let mut m = subject.trim_start_matches("[Baton] ").to_string();
    if let Some(r) = &f.reason {
        m.push_str(&format!(": {r}"));
    }
    let mut facts = Vec::new();
    if let Some(id) = f.run_id {
        facts.push(format!("run {id}"));
    }
    if let Some(d) = f.run_date {
        facts.push(format!("run date {d}"));
    }
    if let Some(a) = f.attempt.filter(|a| *a > 1) {
        facts.push(format!("attempt {a}"));
    }
    if let Some(c) = f.exit_code {
        facts.push(format!("exit code {c}"));
    }
    if let Some(s) = f.duration_seconds {
        facts.push(format!("duration {}", human_duration(s)));
    }
    if !facts.is_empty() {
        m.push_str(&format!(" ({})", facts.join(", ")));
    }
    if !f.stdout_tail.is_empty() && f.status != "SUCCESS" {
        m.push_str(&format!("\n\nLast output:\n{}", f.stdout_tail));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        assert_eq!(human_duration(3725), "1h 02m 05s");
        assert_eq!(human_duration(65), "1m 05s");
    }

    #[test]
    fn messages_render_their_placeholders() {
        let facts = Facts {
            source: "task:3".into(),
            task_name: "load".into(),
            task_id: Some(baton_schema::ids::TaskId(3)),
            status: "FAILED".into(),
            exit_code: Some(2),
            duration_seconds: Some(61),
            stdout_tail: "row 9 bad".into(),
            env: [("REGION".to_string(), "eu".to_string())].into(),
            ..Default::default()
        };
        let m = expand(
            "${T:task_name}/${T:task_id} ${P:status} ${P:exit_code} ${P:duration} ${E:REGION}: ${P:stdout}",
            PlaceholderContext::Alert,
            &facts.values(),
        )
        .unwrap();
        assert_eq!(m, "load/3 FAILED 2 1m 01s eu: row 9 bad");
        let d = default_message(&facts, "[Baton] load failed");
        assert_eq!(d, "load failed (exit code 2, duration 1m 01s)\n\nLast output:\nrow 9 bad");
    }
}
