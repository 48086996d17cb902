//! Runs on real agents running real commands: both output streams, exit codes, signals, timeouts
//! and terminate killing whole process trees, accept expiry, retries, run-as users, an agent
//! killed and restarted mid-run, a server restarted mid-run, a connection cut mid-run, and 200
//! concurrent runs on one agent.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_token_cli, alive, data, free_port, wait_for, Agent, Server};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG: &str = "agent_heartbeat_seconds = 1\nagent_missed_heartbeats = 3\nagent_lost_seconds = 30\n";

struct Rig {
    server: Server,
    admin: String,
    _agent: Option<Agent>,
}

fn config_file(extra: &str) -> String {
    let path = std::env::temp_dir().join(format!("baton-test-{}-{}.toml", std::process::id(), free_port()));
    std::fs::write(&path, format!("{CONFIG}{extra}")).unwrap();
    path.to_string_lossy().into_owned()
}

/// A server with `CONFIG` and `extra` config lines, its admin's token and an agent token.
fn server_with(extra: &str) -> (Server, String, String) {
    let server = Server::start_with(&["--config", &config_file(extra)]).unwrap();
    let admin = server.admin().unwrap();
    let token = agent_token_cli(server.data_dir.path(), "hosts").unwrap();
    (server, admin, token)
}

/// A server and one agent `a1` serving queue `etl`.
fn rig() -> Rig {
    let (server, admin, token) = server_with("");
    let agent = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    Rig { server, admin, _agent: Some(agent) }
}

fn wait_online(s: &Server, admin: &str, name: &str) {
    wait_for(&format!("{name} online"), Duration::from_secs(20), || {
        let res = data(s.graphql_as(Some(admin), "{ agents { name status } }", json!({})).ok()?);
        res["agents"].as_array()?.iter().any(|a| a["name"] == name && a["status"] == "ONLINE").then_some(())
    })
    .unwrap();
}

fn adhoc(s: &Server, token: &str, command: &str, user: &str, max: i64) -> i64 {
    let res = data(
        s.graphql_as(
            Some(token),
            "mutation($c: String!, $u: String!, $m: Int!) { runAdhoc(agents: [\"a1\"], command: $c, runAsUser: $u, maxRunTimeSeconds: $m) { id } }",
            json!({ "c": command, "u": user, "m": max }),
        )
        .unwrap(),
    );
    res["runAdhoc"][0]["id"].as_i64().unwrap()
}

const RUN: &str =
    "query($id: Int!) { run(id: $id) { id status attempt reason exitCode pid transitions { from to attempt } } }";

fn run(s: &Server, token: &str, id: i64) -> Value {
    data(s.graphql_as(Some(token), RUN, json!({ "id": id })).unwrap())["run"].clone()
}

fn wait_status(s: &Server, token: &str, id: i64, statuses: &[&str], timeout: Duration) -> Value {
    wait_for(&format!("run {id} to be one of {statuses:?}"), timeout, || {
        let r = run(s, token, id);
        statuses.contains(&r["status"].as_str()?).then_some(r)
    })
    .unwrap()
}

fn output(s: &Server, token: &str, id: i64, stream: &str) -> String {
    let q = format!("query($id: Int!) {{ runOutput(runId: $id, stream: {stream}, limit: 1048576) {{ data }} }}");
    data(s.graphql_as(Some(token), &q, json!({ "id": id })).unwrap())["runOutput"]["data"].as_str().unwrap().to_string()
}

fn statuses(r: &Value) -> Vec<String> {
    r["transitions"].as_array().unwrap().iter().map(|t| t["to"].as_str().unwrap().to_string()).collect()
}

