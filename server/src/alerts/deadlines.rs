//! Deadline alerts (not started by, still running at, longer than): judged at a `now` passed
//! in, for yesterday's and today's run dates in the schedule's timezone, each queued once.

use super::facts::{queue_rule, run_facts, task_env, Facts};
use crate::db::{self, DbConn, DbResult};
use baton_schema::alert::{deadline_due, RunFact};
use baton_schema::ids::InstanceId;
#[cfg(test)]
use baton_schema::run::RunStatus;
use baton_schema::schedule::{Schedule, ScheduleDraft};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The run dates a deadline check judges (yesterday and today in the schedule's timezone), each
/// with whether the schedule runs that day (its days and calendar allow it), and the timezone.
fn judged_days(
    c: &mut DbConn,
    instance_id: InstanceId,
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

fn fact_of<Id>(started: Option<chrono::NaiveDateTime>, ended: Option<chrono::NaiveDateTime>, id: Id) -> RunFact<Id> {
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
                    let facts_in: Vec<RunFact<_>> =
                        runs.iter().map(|r| fact_of(r.started_at, r.ended_at, r.id)).collect();
                    for due in deadline_due(&rule.trigger, date, tz, expected, &facts_in, now) {
                        let facts = match due.run_id.and_then(|id| runs.iter().find(|r| r.id == id)) {
                            Some(run) => run_facts(c, run, Some(&task), now)?,
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
                        if queue_rule(c, &rule, position, &facts, &due.occasion, Some(&due.what), now)?.is_some() {
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
                    let facts_in: Vec<RunFact<_>> =
                        runs.iter().map(|r| fact_of(r.started_at, r.ended_at, r.id)).collect();
                    for due in deadline_due(&rule.trigger, date, tz, expected, &facts_in, now) {
                        let status = due
                            .run_id
                            .and_then(|id| runs.iter().find(|r| r.id == id))
                            .map_or_else(|| "NOT STARTED".to_string(), |r| r.status.to_string());
                        let facts = Facts {
                            source: format!("group:{gid}"),
                            group_name: group.name.clone(),
                            run_date: Some(date),
                            status,
                            ..Default::default()
                        };
                        if queue_rule(c, &rule, position, &facts, &due.occasion, Some(&due.what), now)?.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{alert_rules::Owner, DatabaseUrl, Db};
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
                status: RunStatus::Running,
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
            status: RunStatus::Running,
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
}
