//! The scheduling engine: one supervised actix actor per active scheduled task, each a thin shell
//! around the pure `ScheduleClock` of `baton-schema`. An actor sleeps until its next slot
//! (`run_later`), feeds `now` into the clock, and carries out what it returns: a run per fired
//! slot (unique per task, run date and slot, so a restart or a race cannot make a second one),
//! handed to the run driver, or a Skipped run with its reason. The root actor starts, reloads and
//! stops task actors as definitions change.
//!
//! Not here yet: group actors and dependencies inside groups, operator events beyond force-run and
//! terminate, health and upcoming runs (the engine issue).

use crate::db::{self, Db};
use crate::driver::{Driver, JobSpec};
use crate::service::execution::expand_command;
use actix::prelude::*;
use baton_schema::calendar::Calendar;
use baton_schema::clock::{Action, ScheduleClock};
use baton_schema::definition::TaskDef;
use baton_schema::run::{Reason, RunStatus, Transition};
use baton_schema::schedule::Slot;
use chrono::{Duration, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What every task actor shares.
#[derive(Clone)]
pub struct EngineDeps {
    pub db: Db,
    pub driver: Arc<Driver>,
    /// Slots missed by less than this run (per the task's misfire policy); older ones are skipped.
    pub grace: Duration,
    pub restarts: Arc<AtomicU64>,
    pub fired: Arc<AtomicU64>,
    /// Task actors with a schedule to keep.
    pub actors: Arc<AtomicU64>,
}

/// A task as the actor needs it.
struct Loaded {
    def: TaskDef,
    tid: i64,
    instance_id: i64,
    clock: ScheduleClock,
    timer: Option<SpawnHandle>,
}

pub struct TaskActor {
    tid: i64,
    deps: EngineDeps,
    loaded: Option<Loaded>,
}

/// Reads a task and, if it is active, ungrouped and scheduled, its clock.
async fn load_task(deps: &EngineDeps, tid: i64) -> Option<Loaded> {
    let grace = deps.grace;
    let res = deps
        .db
        .run(move |c| {
            let row = db::tasks::get(c, tid)?;
            if !row.active || row.group_id.is_some() || row.schedule.is_none() {
                return Ok(None);
            }
            let instance = db::instances::get(c, row.instance_id)?.name;
            let rules = db::alert_rules::of(c, db::alert_rules::Owner::Task(tid))?
                .iter()
                .map(|r| r.to_draft())
                .collect::<Result<Vec<_>, _>>()?;
            let draft = row.to_draft(&instance, None, rules)?;
            let Ok(def) = TaskDef::parse(&draft) else { return Ok(None) };
            let Some(schedule) = def.schedule.clone() else { return Ok(None) };
            let calendar: Option<Calendar> = match &schedule.calendar {
                Some(name) => db::calendars::load(c, row.instance_id, name.as_str())?,
                None => None,
            };
            // Handle slots from the start of today (downtime), but not from before the definition
            // was last changed.
            let tz = schedule.timezone;
            let today = Utc::now().with_timezone(&tz).date_naive();
            let midnight = tz
                .from_local_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default())
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(Utc::now);
            let from = midnight.max(db::utc(row.updated_at));
            let clock = ScheduleClock::new(schedule, calendar, def.misfire_policy, grace, from);
            Ok(Some(Loaded { tid, instance_id: row.instance_id, def, clock, timer: None }))
        })
        .await;
    match res {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(task = tid, error = %e, "loading a task for the engine");
            None
        }
    }
}