#[test]
fn success_with_output_on_both_streams_and_baton_variables() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let id = adhoc(s, t, "echo out; echo err >&2; echo run=$BATON_RUN_ID", "root", 60);
    let done = wait_status(s, t, id, &["SUCCESS", "FAILED"], Duration::from_secs(20));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(statuses(&done), vec!["TRIGGERED", "STARTED", "RUNNING", "SUCCESS"]);
    assert!(done["pid"].as_i64().unwrap() > 1);
    assert_eq!(output(s, t, id, "STDOUT"), format!("out\nrun={id}\n"));
    assert_eq!(output(s, t, id, "STDERR"), "err\n");
}

#[test]
fn non_zero_exit_and_exit_by_signal_fail_with_the_reason() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let a = adhoc(s, t, "exit 3", "root", 60);
    let b = adhoc(s, t, "kill -9 $$", "root", 60);
    let a = wait_status(s, t, a, &["FAILED", "SUCCESS"], Duration::from_secs(20));
    let b = wait_status(s, t, b, &["FAILED", "SUCCESS"], Duration::from_secs(20));
    assert_eq!(
        (a["status"].as_str(), a["reason"].as_str(), a["exitCode"].as_i64()),
        (Some("FAILED"), Some("exit code 3"), Some(3))
    );
    assert_eq!((b["status"].as_str(), b["reason"].as_str()), (Some("FAILED"), Some("killed by signal 9")));
}

/// Starts `sleep 300 & sleep 300` and returns the run id and the two grandchildren's pids.
fn start_tree(r: &Rig, max: i64) -> (i64, Vec<u32>) {
    let (s, t) = (&r.server, &r.admin);
    let dir = tempfile::tempdir().unwrap().keep();
    let pids = dir.join("pids");
    let cmd = format!("sh -c 'sleep 300 & echo $! >> {p}; sleep 300 & echo $! >> {p}; wait'", p = pids.display());
    let id = adhoc(s, t, &cmd, "root", max);
    let pids = wait_for("both grandchildren", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&pids).ok()?;
        let list: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (list.len() == 2).then_some(list)
    })
    .unwrap();
    assert!(pids.iter().all(|p| alive(*p)));
    (id, pids)
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let r = rig();
    let (id, pids) = start_tree(&r, 2);
    let done = wait_status(&r.server, &r.admin, id, &["FAILED", "SUCCESS", "TERMINATED"], Duration::from_secs(30));
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("FAILED"), Some("timed out after 2 s")),
        "{done}"
    );
    wait_for("the grandchildren to be gone", Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)).then_some(()))
        .unwrap();
}

#[test]
fn terminate_kills_the_whole_process_tree() {
    let r = rig();
    let (id, pids) = start_tree(&r, 600);
    wait_status(&r.server, &r.admin, id, &["RUNNING"], Duration::from_secs(20));
    let res = data(
        r.server
            .graphql_as(Some(&r.admin), "mutation($id: Int!) { terminateRun(id: $id) }", json!({ "id": id }))
            .unwrap(),
    );
    assert_eq!(res["terminateRun"], true);
    let done = wait_status(&r.server, &r.admin, id, &["TERMINATED", "FAILED", "SUCCESS"], Duration::from_secs(30));
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("TERMINATED"), Some("terminated by admin")),
        "{done}"
    );
    wait_for("the grandchildren to be gone", Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)).then_some(()))
        .unwrap();
}

