//! Agents: who is connected, their figures, their enrollment tokens, and live presence changes.

use crate::backend::*;
use crate::backend::{AgentChangeRecord, AgentRecord, AgentTokenRecord};
use crate::definitions::domain;
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Enum, Object, SimpleObject, Subscription};
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::ids::{AgentId, AgentTokenId};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

/// Agents and their enrollment tokens.
#[async_trait::async_trait]
pub trait Agents: Send + Sync {
    /// The agents `p` sees: those serving every instance or one of `p`'s.
    async fn agents(&self, p: &Principal) -> BackendResult<Vec<AgentRecord>>;
    async fn agent_tokens(&self) -> BackendResult<Vec<AgentTokenRecord>>;
    /// Sets which instances' runs an agent takes; the actor must have all of them.
    async fn set_agent_instances(
        &self,
        actor: &Principal,
        name: &str,
        instances: InstanceAccess,
    ) -> BackendResult<AgentRecord>;
    /// A new enrollment token, shown once.
    async fn create_agent_token(&self, actor: &Principal, name: &str) -> BackendResult<(String, AgentTokenRecord)>;
    async fn revoke_agent_token(&self, actor: &Principal, id: AgentTokenId) -> BackendResult<bool>;
    /// Agents' comings and goings, of the agents `p` sees.
    fn agent_changes(&self, p: &Principal) -> BoxStream<'static, AgentChangeRecord>;
}

/// Whether an agent is connected to a server; the domain's own `AgentStatus`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "baton_schema::agent::AgentStatus")]
pub enum AgentStatus {
    Online,
    Offline,
}

#[derive(SimpleObject)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub version: String,
    pub os: String,
    pub status: AgentStatus,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub uptime_seconds: Option<i64>,
    /// Failed writes to its own state (journals, acknowledgements) since it started, as its last
    /// heartbeat said: none is expected, and the agent's log has each.
    pub write_failures: i64,
    /// Why it is degraded now: the last of its writes to its own state that failed since the
    /// heartbeat before (a full disk, say); null while they work.
    pub degraded: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// `*` or the instances whose runs (tasks' and operators' adhoc runs) this agent takes.
    pub instances: String,
}

impl From<AgentRecord> for Agent {
    fn from(a: AgentRecord) -> Self {
        Agent {
            id: a.id,
            name: a.name,
            hostname: a.hostname,
            queues: a.queues,
            version: a.version,
            os: a.os,
            status: a.status.into(),
            cpu_percent: a.cpu_percent,
            memory_percent: a.memory_percent,
            uptime_seconds: a.uptime_seconds,
            write_failures: a.write_failures,
            degraded: a.degraded,
            last_seen_at: a.last_seen_at,
            instances: a.instances.to_string(),
        }
    }
}

#[derive(SimpleObject)]
pub struct CreatedAgentToken {
    /// Shown once: give it to `baton-agent --token`.
    pub token: String,
    pub info: AgentTokenRecord,
}

#[derive(SimpleObject, Clone)]
pub struct AgentEvent {
    pub name: String,
    pub status: AgentStatus,
    pub at: DateTime<Utc>,
}

impl From<AgentChangeRecord> for AgentEvent {
    fn from(c: AgentChangeRecord) -> Self {
        AgentEvent { name: c.name, status: c.status.into(), at: c.at }
    }
}

#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// Every agent that ever registered and serves every instance or one of the caller's, by name.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn agents(&self, ctx: &Context<'_>) -> ApiResult<Vec<Agent>> {
        Ok(domain::<dyn Agents>(ctx).agents(principal(ctx)?).await?.into_iter().map(Agent::from).collect())
    }

    /// The tokens whose agents serve only instances the caller has.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn agent_tokens(&self, ctx: &Context<'_>) -> ApiResult<Vec<AgentTokenRecord>> {
        let p = principal(ctx)?;
        let covered =
            |t: &AgentTokenRecord| InstanceAccess::parse(&t.instances).is_ok_and(|serves| p.instances.covers(&serves));
        Ok(domain::<dyn Agents>(ctx).agent_tokens().await?.into_iter().filter(covered).collect())
    }
}

#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// An enrollment token for agents (also `baton agent-token create --name N`).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_agent_token(&self, ctx: &Context<'_>, name: String) -> ApiResult<CreatedAgentToken> {
        let (token, info) = domain::<dyn Agents>(ctx).create_agent_token(principal(ctx)?, &name).await?;
        Ok(CreatedAgentToken { token, info })
    }

    /// Which instances' runs the agent takes, their tasks' and their operators' adhoc commands
    /// (`*`, the default, or a comma-separated list); the caller must have every instance of the
    /// old and the new list.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_agent_instances(&self, ctx: &Context<'_>, name: String, instances: String) -> ApiResult<Agent> {
        let instances = InstanceAccess::parse(&instances).map_err(ApiError::from)?;
        Ok(domain::<dyn Agents>(ctx).set_agent_instances(principal(ctx)?, &name, instances).await?.into())
    }

    /// Agents using it can no longer connect.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn revoke_agent_token(&self, ctx: &Context<'_>, id: AgentTokenId) -> ApiResult<bool> {
        Ok(domain::<dyn Agents>(ctx).revoke_agent_token(principal(ctx)?, id).await?)
    }
}

#[derive(Default)]
pub struct AgentSubscription;

#[Subscription]
impl AgentSubscription {
    /// Agents coming online, going OFFLINE, or coming back.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn agent_events(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = AgentEvent>> {
        Ok(domain::<dyn Agents>(ctx).agent_changes(principal(ctx)?).map(AgentEvent::from))
    }
}
