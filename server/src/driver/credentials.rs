//! The credentials of a dispatch: `${C:key}` in a run's profile resolved for its instance at each
//! dispatch (read again from storage when this server does not hold a key yet), and given again,
//! at the versions dispatched, to an agent that restarted while the attempt ran.

use super::{legacy_job, Driver, JobSpec};
use crate::db;
use baton_schema::agent::v1::CredentialVersion;
use baton_schema::ids::{AgentId, RunId};
use baton_schema::run::RunStatus;
use std::collections::BTreeMap;

/// A profile with its credentials resolved: the environment, the values to mask, and which keys
/// at which versions they were.
pub(super) struct Resolved {
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub credentials: Vec<CredentialVersion>,
}

impl Driver {
    /// Reads the credential store again when the profile names a key this server does not hold
    /// for the run's instance: it may have been set through another server a moment ago (they are
    /// read again every second anyway). Costs nothing when every key is held.
    pub(super) async fn read_missing_credentials(&self, spec: &JobSpec) {
        let keys = spec.credential_keys();
        if keys.iter().any(|k| self.vault.lookup_for(k, spec.instance_id).is_none()) {
            self.vault.reread(&self.db).await;
        }
    }

    /// The credential values an attempt was dispatched with, for its agent that restarted and
    /// asks for them again (`credentials`: the keys and versions its dispatch named). Refused
    /// when the attempt is not that agent's and still running, when the keys are not those its
    /// profile names, or when one was rotated or deleted since (the values it ran with are gone).
    pub async fn secrets_again(
        &self,
        agent: AgentId,
        run_id: RunId,
        attempt: u32,
        mut credentials: Vec<CredentialVersion>,
    ) -> Result<Vec<String>, String> {
        let row = match self.db.run(move |c| db::runs::get(c, run_id)).await {
            Ok(row) => row,
            Err(db::DbError::NotFound) => return Err(format!("no run {run_id}")),
            Err(e) => {
                tracing::error!(error = %e, run = %run_id, "reading a run for its credentials");
                return Err("the server could not read the run".into());
            }
        };
        let running = matches!(row.status, RunStatus::Started | RunStatus::Running);
        if row.agent_id != Some(agent) || row.attempt != i32::try_from(attempt).unwrap_or(-1) || !running {
            return Err(format!("run {run_id} attempt {attempt} is not running on this agent"));
        }
        let spec = JobSpec::of_row(&row).unwrap_or_else(|| legacy_job(&row));
        let named = spec.credential_keys();
        credentials.sort();
        credentials.dedup();
        if credentials.iter().map(|c| &c.key).ne(named.iter()) {
            return Err(format!("the credentials asked for are not those run {run_id} names"));
        }
        self.read_missing_credentials(&spec).await;
        let mut values = Vec::new();
        for c in &credentials {
            match self.vault.held_for(&c.key, spec.instance_id) {
                Some((value, version)) if version == c.version => values.push(value),
                _ => return Err(format!("credential {} changed since the attempt started", c.key)),
            }
        }
        Ok(values)
    }

    /// Resolves the profile's `${C:key}` for the run's instance; a key not set there is an error
    /// that names the variable.
    pub(super) fn resolve_credentials(&self, spec: &JobSpec) -> Result<Resolved, String> {
        let mut env = spec.env.clone();
        let (mut secrets, mut credentials) = (Vec::new(), Vec::new());
        for (name, value) in env.iter_mut() {
            if !value.contains("${C:") {
                continue;
            }
            let mut missing = None;
            *value = baton_schema::placeholder::expand_credentials(value, |key| {
                match self.vault.held_for(key, spec.instance_id) {
                    Some((v, version)) => {
                        if !secrets.contains(&v) {
                            secrets.push(v.clone());
                        }
                        let named = CredentialVersion { key: key.to_string(), version };
                        if !credentials.contains(&named) {
                            credentials.push(named);
                        }
                        Some(v)
                    }
                    None => {
                        missing = Some(key.to_string());
                        None
                    }
                }
            });
            if let Some(key) = missing {
                return Err(format!(
                    "profile variable {name} names credential {key}, which is not set for this task's instance"
                ));
            }
        }
        Ok(Resolved { env, secrets, credentials })
    }
}
