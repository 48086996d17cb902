//! Agents and their enrollment tokens, as the API sees them.

use super::Found;
use super::{audit, Services, SvcError, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::InstanceAccess;
use baton_schema::ids::AgentTokenId;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

fn token_record(r: db::agent_tokens::AgentTokenRow) -> AgentTokenRecord {
    AgentTokenRecord {
        id: r.id,
        name: r.name,
        created_by: r.created_by,
        created_at: db::utc(r.created_at),
        revoked_at: r.revoked_at.map(db::utc),
        agent_name: r.agent_name,
        instances: r.instances,
    }
}

/// Creates an enrollment token and returns it (only its hash is stored).
/// `instances`: those its agent serves when it first registers (its maker's).
pub fn create_token(
    c: &mut DbConn,
    now: DateTime<Utc>,
    name: &str,
    created_by: &str,
    instances: &InstanceAccess,
) -> SvcResult<(String, AgentTokenRecord)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name", "length", "must be 1-128 characters").into());
    }
    let token = super::auth::new_token("ba_").map_err(|_| SvcError::Api(ApiError::Internal))?;
    db::transaction(c, |c| {
        let maker = (created_by, instances.to_string());
        let hash = super::auth::token_hash(&token);
        let id = match db::agent_tokens::insert(c, name, &hash, (maker.0, &maker.1), now) {
            Err(db::DbError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!("an agent token named {name} exists")).into())
            }
            other => other?,
        };
        audit(c, now, created_by, "createAgentToken", name, None, None)?;
        let row = db::agent_tokens::list(c)?.into_iter().find(|t| t.id == id).ok_or(db::DbError::NotFound)?;
        Ok((token, token_record(row)))
    })
}

pub(super) fn agent_record(a: db::agents::AgentRow) -> AgentRecord {
    AgentRecord {
        id: a.id,
        queues: a.queue_list().into_iter().map(str::to_string).collect(),
        // Stored by `set_agent_instances` only, after the same parse; unreadable means none.
        instances: InstanceAccess::parse(&a.instances).unwrap_or(InstanceAccess::Only(Vec::new())),
        name: a.name,
        hostname: a.hostname,
        version: a.version,
        os: a.os,
        status: a.status,
        cpu_percent: a.cpu_percent,
        memory_percent: a.memory_percent,
        uptime_seconds: a.uptime_seconds,
        write_failures: a.write_failures,
        degraded: a.degraded,
        last_seen_at: a.last_seen_at.map(db::utc),
    }
}

/// Whether an adhoc run by someone with `caller`'s instances may reach an agent serving
/// `agent`'s: they must share an instance (or either has every one).
pub(super) fn adhoc_may_reach(caller: &InstanceAccess, agent: &InstanceAccess) -> bool {
    match (caller, agent) {
        (_, InstanceAccess::All) => true,
        (InstanceAccess::All, InstanceAccess::Only(names)) => !names.is_empty(),
        (InstanceAccess::Only(mine), InstanceAccess::Only(its)) => mine.iter().any(|m| its.contains(m)),
    }
}

/// Whether a caller with `caller`'s instances sees an agent serving `agent`'s: they share one,
/// or either has every one.
fn sees_agent(caller: &InstanceAccess, agent: &InstanceAccess) -> bool {
    matches!(caller, InstanceAccess::All) || adhoc_may_reach(caller, agent)
}

impl Services {}

#[async_trait]
impl baton_graphql::Agents for Services {
    async fn agents(&self, p: &Principal) -> BackendResult<Vec<AgentRecord>> {
        let all = self.run(|c| Ok(db::agents::list(c)?.into_iter().map(agent_record).collect::<Vec<_>>())).await?;
        Ok(all.into_iter().filter(|a| sees_agent(&p.instances, &a.instances)).collect())
    }

    async fn agent_tokens(&self) -> BackendResult<Vec<AgentTokenRecord>> {
        self.run(|c| Ok(db::agent_tokens::list(c)?.into_iter().map(token_record).collect())).await
    }

