//! One actor per group. A scheduled group opens a group run per slot (once per group, run date
//! and slot) with one run per active task, waiting; a group without a schedule but with a
//! dependency on other groups opens one when a group it names opens one that day (or, when it
//! missed that, once it is loaded again). The pure flow machine of `baton-schema` decides, at
//! each change of its tasks' states, who starts, who can never start and how the group run ends;
//! a group run whose own dependency does not hold yet waits for the other groups of its run date. An inactive group starts nothing: its tasks hold.
//!
//! All of the actor's database work runs under `ctx.wait`, so its messages are handled one at a
//! time against a state that matches the database; after a restart it reloads that state.

use super::launch::{self, Origin};
use super::task::{calendar, handled_until, is_missed, note_missed, record_skip, CalendarCache, LAST_SLOT_LOOKBACK};
use super::{EngineDeps, GroupRunChanged};
use crate::db::{self, DbConn, DbResult};
use crate::driver::JobSpec;
use actix::prelude::*;
use baton_schema::clock::{Action, ScheduleClock};
use baton_schema::definition::{GroupDef, MisfirePolicy, TaskDef};
use baton_schema::flow::{self, FlowAction, Member};
use baton_schema::ids::{GroupId, GroupRunId, InstanceId, RunId, TaskId};
use baton_schema::run::{Reason, RunEvent, RunStatus};
use baton_schema::schedule::Slot;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A task of a group run.
#[derive(Debug, Clone)]
struct MemberRun {
    run_id: RunId,
    status: RunStatus,
    attempt: u32,
}

impl MemberRun {
    /// Not started yet (a run waiting for its retry has an attempt behind it).
    fn waiting(&self) -> bool {
        self.status == RunStatus::Idle && self.attempt == 0
    }
}

#[derive(Debug, Clone)]
struct OpenRun {
    id: GroupRunId,
    slot: Slot,
    /// Waiting for the group's own dependency on other groups.
    held: bool,
    /// Ended, and opened again because an operator modified one of its runs.
    reopened: bool,
    members: BTreeMap<String, MemberRun>,
}

/// What the actor knows of its group.
struct Group {
    def: GroupDef,
    instance_id: InstanceId,
    clock: Option<ScheduleClock>,
    timer: Option<SpawnHandle>,
    /// Its active tasks by name.
    tasks: Arc<BTreeMap<String, (TaskId, TaskDef)>>,
    flow: Arc<Vec<Member>>,
    open: BTreeMap<GroupRunId, OpenRun>,
    /// Run dates on which a group it follows opened a run and it has none (its own opening
    /// failed, or the news came while it was reloading): it opens them when it is loaded.
    owed: Vec<NaiveDate>,
}

fn open_run_from_db(c: &mut DbConn, row: &db::group_runs::GroupRunRow) -> DbResult<OpenRun> {
    let runs = db::runs::of_group_run(c, row.id)?;
    let at = runs.iter().find_map(|r| r.scheduled_for).unwrap_or(row.created_at);
    let members = runs
        .into_iter()
        .map(|r| {
            let status = r.status;
            let attempt = u32::try_from(r.attempt).unwrap_or(0);
            (r.task_name, MemberRun { run_id: r.id, status, attempt })
        })
        .collect();
    let reopened = !matches!(row.status, RunStatus::Idle | RunStatus::Running);
    Ok(OpenRun {
        id: row.id,
        slot: launch::stored_slot(row.run_date, &row.slot, db::utc(at)),
        held: row.status == RunStatus::Idle,
        reopened,
        members,
    })
}

