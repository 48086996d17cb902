//! The scheduling engine: one supervised actix actor per active scheduled task outside groups
//! (`task`) and one per group (`group`), each a thin shell around the pure machines of
//! `baton-schema` (`ScheduleClock`, the flow machine). The root actor loads the definitions at
//! start, starts, reloads and stops actors as definitions change, routes run transitions to the
//! group whose flow they belong to, and tells groups when another group of their instance opened
//! or ended a group run (group-to-group dependencies).

pub mod group;
pub mod launch;
pub mod task;

use crate::db::{self, Db};
use crate::driver::{Driver, RunUpdate};
use actix::prelude::*;
use baton_schema::ids::{GroupId, InstanceId, TaskId};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use group::{DateChanged, GroupActor, MemberChanged, MemberUpdate, Reload};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use task::{CalendarCache, Retire, TaskActor};

/// Runs pure machine code for an actor. A panic there becomes `None`: the actor then stops and
/// its supervisor restarts it, reloading its state from the database (counted in `restarts`).
pub fn guarded<R>(what: &str, id: impl std::fmt::Display, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!(what, %id, "an engine actor panicked; its supervisor restarts it");
            None
        }
    }
}

/// What every actor shares.
#[derive(Clone)]
pub struct EngineDeps {
    pub db: Db,
    pub driver: Arc<Driver>,
    /// Slots missed by less than this run (per the task's misfire policy); older ones are skipped.
    pub grace: Duration,
    pub restarts: Arc<AtomicU64>,
    /// Runs and group runs the engine started.
    pub fired: Arc<AtomicU64>,
    /// Task actors with a schedule to keep.
    pub actors: Arc<AtomicU64>,
    /// Group actors of active groups.
    pub group_actors: Arc<AtomicU64>,
    /// Group runs that ended (alerts listen).
    pub group_ends: tokio::sync::broadcast::Sender<crate::alerts::GroupRunEnd>,
    /// The time, shared with the driver.
    pub clock: crate::clock::SharedClock,
    /// The instances this server schedules; every write that creates or advances runs is fenced
    /// by their leases.
    pub leases: Arc<crate::lease::Leases>,
}

impl EngineDeps {
    pub fn new(db: Db, driver: Arc<Driver>, grace: Duration, leases: Arc<crate::lease::Leases>) -> Self {
        Self {
            leases,
            db,
            clock: driver.clock(),
            driver,
            grace,
            restarts: Default::default(),
            fired: Default::default(),
            actors: Default::default(),
            group_actors: Default::default(),
            group_ends: tokio::sync::broadcast::channel(4096).0,
        }
    }
}

/// The root: which actors run.
pub struct Engine {
    deps: EngineDeps,
    tasks: HashMap<TaskId, Addr<TaskActor>>,
    groups: HashMap<GroupId, (InstanceId, Addr<GroupActor>)>,
}

/// A task's definition changed (or was created or deleted): start, reload or stop its actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskChanged(pub TaskId);

/// A group's definition changed (or was created or deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupChanged(pub GroupId);

/// Many definitions changed (an import, a calendar): reload everything.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadAll;

/// A group opened or ended a group run on a run date.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupRunChanged {
    pub instance_id: InstanceId,
    pub run_date: NaiveDate,
    pub group: String,
}

/// Everything the root reads at start: every task's clock at once (one pass over the table, not
/// one query per actor), and the groups.
struct Loaded {
    tasks: Vec<(TaskId, task::Loaded)>,
    groups: Vec<(GroupId, InstanceId)>,
}

fn load_everything(
    c: &mut db::DbConn,
    grace: Duration,
    now: DateTime<Utc>,
    held: &std::collections::BTreeSet<InstanceId>,
) -> db::DbResult<Loaded> {
    let last_slots = db::runs::last_slots(c, now - task::LAST_SLOT_LOOKBACK)?;
    let instances: HashMap<InstanceId, String> = db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
    let filter = db::tasks::TaskFilter { active: Some(true), ungrouped: true, ..Default::default() };
    let mut calendars = CalendarCache::new();
    let mut tasks = Vec::new();
    let mut after = None;
    loop {
        let rows = db::tasks::page(c, &filter, after, 5_000)?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in rows.iter().filter(|r| r.schedule.is_some() && held.contains(&r.instance_id)) {
            let last = last_slots.get(&row.id).copied();
            if let Some(l) = task::prepare(c, row, &instances, &mut calendars, grace, now, last)? {
                tasks.push((row.id, l));
            }
        }
    }
    let groups = db::groups::page(c, &db::groups::GroupFilter::default(), None, i64::MAX)?
        .into_iter()
        .filter(|g| held.contains(&g.instance_id))
        .map(|g| (g.id, g.instance_id))
        .collect();
    Ok(Loaded { tasks, groups })
}

impl Engine {
    pub fn start(deps: EngineDeps) -> Addr<Engine> {
        Engine { deps, tasks: HashMap::new(), groups: HashMap::new() }.start()
    }

    fn start_task(&mut self, tid: TaskId, preloaded: Option<task::Loaded>) {
        if let Some(old) = self.tasks.remove(&tid) {
            old.do_send(Retire);
        }
        let deps = self.deps.clone();
        let mut preloaded = preloaded;
        let addr = Supervisor::start(move |_| TaskActor::new(tid, deps, preloaded.take()));
        self.tasks.insert(tid, addr);
    }

