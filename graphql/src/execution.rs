//! Running things: adhoc commands on agents, force-run of a task, terminate; and the live streams
//! of run transitions and output.

use crate::backend::*;
use crate::backend::{AdhocRequest, OutputUpdateRecord, RunUpdateRecord};
use crate::definitions::domain;
use crate::error::ApiResult;
use crate::guard::{principal, RoleGuard};
use crate::runs::{Run, Status};
use async_graphql::{Context, Object, SimpleObject, Subscription};
use baton_schema::access::Role;
use baton_schema::ids::{RunId, TaskId};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{Stream, StreamExt};

/// Starting and stopping runs.
#[async_trait::async_trait]
pub trait Execution: Send + Sync {
    async fn run_adhoc(&self, p: &Principal, req: AdhocRequest) -> BackendResult<Vec<RunRecord>>;
    async fn force_run(
        &self,
        p: &Principal,
        tid: TaskId,
        run_date: Option<chrono::NaiveDate>,
    ) -> BackendResult<RunRecord>;
    async fn terminate_run(&self, p: &Principal, id: RunId) -> BackendResult<bool>;
}

#[derive(Default)]
pub struct ExecutionMutation;

#[Object]
impl ExecutionMutation {
    /// Runs a command on the named agents, or on every online agent of a queue: one run each.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn run_adhoc(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] agents: Vec<String>,
        queue: Option<String>,
        command: String,
        run_as_user: String,
        #[graphql(default = 3600)] max_run_time_seconds: i32,
    ) -> ApiResult<Vec<Run>> {
        let req = AdhocRequest {
            agents,
            queue,
            command,
            run_as_user,
            max_run_time_seconds: u32::try_from(max_run_time_seconds).unwrap_or(0),
        };
        Ok(domain::<dyn Execution>(ctx).run_adhoc(principal(ctx)?, req).await?.into_iter().map(Run).collect())
    }

    /// Runs a task now (for a run date, default today in its timezone), ignoring its schedule.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn force_run(&self, ctx: &Context<'_>, tid: TaskId, run_date: Option<NaiveDate>) -> ApiResult<Run> {
        Ok(Run(domain::<dyn Execution>(ctx).force_run(principal(ctx)?, tid, run_date).await?))
    }

    /// Stops a run: its whole process tree on the agent (SIGTERM, a grace period, SIGKILL).
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn terminate_run(&self, ctx: &Context<'_>, id: RunId) -> ApiResult<bool> {
        Ok(domain::<dyn Execution>(ctx).terminate_run(principal(ctx)?, id).await?)
    }
}

/// A run's transition, live.
#[derive(SimpleObject, Clone)]
pub struct RunEvent {
    pub run_id: RunId,
    pub task_name: String,
    pub from: Status,
    pub to: Status,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl From<RunUpdateRecord> for RunEvent {
    fn from(u: RunUpdateRecord) -> Self {
        RunEvent {
            run_id: u.run_id,
            task_name: u.task_name,
            from: u.from.into(),
            to: u.to.into(),
            attempt: u.attempt,
            at: u.at,
            reason: u.reason,
        }
    }
}

/// A chunk of a run's output, live.
#[derive(SimpleObject, Clone)]
pub struct OutputEvent {
    pub run_id: RunId,
    pub attempt: i32,
    /// stdout or stderr
    pub stream: String,
    pub offset: i64,
    pub data: String,
}

impl From<OutputUpdateRecord> for OutputEvent {
    fn from(u: OutputUpdateRecord) -> Self {
        let stream = u.stream.as_str().to_string();
        OutputEvent { run_id: u.run_id, attempt: u.attempt, stream, offset: u.offset, data: u.data }
    }
}

#[derive(Default)]
pub struct ExecutionSubscription;

#[Subscription]
impl ExecutionSubscription {
    /// Every transition of the runs the caller may see (of one run, with `runId`), in the
    /// order stored.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn run_events(
        &self,
        ctx: &Context<'_>,
        run_id: Option<RunId>,
    ) -> async_graphql::Result<impl Stream<Item = RunEvent>> {
        let p = principal(ctx)?;
        if let Some(id) = run_id {
            // A run the caller may not see is NOT_FOUND, as for the `run` query.
            domain::<dyn crate::runs::Runs>(ctx).run(p, id).await?;
        }
        Ok(domain::<dyn crate::runs::Runs>(ctx).run_updates(p).filter_map(move |u| async move {
            (run_id.is_none_or(|r| r == u.run_id)).then(|| <RunEvent as From<RunUpdateRecord>>::from(u))
        }))
    }

    /// A run's output as it arrives.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn run_output(
        &self,
        ctx: &Context<'_>,
        run_id: RunId,
    ) -> async_graphql::Result<impl Stream<Item = OutputEvent>> {
        Ok(domain::<dyn crate::runs::Runs>(ctx).output_updates(principal(ctx)?, run_id).await?.map(OutputEvent::from))
    }
}
