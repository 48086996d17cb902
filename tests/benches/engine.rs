//! The engine under load, through the real server and real agents on loopback, each figure next
//! to a baseline measured in the same run:
//! - 10,000 tasks due at one instant on 4 agents: from the instant to the last process start,
//!   against the time this machine needs to spawn 10,000 `sh -c true` one after the other;
//! - a chain of 100 dependent `true` tasks in a group: hop latency from one's success to the
//!   next's process start;
//! - 100,000 idle task actors: the server's resident memory against an empty server's, and the
//!   start-up time until all are armed against an empty server's.
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p baton-tests --bench engine
//! ```
//! `BENCH_DUE`, `BENCH_CHAIN` and `BENCH_IDLE` change the sizes.
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_tests::{agent_token_cli, data, wait_for, Agent, Server};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn config(dir: &std::path::Path) -> String {
    let path = dir.join("baton.toml");
    std::fs::write(&path, "agent_heartbeat_seconds = 2\nmisfire_grace_seconds = 900\n").unwrap();
    path.to_string_lossy().into_owned()
}

fn gql(s: &Server, admin: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(admin), q, v).unwrap())
}

fn import(s: &Server, admin: &str, groups: Vec<Value>, tasks: Vec<Value>) {
    let doc = json!({"kind": "baton.definitions", "version": 1,
                     "instances": [{"name": "default", "groups": groups, "tasks": tasks}]});
    let res = gql(
        s,
        admin,
        "mutation($d: JSON!) { importDefinitions(document: $d) { applied errors { path message } } }",
        json!({ "d": doc }),
    );
    assert_eq!(res["importDefinitions"]["applied"], true, "{res}");
}

fn agents(s: &Server, admin: &str, n: usize) -> Vec<Agent> {
    // One enrollment token per agent: a token enrolls one agent.
    let list: Vec<Agent> = (0..n)
        .map(|i| {
            let token = agent_token_cli(s.data_dir.path(), &format!("bench{i}")).unwrap();
            Agent::start(&s.base_url, &token, &format!("a{i}"), "bench").unwrap()
        })
        .collect();
    wait_for("the agents", Duration::from_secs(30), || {
        let res = gql(s, admin, "{ agents { status } }", json!({}));
        (res["agents"].as_array()?.iter().filter(|a| a["status"] == "ONLINE").count() == n).then_some(())
    })
    .unwrap();
    list
}

