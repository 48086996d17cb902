//! The records the domains' traits (each beside its resolvers; `Backend` in the crate root is
//! their sum) take and return: plain data built from `baton-schema` types.
//! Records here are plain data built from `baton-schema` types; the API maps them to GraphQL types.

use crate::error::ApiError;
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::calendar::CalendarDraft;
use baton_schema::definition::{GroupDraft, TaskDraft};
use baton_schema::ids::{
    AgentId, AgentTokenId, AlertDeliveryId, ApiTokenId, CalendarId, GroupId, GroupRunId, InstanceId, IntegrationId,
    RunId, TaskId, UserId,
};
use baton_schema::FieldError;
use chrono::{DateTime, Utc};

pub type BackendResult<T> = Result<T, ApiError>;

/// The authenticated caller of a request (set by the HTTP layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    pub instances: InstanceAccess,
}

/// Where a request came from, for the audit log and login rate limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: String,
    /// The session token the request carried, if any (logout ends it).
    pub session_token: Option<String>,
    /// Whether it came over HTTPS: the session cookie is then `Secure`.
    pub https: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PageArgs {
    pub after: Option<i64>,
    pub first: i64,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub has_next: bool,
}

#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub draft: TaskDraft,
    pub instance_id: InstanceId,
    pub group_id: Option<GroupId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub draft: GroupDraft,
    pub instance_id: InstanceId,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct DefinitionFilter {
    pub instance: Option<String>,
    pub group_id: Option<GroupId>,
    pub active: Option<bool>,
    pub search: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CalendarRecord {
    pub id: CalendarId,
    pub instance: String,
    pub draft: CalendarDraft,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct FlowGraphData {
    pub group: GroupRecord,
    pub tasks: Vec<TaskRecord>,
    /// (task that waits, task it waits for, state letter)
    pub edges: Vec<(TaskId, TaskId, String)>,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub instances: InstanceAccess,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// An API token of a user; its secret is shown once, when it is made.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "ApiToken")]
pub struct ApiTokenRecord {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One recorded mutation or adhoc command.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "AuditEntry")]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The mutation's name, e.g. createTask.
    pub action: String,
    pub target: String,
    /// The instance it is about; none for global things (users, tokens, credentials...).
    pub instance: Option<String>,
    /// JSON of the record before the change, where it applies.
    pub before: Option<String>,
    /// JSON of the record after the change, where it applies.
    pub after: Option<String>,
    /// The caller's address.
    pub origin: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub instance: Option<String>,
}

/// Import mode: merge upserts what the document has; replace also deletes what it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    Merge,
    Replace,
}

/// One definition an import creates or deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    pub kind: String,
    pub instance: String,
    pub name: String,
}

/// One field an import changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub item: PlanItem,
    pub fields: Vec<FieldChange>,
}

/// What an import does (or would do, in a dry run), or why it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub created: Vec<PlanItem>,
    pub changed: Vec<PlanChange>,
    pub deleted: Vec<PlanItem>,
    pub errors: Vec<FieldError>,
    pub applied: bool,
}

pub use baton_schema::definition::ChangeKind;

/// A change the API publishes to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionChange {
    pub kind: ChangeKind,
    pub id: i64,
    pub name: String,
    pub instance: String,
    /// created, updated or deleted
    pub action: String,
    pub at: DateTime<Utc>,
    /// Increases by one per published change.
    pub sequence: u64,
}

/// One run of a task (all its attempts).
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: RunId,
    /// scheduled, forced or adhoc
    pub kind: String,
    pub task_id: Option<TaskId>,
    pub task_name: String,
    pub instance: Option<String>,
    pub group_id: Option<GroupId>,
    pub run_date: chrono::NaiveDate,
    pub slot: String,
    pub status: baton_schema::run::RunStatus,
    pub attempt: i32,
    /// Why it ended as it did (or was skipped), in words.
    pub reason: Option<String>,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    pub agent_id: Option<AgentId>,
    pub pid: Option<i64>,
    pub exit_code: Option<i32>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub triggered_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    pub output_truncated_bytes: i64,
}

/// One stored step of a run.
#[derive(Debug, Clone)]
pub struct TransitionRecord {
    pub seq: i32,
    pub from: baton_schema::run::RunStatus,
    pub to: baton_schema::run::RunStatus,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub statuses: Option<Vec<baton_schema::run::RunStatus>>,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub instance: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub run_date: Option<chrono::NaiveDate>,
    /// Part of the task's name.
    pub search: Option<String>,
}

/// A slice of one output stream.
#[derive(Debug, Clone)]
pub struct OutputSlice {
    /// The byte offset of `data` in the stream.
    pub offset: i64,
    pub data: String,
    /// Where to continue reading.
    pub next_offset: i64,
    /// Bytes of this stream stored so far (after the cap).
    pub total_bytes: i64,
}

/// An agent as last seen.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub id: AgentId,
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub version: String,
    pub os: String,
    /// ONLINE or OFFLINE
    pub status: baton_schema::agent::AgentStatus,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub uptime_seconds: Option<i64>,
    /// Failed writes to its own state (journals, acknowledgements), as its last heartbeat said.
    pub write_failures: i64,
    /// Why it is degraded now (its last failed write to its own state), as its last heartbeat said.
    pub degraded: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The instances whose runs (tasks' and operators' adhoc runs) it takes.
    pub instances: InstanceAccess,
}