fn create_task(s: &Server, token: &str, input: Value) -> i64 {
    let res = data(
        s.graphql_as(Some(token), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": input }))
            .unwrap(),
    );
    res["createTask"]["tid"].as_i64().unwrap()
}

fn force(s: &Server, token: &str, tid: i64) -> i64 {
    data(s.graphql_as(Some(token), "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid })).unwrap())
        ["forceRun"]["id"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_dispatch_nobody_accepts_fails_with_accept_expired() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let tid = create_task(
        s,
        t,
        json!({"name": "lonely", "command": "true", "target": "no_such_host", "runAsUser": "root", "acceptExpirySeconds": 1}),
    );
    let id = force(s, t, tid);
    let done = wait_status(s, t, id, &["FAILED", "SUCCESS"], Duration::from_secs(20));
    assert_eq!((done["status"].as_str(), done["reason"].as_str()), (Some("FAILED"), Some("accept expired")), "{done}");
}

#[test]
fn retries_until_the_third_attempt_succeeds() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let counter = tempfile::tempdir().unwrap().keep().join("n");
    let cmd = format!(
        "n=$(cat {f} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {f}; echo attempt $n; [ $n -ge 3 ]",
        f = counter.display()
    );
    let tid = create_task(
        s,
        t,
        json!({"name": "flaky", "command": cmd, "target": "etl", "runAsUser": "root", "retryAttempts": 2, "retryDelaySeconds": 0}),
    );
    let id = force(s, t, tid);
    let done = wait_status(s, t, id, &["SUCCESS", "FAILED"], Duration::from_secs(30));
    assert_eq!((done["status"].as_str(), done["attempt"].as_i64()), (Some("SUCCESS"), Some(3)), "{done}");
    let per_attempt: Vec<(i64, String)> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["attempt"].as_i64().unwrap(), x["to"].as_str().unwrap().to_string()))
        .collect();
    let failed: Vec<i64> = per_attempt.iter().filter(|(_, to)| to == "FAILED").map(|(a, _)| *a).collect();
    assert_eq!(failed, vec![1, 2], "{per_attempt:?}");
    assert_eq!(output(s, t, id, "STDOUT"), "attempt 3\n", "the latest attempt's output");
}

#[test]
fn run_as_another_user() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("skipped: the agent must run as root to become another user");
        return;
    }
    let id = adhoc(s, t, "id -un; id -gn", "nobody", 60);
    let done = wait_status(s, t, id, &["SUCCESS", "FAILED"], Duration::from_secs(20));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let out = output(s, t, id, "STDOUT");
    assert!(out.starts_with("nobody\n"), "{out}");
    let id = adhoc(s, t, "true", "no_such_user_here", 60);
    let done = wait_status(s, t, id, &["SUCCESS", "FAILED"], Duration::from_secs(20));
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("FAILED"), Some("could not start: no user named no_such_user_here on this host")),
        "{done}"
    );
}

#[test]
fn an_agent_killed_and_restarted_mid_run_still_reports_the_result() {
    let (server, admin, token) = server_with("");
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_with_state(&server.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_online(&server, &admin, "a1");
    let id = adhoc(&server, &admin, "echo before; sleep 2; echo after", "root", 60);
    wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20));
    agent.signal("KILL");
    let _ = agent.wait_exit(Duration::from_secs(5));
    let _again = Agent::start_with_state(&server.base_url, &token, "a1", "etl", state.path()).unwrap();
    let done = wait_status(&server, &admin, id, &["SUCCESS", "FAILED"], Duration::from_secs(30));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(statuses(&done), vec!["TRIGGERED", "STARTED", "RUNNING", "SUCCESS"], "each step once");
    assert_eq!(output(&server, &admin, id, "STDOUT"), "before\nafter\n");
}

#[test]
fn a_server_restarted_mid_run_loses_nothing() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = tempfile::tempdir().unwrap();
    let data_path = data_dir.path().to_path_buf();
    let config = config_file("");
    let server = Server::start_at(data_dir, &listen, &["--config", &config]).unwrap();
    let admin = server.admin().unwrap();
    let password = server.admin_password.clone();
    let token = agent_token_cli(&data_path, "hosts").unwrap();
    let _agent = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    let id = adhoc(&server, &admin, "echo one; sleep 3; echo two", "root", 60);
    wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20));
    // Keep the data directory: the server dies, its files stay.
    let data_dir = server.kill();
    let server = Server::start_at(data_dir, &listen, &["--config", &config]).unwrap();
    let admin = server.login("admin", &password).unwrap();
    let done = wait_status(&server, &admin, id, &["SUCCESS", "FAILED"], Duration::from_secs(40));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(statuses(&done), vec!["TRIGGERED", "STARTED", "RUNNING", "SUCCESS"], "each step once");
    assert_eq!(output(&server, &admin, id, "STDOUT"), "one\ntwo\n");
}

