//! Runs survive a server killed at any moment, on SQLite and on PostgreSQL: scheduled slots under
//! random SIGKILLs (every slot has one run, every run ends, no attempt runs twice), a retry whose
//! delay spans the restart, a group chain killed mid-way, and a time limit that still holds after
//! the restart. The commands record `BATON_RUN_ID` and `BATON_ATTEMPT`, so a second execution of
//! an attempt is seen.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{data, databases, executions, free_port, wait_for, Agent, Server};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

const CONFIG: &str = "agent_heartbeat_seconds = 1\nagent_missed_heartbeats = 3\nagent_lost_seconds = 60\n";

/// A server that can be killed and started again on the same address, data directory and
/// database, with its admin's token and an agent connected to it.
struct Cluster {
    server: Option<Server>,
    listen: String,
    args: Vec<String>,
    password: String,
    admin: String,
    _agent: Agent,
    /// Where the commands append "RUN ATTEMPT".
    log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Cluster {
    fn start(database: Option<String>) -> Cluster {
        let scratch = tempfile::tempdir().unwrap();
        let config = scratch.path().join("baton.toml");
        std::fs::write(&config, CONFIG).unwrap();
        let mut args = vec!["--config".to_string(), config.to_string_lossy().into_owned()];
        if let Some(url) = database {
            args.extend(["--database-url".to_string(), url]);
        }
        let listen = format!("127.0.0.1:{}", free_port());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start_at(tempfile::tempdir().unwrap(), &listen, &argv).unwrap();
        let admin = server.admin().unwrap();
        let token = data(
            server
                .graphql_as(Some(&admin), "mutation { createAgentToken(name: \"hosts\") { token } }", json!({}))
                .unwrap(),
        )["createAgentToken"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        let agent = Agent::start(&server.base_url, &token, "a1", "etl").unwrap();
        let log = scratch.path().join("executions.log");
        let c = Cluster {
            password: server.admin_password.clone(),
            server: Some(server),
            listen,
            args,
            admin,
            _agent: agent,
            log,
            _scratch: scratch,
        };
        c.wait_online();
        c
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn gql(&self, q: &str, v: Value) -> Value {
        data(self.server().graphql_as(Some(&self.admin), q, v).unwrap())
    }

    fn wait_online(&self) {
        wait_for("a1 online", Duration::from_secs(30), || {
            let res = data(self.server().graphql_as(Some(&self.admin), "{ agents { name status } }", json!({})).ok()?);
            res["agents"].as_array()?.iter().any(|a| a["name"] == "a1" && a["status"] == "ONLINE").then_some(())
        })
        .unwrap();
    }

    /// SIGKILL, then start again on the same address, data directory and database.
    fn kill_and_restart(&mut self) {
        let data_dir = self.server.take().unwrap().kill();
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let server = Server::start_at(data_dir, &self.listen, &argv).unwrap();
        self.admin = server.login("admin", &self.password).unwrap();
        self.server = Some(server);
    }

    /// A command that records its run and attempt, then does `then`.
    fn command(&self, then: &str) -> String {
        format!("echo \"$BATON_RUN_ID $BATON_ATTEMPT\" >> {}; {then}", self.log.display())
    }

    fn task(&self, input: Value) -> i64 {
        self.gql("mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": input }))["createTask"]
            ["tid"]
            .as_i64()
            .unwrap()
    }

    fn run(&self, id: i64) -> Value {
        self.gql(RUN, json!({ "id": id }))["run"].clone()
    }

    /// Polls a run until `done` holds; requests that fail meanwhile (a server restarting) are
    /// tried again.
    fn wait_run(&self, id: i64, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        wait_for(&format!("run {id}: {what}"), timeout, || {
            let res = self.server().graphql_as(Some(&self.admin), RUN, json!({ "id": id })).ok()?;
            let r = data(res)["run"].clone();
            done(&r).then_some(r)
        })
        .unwrap()
    }

    /// Every run of a task (or of a group), oldest first.
    fn runs_of(&self, filter: Value) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.gql(
                "query($f: RunFilterInput, $a: String) { runs(first: 200, after: $a, filter: $f) {
                   edges { node { id taskName slot status attempt reason } } pageInfo { hasNextPage endCursor } } }",
                json!({ "f": filter, "a": after }),
            );
            let runs = &page["runs"];
            out.extend(runs["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()));
            if runs["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = runs["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        out.sort_by_key(|r| r["id"].as_i64().unwrap());
        out
    }

    /// How many times each (run, attempt) was executed.
    fn executions(&self) -> BTreeMap<(i64, i64), usize> {
        executions(&self.log)
    }
}

const RUN: &str = "query($id: Int!) { run(id: $id) { id status attempt reason transitions { from to attempt at } } }";

const FINAL: [&str; 4] = ["SUCCESS", "FAILED", "TERMINATED", "SKIPPED"];

fn is_final(r: &Value) -> bool {
    FINAL.contains(&r["status"].as_str().unwrap_or_default())
}

/// A small deterministic generator for the kill moments (its seed is printed, to replay a failure).
struct Chaos(u64);

impl Chaos {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// The runs' invariants: every run ended, no attempt ran twice, every successful attempt ran.
fn check_runs(c: &Cluster, runs: &[Value]) {
    let executed = c.executions();
    let twice: Vec<_> = executed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts executed more than once: {twice:?}");
    for r in runs {
        assert!(is_final(r), "a run left unfinished: {r}");
        let key = (r["id"].as_i64().unwrap(), r["attempt"].as_i64().unwrap());
        if r["status"] == "SUCCESS" {
            assert_eq!(executed.get(&key), Some(&1), "a successful attempt ran once: {r}");
        }
        if r["status"] == "SKIPPED" {
            assert!(!executed.keys().any(|(id, _)| *id == key.0), "a skipped run never ran: {r}");
        }
    }
}

fn scheduled_slots_survive_random_kills(database: Option<String>) {
    let mut c = Cluster::start(database);
    let seed = u64::try_from(Utc::now().timestamp_micros()).unwrap() | 1;
    eprintln!("chaos seed {seed}");
    let mut chaos = Chaos(seed);
    let tids: Vec<i64> = (0..4)
        .map(|i| {
            c.task(json!({
                "name": format!("every2s_{i}"), "command": c.command("sleep 0.3"), "target": "etl", "runAsUser": "root",
                "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}, "misfirePolicy": "run_all",
            }))
        })
        .collect();
    for _ in 0..5 {
        // A random moment: after 1 to 8 more executions.
        let seen: usize = c.executions().values().sum();
        let more = usize::try_from(1 + chaos.next(8)).unwrap();
        wait_for("more executions", Duration::from_secs(30), || {
            (c.executions().values().sum::<usize>() >= seen + more).then_some(())
        })
        .unwrap();
        c.kill_and_restart();
    }
    c.wait_online();
    // The restarted engine is back at work: every task has run a slot after the last restart.
    let back = Utc::now().naive_utc();
    for tid in &tids {
        wait_for("a run after the last restart", Duration::from_secs(30), || {
            c.runs_of(json!({ "taskId": tid }))
                .iter()
                .any(|r| {
                    r["status"] == "SUCCESS"
                        && r["slot"]
                            .as_str()
                            .and_then(|s| s.parse::<chrono::NaiveDateTime>().ok())
                            .is_some_and(|t| t > back)
                })
                .then_some(())
        })
        .unwrap();
    }
    for tid in &tids {
        c.gql("mutation($t: Int!) { setTaskActive(tid: $t, active: false) { tid } }", json!({ "t": tid }));
    }
    let mut all = Vec::new();
    for tid in &tids {
        let runs = wait_for("every run to end", Duration::from_secs(60), || {
            let runs = c.runs_of(json!({ "taskId": tid }));
            runs.iter().all(is_final).then_some(runs)
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", c.runs_of(json!({ "taskId": tid }))));
        // One run per slot, and no slot lost between the first and the last.
        let slots: Vec<DateTime<Utc>> = runs
            .iter()
            .map(|r| format!("{}Z", r["slot"].as_str().unwrap()).parse::<DateTime<Utc>>().unwrap())
            .collect();
        let mut sorted = slots.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), slots.len(), "a slot with two runs: {slots:?}");
        let gaps: Vec<_> = sorted.windows(2).filter(|w| (w[1] - w[0]).num_seconds() != 2).collect();
        assert!(gaps.is_empty(), "slots with no run between {gaps:?} (seed {seed})");
        assert!(runs.len() >= 5, "{runs:?}");
        all.extend(runs);
    }
    check_runs(&c, &all);
    let ran = all.iter().filter(|r| r["status"] == "SUCCESS").count();
    eprintln!("{} runs, {ran} ran, the rest skipped as missed; seed {seed}", all.len());
}

#[test]
fn scheduled_slots_survive_random_server_kills() {
    for db in databases() {
        scheduled_slots_survive_random_kills(db);
    }
}

fn retry_delay_spans_a_restart(database: Option<String>) {
    let mut c = Cluster::start(database);
    let counter = c.log.with_file_name("n");
    let cmd = c.command(&format!(
        "n=$(cat {f} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {f}; [ $n -ge 2 ]",
        f = counter.display()
    ));
    let tid = c.task(json!({"name": "flaky", "command": cmd, "target": "etl", "runAsUser": "root",
                             "retryAttempts": 2, "retryDelaySeconds": 6}));
    let id = c.gql("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .as_i64()
        .unwrap();
    c.wait_run(id, "waiting for its retry", Duration::from_secs(20), |r| r["status"] == "IDLE" && r["attempt"] == 1);
    c.kill_and_restart();
    let done = c.wait_run(id, "to end", Duration::from_secs(40), is_final);
    assert_eq!((done["status"].as_str(), done["attempt"].as_i64()), (Some("SUCCESS"), Some(2)), "{done}");
    let at = |to: &str, attempt: i64| -> DateTime<Utc> {
        let t = done["transitions"].as_array().unwrap().iter().find(|t| t["to"] == to && t["attempt"] == attempt);
        t.unwrap()["at"].as_str().unwrap().parse().unwrap()
    };
    let waited = at("TRIGGERED", 2) - at("FAILED", 1);
    assert!(waited >= chrono::Duration::seconds(6), "retried after {waited}, before its 6 s delay");
    assert_eq!(c.executions(), BTreeMap::from([((id, 1), 1), ((id, 2), 1)]));
}

#[test]
fn a_retry_waiting_across_a_server_kill_runs_at_its_time_once() {
    for db in databases() {
        retry_delay_spans_a_restart(db);
    }
}

fn chain_killed_mid_way(database: Option<String>) {
    let mut c = Cluster::start(database);
    let at = Utc::now() + chrono::Duration::seconds(4);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let gid = c.gql(
        "mutation($c: String!) { createGroup(input: {name: \"chain\", schedule: {cron: $c, timezone: \"UTC\"}}) { gid } }",
        json!({ "c": cron }),
    )["createGroup"]["gid"]
        .as_i64()
        .unwrap();
    let names = ["one", "two", "three", "four", "five"];
    for (i, name) in names.iter().enumerate() {
        let dep = (i > 0).then(|| format!("S:{}", names[i - 1]));
        c.task(json!({"name": name, "group": "chain", "command": c.command("sleep 1"), "target": "etl",
                      "runAsUser": "root", "dependency": dep}));
    }
    wait_for("three running", Duration::from_secs(40), || {
        let runs = c.runs_of(json!({ "groupId": gid }));
        runs.iter().any(|r| r["taskName"] == "three" && r["status"] == "RUNNING").then_some(())
    })
    .unwrap();
    c.kill_and_restart();
    let runs = wait_for("the chain to end", Duration::from_secs(60), || {
        let runs = c.runs_of(json!({ "groupId": gid }));
        (runs.len() == 5 && runs.iter().all(is_final)).then_some(runs)
    })
    .unwrap();
    let by_name: HashMap<&str, &str> =
        runs.iter().map(|r| (r["taskName"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(names.map(|n| by_name[n]), ["SUCCESS"; 5], "{runs:?}");
    let group = wait_for("the group run to end", Duration::from_secs(20), || {
        let res = c.gql("query($g: Int!) { groupRuns(gid: $g) { status } }", json!({ "g": gid }));
        let s = res["groupRuns"][0]["status"].as_str()?.to_string();
        (s != "RUNNING" && s != "IDLE").then_some(s)
    })
    .unwrap();
    assert_eq!(group, "SUCCESS");
    check_runs(&c, &runs);
}

#[test]
fn a_group_chain_killed_mid_way_completes() {
    for db in databases() {
        chain_killed_mid_way(db);
    }
}

fn time_limit_holds_after_restart(database: Option<String>) {
    let mut c = Cluster::start(database);
    let tid = c.task(json!({"name": "slow", "command": c.command("sleep 60"), "target": "etl", "runAsUser": "root",
                             "maxRunTimeSeconds": 3}));
    let id = c.gql("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .as_i64()
        .unwrap();
    c.wait_run(id, "running", Duration::from_secs(20), |r| r["status"] == "RUNNING");
    c.kill_and_restart();
    let done = c.wait_run(id, "to end", Duration::from_secs(30), is_final);
    assert_eq!((done["status"].as_str(), done["reason"].as_str()), (Some("FAILED"), Some("timed out after 3 s")));
    assert_eq!(c.run(id)["attempt"], 1);
}

#[test]
fn a_run_timed_out_after_a_restart_is_timed_out_at_its_max_run_time() {
    for db in databases() {
        time_limit_holds_after_restart(db);
    }
}
