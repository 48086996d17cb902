//! Agents over the real binaries: enrollment, registration, heartbeats and figures, a duplicate
//! name refused on both sides, OFFLINE after missed heartbeats, and hostile frames answered with
//! errors while the server carries on.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_token_cli, data, wait_for, Agent, Server};
use serde_json::{json, Value};
use std::time::Duration;

/// A server whose agents heartbeat every second and go OFFLINE after two missed.
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, "agent_heartbeat_seconds = 1\nagent_missed_heartbeats = 2\n").unwrap();
    let s = Server::start_with(&["--config", config.to_str().unwrap()]).unwrap();
    std::mem::forget(dir);
    s
}

fn agent_row(s: &Server, token: &str, name: &str) -> Option<Value> {
    let res = data(
        s.graphql_as(
            Some(token),
            "{ agents { name hostname queues version os status cpuPercent memoryPercent uptimeSeconds writeFailures degraded } }",
            json!({}),
        )
        .ok()?,
    );
    res["agents"].as_array()?.iter().find(|a| a["name"] == name).cloned()
}

fn wait_status(s: &Server, token: &str, name: &str, status: &str, timeout: Duration) -> Value {
    wait_for(&format!("{name} to be {status}"), timeout, || agent_row(s, token, name).filter(|a| a["status"] == status))
        .unwrap()
}

#[test]
fn agents_register_heartbeat_and_report_figures() {
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    assert!(token.starts_with("ba_") && token.len() == 67, "{token}");
    let _a = Agent::start(&s.base_url, &token, "a1", "etl,reports").unwrap();
    let row = wait_for("a1's first heartbeat", Duration::from_secs(15), || {
        agent_row(&s, &admin, "a1").filter(|a| a["status"] == "ONLINE" && !a["memoryPercent"].is_null())
    })
    .unwrap();
    assert_eq!(row["queues"], json!(["etl", "reports"]));
    assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    assert!(row["os"].as_str().unwrap().starts_with("linux"), "{row}");
    assert!(!row["hostname"].as_str().unwrap().is_empty());
    let mem = row["memoryPercent"].as_f64().unwrap();
    assert!(mem > 0.0 && mem <= 100.0, "{row}");
    assert!(row["uptimeSeconds"].as_i64().unwrap() > 0);
    assert_eq!(row["writeFailures"], 0, "a healthy agent writes all it must");
    assert!(row["degraded"].is_null(), "{row}");

    // Tokens from the API work too, and a revoked one does not.
    let created = data(
        s.graphql_as(Some(&admin), "mutation { createAgentToken(name: \"api\") { token info { id } } }", json!({}))
            .unwrap(),
    );
    let api_token = created["createAgentToken"]["token"].as_str().unwrap().to_string();
    let id = created["createAgentToken"]["info"]["id"].as_i64().unwrap();
    data(s.graphql_as(Some(&admin), "mutation($id: Int!) { revokeAgentToken(id: $id) }", json!({ "id": id })).unwrap());
    let mut refused = Agent::start(&s.base_url, &api_token, "a2", "etl").unwrap();
    let (code, stderr) = refused.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the enrollment token is unknown or revoked"), "{stderr}");
}

#[test]
fn an_agent_that_cannot_write_its_state_says_so_in_its_heartbeat() {
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    // Where the agent records what the server acknowledged, a directory: no write there can work.
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir(state.path().join("acked")).unwrap();
    let _a = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_status(&s, &admin, "a1", "ONLINE", Duration::from_secs(15));
    let run = "mutation { runAdhoc(agents: [\"a1\"], command: \"true\", runAsUser: \"root\") { id } }";
    data(s.graphql_as(Some(&admin), run, json!({})).unwrap());
    // The run still goes through; the failed writes are counted and reported.
    let row = wait_for("a heartbeat with the failures", Duration::from_secs(20), || {
        agent_row(&s, &admin, "a1").filter(|a| a["writeFailures"].as_i64().unwrap_or(0) > 0)
    })
    .unwrap();
    assert_eq!(row["status"], "ONLINE", "{row}");
}

#[test]
fn a_second_agent_with_a_name_online_is_refused_on_both_sides() {
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let _first = Agent::start(&s.base_url, &token, "twin", "etl").unwrap();
    wait_status(&s, &admin, "twin", "ONLINE", Duration::from_secs(15));
    let mut second = Agent::start(&s.base_url, &token, "twin", "etl").unwrap();
    let (code, stderr) = second.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("baton-agent: error: refused by") && stderr.contains("an agent named twin is already online"),
        "{stderr}"
    );
    let log = wait_for("the server's log of the refusal", Duration::from_secs(5), || {
        let lines = s.stderr_lines();
        lines.iter().any(|l| l.contains("agent refused") && l.contains("twin")).then_some(())
    });
    assert!(log.is_ok(), "the server logs the refusal");
    assert_eq!(agent_row(&s, &admin, "twin").unwrap()["status"], "ONLINE", "the first keeps its place");
}

