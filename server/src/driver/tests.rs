//! The driver on a simulated clock: runs carried on after a restart, retried and expired at
//! their time with the limits they were made with.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::agents::{AgentHub, HeartbeatPolicy};
use crate::clock::ManualClock;
use crate::db::DatabaseUrl;
use baton_schema::ids::{InstanceId, RunId, TaskId};
use baton_schema::run::Reason;
use std::collections::BTreeMap;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn job() -> JobSpec {
    JobSpec {
        task: "flaky".into(),
        command: "false".into(),
        run_as_user: "batch".into(),
        env: BTreeMap::from([("TOKEN".to_string(), "${C:api}".to_string())]),
        stdout_path: Some("/tmp/flaky.out".into()),
        stderr_path: None,
        max_run_time_seconds: 7,
        accept_expiry_seconds: 4,
        retry: RetryPolicy { retry_attempts: 2, retry_delay_seconds: 6 },
        target: "etl".into(),
        run_date: t(0).date_naive(),
        group_run: None,
        instance_id: None,
    }
}

/// A new (IDLE) run of `spec`'s job, made at t(0).
fn new_run(spec: &JobSpec, kind: &str, slot: &str, instance_id: Option<InstanceId>) -> db::runs::NewRun {
    let now = db::ts(t(0));
    db::runs::NewRun {
        kind: kind.into(),
        task_id: None,
        task_name: spec.task.clone(),
        instance_id,
        group_id: None,
        group_run_id: None,
        run_date: spec.run_date,
        slot: slot.into(),
        status: RunStatus::Idle,
        command: spec.command.clone(),
        target: spec.target.clone(),
        run_as_user: spec.run_as_user.clone(),
        scheduled_for: Some(now),
        created_at: now,
        updated_at: now,
        job: Some(spec.stored()),
    }
}

/// A server's driver on a simulated clock (agents lost after 60 s), named `server`, holding the
/// leases its first round at `now` takes.
fn driver_on(db: &Db, clock: &ManualClock, server: &str, now: DateTime<Utc>) -> Arc<Driver> {
    let hub = AgentHub::new(db.clone(), HeartbeatPolicy::default(), Arc::new(clock.clone()), Some(server.into()));
    let leases = crate::lease::Leases::named(server.into());
    crate::lease::LeaseKeeper::new(leases.clone(), Duration::seconds(3600))
        .round(&mut db.conn().unwrap(), now)
        .unwrap();
    Driver::new(
        db.clone(),
        hub,
        Duration::seconds(60),
        1 << 20,
        Arc::new(clock.clone()),
        leases,
        crate::vault::Vault::empty(),
    )
}

fn stored(db: &Db, id: RunId) -> db::runs::RunRow {
    db::runs::get(&mut db.conn().unwrap(), id).unwrap()
}

#[test]
fn a_stored_job_gives_back_the_job_it_was_made_from() {
    let spec = job();
    let row = db::runs::RunRow {
        id: RunId(1),
        kind: "scheduled".into(),
        task_id: Some(TaskId(1)),
        task_name: spec.task.clone(),
        instance_id: Some(InstanceId(1)),
        group_id: None,
        group_run_id: None,
        run_date: spec.run_date,
        slot: "s".into(),
        status: RunStatus::Idle,
        attempt: 0,
        reason: None,
        command: spec.command.clone(),
        target: spec.target.clone(),
        run_as_user: spec.run_as_user.clone(),
        agent_id: None,
        pid: None,
        exit_code: None,
        scheduled_for: None,
        triggered_at: None,
        started_at: None,
        ended_at: None,
        stdout_bytes: 0,
        stderr_bytes: 0,
        output_truncated_bytes: 0,
        created_at: db::ts(t(0)),
        updated_at: db::ts(t(0)),
        job: Some(spec.stored()),
        terminate_by: None,
        adhoc_instances: None,
    };
    let back = JobSpec::of_row(&row).unwrap();
    assert_eq!(back.stored(), spec.stored());
    assert_eq!(back.env["TOKEN"], "${C:api}", "credentials stay references, resolved at each dispatch");
    assert_eq!((back.max_run_time_seconds, back.retry), (7, spec.retry));
    assert!(JobSpec::of_row(&db::runs::RunRow { job: None, ..row }).is_none());
}

