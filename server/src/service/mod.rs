//! The server's implementation of the API's [`Backend`]: authentication, definitions, import and
//! export, each checked for role and instance access, validated, audited, and published.

pub mod agents;
mod alerting;
mod audit;
pub mod auth;
mod definitions;
pub mod execution;
mod instances;
pub mod operator;
mod runs;
mod scheduler;
mod transfer;
pub mod users;

use crate::db::{self, DbConn, DbError};
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A failure inside a service call: an answer for the client, or a storage failure to log.
#[derive(Debug)]
pub enum SvcError {
    Api(ApiError),
    Db(DbError),
}

impl From<ApiError> for SvcError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}
impl From<DbError> for SvcError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}
impl From<diesel::result::Error> for SvcError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}
impl From<baton_schema::FieldErrors> for SvcError {
    fn from(e: baton_schema::FieldErrors) -> Self {
        Self::Api(e.into())
    }
}
impl From<baton_schema::FieldError> for SvcError {
    fn from(e: baton_schema::FieldError) -> Self {
        Self::Api(e.into())
    }
}

impl From<SvcError> for ApiError {
    fn from(e: SvcError) -> Self {
        match e {
            SvcError::Api(a) => a,
            SvcError::Db(DbError::NotFound) => ApiError::NotFound("record".into()),
            SvcError::Db(DbError::Conflict(m)) => ApiError::Conflict(m),
            SvcError::Db(other) => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Internal
            }
        }
    }
}

pub type SvcResult<T> = Result<T, SvcError>;

/// Names what was looked for when a look-up finds nothing; every other failure (storage, or a
/// refusal that is not "not yours") stays what it was, so it is logged and reaches the client as
/// INTERNAL instead of passing for a missing record.
pub(crate) trait Found<T> {
    fn found(self, what: &str) -> SvcResult<T>;
}

impl<T> Found<T> for Result<T, DbError> {
    fn found(self, what: &str) -> SvcResult<T> {
        self.map_err(|e| match e {
            DbError::NotFound => ApiError::NotFound(what.into()).into(),
            other => SvcError::Db(other),
        })
    }
}

impl<T> Found<T> for SvcResult<T> {
    fn found(self, what: &str) -> SvcResult<T> {
        self.map_err(|e| match e {
            SvcError::Db(DbError::NotFound) | SvcError::Api(ApiError::NotFound(_)) => {
                ApiError::NotFound(what.into()).into()
            }
            other => other,
        })
    }
}

/// Everything the API needs from the server.
pub struct Services {
    pub db: db::Db,
    pub hub: Arc<crate::agents::AgentHub>,
    pub driver: Arc<crate::driver::Driver>,
    /// Figures the engine keeps, for health.
    engine: crate::engine::EngineDeps,
    /// The credential store.
    vault: Arc<crate::vault::Vault>,
    /// The alert queue.
    alerts: Arc<crate::alerts::Alerts>,
    pub started_at: DateTime<Utc>,
    changes: broadcast::Sender<DefinitionChange>,
    sequence: AtomicU64,
    limiter: Mutex<auth::LoginLimiter>,
    /// Where passwords are hashed and checked.
    hasher: auth::Hasher,
    /// Which instance each run is in, for live events.
    run_scopes: Arc<runs::RunScopes>,
}

impl Services {
    pub fn new(
        db: db::Db,
        hub: Arc<crate::agents::AgentHub>,
        driver: Arc<crate::driver::Driver>,
        engine: crate::engine::EngineDeps,
        vault: Arc<crate::vault::Vault>,
        alerts: Arc<crate::alerts::Alerts>,
    ) -> Arc<Services> {
        let (changes, _) = broadcast::channel(4096);
        let started_at = driver.now();
        Arc::new(Services {
            db,
            hub,
            driver,
            engine,
            vault,
            alerts,
            started_at,
            changes,
            sequence: AtomicU64::new(0),
            limiter: Mutex::new(auth::LoginLimiter::default()),
            hasher: auth::Hasher::default(),
            run_scopes: Arc::default(),
        })
    }