    /// Starts a group's actor, or has the running one read its group again.
    fn start_group(&mut self, gid: GroupId, instance_id: InstanceId, ctx: &mut Context<Self>) {
        if let Some((inst, a)) = self.groups.get_mut(&gid) {
            *inst = instance_id;
            a.do_send(Reload);
            return;
        }
        let (deps, root) = (self.deps.clone(), ctx.address().recipient());
        let addr = Supervisor::start(move |_| GroupActor::new(gid, deps, root));
        self.groups.insert(gid, (instance_id, addr));
    }

    /// One group changed: start or reload its actor, or drop it when the group is gone.
    fn group_changed(&mut self, gid: GroupId, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        ctx.spawn(async move { db.run(move |c| db::groups::get(c, gid)).await }.into_actor(self).map(
            move |row, act, ctx| match row {
                Ok(g) => act.start_group(g.id, g.instance_id, ctx),
                Err(db::DbError::NotFound) => {
                    act.groups.remove(&gid);
                }
                Err(e) => tracing::error!(group = %gid, error = %e, "reading a changed group"),
            },
        ));
    }

    fn load_all(&mut self, ctx: &mut Context<Self>) {
        let (db, grace, now) = (self.deps.db.clone(), self.deps.grace, self.deps.clock.now());
        let held = self.deps.leases.held();
        let started = std::time::Instant::now();
        ctx.wait(async move { db.run(move |c| load_everything(c, grace, now, &held)).await }.into_actor(self).map(
            move |res, act, ctx| match res {
                Ok(loaded) => {
                    for old in act.tasks.drain().map(|(_, a)| a).collect::<Vec<_>>() {
                        old.do_send(Retire);
                    }
                    let (n, g) = (loaded.tasks.len(), loaded.groups.len());
                    let present: std::collections::HashSet<GroupId> = loaded.groups.iter().map(|(id, _)| *id).collect();
                    act.groups.retain(|id, _| present.contains(id));
                    for (id, l) in loaded.tasks {
                        act.start_task(id, Some(l));
                    }
                    for (gid, inst) in loaded.groups {
                        act.start_group(gid, inst, ctx);
                    }
                    tracing::info!(tasks = n, groups = g, ms = started.elapsed().as_millis() as u64, "engine armed");
                }
                Err(e) => {
                    // Nothing else would load it again: the leases may not change any more.
                    tracing::error!(error = %e, "loading definitions for the engine; trying again in a moment");
                    ctx.run_later(task::RELOAD_PAUSE, |act, ctx| act.load_all(ctx));
                }
            },
        ));
    }
}

impl Actor for Engine {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load_all(ctx);
        // Transitions of grouped runs drive their group's flow.
        let updates = tokio_stream::wrappers::BroadcastStream::new(self.deps.driver.subscribe());
        ctx.add_stream(updates);
    }
}

impl StreamHandler<Result<RunUpdate, tokio_stream::wrappers::errors::BroadcastStreamRecvError>> for Engine {
    fn handle(
        &mut self,
        item: Result<RunUpdate, tokio_stream::wrappers::errors::BroadcastStreamRecvError>,
        _: &mut Context<Self>,
    ) {
        match item {
            Ok(u) => {
                let Some(g) = u.group_run else { return };
                if let Some((_, a)) = self.groups.get(&g.group_id) {
                    a.do_send(MemberUpdate {
                        group_run_id: g.group_run_id,
                        task_name: u.task_name,
                        status: u.transition.to,
                        attempt: u.transition.attempt,
                        modified: matches!(u.transition.reason, Some(baton_schema::run::Reason::ModifiedBy { .. })),
                    });
                }
            }
            Err(e) => {
                // Fell behind a burst: let every group read its state again from the database.
                tracing::warn!(error = %e, "engine missed run updates; reloading groups");
                for (_, a) in self.groups.values() {
                    a.do_send(Reload);
                }
            }
        }
    }

    /// The engine outlives the stream (the default would stop the actor with it).
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<TaskChanged> for Engine {
    type Result = ();
    fn handle(&mut self, TaskChanged(tid): TaskChanged, ctx: &mut Context<Self>) {
        // The new actor decides from the database whether it has anything to do. Only the groups
        // the task left or joined read their members again.
        self.start_task(tid, None);
        let db = self.deps.db.clone();
        ctx.spawn(async move { db.run(move |c| db::tasks::get(c, tid)).await }.into_actor(self).map(
            move |row, act, _| {
                let group_id = row.ok().and_then(|r| r.group_id);
                for (_, a) in act.groups.values() {
                    a.do_send(MemberChanged { tid, group_id });
                }
            },
        ));
    }
}

impl Handler<GroupChanged> for Engine {
    type Result = ();
    fn handle(&mut self, GroupChanged(gid): GroupChanged, ctx: &mut Context<Self>) {
        self.group_changed(gid, ctx);
    }
}

impl Handler<ReloadAll> for Engine {
    type Result = ();
    fn handle(&mut self, _: ReloadAll, ctx: &mut Context<Self>) {
        self.load_all(ctx);
    }
}

impl Handler<GroupRunChanged> for Engine {
    type Result = ();
    fn handle(&mut self, c: GroupRunChanged, _: &mut Context<Self>) {
        for (inst, a) in self.groups.values() {
            if *inst == c.instance_id {
                a.do_send(DateChanged { run_date: c.run_date, group: c.group.clone() });
            }
        }
    }
}
