//! One actor per active, scheduled task outside any group: it sleeps until its next slot
//! (`run_later`), feeds `now` into the pure `ScheduleClock`, and carries out what it returns: a
//! run per fired slot, made once per (task, run date, slot) and handed to the driver (or frozen
//! when an operator froze the task for that day), or a Skipped run with its reason.

use super::launch::{self, Origin};
use super::EngineDeps;
use crate::db::{self, DbConn, DbResult};
use actix::prelude::*;
use baton_schema::calendar::Calendar;
use baton_schema::clock::{Action, ScheduleClock, ON_TIME};
use baton_schema::definition::TaskDef;
use baton_schema::ids::{InstanceId, RunId, TaskId};
use baton_schema::run::{Reason, RunEvent};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// A task as its actor needs it.
pub struct Loaded {
    def: TaskDef,
    tid: TaskId,
    instance_id: InstanceId,
    clock: ScheduleClock,
    timer: Option<SpawnHandle>,
}

/// How long an actor whose database work failed waits before it reads the database again.
pub const RELOAD_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// How far back the last slot handled is looked for, and so how far back a downtime's slots are
/// recorded: further than the clock's catch-up window, so a daily slot missed by a downtime
/// across midnight (its predecessor a little more than a day old) is found and handled, and the
/// slots of a downtime of up to a week are recorded (those beyond the window as one record).
pub const LAST_SLOT_LOOKBACK: Duration = Duration::days(8);

/// Where a clock starts after a (re)load: after the last slot the engine handled, so the slots of
/// a downtime (even one across midnight) go through the misfire policy, or past the clock's
/// catch-up window into one record of them all; never before the definition last changed, nor
/// more than `LAST_SLOT_LOOKBACK` back (with no slot handled since then, from there).
pub fn handled_until(now: DateTime<Utc>, changed_at: DateTime<Utc>, last_slot: Option<DateTime<Utc>>) -> DateTime<Utc> {
    last_slot.unwrap_or(now - LAST_SLOT_LOOKBACK).max(changed_at).max(now - LAST_SLOT_LOOKBACK)
}

/// Calendars by (instance, name), read once per load.
pub type CalendarCache = HashMap<(InstanceId, String), Option<Calendar>>;

pub fn calendar(
    c: &mut DbConn,
    cache: &mut CalendarCache,
    instance_id: InstanceId,
    name: &str,
) -> DbResult<Option<Calendar>> {
    let key = (instance_id, name.to_string());
    if let Some(cal) = cache.get(&key) {
        return Ok(cal.clone());
    }
    let cal = db::calendars::load(c, instance_id, name)?;
    cache.insert(key, cal.clone());
    Ok(cal)
}

/// Makes the clock of one stored task if it is active, ungrouped and scheduled.
pub fn prepare(
    c: &mut DbConn,
    row: &db::tasks::TaskRow,
    instances: &HashMap<InstanceId, String>,
    calendars: &mut CalendarCache,
    grace: Duration,
    now: DateTime<Utc>,
    last_slot: Option<DateTime<Utc>>,
) -> DbResult<Option<Loaded>> {
    if !row.active || row.group_id.is_some() || row.schedule.is_none() {
        return Ok(None);
    }
    let instance = instances.get(&row.instance_id).cloned().unwrap_or_default();
    let draft = row.to_draft(&instance, None, Vec::new())?;
    let Ok(def) = TaskDef::parse(&draft) else { return Ok(None) };
    let Some(schedule) = def.schedule.clone() else { return Ok(None) };
    let cal = match &schedule.calendar {
        Some(name) => calendar(c, calendars, row.instance_id, name.as_str())?,
        None => None,
    };
    let from = handled_until(now, db::utc(row.updated_at), last_slot);
    let clock = ScheduleClock::new(schedule, cal, def.misfire_policy, grace, from);
    // The clock holds the schedule; the definition keeps only what a run is made of.
    let mut def = def;
    def.schedule = None;
    Ok(Some(Loaded { tid: row.id, instance_id: row.instance_id, def, clock, timer: None }))
}

