//! Faults of the world around the server, over the real binaries: PostgreSQL stopped and stalled
//! (a private cluster of the test's own, so no other test loses its database). The rule: no slot
//! is dropped without a record, every run ends, no attempt runs twice, and the server says it is
//! degraded while its database is away and carries on by itself when it is back.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::ids::TaskId;
use baton_schema::run::RunStatus;
use baton_server::db::{self, DatabaseUrl, Db};
use baton_tests::{data, executions, in_ci, wait_for, Agent, PrivatePostgres, Server};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn gql(s: &Server, token: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(token), q, v).unwrap())
}

fn private_postgres() -> Option<PrivatePostgres> {
    let pg = PrivatePostgres::start();
    if pg.is_none() {
        assert!(!in_ci(), "PostgreSQL's server programs must be there in CI (cargo xtask test installs them)");
        eprintln!("skipped: PostgreSQL's server programs (initdb, pg_ctl) are not installed");
    }
    pg
}

/// A fresh database on the shared PostgreSQL server, for the tests that do not stop it; None
/// (the test is skipped) when there is none, which CI never allows.
fn shared_postgres() -> Option<String> {
    let url = baton_tests::fresh_postgres();
    if url.is_none() {
        assert!(!in_ci(), "PostgreSQL must be there in CI (cargo xtask test starts it)");
        eprintln!("skipped: BATON_TEST_DATABASE_URL is not set");
    }
    url
}

/// Whether a server's `/healthz` says it is degraded.
fn degraded(s: &Server) -> bool {
    let Ok(res) = ureq::get(&s.url("/healthz")).config().http_status_as_error(false).build().call() else {
        return false;
    };
    res.status() == 503 && res.into_body().read_to_string().is_ok_and(|b| b.contains("\"degraded\""))
}

