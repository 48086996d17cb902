//! What an attempt needs on an agent (`JobSpec`), how it is stored with its run (`StoredJob`, so
//! any server can carry the run on), and a run's place in a group run.

use crate::db;
use baton_schema::ids::{GroupId, GroupRunId, InstanceId};
use baton_schema::run::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an attempt needs on the agent.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub task: String,
    pub command: String,
    pub run_as_user: String,
    pub env: BTreeMap<String, String>,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub max_run_time_seconds: u32,
    pub accept_expiry_seconds: u32,
    pub retry: RetryPolicy,
    /// An agent name, a hostname or a queue; for adhoc runs, the agent's name.
    pub target: String,
    pub run_date: chrono::NaiveDate,
    /// The group run it belongs to, whose flow follows its transitions.
    pub group_run: Option<GroupRunRef>,
    /// Its instance (none for adhoc runs): its lease holder decides its retries and deadlines.
    pub instance_id: Option<InstanceId>,
}

/// What a run needs to be carried out again, stored with it when it is made (`runs.job`): the
/// task, command, target, run-as user and run date are columns of their own. The profile keeps its
/// `${C:key}` references: credentials are resolved again at each dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJob {
    pub env: BTreeMap<String, String>,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub max_run_time_seconds: u32,
    pub accept_expiry_seconds: u32,
    pub retry_attempts: u32,
    pub retry_delay_seconds: u32,
}

impl JobSpec {
    /// The credential keys its profile names (`${C:key}`), sorted, each once.
    pub fn credential_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .env
            .iter()
            .filter(|(_, v)| v.contains("${C:"))
            .flat_map(|(n, v)| baton_schema::placeholder::credential_refs(n, v).unwrap_or_default())
            .map(|k| k.to_string())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The part of the job that has no column of its own, as stored in `runs.job`.
    pub fn stored(&self) -> String {
        db::to_json(&StoredJob {
            env: self.env.clone(),
            stdout_path: self.stdout_path.clone(),
            stderr_path: self.stderr_path.clone(),
            max_run_time_seconds: self.max_run_time_seconds,
            accept_expiry_seconds: self.accept_expiry_seconds,
            retry_attempts: self.retry.retry_attempts,
            retry_delay_seconds: self.retry.retry_delay_seconds,
        })
    }

    /// The job of a stored run; None for a run stored before jobs were (it cannot be carried
    /// out again as it was asked for).
    pub fn of_row(row: &db::runs::RunRow) -> Option<JobSpec> {
        let job: StoredJob = serde_json::from_str(row.job.as_deref()?).ok()?;
        Some(JobSpec {
            task: row.task_name.clone(),
            command: row.command.clone(),
            run_as_user: row.run_as_user.clone(),
            env: job.env,
            stdout_path: job.stdout_path,
            stderr_path: job.stderr_path,
            max_run_time_seconds: job.max_run_time_seconds,
            accept_expiry_seconds: job.accept_expiry_seconds,
            retry: RetryPolicy { retry_attempts: job.retry_attempts, retry_delay_seconds: job.retry_delay_seconds },
            target: row.target.clone(),
            run_date: row.run_date,
            group_run: GroupRunRef::of(row.group_id, row.group_run_id),
            instance_id: row.instance_id,
        })
    }
}

/// A run's place in a group run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRunRef {
    pub group_id: GroupId,
    pub group_run_id: GroupRunId,
}

impl GroupRunRef {
    /// From a stored run's columns: a run belongs to a group run when it has both.
    pub fn of(group_id: Option<GroupId>, group_run_id: Option<GroupRunId>) -> Option<Self> {
        group_id.zip(group_run_id).map(|(group_id, group_run_id)| Self { group_id, group_run_id })
    }
}

/// The job of a run stored before jobs were: what its columns say, with the old defaults.
pub(super) fn legacy_job(r: &db::runs::RunRow) -> JobSpec {
    JobSpec {
        task: r.task_name.clone(),
        command: r.command.clone(),
        run_as_user: r.run_as_user.clone(),
        env: BTreeMap::new(),
        stdout_path: None,
        stderr_path: None,
        max_run_time_seconds: 0,
        accept_expiry_seconds: 300,
        retry: RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 },
        target: r.target.clone(),
        run_date: r.run_date,
        group_run: GroupRunRef::of(r.group_id, r.group_run_id),
        instance_id: r.instance_id,
    }
}