fn load(
    c: &mut DbConn,
    gid: GroupId,
    grace: chrono::Duration,
    now: DateTime<Utc>,
    leases: &crate::lease::Leases,
) -> DbResult<Option<Group>> {
    let Ok(row) = db::groups::get(c, gid) else { return Ok(None) };
    // Another server schedules the instances this one holds no lease on.
    if !row.active || !leases.holds(row.instance_id) {
        return Ok(None);
    }
    let instance = db::instances::get(c, row.instance_id)?.name;
    let Ok(def) = GroupDef::parse(&row.to_draft(&instance, Vec::new())?) else { return Ok(None) };
    let mut tasks = BTreeMap::new();
    for t in db::tasks::in_group(c, gid)?.into_iter().filter(|t| t.active) {
        if let Ok(d) = TaskDef::parse(&t.to_draft(&instance, Some(&row.name), Vec::new())?) {
            tasks.insert(d.name.to_string(), (t.id, d));
        }
    }
    let flow =
        tasks.values().map(|(_, d)| Member { name: d.name.to_string(), dependency: d.dependency.clone() }).collect();
    let clock = match &def.schedule {
        Some(s) => {
            let cal = match &s.calendar {
                Some(n) => calendar(c, &mut CalendarCache::new(), row.instance_id, n.as_str())?,
                None => None,
            };
            let last = db::runs::last_slot_of(c, None, Some(gid), now - LAST_SLOT_LOOKBACK)?;
            let from = handled_until(now, db::utc(row.updated_at), last);
            Some(ScheduleClock::new(s.clone(), cal, MisfirePolicy::RunOnce, grace, from))
        }
        None => None,
    };
    let mut open = BTreeMap::new();
    for r in db::group_runs::open_of_group(c, gid)? {
        open.insert(r.id, open_run_from_db(c, &r)?);
    }
    let mut owed = Vec::new();
    if let (None, Some(dependency)) = (&def.schedule, &def.dependency) {
        let names: Vec<String> = dependency.names().into_iter().map(str::to_string).collect();
        let since = db::utc(row.updated_at).max(now - LAST_SLOT_LOOKBACK);
        for date in db::group_runs::dates_opened_by(c, row.instance_id, &names, since)? {
            if db::group_runs::of_group_on(c, gid, date)?.is_empty() {
                owed.push(date);
            }
        }
    }
    Ok(Some(Group {
        def,
        instance_id: row.instance_id,
        clock,
        timer: None,
        tasks: Arc::new(tasks),
        flow: Arc::new(flow),
        open,
        owed,
    }))
}

/// What one pass over a group run needs, taken out of the actor.
struct Pass {
    deps: EngineDeps,
    gid: GroupId,
    group_name: String,
    instance_id: InstanceId,
    dependency: Option<baton_schema::dependency::DependencyExpr>,
    tasks: Arc<BTreeMap<String, (TaskId, TaskDef)>>,
    flow: Arc<Vec<Member>>,
    run: OpenRun,
}

/// Whether the group run ended with this pass, and how.
struct Passed {
    run: OpenRun,
    ended: Option<RunStatus>,
    changed: bool,
    /// The flow machine panicked: the actor restarts.
    crashed: bool,
    /// A write failed (the database is away, or the lease was lost meanwhile): the actor reads
    /// the database again in a moment.
    failed: bool,
}

fn spec_of(p: &Pass, name: &str) -> Option<JobSpec> {
    let (tid, def) = p.tasks.get(name)?;
    let origin = Origin {
        task_id: *tid,
        instance_id: p.instance_id,
        group: Some((p.gid, &p.group_name)),
        group_run_id: Some(p.run.id),
        slot: &p.run.slot,
    };
    Some(launch::build(def, &origin, p.deps.clock.now()).1)
}