/// The server stopped while a failed run waited for its retry: a new driver, on a simulated
/// clock, retries it at its time (not before), with the limits it was made with.
#[test]
fn a_run_waiting_for_its_retry_is_carried_on_after_a_restart_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    let id = {
        let mut c = db.conn().unwrap();
        let now = db::ts(t(0));
        let new = new_run(&spec, "forced", "force-1", None);
        let id = db::runs::create(&mut c, &new).unwrap().id();
        let waiting = Reason::RetryScheduled { next_attempt: 2, at: t(6) };
        let change = db::runs::RunChange {
            status: RunStatus::Idle,
            attempt: 1,
            reason: Some(Some(db::to_json(&waiting))),
            agent_id: None,
            pid: None,
            exit_code: Some(Some(1)),
            triggered_at: None,
            started_at: None,
            ended_at: None,
            updated_at: now,
        };
        db::runs::set(&mut c, id, &change).unwrap();
        id
    };
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "test", t(1));
        driver.recover().await;

        clock.set(t(5));
        driver.tick(t(5)).await;
        let r = stored(&db, id);
        assert_eq!((r.status.as_str(), r.attempt), ("IDLE", 1), "not before its time");

        clock.set(t(6));
        driver.tick(t(6)).await;
        let r = stored(&db, id);
        assert_eq!((r.status.as_str(), r.attempt), ("TRIGGERED", 2), "retried at its time");

        // No agent serves `etl`: the stored accept expiry (4 s, not a default) ends the attempt,
        // and the stored policy (2 retries, 6 s apart) schedules the third.
        clock.set(t(9));
        driver.tick(t(9)).await;
        assert_eq!(stored(&db, id).status, RunStatus::Triggered);
        clock.set(t(10));
        driver.tick(t(10)).await;
        let r = stored(&db, id);
        assert_eq!((r.status.as_str(), r.attempt), ("IDLE", 2), "{r:?}");
        let reason: Reason = serde_json::from_str(r.reason.as_deref().unwrap()).unwrap();
        assert_eq!(reason, Reason::RetryScheduled { next_attempt: 3, at: t(16) });
    });
}

/// A run made but never dispatched when the server stopped is dispatched by the next one.
#[test]
fn a_run_made_but_never_sent_is_dispatched_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    let new = new_run(&spec, "scheduled", "2027-01-15T08:00:00", None);
    let id = db::runs::create(&mut db.conn().unwrap(), &new).unwrap().id();
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "test", t(1));
        driver.recover().await;
        let r = stored(&db, id);
        assert_eq!((r.status.as_str(), r.attempt), ("TRIGGERED", 1), "dispatched, waiting for an agent");
        clock.set(t(5));
        driver.tick(t(5)).await;
        let r = stored(&db, id);
        assert_eq!((r.status.as_str(), r.attempt), ("IDLE", 1), "accept expired after the stored 4 s: {r:?}");
    });
}

/// A run whose agent has not been heard from (through any server) for `agent_lost_after` fails
/// with `agent lost` at the next sweep of its instance's lease holder, and not before.
#[test]
fn a_run_whose_agent_went_silent_is_lost_at_its_time_by_the_lease_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    let (id, instance, _) = running_on_silent_agent(&db, &spec);
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "holder", t(1));
        assert!(driver.leases.holds(instance));
        // Another server, which holds no lease on the instance, judges nothing.
        let bystander = driver_on(&db, &clock, "bystander", t(1));
        assert!(!bystander.leases.holds(instance));

        clock.set(t(59));
        driver.sweep(t(59)).await;
        assert_eq!(stored(&db, id).status, RunStatus::Running, "heard from 59 s ago: not lost yet");
        clock.set(t(61));
        bystander.sweep(t(61)).await;
        assert_eq!(stored(&db, id).status, RunStatus::Running, "not the bystander's to judge");
        driver.sweep(t(61)).await;
        let r = stored(&db, id);
        assert_eq!(r.status, RunStatus::Failed);
        let reason: Reason = serde_json::from_str(r.reason.as_deref().unwrap()).unwrap();
        assert_eq!(reason, Reason::AgentLost);
    });
}

