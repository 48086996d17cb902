//! Tasks, groups and their flow graph: queries and mutations over definitions.

use crate::backend::*;
use crate::backend::{DefinitionFilter, GroupRecord, PageArgs, Principal, TaskRecord};
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::dataloader::DataLoader;
use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::definition::{AlertRuleDraft, GroupDraft, TaskDraft};
use baton_schema::ids::{GroupId, TaskId};
use baton_schema::schedule::ScheduleDraft;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

/// Tasks and groups: reading, saving, activating, their flow graph and their changes.
#[async_trait::async_trait]
pub trait Definitions: Send + Sync {
    async fn tasks(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<TaskRecord>>;
    async fn task(&self, p: &Principal, tid: TaskId) -> BackendResult<TaskRecord>;
    async fn create_task(&self, p: &Principal, draft: TaskDraft) -> BackendResult<TaskRecord>;
    async fn update_task(&self, p: &Principal, tid: TaskId, draft: TaskDraft) -> BackendResult<TaskRecord>;
    async fn delete_task(&self, p: &Principal, tid: TaskId) -> BackendResult<bool>;
    async fn set_task_active(&self, p: &Principal, tid: TaskId, active: bool) -> BackendResult<TaskRecord>;
    async fn groups(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<GroupRecord>>;
    async fn group(&self, p: &Principal, gid: GroupId) -> BackendResult<GroupRecord>;
    /// Groups by id, for the DataLoader (ids the caller may not see are left out).
    async fn groups_by_ids(&self, p: &Principal, ids: &[GroupId]) -> BackendResult<Vec<GroupRecord>>;
    async fn create_group(&self, p: &Principal, draft: GroupDraft) -> BackendResult<GroupRecord>;
    async fn update_group(&self, p: &Principal, gid: GroupId, draft: GroupDraft) -> BackendResult<GroupRecord>;
    async fn delete_group(&self, p: &Principal, gid: GroupId) -> BackendResult<bool>;
    async fn set_group_active(&self, p: &Principal, gid: GroupId, active: bool) -> BackendResult<GroupRecord>;
    async fn flow_graph(&self, p: &Principal, gid: GroupId) -> BackendResult<FlowGraphData>;
    /// Every definition change from now on, in order.
    fn definition_changes(&self) -> BoxStream<'static, DefinitionChange>;
}

pub const MAX_PAGE: i32 = 500;

/// The implementation of domain `D` (`dyn Runs`, ...) the schema was built with.
pub(crate) fn domain<'a, D: ?Sized + Send + Sync + 'static>(ctx: &'a Context<'_>) -> &'a Arc<D> {
    ctx.data_unchecked::<Arc<D>>()
}

/// `totalCount` on every connection.
#[derive(SimpleObject)]
pub struct ConnectionTotal {
    pub total_count: i64,
}

pub type ListConnection<T> = Connection<String, T, ConnectionTotal, EmptyFields>;

/// Reads `first` and `after` into page arguments; cursors are opaque strings.
pub(crate) fn page_args(first: Option<i32>, after: Option<String>) -> Result<PageArgs, ApiError> {
    let first = first.unwrap_or(50);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::invalid("first", "range", format!("must be between 0 and {MAX_PAGE}")));
    }
    let after = match after {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| ApiError::invalid("after", "cursor", "not a cursor from this list"))?)
        }
        None => None,
    };
    Ok(PageArgs { after, first: i64::from(first) })
}

pub(crate) fn connection<R, T, C: std::fmt::Display>(
    page: crate::backend::Page<R>,
    cursor: impl Fn(&R) -> C,
    node: impl Fn(R) -> T,
) -> ListConnection<T>
where
    T: async_graphql::OutputType,
{
    let mut c = Connection::with_additional_fields(false, page.has_next, ConnectionTotal { total_count: page.total });
    c.edges.extend(page.items.into_iter().map(|r| {
        let cur = cursor(&r).to_string();
        Edge::new(cur, node(r))
    }));
    c
}

