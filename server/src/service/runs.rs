//! Runs for the API: lists scoped to the caller's instances, a run's timeline, output by offset.

use super::{check_instance_id, instance_for, visible_instances, Services, SvcError, SvcResult};
use crate::db::{self, DbConn};
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::run::{Reason, RunStatus};
use std::collections::HashMap;
use std::sync::Mutex;

/// A stored reason (JSON), in words; text that is not a reason is shown as it is.
fn reason_text(json: &str) -> String {
    serde_json::from_str::<Reason>(json).map(|r| r.to_string()).unwrap_or_else(|_| json.to_string())
}

pub(super) fn record(c: &mut DbConn, r: db::runs::RunRow) -> SvcResult<RunRecord> {
    let instance = match r.instance_id {
        Some(id) => Some(db::instances::get(c, id)?.name),
        None => None,
    };
    let status = RunStatus::parse(&r.status)
        .ok_or_else(|| SvcError::Db(db::DbError::Corrupt(format!("status of run {}", r.id))))?;
    let reason = r.reason.as_deref().map(reason_text);
    Ok(RunRecord {
        id: r.id,
        kind: r.kind,
        task_id: r.task_id,
        task_name: r.task_name,
        instance,
        group_id: r.group_id,
        run_date: r.run_date,
        slot: r.slot,
        status,
        attempt: r.attempt,
        reason,
        command: r.command,
        target: r.target,
        run_as_user: r.run_as_user,
        agent_id: r.agent_id,
        pid: r.pid,
        exit_code: r.exit_code,
        scheduled_for: r.scheduled_for.map(db::utc),
        triggered_at: r.triggered_at.map(db::utc),
        started_at: r.started_at.map(db::utc),
        ended_at: r.ended_at.map(db::utc),
        stdout_bytes: r.stdout_bytes,
        stderr_bytes: r.stderr_bytes,
        output_truncated_bytes: r.output_truncated_bytes,
    })
}

/// Whether `p` may see a run of this instance (adhoc runs, without one, are for operators and up).
fn may_see(p: &Principal, instance: Option<&str>) -> bool {
    match instance {
        Some(name) => p.instances.allows(name),
        None => p.role >= baton_schema::access::Role::Operator,
    }
}

/// The instance of each run (a run never moves), remembered for filtering live events: each
/// run is looked up once, whoever subscribes.
#[derive(Default)]
pub struct RunScopes {
    known: Mutex<HashMap<i64, Option<String>>>,
}

/// Runs remembered before the memory starts over.
const SCOPES_KEPT: usize = 100_000;

