//! Runs as the API shows them: filtered lists, one run with its timeline, its output by offset,
//! and the dashboard's counters. The engine and the agents write runs; this is the read side.

use crate::backend::*;
use crate::backend::{RunFilter, RunRecord, TransitionRecord};
use crate::definitions::{connection, domain, page_args, ListConnection};
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::ids::{AgentId, GroupId, RunId, TaskId};
use baton_schema::run::RunStatus;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::stream::BoxStream;

/// Runs as stored, and as they change.
#[async_trait::async_trait]
pub trait Runs: Send + Sync {
    async fn runs(&self, p: &Principal, f: &RunFilter, page: PageArgs) -> BackendResult<Page<RunRecord>>;
    async fn run(&self, p: &Principal, id: RunId) -> BackendResult<RunRecord>;
    async fn run_transitions(&self, p: &Principal, id: RunId) -> BackendResult<Vec<TransitionRecord>>;
    async fn run_output(
        &self,
        p: &Principal,
        id: RunId,
        attempt: Option<i32>,
        stream: baton_schema::agent::v1::Stream,
        offset: i64,
        limit: i64,
    ) -> BackendResult<OutputSlice>;
    /// Runs of one run date by status, in the caller's instances.
    async fn status_counts(&self, p: &Principal, run_date: chrono::NaiveDate) -> BackendResult<Vec<(RunStatus, i64)>>;
    /// Every transition from now on of the runs `p` may see, in the order stored (so in order
    /// per run).
    fn run_updates(&self, p: &Principal) -> BoxStream<'static, RunUpdateRecord>;
    /// The output of one run from now on; NOT_FOUND when `p` may not see the run.
    async fn output_updates(
        &self,
        p: &Principal,
        run_id: RunId,
    ) -> BackendResult<BoxStream<'static, OutputUpdateRecord>>;
}

/// The status of a run (the words and order of the Tasks & Groups page); the domain's own
/// `RunStatus`, exposed as it is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "RunStatus", remote = "baton_schema::run::RunStatus")]
pub enum Status {
    Idle,
    Triggered,
    Started,
    Running,
    Success,
    Failed,
    Terminated,
    Skipped,
    Frozen,
}

/// stdout or stderr; the agent protocol's own `Stream`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "baton_schema::agent::v1::Stream")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(InputObject, Default)]
pub struct RunFilterInput {
    pub status: Option<Vec<Status>>,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub instance: Option<String>,
    /// scheduled, forced or adhoc
    pub kind: Option<String>,
    /// Runs created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Runs created in the last N hours.
    pub since_hours: Option<i32>,
    /// YYYY-MM-DD
    pub run_date: Option<NaiveDate>,
    /// Part of the task's name.
    pub search: Option<String>,
}