#[test]
fn missed_heartbeats_make_an_agent_offline_until_it_is_back() {
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let agent = Agent::start(&s.base_url, &token, "sleepy", "etl").unwrap();
    wait_status(&s, &admin, "sleepy", "ONLINE", Duration::from_secs(15));
    // Frozen, the agent keeps its connection open but sends nothing.
    agent.signal("STOP");
    wait_status(&s, &admin, "sleepy", "OFFLINE", Duration::from_secs(10));
    agent.signal("CONT");
    wait_status(&s, &admin, "sleepy", "ONLINE", Duration::from_secs(10));
}

#[test]
fn hostile_frames_get_errors_and_the_server_carries_on() {
    use tungstenite::Message;
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let url = s.url("/agent").replace("http://", "ws://");
    let read =
        |ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>| -> Option<Value> {
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            }
        };

    // Garbage instead of a hello: refused and closed.
    let (mut ws, _) = tungstenite::connect(url.as_str()).unwrap();
    ws.send(Message::Text("this is not json".into())).unwrap();
    let answer = read(&mut ws).unwrap();
    assert_eq!(answer["type"], "refused", "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("malformed frame"), "{answer}");

    // A proper hello, then nonsense of every kind: each gets an error, the connection stays.
    let (mut ws, _) = tungstenite::connect(url.as_str()).unwrap();
    let hello = json!({"type": "hello", "protocol": 1, "token": token, "name": "fake", "hostname": "h", "queues": [], "version": "x", "os": "y", "last_acked_seq": 0});
    ws.send(Message::Text(hello.to_string().into())).unwrap();
    assert_eq!(read(&mut ws).unwrap()["type"], "welcome");
    for (frame, code) in [
        ("{\"type\":\"launch\"}".to_string(), "malformed"),
        ("[1,2,3]".to_string(), "malformed"),
        (
            json!({"type": "event", "seq": 1, "run_id": 999999, "attempt": 1, "event": {"kind": "accepted"}})
                .to_string(),
            "unknown_run",
        ),
        (
            json!({"type": "event", "seq": 0, "run_id": -5, "attempt": 0, "event": {"kind": "spawned", "pid": 1}})
                .to_string(),
            "malformed",
        ),
        (
            json!({"type": "event", "seq": 2, "run_id": -5, "attempt": 0, "event": {"kind": "ended", "outcome": {"kind": "exited", "code": 0}}})
                .to_string(),
            "unknown_run",
        ),
        (hello.to_string(), "protocol"),
    ] {
        ws.send(Message::Text(frame.clone().into())).unwrap();
        let answer = loop {
            let a = read(&mut ws).unwrap();
            if a["type"] != "welcome" && a["type"] != "ack" {
                break a;
            }
        };
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame} -> {answer}"
        );
    }
    ws.send(Message::Binary(vec![0u8; 16].into())).unwrap();
    let answer = loop {
        let a = read(&mut ws).unwrap();
        if a["type"] != "ack" {
            break a;
        }
    };
    assert_eq!(answer["code"], "malformed");
    // A frame over the limit ends the connection.
    let huge = format!("{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let _ = ws.send(Message::Text(huge.into()));
    let closed =
        wait_for("the server to close the oversized connection", Duration::from_secs(10), || match ws.read() {
            Ok(Message::Close(_)) | Err(_) => Some(()),
            _ => None,
        });
    assert!(closed.is_ok());

    // The server is unharmed: healthy, and a real agent registers.
    assert_eq!(ureq::get(&s.url("/healthz")).call().unwrap().status(), 200);
    // (The token enrolled "fake"; a real agent comes with its own.)
    let real = agent_token_cli(s.data_dir.path(), "real").unwrap();
    let _a = Agent::start(&s.base_url, &real, "real", "etl").unwrap();
    wait_status(&s, &admin, "real", "ONLINE", Duration::from_secs(15));
}