/// An environment variable of a task's profile.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "EnvVarInput")]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// A schedule: exactly one of trigger times, run frequency and cron.
#[derive(SimpleObject, InputObject, Clone, Default)]
#[graphql(input_name = "ScheduleInput", name = "Schedule")]
pub struct ScheduleFields {
    /// `HH:MM[,HH:MM...]` local times.
    pub trigger_times: Option<String>,
    /// `START-END-INTERVAL`, e.g. `08:00-18:00-30`.
    pub run_frequency: Option<String>,
    /// 5 or 6 fields (seconds first).
    pub cron: Option<String>,
    /// A Monday-first mask (`1111100`) or an ordinal day (`last friday`).
    pub days: Option<String>,
    /// IANA name.
    pub timezone: String,
    /// A calendar of the same instance.
    pub calendar: Option<String>,
}

impl From<ScheduleFields> for ScheduleDraft {
    fn from(s: ScheduleFields) -> Self {
        ScheduleDraft {
            trigger_times: s.trigger_times,
            run_frequency: s.run_frequency,
            cron: s.cron,
            days: s.days,
            timezone: s.timezone,
            calendar: s.calendar,
        }
    }
}

impl From<ScheduleDraft> for ScheduleFields {
    fn from(s: ScheduleDraft) -> Self {
        ScheduleFields {
            trigger_times: s.trigger_times,
            run_frequency: s.run_frequency,
            cron: s.cron,
            days: s.days,
            timezone: s.timezone,
            calendar: s.calendar,
        }
    }
}

/// An alert rule: when, whom (an integration), and an optional message template.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "AlertRuleInput", name = "AlertRule")]
pub struct AlertRuleFields {
    /// failure, success, always, retry, timeout, not_started_by, still_running_at, longer_than
    pub on: String,
    /// `HH:MM` for not_started_by and still_running_at.
    pub at: Option<String>,
    /// For longer_than.
    pub minutes: Option<i64>,
    pub integration: String,
    pub message: Option<String>,
}

impl From<AlertRuleFields> for AlertRuleDraft {
    fn from(a: AlertRuleFields) -> Self {
        AlertRuleDraft { on: a.on, at: a.at, minutes: a.minutes, integration: a.integration, message: a.message }
    }
}

impl From<AlertRuleDraft> for AlertRuleFields {
    fn from(a: AlertRuleDraft) -> Self {
        AlertRuleFields { on: a.on, at: a.at, minutes: a.minutes, integration: a.integration, message: a.message }
    }
}

/// Every field of a task, for createTask and updateTask (defaults as in the spec).
#[derive(InputObject)]
pub struct TaskInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    #[graphql(default)]
    pub owner: String,
    #[graphql(default)]
    pub team: String,
    #[graphql(default_with = "\"default\".to_string()")]
    pub instance: String,
    pub group: Option<String>,
    pub command: String,
    pub target: String,
    pub run_as_user: String,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    #[graphql(default)]
    pub profile: Vec<EnvVar>,
    #[graphql(default = true)]
    pub active: bool,
    pub schedule: Option<ScheduleFields>,
    #[graphql(default)]
    pub retry_attempts: i64,
    #[graphql(default = 60)]
    pub retry_delay_seconds: i64,
    #[graphql(default = 3600)]
    pub max_run_time_seconds: i64,
    #[graphql(default = 300)]
    pub accept_expiry_seconds: i64,
    pub dependency: Option<String>,
    #[graphql(default_with = "\"run_once\".to_string()")]
    pub misfire_policy: String,
    #[graphql(default)]
    pub alerts: Vec<AlertRuleFields>,
}

impl TaskInput {
    fn into_draft(self, tid: Option<TaskId>) -> Result<TaskDraft, ApiError> {
        let mut profile = BTreeMap::new();
        for v in self.profile {
            if profile.insert(v.name.clone(), v.value).is_some() {
                return Err(ApiError::invalid(&format!("profile.{}", v.name), "unique", "set twice"));
            }
        }
        Ok(TaskDraft {
            tid,
            name: self.name,
            description: self.description,
            owner: self.owner,
            team: self.team,
            instance: self.instance,
            group: self.group,
            command: self.command,
            target: self.target,
            run_as_user: self.run_as_user,
            stdout_path: self.stdout_path,
            stderr_path: self.stderr_path,
            profile,
            active: self.active,
            schedule: self.schedule.map(Into::into),
            retry_attempts: self.retry_attempts,
            retry_delay_seconds: self.retry_delay_seconds,
            max_run_time_seconds: self.max_run_time_seconds,
            accept_expiry_seconds: self.accept_expiry_seconds,
            dependency: self.dependency,
            misfire_policy: self.misfire_policy,
            alerts: self.alerts.into_iter().map(Into::into).collect(),
        })
    }
}