impl RunScopes {
    /// The run's instance (None: adhoc); Err when it cannot be found.
    async fn instance_of(&self, db: &db::Db, run_id: i64) -> Result<Option<String>, String> {
        if let Some(known) = self.known.lock().map_err(|_| "poisoned")?.get(&run_id) {
            return Ok(known.clone());
        }
        let instance = db
            .run(move |c| {
                let row = db::runs::get(c, run_id)?;
                row.instance_id.map(|i| db::instances::get(c, i).map(|r| r.name)).transpose()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut known = self.known.lock().map_err(|_| "poisoned")?;
        if known.len() >= SCOPES_KEPT {
            known.clear();
        }
        known.insert(run_id, instance.clone());
        Ok(instance)
    }

    /// Whether `p` may see the run; a run that cannot be looked up is not shown.
    pub async fn visible(&self, db: &db::Db, p: &Principal, run_id: i64) -> bool {
        match self.instance_of(db, run_id).await {
            Ok(instance) => may_see(p, instance.as_deref()),
            Err(e) => {
                tracing::warn!(run = run_id, error = %e, "looking up a run's instance for a subscriber");
                false
            }
        }
    }
}

/// The run, if the caller may see it (adhoc runs without an instance are for operators and up).
fn visible_run(c: &mut DbConn, p: &Principal, id: i64) -> SvcResult<db::runs::RunRow> {
    let row = db::runs::get(c, id).map_err(|_| ApiError::NotFound("run".into()))?;
    match row.instance_id {
        Some(i) => {
            check_instance_id(c, p, i).map_err(|_| ApiError::NotFound("run".into()))?;
        }
        None => {
            super::require(p, baton_schema::access::Role::Operator).map_err(|_| ApiError::NotFound("run".into()))?
        }
    }
    Ok(row)
}

impl Services {
    pub(super) async fn runs_impl(
        &self,
        p: &Principal,
        f: &RunFilter,
        page: PageArgs,
    ) -> BackendResult<Page<RunRecord>> {
        let (p, f) = (p.clone(), f.clone());
        self.run(move |c| {
            let mut filter = db::runs::RunFilter {
                statuses: f.statuses.as_ref().map(|s| s.iter().map(|x| x.as_str().to_string()).collect()),
                task_id: f.task_id,
                group_id: f.group_id,
                instance_ids: visible_instances(c, &p.instances)?,
                kind: f.kind.clone(),
                since: f.since,
                run_date: f.run_date,
                search: f.search.clone(),
            };
            if let Some(name) = &f.instance {
                filter.instance_ids = Some(vec![instance_for(c, &p, name)?.id]);
            }
            let mut rows = db::runs::page(c, &filter, page.after, page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::runs::count(c, &filter)?;
            let items = rows.into_iter().map(|r| record(c, r)).collect::<SvcResult<Vec<_>>>()?;
            Ok(Page { items, total, has_next })
        })
        .await
    }

    pub(super) async fn run_impl(&self, p: &Principal, id: i64) -> BackendResult<RunRecord> {
        let p = p.clone();
        self.run(move |c| {
            let row = visible_run(c, &p, id)?;
            record(c, row)
        })
        .await
    }

    pub(super) async fn run_transitions_impl(&self, p: &Principal, id: i64) -> BackendResult<Vec<TransitionRecord>> {
        let p = p.clone();
        self.run(move |c| {
            visible_run(c, &p, id)?;
            Ok(db::run_transitions::of_run(c, id)?
                .into_iter()
                .map(|t| TransitionRecord {
                    seq: t.seq,
                    from: t.from_status,
                    to: t.to_status,
                    attempt: t.attempt,
                    at: db::utc(t.at),
                    reason: t.reason.as_deref().map(reason_text),
                })
                .collect())
        })
        .await
    }

    pub(super) async fn run_output_impl(
        &self,
        p: &Principal,
        id: i64,
        attempt: Option<i32>,
        stream: &str,
        offset: i64,
        limit: i64,
    ) -> BackendResult<OutputSlice> {
        let (p, stream) = (p.clone(), stream.to_string());
        self.run(move |c| {
            let row = visible_run(c, &p, id)?;
            let attempt = attempt.unwrap_or(row.attempt.max(1));
            let chunks = db::run_output::read(c, id, attempt, &stream, offset, 4096)?;
            // Concatenate whole chunks from `offset`, cutting on character boundaries, up to `limit` bytes.
            let mut data = String::new();
            let mut start = offset;
            let mut end = offset;
            let mut total = 0;
            for ch in &chunks {
                let (c_start, c_end) = (ch.byte_offset, ch.byte_offset + ch.data.len() as i64);
                total = total.max(c_end);
                if c_end <= offset || (end - offset) >= limit {
                    continue;
                }
                if data.is_empty() {
                    start = c_start.max(offset);
                    end = start;
                }
                let mut from = (end - c_start).max(0) as usize;
                while from < ch.data.len() && !ch.data.is_char_boundary(from) {
                    from += 1;
                }
                let room = (limit - (end - start)).max(0) as usize;
                let mut to = (from + room).min(ch.data.len());
                while to > from && !ch.data.is_char_boundary(to) {
                    to -= 1;
                }
                data.push_str(&ch.data[from..to]);
                end = c_start + to as i64;
            }
            let total_bytes = if stream == "stdout" { row.stdout_bytes } else { row.stderr_bytes }.max(total);
            Ok(OutputSlice { offset: start, next_offset: end.max(offset), data, total_bytes })
        })
        .await
    }

    pub(super) async fn status_counts_impl(
        &self,
        p: &Principal,
        run_date: chrono::NaiveDate,
    ) -> BackendResult<Vec<(String, i64)>> {
        let p = p.clone();
        self.run(move |c| {
            let ids = visible_instances(c, &p.instances)?;
            Ok(db::runs::status_counts(c, run_date, ids.as_deref())?)
        })
        .await
    }
}