#[test]
fn two_hundred_concurrent_runs_on_one_agent() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let ids: Vec<i64> = (0..200).map(|i| adhoc(s, t, &format!("sleep 1; echo {i}"), "root", 120)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let res = data(
            s.graphql_as(Some(t), "{ runs(first: 500, filter: {status: [SUCCESS]}) { totalCount } }", json!({}))
                .unwrap(),
        );
        if res["runs"]["totalCount"] == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {} of 200 succeeded", res["runs"]["totalCount"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    for (i, id) in ids.iter().enumerate().step_by(37) {
        assert_eq!(output(s, t, *id, "STDOUT"), format!("{i}\n"));
    }
}

/// A TCP proxy on loopback whose connections the test can cut (the listener stays).
struct Proxy {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(to: String) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = conns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(upstream) = std::net::TcpStream::connect(&to) else { continue };
                let pairs = [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap()),
                ];
                kept.lock().unwrap().extend([client, upstream]);
                for (mut from, mut to) in pairs {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, conns }
    }

    /// Drops every connection through the proxy at once.
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_connection_cut_mid_run_loses_nothing_and_counts_nothing_twice() {
    let (server, admin, token) = server_with("");
    let proxy = Proxy::start(server.base_url.trim_start_matches("http://").to_string());
    let agent = Agent::start(&format!("http://127.0.0.1:{}", proxy.port), &token, "a1", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    let id = adhoc(&server, &admin, "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.3; done", "root", 60);
    wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20));
    proxy.cut();
    let done = wait_status(&server, &admin, id, &["SUCCESS", "FAILED"], Duration::from_secs(40));
    assert_eq!(done["status"], "SUCCESS", "the job ran on through the cut: {done}");
    assert_eq!(statuses(&done), vec!["TRIGGERED", "STARTED", "RUNNING", "SUCCESS"], "each step once");
    assert_eq!(
        output(&server, &admin, id, "STDOUT"),
        "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\n",
        "output complete, nothing twice"
    );
    let log = agent.stderr_lines().join("\n");
    assert!(
        log.contains("disconnected") && log.matches("registered").count() >= 2,
        "the connection really was cut and made again:\n{log}"
    );
}

#[test]
fn output_beyond_the_cap_keeps_the_tail_and_says_what_was_cut() {
    let (server, admin, token) = server_with("run_output_cap_bytes = 200000\n");
    let _agent = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    // 1,000,000 bytes: 10,000 lines of 100.
    let id =
        adhoc(&server, &admin, "i=0; while [ $i -lt 10000 ]; do printf '%099d\\n' $i; i=$((i+1)); done", "root", 120);
    let done = wait_status(&server, &admin, id, &["SUCCESS", "FAILED"], Duration::from_secs(60));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let sizes = data(server.graphql_as(Some(&admin), "query($id: Int!) { run(id: $id) { stdoutBytes outputTruncatedBytes } runOutput(runId: $id, stream: STDOUT, limit: 1048576) { offset data } }", json!({ "id": id })).unwrap());
    let cut = sizes["run"]["outputTruncatedBytes"].as_i64().unwrap();
    assert_eq!(sizes["run"]["stdoutBytes"], 1_000_000);
    assert!((800_000 - 65_536..=800_000).contains(&cut), "about 800,000 bytes cut: {cut}");
    let kept = sizes["runOutput"]["data"].as_str().unwrap();
    assert_eq!(sizes["runOutput"]["offset"].as_i64().unwrap(), cut, "reading starts where the tail starts");
    assert!(kept.ends_with(&format!("{:099}\n", 9999)), "the tail is kept");
    assert_eq!(kept.len() as i64, 1_000_000 - cut);
}