    /// The time, from the server's clock (the driver's): services read no other.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.driver.now()
    }

    /// Runs blocking storage work and turns its failure into an API error.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> SvcResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let pool = self.db.clone();
        let out = pool.run(move |c| Ok(f(c))).await.map_err(|e| ApiError::from(SvcError::Db(e)))?;
        out.map_err(ApiError::from)
    }

    /// Publishes a change to subscribers (after it was stored), and records it for the other
    /// servers sharing the database (`follow_other_servers`).
    fn publish(&self, kind: ChangeKind, id: i64, name: &str, instance: &str, action: &str) {
        self.publish_here(kind, id, name, instance, action, self.driver.now());
        if !self.driver.shares_database() {
            return;
        }
        let (name, instance, action) = (name.to_string(), instance.to_string(), action.to_string());
        let (server, now) = (self.driver.server().to_string(), self.driver.now());
        let recorded = self.db.submit(move |c| {
            let change = db::definition_changes::NewChange {
                kind,
                entity_id: id,
                name: &name,
                instance: &instance,
                action: &action,
                server: &server,
            };
            db::definition_changes::record(c, &change, now)
        });
        actix_web::rt::spawn(async move {
            if let Err(e) = recorded.await {
                tracing::error!(error = %e, "recording a definition change for the other servers");
            }
        });
    }

    fn publish_here(&self, kind: ChangeKind, id: i64, name: &str, instance: &str, action: &str, at: DateTime<Utc>) {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.changes.send(DefinitionChange {
            kind,
            id,
            name: name.into(),
            instance: instance.into(),
            action: action.into(),
            at,
            sequence,
        });
    }

    /// Publishes the definition changes other servers record, in order, to this server's engine
    /// and subscribers (servers sharing a PostgreSQL database).
    pub async fn follow_other_servers(self: Arc<Self>) {
        let me = self.driver.server().to_string();
        let read = move |c: &mut DbConn, from| db::definition_changes::foreign_after(c, from, &me, 1_000);
        let every = std::time::Duration::from_millis(200);
        db::tail::follow(
            self.db.clone(),
            every,
            "definition changes",
            db::definition_changes::last_id,
            read,
            |r| r.id,
            |r| self.publish_here(r.kind, r.entity_id, &r.name, &r.instance, &r.action, db::utc(r.at)),
        )
        .await;
    }
}

/// The ids of the instances `p` may see (None: all).
pub(crate) fn visible_instances(c: &mut DbConn, access: &InstanceAccess) -> SvcResult<Option<Vec<InstanceId>>> {
    Ok(match access {
        InstanceAccess::All => None,
        InstanceAccess::Only(names) => {
            Some(db::instances::list(c)?.into_iter().filter(|i| names.contains(&i.name)).map(|i| i.id).collect())
        }
    })
}

/// The instance of that name, if `p` may use it.
pub(crate) fn instance_for(c: &mut DbConn, p: &Principal, name: &str) -> SvcResult<db::instances::InstanceRow> {
    if !p.instances.allows(name) {
        return Err(ApiError::Forbidden(format!("no access to instance {name}")).into());
    }
    db::instances::by_name(c, name)?
        .ok_or_else(|| ApiError::invalid("instance", "unknown_instance", format!("no instance {name}")).into())
}

/// Checks that `p` may see the instance with this id.
pub(crate) fn check_instance_id(c: &mut DbConn, p: &Principal, id: InstanceId) -> SvcResult<String> {
    let row = db::instances::get(c, id)?;
    if !p.instances.allows(&row.name) {
        return Err(ApiError::NotFound("record".into()).into());
    }
    Ok(row.name)
}

/// The timezone a task's days are counted in: its group's schedule's when grouped, else its
/// own (UTC without a schedule).
pub(crate) fn task_timezone(c: &mut db::DbConn, row: &db::tasks::TaskRow) -> Result<chrono_tz::Tz, SvcError> {
    let schedule = match row.group_id {
        Some(g) => db::groups::get(c, g)?.schedule,
        None => row.schedule.clone(),
    };
    Ok(schedule
        .and_then(|s| serde_json::from_str::<baton_schema::schedule::ScheduleDraft>(&s).ok())
        .and_then(|d| baton_schema::schedule::Schedule::parse(&d).ok())
        .map_or(chrono_tz::UTC, |s| s.timezone))
}

pub(crate) fn require(p: &Principal, role: Role) -> SvcResult<()> {
    if p.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("needs the {role} role")).into())
    }
}

/// Records one mutation of something global (a user, a token, a credential...) in the audit log.
pub(crate) fn audit(
    c: &mut DbConn,
    now: DateTime<Utc>,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> SvcResult<()> {
    audit_in(c, now, None, actor, action, target, before, after)
}

/// Records one mutation in the audit log, with the instance it is about: its admins read it.
#[allow(clippy::too_many_arguments)] // An audit entry's fields, each named at the call.
pub(crate) fn audit_in(
    c: &mut DbConn,
    now: DateTime<Utc>,
    instance: Option<InstanceId>,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> SvcResult<()> {
    let entry = db::audit::AuditEntry { actor, action, target, before, after, origin: "api", instance };
    db::audit::record(c, &entry, now)?;
    Ok(())
}

impl baton_graphql::Clock for Services {
    fn now(&self) -> DateTime<Utc> {
        self.driver.now()
    }
}
