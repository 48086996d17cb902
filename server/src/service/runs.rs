//! Runs for the API: lists scoped to the caller's instances, a run's timeline, output by offset.

use super::Found;
use super::{instance_for, visible_instances, Services, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::ApiError;
use baton_schema::access::InstanceAccess;
use baton_schema::agent::v1::Stream;
use baton_schema::ids::RunId;
use baton_schema::run::{Reason, RunStatus};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
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
    let status = r.status;
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

/// Joins stored chunks (offset, text) into up to `limit` bytes from `offset`, cut on character
/// boundaries: the slice's start, its end, its text, and the end of the last chunk. Chunks come
/// from an agent, so they may overlap, nest or leave gaps: what was taken already is skipped, a
/// gap ends the slice.
fn assemble(chunks: &[(i64, &str)], offset: i64, limit: i64) -> (i64, i64, String, i64) {
    let mut data = String::new();
    let (mut start, mut end, mut total) = (offset, offset, 0);
    for &(c_start, text) in chunks {
        let c_end = c_start.saturating_add(text.len() as i64);
        total = total.max(c_end);
        if c_end <= end || (end - start) >= limit || (!data.is_empty() && c_start > end) {
            continue;
        }
        if data.is_empty() {
            start = c_start.max(offset);
            end = start;
        }
        let mut from = usize::try_from(end - c_start).unwrap_or(0).min(text.len());
        while from < text.len() && !text.is_char_boundary(from) {
            from += 1;
        }
        let room = usize::try_from(limit - (end - start)).unwrap_or(0);
        let mut to = from.saturating_add(room).min(text.len());
        while to > from && !text.is_char_boundary(to) {
            to -= 1;
        }
        data.push_str(&text[from..to]);
        end = c_start + to as i64;
    }
    (start, end.max(offset), data, total)
}

/// Where a run belongs: a task's runs to its instance, an adhoc run to the instances its agent
/// served when it went (None: not recorded, for those who see every instance).
#[derive(Debug, Clone)]
enum RunScope {
    Instance(String),
    Adhoc(Option<InstanceAccess>),
}

/// Whether `p` may see a run of this scope (adhoc runs are for operators and up, of an
/// instance their agent served).
fn may_see(p: &Principal, scope: &RunScope) -> bool {
    match scope {
        RunScope::Instance(name) => p.instances.allows(name),
        RunScope::Adhoc(reach) => {
            p.role >= baton_schema::access::Role::Operator
                && match (&p.instances, reach) {
                    (InstanceAccess::All, _) => true,
                    (_, None) => false,
                    (mine, Some(its)) => super::agents::adhoc_may_reach(mine, its),
                }
        }
    }
}

/// The scope of a stored run.
fn scope_of(c: &mut DbConn, row: &db::runs::RunRow) -> db::DbResult<RunScope> {
    Ok(match row.instance_id {
        Some(i) => RunScope::Instance(db::instances::get(c, i)?.name),
        None => RunScope::Adhoc(db::runs::reach_of(row.adhoc_instances.as_deref())),
    })
}

/// The instance of each run (a run never moves), remembered for filtering live events: each
/// run is looked up once, whoever subscribes.
#[derive(Default)]
pub struct RunScopes {
    known: Mutex<HashMap<RunId, RunScope>>,
}

/// Runs remembered before the memory starts over.
const SCOPES_KEPT: usize = 100_000;

impl RunScopes {
    /// Where the run belongs; Err when it cannot be found.
    async fn scope_of(&self, db: &db::Db, run_id: RunId) -> Result<RunScope, String> {
        if let Some(known) = self.known.lock().map_err(|_| "poisoned")?.get(&run_id) {
            return Ok(known.clone());
        }
        let scope = db
            .run(move |c| {
                let row = db::runs::get(c, run_id)?;
                scope_of(c, &row)
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut known = self.known.lock().map_err(|_| "poisoned")?;
        if known.len() >= SCOPES_KEPT {
            known.clear();
        }
        known.insert(run_id, scope.clone());
        Ok(scope)
    }

    /// Whether `p` may see the run; a run that cannot be looked up is not shown.
    pub async fn visible(&self, db: &db::Db, p: &Principal, run_id: RunId) -> bool {
        // Who sees every instance and adhoc runs sees every run: nothing to look up.
        if matches!(p.instances, InstanceAccess::All) && p.role >= baton_schema::access::Role::Operator {
            return true;
        }
        match self.scope_of(db, run_id).await {
            Ok(scope) => may_see(p, &scope),
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "looking up a run's instance for a subscriber");
                false
            }
        }
    }
}

/// The run, if the caller may see it; else NOT_FOUND, as if it did not exist.
pub(super) fn visible_run(c: &mut DbConn, p: &Principal, id: RunId) -> SvcResult<db::runs::RunRow> {
    let row = db::runs::get(c, id).found("run")?;
    if !may_see(p, &scope_of(c, &row)?) {
        return Err(ApiError::NotFound("run".into()).into());
    }
    Ok(row)
}

/// Which adhoc runs a list shows `p`.
pub(super) fn adhoc_runs_for(p: &Principal) -> db::runs::AdhocRuns {
    match &p.instances {
        _ if p.role < baton_schema::access::Role::Operator => db::runs::AdhocRuns::None,
        InstanceAccess::All => db::runs::AdhocRuns::All,
        InstanceAccess::Only(names) => db::runs::AdhocRuns::Reaching(names.clone()),
    }
}

impl Services {}

#[async_trait]
impl baton_graphql::Runs for Services {
    async fn runs(&self, p: &Principal, f: &RunFilter, page: PageArgs) -> BackendResult<Page<RunRecord>> {
        let (p, f) = (p.clone(), f.clone());
        self.run(move |c| {
            let mut filter = db::runs::RunFilter {
                statuses: f.statuses.clone(),
                task_id: f.task_id,
                group_id: f.group_id,
                instance_ids: visible_instances(c, &p.instances)?,
                kind: f.kind.clone(),
                since: f.since,
                run_date: f.run_date,
                search: f.search.clone(),
                adhoc: adhoc_runs_for(&p),
            };
            if let Some(name) = &f.instance {
                filter.instance_ids = Some(vec![instance_for(c, &p, name)?.id]);
                filter.adhoc = db::runs::AdhocRuns::None;
            }
            let mut rows = db::runs::page(c, &filter, page.after.map(RunId), page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::runs::count(c, &filter)?;
            let items = rows.into_iter().map(|r| record(c, r)).collect::<SvcResult<Vec<_>>>()?;
            Ok(Page { items, total, has_next })
        })
        .await
    }

    async fn run(&self, p: &Principal, id: RunId) -> BackendResult<RunRecord> {
        let p = p.clone();
        self.run(move |c| {
            let row = visible_run(c, &p, id)?;
            record(c, row)
        })
        .await
    }

    async fn run_transitions(&self, p: &Principal, id: RunId) -> BackendResult<Vec<TransitionRecord>> {
        let p = p.clone();
        self.run(move |c| {
            visible_run(c, &p, id)?;
            Ok(db::run_transitions::of_run(c, id)?
                .into_iter()
                .map(|t| {
                    let reason = t.reason.as_deref().map(reason_text);
                    let (from, to, at) = (t.from_status, t.to_status, db::utc(t.at));
                    TransitionRecord { seq: t.seq, from, to, attempt: t.attempt, at, reason }
                })
                .collect())
        })
        .await
    }

    async fn run_output(
        &self,
        p: &Principal,
        id: RunId,
        attempt: Option<i32>,
        stream: Stream,
        offset: i64,
        limit: i64,
    ) -> BackendResult<OutputSlice> {
        let p = p.clone();
        self.run(move |c| {
            let row = visible_run(c, &p, id)?;
            let attempt = attempt.unwrap_or(row.attempt.max(1));
            let chunks = db::run_output::read(c, id, attempt, stream, offset, 4096)?;
            let pieces: Vec<(i64, &str)> = chunks.iter().map(|ch| (ch.byte_offset, ch.data.as_str())).collect();
            let (start, end, data, total) = assemble(&pieces, offset, limit);
            let total_bytes = match stream {
                Stream::Stdout => row.stdout_bytes,
                Stream::Stderr => row.stderr_bytes,
            }
            .max(total);
            Ok(OutputSlice { offset: start, next_offset: end, data, total_bytes })
        })
        .await
    }

    async fn status_counts(&self, p: &Principal, run_date: chrono::NaiveDate) -> BackendResult<Vec<(RunStatus, i64)>> {
        let p = p.clone();
        self.run(move |c| {
            let ids = visible_instances(c, &p.instances)?;
            Ok(db::runs::status_counts(c, run_date, ids.as_deref())?)
        })
        .await
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
        run_id: RunId,
    ) -> BackendResult<BoxStream<'static, OutputUpdateRecord>> {
        // Subscribed before the check, so nothing stored in between is missed.
        let updates = self.driver.subscribe_output();
        baton_graphql::Runs::run(self, p, run_id).await?;
        Ok(tokio_stream::wrappers::BroadcastStream::new(updates)
            .filter_map(move |r| async move {
                r.ok().filter(|u| u.run_id == run_id).map(|u| OutputUpdateRecord {
                    run_id: u.run_id,
                    attempt: i32::try_from(u.attempt).unwrap_or(i32::MAX),
                    stream: u.stream,
                    offset: u.offset,
                    data: u.data,
                })
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::assemble;
    use proptest::prelude::*;

    #[test]
    fn chunks_join_and_overlaps_from_an_agent_are_skipped() {
        let chunks = [(0, "hello "), (6, "world"), (11, "!")];
        assert_eq!(assemble(&chunks, 0, 100), (0, 12, "hello world!".into(), 12));
        assert_eq!(assemble(&chunks, 3, 5), (3, 8, "lo wo".into(), 12));
        // Overlapping and nested chunks (a hostile or confused agent): once panicked, now skipped.
        let odd = [(0, "0123456789"), (2, "234"), (5, "56789ab"), (8, "89")];
        assert_eq!(assemble(&odd, 0, 100), (0, 12, "0123456789ab".into(), 12));
        // A gap ends the slice where it starts.
        assert_eq!(assemble(&[(0, "abc"), (10, "xyz")], 0, 100), (0, 3, "abc".into(), 13));
        // Never half a character.
        assert_eq!(assemble(&[(0, "aé")], 0, 2), (0, 1, "a".into(), 3));
    }

    proptest! {
        /// Whatever the chunks: no panic, at most `limit` bytes, and the text is what the stream
        /// holds from the slice's start when the chunks agree with each other.
        #[test]
        fn any_chunks_give_a_bounded_slice(
            starts in proptest::collection::vec(0i64..64, 0..12),
            lens in proptest::collection::vec(0usize..16, 12),
            offset in 0i64..70,
            limit in 1i64..40,
        ) {
            let stream: String = (0..100).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut starts = starts;
            starts.sort_unstable();
            let chunks: Vec<(i64, &str)> = starts
                .iter()
                .zip(&lens)
                .map(|(&s, &n)| (s, &stream[s as usize..(s as usize + n).min(stream.len())]))
                .collect();
            let (start, end, data, _) = assemble(&chunks, offset, limit);
            prop_assert!(data.len() as i64 <= limit);
            prop_assert_eq!(end - start, data.len() as i64);
            prop_assert_eq!(&stream[start as usize..end as usize], data.as_str());
        }
    }
}