#[test]
fn a_run_whose_agent_stays_away_fails_with_agent_lost() {
    let cfg = std::env::temp_dir().join(format!("baton-lost-{}.toml", std::process::id()));
    std::fs::write(&cfg, "agent_heartbeat_seconds = 1\nagent_missed_heartbeats = 2\nagent_lost_seconds = 2\n").unwrap();
    let server = Server::start_with(&["--config", cfg.to_str().unwrap()]).unwrap();
    let admin = server.admin().unwrap();
    let token = agent_token_cli(server.data_dir.path(), "hosts").unwrap();
    let agent = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    let id = adhoc(&server, &admin, "sleep 30", "root", 60);
    wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20));
    agent.signal("STOP");
    let done = wait_status(&server, &admin, id, &["FAILED", "SUCCESS"], Duration::from_secs(30));
    assert_eq!((done["status"].as_str(), done["reason"].as_str()), (Some("FAILED"), Some("agent lost")), "{done}");
}

#[test]
fn transitions_and_output_stream_live_in_order() {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let connect = || {
        let mut req = s.url("/graphql/ws").replace("http://", "ws://").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tungstenite::connect(req).unwrap();
        // A missing event fails the test instead of hanging it.
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        ws.send(Message::Text(json!({ "type": "connection_init", "payload": { "token": t } }).to_string().into()))
            .unwrap();
        loop {
            if let Message::Text(m) = ws.read().unwrap() {
                if serde_json::from_str::<Value>(&m).unwrap()["type"] == "connection_ack" {
                    return ws;
                }
            }
        }
    };
    let mut events = connect();
    events.send(Message::Text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { runEvents { runId from to attempt } }" } }).to_string().into())).unwrap();
    // The subscription is registered once the server has read it; a first run proves it.
    let mut seen: Vec<(i64, String)> = Vec::new();
    let next = |ws: &mut tungstenite::WebSocket<_>| -> Value {
        loop {
            if let Message::Text(m) = ws.read().unwrap() {
                let v: Value = serde_json::from_str(&m).unwrap();
                if v["type"] == "next" {
                    return v["payload"]["data"].clone();
                }
            }
        }
    };
    // Warm-up runs until one is seen: then the subscription is live for the run we watch.
    let mut live = false;
    for _ in 0..10 {
        let warm = adhoc(s, t, "true", "root", 60);
        wait_status(s, t, warm, &["SUCCESS"], Duration::from_secs(20));
        events.set_read_timeout(Duration::from_millis(500));
        while let Ok(Message::Text(m)) = events.read() {
            let v: Value = serde_json::from_str(&m).unwrap();
            if v["payload"]["data"]["runEvents"]["runId"] == warm {
                live = true;
            }
        }
        if live {
            break;
        }
    }
    assert!(live, "the subscription never delivered an event");
    events.set_read_timeout(Duration::from_secs(30));
    let id = adhoc(s, t, "sleep 1; echo one; echo two >&2", "root", 60);
    let mut output = connect();
    let q = format!("subscription {{ runOutput(runId: {id}) {{ stream offset data }} }}");
    output
        .send(Message::Text(json!({ "id": "2", "type": "subscribe", "payload": { "query": q } }).to_string().into()))
        .unwrap();
    while !seen.iter().any(|(r, to)| *r == id && to == "SUCCESS") {
        let d = next(&mut events);
        seen.push((d["runEvents"]["runId"].as_i64().unwrap(), d["runEvents"]["to"].as_str().unwrap().to_string()));
    }
    let mine: Vec<&str> = seen.iter().filter(|(r, _)| *r == id).map(|(_, to)| to.as_str()).collect();
    assert_eq!(mine, vec!["TRIGGERED", "STARTED", "RUNNING", "SUCCESS"], "every transition, in order");
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        let d = next(&mut output);
        got.insert(
            d["runOutput"]["stream"].as_str().unwrap().to_string(),
            d["runOutput"]["data"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(got.get("stdout").map(String::as_str), Some("one\n"));
    assert_eq!(got.get("stderr").map(String::as_str), Some("two\n"));
}

/// Sets how long a test's WebSocket read may wait.
trait ReadTimeout {
    fn set_read_timeout(&mut self, d: Duration);
}

impl ReadTimeout for tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>> {
    fn set_read_timeout(&mut self, d: Duration) {
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = self.get_ref() {
            tcp.set_read_timeout(Some(d)).unwrap();
        }
    }
}

/// The children of `pid` (pid, state, command line), from /proc.
fn children(pid: u32) -> Vec<(u32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push((child, fields[0].chars().next().unwrap_or('?'), cmdline));
        }
    }
    out
}

fn launcher_of(agent: u32) -> Option<u32> {
    children(agent).into_iter().find(|(_, state, cmd)| *state != 'Z' && cmd.contains(" launcher ")).map(|c| c.0)
}

#[test]
fn shims_come_from_one_launcher_which_is_replaced_when_it_dies_and_nothing_is_left_a_zombie_or_readable() {
    let r = rig();
    let (s, t) = (&r.server, &r.admin);
    let agent = r._agent.as_ref().unwrap().pid();
    let ids: Vec<i64> = (0..20).map(|i| adhoc(s, t, &format!("echo {i}"), "root", 60)).collect();
    for id in &ids {
        assert_eq!(wait_status(s, t, *id, &["SUCCESS", "FAILED"], Duration::from_secs(30))["status"], "SUCCESS");
    }
    let first = launcher_of(agent).expect("the agent runs a launcher");
    // Each attempt's files lie side by side, for the agent's user only (the journal holds the
    // job's environment).
    let runs = r._agent.as_ref().unwrap().state_dir.join("runs");
    for kind in ["journal", "out", "err"] {
        let path = runs.join(format!("{}-1.{kind}", ids[3]));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    assert_eq!(std::fs::read_to_string(runs.join(format!("{}-1.out", ids[3]))).unwrap(), "3\n");
    // The shims ended and were reaped: neither the agent nor the launcher keeps a zombie.
    wait_for("no zombie children", Duration::from_secs(10), || {
        let zombies: Vec<_> =
            children(agent).into_iter().chain(children(first)).filter(|(_, state, _)| *state == 'Z').collect();
        zombies.is_empty().then_some(())
    })
    .unwrap();

    // A launcher that dies is replaced at the next run, which runs; the dead one is reaped.
    let killed = std::process::Command::new("kill").args(["-KILL", &first.to_string()]).status().unwrap();
    assert!(killed.success());
    wait_for("the launcher to die", Duration::from_secs(10), || {
        children(agent).iter().any(|(p, state, _)| *p == first && *state == 'Z').then_some(())
    })
    .unwrap();
    let id = adhoc(s, t, "echo again", "root", 60);
    let done = wait_status(s, t, id, &["SUCCESS", "FAILED"], Duration::from_secs(30));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(output(s, t, id, "STDOUT"), "again\n");
    let second = launcher_of(agent).expect("a new launcher");
    assert_ne!(second, first);
    assert!(children(agent).iter().all(|(p, _, _)| *p != first), "the dead launcher was reaped");
}

#[test]
fn finished_attempts_files_are_removed_after_the_keep_time_and_running_ones_stay() {
    let (server, admin, token) = server_with("");
    let agent = Agent::start_with_args(&server.base_url, &token, "a1", "etl", &["--keep-runs-seconds", "1"]).unwrap();
    wait_online(&server, &admin, "a1");
    let runs = agent.state_dir.join("runs");
    let done = adhoc(&server, &admin, "echo done", "root", 60);
    assert_eq!(
        wait_status(&server, &admin, done, &["SUCCESS", "FAILED"], Duration::from_secs(30))["status"],
        "SUCCESS"
    );
    let long = adhoc(&server, &admin, "sleep 10; echo long", "root", 60);
    wait_status(&server, &admin, long, &["RUNNING"], Duration::from_secs(20));
    wait_for("the finished attempt's files to go", Duration::from_secs(20), || {
        (!runs.join(format!("{done}-1.journal")).exists() && !runs.join(format!("{done}-1.out")).exists()).then_some(())
    })
    .unwrap();
    // The running attempt's files stay (it is not reported yet), and its result still arrives whole.
    assert!(runs.join(format!("{long}-1.journal")).exists());
    assert_eq!(run(&server, &admin, long)["status"], "RUNNING");
    assert_eq!(
        wait_status(&server, &admin, long, &["SUCCESS", "FAILED"], Duration::from_secs(30))["status"],
        "SUCCESS"
    );
    assert_eq!(output(&server, &admin, long, "STDOUT"), "long\n");
    // The output of the removed attempt is still on the server.
    assert_eq!(output(&server, &admin, done, "STDOUT"), "done\n");
}

#[test]
fn runs_for_a_queue_are_spread_over_its_agents_by_load() {
    let (server, admin, token) = server_with("");
    let _a1 = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
    let token2 = agent_token_cli(server.data_dir.path(), "second").unwrap();
    let _a2 = Agent::start(&server.base_url, &token2, "a2", "etl").unwrap();
    wait_online(&server, &admin, "a1");
    wait_online(&server, &admin, "a2");
    // A burst of dispatches, each picking the less busy agent: half each.
    let ids: Vec<i64> = (0..8)
        .map(|i| {
            let task =
                json!({"name": format!("spread{i}"), "command": "sleep 2", "target": "etl", "runAsUser": "root"});
            force(&server, &admin, create_task(&server, &admin, task))
        })
        .collect();
    let mut per_agent = std::collections::BTreeMap::new();
    for id in ids {
        let r = wait_status(&server, &admin, id, &["RUNNING", "SUCCESS", "FAILED"], Duration::from_secs(30));
        let agent = data(
            server
                .graphql_as(Some(&admin), "query($id: Int!) { run(id: $id) { agentId } }", json!({ "id": id }))
                .unwrap(),
        )["run"]["agentId"]
            .as_i64()
            .unwrap();
        assert_ne!(r["status"], "FAILED", "{r}");
        *per_agent.entry(agent).or_insert(0) += 1;
    }
    assert_eq!(per_agent.values().copied().collect::<Vec<i32>>(), vec![4, 4], "{per_agent:?}");
}

/// A host rebuilt under the same agent name (the agent killed with its job, its state directory
/// wiped, a fresh agent started with the same token): the old attempts fail at once as lost,
/// a task that allows a retry runs again on the new agent, and the new agent's events (numbered
/// from 1 again) are not taken for the old one's.
#[test]
fn a_rebuilt_agent_host_fails_its_lost_attempts_at_once_and_its_new_events_count() {
    // Agent loss would take 5 minutes: what ends the old attempts is the new incarnation.
    let cfg = std::env::temp_dir().join(format!("baton-rebuilt-{}.toml", std::process::id()));
    std::fs::write(&cfg, "agent_heartbeat_seconds = 1\nagent_lost_seconds = 300\n").unwrap();
    let server = Server::start_with(&["--config", cfg.to_str().unwrap()]).unwrap();
    let admin = server.admin().unwrap();
    let token = agent_token_cli(server.data_dir.path(), "hosts").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_with_state(&server.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_online(&server, &admin, "a1");
    let lone = adhoc(&server, &admin, "sleep 30", "root", 60);
    let t = json!({ "name": "retried", "command": "test -e \"$MARK\" || { touch \"$MARK\"; sleep 30; }",
                    "target": "a1", "runAsUser": "root", "retryAttempts": 1, "retryDelaySeconds": 0,
                    "profile": [{ "name": "MARK", "value": state.path().with_extension("mark").display().to_string() }] });
    let tid = data(
        server
            .graphql_as(Some(&admin), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))
            .unwrap(),
    )["createTask"]["tid"]
        .clone();
    let retried = data(
        server
            .graphql_as(Some(&admin), "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))
            .unwrap(),
    )["forceRun"]["id"]
        .as_i64()
        .unwrap();
    let mut pids = Vec::new();
    for id in [lone, retried] {
        pids.push(wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20))["pid"].as_i64().unwrap());
    }

    // The host is rebuilt: the agent and its jobs are gone, and so is its state.
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    for pid in pids {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
    }
    std::fs::remove_dir_all(state.path()).unwrap();
    wait_for("the old agent's connection to close", Duration::from_secs(20), || {
        let res = data(server.graphql_as(Some(&admin), "{ agents { name status } }", json!({})).ok()?);
        res["agents"].as_array()?.iter().any(|a| a["name"] == "a1" && a["status"] != "ONLINE").then_some(())
    })
    .unwrap();
    let _fresh = Agent::start_with_state(&server.base_url, &token, "a1", "etl", state.path()).unwrap();
    let lost = wait_status(&server, &admin, lone, &["FAILED", "SUCCESS"], Duration::from_secs(20));
    assert_eq!(lost["reason"], "agent reinstalled: attempt lost", "{lost}");
    // The task allowed one retry: its second attempt ran on the new agent, and ended.
    let again = wait_status(&server, &admin, retried, &["SUCCESS", "FAILED"], Duration::from_secs(30));
    assert_eq!((again["status"].as_str(), again["attempt"].as_i64()), (Some("SUCCESS"), Some(2)), "{again}");
    let first = &again["transitions"].as_array().unwrap().iter().find(|t| t["to"] == "FAILED").cloned();
    assert!(first.is_some(), "the lost attempt is in the history: {again}");
    // A new run on the new agent reaches its end: its events are its own, not duplicates.
    let fresh = adhoc(&server, &admin, "echo new", "root", 60);
    let done = wait_status(&server, &admin, fresh, &["SUCCESS", "FAILED"], Duration::from_secs(20));
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(output(&server, &admin, fresh, "STDOUT"), "new\n");
}

/// An agent that loses an attempt's files while it runs (its state wiped under it) says so in its
/// next heartbeat, which lists the attempts it holds: the run fails at once as lost instead of
/// staying RUNNING until the agent goes away.
#[test]
fn an_attempt_the_agent_no_longer_has_fails_at_its_next_heartbeat() {
    let cfg = std::env::temp_dir().join(format!("baton-lost-files-{}.toml", std::process::id()));
    std::fs::write(&cfg, "agent_heartbeat_seconds = 1\nagent_lost_seconds = 300\n").unwrap();
    let server = Server::start_with(&["--config", cfg.to_str().unwrap()]).unwrap();
    let admin = server.admin().unwrap();
    let token = agent_token_cli(server.data_dir.path(), "hosts").unwrap();
    let state = tempfile::tempdir().unwrap();
    let _agent = Agent::start_with_state(&server.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_online(&server, &admin, "a1");
    let id = adhoc(&server, &admin, "sleep 30", "root", 60);
    let running = wait_status(&server, &admin, id, &["RUNNING"], Duration::from_secs(20));
    std::fs::remove_file(state.path().join("runs").join(format!("{id}-1.journal"))).unwrap();
    let lost = wait_status(&server, &admin, id, &["FAILED", "SUCCESS"], Duration::from_secs(10));
    assert_eq!(lost["reason"], "the agent no longer has it: attempt lost", "{lost}");
    let pid = running["pid"].as_i64().unwrap();
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
}
