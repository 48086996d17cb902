//! Operators' events (modify status, freeze, unfreeze) with their acknowledgement, the list of
//! events, the missed-runs ledger and a group's runs.

use crate::backend::*;
use crate::backend::{GroupRunRecord, OperatorEventRecord};
use crate::definitions::domain;
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use crate::runs::{Run, Status};
use async_graphql::{Context, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::ids::{GroupId, GroupRunId, RunId, TaskId};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Operators' events on runs and tasks, missed runs and group runs.
#[async_trait::async_trait]
pub trait Operations: Send + Sync {
    /// Sets a final run's status (Success, Failed or Skipped); its group's flow follows.
    async fn modify_run_status(
        &self,
        p: &Principal,
        id: RunId,
        to: baton_schema::run::RunStatus,
    ) -> BackendResult<OperatorEventRecord>;
    /// Freezes (or unfreezes) a task for a run date (default today in its timezone).
    async fn freeze_task(
        &self,
        p: &Principal,
        tid: TaskId,
        run_date: Option<chrono::NaiveDate>,
        freeze: bool,
    ) -> BackendResult<OperatorEventRecord>;
    async fn operator_events(
        &self,
        p: &Principal,
        task_id: Option<TaskId>,
        limit: i64,
    ) -> BackendResult<Vec<OperatorEventRecord>>;
    /// Slots missed while the server was down (run late within the grace, or skipped), newest first.
    async fn missed_runs(&self, p: &Principal, since: DateTime<Utc>, limit: i64) -> BackendResult<Vec<RunRecord>>;
    async fn group_runs(&self, p: &Principal, gid: GroupId, limit: i64) -> BackendResult<Vec<GroupRunRecord>>;
}

/// One run of a group.
#[derive(SimpleObject)]
pub struct GroupRun {
    pub id: GroupRunId,
    pub group_id: GroupId,
    pub run_date: NaiveDate,
    pub slot: String,
    /// IDLE while its group dependency does not hold yet, RUNNING, SUCCESS, FAILED or SKIPPED.
    pub status: crate::runs::Status,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<GroupRunRecord> for GroupRun {
    fn from(r: GroupRunRecord) -> Self {
        GroupRun {
            id: r.id,
            group_id: r.group_id,
            run_date: r.run_date,
            slot: r.slot,
            status: r.status.into(),
            started_at: r.started_at,
            ended_at: r.ended_at,
        }
    }
}

fn limit_of(limit: i32) -> ApiResult<i64> {
    if (1..=1000).contains(&limit) {
        Ok(i64::from(limit))
    } else {
        Err(ApiError::invalid("limit", "range", "must be between 1 and 1000").into())
    }
}

#[derive(Default)]
pub struct OperatorQuery;

#[Object]
impl OperatorQuery {
    /// Operators' events, newest first (of one task with `taskId`).
    #[graphql(guard = "RoleGuard(Role::Viewer)", complexity = "(limit.clamp(1, 1000) as usize) * child_complexity")]
    async fn operator_events(
        &self,
        ctx: &Context<'_>,
        task_id: Option<TaskId>,
        #[graphql(default = 100)] limit: i32,
    ) -> ApiResult<Vec<OperatorEventRecord>> {
        let list = domain::<dyn Operations>(ctx).operator_events(principal(ctx)?, task_id, limit_of(limit)?).await?;
        Ok(list)
    }

    /// Slots missed while the server was down in the last `hours`: run late (within the misfire
    /// grace, per the task's policy) or skipped with the reason; newest first.
    #[graphql(guard = "RoleGuard(Role::Viewer)", complexity = "(limit.clamp(1, 1000) as usize) * child_complexity")]
    async fn missed_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 24)] hours: i32,
        #[graphql(default = 100)] limit: i32,
    ) -> ApiResult<Vec<Run>> {
        if !(1..=24 * 366).contains(&hours) {
            return Err(ApiError::invalid("hours", "range", "must be between 1 and 8784").into());
        }
        let since = crate::meta::now(ctx) - Duration::hours(i64::from(hours));
        let list = domain::<dyn Operations>(ctx).missed_runs(principal(ctx)?, since, limit_of(limit)?).await?;
        Ok(list.into_iter().map(Run).collect())
    }

    /// A group's runs, newest first.
    #[graphql(guard = "RoleGuard(Role::Viewer)", complexity = "(limit.clamp(1, 1000) as usize) * child_complexity")]
    async fn group_runs(
        &self,
        ctx: &Context<'_>,
        gid: GroupId,
        #[graphql(default = 20)] limit: i32,
    ) -> ApiResult<Vec<GroupRun>> {
        let list = domain::<dyn Operations>(ctx).group_runs(principal(ctx)?, gid, limit_of(limit)?).await?;
        Ok(list.into_iter().map(GroupRun::from).collect())
    }
}

#[derive(Default)]
pub struct OperatorMutation;

#[Object]
impl OperatorMutation {
    /// Sets an ended run's status to SUCCESS, FAILED or SKIPPED; in a group, dependants that
    /// were waiting on it proceed. Recorded and acknowledged.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn modify_run_status(&self, ctx: &Context<'_>, id: RunId, status: Status) -> ApiResult<OperatorEventRecord> {
        Ok(domain::<dyn Operations>(ctx).modify_run_status(principal(ctx)?, id, status.into()).await?)
    }

    /// Holds a task for a run date (default today in its timezone): its waiting runs become
    /// FROZEN and new ones are made frozen, until unfrozen.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn freeze_task(
        &self,
        ctx: &Context<'_>,
        tid: TaskId,
        run_date: Option<NaiveDate>,
    ) -> ApiResult<OperatorEventRecord> {
        Ok(domain::<dyn Operations>(ctx).freeze_task(principal(ctx)?, tid, run_date, true).await?)
    }

    /// Releases a frozen task for a run date: its frozen runs start (or wait for their
    /// dependencies in a group).
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn unfreeze_task(
        &self,
        ctx: &Context<'_>,
        tid: TaskId,
        run_date: Option<NaiveDate>,
    ) -> ApiResult<OperatorEventRecord> {
        Ok(domain::<dyn Operations>(ctx).freeze_task(principal(ctx)?, tid, run_date, false).await?)
    }
}