/// A run of `spec` (of the `default` instance) stored as running on agent `a1`, last heard from
/// at t(0): its id, its instance and the agent's id.
fn running_on_silent_agent(db: &Db, spec: &JobSpec) -> (RunId, InstanceId, AgentId) {
    let mut c = db.conn().unwrap();
    let instance = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
    let reg = db::agents::Registration {
        name: "a1",
        hostname: "h",
        queues: &[],
        version: "v",
        os: "linux",
        incarnation: "i1",
    };
    let agent = db::agents::register(&mut c, &reg, t(0)).unwrap().0.id;
    let now = db::ts(t(0));
    let new = db::runs::NewRun {
        job: Some(
            JobSpec { retry: RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 }, ..spec.clone() }.stored(),
        ),
        ..new_run(spec, "forced", "force-2", Some(instance))
    };
    let id = db::runs::create(&mut c, &new).unwrap().id();
    let running = db::runs::RunChange {
        status: RunStatus::Running,
        attempt: 1,
        reason: None,
        agent_id: Some(Some(agent)),
        pid: Some(Some(42)),
        exit_code: None,
        triggered_at: Some(Some(now)),
        started_at: Some(Some(now)),
        ended_at: None,
        updated_at: now,
    };
    db::runs::set(&mut c, id, &running).unwrap();
    (id, instance, agent)
}

/// The sweep reads the queue a page at a time and moves on to the next page: a run this server
/// must act on is reached however many runs it cannot act on (of an instance another server
/// holds) come before it.
#[test]
fn a_run_behind_a_page_of_other_servers_runs_is_still_reached() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "holder", t(1));
        let busy = db::instances::ensure(&mut db.conn().unwrap(), "busy", t(1)).unwrap().id;
        let other = driver_on(&db, &clock, "other", t(1));
        assert!(other.leases.holds(busy) && !driver.leases.holds(busy));
        // A full page and one of the other server's runs waiting for it, before this server's.
        db::transaction(&mut db.conn().unwrap(), |c| {
            for i in 0..=queue::SWEEP_LIMIT {
                db::runs::create(c, &new_run(&spec, "forced", &format!("force-busy-{i}"), Some(busy)))?;
            }
            Ok::<_, db::DbError>(())
        })
        .unwrap();
        let (id, ..) = running_on_silent_agent(&db, &spec);
        clock.set(t(61));
        driver.sweep(t(61)).await;
        assert_eq!(stored(&db, id).status, RunStatus::Running, "the first page is the other server's runs");
        driver.sweep(t(61)).await;
        assert_eq!(stored(&db, id).status, RunStatus::Failed, "the next sweep reads the next page");
    });
}

/// An agent's event for a run this server does not hold (it let go of it) is judged against the
/// run as stored: a run whose current attempt is on that agent is taken over and the event
/// applied, never acknowledged away; a run that moved on (another attempt, another agent, ended)
/// is not the agent's any more.
#[test]
fn an_event_for_a_run_let_go_of_is_judged_against_the_run_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    let (id, _, agent) = running_on_silent_agent(&db, &spec);
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "holder", t(1));
        let ended = AgentEvent::Ended { outcome: Outcome::Exited { code: 0 } };
        assert!(driver.on_agent_event("a1", id, 1, ended.clone()).is_none(), "not held");
        assert_eq!(driver.take_over("a1", agent, id, 2).await, Ok(false), "another attempt");
        assert_eq!(driver.take_over("a1", AgentId(agent.0 + 1), id, 1).await, Ok(false), "another agent");
        assert_eq!(driver.take_over("a1", agent, RunId(id.0 + 100), 1).await, Ok(false), "no such run");
        assert_eq!(driver.take_over("a1", agent, id, 1).await, Ok(true));
        let stored_ok = driver.on_agent_event("a1", id, 1, ended).expect("held now");
        assert!(stored_ok.await, "stored");
        assert_eq!(stored(&db, id).status, RunStatus::Success);
        assert_eq!(driver.take_over("a1", agent, id, 1).await, Ok(false), "ended: the agent's no more");
    });
}

/// An agent's event that memory refuses while the step before it is still being written is
/// acknowledged only once that write is stored: here the write fails (another server moved the
/// run meanwhile), so the event is not acknowledged and comes again.
#[test]
fn an_event_judged_against_a_step_not_yet_stored_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let spec = job();
    let (id, _, agent) = running_on_silent_agent(&db, &spec);
    actix::System::new().block_on(async move {
        let clock = ManualClock::at(t(1));
        let driver = driver_on(&db, &clock, "holder", t(1));
        assert_eq!(driver.take_over("a1", agent, id, 1).await, Ok(true));
        // Another server ends the run; this one, not knowing, fails it as lost.
        let now = db::ts(t(1));
        let ended = db::runs::RunChange {
            status: RunStatus::Success,
            attempt: 1,
            reason: None,
            agent_id: Some(Some(agent)),
            pid: None,
            exit_code: Some(Some(0)),
            triggered_at: None,
            started_at: None,
            ended_at: Some(Some(now)),
            updated_at: now,
        };
        db::runs::set(&mut db.conn().unwrap(), id, &ended).unwrap();
        let lost = driver.apply_now(id, RunEvent::AgentLost, None).expect("applied in memory");
        // The agent's end, judged against memory (already failed): refused there.
        let end = AgentEvent::Ended { outcome: Outcome::Exited { code: 0 } };
        let ack = driver.on_agent_event("a1", id, 1, end).expect("the run is held");
        assert_eq!(lost.await, Written::Refused);
        assert!(!ack.await, "acknowledged although the step it was judged against was never stored");
    });
}