async fn load_task(deps: &EngineDeps, tid: TaskId) -> Result<Option<Loaded>, ()> {
    let (grace, now, leases) = (deps.grace, deps.clock.now(), deps.leases.clone());
    let res = deps
        .db
        .run(move |c| {
            let row = db::tasks::get(c, tid)?;
            // Another server schedules the instances this one holds no lease on.
            if !leases.holds(row.instance_id) {
                return Ok(None);
            }
            let instances = db::instances::list(c)?.into_iter().map(|i| (i.id, i.name)).collect();
            let last = db::runs::last_slot_of(c, Some(tid), None, now - LAST_SLOT_LOOKBACK)?;
            prepare(c, &row, &instances, &mut CalendarCache::new(), grace, now, last)
        })
        .await;
    match res {
        Ok(l) => Ok(l),
        // A task deleted meanwhile has nothing to keep.
        Err(db::DbError::NotFound) => Ok(None),
        Err(e) => {
            tracing::error!(task = %tid, error = %e, "loading a task for the engine");
            Err(())
        }
    }
}

/// Makes the run of one slot (once) and starts it, or records it as skipped. False when the slot's
/// run could not be stored (the database is away, or the lease was lost meanwhile): the slot is
/// then still to be handled, by this server after it reads the database again or by the next
/// holder of the lease.
async fn carry_out(deps: EngineDeps, tid: TaskId, instance_id: InstanceId, def: TaskDef, action: Action) -> bool {
    let (slot, skip): (_, Option<Reason>) = match action {
        Action::Fire(s) => (s, None),
        Action::Skip(s, r) => (s, Some(r)),
    };
    let now = deps.clock.now();
    let (row, spec) =
        launch::build(&def, &Origin { task_id: tid, instance_id, group: None, group_run_id: None, slot: &slot }, now);
    let reason = skip.clone();
    let (run_date, slot_at) = (slot.run_date, slot.at);
    let leases = deps.leases.clone();
    let created = deps
        .db
        .write(move |c| {
            db::transaction(c, |c| {
                leases.fence(c, instance_id, now)?;
                let created = db::runs::create(c, &row)?;
                if let (db::runs::Created::New(id), Some(r)) = (created, &reason) {
                    record_skip(c, id, r.clone(), now, leases.owner())?;
                }
                if let db::runs::Created::New(id) = created {
                    if is_missed(slot_at, reason.as_ref(), now) {
                        note_missed(c, &row, id, slot_at, reason.is_none(), now)?;
                    }
                }
                let frozen = db::events::frozen(c, tid, run_date)?;
                Ok::<_, db::DbError>((created, frozen))
            })
        })
        .await;
    match created {
        Ok((db::runs::Created::New(id), frozen)) if skip.is_none() => {
            deps.fired.fetch_add(1, Ordering::Relaxed);
            if frozen {
                tracing::info!(task = %def.name, run = %id, slot = %slot.key(), "frozen for the day");
                if let Err(e) = deps.driver.settle(id, RunEvent::Freeze).await {
                    tracing::error!(run = %id, error = %e, "freezing a run");
                }
            } else {
                tracing::info!(task = %def.name, run = %id, slot = %slot.key(), "fired");
                deps.driver.start(id, spec).await;
            }
        }
        Ok((db::runs::Created::New(id), _)) => {
            tracing::info!(task = %def.name, run = %id, slot = %slot.key(), "skipped")
        }
        Ok((db::runs::Created::Existing(_), _)) => {
            tracing::debug!(task = %def.name, slot = %slot.key(), "slot already has its run")
        }
        Err(e) => {
            tracing::warn!(task = %def.name, slot = %slot.key(), error = %e, "creating a scheduled run; the slot is handled again");
            return false;
        }
    }
    true
}