    async fn set_agent_instances(
        &self,
        actor: &Principal,
        name: &str,
        instances: InstanceAccess,
    ) -> BackendResult<AgentRecord> {
        let now = self.now();
        let (actor, name) = (actor.clone(), name.to_string());
        let record = self
            .run(move |c| {
                db::transaction(c, |c| {
                    let row =
                        db::agents::by_name(c, &name)?.ok_or_else(|| ApiError::NotFound(format!("agent {name}")))?;
                    let before = agent_record(row).instances;
                    if !actor.instances.covers(&before) || !actor.instances.covers(&instances) {
                        return Err(ApiError::Forbidden(format!(
                            "you may set only instances you have ({}) on an agent that serves only those",
                            actor.instances
                        ))
                        .into());
                    }
                    db::agents::set_instances(c, &name, &instances.to_string())?;
                    audit(
                        c,
                        now,
                        &actor.username,
                        "setAgentInstances",
                        &name,
                        Some(before.to_string()),
                        Some(instances.to_string()),
                    )?;
                    let row = db::agents::by_name(c, &name)?.ok_or(db::DbError::NotFound)?;
                    Ok(agent_record(row))
                })
            })
            .await?;
        // Its runs follow the new setting at once here, on other servers at their next read.
        self.hub.read_serves().await;
        Ok(record)
    }

    async fn create_agent_token(&self, actor: &Principal, name: &str) -> BackendResult<(String, AgentTokenRecord)> {
        let (name, instances, now) = (name.to_string(), actor.instances.clone(), self.now());
        let actor = actor.username.clone();
        self.run(move |c| create_token(c, now, &name, &actor, &instances)).await
    }

    async fn revoke_agent_token(&self, actor: &Principal, id: AgentTokenId) -> BackendResult<bool> {
        let now = self.now();
        let (access, actor) = (actor.instances.clone(), actor.username.clone());
        self.run(move |c| {
            db::transaction(c, |c| {
                // Only an admin of every instance its agent serves may revoke it (else an admin of
                // one instance could free another's agent name and take it with a token of its own).
                let token = db::agent_tokens::list(c)?
                    .into_iter()
                    .find(|t| t.id == id)
                    .ok_or_else(|| SvcError::Api(ApiError::NotFound("agent token".into())))?;
                let agent = match token.agent_name.as_deref() {
                    Some(name) => db::agents::by_name(c, name)?.map(|a| a.instances),
                    None => None,
                };
                let serves = |s: &str| InstanceAccess::parse(s).unwrap_or(InstanceAccess::All);
                if !access.covers(&serves(&token.instances)) || agent.is_some_and(|a| !access.covers(&serves(&a))) {
                    return Err(
                        ApiError::Forbidden("this agent token's agent serves instances beyond yours".into()).into()
                    );
                }
                db::agent_tokens::revoke(c, id, now).found("agent token")?;
                audit(c, now, &actor, "revokeAgentToken", &id.to_string(), None, None)?;
                Ok(true)
            })
        })
        .await?;
        // Its agents go at once (those on other servers at those servers' next check).
        self.hub.disconnect_token(id);
        Ok(true)
    }

    fn agent_changes(&self, p: &Principal) -> BoxStream<'static, AgentChangeRecord> {
        let now = self.now();
        let (db, caller) = (self.db.clone(), p.instances.clone());
        tokio_stream::wrappers::BroadcastStream::new(self.hub.subscribe())
            .filter_map(move |r| {
                let (db, caller) = (db.clone(), caller.clone());
                async move {
                    let c = r.ok()?;
                    if !matches!(caller, InstanceAccess::All) {
                        // Rare (an agent coming or going): looked up each time, never stale.
                        let name = c.name.clone();
                        let row = db.run(move |conn| db::agents::by_name(conn, &name)).await.ok().flatten()?;
                        if !sees_agent(&caller, &agent_record(row).instances) {
                            return None;
                        }
                    }
                    Some(AgentChangeRecord { name: c.name, status: c.status, at: now })
                }
            })
            .boxed()
    }
}
