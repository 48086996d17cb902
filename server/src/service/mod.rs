//! The server's implementation of the API's [`Backend`]: authentication, definitions, import and
//! export, each checked for role and instance access, validated, audited, and published.

pub mod agents;
mod alerting;
pub mod auth;
mod definitions;
pub mod execution;
pub mod operator;
mod runs;
mod scheduler;
mod transfer;
pub mod users;

use crate::db::{self, DbConn, DbError};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::calendar::CalendarDraft;
use baton_schema::definition::{GroupDraft, TaskDraft};
use baton_schema::document::Document;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
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
        Arc::new(Services {
            db,
            hub,
            driver,
            engine,
            vault,
            alerts,
            started_at: Utc::now(),
            changes,
            sequence: AtomicU64::new(0),
            limiter: Mutex::new(auth::LoginLimiter::default()),
            run_scopes: Arc::default(),
        })
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
    fn publish(&self, kind: &str, id: i64, name: &str, instance: &str, action: &str) {
        self.publish_here(kind, id, name, instance, action, self.driver.now());
        if !self.driver.shares_database() {
            return;
        }
        let (kind, name, instance, action) =
            (kind.to_string(), name.to_string(), instance.to_string(), action.to_string());
        let (server, now) = (self.driver.server().to_string(), self.driver.now());
        let recorded = self.db.submit(move |c| {
            let change = db::definition_changes::NewChange {
                kind: &kind,
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

    fn publish_here(&self, kind: &str, id: i64, name: &str, instance: &str, action: &str, at: DateTime<Utc>) {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.changes.send(DefinitionChange {
            kind: kind.into(),
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
            |r| {
                self.publish_here(&r.kind, r.entity_id, &r.name, &r.instance, &r.action, db::utc(r.at));
            },
        )
        .await;
    }
}

/// The ids of the instances `p` may see (None: all).
pub(crate) fn visible_instances(c: &mut DbConn, access: &InstanceAccess) -> SvcResult<Option<Vec<i64>>> {
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
pub(crate) fn check_instance_id(c: &mut DbConn, p: &Principal, id: i64) -> SvcResult<String> {
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

/// Records one mutation in the audit log.
pub(crate) fn audit(
    c: &mut DbConn,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> SvcResult<()> {
    db::audit::record(c, &db::audit::AuditEntry { actor, action, target, before, after, origin: "api" }, Utc::now())?;
    Ok(())
}

#[async_trait]
impl Backend for Services {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn instances(&self) -> BackendResult<Vec<InstanceInfo>> {
        self.run(|c| {
            Ok(db::instances::list(c)?
                .into_iter()
                .map(|r| InstanceInfo { id: r.id, name: r.name, description: r.description })
                .collect())
        })
        .await
    }

    async fn create_instance(&self, actor: &Principal, name: &str, description: &str) -> BackendResult<InstanceInfo> {
        let (actor, name, description) = (actor.clone(), name.to_string(), description.to_string());
        let info = self
            .run(move |c| {
                baton_schema::names::InstanceName::parse(&name)?;
                if db::instances::by_name(c, &name)?.is_some() {
                    return Err(ApiError::Conflict(format!("instance {name} exists")).into());
                }
                db::transaction(c, |c| {
                    let row = db::instances::ensure(c, &name, Utc::now())?;
                    if !description.is_empty() {
                        db::instances::set_description(c, row.id, &description)?;
                    }
                    audit(c, &actor.username, "createInstance", &name, None, Some(name.clone()))?;
                    Ok(InstanceInfo { id: row.id, name: row.name, description })
                })
            })
            .await?;
        Ok(info)
    }

    async fn login(&self, client: &ClientInfo, username: &str, password: &str) -> BackendResult<(String, UserRecord)> {
        self.login_impl(client, username, password).await
    }
    async fn logout(&self, client: &ClientInfo) -> BackendResult<bool> {
        self.logout_impl(client).await
    }
    async fn users(&self) -> BackendResult<Vec<UserRecord>> {
        self.users_impl().await
    }
    async fn create_user(
        &self,
        actor: &Principal,
        username: &str,
        password: &str,
        role: Role,
        instances: InstanceAccess,
    ) -> BackendResult<UserRecord> {
        self.create_user_impl(actor, username, password, role, instances).await
    }
    async fn update_user(
        &self,
        actor: &Principal,
        id: i64,
        role: Option<Role>,
        instances: Option<InstanceAccess>,
        disabled: Option<bool>,
    ) -> BackendResult<UserRecord> {
        self.update_user_impl(actor, id, role, instances, disabled).await
    }
    async fn set_password(
        &self,
        actor: &Principal,
        id: i64,
        password: &str,
        current: Option<&str>,
    ) -> BackendResult<bool> {
        self.set_password_impl(actor, id, password, current).await
    }
    async fn api_tokens(&self, user_id: Option<i64>) -> BackendResult<Vec<ApiTokenRecord>> {
        self.api_tokens_impl(user_id).await
    }
    async fn create_api_token(
        &self,
        actor: &Principal,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> BackendResult<(String, ApiTokenRecord)> {
        self.create_api_token_impl(actor, name, expires_at).await
    }
    async fn revoke_api_token(&self, actor: &Principal, id: i64) -> BackendResult<bool> {
        self.revoke_api_token_impl(actor, id).await
    }

    async fn tasks(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<TaskRecord>> {
        self.tasks_impl(p, f, page).await
    }
    async fn task(&self, p: &Principal, tid: i64) -> BackendResult<TaskRecord> {
        self.task_impl(p, tid).await
    }
    async fn create_task(&self, p: &Principal, draft: TaskDraft) -> BackendResult<TaskRecord> {
        self.save_task_impl(p, None, draft).await
    }
    async fn update_task(&self, p: &Principal, tid: i64, draft: TaskDraft) -> BackendResult<TaskRecord> {
        self.save_task_impl(p, Some(tid), draft).await
    }
    async fn delete_task(&self, p: &Principal, tid: i64) -> BackendResult<bool> {
        self.delete_task_impl(p, tid).await
    }
    async fn set_task_active(&self, p: &Principal, tid: i64, active: bool) -> BackendResult<TaskRecord> {
        self.set_task_active_impl(p, tid, active).await
    }
    async fn groups(&self, p: &Principal, f: &DefinitionFilter, page: PageArgs) -> BackendResult<Page<GroupRecord>> {
        self.groups_impl(p, f, page).await
    }
    async fn group(&self, p: &Principal, gid: i64) -> BackendResult<GroupRecord> {
        self.group_impl(p, gid).await
    }
    async fn groups_by_ids(&self, p: &Principal, ids: &[i64]) -> BackendResult<Vec<GroupRecord>> {
        self.groups_by_ids_impl(p, ids).await
    }
    async fn create_group(&self, p: &Principal, draft: GroupDraft) -> BackendResult<GroupRecord> {
        self.save_group_impl(p, None, draft).await
    }
    async fn update_group(&self, p: &Principal, gid: i64, draft: GroupDraft) -> BackendResult<GroupRecord> {
        self.save_group_impl(p, Some(gid), draft).await
    }
    async fn delete_group(&self, p: &Principal, gid: i64) -> BackendResult<bool> {
        self.delete_group_impl(p, gid).await
    }
    async fn set_group_active(&self, p: &Principal, gid: i64, active: bool) -> BackendResult<GroupRecord> {
        self.set_group_active_impl(p, gid, active).await
    }
    async fn flow_graph(&self, p: &Principal, gid: i64) -> BackendResult<FlowGraphData> {
        self.flow_graph_impl(p, gid).await
    }
    async fn calendars(&self, p: &Principal, instance: Option<&str>) -> BackendResult<Vec<CalendarRecord>> {
        self.calendars_impl(p, instance).await
    }
    async fn calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<Option<CalendarRecord>> {
        self.calendar_impl(p, instance, name).await
    }
    async fn save_calendar(
        &self,
        p: &Principal,
        instance: &str,
        draft: CalendarDraft,
    ) -> BackendResult<CalendarRecord> {
        self.save_calendar_impl(p, instance, draft).await
    }
    async fn delete_calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<bool> {
        self.delete_calendar_impl(p, instance, name).await
    }

    async fn audit_log(&self, p: &Principal, f: &AuditFilter, page: PageArgs) -> BackendResult<Page<AuditRecord>> {
        // Audit entries name no instance: a caller limited to some sees only their own.
        let actor = match (&p.instances, &f.actor) {
            (InstanceAccess::All, a) => a.clone(),
            (InstanceAccess::Only(_), Some(a)) if *a != p.username => {
                return Ok(Page { items: Vec::new(), total: 0, has_next: false })
            }
            (InstanceAccess::Only(_), _) => Some(p.username.clone()),
        };
        let f = db::audit::AuditFilter { actor, action: f.action.clone(), since: f.since };
        self.run(move |c| {
            let mut rows = db::audit::page(c, &f, page.after, page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::audit::count(c, &f)?;
            Ok(Page {
                items: rows
                    .into_iter()
                    .map(|r| AuditRecord {
                        id: r.id,
                        at: db::utc(r.at),
                        actor: r.actor,
                        action: r.action,
                        target: r.target,
                        before: r.before_value,
                        after: r.after_value,
                        origin: r.origin,
                    })
                    .collect(),
                total,
                has_next,
            })
        })
        .await
    }

    async fn export(&self, p: &Principal, instances: Option<Vec<String>>) -> BackendResult<Document> {
        self.export_impl(p, instances).await
    }

    async fn import(
        &self,
        p: &Principal,
        document: serde_json::Value,
        mode: ImportMode,
        dry_run: bool,
    ) -> BackendResult<ImportPlan> {
        self.import_impl(p, document, mode, dry_run).await
    }

    async fn runs(&self, p: &Principal, f: &RunFilter, page: PageArgs) -> BackendResult<Page<RunRecord>> {
        self.runs_impl(p, f, page).await
    }
    async fn run(&self, p: &Principal, id: i64) -> BackendResult<RunRecord> {
        self.run_impl(p, id).await
    }
    async fn run_transitions(&self, p: &Principal, id: i64) -> BackendResult<Vec<TransitionRecord>> {
        self.run_transitions_impl(p, id).await
    }
    async fn run_output(
        &self,
        p: &Principal,
        id: i64,
        attempt: Option<i32>,
        stream: &str,
        offset: i64,
        limit: i64,
    ) -> BackendResult<OutputSlice> {
        self.run_output_impl(p, id, attempt, stream, offset, limit).await
    }
    async fn status_counts(&self, p: &Principal, run_date: chrono::NaiveDate) -> BackendResult<Vec<(String, i64)>> {
        self.status_counts_impl(p, run_date).await
    }

    async fn upcoming_runs(&self, p: &Principal, limit: usize) -> BackendResult<Vec<UpcomingRecord>> {
        self.upcoming_runs_impl(p, limit).await
    }
    async fn scheduler_health(&self, p: &Principal) -> BackendResult<SchedulerHealth> {
        self.scheduler_health_impl(p).await
    }

    async fn agents(&self) -> BackendResult<Vec<AgentRecord>> {
        self.agents_impl().await
    }
    async fn agent_tokens(&self) -> BackendResult<Vec<AgentTokenRecord>> {
        self.agent_tokens_impl().await
    }
    async fn set_agent_instances(
        &self,
        actor: &Principal,
        name: &str,
        instances: InstanceAccess,
    ) -> BackendResult<AgentRecord> {
        self.set_agent_instances_impl(actor, name, instances).await
    }
    async fn create_agent_token(&self, actor: &Principal, name: &str) -> BackendResult<(String, AgentTokenRecord)> {
        self.create_agent_token_impl(actor, name).await
    }
    async fn revoke_agent_token(&self, actor: &Principal, id: i64) -> BackendResult<bool> {
        self.revoke_agent_token_impl(actor, id).await
    }
    fn agent_changes(&self) -> BoxStream<'static, AgentChangeRecord> {
        tokio_stream::wrappers::BroadcastStream::new(self.hub.subscribe())
            .filter_map(|r| async move {
                r.ok().map(|c| AgentChangeRecord { name: c.name, status: c.status, at: Utc::now() })
            })
            .boxed()
    }

    async fn run_adhoc(&self, p: &Principal, req: AdhocRequest) -> BackendResult<Vec<RunRecord>> {
        self.run_adhoc_impl(p, req).await
    }
    async fn force_run(
        &self,
        p: &Principal,
        tid: i64,
        run_date: Option<chrono::NaiveDate>,
    ) -> BackendResult<RunRecord> {
        self.force_run_impl(p, tid, run_date).await
    }
    async fn terminate_run(&self, p: &Principal, id: i64) -> BackendResult<bool> {
        self.terminate_run_impl(p, id).await
    }
    async fn modify_run_status(
        &self,
        p: &Principal,
        id: i64,
        to: baton_schema::run::RunStatus,
    ) -> BackendResult<OperatorEventRecord> {
        self.modify_run_status_impl(p, id, to).await
    }
    async fn freeze_task(
        &self,
        p: &Principal,
        tid: i64,
        run_date: Option<chrono::NaiveDate>,
        freeze: bool,
    ) -> BackendResult<OperatorEventRecord> {
        self.freeze_task_impl(p, tid, run_date, freeze).await
    }
    async fn operator_events(
        &self,
        p: &Principal,
        task_id: Option<i64>,
        limit: i64,
    ) -> BackendResult<Vec<OperatorEventRecord>> {
        self.operator_events_impl(p, task_id, limit).await
    }
    async fn missed_runs(&self, p: &Principal, since: DateTime<Utc>, limit: i64) -> BackendResult<Vec<RunRecord>> {
        self.missed_runs_impl(p, since, limit).await
    }
    async fn group_runs(&self, p: &Principal, gid: i64, limit: i64) -> BackendResult<Vec<GroupRunRecord>> {
        self.group_runs_impl(p, gid, limit).await
    }
    fn run_updates(&self, p: &Principal) -> BoxStream<'static, RunUpdateRecord> {
        let (db, scopes, p) = (self.db.clone(), self.run_scopes.clone(), p.clone());
        tokio_stream::wrappers::BroadcastStream::new(self.driver.subscribe())
            .filter_map(move |r| {
                let (db, scopes, p) = (db.clone(), scopes.clone(), p.clone());
                async move {
                    let u = r.ok()?;
                    scopes.visible(&db, &p, u.run_id).await.then(|| RunUpdateRecord {
                        run_id: u.run_id,
                        task_name: u.task_name,
                        from: u.transition.from,
                        to: u.transition.to,
                        attempt: i32::try_from(u.transition.attempt).unwrap_or(i32::MAX),
                        at: u.transition.at,
                        reason: u.transition.reason.map(|r| r.to_string()),
                    })
                }
            })
            .boxed()
    }
    async fn output_updates(
        &self,
        p: &Principal,
        run_id: i64,
    ) -> BackendResult<BoxStream<'static, OutputUpdateRecord>> {
        // Subscribed before the check, so nothing stored in between is missed.
        let updates = self.driver.subscribe_output();
        self.run_impl(p, run_id).await?;
        Ok(tokio_stream::wrappers::BroadcastStream::new(updates)
            .filter_map(move |r| async move {
                r.ok().filter(|u| u.run_id == run_id).map(|u| OutputUpdateRecord {
                    run_id: u.run_id,
                    attempt: i32::try_from(u.attempt).unwrap_or(i32::MAX),
                    stream: u.stream.to_string(),
                    offset: u.offset,
                    data: u.data,
                })
            })
            .boxed())
    }

    fn definition_changes(&self) -> BoxStream<'static, DefinitionChange> {
        tokio_stream::wrappers::BroadcastStream::new(self.changes.subscribe())
            .filter_map(|r| async move { r.ok() })
            .boxed()
    }

    async fn integrations(&self) -> BackendResult<Vec<IntegrationRecord>> {
        self.integrations_impl().await
    }

    async fn save_integration(
        &self,
        p: &Principal,
        name: Option<&str>,
        draft: baton_schema::alert::IntegrationDraft,
    ) -> BackendResult<IntegrationRecord> {
        self.save_integration_impl(p, name, draft).await
    }

    async fn delete_integration(&self, p: &Principal, name: &str) -> BackendResult<bool> {
        self.delete_integration_impl(p, name).await
    }

    async fn credential_keys(&self) -> BackendResult<Vec<CredentialKeyRecord>> {
        self.credential_keys_impl().await
    }

    async fn set_credential(&self, p: &Principal, key: &str, value: &str) -> BackendResult<CredentialKeyRecord> {
        self.set_credential_impl(p, key, value).await
    }

    async fn delete_credential(&self, p: &Principal, key: &str) -> BackendResult<bool> {
        self.delete_credential_impl(p, key).await
    }

    async fn alert_deliveries(
        &self,
        p: &Principal,
        integration: Option<&str>,
        limit: i64,
    ) -> BackendResult<Vec<AlertDeliveryRecord>> {
        self.alert_deliveries_impl(p, integration, limit).await
    }

    async fn send_test_alert(&self, p: &Principal, integration: &str) -> BackendResult<AlertDeliveryRecord> {
        self.send_test_alert_impl(p, integration).await
    }
}