/// Every run matching `filter`, through the API's pages.
fn all_runs(s: &Server, admin: &str, filter: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let res = gql(
            s,
            admin,
            "query($f: RunFilterInput, $a: String) { runs(first: 500, after: $a, filter: $f) { edges { node { taskName status startedAt endedAt } } pageInfo { hasNextPage endCursor } } }",
            json!({ "f": filter, "a": after }),
        );
        out.extend(res["runs"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()));
        if res["runs"]["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = res["runs"]["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
}

fn count(s: &Server, admin: &str, status: &str) -> i64 {
    let res = gql(
        s,
        admin,
        "query($st: [RunStatus!]) { runs(filter: {status: $st}) { totalCount } }",
        json!({ "st": [status] }),
    );
    res["runs"]["totalCount"].as_i64().unwrap()
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A cron (with seconds) firing once, `secs` from now, in UTC.
fn once_in(secs: i64) -> (String, DateTime<Utc>) {
    let t = (Utc::now() + chrono::Duration::seconds(secs)).with_nanosecond(0).unwrap();
    (format!("{} {} {} * * *", t.second(), t.minute(), t.hour()), t)
}

fn due_at_once(n: usize) {
    let t = Instant::now();
    for _ in 0..n {
        assert!(Command::new("sh").args(["-c", "true"]).status().unwrap().success());
    }
    let spawn = t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--config", &config(dir.path())]).unwrap();
    let admin = s.admin().unwrap();
    let _agents = agents(&s, &admin, 4);
    let (cron, instant) = once_in(60);
    let tasks: Vec<Value> = (0..n)
        .map(|i| {
            json!({"name": format!("due{i:05}"), "command": "true", "target": "bench", "run_as_user": "root",
                        "schedule": {"cron": cron, "timezone": "UTC"}})
        })
        .collect();
    let t = Instant::now();
    import(&s, &admin, Vec::new(), tasks);
    let imported = t.elapsed().as_secs_f64();
    assert!(Utc::now() < instant, "the import took {imported:.1} s, past the due instant: raise the lead time");
    wait_for("every run to succeed", Duration::from_secs(1800), || {
        (count(&s, &admin, "SUCCESS") >= n as i64).then_some(())
    })
    .unwrap();
    let runs = all_runs(&s, &admin, json!({}));
    assert_eq!(runs.len(), n, "one run per task");
    let last_start = runs.iter().map(|r| at(&r["startedAt"])).max().unwrap();
    let took = (last_start - instant).num_milliseconds() as f64 / 1000.0;
    println!("{n} `sh -c true` spawned one by one   {spawn:>8.2} s");
    println!("{n} tasks due at once, 4 agents: instant -> last process start {took:>8.2} s   ({:.2}x)", took / spawn);
    println!("   (import of {n} tasks: {imported:.1} s)");
}

fn chain(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&["--config", &config(dir.path())]).unwrap();
    let admin = s.admin().unwrap();
    let _agents = agents(&s, &admin, 1);
    let (cron, _) = once_in(20);
    let group = json!({"name": "chain", "schedule": {"cron": cron, "timezone": "UTC"}});
    let tasks: Vec<Value> = (0..n)
        .map(|i| {
            let mut t = json!({"name": format!("c{i:03}"), "group": "chain", "command": "true", "target": "bench", "run_as_user": "root"});
            if i > 0 {
                t["dependency"] = json!(format!("S:c{:03}", i - 1));
            }
            t
        })
        .collect();
    import(&s, &admin, vec![group], tasks);
    wait_for("the chain", Duration::from_secs(600), || (count(&s, &admin, "SUCCESS") >= n as i64).then_some(()))
        .unwrap();
    let mut runs = all_runs(&s, &admin, json!({}));
    runs.sort_by(|a, b| a["taskName"].as_str().cmp(&b["taskName"].as_str()));
    let mut hops: Vec<f64> = runs
        .windows(2)
        .map(|w| (at(&w[1]["startedAt"]) - at(&w[0]["endedAt"])).num_microseconds().unwrap() as f64 / 1000.0)
        .collect();
    hops.sort_by(f64::total_cmp);
    let t = Instant::now();
    let k = 200;
    for _ in 0..k {
        assert!(Command::new("sh").args(["-c", "true"]).status().unwrap().success());
    }
    let spawn_ms = t.elapsed().as_secs_f64() * 1000.0 / k as f64;
    println!("one `sh -c true` spawn (baseline)       {spawn_ms:>8.2} ms");
    println!(
        "chain of {n}: success -> next process start  p50 {:>7.2} ms  p99 {:>7.2} ms   (p50 {:.1}x a spawn)",
        percentile(&hops, 0.5),
        percentile(&hops, 0.99),
        percentile(&hops, 0.5) / spawn_ms
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

/// Restarts a server on its data and times it until `n` task actors are armed; returns the
/// time and the resident memory then.
fn restart_until_armed(data: tempfile::TempDir, cfg: &str, password: &str, n: i64) -> (f64, u64, tempfile::TempDir) {
    let t = Instant::now();
    let s = Server::start_in(data, &["--config", cfg]).unwrap();
    let admin = s.login("admin", password).unwrap();
    wait_for("the actors", Duration::from_secs(600), || {
        let h = gql(&s, &admin, "{ scheduler { taskActors } }", json!({}));
        (h["scheduler"]["taskActors"].as_i64() == Some(n)).then_some(())
    })
    .unwrap();
    let took = t.elapsed().as_secs_f64();
    let rss = rss_kib(s.pid());
    (took, rss, s.kill())
}

fn idle(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let s = Server::start_with(&["--config", &cfg]).unwrap();
    let admin = s.admin().unwrap();
    let password = s.admin_password.clone();
    let data = s.kill();
    let (empty_start, empty_rss, data) = restart_until_armed(data, &cfg, &password, 0);
    let s = Server::start_in(data, &["--config", &cfg]).unwrap();
    let admin2 = s.login("admin", &password).unwrap();
    let _ = admin;
    // Once a year: idle all through the bench.
    let tasks: Vec<Value> = (0..n)
        .map(|i| {
            json!({"name": format!("idle{i:06}"), "command": "true", "target": "bench", "run_as_user": "root",
                        "schedule": {"cron": "0 0 1 1 *", "timezone": "Europe/London"}})
        })
        .collect();
    for chunk in tasks.chunks(20_000) {
        import(&s, &admin2, Vec::new(), chunk.to_vec());
    }
    let data = s.kill();
    let (start, rss, _data) = restart_until_armed(data, &cfg, &password, n as i64);
    println!("empty server: start-up {empty_start:>6.2} s, resident {:>7.1} MiB", empty_rss as f64 / 1024.0);
    println!(
        "{n} idle task actors: start-up {start:>6.2} s ({:.1}x), resident {:>7.1} MiB ({:.1}x; {:.0} bytes per task)",
        start / empty_start,
        rss as f64 / 1024.0,
        rss as f64 / empty_rss as f64,
        (rss.saturating_sub(empty_rss)) as f64 * 1024.0 / n as f64
    );
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if want("chain") {
        chain(size("BENCH_CHAIN", 100));
    }
    if want("due") {
        due_at_once(size("BENCH_DUE", 10_000));
    }
    if want("idle") {
        idle(size("BENCH_IDLE", 100_000));
    }
}