/// A run of `spec` stepped `events.len()` times through the run machine (as an operator's
/// freezes would be), each step stored as its own write: the run's id.
fn stepped_run(db: &Db, spec: &JobSpec, events: &[RunEvent]) -> RunId {
    let mut c = db.conn().unwrap();
    let id = db::runs::create(&mut c, &new_run(spec, "forced", "force-feed", None)).unwrap().id();
    for (i, e) in (1..).zip(events) {
        let done = settle_stored(&mut c, id, e, t(i), "elsewhere").unwrap().unwrap();
        assert_eq!(done.first_seq, i32::try_from(i).unwrap(), "each write tells the seq it stored");
    }
    id
}

/// The next update a subscriber gets, within a deadline: its seq and status.
async fn next(rx: &mut broadcast::Receiver<RunUpdate>) -> (i32, RunStatus) {
    let u = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    (u.seq, u.transition.to)
}

fn update(db: &Db, run_id: RunId, seq: i32) -> RunUpdate {
    let row =
        db::run_transitions::of_run(&mut db.conn().unwrap(), run_id).unwrap().remove(usize::try_from(seq - 1).unwrap());
    RunUpdate { run_id, task_name: "flaky".into(), group_run: None, seq, transition: row.transition() }
}

/// A server publishes its own steps as soon as they are stored and other servers' steps when
/// it reads them: a run's later step can come first. Subscribers still get every step of the
/// run in order, once.
#[test]
fn a_runs_steps_reach_subscribers_in_order_once_whichever_comes_first() {
    use RunStatus::{Frozen, Idle};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let steps = [RunEvent::Freeze, RunEvent::Unfreeze, RunEvent::Freeze, RunEvent::Unfreeze];
    let id = stepped_run(&db, &job(), &steps);
    actix::System::new().block_on(async move {
        let feed = feed::RunFeed::new(db.clone());
        let mut rx = feed.subscribe();
        feed.publish(update(&db, id, 1));
        assert_eq!(next(&mut rx).await, (1, Frozen));
        // Step 3 comes before step 2: step 2 is read from the database and goes first.
        feed.publish(update(&db, id, 3));
        assert_eq!(next(&mut rx).await, (2, Idle));
        assert_eq!(next(&mut rx).await, (3, Frozen));
        // Step 2 arriving late, and step 3 again, are not published twice; step 4 follows.
        feed.publish(update(&db, id, 2));
        feed.publish(update(&db, id, 3));
        feed.publish(update(&db, id, 4));
        assert_eq!(next(&mut rx).await, (4, Idle));
        assert!(rx.is_empty(), "nothing was published twice");
    });
}

/// A run first seen after this server began following the others is published from the steps
/// stored since then, not from its start (and a lone server publishes what it is handed).
#[test]
fn a_run_first_seen_mid_way_is_published_from_where_following_began() {
    use RunStatus::{Frozen, Idle};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let id = stepped_run(&db, &job(), &[RunEvent::Freeze, RunEvent::Unfreeze, RunEvent::Freeze]);
    let first = db::run_transitions::of_run(&mut db.conn().unwrap(), id).unwrap()[0].id;
    actix::System::new().block_on(async move {
        let following = feed::RunFeed::new(db.clone());
        following.following_since(first);
        let mut rx = following.subscribe();
        following.publish(update(&db, id, 3));
        assert_eq!(next(&mut rx).await, (2, Idle), "step 1 came before following began");
        assert_eq!(next(&mut rx).await, (3, Frozen));

        let alone = feed::RunFeed::new(db.clone());
        let mut rx = alone.subscribe();
        alone.publish(update(&db, id, 3));
        assert_eq!(next(&mut rx).await, (3, Frozen));
        assert!(rx.is_empty());
    });
}