/// Makes the run of one slot (once) and starts it, or records it as skipped.
async fn carry_out(deps: EngineDeps, tid: i64, instance_id: i64, def: TaskDef, action: Action) {
    let (slot, skip): (Slot, Option<Reason>) = match action {
        Action::Fire(s) => (s, None),
        Action::Skip(s, r) => (s, Some(r)),
    };
    let local = slot.local;
    let mut values: HashMap<String, String> = def.profile.iter().map(|(k, v)| (format!("E:{k}"), v.clone())).collect();
    values.insert("E:YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
    values.insert("E:HHMM".into(), local.format("%H%M").to_string());
    values.insert("T:task_name".into(), def.name.to_string());
    values.insert("T:task_id".into(), tid.to_string());
    values.insert("T:group_name".into(), String::new());
    let expand = |t: &str| expand_command(t, &values).unwrap_or_else(|_| t.to_string());
    let command = expand(&def.command);
    let now = db::ts(Utc::now());
    let new = db::runs::NewRun {
        kind: "scheduled".into(),
        task_id: Some(tid),
        task_name: def.name.to_string(),
        instance_id: Some(instance_id),
        group_id: None,
        group_run_id: None,
        run_date: slot.run_date,
        slot: slot.key(),
        status: if skip.is_some() { "SKIPPED".into() } else { "IDLE".into() },
        command: command.clone(),
        target: def.target.to_string(),
        run_as_user: def.run_as_user.to_string(),
        scheduled_for: Some(db::ts(slot.at)),
        created_at: now,
        updated_at: now,
    };
    let reason = skip.clone();
    let created = deps
        .db
        .run(move |c| {
            db::transaction(c, |c| {
                let created = db::runs::create(c, &new)?;
                if let (db::runs::Created::New(id), Some(r)) = (created, &reason) {
                    let t = Transition {
                        from: RunStatus::Idle,
                        to: RunStatus::Skipped,
                        attempt: 0,
                        at: Utc::now(),
                        reason: Some(r.clone()),
                    };
                    db::run_transitions::append(c, id, &[t])?;
                    let change = db::runs::RunChange {
                        status: "SKIPPED".into(),
                        attempt: 0,
                        reason: Some(Some(db::to_json(r))),
                        agent_id: None,
                        pid: None,
                        exit_code: None,
                        triggered_at: None,
                        started_at: None,
                        ended_at: Some(Some(db::ts(Utc::now()))),
                        updated_at: db::ts(Utc::now()),
                    };
                    db::runs::set(c, id, &change)?;
                }
                Ok::<_, db::DbError>(created)
            })
        })
        .await;
    match created {
        Ok(db::runs::Created::New(id)) if skip.is_none() => {
            deps.fired.fetch_add(1, Ordering::Relaxed);
            tracing::info!(task = %def.name, run = id, slot = %slot.key(), "fired");
            let mut env = def.profile.clone();
            env.insert("YYYYMMDD".into(), slot.run_date.format("%Y%m%d").to_string());
            env.insert("HHMM".into(), local.format("%H%M").to_string());
            let spec = JobSpec {
                task: def.name.to_string(),
                command,
                run_as_user: def.run_as_user.to_string(),
                env,
                stdout_path: def.stdout_path.as_deref().map(&expand),
                stderr_path: def.stderr_path.as_deref().map(&expand),
                max_run_time_seconds: def.max_run_time_seconds,
                accept_expiry_seconds: def.accept_expiry_seconds,
                retry: def.retry,
                target: def.target.to_string(),
                run_date: slot.run_date,
            };
            deps.driver.start(id, spec).await;
        }
        Ok(db::runs::Created::New(id)) => tracing::info!(task = %def.name, run = id, slot = %slot.key(), "skipped"),
        Ok(db::runs::Created::Existing(_)) => {
            tracing::debug!(task = %def.name, slot = %slot.key(), "slot already has its run")
        }
        Err(e) => tracing::error!(task = %def.name, error = %e, "creating a scheduled run"),
    }
}

impl TaskActor {
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(l) = self.loaded.as_mut() else { return };
        if let Some(h) = l.timer.take() {
            ctx.cancel_future(h);
        }
        let Some(at) = l.clock.next_wakeup() else { return };
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        l.timer = Some(ctx.run_later(wait, |act, ctx| act.wake(ctx)));
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        let Some(l) = self.loaded.as_mut() else { return };
        l.timer = None;
        let actions = l.clock.poll(Utc::now());
        let (deps, tid, inst, def) = (self.deps.clone(), l.tid, l.instance_id, l.def.clone());
        // Slots are carried out in order, one after the other.
        ctx.spawn(
            async move {
                for a in actions {
                    carry_out(deps.clone(), tid, inst, def.clone(), a).await;
                }
            }
            .into_actor(self),
        );
        self.arm(ctx);
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (deps, tid) = (self.deps.clone(), self.tid);
        ctx.wait(async move { load_task(&deps, tid).await }.into_actor(self).map(|loaded, act, ctx| {
            act.loaded = loaded;
            if act.loaded.is_some() {
                act.deps.actors.fetch_add(1, Ordering::Relaxed);
                act.wake(ctx);
            }
        }));
    }
}