/// Advances one group run as far as it goes now.
async fn pass(mut p: Pass) -> Passed {
    let mut changed = false;
    if p.run.held {
        let (inst, date) = (p.instance_id, p.run.slot.run_date);
        let states = match p.deps.db.run(move |c| db::group_runs::states_on(c, inst, date)).await {
            Ok(rows) => rows.into_iter().collect::<HashMap<String, RunStatus>>(),
            Err(e) => {
                tracing::error!(group = %p.group_name, error = %e, "reading the day's group runs");
                return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
            }
        };
        // The groups it names take part in its flow: while one of them failed, it waits (an
        // operator may fix that), as a task waits on a failed task of its group.
        let mut me = vec![Member { name: p.group_name.clone(), dependency: p.dependency.clone() }];
        if let Some(d) = &p.dependency {
            me.extend(d.names().into_iter().map(|n| Member { name: n.to_string(), dependency: None }));
        }
        let waiting = BTreeSet::from([p.group_name.clone()]);
        let Some(step) = super::guarded("group dependency", p.gid, || flow::step(&me, &waiting, &states)) else {
            return Passed { run: p.run, ended: None, changed, crashed: true, failed: false };
        };
        match step.actions.first() {
            Some(FlowAction::Start(_)) => {
                let id = p.run.id;
                let (now, inst, leases) = (p.deps.clock.now(), p.instance_id, p.deps.leases.clone());
                let started = p.deps.db.run(move |c| {
                    db::transaction(c, |c| {
                        leases.fence(c, inst, now)?;
                        db::group_runs::set_running(c, id, now)
                    })
                });
                if let Err(e) = started.await {
                    tracing::error!(group_run = %id, error = %e, "starting a group run");
                    return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
                }
                tracing::info!(group = %p.group_name, group_run = %id, "group dependency holds");
                p.run.held = false;
                changed = true;
            }
            Some(FlowAction::Skip(_, reason)) => {
                let waiting: Vec<String> =
                    p.run.members.iter().filter(|(_, m)| m.waiting()).map(|(n, _)| n.clone()).collect();
                for name in waiting {
                    let Some(m) = p.run.members.get_mut(&name) else { continue };
                    match p.deps.driver.settle(m.run_id, RunEvent::Skip { reason: reason.clone() }).await {
                        Ok(s) => m.status = s,
                        Err(e) => {
                            tracing::error!(run = %m.run_id, error = %e, "skipping a run");
                            return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
                        }
                    }
                }
                return Passed {
                    run: p.run,
                    ended: Some(RunStatus::Skipped),
                    changed: true,
                    crashed: false,
                    failed: false,
                };
            }
            None => return Passed { run: p.run, ended: None, changed, crashed: false, failed: false },
        }
    }
    let waiting: BTreeSet<String> = p.run.members.iter().filter(|(_, m)| m.waiting()).map(|(n, _)| n.clone()).collect();
    let states: HashMap<String, RunStatus> = p.run.members.iter().map(|(n, m)| (n.clone(), m.status)).collect();
    // Members that left the group since the run opened are not part of its flow.
    let flow: Vec<Member> = p.flow.iter().filter(|m| p.run.members.contains_key(&m.name)).cloned().collect();
    let Some(step) = super::guarded("group flow", p.gid, || flow::step(&flow, &waiting, &states)) else {
        return Passed { run: p.run, ended: None, changed, crashed: true, failed: false };
    };
    if p.run.reopened && step.actions.iter().any(|a| matches!(a, FlowAction::Start(_))) {
        let id = p.run.id;
        let (now, inst, leases) = (p.deps.clock.now(), p.instance_id, p.deps.leases.clone());
        let again = p.deps.db.run(move |c| {
            db::transaction(c, |c| {
                leases.fence(c, inst, now)?;
                db::group_runs::set_running(c, id, now)
            })
        });
        match again.await {
            Ok(()) => p.run.reopened = false,
            Err(e) => {
                tracing::error!(group_run = %id, error = %e, "running a group run again");
                return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
            }
        }
    }
    for action in &step.actions {
        match action {
            FlowAction::Start(name) => {
                let Some(spec) = spec_of(&p, name) else { continue };
                // Judged under this server's lease: a deposed server starts nothing.
                let (now, inst, leases) = (p.deps.clock.now(), p.instance_id, p.deps.leases.clone());
                if let Err(e) = p.deps.db.run(move |c| leases.fence(c, inst, now)).await {
                    tracing::warn!(group = %p.group_name, task = %name, error = %e, "not started");
                    return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
                }
                let Some(m) = p.run.members.get_mut(name) else { continue };
                m.status = RunStatus::Triggered;
                m.attempt = m.attempt.max(1);
                p.deps.fired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(group = %p.group_name, task = %name, run = %m.run_id, "dependency holds: started");
                if !p.deps.driver.start(m.run_id, spec).await {
                    tracing::warn!(group = %p.group_name, task = %name, "its dispatch was not stored; the group run is read again");
                    return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
                }
            }
            FlowAction::Skip(name, reason) => {
                let Some(m) = p.run.members.get_mut(name) else { continue };
                match p.deps.driver.settle(m.run_id, RunEvent::Skip { reason: reason.clone() }).await {
                    Ok(s) => m.status = s,
                    Err(e) => {
                        tracing::error!(run = %m.run_id, error = %e, "skipping a run");
                        return Passed { run: p.run, ended: None, changed, crashed: false, failed: true };
                    }
                }
            }
        }
        changed = true;
    }
    Passed { run: p.run, ended: step.outcome, changed, crashed: false, failed: false }
}

/// Opens the group run of a slot (once) with a run per active task, waiting; a slot skipped by
/// the clock (holiday, missed) is stored as a skipped group run with skipped task runs.
/// What opening a group run needs to know of its group.
struct Opening {
    gid: GroupId,
    instance_id: InstanceId,
    name: String,
    /// The group has a dependency of its own: its run waits for it.
    held: bool,
    tasks: Arc<BTreeMap<String, (TaskId, TaskDef)>>,
    leases: Arc<crate::lease::Leases>,
}