/// Every field of a group, for createGroup and updateGroup.
#[derive(InputObject)]
pub struct GroupInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    #[graphql(default)]
    pub owner: String,
    #[graphql(default)]
    pub team: String,
    #[graphql(default_with = "\"default\".to_string()")]
    pub instance: String,
    #[graphql(default = true)]
    pub active: bool,
    pub schedule: Option<ScheduleFields>,
    /// An expression over same-day states of other groups.
    pub dependency: Option<String>,
    #[graphql(default)]
    pub alerts: Vec<AlertRuleFields>,
}

impl GroupInput {
    fn into_draft(self, gid: Option<GroupId>) -> GroupDraft {
        GroupDraft {
            gid,
            name: self.name,
            description: self.description,
            owner: self.owner,
            team: self.team,
            instance: self.instance,
            active: self.active,
            schedule: self.schedule.map(Into::into),
            dependency: self.dependency,
            alerts: self.alerts.into_iter().map(Into::into).collect(),
        }
    }
}

/// Filters for the task and group lists.
#[derive(InputObject, Default)]
pub struct DefinitionFilterInput {
    pub instance: Option<String>,
    /// Tasks of this group only.
    pub group_id: Option<GroupId>,
    pub active: Option<bool>,
    /// Part of the name.
    pub search: Option<String>,
}

impl From<DefinitionFilterInput> for DefinitionFilter {
    fn from(f: DefinitionFilterInput) -> Self {
        DefinitionFilter { instance: f.instance, group_id: f.group_id, active: f.active, search: f.search }
    }
}

/// A task: one unit of work.
pub struct Task(pub TaskRecord);

