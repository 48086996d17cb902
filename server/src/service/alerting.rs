//! Integrations, the credential store and the delivery log, as the API sees them: admins define
//! channels and set secrets (sealed at once, never returned, audited without their value), and
//! definitions may only name integrations and credentials that exist.

use super::{audit, require, Services, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::alert::{Integration, IntegrationDraft};
use baton_schema::definition::AlertRule;
use baton_schema::ids::AlertDeliveryId;
use baton_schema::names::CredentialKey;
use baton_schema::{FieldError, FieldErrors};
use chrono::Utc;
use std::collections::BTreeMap;

/// The integrations and credential keys that exist, to check definitions against.
pub(crate) struct References {
    integrations: std::collections::HashSet<String>,
    credentials: std::collections::HashSet<String>,
}

impl References {
    pub(crate) fn load(c: &mut DbConn) -> SvcResult<Self> {
        Ok(Self {
            integrations: db::integrations::list(c)?.into_iter().map(|i| i.name).collect(),
            credentials: db::credentials::keys(c)?.into_iter().map(|(k, _, _)| k).collect(),
        })
    }

    /// Checks that alert rules name existing integrations and a profile existing credentials;
    /// errors are under `prefix` (empty for a form, `$.instances[0].tasks[3].` in an import).
    pub(crate) fn check(
        &self,
        alerts: &[AlertRule],
        profile: Option<&BTreeMap<String, String>>,
        prefix: &str,
        errors: &mut FieldErrors,
    ) {
        for (i, rule) in alerts.iter().enumerate() {
            if !self.integrations.contains(&rule.integration) {
                errors.push(FieldError::new(
                    format!("{prefix}alerts[{i}].integration"),
                    "unknown_integration",
                    format!("no integration {}; define it on the integrations page first", rule.integration),
                ));
            }
        }
        for (name, value) in profile.into_iter().flatten() {
            for key in baton_schema::placeholder::credential_refs(name, value).unwrap_or_default() {
                if !self.credentials.contains(key.as_str()) {
                    errors.push(FieldError::new(
                        format!("{prefix}profile.{name}"),
                        "unknown_credential",
                        format!("no credential {key}; set it first"),
                    ));
                }
            }
        }
    }
}

/// [`References::check`] for one definition typed in a form.
pub(crate) fn check_references(
    c: &mut DbConn,
    alerts: &[AlertRule],
    profile: Option<&BTreeMap<String, String>>,
    errors: &mut FieldErrors,
) -> SvcResult<()> {
    if alerts.is_empty() && profile.is_none_or(|p| !p.values().any(|v| v.contains("${C:"))) {
        return Ok(());
    }
    References::load(c)?.check(alerts, profile, "", errors);
    Ok(())
}

/// Every credential key an integration needs (its own, and those its headers name).
fn keys_of(row: &db::integrations::IntegrationRow) -> Vec<String> {
    let parsed = serde_json::from_str::<IntegrationDraft>(&row.config).ok().and_then(|d| Integration::parse(&d).ok());
    match parsed {
        Some(i) => i.credential_keys().into_iter().map(|k| k.to_string()).collect(),
        None => row.credential_key.iter().cloned().collect(),
    }
}

fn record(
    c: &mut DbConn,
    row: db::integrations::IntegrationRow,
    vault: &crate::vault::Vault,
) -> SvcResult<IntegrationRecord> {
    let draft: IntegrationDraft = db::from_json("integration", &row.config)?;
    let credential_set = row.credential_key.as_deref().is_some_and(|k| vault.lookup(k).is_some());
    let rules = db::alert_rules::count_naming(c, &row.name)?;
    Ok(IntegrationRecord { id: row.id, draft, credential_set, rules, updated_at: db::utc(row.updated_at) })
}

fn delivery_records(
    c: &mut DbConn,
    rows: Vec<db::alert_deliveries::DeliveryRow>,
) -> SvcResult<Vec<AlertDeliveryRecord>> {
    let ids: Vec<AlertDeliveryId> = rows.iter().map(|r| r.id).collect();
    let mut log: BTreeMap<AlertDeliveryId, Vec<AlertAttemptRecord>> = BTreeMap::new();
    for a in db::alert_deliveries::attempts_of(c, &ids)? {
        log.entry(a.delivery_id).or_default().push(AlertAttemptRecord {
            attempt: a.attempt,
            at: db::utc(a.at),
            ok: a.ok,
            detail: a.detail,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| AlertDeliveryRecord {
            id: r.id,
            log: log.remove(&r.id).unwrap_or_default(),
            integration: r.integration,
            source: r.source,
            run_id: r.run_id,
            trigger: r.trigger_on,
            subject: r.subject,
            message: r.message,
            status: r.status.to_ascii_uppercase(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.map(db::utc),
            last_error: r.last_error,
            created_at: db::utc(r.created_at),
        })
        .collect())
}

impl Services {}

#[async_trait]
impl baton_graphql::Alerting for Services {
    async fn integrations(&self) -> BackendResult<Vec<IntegrationRecord>> {
        let vault = self.vault.clone();
        self.run(move |c| db::integrations::list(c)?.into_iter().map(|r| record(c, r, &vault)).collect()).await
    }

    async fn save_integration(
        &self,
        p: &Principal,
        name: Option<&str>,
        draft: IntegrationDraft,
    ) -> BackendResult<IntegrationRecord> {
        let vault = self.vault.clone();
        let (p, name) = (p.clone(), name.map(String::from));
        self.run(move |c| {
            require(&p, Role::Admin)?;
            let valid = Integration::parse(&draft)?;
            db::transaction(c, |c| {
                let now = Utc::now();
                let mut errors = FieldErrors::new();
                for key in valid.credential_keys() {
                    if db::credentials::get(c, key.as_str())?.is_none() {
                        let own = valid.credential_key.as_ref() == Some(&key);
                        errors.push(FieldError::new(
                            if own { "credential_key" } else { "headers" },
                            "unknown_credential",
                            if own {
                                format!("no credential {key}; set it first (it holds {})", valid.kind.secret_is())
                            } else {
                                format!("no credential {key}; set it first")
                            },
                        ));
                    }
                }
                let existing = match &name {
                    Some(n) => Some(
                        db::integrations::by_name(c, n)?
                            .ok_or_else(|| ApiError::NotFound(format!("integration {n}")))?,
                    ),
                    None => None,
                };
                if let Some(old) = &existing {
                    if old.name != valid.name.as_str() {
                        errors.push(FieldError::new(
                            "name",
                            "immutable",
                            "an integration keeps its name (rules name it)",
                        ));
                    }
                } else if db::integrations::by_name(c, valid.name.as_str())?.is_some() {
                    errors.push(FieldError::new("name", "unique", format!("integration {} exists", valid.name)));
                }
                if !errors.is_empty() {
                    return Err(errors.into());
                }
                let config = db::to_json(&valid.draft);
                let key = valid.credential_key.as_ref().map(|k| k.as_str());
                match &existing {
                    Some(old) => db::integrations::update(c, old.id, valid.kind.as_str(), &config, key, now)?,
                    None => {
                        db::integrations::insert(c, valid.name.as_str(), valid.kind.as_str(), &config, key, now)?;
                    }
                }
                let before = existing.map(|o| o.config);
                let action = if before.is_some() { "updateIntegration" } else { "createIntegration" };
                audit(c, &p.username, action, &format!("integration {}", valid.name), before, Some(config))?;
                let row = db::integrations::by_name(c, valid.name.as_str())?.ok_or(db::DbError::NotFound)?;
                record(c, row, &vault)
            })
        })
        .await
    }

    async fn delete_integration(&self, p: &Principal, name: &str) -> BackendResult<bool> {
        let (p, name) = (p.clone(), name.to_string());
        self.run(move |c| {
            require(&p, Role::Admin)?;
            db::transaction(c, |c| {
                let row = db::integrations::by_name(c, &name)?
                    .ok_or_else(|| ApiError::NotFound(format!("integration {name}")))?;
                let rules = db::alert_rules::count_naming(c, &name)?;
                if rules > 0 {
                    return Err(ApiError::Conflict(format!(
                        "integration {name} is named by {rules} alert rule(s); change them first"
                    ))
                    .into());
                }
                db::integrations::delete(c, row.id)?;
                audit(c, &p.username, "deleteIntegration", &format!("integration {name}"), Some(row.config), None)?;
                Ok(true)
            })
        })
        .await
    }

    async fn credential_keys(&self) -> BackendResult<Vec<CredentialKeyRecord>> {
        self.run(|c| {
            let integrations = db::integrations::list(c)?;
            let keys = db::credentials::keys(c)?;
            let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for i in &integrations {
                for k in keys_of(i) {
                    users.entry(k).or_default().push(format!("integration {}", i.name));
                }
            }
            for (task, key) in db::tasks::naming_credentials(c)? {
                users.entry(key).or_default().push(format!("task {task}"));
            }
            Ok(keys
                .into_iter()
                .map(|(key, version, updated_at)| CredentialKeyRecord {
                    used_by: users.remove(&key).unwrap_or_default(),
                    key,
                    version,
                    updated_at: db::utc(updated_at),
                })
                .collect())
        })
        .await
    }

    async fn set_credential(&self, p: &Principal, key: &str, value: &str) -> BackendResult<CredentialKeyRecord> {
        let vault = self.vault.clone();
        let (p, key, value) = (p.clone(), key.to_string(), value.to_string());
        self.run(move |c| {
            require(&p, Role::Admin)?;
            let key = CredentialKey::parse(&key)?;
            if value.is_empty() {
                return Err(FieldError::new("value", "required", "must not be empty").into());
            }
            if value.len() > 65_536 {
                return Err(FieldError::new("value", "max_length", "must be at most 65536 bytes").into());
            }
            let version = vault.set(c, key.as_str(), &value).map_err(|e| {
                tracing::error!(key = %key, error = %e, "sealing a credential");
                ApiError::Internal
            })?;
            // The audit log says who set which key and its version; never the value.
            audit(
                c,
                &p.username,
                "setCredential",
                &format!("credential {key}"),
                None,
                Some(format!("{{\"version\":{version}}}")),
            )?;
            let updated_at = Utc::now();
            Ok(CredentialKeyRecord { key: key.to_string(), version, updated_at, used_by: Vec::new() })
        })
        .await
    }

    async fn delete_credential(&self, p: &Principal, key: &str) -> BackendResult<bool> {
        let vault = self.vault.clone();
        let (p, key) = (p.clone(), key.to_string());
        self.run(move |c| {
            require(&p, Role::Admin)?;
            db::transaction(c, |c| {
                let users: Vec<String> = db::integrations::list(c)?
                    .into_iter()
                    .filter(|i| keys_of(i).contains(&key))
                    .map(|i| format!("integration {}", i.name))
                    .chain(
                        db::tasks::naming_credentials(c)?
                            .into_iter()
                            .filter(|(_, k)| *k == key)
                            .map(|(t, _)| format!("task {t}")),
                    )
                    .collect();
                if !users.is_empty() {
                    return Err(ApiError::Conflict(format!("credential {key} is used by {}", users.join(", "))).into());
                }
                db::credentials::delete(c, &key).map_err(|e| match e {
                    db::DbError::NotFound => ApiError::NotFound(format!("credential {key}")).into(),
                    other => super::SvcError::from(other),
                })?;
                audit(c, &p.username, "deleteCredential", &format!("credential {key}"), None, None)?;
                vault.forget(&key);
                Ok(true)
            })
        })
        .await
    }

    async fn alert_deliveries(
        &self,
        p: &Principal,
        integration: Option<&str>,
        limit: i64,
    ) -> BackendResult<Vec<AlertDeliveryRecord>> {
        let (integration, p) = (integration.map(String::from), p.clone());
        let list = self
            .run(move |c| {
                let rows = db::alert_deliveries::list(c, integration.as_deref(), limit.clamp(1, 1000))?;
                delivery_records(c, rows)
            })
            .await?;
        if matches!(p.instances, InstanceAccess::All) {
            return Ok(list);
        }
        // Deliveries about a run are shown to those who may see the run; the rest (tests,
        // group deadlines) name no run and stay with callers who see every instance.
        let mut out = Vec::new();
        for d in list {
            if let Some(run) = d.run_id {
                if self.run_scopes.visible(&self.db, &p, run).await {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    async fn send_test_alert(&self, p: &Principal, integration: &str) -> BackendResult<AlertDeliveryRecord> {
        let alerts = self.alerts.clone();
        let name = integration.to_string();
        let (p2, n2) = (p.clone(), name.clone());
        self.run(move |c| {
            require(&p2, Role::Admin)?;
            if db::integrations::by_name(c, &n2)?.is_none() {
                return Err(
                    ApiError::invalid("integration", "unknown_integration", format!("no integration {n2}")).into()
                );
            }
            audit(c, &p2.username, "sendTestAlert", &format!("integration {n2}"), None, None)?;
            Ok(())
        })
        .await?;
        let row = alerts.send_test(&name, &p.username).await.map_err(|e| ApiError::from(super::SvcError::Db(e)))?;
        let mut recs = self.run(move |c| delivery_records(c, vec![row])).await?;
        recs.pop().ok_or(ApiError::Internal)
    }
}
