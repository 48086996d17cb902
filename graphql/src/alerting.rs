//! Integrations, credential keys and the alert delivery log. Credential values go in through
//! `setCredential` and never come out: no type here has a field that could hold one.

use crate::backend::*;
use crate::backend::{AlertDeliveryRecord, CredentialKeyRecord, IntegrationRecord};
use crate::definitions::domain;
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, InputObject, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::alert::{Header, IntegrationDraft, IntegrationKind};
use baton_schema::ids::IntegrationId;
use chrono::{DateTime, Utc};

/// Integrations, credentials and alert deliveries.
#[async_trait::async_trait]
pub trait Alerting: Send + Sync {
    /// The global integrations and those of the caller's instances.
    async fn integrations(&self, p: &Principal) -> BackendResult<Vec<IntegrationRecord>>;
    /// Creates (`name` None) in `instance` (None: global) or updates the integration called
    /// `name` (which keeps its instance).
    async fn save_integration(
        &self,
        p: &Principal,
        name: Option<&str>,
        instance: Option<&str>,
        draft: baton_schema::alert::IntegrationDraft,
    ) -> BackendResult<IntegrationRecord>;
    async fn delete_integration(&self, p: &Principal, name: &str) -> BackendResult<bool>;
    /// The global keys and those of the caller's instances.
    async fn credential_keys(&self, p: &Principal) -> BackendResult<Vec<CredentialKeyRecord>>;
    /// Sets a new key in `instance` (None: global), or rotates an existing one in the instance it
    /// belongs to.
    async fn set_credential(
        &self,
        p: &Principal,
        key: &str,
        value: &str,
        instance: Option<&str>,
    ) -> BackendResult<CredentialKeyRecord>;
    async fn delete_credential(&self, p: &Principal, key: &str) -> BackendResult<bool>;
    /// Newest first; a caller limited to some instances sees only deliveries about runs they may see.
    async fn alert_deliveries(
        &self,
        p: &Principal,
        integration: Option<&str>,
        limit: i64,
    ) -> BackendResult<Vec<AlertDeliveryRecord>>;
    async fn send_test_alert(&self, p: &Principal, integration: &str) -> BackendResult<AlertDeliveryRecord>;
}

/// An HTTP header of a generic webhook.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "HeaderInput")]
pub struct HeaderPair {
    pub name: String,
    pub value: String,
}