/// The agent's state on a 2 MiB tmpfs, a job printing 1 MiB when 256 KiB are left: the disk
/// fills, the agent counts its failed writes in its heartbeat and loses no event (it writes them
/// again, the shim waits to record the exit), and once space returns the run ends with its true
/// outcome and the next one runs.
#[test]
fn a_full_disk_on_the_agent_loses_nothing_and_the_run_ends_when_space_returns() {
    let Some(disk) = baton_tests::SmallDisk::mount("2m") else {
        assert!(!baton_tests::in_ci(), "CI runs as root: the tmpfs must mount");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let state = disk.dir.path().join("state");
    let _a = Agent::start_with_state(&s.base_url, &token, "a1", "etl", &state).unwrap();
    wait_status(&s, &admin, "a1", "ONLINE", Duration::from_secs(15));
    let filler = disk.dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; usize::try_from(disk.free().saturating_sub(256 * 1024)).unwrap()]).unwrap();
    let run = "mutation { runAdhoc(agents: [\"a1\"], command: \"head -c 1048576 /dev/zero | tr '\\\\0' x; echo; echo done\", runAsUser: \"root\") { id } }";
    let id = data(s.graphql_as(Some(&admin), run, json!({})).unwrap())["runAdhoc"][0]["id"].as_i64().unwrap();
    let query = "query($id: Int!) { run(id: $id) { status exitCode reason } }";
    let status = |s: &Server| data(s.graphql_as(Some(&admin), query, json!({ "id": id })).unwrap())["run"].clone();
    let full = wait_for("the failed writes in a heartbeat", Duration::from_secs(30), || {
        agent_row(&s, &admin, "a1")
            .filter(|a| a["writeFailures"].as_i64().unwrap_or(0) > 0 && a["degraded"].is_string())
    })
    .unwrap();
    // Degraded, with the reason, and still online.
    assert!(full["degraded"].as_str().unwrap().contains("No space left on device"), "{full}");
    assert_eq!(full["status"], "ONLINE", "{full}");
    // Space returns: what waited is written, and the run ends with what really happened.
    std::fs::remove_file(&filler).unwrap();
    let ended = wait_for("the run to end", Duration::from_secs(60), || {
        let r = status(&s);
        matches!(r["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(r)
    })
    .unwrap();
    assert!(ended["exitCode"].is_i64(), "the job's own exit, not a loss: {ended}");
    wait_for("the agent no longer degraded", Duration::from_secs(20), || {
        agent_row(&s, &admin, "a1").filter(|a| a["degraded"].is_null())
    })
    .unwrap();
    let next = "mutation { runAdhoc(agents: [\"a1\"], command: \"echo again\", runAsUser: \"root\") { id } }";
    let id2 = data(s.graphql_as(Some(&admin), next, json!({})).unwrap())["runAdhoc"][0]["id"].as_i64().unwrap();
    wait_for("the next run", Duration::from_secs(30), || {
        let r = data(s.graphql_as(Some(&admin), query, json!({ "id": id2 })).unwrap())["run"].clone();
        (r["status"] == "SUCCESS").then_some(())
    })
    .unwrap();
}

/// While the agent's state disk is full, a job writing 48 MiB to an output file of its own on
/// another disk goes on: the agent reads no more of it than it can hold (its memory stays
/// bounded; the output waits in the file), and once space returns every byte reaches the server
/// and the run ends with what happened.
#[test]
fn output_waits_in_its_file_while_the_agent_cannot_log_it() {
    let Some(disk) = baton_tests::SmallDisk::mount("16m") else {
        assert!(!baton_tests::in_ci(), "CI runs as root: the tmpfs must mount");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let s = server();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let agent = Agent::start_with_state(&s.base_url, &token, "a1", "etl", &disk.dir.path().join("state")).unwrap();
    wait_status(&s, &admin, "a1", "ONLINE", Duration::from_secs(15));
    let idle = baton_tests::resident_bytes(agent.pid());
    let filler = disk.dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; usize::try_from(disk.free().saturating_sub(64 * 1024)).unwrap()]).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("big.out");
    const SIZE: u64 = 48 << 20;
    let task = json!({ "name": "big", "target": "a1", "runAsUser": "root", "stdoutPath": out.to_str().unwrap(),
                       "command": format!("head -c {SIZE} /dev/zero | tr '\\0' x") });
    let tid = data(
        s.graphql_as(Some(&admin), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": task }))
            .unwrap(),
    )["createTask"]["tid"]
        .as_i64()
        .unwrap();
    let force = "mutation($t: Int!) { forceRun(tid: $t) { id } }";
    let id = data(s.graphql_as(Some(&admin), force, json!({ "t": tid })).unwrap())["forceRun"]["id"].as_i64().unwrap();
    // The job writes it all; the agent, unable to log, holds at most its bound.
    let mut most = 0;
    wait_for("the job to write its output", Duration::from_secs(60), || {
        most = most.max(baton_tests::resident_bytes(agent.pid()));
        std::fs::metadata(&out).is_ok_and(|m| m.len() == SIZE).then_some(())
    })
    .unwrap();
    let watched = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watched {
        most = most.max(baton_tests::resident_bytes(agent.pid()));
        std::thread::yield_now();
    }
    eprintln!("agent resident memory: {} MiB idle, at most {} MiB while its disk was full", idle >> 20, most >> 20);
    assert!(most < idle + (24 << 20), "the agent held {} MiB (idle {} MiB)", most >> 20, idle >> 20);
    std::fs::remove_file(&filler).unwrap();
    let query = "query($id: Int!) { run(id: $id) { status exitCode stdoutBytes } }";
    let ended = wait_for("the run to end", Duration::from_secs(120), || {
        let r = data(s.graphql_as(Some(&admin), query, json!({ "id": id })).unwrap())["run"].clone();
        (r["status"] != "RUNNING" && r["status"] != "STARTED" && r["status"] != "TRIGGERED").then_some(r)
    })
    .unwrap();
    assert_eq!((ended["status"].as_str(), ended["exitCode"].as_i64()), (Some("SUCCESS"), Some(0)), "{ended}");
    assert_eq!(ended["stdoutBytes"].as_u64(), Some(SIZE), "every byte reached the server: {ended}");
}
