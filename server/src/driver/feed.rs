//! Publishing run transitions to this server's subscribers, engine and alerts in each run's
//! `seq` order, once, whichever server stored them and whichever task publishes them first.
//!
//! A run's steps are stored one after another (each locks the run), but they reach a server by
//! two paths: its own writes, published as soon as they are stored, and other servers' writes,
//! read from the table a little later. A gap in a run's `seq` means a step stored elsewhere (or
//! by a slower task here) is not published yet: the run's later steps wait while the gap is read
//! from the database, then all go out in order.

use super::RunUpdate;
use crate::db::{self, Db};
use baton_schema::ids::RunId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many runs' last published `seq` are kept; the oldest are forgotten beyond it.
const KEEP_RUNS: usize = 100_000;

pub struct RunFeed {
    db: Db,
    sender: broadcast::Sender<RunUpdate>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    runs: HashMap<RunId, Run>,
    /// Runs in the order they were first published (to forget the oldest).
    order: VecDeque<RunId>,
    /// The newest transition id when this server began following other servers' (None when it
    /// does not): a run first seen here is published from its steps after it, not from its start.
    since: Option<i64>,
}

enum Run {
    /// Published up to this `seq`, without a gap.
    Published(i32),
    /// A gap after `after` is being read; `waiting` are the steps that came meanwhile (never
    /// empty). No `after`: a run first seen here, read from `State::since` on.
    Filling { after: Option<i32>, waiting: Vec<RunUpdate> },
}

impl RunFeed {
    pub fn new(db: Db) -> Arc<Self> {
        let (sender, _) = broadcast::channel(16_384);
        Arc::new(Self { db, sender, state: Mutex::new(State::default()) })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunUpdate> {
        self.sender.subscribe()
    }

    /// Notes where following other servers' transitions began (see `State::since`).
    pub fn following_since(&self, id: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.since = Some(id);
        }
    }

    /// Publishes a stored step: at once when it follows the run's last published one, never
    /// when it was published already, after what is missing when there is a gap.
    pub fn publish(self: &Arc<Self>, u: RunUpdate) {
        let Ok(mut s) = self.state.lock() else { return };
        let since = s.since;
        let after = match s.runs.get_mut(&u.run_id) {
            Some(Run::Filling { waiting, .. }) => {
                waiting.push(u);
                return;
            }
            Some(Run::Published(last)) if u.seq <= *last => return,
            Some(Run::Published(last)) if u.seq == *last + 1 => {
                *last = u.seq;
                let _ = self.sender.send(u);
                return;
            }
            Some(Run::Published(last)) => Some(*last),
            None => match since {
                Some(_) if u.seq > 1 => None,
                _ => {
                    s.remember(u.run_id, Run::Published(u.seq));
                    let _ = self.sender.send(u);
                    return;
                }
            },
        };
        let run_id = u.run_id;
        s.remember(run_id, Run::Filling { after, waiting: vec![u] });
        drop(s);
        let feed = self.clone();
        tokio::spawn(async move { feed.fill(run_id).await });
    }

    /// Reads a run's stored steps after its `Filling::after`, then publishes them with those that
    /// waited, in `seq` order, up to the first gap still open (read again, once).
    async fn fill(self: Arc<Self>, run_id: RunId) {
        let mut tries = 0;
        loop {
            tries += 1;
            let Some((seq, id)) = self.read_from(run_id) else { return };
            let read = self.db.run(move |c| db::run_transitions::of_run_after(c, run_id, seq, id)).await;
            let rows = read.unwrap_or_else(|e| {
                tracing::error!(run = %run_id, error = %e, "reading the steps of a run not yet published");
                Vec::new()
            });
            let Ok(mut s) = self.state.lock() else { return };
            let Some(Run::Filling { after, waiting }) = s.runs.get_mut(&run_id) else { return };
            let Some((task_name, group_run)) = waiting.first().map(|u| (u.task_name.clone(), u.group_run)) else {
                return;
            };
            let mut steps: BTreeMap<i32, RunUpdate> = rows
                .into_iter()
                .map(|r| {
                    let (task_name, transition) = (task_name.clone(), r.transition());
                    (r.seq, RunUpdate { run_id, task_name, group_run, seq: r.seq, transition })
                })
                .collect();
            steps.extend(waiting.drain(..).map(|u| (u.seq, u)));
            let mut last = *after;
            let mut rest = Vec::new();
            for (seq, u) in steps {
                let next = last.is_none_or(|l| seq == l + 1);
                if last.is_some_and(|l| seq <= l) {
                    continue;
                }
                // A gap still open after a second read is given up on: what came is published.
                if next || tries > 1 {
                    last = Some(seq);
                    let _ = self.sender.send(u);
                } else {
                    rest.push(u);
                }
            }
            match (last, rest.is_empty()) {
                (Some(l), true) => {
                    s.runs.insert(run_id, Run::Published(l));
                    return;
                }
                (None, true) => {
                    s.runs.remove(&run_id);
                    return;
                }
                (_, false) => {
                    *after = last;
                    *waiting = rest;
                }
            }
        }
    }

    /// Where a filling run's gap is read from: after its last published `seq`, or (first seen
    /// here) from its start but only after the id following began at. None when not filling.
    fn read_from(&self, run_id: RunId) -> Option<(i32, Option<i64>)> {
        let s = self.state.lock().ok()?;
        match s.runs.get(&run_id)? {
            Run::Filling { after: Some(seq), .. } => Some((*seq, None)),
            Run::Filling { after: None, .. } => Some((0, s.since)),
            Run::Published(_) => None,
        }
    }
}

impl State {
    fn remember(&mut self, run_id: RunId, run: Run) {
        if self.runs.insert(run_id, run).is_none() {
            self.order.push_back(run_id);
        }
        for _ in 0..self.order.len().saturating_sub(KEEP_RUNS) * 2 {
            if self.order.len() <= KEEP_RUNS {
                break;
            }
            let Some(old) = self.order.pop_front() else { break };
            match self.runs.get(&old) {
                Some(Run::Filling { .. }) => self.order.push_back(old),
                _ => {
                    self.runs.remove(&old);
                }
            }
        }
    }
}
