//! Alerts: turns run transitions, group run ends and passed deadlines into deliveries queued in
//! storage, and a worker thread that sends them, retrying with backoff and logging each attempt.
//! Nothing here runs on the engine's path: the engine only publishes, and queueing reads the bus.

pub mod send;

use crate::db::{self, alert_deliveries::NewDelivery, alert_rules::Owner, Db, DbConn, DbResult};
use crate::driver::RunUpdate;
use crate::vault::Vault;
use baton_schema::alert::{answers, deadline_due, trigger_name, RunFact};
use baton_schema::definition::AlertRule;
use baton_schema::placeholder::{expand, PlaceholderContext};
use baton_schema::run::{Reason, RunStatus};
use baton_schema::schedule::{Schedule, ScheduleDraft};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::broadcast;

/// How alerts are delivered and deadlines watched.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPolicy {
    /// Attempts at one delivery before it is given up.
    pub attempts: u32,
    /// The wait before the first retry; each next one waits twice as long (at most an hour).
    pub retry_base: std::time::Duration,
    /// How often deadlines are checked.
    pub check_every: std::time::Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            retry_base: std::time::Duration::from_secs(2),
            check_every: std::time::Duration::from_secs(15),
        }
    }
}

impl AlertPolicy {
    /// When attempt `attempt` (1-based) failed at `now`: when to try again, if at all.
    pub fn next_attempt(&self, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempt >= self.attempts {
            return None;
        }
        let factor = 1u32 << (attempt.saturating_sub(1)).min(20);
        let wait = self.retry_base.saturating_mul(factor).min(std::time::Duration::from_secs(3600));
        Some(now + Duration::from_std(wait).unwrap_or(Duration::hours(1)))
    }
}

/// A group run that ended, as the engine announces it.
#[derive(Debug, Clone)]
pub struct GroupRunEnd {
    pub group_id: i64,
    pub group_run_id: i64,
    pub run_date: NaiveDate,
    /// SUCCESS or FAILED.
    pub status: String,
}

/// Wakes the delivery worker when something is queued.
#[derive(Default)]
struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    fn ring(&self) {
        if let Ok(mut r) = self.rung.lock() {
            *r = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self, at_most: std::time::Duration) {
        if let Ok(r) = self.rung.lock() {
            if let Ok((mut r, _)) = self.cv.wait_timeout_while(r, at_most, |rung| !*rung) {
                *r = false;
            }
        }
    }
}

pub struct Alerts {
    db: Db,
    vault: Arc<Vault>,
    policy: AlertPolicy,
    bell: Arc<Bell>,
    /// The id of the delivery last attempted (a test alert waits for its own).
    attempted: tokio::sync::watch::Sender<i64>,
    /// Names of the tasks that have alert rules (None: to be read again). A run of any other
    /// task ends without a query: with SQLite's one connection, a query per run would compete
    /// with the writer on every run.
    with_rules: Mutex<Option<std::collections::HashSet<String>>>,
}