/// Makes `n` tasks named `PREFIX_I` that fire every 2 s (misfire: run all) and append
/// `$BATON_RUN_ID $BATON_ATTEMPT` to `log`; returns their ids.
fn every_2s(s: &Server, admin: &str, prefix: &str, n: usize, log: &std::path::Path) -> Vec<i64> {
    (0..n)
        .map(|i| {
            let cmd = format!("echo \"$BATON_RUN_ID $BATON_ATTEMPT\" >> {}", log.display());
            let t = json!({ "name": format!("{prefix}_{i}"), "command": cmd, "target": "etl", "runAsUser": "root",
                            "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}, "misfirePolicy": "run_all" });
            gql(s, admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))["createTask"]
                ["tid"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Waits until `n` more attempts are in `log` than when it was called.
fn more_runs(log: &std::path::Path, n: usize, timeout: Duration) {
    let seen = executions(log).len();
    wait_for("more runs", timeout, || (executions(log).len() >= seen + n).then_some(())).unwrap();
}

/// Runs of the tasks every 2 s through the faults `faults` does, then checks that every slot from
/// the first to the last has exactly one run, every run ended (a skipped one with its reason),
/// and no attempt ran twice. Returns the lateness of each slot's start after its due time.
fn every_slot_survives(servers: usize, faults: impl FnOnce(&PrivatePostgres, &[Server], &dyn Fn(usize))) {
    let Some(pg) = private_postgres() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("baton.toml");
    std::fs::write(&config, "agent_heartbeat_seconds = 1\nagent_lost_seconds = 60\nlease_seconds = 3\n").unwrap();
    let url = pg.url();
    let args = ["--config", config.to_str().unwrap(), "--database-url", &url];
    // Their runs' steps logged, for the report of a run that did not end.
    let start = || {
        let env = [("BATON_LOG", "info")];
        Server::start_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", &args, &env).unwrap()
    };
    let fleet: Vec<Server> = (0..servers).map(|_| start()).collect();
    let s = &fleet[0];
    let admin = s.login("admin", &s.admin_password).unwrap();
    let urls: Vec<String> = fleet.iter().map(|s| s.base_url.clone()).collect();
    let agent = Agent::enrolled(s, &admin, &urls.join(","), "a1", "etl").unwrap();
    let log = scratch.path().join("executions.log");
    let tids = every_2s(s, &admin, "every2s", 10, &log);
    let more = |n: usize| more_runs(&log, n, Duration::from_secs(90));
    more(30);
    faults(&pg, &fleet, &more);
    more(30);

    // Stop scheduling, let every run end, check the invariants.
    let token = s.login("admin", &s.admin_password).unwrap();
    for tid in &tids {
        gql(s, &token, "mutation($t: Int!) { setTaskActive(tid: $t, active: false) { tid } }", json!({ "t": tid }));
    }
    let store = Db::open(DatabaseUrl::Postgres(url.clone())).unwrap();
    let all = |store: &Db| {
        let mut c = store.conn().unwrap();
        db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 100_000).unwrap()
    };
    let runs = wait_for("every run to end", Duration::from_secs(90), || {
        let runs = all(&store);
        runs.iter().all(|r| r.status.is_final()).then_some(runs)
    })
    .unwrap_or_else(|e| {
        let open: Vec<_> = all(&store)
            .into_iter()
            .filter(|r| !r.status.is_final())
            .map(|r| (r.id, r.status, r.attempt, r.scheduled_for))
            .collect();
        // What the servers and the agent said of them, for the report.
        let lines: Vec<String> = fleet.iter().flat_map(Server::stderr_lines).chain(agent.stderr_lines()).collect();
        let said: Vec<&String> = lines
            .iter()
            .filter(|l| open.iter().any(|(id, ..)| l.contains(&format!("{id} ")) || l.contains(&format!("={id}"))))
            .take(300)
            .collect();
        panic!("{e}: {open:?}\n{}", said.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"))
    });
    let executed = executions(&log);
    assert!(executed.values().all(|n| *n == 1), "an attempt ran twice: {executed:?}");
    let mut late: Vec<(NaiveDateTime, i64)> = Vec::new();
    for tid in &tids {
        let mine: Vec<_> = runs.iter().filter(|r| r.task_id == Some(TaskId(*tid))).collect();
        let mut slots: Vec<NaiveDateTime> = mine.iter().map(|r| r.scheduled_for.unwrap()).collect();
        slots.sort();
        let n = slots.len();
        slots.dedup();
        assert_eq!(n, slots.len(), "task {tid}: a slot with two runs");
        // The faults take about 40 s of 2 s slots: ten at least, however fast the runs came.
        assert!(n >= 10, "task {tid}: only {n} slots");
        let gaps: Vec<_> = slots.windows(2).filter(|w| (w[1] - w[0]).num_seconds() != 2).collect();
        assert!(gaps.is_empty(), "task {tid}: slots with no run and no record: {gaps:?}");
        for r in &mine {
            match r.status {
                RunStatus::Success => {
                    assert_eq!(executed.get(&(r.id.0, i64::from(r.attempt))), Some(&1), "run {} ran once", r.id);
                    let started = r.triggered_at.unwrap();
                    late.push((r.scheduled_for.unwrap(), (started - r.scheduled_for.unwrap()).num_milliseconds()));
                }
                RunStatus::Skipped => assert!(r.reason.is_some(), "run {} skipped with no reason", r.id),
                other => panic!("run {} of task {tid} ended {other:?}: {:?}", r.id, r.reason),
            }
        }
    }
    late.sort();
    let worst = late.iter().map(|(_, ms)| *ms).max().unwrap_or_default();
    let mut ms: Vec<i64> = late.iter().map(|(_, ms)| *ms).collect();
    ms.sort_unstable();
    eprintln!(
        "{servers} server(s): {} slots ran; lateness p50 {} ms, worst {worst} ms",
        ms.len(),
        ms.get(ms.len() / 2).copied().unwrap_or_default()
    );
}

/// How long after PostgreSQL came back the first slot due after that started.
fn first_slot_after(store_url: &str, back: DateTime<Utc>) -> Option<i64> {
    let store = Db::open(DatabaseUrl::Postgres(store_url.to_string())).ok()?;
    let mut c = store.conn().ok()?;
    let runs = db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 100_000).ok()?;
    runs.iter()
        .filter(|r| r.scheduled_for.is_some_and(|s| s.and_utc() >= back) && r.triggered_at.is_some())
        .filter_map(|r| Some((r.scheduled_for?, r.triggered_at?)))
        .min()
        .map(|(slot, started)| (started - slot).num_milliseconds())
}

/// Stops PostgreSQL for 8 s, twice; each time the server says it is degraded meanwhile.
fn stop_twice(pg: &PrivatePostgres, fleet: &[Server], more: &dyn Fn(usize)) {
    for round in 0..2 {
        let stopped = Instant::now();
        pg.stop();
        wait_for("the server to say it is degraded", Duration::from_secs(8), || degraded(&fleet[0]).then_some(()))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        std::thread::sleep(Duration::from_secs(8).saturating_sub(stopped.elapsed()));
        pg.resume_service();
        let back = Utc::now();
        wait_for("the server to say it is well", Duration::from_secs(15), || (!degraded(&fleet[0])).then_some(()))
            .unwrap();
        more(20);
        let late = wait_for("a slot due after PostgreSQL came back to start", Duration::from_secs(30), || {
            first_slot_after(&pg.url(), back)
        })
        .unwrap();
        eprintln!("round {round}: the first slot due after PostgreSQL came back started {late} ms after it was due");
    }
}

/// SIGSTOPs PostgreSQL for 15 s: connections stay open and nothing answers.
fn stall(pg: &PrivatePostgres, fleet: &[Server], more: &dyn Fn(usize)) {
    pg.stall(true);
    let stalled = Instant::now();
    wait_for("a server to say it is degraded", Duration::from_secs(14), || fleet.iter().any(degraded).then_some(()))
        .unwrap();
    std::thread::sleep(Duration::from_secs(15).saturating_sub(stalled.elapsed()));
    pg.stall(false);
    more(20);
}

#[test]
fn a_database_stopped_twice_and_stalled_loses_no_slot_on_one_server() {
    every_slot_survives(1, |pg, fleet, more| {
        stop_twice(pg, fleet, more);
        stall(pg, fleet, more);
    });
}

#[test]
fn a_database_stopped_and_stalled_loses_no_slot_under_three_servers() {
    every_slot_survives(3, |pg, fleet, more| {
        stop_twice(pg, fleet, more);
        stall(pg, fleet, more);
    });
}

/// SIGTERM to the lease holder: it stops taking work, gives its leases back at once (a survivor
/// fires the next slot within a second or two, not after the 10 s lease), lets its agent move to
/// another server and exits within its `shutdown_seconds`. A rolling restart of three servers,
/// each stopped and started again in turn, leaves no slot more than 3 s late, none lost, none
/// run twice.
#[test]
fn a_graceful_stop_hands_over_at_once_and_a_rolling_restart_loses_nothing() {
    let Some(url) = shared_postgres() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("baton.toml");
    std::fs::write(&config, "agent_heartbeat_seconds = 1\nlease_seconds = 10\nshutdown_seconds = 5\n").unwrap();
    let args = ["--config", config.to_str().unwrap(), "--database-url", &url];
    // Their runs' steps logged, for the report of a run that did not end.
    let start = |listen: &str| {
        let env = [("BATON_LOG", "info")];
        Server::start_env(tempfile::tempdir().unwrap(), listen, &args, &env).unwrap()
    };
    let mut fleet: Vec<Server> = (0..3).map(|_| start("127.0.0.1:0")).collect();
    let password = fleet[0].admin_password.clone();
    let admin = fleet[0].login("admin", &password).unwrap();
    let urls: Vec<String> = fleet.iter().map(|s| s.base_url.clone()).collect();
    let agent = Agent::enrolled(&fleet[0], &admin, &urls.join(","), "a1", "etl").unwrap();
    let log = scratch.path().join("executions.log");
    let tids = every_2s(&fleet[0], &admin, "rolling", 4, &log);
    // What the servers stopped so far said (their logs go with them).
    let mut said: Vec<String> = Vec::new();
    let more = |n: usize| more_runs(&log, n, Duration::from_secs(60));
    more(12);
    let store = Db::open(DatabaseUrl::Postgres(url.clone())).unwrap();
    let holder = || baton_tests::lease_holder_pid(&store);
    let mut exits = Vec::new();
    let mut takeovers = Vec::new();
    // Four stops: the holder, then each server in turn, each started again (a rolling restart).
    for round in 0..4 {
        let victim = match round {
            0 => fleet.iter().position(|s| Some(s.pid()) == holder()).unwrap(),
            _ => round - 1,
        };
        let was_holder = Some(fleet[victim].pid()) == holder();
        let stopped_at = Utc::now();
        let (took, clean) = fleet[victim].terminate(Duration::from_secs(15)).unwrap();
        assert!(clean, "round {round}: the server exited with a failure");
        assert!(took <= Duration::from_secs(6), "round {round}: SIGTERM to exit took {took:?}");
        exits.push(took.as_millis());
        if was_holder {
            let first = wait_for("a survivor's first slot", Duration::from_secs(15), || {
                let mut c = store.conn().ok()?;
                let runs = db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 1000).ok()?;
                runs.iter()
                    .filter_map(|r| Some((r.scheduled_for?.and_utc(), r.triggered_at?.and_utc())))
                    .filter(|(slot, _)| *slot > stopped_at)
                    .map(|(_, started)| started)
                    .min()
            })
            .unwrap();
            takeovers.push((first - stopped_at).num_milliseconds());
        }
        // Back on the same address: the agent knows the servers by their URLs.
        let addr = fleet[victim].base_url.trim_start_matches("http://").to_string();
        said.extend(fleet[victim].stderr_lines());
        fleet[victim] = start(&addr);
        more(8);
    }
    eprintln!(
        "SIGTERM to exit (ms): {exits:?}; SIGTERM of the lease holder to a survivor's first slot (ms): {takeovers:?}"
    );
    assert!(!takeovers.is_empty(), "the lease holder was stopped at least once");

    let token = fleet[0].login("admin", &password).unwrap();
    for tid in &tids {
        gql(
            &fleet[0],
            &token,
            "mutation($t: Int!) { setTaskActive(tid: $t, active: false) { tid } }",
            json!({ "t": tid }),
        );
    }
    let all = |store: &Db| {
        let mut c = store.conn().unwrap();
        db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 100_000).unwrap()
    };
    let runs = wait_for("every run to end", Duration::from_secs(60), || {
        let runs = all(&store);
        runs.iter().all(|r| r.status.is_final()).then_some(runs)
    })
    .unwrap_or_else(|e| {
        let open: Vec<_> = all(&store).into_iter().filter(|r| !r.status.is_final()).map(|r| (r.id, r.status)).collect();
        said.extend(fleet.iter().flat_map(Server::stderr_lines).chain(agent.stderr_lines()));
        let about_run =
            |l: &String| open.iter().any(|(id, _)| l.contains(&format!("{id} ")) || l.contains(&format!("={id}")));
        // The agent's events for those runs, then every acknowledgement and replay from the
        // first of them on (acknowledgements are cumulative and name no run), and what the
        // servers said of agents coming and going.
        let first_seq = said
            .iter()
            .filter(|l| about_run(l) && l.contains("sending seq="))
            .filter_map(|l| l.split("seq=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
            .min()
            .unwrap_or(u64::MAX);
        let acked_after = |l: &String| {
            l.split("acknowledged seq=")
                .nth(1)
                .and_then(|r| r.trim().parse::<u64>().ok())
                .is_some_and(|n| n >= first_seq)
        };
        let about: Vec<&String> = said
            .iter()
            .filter(|l| about_run(l) || acked_after(l) || l.contains("replaying") || l.contains("stopping"))
            .take(300)
            .collect();
        panic!("{e}: {open:?}\n{}", about.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"))
    });
    let executed = executions(&log);
    assert!(executed.values().all(|n| *n == 1), "an attempt ran twice: {executed:?}");
    let mut worst = 0;
    for tid in &tids {
        let mut mine: Vec<_> = runs.iter().filter(|r| r.task_id == Some(TaskId(*tid))).collect();
        mine.sort_by_key(|r| r.scheduled_for);
        let slots: Vec<NaiveDateTime> = mine.iter().map(|r| r.scheduled_for.unwrap()).collect();
        let gaps: Vec<_> = slots.windows(2).filter(|w| (w[1] - w[0]).num_seconds() != 2).collect();
        assert!(gaps.is_empty(), "task {tid}: slots with no run or two: {gaps:?}");
        for r in mine {
            assert_eq!(r.status, RunStatus::Success, "run {} of task {tid}: {:?}", r.id, r.reason);
            let late = (r.triggered_at.unwrap() - r.scheduled_for.unwrap()).num_milliseconds();
            assert!(late <= 3000, "run {} of task {tid} started {late} ms after its slot", r.id);
            worst = worst.max(late);
        }
    }
    eprintln!("rolling restart: the latest slot started {worst} ms after it was due");
}

/// The server's SQLite database on a small tmpfs that fills: writes are INTERNAL errors to the
/// API (nothing half-stored), and once space returns the server carries on by itself.
#[test]
fn a_full_disk_under_sqlite_is_an_error_and_the_server_recovers_when_space_returns() {
    let Some(disk) = baton_tests::SmallDisk::mount("8m") else {
        assert!(!in_ci(), "CI runs as root: the tmpfs must mount");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data_dir = tempfile::tempdir_in(disk.dir.path()).unwrap();
    let s = Server::start_in(data_dir, &[]).unwrap();
    let admin = s.login("admin", &s.admin_password).unwrap();
    let filler = disk.dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; usize::try_from(disk.free().saturating_sub(64 * 1024)).unwrap()]).unwrap();
    let create = |i: usize| {
        let t = json!({ "name": format!("t{i}"), "command": "true", "target": "etl", "runAsUser": "root",
                        "description": "x".repeat(4000) });
        s.graphql_as(Some(&admin), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))
            .unwrap()
    };
    let refused = (0..200).map(create).find(|res| res["errors"].is_array()).expect("the disk filled up");
    assert_eq!(baton_tests::error_code(&refused).as_deref(), Some("INTERNAL"), "{refused}");
    std::fs::remove_file(&filler).unwrap();
    let made = wait_for("a write to work again", Duration::from_secs(20), || {
        let res = create(1000);
        res["data"]["createTask"]["tid"].as_i64()
    })
    .unwrap();
    assert!(made > 0);
    let health = ureq::get(&s.url("/healthz")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(health.contains("\"ok\""), "{health}");
}

/// An agent connection to `s` that said `hello`; its first answer.
fn agent_socket(s: &Server, hello: &Value) -> baton_tests::AgentSocket {
    let (mut ws, _) = tungstenite::connect(s.url("/agent").replacen("http", "ws", 1).as_str()).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_mut() {
        tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    }
    ws.send(tungstenite::Message::Text(hello.to_string().into())).unwrap();
    ws
}

/// The next frame of `ws` within `within` (None when none came).
fn frame_within(ws: &mut baton_tests::AgentSocket, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("the agent connection broke: {e}"),
        }
    }
    None
}

fn event(seq: u64, run: i64, attempt: u64, event: Value) -> tungstenite::Message {
    let frame = json!({ "type": "event", "seq": seq, "run_id": run, "attempt": attempt, "event": event });
    tungstenite::Message::Text(frame.to_string().into())
}

/// An agent event is acknowledged only once what it changes is stored, even when the agent
/// reconnects while the first write of it hangs (a database stalled for that connection): the
/// replay on the new connection is judged against the run as stored, never against a step still
/// being written, which may yet fail. The write hangs on a lock the test holds on the run's row;
/// reads go on.
#[test]
fn a_replayed_event_is_acknowledged_only_once_its_step_is_stored() {
    use diesel::{Connection, RunQueryDsl};
    let Some(url) = shared_postgres() else { return };
    let s = Server::start_with(&["--database-url", &url]).unwrap();
    let admin = s.login("admin", &s.admin_password).unwrap();
    let made = gql(&s, &admin, "mutation { createAgentToken(name: \"fake\") { token } }", json!({}));
    let hello = json!({ "type": "hello", "protocol": 1, "token": made["createAgentToken"]["token"], "name": "fake",
                        "hostname": "h", "queues": [], "version": "x", "os": "y", "last_acked_seq": 0,
                        "incarnation": "state-1", "attempts": [] });
    let mut first = agent_socket(&s, &hello);
    assert_eq!(frame_within(&mut first, Duration::from_secs(10)).unwrap()["type"], "welcome");
    let q = "mutation { runAdhoc(agents: [\"fake\"], command: \"true\", runAsUser: \"root\", maxRunTimeSeconds: 60) { id } }";
    let run = gql(&s, &admin, q, json!({}))["runAdhoc"][0]["id"].as_i64().unwrap();
    let dispatch = std::iter::from_fn(|| frame_within(&mut first, Duration::from_secs(10)))
        .find(|f| f["type"] == "dispatch")
        .unwrap();
    assert_eq!(dispatch["run_id"], run);
    let attempt = dispatch["attempt"].as_u64().unwrap();
    let store = Db::open(DatabaseUrl::Postgres(url.clone())).unwrap();
    let status = || db::runs::get(&mut store.conn().unwrap(), baton_schema::ids::RunId(run)).unwrap().status;
    assert_eq!(status(), RunStatus::Triggered);

    // The run's row locked: storing its next step hangs.
    let mut locker = diesel::PgConnection::establish(&url).unwrap();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query(format!("SELECT id FROM runs WHERE id = {run} FOR UPDATE")).execute(&mut locker).unwrap();
    first.send(event(1, run, attempt, json!({ "kind": "accepted" }))).unwrap();
    // The agent gives up on that connection and says it again on a new one.
    let mut again = hello.clone();
    again["attempts"] = json!([{ "run_id": run, "attempt": attempt }]);
    let mut second = agent_socket(&s, &again);
    second.send(event(1, run, attempt, json!({ "kind": "accepted" }))).unwrap();
    let hung = Instant::now() + Duration::from_secs(3);
    while Instant::now() < hung {
        let Some(f) = frame_within(&mut second, Duration::from_millis(500)) else { continue };
        if f["type"] == "ack" {
            assert_ne!(status(), RunStatus::Triggered, "event {f} acknowledged before its step was stored");
        }
    }
    diesel::sql_query("COMMIT").execute(&mut locker).unwrap();
    let ack = std::iter::from_fn(|| frame_within(&mut second, Duration::from_secs(20)))
        .find(|f| f["type"] == "ack" && f["seq"].as_u64() >= Some(1))
        .expect("the event is acknowledged once stored");
    assert_eq!(status(), RunStatus::Started, "{ack}");
    // The run carries on to its end through the new connection.
    second.send(event(2, run, attempt, json!({ "kind": "spawned", "pid": 4242 }))).unwrap();
    let ended = json!({ "kind": "ended", "outcome": { "kind": "exited", "code": 0 } });
    second.send(event(3, run, attempt, ended)).unwrap();
    wait_for("the run to end", Duration::from_secs(20), || (status() == RunStatus::Success).then_some(())).unwrap();
}

/// A database that fails is no reason to turn an agent away for good: one connecting while its
/// registration cannot be written is told to try again (not refused, which would end it), and is
/// let in once the database works. The test makes the registration fail by moving the agents'
/// table away, and puts it back.
#[test]
fn an_agent_whose_registration_fails_tries_again_and_is_let_in() {
    use diesel::{Connection, RunQueryDsl};
    let Some(url) = shared_postgres() else { return };
    let s = Server::start_with(&["--database-url", &url]).unwrap();
    let admin = s.login("admin", &s.admin_password).unwrap();
    let made = gql(&s, &admin, "mutation { createAgentToken(name: \"late\") { token } }", json!({}));
    let token = made["createAgentToken"]["token"].as_str().unwrap().to_string();
    let mut dba = diesel::PgConnection::establish(&url).unwrap();
    diesel::sql_query("ALTER TABLE agents RENAME TO agents_away").execute(&mut dba).unwrap();
    let mut agent = Agent::start(&s.base_url, &token, "late", "etl").unwrap();
    let mut said = Vec::new();
    wait_for("the agent to be turned away twice", Duration::from_secs(30), || {
        said.extend(agent.stderr_lines());
        (said.iter().filter(|l| l.contains("disconnected")).count() >= 2 || !baton_tests::alive(agent.pid()))
            .then_some(())
    })
    .unwrap();
    assert!(baton_tests::alive(agent.pid()), "the agent gave up: {said:#?}");
    diesel::sql_query("ALTER TABLE agents_away RENAME TO agents").execute(&mut dba).unwrap();
    wait_for("the agent online", Duration::from_secs(30), || {
        let res = s.graphql_as(Some(&admin), "{ agents { name status } }", json!({})).ok()?;
        res["data"]["agents"].as_array()?.iter().any(|a| a["name"] == "late" && a["status"] == "ONLINE").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:#?}", agent.wait_exit(Duration::from_secs(1))));
}
