//! The agent protects its host, over the real server and agent: a dispatch for a user the agent
//! does not allow runs nothing; a run-as user's link from its output path to a file only root
//! may touch gets it neither opened nor given away; the job can neither read the agent's state
//! nor write the journal the agent trusts. The attacks that need another user run where the
//! tests run as root (as in CI).
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_hello, agent_hello_as, data, in_ci, next_agent_frame, wait_for, Agent, AgentSocket, Server};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

fn gql(s: &Server, token: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(token), q, v).unwrap())
}

/// Waits for the server's one agent to be online.
fn wait_online(s: &Server, admin: &str) {
    wait_for("the agent", Duration::from_secs(20), || {
        (gql(s, admin, "{ agents { status } }", json!({}))["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
}

/// A server and one agent `a1` started with `extra` flags.
fn rig(extra: &[&str]) -> (Server, String, Agent) {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let agent = Agent::start_with_args(&s.base_url, &agent_token(&s, &admin, "t").0, "a1", "etl", extra).unwrap();
    wait_online(&s, &admin);
    (s, admin, agent)
}

fn adhoc(s: &Server, admin: &str, command: &str, user: &str) -> i64 {
    gql(
        s,
        admin,
        "mutation($c: String!, $u: String!) { runAdhoc(agents: [\"a1\"], command: $c, runAsUser: $u) { id } }",
        json!({ "c": command, "u": user }),
    )["runAdhoc"][0]["id"]
        .as_i64()
        .unwrap()
}

fn ended(s: &Server, admin: &str, id: i64) -> Value {
    wait_for("the run to end", Duration::from_secs(30), || {
        let r =
            gql(s, admin, "query($id: Int!) { run(id: $id) { status reason } }", json!({ "id": id }))["run"].clone();
        matches!(r["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(r)
    })
    .unwrap()
}

/// Creates the task `task` and forces a run of it; the run's id.
fn force_task(s: &Server, admin: &str, task: Value) -> i64 {
    let tid = gql(s, admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": task }))
        ["createTask"]["tid"]
        .as_i64()
        .unwrap();
    gql(s, admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .as_i64()
        .unwrap()
}

fn stdout(s: &Server, admin: &str, id: i64) -> String {
    let q = "query($id: Int!) { runOutput(runId: $id, stream: STDOUT, limit: 1048576) { data } }";
    gql(s, admin, q, json!({ "id": id }))["runOutput"]["data"].as_str().unwrap_or("").to_string()
}

fn as_root() -> bool {
    let root = nix_uid() == 0;
    if !root {
        assert!(!in_ci(), "CI runs the tests as root");
        eprintln!("skipped: the agent must run as root to become another user");
    }
    root
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

#[test]
fn a_user_the_agent_does_not_allow_runs_nothing() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    // Root is not named: even a root agent refuses it.
    let (s, admin, _agent) = rig(&["--allow-run-as", "nobody"]);
    let id = adhoc(&s, &admin, &format!("touch {}", touched.display()), "root");
    let r = ended(&s, &admin, id);
    assert_eq!(r["status"], "FAILED", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("run-as user root is not allowed on this agent (--allow-run-as: nobody)"), "{reason}");
    assert!(!touched.exists(), "nothing ran");
}

#[test]
fn a_link_from_an_output_path_does_not_reach_what_only_root_may_touch() {
    if !as_root() {
        return;
    }
    let (s, admin, _agent) = rig(&["--allow-run-as", "nobody"]);
    // A file only root may read, and a directory of nobody's where it left a link to it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:secret-hash\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home = dir.path().join("nobody-logs");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::symlink(&secret, home.join("job.log")).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let task = json!({ "name": "linked", "command": "echo from-the-job", "target": "etl", "runAsUser": "nobody",
                       "stdoutPath": home.join("job.log").to_string_lossy() });
    let id = force_task(&s, &admin, task);
    let r = ended(&s, &admin, id);
    assert_eq!(r["status"], "FAILED", "nobody may not write root's file: {r}");
    assert!(r["reason"].as_str().unwrap().contains("opening the output file"), "{r}");
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600), "the file is still root's alone");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root:secret-hash\n", "and unchanged");
    assert!(!stdout(&s, &admin, id).contains("secret-hash"), "nor streamed");
}

/// Whatever path a task's output names, the agent (root) sends only what the run-as user could
/// read: a root-only file named as the output path (no link) is not read when the job cannot
/// open it, and a root-only file the job moved to its output path while the agent was away is
/// not read by the restarted agent, which reads only the file the shim opened as the user.
#[test]
fn the_agent_never_reads_past_the_run_as_users_rights_through_an_output_path() {
    if !as_root() {
        return;
    }
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let token = agent_token(&s, &admin, "t").0;
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_online(&s, &admin);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret_text = "padding-padding-padding root:secret-hash\n";
    let root_only = |path: &std::path::Path| {
        std::fs::write(path, secret_text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    // Named as the output path itself.
    let shadow = dir.path().join("shadow");
    root_only(&shadow);
    let task = json!({ "name": "named", "command": "echo from-the-job", "target": "etl", "runAsUser": "nobody",
                       "stdoutPath": shadow.to_string_lossy() });
    let id = force_task(&s, &admin, task);
    let r = ended(&s, &admin, id);
    assert_eq!(r["status"], "FAILED", "nobody may not write root's file: {r}");
    assert!(!stdout(&s, &admin, id).contains("secret-hash"), "root's file was sent as the run's output");

    // A root file anyone may write to but only root may read: the job writes, nothing is sent.
    let drop_box = dir.path().join("drop-box");
    root_only(&drop_box);
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o622)).unwrap();
    let task = json!({ "name": "write_only", "command": "echo from-the-job", "target": "etl", "runAsUser": "nobody",
                       "stdoutPath": drop_box.to_string_lossy() });
    let id = force_task(&s, &admin, task);
    assert_eq!(ended(&s, &admin, id)["status"], "SUCCESS");
    let sent = stdout(&s, &admin, id);
    assert!(sent.contains("not sent: the run-as user may not read"), "{sent:?}");
    assert!(!sent.contains("secret-hash") && !sent.contains("from-the-job"), "{sent:?}");

    // Moved to the output path by the job (a root-only file left in nobody's directory), while
    // the agent is away; the agent comes back and resumes the attempt.
    let home = dir.path().join("nobody-home");
    std::fs::create_dir(&home).unwrap();
    root_only(&home.join("left-by-root"));
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let out = home.join("job.log");
    let moved = home.join("moved");
    let command = format!(
        "echo first; while [ ! -e {go} ]; do sleep 0.1; done; mv -f {left} {out}; touch {moved}; sleep 1",
        go = home.join("go").display(),
        left = home.join("left-by-root").display(),
        out = out.display(),
        moved = moved.display()
    );
    let task = json!({ "name": "swapped", "command": command, "target": "etl", "runAsUser": "nobody",
                       "stdoutPath": out.to_string_lossy() });
    let id = force_task(&s, &admin, task);
    wait_for("the job's first line", Duration::from_secs(20), || {
        stdout(&s, &admin, id).contains("first").then_some(())
    })
    .unwrap();
    agent.signal("KILL");
    let _ = agent.wait_exit(Duration::from_secs(10));
    std::fs::write(home.join("go"), "").unwrap();
    wait_for("the job to move root's file", Duration::from_secs(20), || moved.exists().then_some(())).unwrap();
    let _agent = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    let r = ended(&s, &admin, id);
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let sent = stdout(&s, &admin, id);
    assert!(!sent.contains("secret-hash"), "root's file was sent as the run's output: {sent:?}");
    assert_eq!(sent, "first\n");
}

#[test]
fn the_job_cannot_read_the_agents_state_or_write_its_journal() {
    if !as_root() {
        return;
    }
    let (s, admin, agent) = rig(&["--allow-run-as", "nobody,root"]);
    let state = agent.state_dir.clone();
    // A job of root's first, whose output the next job tries to read.
    let first = adhoc(&s, &admin, "echo root-only-output", "root");
    assert_eq!(ended(&s, &admin, first)["status"], "SUCCESS");
    let journal = state.join("runs").join("JOB.journal");
    let cmd = format!(
        "cat {state}/events.log {state}/runs/{first}-1.out; echo read=$?; \
         printf '{{\"pid\":1}}\\n' >> {journal}; echo wrote=$?",
        state = state.display(),
        journal = journal.display().to_string().replace("JOB", "${BATON_RUN_ID}-${BATON_ATTEMPT}"),
    );
    let id = adhoc(&s, &admin, &cmd, "nobody");
    let r = ended(&s, &admin, id);
    assert_eq!(r["status"], "SUCCESS", "{r}");
    let out = stdout(&s, &admin, id);
    assert!(!out.contains("root-only-output"), "{out}");
    assert!(out.contains("read=") && out.contains("wrote="), "{out}");
    assert!(!out.contains("read=0") && !out.contains("wrote=0"), "both refused: {out}");
    // The files themselves: the state the agent's alone.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("runs")), 0o700);
    assert_eq!(mode(&state.join("events.log")), 0o600);
    let journal = state.join("runs").join(format!("{id}-1.journal"));
    assert_eq!((mode(&journal), std::fs::metadata(&journal).unwrap().uid()), (0o600, 0));
    assert!(!std::fs::read_to_string(&journal).unwrap().contains("{\"pid\":1}"));
}

/// Says hello on a new agent connection; the server's first answer.
fn hello(s: &Server, token: &str, name: &str) -> (AgentSocket, Value) {
    agent_hello(&s.base_url, token, name).unwrap()
}

fn agent_token(s: &Server, admin: &str, name: &str) -> (String, i64) {
    let res = gql(
        s,
        admin,
        "mutation($n: String!) { createAgentToken(name: $n) { token info { id } } }",
        json!({ "n": name }),
    );
    (
        res["createAgentToken"]["token"].as_str().unwrap().to_string(),
        res["createAgentToken"]["info"]["id"].as_i64().unwrap(),
    )
}

#[test]
fn an_agent_is_who_its_token_says() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let (prod, prod_id) = agent_token(&s, &admin, "prod");
    let (other, _) = agent_token(&s, &admin, "other");
    // The first registration binds the token to its name (and to the hostname and queues it
    // claims: this host's and etl, as the real agent started with it below claims).
    let host = baton_tests::this_hostname();
    let as_prod01 = |token: &str, name: &str| agent_hello_as(&s.base_url, token, name, &host, &["etl"]).unwrap();
    let (ws, answer) = as_prod01(&prod, "prod01");
    assert_eq!(answer["type"], "welcome", "{answer}");
    drop(ws);
    // Another live token cannot take that name, online or not; the token no other name.
    let (_, answer) = as_prod01(&other, "prod01");
    assert_eq!(answer["type"], "refused", "{answer}");
    assert_eq!(answer["reason"], "agent prod01 is enrolled with another token");
    let (_, answer) = as_prod01(&prod, "prod02");
    assert_eq!(answer["reason"], "this enrollment token belongs to agent prod01, not prod02", "{answer}");

    // An event numbered far past what was stored is refused: it would hide the real agent's.
    let (mut ws, answer) = wait_for("prod01's name to be free again", Duration::from_secs(10), || {
        let (ws, answer) = as_prod01(&prod, "prod01");
        (answer["type"] == "welcome").then_some((ws, answer))
    })
    .unwrap();
    assert_eq!(answer["acked_seq"], 0);
    let event = json!({"type": "event", "seq": 1_000_000, "run_id": 1, "attempt": 1, "event": {"kind": "accepted"}});
    ws.send(tungstenite::Message::Text(event.to_string().into())).unwrap();
    let answer = next_agent_frame(&mut ws).unwrap();
    assert_eq!((answer["type"].as_str(), answer["code"].as_str()), (Some("error"), Some("malformed")), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("more than 1000 past the last one stored"), "{answer}");
    drop(ws);

    // Revoking the token ends its agent's connection at once: the agent is told and stops.
    let mut agent = wait_for("a real agent to connect", Duration::from_secs(20), || {
        let mut a = Agent::start(&s.base_url, &prod, "prod01", "etl").unwrap();
        let online = wait_for("prod01 online", Duration::from_secs(5), || {
            let res = gql(&s, &admin, "{ agents { name status } }", json!({}));
            res["agents"].as_array()?.iter().any(|a| a["name"] == "prod01" && a["status"] == "ONLINE").then_some(())
        });
        if online.is_err() {
            let _ = a.child.kill();
            return None;
        }
        Some(a)
    })
    .unwrap();
    gql(&s, &admin, "mutation($id: Int!) { revokeAgentToken(id: $id) }", json!({ "id": prod_id }));
    let status = wait_for("the agent to stop", Duration::from_secs(10), || agent.child.try_wait().unwrap()).unwrap();
    assert_eq!(status.code(), Some(2), "refused: exit code 2");
    wait_for("prod01 offline", Duration::from_secs(10), || {
        let res = gql(&s, &admin, "{ agents { name status } }", json!({}));
        res["agents"].as_array()?.iter().any(|a| a["name"] == "prod01" && a["status"] == "OFFLINE").then_some(())
    })
    .unwrap();
}

/// The agent's files (its state directory but the jobs' own output) that hold `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let job_output = p.extension().is_some_and(|x| x == "out" || x == "err");
            if p.is_dir() {
                dirs.push(p);
            } else if !job_output && std::fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_credential_is_never_on_the_agents_disk_even_across_an_agent_restart() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let (token, _) = agent_token(&s, &admin, "t");
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    wait_online(&s, &admin);
    let secret = "s3cret-Value-4217";
    let set = |v: &str| {
        gql(
            &s,
            &admin,
            "mutation($v: String!) { setCredential(key: \"db/password\", value: $v) { version } }",
            json!({ "v": v }),
        )
    };
    set(secret);
    // The job prints the secret, waits to be told to go on, and prints it again.
    let start = |name: &str, go: &std::path::Path| {
        let command = format!(
            "echo \"pw=$DB_PASSWORD\"; while [ ! -e {go} ]; do sleep 0.05; done; echo \"again=$DB_PASSWORD\"",
            go = go.display()
        );
        let task = json!({ "name": name, "command": command, "target": "etl", "runAsUser": "root",
                           "profile": [{ "name": "DB_PASSWORD", "value": "${C:db/password}" }] });
        force_task(&s, &admin, task)
    };
    let go = state.path().join("go");
    let id = start("uses_secret", &go);
    let masked = format!("pw={}\n", "*".repeat(secret.len()));
    wait_for("the masked first line", Duration::from_secs(30), || (stdout(&s, &admin, id) == masked).then_some(()))
        .unwrap();

    // While the job runs, no file of the agent's holds the value, nor the variable holding it.
    assert_eq!(files_holding(state.path(), secret), Vec::<String>::new());
    let journal = std::fs::read_to_string(state.path().join("runs").join(format!("{id}-1.journal"))).unwrap();
    assert!(journal.contains("\"job\"") && !journal.contains("\"DB_PASSWORD\":"), "{journal}");

    // A restarted agent asks the server for the values again and masks what follows.
    agent.signal("KILL");
    let _ = agent.wait_exit(Duration::from_secs(5));
    let mut again = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    std::fs::write(&go, "").unwrap();
    assert_eq!(ended(&s, &admin, id)["status"], "SUCCESS");
    let out = stdout(&s, &admin, id);
    assert_eq!(out, format!("{masked}again={}\n", "*".repeat(secret.len())));
    assert_eq!(files_holding(state.path(), secret), Vec::<String>::new());

    // Rotated while the agent was away, the values the job runs with are gone: the rest is
    // withheld, and the output says so.
    let go2 = state.path().join("go2");
    let id = start("uses_secret_2", &go2);
    wait_for("the masked first line", Duration::from_secs(30), || (stdout(&s, &admin, id) == masked).then_some(()))
        .unwrap();
    again.signal("KILL");
    let _ = again.wait_exit(Duration::from_secs(5));
    set("r0tated-Value-8841");
    let _third = Agent::start_with_state(&s.base_url, &token, "a1", "etl", state.path()).unwrap();
    std::fs::write(&go2, "").unwrap();
    assert_eq!(ended(&s, &admin, id)["status"], "SUCCESS");
    let out = stdout(&s, &admin, id);
    assert!(out.starts_with(&masked) && out.contains("output withheld"), "{out}");
    assert!(!out.contains(secret) && !out.contains("again="), "{out}");
    assert_eq!(files_holding(state.path(), secret), Vec::<String>::new());
}

/// What an agent or a client says about itself is bounded before it is hashed, stored or used
/// as a key: a megabyte token or hostname in a hello is refused naming the field, a bearer token
/// longer than any the server issues is no token, and the server carries on.
#[test]
fn oversized_claims_are_refused_before_they_are_hashed_or_stored() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let (token, _) = agent_token(&s, &admin, "t");
    let huge = "x".repeat(1 << 20);
    let (_, answer) = hello(&s, &huge, "a1");
    assert_eq!(
        (answer["type"].as_str(), answer["reason"].as_str()),
        (Some("refused"), Some("the enrollment token is unknown or revoked"))
    );
    let url = s.url("/agent").replace("http://", "ws://");
    let (mut ws, _) = tungstenite::connect(url.as_str()).unwrap();
    let hello = json!({"type": "hello", "protocol": 1, "token": token, "name": "a1", "hostname": huge, "queues": [],
                       "version": "x", "os": "y", "last_acked_seq": 0});
    ws.send(tungstenite::Message::Text(hello.to_string().into())).unwrap();
    let answer = next_agent_frame(&mut ws).unwrap();
    assert_eq!(answer["reason"], "hostname: at most 255 bytes", "{answer}");
    let res = s.graphql_as(Some(&"x".repeat(4096)), "{ me { username } }", json!({})).unwrap();
    assert_eq!(baton_tests::error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "{res}");
    // The token is still free for its agent.
    let (_, answer) = self::hello(&s, &token, "a1");
    assert_eq!(answer["type"], "welcome", "{answer}");
}