/// What a message can say about the thing that happened.
#[derive(Debug, Clone, Default)]
struct Facts {
    source: String,
    task_name: String,
    task_id: Option<i64>,
    group_name: String,
    run_id: Option<i64>,
    run_date: Option<NaiveDate>,
    status: String,
    exit_code: Option<i32>,
    duration_seconds: Option<i64>,
    attempt: Option<i32>,
    reason: Option<String>,
    stdout_tail: String,
    env: BTreeMap<String, String>,
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
    fn values(&self) -> HashMap<String, String> {
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
    fn details(
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
fn stdout_tail(c: &mut DbConn, run_id: i64, attempt: i32, bytes: i64) -> DbResult<String> {
    let from = (bytes - TAIL_BYTES as i64).max(0);
    let chunks = db::run_output::read(c, run_id, attempt, "stdout", from, 64)?;
    let text: String = chunks.iter().map(|r| r.data.as_str()).collect();
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let lines: Vec<&str> = tail.lines().collect();
    Ok(lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n"))
}

fn task_env(row: &db::tasks::TaskRow, run_date: Option<NaiveDate>, slot: Option<&str>) -> BTreeMap<String, String> {
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

fn run_facts(c: &mut DbConn, run: &db::runs::RunRow, task: Option<&db::tasks::TaskRow>) -> DbResult<Facts> {
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
        (Some(s), None) => Some((Utc::now().naive_utc() - s).num_seconds()),
        _ => None,
    };
    Ok(Facts {
        source: task.map_or_else(|| format!("run:{}", run.id), |t| format!("task:{}", t.id)),
        task_name: run.task_name.clone(),
        task_id: run.task_id,
        group_name,
        run_id: Some(run.id),
        run_date: Some(run.run_date),
        status: run.status.clone(),
        exit_code: run.exit_code,
        duration_seconds,
        attempt: Some(run.attempt),
        reason,
        stdout_tail: stdout_tail(c, run.id, run.attempt, run.stdout_bytes)?,
        env: task.map(|t| task_env(t, Some(run.run_date), Some(&run.slot))).unwrap_or_default(),
    })
}

/// What a status reads as in a subject.
fn status_words(status: &str) -> &'static str {
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
fn queue_rule(
    c: &mut DbConn,
    rule: &AlertRule,
    position: usize,
    facts: &Facts,
    occasion: &str,
    what: Option<&str>,
) -> DbResult<Option<i64>> {
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
    db::alert_deliveries::enqueue(c, &new, Utc::now())
}

fn default_message(f: &Facts, subject: &str) -> String {
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

fn rules_of(c: &mut DbConn, owner: Owner) -> DbResult<Vec<AlertRule>> {
    db::alert_rules::of(c, owner)?.iter().map(|r| r.to_rule()).collect()
}

/// The run dates a deadline check judges (yesterday and today in the schedule's timezone), each
/// with whether the schedule runs that day (its days and calendar allow it), and the timezone.
fn judged_days(
    c: &mut DbConn,
    instance_id: i64,
    schedule: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<(chrono_tz::Tz, Vec<(NaiveDate, bool)>)> {
    let schedule =
        schedule.and_then(|s| serde_json::from_str::<ScheduleDraft>(s).ok()).and_then(|d| Schedule::parse(&d).ok());
    let tz = schedule.as_ref().map_or(chrono_tz::UTC, |s| s.timezone);
    let calendar = match schedule.as_ref().and_then(|s| s.calendar.as_ref()) {
        Some(n) => db::calendars::load(c, instance_id, n.as_str())?,
        None => None,
    };
    let today = now.with_timezone(&tz).date_naive();
    let days = today
        .pred_opt()
        .into_iter()
        .chain([today])
        .map(|date| {
            let runs = schedule.as_ref().is_some_and(|s| {
                let midnight = baton_schema::schedule::resolve_local(tz, date.and_time(chrono::NaiveTime::MIN));
                baton_schema::schedule::slots_after(s, calendar.as_ref(), midnight - Duration::seconds(1))
                    .take_while(|slot| slot.run_date <= date)
                    .any(|slot| slot.run_date == date && slot.holiday.is_none())
            });
            (date, runs)
        })
        .collect();
    Ok((tz, days))
}

fn fact_of(started: Option<chrono::NaiveDateTime>, ended: Option<chrono::NaiveDateTime>, id: i64) -> RunFact {
    RunFact { run_id: id, started_at: started.map(db::utc), ended_at: ended.map(db::utc) }
}

/// The deadline alerts of every rule that has one, judged at `now`; returns how many were queued.
pub fn check_deadlines(c: &mut DbConn, now: DateTime<Utc>) -> DbResult<usize> {
    let mut queued = 0;
    for row in db::alert_rules::with_deadlines(c)? {
        let rule = row.to_rule()?;
        let position = usize::try_from(row.position).unwrap_or(0);
        match (row.task_id, row.group_id) {
            (Some(tid), _) => {
                let task = db::tasks::get(c, tid)?;
                if !task.active {
                    continue;
                }
                let schedule = match task.group_id {
                    Some(g) => db::groups::get(c, g)?.schedule,
                    None => task.schedule.clone(),
                };
                let (tz, days) = judged_days(c, task.instance_id, schedule.as_deref(), now)?;
                for (date, expected) in days {
                    if before_definition(&rule.trigger, date, tz, task.updated_at) {
                        continue;
                    }
                    let runs: Vec<_> = db::runs::of_task_on_date(c, tid, date)?;
                    let facts_in: Vec<RunFact> = runs.iter().map(|r| fact_of(r.started_at, r.ended_at, r.id)).collect();
                    for due in deadline_due(&rule.trigger, date, tz, expected, &facts_in, now) {
                        let facts = match due.run_id.and_then(|id| runs.iter().find(|r| r.id == id)) {
                            Some(run) => run_facts(c, run, Some(&task))?,
                            None => Facts {
                                source: format!("task:{tid}"),
                                task_name: task.name.clone(),
                                task_id: Some(tid),
                                run_date: Some(date),
                                status: "NOT STARTED".into(),
                                env: task_env(&task, Some(date), None),
                                ..Default::default()
                            },
                        };
                        if queue_rule(c, &rule, position, &facts, &due.occasion, Some(&due.what))?.is_some() {
                            queued += 1;
                        }
                    }
                }
            }
            (None, Some(gid)) => {
                let group = db::groups::get(c, gid)?;
                if !group.active {
                    continue;
                }
                let (tz, days) = judged_days(c, group.instance_id, group.schedule.as_deref(), now)?;
                for (date, expected) in days {
                    if before_definition(&rule.trigger, date, tz, group.updated_at) {
                        continue;
                    }
                    let runs = db::group_runs::of_group_on(c, gid, date)?;
                    let facts_in: Vec<RunFact> = runs.iter().map(|r| fact_of(r.started_at, r.ended_at, r.id)).collect();
                    for due in deadline_due(&rule.trigger, date, tz, expected, &facts_in, now) {
                        let status = due
                            .run_id
                            .and_then(|id| runs.iter().find(|r| r.id == id))
                            .map_or_else(|| "NOT STARTED".to_string(), |r| r.status.clone());
                        let facts = Facts {
                            source: format!("group:{gid}"),
                            group_name: group.name.clone(),
                            run_date: Some(date),
                            status,
                            ..Default::default()
                        };
                        if queue_rule(c, &rule, position, &facts, &due.occasion, Some(&due.what))?.is_some() {
                            queued += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(queued)
}

/// Whether a time-of-day deadline fell before the definition was last saved (its rules did not
/// apply yet: a task created at noon is not late for 06:00 that morning).
fn before_definition(
    trigger: &baton_schema::definition::AlertTrigger,
    date: NaiveDate,
    tz: chrono_tz::Tz,
    saved: chrono::NaiveDateTime,
) -> bool {
    use baton_schema::definition::AlertTrigger::{NotStartedBy, StillRunningAt};
    match trigger {
        NotStartedBy { at } | StillRunningAt { at } => {
            baton_schema::alert::deadline_instant(date, *at, tz) < db::utc(saved)
        }
        _ => false,
    }
}

/// The next message of a bus, past any it fell behind on (logged); None once it is closed.
async fn next<T: Clone>(rx: &mut broadcast::Receiver<T>, what: &str) -> Option<T> {
    loop {
        match rx.recv().await {
            Ok(m) => return Some(m),
            Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "alerts fell behind the {what}"),
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

impl Alerts {
    /// Starts queueing from the driver's transitions and the engine's group run ends, the
    /// deadline watch, and the delivery worker.
    pub fn start(
        db: Db,
        vault: Arc<Vault>,
        policy: AlertPolicy,
        mut updates: broadcast::Receiver<RunUpdate>,
        mut group_ends: broadcast::Receiver<GroupRunEnd>,
    ) -> anyhow::Result<Arc<Alerts>> {
        let alerts = Arc::new(Alerts {
            db,
            vault,
            policy,
            bell: Arc::new(Bell::default()),
            attempted: tokio::sync::watch::Sender::new(0),
            with_rules: Mutex::new(None),
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            while let Some(u) = next(&mut updates, "run updates").await {
                me.on_transition(u).await;
            }
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            while let Some(e) = next(&mut group_ends, "group run ends").await {
                me.on_group_end(e).await;
            }
        });
        let me = alerts.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(me.policy.check_every);
            loop {
                every.tick().await;
                match me.db.run(|c| check_deadlines(c, Utc::now())).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(queued = n, "deadline alerts");
                        me.bell.ring();
                    }
                    Err(e) => tracing::error!(error = %e, "checking alert deadlines"),
                }
            }
        });
        let me = alerts.clone();
        std::thread::Builder::new()
            .name("baton-alerts".into())
            .spawn(move || me.deliver_forever())
            .map_err(|e| anyhow::anyhow!("starting the alert delivery thread: {e}"))?;
        Ok(alerts)
    }

    async fn on_transition(&self, u: RunUpdate) {
        let t = u.transition;
        let relevant = matches!(t.to, RunStatus::Success | RunStatus::Failed | RunStatus::Terminated)
            || matches!(t.reason, Some(Reason::RetryScheduled { .. }));
        if !relevant {
            return;
        }
        if !self.may_have_rules(&u.task_name).await {
            return;
        }
        let run_id = u.run_id;
        let res = self
            .db
            .run(move |c| {
                let run = db::runs::get(c, run_id)?;
                let Some(tid) = run.task_id else { return Ok(0) };
                let rules = rules_of(c, Owner::Task(tid))?;
                let answering: Vec<(usize, &AlertRule)> =
                    rules.iter().enumerate().filter(|(_, r)| answers(&r.trigger, &t)).collect();
                if answering.is_empty() {
                    return Ok(0);
                }
                let task = db::tasks::get(c, tid).ok();
                let mut facts = run_facts(c, &run, task.as_ref())?;
                facts.source = format!("task:{tid}");
                // The status the transition reached (the run may have moved on since).
                facts.status = t.to.as_str().to_string();
                facts.attempt = Some(i32::try_from(t.attempt).unwrap_or(i32::MAX));
                if let Some(r) = &t.reason {
                    facts.reason = Some(r.to_string());
                }
                let occasion = format!("run{run_id}:a{}:{}", t.attempt, t.to.as_str());
                let mut queued = 0;
                for (i, rule) in answering {
                    if queue_rule(c, rule, i, &facts, &occasion, None)?.is_some() {
                        queued += 1;
                    }
                }
                Ok(queued)
            })
            .await;
        match res {
            Ok(0) => {}
            Ok(_) => self.bell.ring(),
            Err(e) => tracing::error!(run = run_id, error = %e, "queueing alerts"),
        }
    }

    async fn on_group_end(&self, e: GroupRunEnd) {
        let res = self
            .db
            .run(move |c| {
                let rules = rules_of(c, Owner::Group(e.group_id))?;
                let status = RunStatus::parse(&e.status).unwrap_or(RunStatus::Failed);
                let as_transition = baton_schema::run::Transition {
                    from: RunStatus::Running,
                    to: status,
                    attempt: 1,
                    at: Utc::now(),
                    reason: None,
                };
                let group = db::groups::get(c, e.group_id)?;
                let run = db::group_runs::get(c, e.group_run_id)?;
                let facts = Facts {
                    source: format!("group:{}", e.group_id),
                    group_name: group.name,
                    run_date: Some(e.run_date),
                    status: e.status.clone(),
                    duration_seconds: run.started_at.zip(run.ended_at).map(|(s, en)| (en - s).num_seconds()),
                    ..Default::default()
                };
                let occasion = format!("grouprun{}:{}", e.group_run_id, e.status);
                let mut queued = 0;
                for (i, rule) in rules.iter().enumerate() {
                    if answers(&rule.trigger, &as_transition)
                        && queue_rule(c, rule, i, &facts, &occasion, None)?.is_some()
                    {
                        queued += 1;
                    }
                }
                Ok(queued)
            })
            .await;
        match res {
            Ok(0) => {}
            Ok(_) => self.bell.ring(),
            Err(err) => tracing::error!(group = e.group_id, error = %err, "queueing group alerts"),
        }
    }

    /// Definitions changed: which tasks have rules is read again when next needed.
    pub fn definitions_changed(&self) {
        if let Ok(mut w) = self.with_rules.lock() {
            *w = None;
        }
    }

    async fn may_have_rules(&self, task_name: &str) -> bool {
        if let Some(known) = self.with_rules.lock().ok().and_then(|w| w.as_ref().map(|n| n.contains(task_name))) {
            return known;
        }
        match self.db.run(db::alert_rules::task_names_with_rules).await {
            Ok(names) => {
                let found = names.contains(task_name);
                if let Ok(mut w) = self.with_rules.lock() {
                    *w = Some(names);
                }
                found
            }
            Err(e) => {
                tracing::error!(error = %e, "reading which tasks have alert rules");
                true
            }
        }
    }

    /// Queues a test alert through `integration` and waits (a little) for its first attempt.
    pub async fn send_test(&self, integration: &str, actor: &str) -> DbResult<db::alert_deliveries::DeliveryRow> {
        let now = Utc::now();
        let subject = format!("[Baton] Test alert from {actor}");
        let facts = Facts {
            source: "test".into(),
            task_name: "baton_test".into(),
            status: "TEST".into(),
            ..Default::default()
        };
        let new = NewDelivery {
            dedupe_key: format!("test:{integration}:{}", now.timestamp_nanos_opt().unwrap_or_default()),
            integration: integration.to_string(),
            source: "test".into(),
            run_id: None,
            trigger_on: "test".into(),
            subject: subject.clone(),
            message: format!("This is a test alert sent by {actor} through {integration}."),
            details: facts.details(&facts.values(), "test", &subject, None).to_string(),
        };
        let mut attempted = self.attempted.subscribe();
        let id = self
            .db
            .run(move |c| db::alert_deliveries::enqueue(c, &new, now))
            .await?
            .ok_or(db::DbError::Conflict("a test alert was queued at the same instant".into()))?;
        self.bell.ring();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let row = self.db.run(move |c| db::alert_deliveries::get(c, id)).await?.ok_or(db::DbError::NotFound)?;
            if row.attempts > 0 {
                return Ok(row);
            }
            // Read again after the worker's next attempt, or answer as it is at the deadline.
            match tokio::time::timeout_at(deadline, attempted.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(row),
            }
        }
    }

    /// The worker: sends what is due, records each attempt, sleeps until the next is due or
    /// something is queued.
    fn deliver_forever(&self) {
        loop {
            let now = Utc::now();
            let due = self
                .db
                .conn()
                .map_err(|e| e.to_string())
                .and_then(|mut c| db::alert_deliveries::due(&mut c, now, 32).map_err(|e| e.to_string()));
            let due = match due {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "reading the alert queue");
                    self.bell.wait(std::time::Duration::from_secs(5));
                    continue;
                }
            };
            for d in &due {
                self.deliver(d);
            }
            if due.len() == 32 {
                continue;
            }
            let next = self
                .db
                .conn()
                .ok()
                .and_then(|mut c| db::alert_deliveries::next_due(&mut c).ok().flatten())
                .map(db::utc);
            let wait = match next {
                Some(at) => (at - Utc::now()).to_std().unwrap_or_default().min(std::time::Duration::from_secs(60)),
                None => std::time::Duration::from_secs(60),
            };
            if !wait.is_zero() {
                self.bell.wait(wait);
            }
        }
    }

    fn deliver(&self, d: &db::alert_deliveries::DeliveryRow) {
        let attempt = d.attempts + 1;
        // The connection is given back before sending: with SQLite there is only one, and a slow
        // endpoint must not hold up the engine.
        let prepared = match self.db.conn() {
            Ok(mut c) => send::prepare(&mut c, &self.vault, d),
            Err(e) => Err(send::Failure::Retry(format!("reading the integration: {e}"))),
        };
        let result = prepared.and_then(|p| p.send(d));
        let now = Utc::now();
        let next = match &result {
            Ok(_) => None,
            Err(send::Failure::Permanent(_)) => None,
            Err(send::Failure::Retry(_)) => self.policy.next_attempt(u32::try_from(attempt).unwrap_or(u32::MAX), now),
        };
        let outcome = result.map_err(|f| f.to_string());
        match &outcome {
            Ok(detail) => tracing::info!(delivery = d.id, integration = %d.integration, attempt, %detail, "alert sent"),
            Err(e) => {
                tracing::warn!(delivery = d.id, integration = %d.integration, attempt, error = %e, "alert not sent")
            }
        }
        let recorded = self.db.conn().map_err(|e| e.to_string()).and_then(|mut c| {
            db::alert_deliveries::record_attempt(&mut c, d.id, attempt, outcome, next, now).map_err(|e| e.to_string())
        });
        if let Err(e) = recorded {
            tracing::error!(delivery = d.id, error = %e, "recording an alert attempt");
        }
        self.attempted.send_replace(d.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DatabaseUrl;
    use baton_schema::definition::{AlertRuleDraft, TaskDef, TaskDraft};
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-07-01 (a Wednesday) in Europe/Paris is UTC+2.
        Utc.with_ymd_and_hms(2026, 7, 1, h, m, 0).unwrap() - Duration::hours(2)
    }

    fn rule(on: &str, at: Option<&str>, minutes: Option<i64>) -> AlertRuleDraft {
        AlertRuleDraft { on: on.into(), at: at.map(String::from), minutes, integration: "ops".into(), message: None }
    }

    #[test]
    fn deadline_alerts_are_queued_once_on_a_simulated_clock() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
        let mut c = db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let mut draft = TaskDraft::new("load", "true", "etl", "batch");
        draft.schedule = Some(ScheduleDraft {
            trigger_times: Some("05:00".into()),
            days: Some("1111100".into()),
            timezone: "Europe/Paris".into(),
            ..Default::default()
        });
        draft.alerts = vec![
            rule("not_started_by", Some("06:00"), None),
            rule("still_running_at", Some("07:00"), None),
            rule("longer_than", None, Some(30)),
            rule("failure", None, None),
        ];
        let def = TaskDef::parse(&draft).unwrap();
        // Defined the evening before: that morning's deadlines apply, the day before's do not.
        let tid = db::tasks::insert(&mut c, inst, None, &def, at(0, 0) - Duration::hours(4)).unwrap();
        db::alert_rules::replace(&mut c, Owner::Task(tid), &def.alerts).unwrap();
        let keys = |c: &mut DbConn| -> Vec<String> {
            let mut k: Vec<String> =
                db::alert_deliveries::list(c, None, 100).unwrap().into_iter().map(|d| d.dedupe_key).collect();
            k.sort();
            k
        };

        // 05:59 local: nothing is due yet.
        assert_eq!(check_deadlines(&mut c, at(5, 59)).unwrap(), 0);
        // 06:00: the run has not started: one alert, and only one however often it is checked.
        assert_eq!(check_deadlines(&mut c, at(6, 0)).unwrap(), 1);
        assert_eq!(check_deadlines(&mut c, at(6, 1)).unwrap(), 0);
        assert_eq!(keys(&mut c), ["task:1:rule0:not_started_by:2026-07-01"]);
        let d = &db::alert_deliveries::list(&mut c, None, 1).unwrap()[0];
        assert_eq!(d.subject, "[Baton] load did not start by 06:00 (Europe/Paris) on 2026-07-01");
        assert_eq!((d.integration.as_str(), d.status.as_str()), ("ops", "pending"));

        // The run starts late, at 06:20, and is still running at 07:00 and past 30 minutes.
        let now = db::ts(at(6, 20));
        let run = db::runs::create(
            &mut c,
            &db::runs::NewRun {
                kind: "scheduled".into(),
                task_id: Some(tid),
                task_name: "load".into(),
                instance_id: Some(inst),
                group_id: None,
                group_run_id: None,
                run_date: chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
                slot: "2026-07-01T05:00:00".into(),
                status: "RUNNING".into(),
                command: "true".into(),
                target: "etl".into(),
                run_as_user: "batch".into(),
                scheduled_for: Some(now),
                created_at: now,
                updated_at: now,
                job: None,
            },
        )
        .unwrap()
        .id();
        let started = db::runs::RunChange {
            status: "RUNNING".into(),
            attempt: 1,
            reason: None,
            agent_id: None,
            pid: None,
            exit_code: None,
            triggered_at: Some(Some(now)),
            started_at: Some(Some(now)),
            ended_at: None,
            updated_at: now,
        };
        db::runs::set(&mut c, run, &started).unwrap();
        assert_eq!(check_deadlines(&mut c, at(6, 49)).unwrap(), 0);
        assert_eq!(check_deadlines(&mut c, at(6, 51)).unwrap(), 1, "longer than 30 minutes");
        assert_eq!(check_deadlines(&mut c, at(7, 0)).unwrap(), 1, "still running at 07:00");
        assert_eq!(check_deadlines(&mut c, at(7, 30)).unwrap(), 0);
        assert_eq!(
            keys(&mut c),
            [
                "task:1:rule0:not_started_by:2026-07-01".to_string(),
                format!("task:1:rule1:still_running_at:2026-07-01:{run}"),
                format!("task:1:rule2:longer_than:{run}"),
            ]
        );

        // Checked on Saturday (after a long outage, say), the day before is still judged: Friday
        // was missed; Saturday is outside the task's days, so it cannot be late.
        let saturday = Utc.with_ymd_and_hms(2026, 7, 4, 10, 0, 0).unwrap();
        assert_eq!(check_deadlines(&mut c, saturday).unwrap(), 1);
        let k = keys(&mut c);
        assert!(k.contains(&"task:1:rule0:not_started_by:2026-07-03".to_string()), "{k:?}");
        assert!(!k.iter().any(|k| k.contains("2026-07-04")), "{k:?}");
    }

    #[test]
    fn backoff_doubles_and_gives_up() {
        let p = AlertPolicy { attempts: 4, retry_base: std::time::Duration::from_millis(500), ..Default::default() };
        let now = Utc::now();
        let waits: Vec<_> = (1..=4).map(|a| p.next_attempt(a, now).map(|t| (t - now).num_milliseconds())).collect();
        assert_eq!(waits, [Some(500), Some(1000), Some(2000), None]);
        assert_eq!(human_duration(3725), "1h 02m 05s");
        assert_eq!(human_duration(65), "1m 05s");
    }

    #[test]
    fn messages_render_their_placeholders() {
        let facts = Facts {
            source: "task:3".into(),
            task_name: "load".into(),
            task_id: Some(3),
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
