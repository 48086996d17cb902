//! Several servers on one PostgreSQL (high availability): three `baton serve` and two agents that
//! know all three URLs. The owner of the instance's lease is SIGKILLed just before a due time (a
//! survivor fires the slot within lease + 2 s), the next owner is SIGSTOPped past its lease and
//! woken (the third server ran the slots meanwhile; the stopped one stored nothing after it was
//! deposed), and a subscription on a server that schedules and dispatches nothing sees every
//! transition, in order and once, and the agents moving between the others. Every slot has one run, every run ends, no attempt runs twice.
//! A credential set through one server is there for another's dispatch at once.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::ids::RunId;
use baton_schema::run::RunStatus;
use baton_server::db::{self, DatabaseUrl, Db};
use baton_tests::{data, executions, fresh_postgres, in_ci, lease_holder_pid, wait_for, Agent, Server};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LEASE_SECONDS: i64 = 4;

fn gql(s: &Server, token: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(token), q, v).unwrap())
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn three_servers_share_one_postgresql_through_kills_and_stops() {
    let Some(url) = fresh_postgres() else {
        assert!(!in_ci(), "PostgreSQL must be there in CI (cargo xtask test starts it)");
        eprintln!("skipped: BATON_TEST_DATABASE_URL is not set");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("baton.toml");
    std::fs::write(
        &config,
        format!("agent_heartbeat_seconds = 1\nagent_lost_seconds = 60\nlease_seconds = {LEASE_SECONDS}\n"),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap(), "--database-url", &url];
    let mut servers: Vec<Option<Server>> = Vec::new();
    servers.push(Some(Server::start_with(&args).unwrap()));
    let password = servers[0].as_ref().unwrap().admin_password.clone();
    servers.push(Some(Server::start_with(&args).unwrap()));
    servers.push(Some(Server::start_with(&args).unwrap()));
    let urls: Vec<String> = servers.iter().map(|s| s.as_ref().unwrap().base_url.clone()).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.as_ref().unwrap().pid()).collect();
    let store = Db::open(DatabaseUrl::Postgres(url.clone())).unwrap();
    let owner = wait_for("a lease holder", Duration::from_secs(20), || lease_holder_pid(&store)).unwrap();
    let first_owner = pids.iter().position(|p| *p == owner).unwrap();
    // The subscriber: a server that holds no lease and that no agent connects to first.
    let quiet = (0..3).rev().find(|i| *i != first_owner).unwrap();
    let agent_urls: Vec<String> = (0..3).filter(|i| *i != quiet).chain([quiet]).map(|i| urls[i].clone()).collect();
    let admin = servers[quiet].as_ref().unwrap().login("admin", &password).unwrap();
    let q = servers[quiet].as_ref().unwrap();
    // A token enrolls one agent.
    let token = |name: &str| {
        gql(q, &admin, "mutation($n: String!) { createAgentToken(name: $n) { token } }", json!({ "n": name }))
            ["createAgentToken"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let _a1 = Agent::start(&agent_urls.join(","), &token("a1"), "a1", "etl").unwrap();
    let reversed = [agent_urls[1].clone(), agent_urls[0].clone(), agent_urls[2].clone()].join(",");
    let _a2 = Agent::start(&reversed, &token("a2"), "a2", "etl").unwrap();
    wait_for("both agents online", Duration::from_secs(30), || {
        let res = data(q.graphql_as(Some(&admin), "{ agents { name status } }", json!({})).ok()?);
        (res["agents"].as_array()?.iter().filter(|a| a["status"] == "ONLINE").count() == 2).then_some(())
    })
    .unwrap();

    // Subscribe on the quiet server before any run exists; a thread reads all along (a client
    // that stops reading is closed by the server's keep-alive).
    let mut events = subscribe(q, &admin);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let reader = std::thread::spawn(move || {
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = events.get_mut() {
            tcp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        }
        let mut got: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
        let mut agents: Vec<(String, String)> = Vec::new();
        let mut quiet_for = 0;
        // After the stop flag, read until nothing came for 2 s.
        while quiet_for < 4 {
            match events.read() {
                Ok(tungstenite::Message::Text(m)) => {
                    quiet_for = 0;
                    let v: Value = serde_json::from_str(&m).unwrap();
                    let a = &v["payload"]["data"]["agentEvents"];
                    if let (Some(name), Some(status)) = (a["name"].as_str(), a["status"].as_str()) {
                        agents.push((name.to_string(), status.to_string()));
                    }
                    let e = &v["payload"]["data"]["runEvents"];
                    if let Some(id) = e["runId"].as_i64() {
                        let to = e["to"].as_str().unwrap().to_string();
                        got.entry(id).or_default().push((to, e["attempt"].as_i64().unwrap()));
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        quiet_for += 1;
                    }
                }
                Err(e) => panic!("the subscription ended: {e}"),
            }
        }
        (got, agents)
    });
    let log = scratch.path().join("executions.log");
    let tids: Vec<i64> = (0..4)
        .map(|i| {
            let cmd = format!("echo \"$BATON_RUN_ID $BATON_ATTEMPT\" >> {}; sleep 0.2", log.display());
            gql(
                q,
                &admin,
                "mutation($t: TaskInput!) { createTask(input: $t) { tid } }",
                json!({ "t": {
                "name": format!("ha_{i}"), "command": cmd, "target": "etl", "runAsUser": "root",
                "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}, "misfirePolicy": "run_all" } }),
            )["createTask"]["tid"]
                .as_i64()
                .unwrap()
        })
        .collect();
    wait_for("a few runs", Duration::from_secs(30), || (executions(&log).len() >= 16).then_some(())).unwrap();

    // SIGKILL the owner just before a due time (slots are on even seconds).
    wait_for("just before a slot", Duration::from_secs(5), || {
        let now = Utc::now();
        (now.timestamp() % 2 == 1 && now.timestamp_subsec_millis() >= 700).then_some(())
    })
    .unwrap();
    let killed_at = Utc::now();
    servers[first_owner].take().unwrap().kill();
    let next_slot = DateTime::from_timestamp(killed_at.timestamp() + 1, 0).unwrap();
    let second = wait_for("a new lease holder", Duration::from_secs(20), || {
        lease_holder_pid(&store).filter(|p| *p != owner && pids.contains(p))
    })
    .unwrap();
    let fired = wait_for("the next slot's run to start", Duration::from_secs(20), || {
        let mut c = store.conn().ok()?;
        let runs = db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 100).ok()?;
        let r = runs
            .iter()
            .find(|r| r.scheduled_for.is_some_and(|s| s.and_utc() == next_slot) && r.triggered_at.is_some())?;
        Some(r.triggered_at?.and_utc())
    })
    .unwrap();
    let failover = fired - killed_at;
    eprintln!("failover: the slot due {next_slot} started {failover} after the owner's SIGKILL");
    assert!(
        failover <= chrono::Duration::seconds(LEASE_SECONDS + 2),
        "a survivor fired the next slot {failover} after the kill (lease {LEASE_SECONDS} s + 2 s)"
    );

    // SIGSTOP the new owner past its lease: the third server takes over; SIGCONT: it steps down.
    signal(second, "STOP");
    let stopped_at = Utc::now();
    let third = wait_for("the third server to take over", Duration::from_secs(20), || {
        lease_holder_pid(&store).filter(|p| *p != second && *p != owner)
    })
    .unwrap();
    let seen = executions(&log).len();
    wait_for("slots run while the owner is stopped", Duration::from_secs(20), || {
        (executions(&log).len() >= seen + 16).then_some(())
    })
    .unwrap();
    signal(second, "CONT");
    let woke_at = Utc::now();
    let seen = executions(&log).len();
    wait_for("slots after the wake-up", Duration::from_secs(20), || {
        (executions(&log).len() >= seen + 16).then_some(())
    })
    .unwrap();
    assert_eq!(lease_holder_pid(&store), Some(third), "the woken server stepped down");

    // Stop scheduling, let every run end, check the invariants.
    let any = servers.iter().flatten().next().unwrap();
    let token = any.login("admin", &password).unwrap();
    for tid in &tids {
        gql(any, &token, "mutation($t: Int!) { setTaskActive(tid: $t, active: false) { tid } }", json!({ "t": tid }));
    }
    let runs = wait_for("every run to end", Duration::from_secs(60), || {
        let mut c = store.conn().ok()?;
        let runs = db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 10_000).ok()?;
        runs.iter().all(|r| r.status.is_final()).then_some(runs)
    })
    .unwrap_or_else(|e| {
        let mut c = store.conn().unwrap();
        let runs = db::runs::page(&mut c, &db::runs::RunFilter::default(), None, 10_000).unwrap();
        let open: Vec<_> = runs
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| (r.id, r.status, r.attempt, r.agent_id, r.scheduled_for))
            .collect();
        panic!("{e}: {open:?}")
    });
    assert!(runs.len() >= 50, "{} runs", runs.len());
    let executed = executions(&log);
    assert!(executed.values().all(|n| *n == 1), "an attempt ran twice: {executed:?}");
    let mut c = store.conn().unwrap();
    for tid in &tids {
        let mut slots: Vec<NaiveDateTime> = runs
            .iter()
            .filter(|r| r.task_id == Some(baton_schema::ids::TaskId(*tid)))
            .map(|r| r.scheduled_for.unwrap())
            .collect();
        slots.sort();
        let n = slots.len();
        slots.dedup();
        assert_eq!(n, slots.len(), "a slot with two runs");
        let gaps: Vec<_> = slots.windows(2).filter(|w| (w[1] - w[0]).num_seconds() != 2).collect();
        assert!(gaps.is_empty(), "slots with no run: {gaps:?}");
    }
    for r in runs.iter().filter(|r| r.status == RunStatus::Success) {
        assert_eq!(executed.get(&(r.id.0, i64::from(r.attempt))), Some(&1), "run {} ran once", r.id);
    }
    // Nothing the stopped server stored is from after it was deposed (its lease ended at most
    // LEASE_SECONDS after it stopped).
    let stopped_name = format!("-{second}-");
    let deposed = stopped_at + chrono::Duration::seconds(LEASE_SECONDS);
    for r in &runs {
        for t in db::run_transitions::of_run(&mut c, r.id).unwrap() {
            let by_stopped = t.server.as_deref().is_some_and(|s| s.contains(&stopped_name));
            let when = t.at.and_utc();
            assert!(
                !(by_stopped
                    && when > deposed
                    && when < woke_at + chrono::Duration::seconds(1)
                    && t.to_status == RunStatus::Triggered),
                "the deposed server dispatched run {} at {when}",
                r.id
            );
        }
    }

    // A run terminated through a server its agent is not connected to: the woken server holds
    // no agent now (both moved on when it stopped answering), so the request goes through the
    // database to the server that holds the run.
    let woken = servers.iter().flatten().find(|s| s.pid() == second).unwrap();
    let token = woken.login("admin", &password).unwrap();
    let long = gql(
        woken,
        &token,
        "mutation($t: TaskInput!) { createTask(input: $t) { tid } }",
        json!({ "t": {
        "name": "long", "command": "sleep 60", "target": "etl", "runAsUser": "root" } }),
    )["createTask"]["tid"]
        .as_i64()
        .unwrap();
    let id = RunId(
        gql(woken, &token, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": long }))["forceRun"]["id"]
            .as_i64()
            .unwrap(),
    );
    let status = |id: RunId| {
        let mut c = store.conn().unwrap();
        db::runs::get(&mut c, id).unwrap()
    };
    wait_for("the long run to run", Duration::from_secs(30), || {
        (status(id).status == RunStatus::Running).then_some(())
    })
    .unwrap();
    let res = gql(woken, &token, "mutation($id: Int!) { terminateRun(id: $id) }", json!({ "id": id }));
    assert_eq!(res["terminateRun"], true, "{res}");
    let ended = wait_for("the terminated run to end", Duration::from_secs(20), || {
        let r = status(id);
        (r.status != RunStatus::Running).then_some(r)
    })
    .unwrap();
    assert_eq!(ended.status, RunStatus::Terminated, "{ended:?}");

    // The quiet server's subscriber saw every transition of the runs it saw start, in order, once.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (got, agent_events) = reader.join().unwrap();
    // The agent that was on the killed owner registered on another server: the quiet server's
    // agentEvents subscriber saw it.
    assert!(agent_events.iter().any(|(_, s)| s == "ONLINE"), "agent events seen: {agent_events:?}");
    let started: BTreeSet<i64> =
        got.iter().filter(|(_, ts)| ts.first().is_some_and(|(to, _)| to == "TRIGGERED")).map(|(id, _)| *id).collect();
    assert!(started.len() >= 20, "the quiet server saw {} runs start", started.len());
    for id in started {
        let stored: Vec<(String, i64)> = db::run_transitions::of_run(&mut c, RunId(id))
            .unwrap()
            .into_iter()
            .map(|t| (t.to_status.to_string(), i64::from(t.attempt)))
            .collect();
        assert_eq!(got[&id], stored, "run {id}: what the quiet server's subscriber saw");
    }
}

fn subscribe(
    s: &Server,
    token: &str,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let mut req = s.url("/graphql/ws").replace("http://", "ws://").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tungstenite::connect(req).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    ws.send(Message::Text(json!({ "type": "connection_init", "payload": { "token": token } }).to_string().into()))
        .unwrap();
    loop {
        if let Message::Text(m) = ws.read().unwrap() {
            if serde_json::from_str::<Value>(&m).unwrap()["type"] == "connection_ack" {
                break;
            }
        }
    }
    let q = "subscription { runEvents { runId from to attempt } }";
    ws.send(Message::Text(json!({ "id": "1", "type": "subscribe", "payload": { "query": q } }).to_string().into()))
        .unwrap();
    let q = "subscription { agentEvents { name status } }";
    ws.send(Message::Text(json!({ "id": "2", "type": "subscribe", "payload": { "query": q } }).to_string().into()))
        .unwrap();
    ws
}

#[test]
fn a_credential_set_through_one_server_reaches_anothers_dispatch() {
    let Some(url) = fresh_postgres() else {
        assert!(!in_ci(), "PostgreSQL must be there in CI (cargo xtask test starts it)");
        eprintln!("skipped: BATON_TEST_DATABASE_URL is not set");
        return;
    };
    // Servers that share a database share the master key too.
    let env = [("BATON_MASTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")];
    let args = ["--database-url", url.as_str()];
    let start = || Server::start_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", &args, &env).unwrap();
    let (a, b) = (start(), start());
    let admin = a.login("admin", &a.admin_password).unwrap();
    // The agent knows only server b: b dispatches whatever is made through a.
    let _agent = Agent::enrolled(&a, &admin, &b.base_url, "a1", "etl").unwrap();
    let set = "mutation { setCredential(key: \"db/token\", value: \"s3cret-1\", instance: \"default\") { version } }";
    assert_eq!(gql(&a, &admin, set, json!({}))["setCredential"]["version"], 1);
    let t = json!({ "name": "uses_a_key", "command": "test \"$SECRET\" = s3cret-1", "target": "etl",
                    "runAsUser": "root", "profile": [{ "name": "SECRET", "value": "${C:db/token}" }] });
    let tid = gql(&a, &admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))
        ["createTask"]["tid"]
        .clone();
    let run = gql(&a, &admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .clone();
    let end = wait_for("the run to end", Duration::from_secs(30), || {
        let r = gql(&a, &admin, "query($id: Int!) { run(id: $id) { status reason agentId } }", json!({ "id": run }));
        matches!(r["run"]["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(r)
    })
    .unwrap();
    assert_eq!(end["run"]["status"], "SUCCESS", "b held the value set through a: {end}");
}
