//! End-to-end throughput and latency of trivial runs through the real server and one agent on
//! loopback, against the raw rate at which this machine spawns `sh -c true`, measured in the same
//! run. Build the release binaries first:
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p baton-tests --bench lifecycle
//! ```
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_tests::{agent_token_cli, data, wait_for, Agent, Server};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        assert!(Command::new("sh").args(["-c", "true"]).status().unwrap().success());
    }
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, "agent_heartbeat_seconds = 1\n").unwrap();
    let s = Server::start_with(&["--config", config.to_str().unwrap()]).unwrap();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "bench").unwrap();
    let _agent = Agent::start(&s.base_url, &token, "a1", "bench").unwrap();
    wait_for("the agent", Duration::from_secs(20), || {
        let res = data(s.graphql_as(Some(&admin), "{ agents { status } }", json!({})).ok()?);
        (res["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    let submit = |cmd: &str| {
        let res = s
            .graphql_as(
                Some(&admin),
                "mutation($c: String!) { runAdhoc(agents: [\"a1\"], command: $c, runAsUser: \"root\") { id } }",
                json!({ "c": cmd }),
            )
            .unwrap();
        data(res)["runAdhoc"][0]["id"].as_i64().unwrap()
    };
    let successes = || {
        let res = data(
            s.graphql_as(Some(&admin), "{ runs(filter: {status: [SUCCESS]}) { totalCount } }", json!({})).unwrap(),
        );
        res["runs"]["totalCount"].as_i64().unwrap()
    };

    // Latency, one run at a time (not saturated): from the dispatch to the process start, as the
    // server records them (TRIGGERED and RUNNING transitions).
    let mut lat = Vec::new();
    for i in 0..100 {
        let id = submit("true");
        wait_for("a run", Duration::from_secs(30), || (successes() > i).then_some(())).unwrap();
        let r = data(
            s.graphql_as(
                Some(&admin),
                "query($id: Int!) { run(id: $id) { transitions { to at } } }",
                json!({ "id": id }),
            )
            .unwrap(),
        );
        let at = |to: &str| {
            let t = r["run"]["transitions"].as_array().unwrap().iter().find(|t| t["to"] == to).unwrap();
            chrono::DateTime::parse_from_rfc3339(t["at"].as_str().unwrap()).unwrap()
        };
        lat.push((at("RUNNING") - at("TRIGGERED")).num_microseconds().unwrap() as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);

    // Throughput: n runs submitted back to back, until the last one succeeded.
    let before = successes();
    let t = Instant::now();
    for _ in 0..n {
        submit("true");
    }
    wait_for("all runs", Duration::from_secs(600), || (successes() >= before + n as i64).then_some(())).unwrap();
    let e2e_rate = n as f64 / t.elapsed().as_secs_f64();

    println!("raw `sh -c true` spawn rate      {raw_rate:>8.1} /s");
    println!("end-to-end runs of `true`        {e2e_rate:>8.1} /s   ({:.2}x the raw rate)", e2e_rate / raw_rate);
    println!("dispatch -> process start  p50   {:>8.2} ms", percentile(&lat, 0.5));
    println!("dispatch -> process start  p99   {:>8.2} ms", percentile(&lat, 0.99));
}