/// Notes in the missed-runs ledger (the `events` table, kind `missed`) a slot handled late
/// because the server was down: run late, or skipped.
pub fn note_missed(
    c: &mut DbConn,
    run: &db::runs::NewRun,
    run_id: RunId,
    slot_at: DateTime<Utc>,
    ran: bool,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let late = (now - slot_at).num_seconds();
    let id = db::events::insert(
        c,
        &db::events::NewEvent {
            kind: "missed".into(),
            actor: "scheduler".into(),
            origin: "engine".into(),
            task_id: run.task_id,
            group_id: run.group_id,
            run_id: Some(run_id),
            run_date: Some(run.run_date),
            payload: format!("{{\"slot\":\"{}\",\"late_seconds\":{late}}}", run.slot),
            created_at: db::ts(now),
        },
    )?;
    let result = if ran { format!("ran {late} s late") } else { "skipped".to_string() };
    db::events::acknowledge(c, id, true, &result, now)
}

/// Whether a slot handled now was missed while the server was down.
pub fn is_missed(slot_at: DateTime<Utc>, skip: Option<&Reason>, now: DateTime<Utc>) -> bool {
    matches!(skip, Some(Reason::Missed { .. } | Reason::MissedMany { .. }))
        || (skip.is_none() && now - slot_at > ON_TIME)
}

/// Records a new (IDLE) run as Skipped with its reason, through the run machine.
pub fn record_skip(c: &mut DbConn, id: RunId, reason: Reason, now: DateTime<Utc>, server: &str) -> DbResult<()> {
    if let Err(why) = crate::driver::settle_stored(c, id, &RunEvent::Skip { reason }, now, server)? {
        tracing::error!(run = %id, %why, "skipping a new run");
    }
    Ok(())
}

pub struct TaskActor {
    tid: TaskId,
    deps: EngineDeps,
    /// Boxed: a hundred thousand idle actors keep only a pointer each when unloaded.
    loaded: Option<Box<Loaded>>,
    /// Handed over by the root when it loaded every task at once.
    preloaded: Option<Box<Loaded>>,
}

impl TaskActor {
    pub fn new(tid: TaskId, deps: EngineDeps, preloaded: Option<Loaded>) -> Self {
        Self { tid, deps, loaded: None, preloaded: preloaded.map(Box::new) }
    }

    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(l) = self.loaded.as_mut() else { return };
        if let Some(h) = l.timer.take() {
            ctx.cancel_future(h);
        }
        let Some(at) = l.clock.next_wakeup() else { return };
        let wait = (at - self.deps.clock.now()).to_std().unwrap_or_default();
        l.timer = Some(ctx.run_later(wait, |act, ctx| act.wake(ctx)));
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        let Some(l) = self.loaded.as_mut() else { return };
        l.timer = None;
        let now = self.deps.clock.now();
        let Some(actions) = super::guarded("task clock", l.tid, || l.clock.poll(now)) else {
            ctx.stop();
            return;
        };
        if actions.is_empty() {
            self.arm(ctx);
            return;
        }
        let (deps, tid, inst, def) = (self.deps.clone(), l.tid, l.instance_id, l.def.clone());
        // Slots are carried out in order, one after the other, and the clock is polled again
        // only once they are: a slot that fails stops the ones after it, so none is stored
        // after a slot that was not.
        ctx.spawn(
            async move {
                for a in actions {
                    if !carry_out(deps.clone(), tid, inst, def.clone(), a).await {
                        return false;
                    }
                }
                true
            }
            .into_actor(self)
            .map(|stored, act, ctx| if stored { act.arm(ctx) } else { act.reload_later(ctx) }),
        );
    }

    /// A slot's run could not be stored: the clock, which moved past it, is dropped, and in a
    /// moment the actor restarts and reads the database again, so the slot is handled again from
    /// the last one stored (run, late, or recorded as missed by the misfire policy).
    fn reload_later(&mut self, ctx: &mut Context<Self>) {
        if let Some(l) = self.loaded.take() {
            if let Some(h) = l.timer {
                ctx.cancel_future(h);
            }
            self.deps.actors.fetch_sub(1, Ordering::Relaxed);
        }
        ctx.run_later(RELOAD_PAUSE, |_, ctx| ctx.stop());
    }

    fn take_charge(&mut self, loaded: Option<Box<Loaded>>, ctx: &mut Context<Self>) {
        self.loaded = loaded;
        if self.loaded.is_some() {
            self.deps.actors.fetch_add(1, Ordering::Relaxed);
            self.wake(ctx);
        }
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(l) = self.preloaded.take() {
            self.take_charge(Some(l), ctx);
            return;
        }
        let (deps, tid) = (self.deps.clone(), self.tid);
        ctx.wait(async move { load_task(&deps, tid).await }.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(l) => act.take_charge(l.map(Box::new), ctx),
            // The database is away: try again in a moment, through the supervisor.
            Err(()) => {
                ctx.run_later(RELOAD_PAUSE, |_, ctx| ctx.stop());
            }
        }));
    }
}