/// One step of a run's life.
#[derive(SimpleObject)]
pub struct RunTransition {
    pub seq: i32,
    pub from: Status,
    pub to: Status,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl From<TransitionRecord> for RunTransition {
    fn from(t: TransitionRecord) -> Self {
        RunTransition {
            seq: t.seq,
            from: t.from.into(),
            to: t.to.into(),
            attempt: t.attempt,
            at: t.at,
            reason: t.reason,
        }
    }
}

/// One run of a task for one run date and slot, with all its attempts.
pub struct Run(pub RunRecord);

#[Object]
impl Run {
    async fn id(&self) -> RunId {
        self.0.id
    }
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn task_id(&self) -> Option<TaskId> {
        self.0.task_id
    }
    async fn task_name(&self) -> &str {
        &self.0.task_name
    }
    async fn instance(&self) -> Option<&str> {
        self.0.instance.as_deref()
    }
    async fn group_id(&self) -> Option<GroupId> {
        self.0.group_id
    }
    async fn run_date(&self) -> NaiveDate {
        self.0.run_date
    }
    /// The slot's nominal local time (a run's identity within its run date).
    async fn slot(&self) -> &str {
        &self.0.slot
    }
    async fn status(&self) -> Status {
        self.0.status.into()
    }
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn command(&self) -> &str {
        &self.0.command
    }
    async fn target(&self) -> &str {
        &self.0.target
    }
    async fn run_as_user(&self) -> &str {
        &self.0.run_as_user
    }
    async fn agent_id(&self) -> Option<AgentId> {
        self.0.agent_id
    }
    async fn pid(&self) -> Option<i64> {
        self.0.pid
    }
    async fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }
    async fn scheduled_for(&self) -> Option<DateTime<Utc>> {
        self.0.scheduled_for
    }
    async fn triggered_at(&self) -> Option<DateTime<Utc>> {
        self.0.triggered_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// From start to end (or to now while running), in milliseconds.
    async fn duration_ms(&self) -> Option<i64> {
        let start = self.0.started_at?;
        Some((self.0.ended_at.unwrap_or_else(Utc::now) - start).num_milliseconds())
    }
    async fn stdout_bytes(&self) -> i64 {
        self.0.stdout_bytes
    }
    async fn stderr_bytes(&self) -> i64 {
        self.0.stderr_bytes
    }
    /// Bytes dropped from the front of the output to stay within the cap.
    async fn output_truncated_bytes(&self) -> i64 {
        self.0.output_truncated_bytes
    }
    /// Every step, in order.
    async fn transitions(&self, ctx: &Context<'_>) -> ApiResult<Vec<RunTransition>> {
        let list = domain::<dyn Runs>(ctx).run_transitions(principal(ctx)?, self.0.id).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }
}

/// A slice of a run's output.
#[derive(SimpleObject)]
pub struct OutputChunk {
    pub offset: i64,
    pub data: String,
    pub next_offset: i64,
    pub total_bytes: i64,
}

/// How many runs of a day are in each status.
#[derive(SimpleObject)]
pub struct StatusCount {
    pub status: Status,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct Dashboard {
    pub run_date: NaiveDate,
    pub counts: Vec<StatusCount>,
}

#[derive(Default)]
pub struct RunQuery;

#[Object]
impl RunQuery {
    /// Runs the caller may see, newest first.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity"
    )]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        filter: Option<RunFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ListConnection<Run>> {
        let f = filter.unwrap_or_default();
        let since = match (f.since, f.since_hours) {
            (Some(s), _) => Some(s),
            (None, Some(h)) if (1..=24 * 366).contains(&h) => {
                Some(crate::meta::now(ctx) - chrono::Duration::hours(i64::from(h)))
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid("filter.sinceHours", "range", "must be between 1 and 8784").into())
            }
            (None, None) => None,
        };
        let filter = RunFilter {
            statuses: f.status.map(|s| s.into_iter().map(RunStatus::from).collect()),
            task_id: f.task_id,
            group_id: f.group_id,
            instance: f.instance,
            kind: f.kind,
            since,
            run_date: f.run_date,
            search: f.search,
        };
        let page = domain::<dyn Runs>(ctx).runs(principal(ctx)?, &filter, page_args(first, after)?).await?;
        Ok(connection(page, |r| r.id, Run))
    }

    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn run(&self, ctx: &Context<'_>, id: RunId) -> ApiResult<Run> {
        Ok(Run(domain::<dyn Runs>(ctx).run(principal(ctx)?, id).await?))
    }

    /// Up to `limit` bytes of one stream from `offset` (the latest attempt unless `attempt`).
    #[graphql(guard = "RoleGuard(Role::Viewer)", complexity = "1 + (limit.clamp(1, 1_048_576) as usize) / 1024")]
    async fn run_output(
        &self,
        ctx: &Context<'_>,
        run_id: RunId,
        stream: OutputStream,
        #[graphql(default)] offset: i64,
        #[graphql(default = 65536)] limit: i64,
        attempt: Option<i32>,
    ) -> ApiResult<OutputChunk> {
        if !(1..=1_048_576).contains(&limit) || offset < 0 {
            return Err(ApiError::invalid("limit", "range", "limit must be 1-1048576 and offset not negative").into());
        }
        let s =
            domain::<dyn Runs>(ctx).run_output(principal(ctx)?, run_id, attempt, stream.into(), offset, limit).await?;
        Ok(OutputChunk { offset: s.offset, data: s.data, next_offset: s.next_offset, total_bytes: s.total_bytes })
    }

    /// Counts by status for a run date (today, UTC, by default).
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn dashboard(&self, ctx: &Context<'_>, run_date: Option<NaiveDate>) -> ApiResult<Dashboard> {
        let date = run_date.unwrap_or_else(|| crate::meta::now(ctx).date_naive());
        let counts = domain::<dyn Runs>(ctx).status_counts(principal(ctx)?, date).await?;
        Ok(Dashboard {
            run_date: date,
            counts: RunStatus::ALL
                .iter()
                .map(|s| StatusCount {
                    status: (*s).into(),
                    count: counts.iter().find(|(status, _)| status == s).map_or(0, |(_, n)| *n),
                })
                .collect(),
        })
    }
}