fn open_run(
    c: &mut DbConn,
    g: &Opening,
    slot: &Slot,
    skip: Option<&Reason>,
    now: DateTime<Utc>,
) -> DbResult<Option<OpenRun>> {
    let (gid, held) = (g.gid, g.held);
    let status = match (skip, held) {
        (Some(_), _) => RunStatus::Skipped,
        (None, true) => RunStatus::Idle,
        (None, false) => RunStatus::Running,
    };
    db::transaction(c, |c| {
        g.leases.fence(c, g.instance_id, now)?;
        let (id, new) = db::group_runs::create(c, gid, slot.run_date, &slot.key(), status, now)?;
        if !new {
            return Ok(None);
        }
        let mut members = BTreeMap::new();
        for (tid, def) in g.tasks.values() {
            let origin = Origin {
                task_id: *tid,
                instance_id: g.instance_id,
                group: Some((gid, g.name.as_str())),
                group_run_id: Some(id),
                slot,
            };
            let (row, _) = launch::build(def, &origin, now);
            let run_id = db::runs::create(c, &row)?.id();
            if is_missed(slot.at, skip, now) {
                note_missed(c, &row, run_id, slot.at, skip.is_none(), now)?;
            }
            let mut status = RunStatus::Idle;
            if let Some(r) = skip {
                record_skip(c, run_id, r.clone(), now, g.leases.owner())?;
                status = RunStatus::Skipped;
            }
            members.insert(def.name.to_string(), MemberRun { run_id, status, attempt: 0 });
        }
        Ok(skip.is_none().then(|| OpenRun { id, slot: slot.clone(), held, reopened: false, members }))
    })
}

pub struct GroupActor {
    gid: GroupId,
    deps: EngineDeps,
    root: Recipient<GroupRunChanged>,
    group: Option<Group>,
}

impl GroupActor {
    pub fn new(gid: GroupId, deps: EngineDeps, root: Recipient<GroupRunChanged>) -> Self {
        Self { gid, deps, root, group: None }
    }

    fn reload(&mut self, ctx: &mut Context<Self>) {
        let (db, gid, grace, now) = (self.deps.db.clone(), self.gid, self.deps.grace, self.deps.clock.now());
        let leases = self.deps.leases.clone();
        ctx.wait(async move { db.run(move |c| load(c, gid, grace, now, &leases)).await }.into_actor(self).map(
            |res, act, ctx| {
                if let Some(old) = act.group.take() {
                    if let Some(h) = old.timer {
                        ctx.cancel_future(h);
                    }
                    act.deps.group_actors.fetch_sub(1, Ordering::Relaxed);
                }
                match res {
                    Ok(g) => act.group = g,
                    Err(e) => {
                        // The database is away: try again in a moment, through the supervisor.
                        tracing::error!(group = %act.gid, error = %e, "loading a group for the engine");
                        ctx.run_later(std::time::Duration::from_secs(1), |_, ctx| ctx.stop());
                    }
                }
                if act.group.is_some() {
                    act.deps.group_actors.fetch_add(1, Ordering::Relaxed);
                    let open: Vec<GroupRunId> =
                        act.group.as_ref().map(|g| g.open.keys().copied().collect()).unwrap_or_default();
                    for id in open {
                        act.advance(id, ctx);
                    }
                    let owed = act.group.as_mut().map(|g| std::mem::take(&mut g.owed)).unwrap_or_default();
                    if !owed.is_empty() {
                        let now = act.deps.clock.now();
                        act.open(owed.into_iter().map(|d| (launch::stored_slot(d, "", now), None)).collect(), ctx);
                    }
                    act.wake(ctx);
                }
            },
        ));
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(g) = self.group.as_mut() else { return };
        if let Some(h) = g.timer.take() {
            ctx.cancel_future(h);
        }
        let Some(at) = g.clock.as_ref().and_then(ScheduleClock::next_wakeup) else { return };
        let wait = (at - self.deps.clock.now()).to_std().unwrap_or_default();
        g.timer = Some(ctx.run_later(wait, |act, ctx| act.wake(ctx)));
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        let now = self.deps.clock.now();
        let Some(g) = self.group.as_mut() else { return };
        g.timer = None;
        let gid = self.gid;
        let Some(actions) =
            super::guarded("group clock", gid, || g.clock.as_mut().map(|c| c.poll(now)).unwrap_or_default())
        else {
            ctx.stop();
            return;
        };
        let slots: Vec<(Slot, Option<Reason>)> = actions
            .into_iter()
            .map(|a| match a {
                Action::Fire(s) => (s, None),
                Action::Skip(s, r) => (s, Some(r)),
            })
            .collect();
        if !slots.is_empty() {
            self.open(slots, ctx);
        }
        self.arm(ctx);
    }

