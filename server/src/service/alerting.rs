//! Integrations, the credential store and the delivery log, as the API sees them: admins define
//! channels and set secrets (sealed at once, never returned, audited without their value), each
//! belonging to one instance (its admins' to manage, its definitions' to name) or global (a
//! superadmin's, everyone's to name), and definitions may only name integrations and credentials
//! that exist where they may use them.

use super::{audit_in, instance_for, require, Services, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::alert::{Integration, IntegrationDraft};
use baton_schema::definition::AlertRule;
use baton_schema::ids::{AlertDeliveryId, InstanceId};
use baton_schema::names::CredentialKey;
use baton_schema::{FieldError, FieldErrors};
use std::collections::{BTreeMap, HashMap};

/// Whether something of `owner` (none: global) may be used by what is in `user` (none: global):
/// global things by everything, an instance's by that instance's only.
fn usable(owner: Option<InstanceId>, user: Option<InstanceId>) -> bool {
    owner.is_none() || owner == user
}

/// The instances by id, to say whose an integration or a credential is.
struct Owners(Vec<db::instances::InstanceRow>);

impl Owners {
    fn load(c: &mut DbConn) -> SvcResult<Self> {
        Ok(Self(db::instances::list(c)?))
    }

    fn name(&self, id: Option<InstanceId>) -> Option<String> {
        let id = id?;
        self.0.iter().find(|i| i.id == id).map(|i| i.name.clone())
    }

    /// Whether `p` sees something of `owner`: global things are everyone's to see.
    fn sees(&self, p: &Principal, owner: Option<InstanceId>) -> bool {
        owner.is_none() || self.name(owner).is_some_and(|n| p.instances.allows(&n))
    }

    /// Checks that `p` may manage `what`, of `owner`: an instance's, an admin who has it; a
    /// global one, a superadmin. What `p` may not see is not found.
    fn check_manages(&self, p: &Principal, owner: Option<InstanceId>, what: &str) -> SvcResult<()> {
        require(p, Role::Admin)?;
        if !self.sees(p, owner) {
            return Err(ApiError::NotFound(what.to_string()).into());
        }
        if owner.is_none() && p.role < Role::Superadmin {
            return Err(ApiError::Forbidden(format!("{what} is global: only a superadmin manages it")).into());
        }
        Ok(())
    }
}

/// The instance a new integration or credential goes in (None: global), checked for `p`.
fn owner_for(c: &mut DbConn, p: &Principal, instance: Option<&str>) -> SvcResult<Option<InstanceId>> {
    match instance.filter(|i| !i.is_empty()) {
        Some(name) => Ok(Some(instance_for(c, p, name)?.id)),
        None if p.role >= Role::Superadmin => Ok(None),
        None => Err(ApiError::Forbidden(
            "only a superadmin makes global integrations and credentials; name one of your instances".into(),
        )
        .into()),
    }
}

/// The integrations and credential keys that exist, with their instances, to check definitions
/// against.
pub(crate) struct References {
    integrations: HashMap<String, Option<InstanceId>>,
    credentials: HashMap<String, Option<InstanceId>>,
    /// Whether the writer may name global credentials (see [`may_name_global_credentials`]).
    names_globals: bool,
}

/// Whether `p` may write a definition that names a global credential: only a superadmin, as
/// only a superadmin manages them (an instance's admin would otherwise read one through a job
/// or a webhook of theirs).
pub(crate) fn may_name_global_credentials(p: &Principal) -> bool {
    p.role >= Role::Superadmin
}

/// The error for a definition written by `p` that names global credential `key`.
fn global_credential(field: String, key: &str) -> FieldError {
    FieldError::new(
        field,
        "global_credential",
        format!("credential {key} is global: only a superadmin may name it; set one in this instance instead"),
    )
}

impl References {
    pub(crate) fn load(c: &mut DbConn, writer: &Principal) -> SvcResult<Self> {
        Ok(Self {
            integrations: db::integrations::list(c)?.into_iter().map(|i| (i.name, i.instance_id)).collect(),
            credentials: db::credentials::keys(c)?.into_iter().map(|k| (k.key, k.instance_id)).collect(),
            names_globals: may_name_global_credentials(writer),
        })
    }

    /// Checks that alert rules name integrations and a profile credentials that exist globally or
    /// in `instance` (those of other instances are as unknown); errors are under `prefix` (empty
    /// for a form, `$.instances[0].tasks[3].` in an import).
    pub(crate) fn check(
        &self,
        alerts: &[AlertRule],
        profile: Option<&BTreeMap<String, String>>,
        instance: InstanceId,
        prefix: &str,
        errors: &mut FieldErrors,
    ) {
        let here = Some(instance);
        for (i, rule) in alerts.iter().enumerate() {
            if !self.integrations.get(&rule.integration).is_some_and(|owner| usable(*owner, here)) {
                errors.push(FieldError::new(
                    format!("{prefix}alerts[{i}].integration"),
                    "unknown_integration",
                    format!(
                        "no integration {} global or in this instance; define it on the integrations page first",
                        rule.integration
                    ),
                ));
            }
        }
        for (name, value) in profile.into_iter().flatten() {
            for key in baton_schema::placeholder::credential_refs(name, value).unwrap_or_default() {
                match self.credentials.get(key.as_str()) {
                    Some(owner) if usable(*owner, here) => {
                        if owner.is_none() && !self.names_globals {
                            errors.push(global_credential(format!("{prefix}profile.{name}"), key.as_str()));
                        }
                    }
                    _ => errors.push(FieldError::new(
                        format!("{prefix}profile.{name}"),
                        "unknown_credential",
                        format!("no credential {key} global or in this instance; set it first"),
                    )),
                }
            }
        }
    }
}

/// [`References::check`] for one definition of `instance` typed in a form.
pub(crate) fn check_references(
    c: &mut DbConn,
    alerts: &[AlertRule],
    profile: Option<&BTreeMap<String, String>>,
    instance: InstanceId,
    writer: &Principal,
    errors: &mut FieldErrors,
) -> SvcResult<()> {
    if alerts.is_empty() && profile.is_none_or(|p| !p.values().any(|v| v.contains("${C:"))) {
        return Ok(());
    }
    References::load(c, writer)?.check(alerts, profile, instance, "", errors);
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
    owners: &Owners,
    vault: &crate::vault::Vault,
) -> SvcResult<IntegrationRecord> {
    let draft: IntegrationDraft = db::from_json("integration", &row.config)?;
    let credential_set = row.credential_key.as_deref().is_some_and(|k| vault.lookup_for(k, row.instance_id).is_some());
    let rules = db::alert_rules::count_naming(c, &row.name)?;
    Ok(IntegrationRecord {
        id: row.id,
        draft,
        instance: owners.name(row.instance_id),
        credential_set,
        rules,
        updated_at: db::utc(row.updated_at),
    })
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
    async fn integrations(&self, p: &Principal) -> BackendResult<Vec<IntegrationRecord>> {
        let (vault, p) = (self.vault.clone(), p.clone());
        self.run(move |c| {
            let owners = Owners::load(c)?;
            db::integrations::list(c)?
                .into_iter()
                .filter(|r| owners.sees(&p, r.instance_id))
                .map(|r| record(c, r, &owners, &vault))
                .collect()
        })
        .await
    }

    async fn save_integration(
        &self,
        p: &Principal,
        name: Option<&str>,
        instance: Option<&str>,
        draft: IntegrationDraft,
    ) -> BackendResult<IntegrationRecord> {
        let now = self.now();
        let vault = self.vault.clone();
        let (p, name, instance) = (p.clone(), name.map(String::from), instance.map(String::from));
        self.run(move |c| {
            require(&p, Role::Admin)?;
            let valid = Integration::parse(&draft)?;
            db::transaction(c, |c| {
                let owners = Owners::load(c)?;
                let existing = match &name {
                    Some(n) => {
                        let row = db::integrations::by_name(c, n)?
                            .ok_or_else(|| ApiError::NotFound(format!("integration {n}")))?;
                        owners.check_manages(&p, row.instance_id, &format!("integration {n}"))?;
                        Some(row)
                    }
                    None => None,
                };
                let owner = match &existing {
                    Some(old) => old.instance_id,
                    None => owner_for(c, &p, instance.as_deref())?,
                };
                let mut errors = FieldErrors::new();
                for key in valid.credential_keys() {
                    let found = db::credentials::get(c, key.as_str())?;
                    let own = valid.credential_key.as_ref() == Some(&key);
                    if owner.is_some()
                        && !may_name_global_credentials(&p)
                        && found.as_ref().is_some_and(|k| k.instance_id.is_none())
                    {
                        let field = if own { "credential_key" } else { "headers" };
                        errors.push(global_credential(field.into(), key.as_str()));
                        continue;
                    }
                    if !found.is_some_and(|k| usable(k.instance_id, owner)) {
                        let whose = if owner.is_some() { "global or in this instance" } else { "global" };
                        errors.push(FieldError::new(
                            if own { "credential_key" } else { "headers" },
                            "unknown_credential",
                            if own {
                                format!(
                                    "no credential {key} {whose}; set it first (it holds {})",
                                    valid.kind.secret_is()
                                )
                            } else {
                                format!("no credential {key} {whose}; set it first")
                            },
                        ));
                    }
                }
                if let Some(old) = &existing {
                    if old.name != valid.name.as_str() {
                        errors.push(FieldError::new(
                            "name",
                            "immutable",
                            "an integration keeps its name (rules name it)",
                        ));
                    }
                } else if db::integrations::by_name(c, valid.name.as_str())?.is_some() {
                    // Names are unique across instances; which instance has it is not said.
                    errors.push(FieldError::new("name", "unique", format!("integration {} exists", valid.name)));
                }
                if !errors.is_empty() {
                    return Err(errors.into());
                }
                let config = db::to_json(&valid.draft);
                let stored = db::integrations::Stored {
                    kind: valid.kind.as_str(),
                    config: &config,
                    credential_key: valid.credential_key.as_ref().map(|k| k.as_str()),
                };
                match &existing {
                    Some(old) => db::integrations::update(c, old.id, &stored, now)?,
                    None => {
                        db::integrations::insert(c, valid.name.as_str(), &stored, owner, now)?;
                    }
                }
                let before = existing.map(|o| o.config);
                let action = if before.is_some() { "updateIntegration" } else { "createIntegration" };
                let target = format!("integration {}", valid.name);
                audit_in(c, now, owner, &p.username, action, &target, before, Some(config))?;
                let row = db::integrations::by_name(c, valid.name.as_str())?.ok_or(db::DbError::NotFound)?;
                record(c, row, &owners, &vault)
            })
        })
        .await
    }

    async fn delete_integration(&self, p: &Principal, name: &str) -> BackendResult<bool> {
        let now = self.now();
        let (p, name) = (p.clone(), name.to_string());
        self.run(move |c| {
            require(&p, Role::Admin)?;
            db::transaction(c, |c| {
                let row = db::integrations::by_name(c, &name)?
                    .ok_or_else(|| ApiError::NotFound(format!("integration {name}")))?;
                Owners::load(c)?.check_manages(&p, row.instance_id, &format!("integration {name}"))?;
                let rules = db::alert_rules::count_naming(c, &name)?;
                if rules > 0 {
                    return Err(ApiError::Conflict(format!(
                        "integration {name} is named by {rules} alert rule(s); change them first"
                    ))
                    .into());
                }
                db::integrations::delete(c, row.id)?;
                let target = format!("integration {name}");
                audit_in(c, now, row.instance_id, &p.username, "deleteIntegration", &target, Some(row.config), None)?;
                Ok(true)
            })
        })
        .await
    }

    async fn credential_keys(&self, p: &Principal) -> BackendResult<Vec<CredentialKeyRecord>> {
        let p = p.clone();
        self.run(move |c| {
            let owners = Owners::load(c)?;
            let integrations = db::integrations::list(c)?;
            let keys = db::credentials::keys(c)?;
            // What names a key, as far as the caller may see it.
            let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for i in integrations.iter().filter(|i| owners.sees(&p, i.instance_id)) {
                for k in keys_of(i) {
                    users.entry(k).or_default().push(format!("integration {}", i.name));
                }
            }
            for (instance, task, key) in db::tasks::naming_credentials(c)? {
                if owners.sees(&p, Some(instance)) {
                    users.entry(key).or_default().push(format!("task {task}"));
                }
            }
            Ok(keys
                .into_iter()
                .filter(|k| owners.sees(&p, k.instance_id))
                .map(|k| CredentialKeyRecord {
                    used_by: users.remove(&k.key).unwrap_or_default(),
                    instance: owners.name(k.instance_id),
                    key: k.key,
                    version: k.version,
                    updated_at: db::utc(k.updated_at),
                })
                .collect())
        })
        .await
    }

    async fn set_credential(
        &self,
        p: &Principal,
        key: &str,
        value: &str,
        instance: Option<&str>,
    ) -> BackendResult<CredentialKeyRecord> {
        let now = self.now();
        let vault = self.vault.clone();
        let (p, key, value, instance) = (p.clone(), key.to_string(), value.to_string(), instance.map(String::from));
        self.run(move |c| {
            require(&p, Role::Admin)?;
            let key = CredentialKey::parse(&key)?;
            if value.is_empty() {
                return Err(FieldError::new("value", "required", "must not be empty").into());
            }
            if value.len() > 65_536 {
                return Err(FieldError::new("value", "max_length", "must be at most 65536 bytes").into());
            }
            let owners = Owners::load(c)?;
            let owner = match db::credentials::get(c, key.as_str())? {
                // A rotation: the key keeps its instance.
                Some(old) => {
                    if !owners.sees(&p, old.instance_id) {
                        // Keys are unique across instances; which instance has it is not said.
                        return Err(FieldError::new("key", "unique", format!("credential {key} exists")).into());
                    }
                    owners.check_manages(&p, old.instance_id, &format!("credential {key}"))?;
                    if let Some(asked) = instance.as_deref().filter(|i| !i.is_empty()) {
                        if owners.name(old.instance_id).as_deref() != Some(asked) {
                            return Err(FieldError::new(
                                "instance",
                                "immutable",
                                format!("credential {key} keeps the instance it was set in"),
                            )
                            .into());
                        }
                    }
                    old.instance_id
                }
                None => owner_for(c, &p, instance.as_deref())?,
            };
            let version = vault.set(c, key.as_str(), &value, owner, now).map_err(|e| -> super::SvcError {
                // Set in another instance between the read above and this write.
                if let Some(db::DbError::Conflict(_)) = e.downcast_ref::<db::DbError>() {
                    return FieldError::new("key", "unique", format!("credential {key} exists")).into();
                }
                tracing::error!(key = %key, error = %e, "sealing a credential");
                ApiError::Internal.into()
            })?;
            // The audit log says who set which key and its version; never the value.
            let target = format!("credential {key}");
            let after = Some(format!("{{\"version\":{version}}}"));
            audit_in(c, now, owner, &p.username, "setCredential", &target, None, after)?;
            let updated_at = now;
            Ok(CredentialKeyRecord {
                key: key.to_string(),
                instance: owners.name(owner),
                version,
                updated_at,
                used_by: Vec::new(),
            })
        })
        .await
    }

    async fn delete_credential(&self, p: &Principal, key: &str) -> BackendResult<bool> {
        let now = self.now();
        let vault = self.vault.clone();
        let (p, key) = (p.clone(), key.to_string());
        self.run(move |c| {
            require(&p, Role::Admin)?;
            db::transaction(c, |c| {
                let row =
                    db::credentials::get(c, &key)?.ok_or_else(|| ApiError::NotFound(format!("credential {key}")))?;
                Owners::load(c)?.check_manages(&p, row.instance_id, &format!("credential {key}"))?;
                let users: Vec<String> = db::integrations::list(c)?
                    .into_iter()
                    .filter(|i| keys_of(i).contains(&key))
                    .map(|i| format!("integration {}", i.name))
                    .chain(
                        db::tasks::naming_credentials(c)?
                            .into_iter()
                            .filter(|(_, _, k)| *k == key)
                            .map(|(_, t, _)| format!("task {t}")),
                    )
                    .collect();
                if !users.is_empty() {
                    return Err(ApiError::Conflict(format!("credential {key} is used by {}", users.join(", "))).into());
                }
                db::credentials::delete(c, &key)?;
                let target = format!("credential {key}");
                audit_in(c, now, row.instance_id, &p.username, "deleteCredential", &target, None, None)?;
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
        let now = self.now();
        let alerts = self.alerts.clone();
        let name = integration.to_string();
        let (p2, n2) = (p.clone(), name.clone());
        self.run(move |c| {
            require(&p2, Role::Admin)?;
            let row = db::integrations::by_name(c, &n2)?;
            let owners = Owners::load(c)?;
            let Some(row) = row.filter(|r| owners.sees(&p2, r.instance_id)) else {
                return Err(
                    ApiError::invalid("integration", "unknown_integration", format!("no integration {n2}")).into()
                );
            };
            audit_in(c, now, row.instance_id, &p2.username, "sendTestAlert", &format!("integration {n2}"), None, None)?;
            Ok(())
        })
        .await?;
        let row = alerts.send_test(&name, &p.username).await.map_err(|e| ApiError::from(super::SvcError::Db(e)))?;
        let mut recs = self.run(move |c| delivery_records(c, vec![row])).await?;
        recs.pop().ok_or(ApiError::Internal)
    }
}
