//! Upcoming runs and the scheduler's health.

use super::{visible_instances, Services, SvcResult};
use crate::db;
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_schema::calendar::Calendar;
use baton_schema::definition::TaskDef;
use baton_schema::ids::InstanceId;
use baton_schema::schedule::slots_after;
use chrono::Duration;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

impl Services {}

#[async_trait]
impl baton_graphql::SchedulerState for Services {
    async fn upcoming_runs(&self, p: &Principal, limit: usize) -> BackendResult<Vec<UpcomingRecord>> {
        let now = self.now();
        let p = p.clone();
        self.run(move |c| {
            let filter = db::tasks::TaskFilter {
                instance_ids: visible_instances(c, &p.instances)?,
                active: Some(true),
                ungrouped: true,
                ..Default::default()
            };
            let rows = db::tasks::page(c, &filter, None, i64::MAX)?;
            let instances: HashMap<InstanceId, String> =
                db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
            let mut out: Vec<UpcomingRecord> = Vec::new();
            for row in rows.into_iter().filter(|r| r.schedule.is_some()) {
                let instance = instances.get(&row.instance_id).cloned().unwrap_or_default();
                let Ok(def) = TaskDef::parse(&row.to_draft(&instance, None, Vec::new())?) else { continue };
                let Some(schedule) = def.schedule.clone() else { continue };
                let calendar: Option<Calendar> = match &schedule.calendar {
                    Some(n) => db::calendars::load(c, row.instance_id, n.as_str())?,
                    None => None,
                };
                for slot in slots_after(&schedule, calendar.as_ref(), now).take(limit) {
                    out.push(UpcomingRecord {
                        task_id: row.id,
                        task_name: row.name.clone(),
                        instance: instance.clone(),
                        run_date: slot.run_date,
                        local_time: slot.local,
                        timezone: schedule.timezone.name().to_string(),
                        utc: slot.at,
                        holiday: slot.holiday,
                    });
                }
            }
            out.sort_by_key(|u| (u.utc, u.task_id));
            out.truncate(limit);
            Ok(out)
        })
        .await
    }

    async fn scheduler_health(&self, p: &Principal) -> BackendResult<SchedulerHealth> {
        let now = self.now();
        let p = p.clone();
        let since = now - Duration::hours(24);
        let (instances, last_24h) = self
            .run(move |c| -> SvcResult<(Vec<String>, i64)> {
                let names =
                    db::instances::list(c)?.into_iter().map(|i| i.name).filter(|n| p.instances.allows(n)).collect();
                let filter =
                    db::runs::RunFilter { kind: Some("scheduled".into()), since: Some(since), ..Default::default() };
                Ok((names, db::runs::count(c, &filter)?))
            })
            .await?;
        let stats = &self.engine;
        Ok(SchedulerHealth {
            version: env!("CARGO_PKG_VERSION").into(),
            instances,
            started_at: self.started_at,
            connected_agents: i64::try_from(self.hub.online().len()).unwrap_or(0),
            task_actors: i64::try_from(stats.actors.load(Ordering::Relaxed)).unwrap_or(0),
            runs_fired_since_start: i64::try_from(stats.fired.load(Ordering::Relaxed)).unwrap_or(0),
            scheduled_runs_last_24h: last_24h,
            actor_restarts: i64::try_from(stats.restarts.load(Ordering::Relaxed)).unwrap_or(0),
            group_actors: i64::try_from(stats.group_actors.load(Ordering::Relaxed)).unwrap_or(0),
        })
    }
}