/// An enrollment token for agents; its secret is shown once, when it is made.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "AgentToken")]
pub struct AgentTokenRecord {
    pub id: AgentTokenId,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The agent this token enrolled (its first registration); it registers no other.
    pub agent_name: Option<String>,
    /// `*` or the instances its agent serves when it first registers (its maker's).
    pub instances: String,
}

/// An agent came online, went offline, or came back.
#[derive(Debug, Clone)]
pub struct AgentChangeRecord {
    pub name: String,
    pub status: baton_schema::agent::AgentStatus,
    pub at: DateTime<Utc>,
}

/// A command to run on agents outside any task.
#[derive(Debug, Clone)]
pub struct AdhocRequest {
    /// Agent names; or
    pub agents: Vec<String>,
    /// every online agent of this queue.
    pub queue: Option<String>,
    pub command: String,
    pub run_as_user: String,
    pub max_run_time_seconds: u32,
}

/// A run transition as published.
#[derive(Debug, Clone)]
pub struct RunUpdateRecord {
    pub run_id: RunId,
    pub task_name: String,
    pub from: baton_schema::run::RunStatus,
    pub to: baton_schema::run::RunStatus,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// A chunk of output as published.
#[derive(Debug, Clone)]
pub struct OutputUpdateRecord {
    pub run_id: RunId,
    pub attempt: i32,
    pub stream: baton_schema::agent::v1::Stream,
    pub offset: i64,
    pub data: String,
}

/// An operator's command to the scheduler and the scheduler's answer.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "OperatorEvent")]
pub struct OperatorEventRecord {
    pub id: i64,
    /// force_run, terminate, modify_status, freeze, unfreeze, enable, disable (or missed, the
    /// scheduler's own note of a slot missed while it was down)
    pub kind: String,
    pub actor: String,
    pub origin: String,
    pub task_id: Option<TaskId>,
    pub group_id: Option<GroupId>,
    pub run_id: Option<RunId>,
    pub run_date: Option<chrono::NaiveDate>,
    /// What was asked, as JSON.
    pub payload: String,
    /// The scheduler's answer, once acknowledged.
    pub result: Option<String>,
    pub ok: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// One run of a group (its tasks' runs share its run date and slot).
#[derive(Debug, Clone)]
pub struct GroupRunRecord {
    pub id: GroupRunId,
    pub group_id: GroupId,
    pub run_date: chrono::NaiveDate,
    pub slot: String,
    /// IDLE while its group dependency does not hold yet, RUNNING, SUCCESS, FAILED or SKIPPED.
    pub status: baton_schema::run::RunStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One upcoming slot of a task.
#[derive(Debug, Clone)]
pub struct UpcomingRecord {
    pub task_id: TaskId,
    pub task_name: String,
    pub instance: String,
    pub run_date: chrono::NaiveDate,
    /// Nominal local time, as in the schedule.
    pub local_time: chrono::NaiveDateTime,
    pub timezone: String,
    pub utc: DateTime<Utc>,
    pub holiday: Option<String>,
}

/// What the Scheduler page shows.
#[derive(Debug, Clone)]
pub struct SchedulerHealth {
    pub version: String,
    pub instances: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub connected_agents: i64,
    pub task_actors: i64,
    pub runs_fired_since_start: i64,
    pub scheduled_runs_last_24h: i64,
    pub actor_restarts: i64,
    pub group_actors: i64,
}

/// An integration as stored (its secret stays in the credential store).
#[derive(Debug, Clone)]
pub struct IntegrationRecord {
    pub id: IntegrationId,
    pub draft: baton_schema::alert::IntegrationDraft,
    /// The instance it belongs to; none for a global one.
    pub instance: Option<String>,
    /// Whether its credential is set.
    pub credential_set: bool,
    /// Alert rules that name it.
    pub rules: i64,
    pub updated_at: DateTime<Utc>,
}

/// A credential's key, never its value.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "CredentialKey")]
pub struct CredentialKeyRecord {
    pub key: String,
    /// The instance it belongs to (only its definitions and integrations may name it); none for a
    /// global one.
    pub instance: Option<String>,
    /// Raised by each rotation.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Integrations and tasks that name it.
    pub used_by: Vec<String>,
}

/// One attempt at sending an alert.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "AlertAttempt")]
pub struct AlertAttemptRecord {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// The answer (HTTP 200, SMTP 250) or the error.
    pub detail: String,
}

/// An alert in the delivery log.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "AlertDelivery")]
pub struct AlertDeliveryRecord {
    pub id: AlertDeliveryId,
    pub integration: String,
    /// task:ID, group:ID or test.
    pub source: String,
    pub run_id: Option<RunId>,
    /// The rule's trigger (failure, not_started_by...), or test.
    pub trigger: String,
    pub subject: String,
    pub message: String,
    /// PENDING (queued or waiting to retry), SENT or FAILED (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub log: Vec<AlertAttemptRecord>,
}