impl Supervised for TaskActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.deps.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(task = self.tid, "task actor restarted; reloading it from the database");
        if self.loaded.take().is_some() {
            self.deps.actors.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Stops a task actor for good (the root drops its address too).
#[derive(Message)]
#[rtype(result = "()")]
struct Retire;

impl Handler<Retire> for TaskActor {
    type Result = ();
    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        if self.loaded.take().is_some() {
            self.deps.actors.fetch_sub(1, Ordering::Relaxed);
        }
        ctx.stop();
    }
}

/// The root: which task actors run.
pub struct Engine {
    deps: EngineDeps,
    tasks: HashMap<i64, Addr<TaskActor>>,
}

/// A task's definition changed (or was created or deleted): start, reload or stop its actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskChanged(pub i64);

/// Many definitions changed (an import): reload everything.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadAll;

impl Engine {
    pub fn start(deps: EngineDeps) -> Addr<Engine> {
        Engine { deps, tasks: HashMap::new() }.start()
    }

    fn restart_task(&mut self, tid: i64) {
        if let Some(old) = self.tasks.remove(&tid) {
            old.do_send(Retire);
        }
        let deps = self.deps.clone();
        let addr = Supervisor::start(move |_| TaskActor { tid, deps, loaded: None });
        self.tasks.insert(tid, addr);
    }

    fn load_all(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        ctx.wait(
            async move {
                db.run(|c| {
                    let rows = db::tasks::page(
                        c,
                        &db::tasks::TaskFilter { active: Some(true), ungrouped: true, ..Default::default() },
                        None,
                        i64::MAX,
                    )?;
                    Ok(rows.into_iter().filter(|r| r.schedule.is_some()).map(|r| r.id).collect::<Vec<_>>())
                })
                .await
            }
            .into_actor(self)
            .map(|ids, act, _| match ids {
                Ok(ids) => {
                    for old in act.tasks.drain().map(|(_, a)| a).collect::<Vec<_>>() {
                        old.do_send(Retire);
                    }
                    tracing::info!(tasks = ids.len(), "engine armed");
                    for id in ids {
                        act.restart_task(id);
                    }
                }
                Err(e) => tracing::error!(error = %e, "loading tasks for the engine"),
            }),
        );
    }
}

impl Actor for Engine {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load_all(ctx);
    }
}

impl Handler<TaskChanged> for Engine {
    type Result = ();
    fn handle(&mut self, TaskChanged(tid): TaskChanged, _: &mut Context<Self>) {
        // The new actor decides from the database whether it has anything to do.
        self.restart_task(tid);
    }
}

impl Handler<ReloadAll> for Engine {
    type Result = ();
    fn handle(&mut self, _: ReloadAll, ctx: &mut Context<Self>) {
        self.load_all(ctx);
    }
}

/// Active task actors (for health).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ActorCount;

impl Handler<ActorCount> for Engine {
    type Result = usize;
    fn handle(&mut self, _: ActorCount, _: &mut Context<Self>) -> usize {
        self.tasks.len()
    }
}