impl Supervised for TaskActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.deps.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(task = %self.tid, "task actor restarted; reloading it from the database");
        if self.loaded.take().is_some() {
            self.deps.actors.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Stops an actor for good (the root drops its address too).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for TaskActor {
    type Result = ();
    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        if self.loaded.take().is_some() {
            self.deps.actors.fetch_sub(1, Ordering::Relaxed);
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agents::{AgentHub, HeartbeatPolicy};
    use crate::db::{DatabaseUrl, Db};
    use crate::driver::Driver;
    use baton_schema::definition::TaskDraft;
    use baton_schema::schedule::ScheduleDraft;

    /// Makes the actor's machine panic, as a bug would.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Crash;

    impl Handler<Crash> for TaskActor {
        type Result = ();
        fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
            if super::super::guarded("test", self.tid, || panic!("a bug in the machine")).is_none() {
                ctx.stop();
            }
        }
    }

    /// Whether the actor holds its task with a timer set.
    #[derive(Message)]
    #[rtype(result = "bool")]
    struct Armed;

    impl Handler<Armed> for TaskActor {
        type Result = bool;
        fn handle(&mut self, _: Armed, _: &mut Context<Self>) -> bool {
            self.loaded.as_ref().is_some_and(|l| l.timer.is_some())
        }
    }

    async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !f().await {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Down from 23:57 to 00:12 (last slot handled: 23:55): the slots of yesterday evening go
    /// through the misfire policy like the others, instead of being neither run nor recorded.
    #[test]
    fn a_downtime_across_midnight_is_handled_by_the_misfire_policy() {
        use baton_schema::clock::{Action, ScheduleClock};
        use baton_schema::definition::MisfirePolicy;
        use baton_schema::schedule::Schedule;
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let draft = ScheduleDraft { cron: Some("*/5 * * * *".into()), timezone: "UTC".into(), ..Default::default() };
        let schedule = Schedule::parse(&draft).unwrap();
        let (now, changed) = (t("2027-03-02T00:12:00Z"), t("2027-02-01T09:00:00Z"));
        let from = handled_until(now, changed, Some(t("2027-03-01T23:55:00Z")));
        assert_eq!(from, t("2027-03-01T23:55:00Z"));
        let mut clock = ScheduleClock::new(schedule, None, MisfirePolicy::RunAll, Duration::minutes(15), from);
        let got: Vec<(String, bool)> = clock
            .poll(now)
            .into_iter()
            .map(|a| match a {
                Action::Fire(s) => (s.key(), true),
                Action::Skip(s, _) => (s.key(), false),
            })
            .collect();
        // 23:55 was handled before the stop; the slots after it, on the next day, run.
        let want: Vec<(String, bool)> =
            ["2027-03-02T00:00:00", "2027-03-02T00:05:00", "2027-03-02T00:10:00"].map(|k| (k.to_string(), true)).into();
        assert_eq!(got, want);

        // Last handled 23:40: yesterday's 23:45, 23:50 and 23:55 (27 to 17 minutes late, past the
        // 15 minutes of grace) are skipped as missed; today's slots run late.
        let from = handled_until(now, changed, Some(t("2027-03-01T23:40:00Z")));
        let mut clock = ScheduleClock::new(
            Schedule::parse(&draft).unwrap(),
            None,
            MisfirePolicy::RunAll,
            Duration::minutes(15),
            from,
        );
        let got: Vec<(String, bool)> = clock
            .poll(now)
            .into_iter()
            .map(|a| match a {
                Action::Fire(s) => (s.key(), true),
                Action::Skip(s, r) => {
                    assert!(matches!(r, Reason::Missed { .. }), "{r:?}");
                    (s.key(), false)
                }
            })
            .collect();
        let keys: Vec<(&str, bool)> = got.iter().map(|(k, f)| (k.as_str(), *f)).collect();
        assert_eq!(
            keys,
            [
                ("2027-03-01T23:45:00", false),
                ("2027-03-01T23:50:00", false),
                ("2027-03-01T23:55:00", false),
                ("2027-03-02T00:00:00", true),
                ("2027-03-02T00:05:00", true),
                ("2027-03-02T00:10:00", true),
            ]
        );

        // With nothing handled in the look-back, from its start (or the change, if later): the
        // slots of a downtime of days are recorded; never before the look-back.
        assert_eq!(handled_until(now, changed, None), now - LAST_SLOT_LOOKBACK);
        assert_eq!(handled_until(now, now - Duration::minutes(3), None), now - Duration::minutes(3));
        let days_ago = Some(t("2027-02-27T00:00:00Z"));
        assert_eq!(handled_until(now, changed, days_ago), t("2027-02-27T00:00:00Z"));
        let long_ago = Some(t("2027-02-10T00:00:00Z"));
        assert_eq!(handled_until(now, changed, long_ago), now - LAST_SLOT_LOOKBACK);
    }

    #[test]
    fn a_panicking_actor_is_restarted_by_its_supervisor_and_reloads_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
        let mut draft = TaskDraft::new("hourly", "true", "etl", "batch");
        draft.schedule =
            Some(ScheduleDraft { cron: Some("0 * * * *".into()), timezone: "UTC".into(), ..Default::default() });
        let def = TaskDef::parse(&draft).unwrap();
        let tid = {
            let mut c = db.conn().unwrap();
            let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
            db::tasks::insert(&mut c, inst, None, &def, Utc::now()).unwrap()
        };
        actix::System::new().block_on(async move {
            let hub = AgentHub::new(db.clone(), HeartbeatPolicy::default(), crate::clock::system(), None);
            let leases = crate::lease::Leases::named("test".into());
            let driver = Driver::new(
                db.clone(),
                hub,
                Duration::seconds(60),
                1 << 20,
                crate::clock::system(),
                leases.clone(),
                crate::vault::Vault::empty(),
            );
            let keeper = crate::lease::LeaseKeeper::new(leases.clone(), Duration::seconds(3600));
            keeper.round(&mut db.conn().unwrap(), Utc::now()).unwrap();
            let deps = EngineDeps::new(db, driver, Duration::minutes(15), leases);
            let d = deps.clone();
            let addr = Supervisor::start(move |_| TaskActor::new(tid, d, None));
            until("the task to be armed", async || addr.send(Armed).await.unwrap_or(false)).await;
            assert_eq!(deps.actors.load(Ordering::Relaxed), 1);

            addr.do_send(Crash);
            until("the restart", async || deps.restarts.load(Ordering::Relaxed) == 1).await;
            until("the task to be armed again", async || addr.send(Armed).await.unwrap_or(false)).await;
            assert_eq!(deps.actors.load(Ordering::Relaxed), 1, "counted once, reloaded from the database");
            assert_eq!(deps.restarts.load(Ordering::Relaxed), 1);
        });
    }
}
