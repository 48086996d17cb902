//! What the scheduler will do next, and how it is doing.

use crate::backend::*;
use crate::backend::{SchedulerHealth, UpcomingRecord};
use crate::definitions::domain;
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::ids::TaskId;
use chrono::{DateTime, NaiveDate, Utc};

/// The scheduler's plan and health.
#[async_trait::async_trait]
pub trait SchedulerState: Send + Sync {
    /// The next `limit` slots of the active scheduled tasks the caller may see.
    async fn upcoming_runs(&self, p: &Principal, limit: usize) -> BackendResult<Vec<UpcomingRecord>>;
    async fn scheduler_health(&self, p: &Principal) -> BackendResult<SchedulerHealth>;
}

#[derive(SimpleObject)]
pub struct UpcomingRun {
    pub task_id: TaskId,
    pub task_name: String,
    pub instance: String,
    pub run_date: NaiveDate,
    /// The nominal local time, as written in the schedule.
    pub local_time: String,
    pub timezone: String,
    pub utc: DateTime<Utc>,
    /// Set when the slot falls on a holiday (it will be skipped).
    pub holiday: Option<String>,
}

impl From<UpcomingRecord> for UpcomingRun {
    fn from(u: UpcomingRecord) -> Self {
        UpcomingRun {
            task_id: u.task_id,
            task_name: u.task_name,
            instance: u.instance,
            run_date: u.run_date,
            local_time: u.local_time.format("%Y-%m-%d %H:%M:%S").to_string(),
            timezone: u.timezone,
            utc: u.utc,
            holiday: u.holiday,
        }
    }
}

#[derive(SimpleObject)]
pub struct Scheduler {
    pub version: String,
    /// The instances this server schedules.
    pub instances: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: i64,
    pub connected_agents: i64,
    /// Task actors armed.
    pub task_actors: i64,
    pub runs_fired_since_start: i64,
    #[graphql(name = "scheduledRunsLast24h")]
    pub scheduled_runs_last_24h: i64,
    pub actor_restarts: i64,
    /// Group actors of active groups.
    pub group_actors: i64,
}

impl Scheduler {
    /// The health as of `now`.
    fn at(h: SchedulerHealth, now: chrono::DateTime<chrono::Utc>) -> Self {
        Scheduler {
            uptime_seconds: (now - h.started_at).num_seconds(),
            version: h.version,
            instances: h.instances,
            started_at: h.started_at,
            connected_agents: h.connected_agents,
            task_actors: h.task_actors,
            runs_fired_since_start: h.runs_fired_since_start,
            scheduled_runs_last_24h: h.scheduled_runs_last_24h,
            actor_restarts: h.actor_restarts,
            group_actors: h.group_actors,
        }
    }
}

#[derive(Default)]
pub struct SchedulerQuery;

#[Object]
impl SchedulerQuery {
    /// The next runs of active scheduled tasks, soonest first, in UTC and local time.
    #[graphql(guard = "RoleGuard(Role::Viewer)", complexity = "(limit.clamp(1, 1000) as usize) * child_complexity")]
    async fn upcoming_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] limit: i32,
    ) -> ApiResult<Vec<UpcomingRun>> {
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit", "range", "must be between 1 and 500").into());
        }
        let list = domain::<dyn SchedulerState>(ctx).upcoming_runs(principal(ctx)?, limit as usize).await?;
        Ok(list.into_iter().map(UpcomingRun::from).collect())
    }

    /// The scheduler's health, for the Scheduler page.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn scheduler(&self, ctx: &Context<'_>) -> ApiResult<Scheduler> {
        let health = domain::<dyn SchedulerState>(ctx).scheduler_health(principal(ctx)?).await?;
        Ok(Scheduler::at(health, crate::meta::now(ctx)))
    }
}