    /// A write failed (the database is away, or the lease was lost meanwhile): nothing more is
    /// done from what the actor holds, and in a moment it restarts and reads the database again,
    /// so a slot whose group run was not stored is handled again from the last one that was (run,
    /// late, or recorded as missed by the misfire policy), and open group runs carry on.
    fn reload_later(&mut self, ctx: &mut Context<Self>) {
        if let Some(g) = self.group.take() {
            if let Some(h) = g.timer {
                ctx.cancel_future(h);
            }
            self.deps.group_actors.fetch_sub(1, Ordering::Relaxed);
        }
        ctx.run_later(super::task::RELOAD_PAUSE, |_, ctx| ctx.stop());
    }

    /// Opens the group runs of slots, in order, and advances them; a slot that cannot be stored
    /// stops the ones after it.
    fn open(&mut self, slots: Vec<(Slot, Option<Reason>)>, ctx: &mut Context<Self>) {
        let Some(g) = self.group.as_ref() else { return };
        let db = self.deps.db.clone();
        let opening = Opening {
            gid: self.gid,
            instance_id: g.instance_id,
            name: g.def.name.to_string(),
            held: g.def.dependency.is_some(),
            tasks: g.tasks.clone(),
            leases: self.deps.leases.clone(),
        };
        let clock = self.deps.clock.clone();
        let opening = Arc::new(opening);
        ctx.wait(
            async move {
                let mut opened = Vec::new();
                for (slot, skip) in slots {
                    let (o, now) = (opening.clone(), clock.now());
                    match db.run(move |c| open_run(c, &o, &slot, skip.as_ref(), now)).await {
                        Ok(run) => opened.extend(run),
                        Err(e) => return (opened, Some(e)),
                    }
                }
                (opened, None)
            }
            .into_actor(self)
            .map(move |(opened, failed), act, ctx| {
                for run in opened {
                    let (id, date) = (run.id, run.slot.run_date);
                    tracing::info!(group = %act.gid, group_run = %id, run_date = %date, "group fired");
                    act.deps.fired.fetch_add(1, Ordering::Relaxed);
                    if let Some(g) = act.group.as_mut() {
                        g.open.insert(id, run);
                        act.announce(date);
                    }
                    act.advance(id, ctx);
                }
                if let Some(e) = failed {
                    tracing::warn!(group = %act.gid, error = %e, "opening a group run; the slot is handled again");
                    act.reload_later(ctx);
                }
            }),
        );
    }

    fn announce(&self, run_date: NaiveDate) {
        let Some(g) = self.group.as_ref() else { return };
        self.root.do_send(GroupRunChanged { instance_id: g.instance_id, run_date, group: g.def.name.to_string() });
    }

    /// Runs one pass over an open group run, then stores its end if it ended.
    fn advance(&mut self, id: GroupRunId, ctx: &mut Context<Self>) {
        let Some(g) = self.group.as_ref() else { return };
        let Some(run) = g.open.get(&id).cloned() else { return };
        let p = Pass {
            deps: self.deps.clone(),
            gid: self.gid,
            group_name: g.def.name.to_string(),
            instance_id: g.instance_id,
            dependency: g.def.dependency.clone(),
            tasks: g.tasks.clone(),
            flow: g.flow.clone(),
            run,
        };
        let db = self.deps.db.clone();
        let ends = self.deps.group_ends.clone();
        let (gid, clock, leases, inst) = (self.gid, self.deps.clock.clone(), self.deps.leases.clone(), g.instance_id);
        ctx.wait(
            async move {
                let done = pass(p).await;
                if let Some(status) = done.ended {
                    let id = done.run.id;
                    let now = clock.now();
                    let finished = db.run(move |c| {
                        db::transaction(c, |c| {
                            leases.fence(c, inst, now)?;
                            db::group_runs::finish(c, id, status, now)
                        })
                    });
                    match finished.await {
                        Ok(()) => {
                            let _ = ends.send(crate::alerts::GroupRunEnd {
                                group_id: gid,
                                group_run_id: id,
                                run_date: done.run.slot.run_date,
                                status,
                            });
                        }
                        Err(e) => {
                            tracing::error!(group_run = %id, error = %e, "ending a group run");
                            return Passed { ended: None, failed: true, ..done };
                        }
                    }
                }
                done
            }
            .into_actor(self)
            .map(|done, act, ctx| {
                if done.crashed {
                    ctx.stop();
                    return;
                }
                if done.failed {
                    act.reload_later(ctx);
                    return;
                }
                let date = done.run.slot.run_date;
                let Some(g) = act.group.as_mut() else { return };
                match done.ended {
                    Some(status) => {
                        tracing::info!(group = %g.def.name, group_run = %done.run.id, status = status.as_str(), "group run ended");
                        g.open.remove(&done.run.id);
                        act.announce(date);
                    }
                    None => {
                        g.open.insert(done.run.id, done.run);
                        if done.changed {
                            act.announce(date);
                        }
                    }
                }
            }),
        );
    }
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reload(ctx);
    }
}