#[Object]
impl Task {
    /// The TID.
    async fn tid(&self) -> TaskId {
        self.0.draft.tid.unwrap_or(TaskId(0))
    }
    async fn name(&self) -> &str {
        &self.0.draft.name
    }
    async fn description(&self) -> &str {
        &self.0.draft.description
    }
    async fn owner(&self) -> &str {
        &self.0.draft.owner
    }
    async fn team(&self) -> &str {
        &self.0.draft.team
    }
    async fn instance(&self) -> &str {
        &self.0.draft.instance
    }
    async fn group_id(&self) -> Option<GroupId> {
        self.0.group_id
    }
    /// The group, loaded in batches.
    async fn group(&self, ctx: &Context<'_>) -> ApiResult<Option<Group>> {
        let Some(gid) = self.0.group_id else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<GroupLoader>>();
        Ok(loader.load_one(gid).await?.map(Group))
    }
    async fn command(&self) -> &str {
        &self.0.draft.command
    }
    async fn target(&self) -> &str {
        &self.0.draft.target
    }
    async fn run_as_user(&self) -> &str {
        &self.0.draft.run_as_user
    }
    async fn stdout_path(&self) -> Option<&str> {
        self.0.draft.stdout_path.as_deref()
    }
    async fn stderr_path(&self) -> Option<&str> {
        self.0.draft.stderr_path.as_deref()
    }
    async fn profile(&self) -> Vec<EnvVar> {
        self.0.draft.profile.iter().map(|(k, v)| EnvVar { name: k.clone(), value: v.clone() }).collect()
    }
    async fn active(&self) -> bool {
        self.0.draft.active
    }
    /// Absent for grouped tasks (they inherit the group's).
    async fn schedule(&self) -> Option<ScheduleFields> {
        self.0.draft.schedule.clone().map(Into::into)
    }
    async fn retry_attempts(&self) -> i64 {
        self.0.draft.retry_attempts
    }
    async fn retry_delay_seconds(&self) -> i64 {
        self.0.draft.retry_delay_seconds
    }
    async fn max_run_time_seconds(&self) -> i64 {
        self.0.draft.max_run_time_seconds
    }
    async fn accept_expiry_seconds(&self) -> i64 {
        self.0.draft.accept_expiry_seconds
    }
    async fn dependency(&self) -> Option<&str> {
        self.0.draft.dependency.as_deref()
    }
    async fn misfire_policy(&self) -> &str {
        &self.0.draft.misfire_policy
    }
    async fn alerts(&self) -> Vec<AlertRuleFields> {
        self.0.draft.alerts.iter().cloned().map(Into::into).collect()
    }
    /// Increases with every change.
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A group of tasks with a shared schedule, timezone, calendar and instance.
#[derive(Clone)]
pub struct Group(pub GroupRecord);

#[Object]
impl Group {
    /// The GID.
    async fn gid(&self) -> GroupId {
        self.0.draft.gid.unwrap_or(GroupId(0))
    }
    async fn name(&self) -> &str {
        &self.0.draft.name
    }
    async fn description(&self) -> &str {
        &self.0.draft.description
    }
    async fn owner(&self) -> &str {
        &self.0.draft.owner
    }
    async fn team(&self) -> &str {
        &self.0.draft.team
    }
    async fn instance(&self) -> &str {
        &self.0.draft.instance
    }
    async fn active(&self) -> bool {
        self.0.draft.active
    }
    async fn schedule(&self) -> Option<ScheduleFields> {
        self.0.draft.schedule.clone().map(Into::into)
    }
    async fn dependency(&self) -> Option<&str> {
        self.0.draft.dependency.as_deref()
    }
    async fn alerts(&self) -> Vec<AlertRuleFields> {
        self.0.draft.alerts.iter().cloned().map(Into::into).collect()
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A node of a flow graph: one task of the group.
#[derive(SimpleObject)]
pub struct FlowNode {
    pub tid: TaskId,
    pub name: String,
    pub active: bool,
    pub dependency: Option<String>,
    /// The node's top-left corner in a layered layout (upstream above dependants).
    pub x: f64,
    pub y: f64,
}

/// `from` waits for `to` to reach `state`.
#[derive(SimpleObject)]
pub struct FlowEdge {
    pub from: TaskId,
    pub to: TaskId,
    pub state: String,
}

/// A group's tasks and their dependencies, for drawing.
#[derive(SimpleObject)]
pub struct FlowGraph {
    pub group: Group,
    pub nodes: Vec<FlowNode>,
    pub edges: Vec<FlowEdge>,
    /// The drawing's size, and each node's, in the layout's units.
    pub width: f64,
    pub height: f64,
    pub node_width: f64,
    pub node_height: f64,
}

#[derive(Default)]
pub struct DefinitionQuery;

#[Object]
impl DefinitionQuery {
    /// Tasks the caller may see, by TID.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity"
    )]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<DefinitionFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ListConnection<Task>> {
        let p = principal(ctx)?;
        let page = domain::<dyn Definitions>(ctx)
            .tasks(p, &filter.unwrap_or_default().into(), page_args(first, after)?)
            .await?;
        Ok(connection(page, |t| t.draft.tid.map_or(0, |t| t.0), Task))
    }

    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn task(&self, ctx: &Context<'_>, tid: TaskId) -> ApiResult<Task> {
        Ok(Task(domain::<dyn Definitions>(ctx).task(principal(ctx)?, tid).await?))
    }