/// An alert channel. Its secret (a webhook URL, an SMTP password, a routing key) lives in the
/// credential store under `credentialKey`.
#[derive(SimpleObject)]
pub struct Integration {
    pub id: IntegrationId,
    pub name: String,
    /// The instance it belongs to (only its alert rules may name it); none for a global one.
    pub instance: Option<String>,
    /// webhook, slack, teams, discord, email or pagerduty
    pub kind: String,
    pub credential_key: Option<String>,
    /// Whether the credential it names is set.
    pub credential_set: bool,
    /// What its credential holds.
    pub secret_is: String,
    pub method: Option<String>,
    pub headers: Vec<HeaderPair>,
    pub body: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub security: Option<String>,
    pub username: Option<String>,
    /// The sender's address.
    #[graphql(name = "from")]
    pub sender: Option<String>,
    pub to: Vec<String>,
    pub ca_file: Option<String>,
    pub events_url: Option<String>,
    pub severity: Option<String>,
    /// How many alert rules name it.
    pub rules: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<IntegrationRecord> for Integration {
    fn from(r: IntegrationRecord) -> Self {
        let d = r.draft;
        let secret_is = IntegrationKind::parse(&d.kind).map(|k| k.secret_is().to_string()).unwrap_or_default();
        Integration {
            id: r.id,
            name: d.name,
            instance: r.instance,
            kind: d.kind,
            credential_key: d.credential_key,
            credential_set: r.credential_set,
            secret_is,
            method: d.method,
            headers: d.headers.into_iter().map(|h| HeaderPair { name: h.name, value: h.value }).collect(),
            body: d.body,
            smtp_host: d.smtp_host,
            smtp_port: d.smtp_port,
            security: d.security,
            username: d.username,
            sender: d.from,
            to: d.to,
            ca_file: d.ca_file,
            events_url: d.events_url,
            severity: d.severity,
            rules: r.rules,
            updated_at: r.updated_at,
        }
    }
}

/// An integration as typed; fields that do not apply to its kind stay empty.
#[derive(InputObject)]
pub struct IntegrationInput {
    pub name: String,
    pub kind: String,
    pub credential_key: Option<String>,
    pub method: Option<String>,
    #[graphql(default)]
    pub headers: Vec<HeaderPair>,
    pub body: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub from: Option<String>,
    #[graphql(default)]
    pub to: Vec<String>,
    pub ca_file: Option<String>,
    pub events_url: Option<String>,
    pub severity: Option<String>,
}

fn blank_none(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl From<IntegrationInput> for IntegrationDraft {
    fn from(i: IntegrationInput) -> Self {
        IntegrationDraft {
            name: i.name,
            kind: i.kind,
            credential_key: blank_none(i.credential_key),
            method: blank_none(i.method),
            headers: i.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
            body: blank_none(i.body),
            smtp_host: blank_none(i.smtp_host),
            smtp_port: i.smtp_port,
            security: blank_none(i.security),
            username: blank_none(i.username),
            from: blank_none(i.from),
            to: i.to.into_iter().filter(|t| !t.trim().is_empty()).collect(),
            ca_file: blank_none(i.ca_file),
            events_url: blank_none(i.events_url),
            severity: blank_none(i.severity),
        }
    }
}

#[derive(Default)]
pub struct AlertQuery;

#[Object]
impl AlertQuery {
    /// The global integrations and those of the caller's instances (names are offered to alert
    /// rules in the forms).
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn integrations(&self, ctx: &Context<'_>) -> ApiResult<Vec<Integration>> {
        let list = domain::<dyn Alerting>(ctx).integrations(principal(ctx)?).await?;
        Ok(list.into_iter().map(Integration::from).collect())
    }

    /// The credential store's keys, global and of the caller's instances; values are never
    /// returned.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn credential_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<CredentialKeyRecord>> {
        Ok(domain::<dyn Alerting>(ctx).credential_keys(principal(ctx)?).await?)
    }

    /// The delivery log, newest first.
    #[graphql(guard = "RoleGuard(Role::Operator)", complexity = "(limit.clamp(1, 1000) as usize) * child_complexity")]
    async fn alert_deliveries(
        &self,
        ctx: &Context<'_>,
        integration: Option<String>,
        #[graphql(default = 100)] limit: i32,
    ) -> ApiResult<Vec<AlertDeliveryRecord>> {
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit", "range", "must be between 1 and 1000").into());
        }
        let list = domain::<dyn Alerting>(ctx)
            .alert_deliveries(principal(ctx)?, integration.as_deref(), i64::from(limit))
            .await?;
        Ok(list)
    }
}

#[derive(Default)]
pub struct AlertMutation;

#[Object]
impl AlertMutation {
    /// Creates an integration in `instance`, managed by that instance's admins and named only by
    /// its alert rules; without an instance it is global (every instance's), and only a
    /// superadmin manages it.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_integration(
        &self,
        ctx: &Context<'_>,
        input: IntegrationInput,
        instance: Option<String>,
    ) -> ApiResult<Integration> {
        let backend = domain::<dyn Alerting>(ctx);
        Ok(backend.save_integration(principal(ctx)?, None, instance.as_deref(), input.into()).await?.into())
    }

    /// Replaces the settings of the integration called `name` (its name and instance stay).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn update_integration(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: IntegrationInput,
    ) -> ApiResult<Integration> {
        let backend = domain::<dyn Alerting>(ctx);
        Ok(backend.save_integration(principal(ctx)?, Some(&name), None, input.into()).await?.into())
    }

    /// Refused while alert rules name it.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_integration(&self, ctx: &Context<'_>, name: String) -> ApiResult<bool> {
        Ok(domain::<dyn Alerting>(ctx).delete_integration(principal(ctx)?, &name).await?)
    }

    /// Sets or rotates a secret; the answer carries its key and version, not the value. A new key
    /// belongs to `instance` (its admins manage it, and only its tasks and integrations may name
    /// it) or, without one, is global and a superadmin's; a rotation keeps the key's instance.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_credential(
        &self,
        ctx: &Context<'_>,
        key: String,
        #[graphql(secret)] value: String,
        instance: Option<String>,
    ) -> ApiResult<CredentialKeyRecord> {
        Ok(domain::<dyn Alerting>(ctx).set_credential(principal(ctx)?, &key, &value, instance.as_deref()).await?)
    }

    /// Refused while an integration or a task names it.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_credential(&self, ctx: &Context<'_>, key: String) -> ApiResult<bool> {
        Ok(domain::<dyn Alerting>(ctx).delete_credential(principal(ctx)?, &key).await?)
    }

    /// Sends a test alert through an integration and answers with its first attempt.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn send_test_alert(&self, ctx: &Context<'_>, integration: String) -> ApiResult<AlertDeliveryRecord> {
        Ok(domain::<dyn Alerting>(ctx).send_test_alert(principal(ctx)?, &integration).await?)
    }
}