impl Supervised for GroupActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.deps.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(group = %self.gid, "group actor restarted; reloading it from the database");
        if self.group.take().is_some() {
            self.deps.group_actors.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The group or one of its tasks changed: read it again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for GroupActor {
    type Result = ();
    fn handle(&mut self, _: Reload, ctx: &mut Context<Self>) {
        self.reload(ctx);
    }
}

/// A task changed: the group reads its members again if the task was one of them or now is.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberChanged {
    pub tid: TaskId,
    /// The task's group now (None when ungrouped or deleted).
    pub group_id: Option<GroupId>,
}

impl Handler<MemberChanged> for GroupActor {
    type Result = ();
    fn handle(&mut self, m: MemberChanged, ctx: &mut Context<Self>) {
        let was_member = self.group.as_ref().is_some_and(|g| g.tasks.values().any(|(tid, _)| *tid == m.tid));
        if was_member || m.group_id == Some(self.gid) {
            self.reload(ctx);
        }
    }
}

/// A transition of one of the group's runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberUpdate {
    pub group_run_id: GroupRunId,
    pub task_name: String,
    pub status: RunStatus,
    pub attempt: u32,
    /// An operator set this status (the only change that opens an ended group run again).
    pub modified: bool,
}

impl Handler<MemberUpdate> for GroupActor {
    type Result = ();
    fn handle(&mut self, u: MemberUpdate, ctx: &mut Context<Self>) {
        let Some(g) = self.group.as_mut() else { return };
        if let Some(run) = g.open.get_mut(&u.group_run_id) {
            if let Some(m) = run.members.get_mut(&u.task_name) {
                m.status = u.status;
                m.attempt = u.attempt;
            }
            self.advance(u.group_run_id, ctx);
            return;
        }
        // A run of an ended group run changed: when an operator modified its status, the group
        // run is opened again (dependants may proceed, or the outcome change).
        if !u.modified {
            return;
        }
        let (db, id) = (self.deps.db.clone(), u.group_run_id);
        ctx.wait(
            async move {
                db.run(move |c| {
                    let row = db::group_runs::get(c, id)?;
                    if row.status == RunStatus::Skipped {
                        return Ok(None);
                    }
                    open_run_from_db(c, &row).map(Some)
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let Ok(Some(run)) = res else { return };
                let Some(g) = act.group.as_mut() else { return };
                g.open.insert(id, run);
                act.advance(id, ctx);
            }),
        );
    }
}

/// Another group of the instance opened or ended a group run on a run date.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DateChanged {
    pub run_date: NaiveDate,
    pub group: String,
}

impl Handler<DateChanged> for GroupActor {
    type Result = ();
    fn handle(&mut self, d: DateChanged, ctx: &mut Context<Self>) {
        let Some(g) = self.group.as_ref() else { return };
        if g.def.name.as_str() == d.group {
            return;
        }
        let names_it = g.def.dependency.as_ref().is_some_and(|e| e.names().contains(&d.group.as_str()));
        if !names_it {
            return;
        }
        let held: Vec<GroupRunId> =
            g.open.values().filter(|r| r.held && r.slot.run_date == d.run_date).map(|r| r.id).collect();
        if held.is_empty() && g.def.schedule.is_none() {
            // A group that follows others opens its run of the day when one of them does.
            let slot = launch::stored_slot(d.run_date, "", self.deps.clock.now());
            self.open(vec![(slot, None)], ctx);
            return;
        }
        for id in held {
            self.advance(id, ctx);
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