    /// Groups the caller may see, by GID.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity"
    )]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        filter: Option<DefinitionFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ListConnection<Group>> {
        let p = principal(ctx)?;
        let page = domain::<dyn Definitions>(ctx)
            .groups(p, &filter.unwrap_or_default().into(), page_args(first, after)?)
            .await?;
        Ok(connection(page, |g| g.draft.gid.map_or(0, |g| g.0), Group))
    }

    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn group(&self, ctx: &Context<'_>, gid: GroupId) -> ApiResult<Group> {
        Ok(Group(domain::<dyn Definitions>(ctx).group(principal(ctx)?, gid).await?))
    }

    /// A group's tasks as nodes and their dependencies as edges.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn flow_graph(&self, ctx: &Context<'_>, gid: GroupId) -> ApiResult<FlowGraph> {
        let g = domain::<dyn Definitions>(ctx).flow_graph(principal(ctx)?, gid).await?;
        let ids: Vec<TaskId> = g.tasks.iter().filter_map(|t| t.draft.tid).collect();
        let pairs: Vec<(TaskId, TaskId)> =
            g.edges.iter().map(|(dependant, upstream, _)| (*upstream, *dependant)).collect();
        let layout = crate::layout::layered(&ids, &pairs);
        Ok(FlowGraph {
            group: Group(g.group),
            width: layout.width,
            height: layout.height,
            node_width: crate::layout::NODE_WIDTH,
            node_height: crate::layout::NODE_HEIGHT,
            nodes: g
                .tasks
                .into_iter()
                .filter_map(|t| {
                    let tid = t.draft.tid?;
                    let (x, y) = layout.at.get(&tid).copied().unwrap_or_default();
                    Some(FlowNode {
                        tid,
                        name: t.draft.name,
                        active: t.draft.active,
                        dependency: t.draft.dependency,
                        x,
                        y,
                    })
                })
                .collect(),
            edges: g.edges.into_iter().map(|(from, to, state)| FlowEdge { from, to, state }).collect(),
        })
    }
}

#[derive(Default)]
pub struct DefinitionMutation;

#[Object]
impl DefinitionMutation {
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_task(&self, ctx: &Context<'_>, input: TaskInput) -> ApiResult<Task> {
        let draft = input.into_draft(None)?;
        Ok(Task(domain::<dyn Definitions>(ctx).create_task(principal(ctx)?, draft).await?))
    }

    /// Replaces every field of the task.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn update_task(&self, ctx: &Context<'_>, tid: TaskId, input: TaskInput) -> ApiResult<Task> {
        let draft = input.into_draft(Some(tid))?;
        Ok(Task(domain::<dyn Definitions>(ctx).update_task(principal(ctx)?, tid, draft).await?))
    }

    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_task(&self, ctx: &Context<'_>, tid: TaskId) -> ApiResult<bool> {
        Ok(domain::<dyn Definitions>(ctx).delete_task(principal(ctx)?, tid).await?)
    }

    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_task_active(&self, ctx: &Context<'_>, tid: TaskId, active: bool) -> ApiResult<Task> {
        Ok(Task(domain::<dyn Definitions>(ctx).set_task_active(principal(ctx)?, tid, active).await?))
    }

    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_group(&self, ctx: &Context<'_>, input: GroupInput) -> ApiResult<Group> {
        Ok(Group(domain::<dyn Definitions>(ctx).create_group(principal(ctx)?, input.into_draft(None)).await?))
    }

    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn update_group(&self, ctx: &Context<'_>, gid: GroupId, input: GroupInput) -> ApiResult<Group> {
        Ok(Group(domain::<dyn Definitions>(ctx).update_group(principal(ctx)?, gid, input.into_draft(Some(gid))).await?))
    }

    /// Refused while tasks still belong to the group.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_group(&self, ctx: &Context<'_>, gid: GroupId) -> ApiResult<bool> {
        Ok(domain::<dyn Definitions>(ctx).delete_group(principal(ctx)?, gid).await?)
    }

    /// An inactive group freezes all its tasks.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_group_active(&self, ctx: &Context<'_>, gid: GroupId, active: bool) -> ApiResult<Group> {
        Ok(Group(domain::<dyn Definitions>(ctx).set_group_active(principal(ctx)?, gid, active).await?))
    }
}

pub(crate) fn require(p: &Principal, role: Role) -> Result<(), ApiError> {
    if p.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("needs the {role} role")))
    }
}

/// The definitions' DataLoader: related groups are fetched in one batch per request, never one
/// query per row.
/// Groups by GID, as the caller may see them.
pub struct GroupLoader {
    pub backend: Arc<dyn Definitions>,
    pub principal: Principal,
}

impl Loader<GroupId> for GroupLoader {
    type Value = GroupRecord;
    type Error = ApiError;

    async fn load(&self, keys: &[GroupId]) -> Result<HashMap<GroupId, Self::Value>, Self::Error> {
        let groups = self.backend.groups_by_ids(&self.principal, keys).await?;
        Ok(groups.into_iter().filter_map(|g| g.draft.gid.map(|id| (id, g))).collect())
    }
}
