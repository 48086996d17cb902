//! End-to-end throughput and latency of trivial runs through the real server and one agent on
//! loopback, against the raw rate at which this machine spawns `sh -c true`, measured in the same
//! run: on SQLite, and in turns with it on PostgreSQL when `BATON_TEST_DATABASE_URL` names a
//! server (the test command's). Build the release binaries first:
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p baton-tests --bench lifecycle
//! ```
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_tests::{data, fresh_postgres, graphql_on, wait_for, Agent, Server};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU seconds a process has used itself, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    let tick = 100.0;
    let at = |i: usize| fields.get(i - 4).copied().unwrap_or(0.0) / tick;
    at(14) + at(15)
}

/// CPU seconds this machine has been busy (all cores, from /proc/stat).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    let total: f64 = ticks.iter().take(8).sum();
    (total - ticks.get(3).copied().unwrap_or(0.0) - ticks.get(4).copied().unwrap_or(0.0)) / 100.0
}

/// Spawns `sh -c true` `n` times, one after the other; the rate per second.
fn raw_spawn_rate(n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        assert!(Command::new("sh").args(["-c", "true"]).status().unwrap().success());
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// What one pass measures.
struct Figures {
    one_client: f64,
    loaded: f64,
    cpu: String,
    p50: f64,
    p99: f64,
}

/// Rounds of (SQLite, PostgreSQL): this VM's speed drifts by up to 2x within minutes (file
/// creation slows down after mass deletions), so the backends are measured in turns and each
/// round's ratio is taken between neighbours; the median ratio is the figure.
const ROUNDS: usize = 3;

fn print_figures(name: &str, f: &Figures, raw_rate: f64) {
    println!("{name}:");
    println!(
        "  end-to-end runs of `true`, 1 client  {:>8.1} /s   ({:.2}x the raw rate)",
        f.one_client,
        f.one_client / raw_rate
    );
    println!(
        "  end-to-end runs of `true`, 8 clients {:>7.1} /s   ({:.2}x the raw rate)",
        f.loaded,
        f.loaded / raw_rate
    );
    println!("     under load, CPU per wall second: {}", f.cpu);
    println!("  dispatch -> process start  p50   {:>8.2} ms", f.p50);
    println!("  dispatch -> process start  p99   {:>8.2} ms", f.p99);
}

fn main() {
    // The baseline is measured before and after the rest; the faster of the two counts.
    let raw_before = raw_spawn_rate(1000);
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let sqlite = measure(None);
        let postgres = fresh_postgres().map(|url| measure(Some(url)));
        let done = postgres.is_none();
        rounds.push((sqlite, postgres));
        if done {
            break; // Without PostgreSQL one round says all there is.
        }
    }
    let raw_after = raw_spawn_rate(1000);
    let raw_rate = raw_before.max(raw_after);
    println!("raw `sh -c true` spawn rate      {raw_rate:>8.1} /s   (before {raw_before:.1}, after {raw_after:.1})");
    let mut rates = Vec::new();
    let mut p99s = Vec::new();
    for (i, (sqlite, postgres)) in rounds.iter().enumerate() {
        println!("round {}", i + 1);
        print_figures("SQLite", sqlite, raw_rate);
        let Some(pg) = postgres else {
            println!("PostgreSQL: not measured (set BATON_TEST_DATABASE_URL)");
            continue;
        };
        print_figures("PostgreSQL", pg, raw_rate);
        let (rate, p99) = (pg.loaded / sqlite.loaded, pg.p99 / sqlite.p99);
        println!("PostgreSQL against SQLite, this round: 8 clients {rate:.2}x the rate, p99 {p99:.2}x the latency");
        rates.push(rate);
        p99s.push(p99);
    }
    if !rates.is_empty() {
        rates.sort_by(f64::total_cmp);
        p99s.sort_by(f64::total_cmp);
        let list = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
        println!(
            "PostgreSQL against SQLite, median of {} rounds: 8 clients {:.2}x the rate ({}), p99 {:.2}x the latency ({})",
            rates.len(),
            percentile(&rates, 0.5),
            list(&rates),
            percentile(&p99s, 0.5),
            list(&p99s)
        );
    }
}

fn measure(database: Option<String>) -> Figures {
    let n = 300;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, "agent_heartbeat_seconds = 1\n").unwrap();
    let mut args = vec!["--config".to_string(), config.to_string_lossy().into_owned()];
    if let Some(url) = database {
        args.extend(["--database-url".to_string(), url]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start_with(&argv).unwrap();
    let admin = s.admin().unwrap();
    let token = data(
        s.graphql_as(Some(&admin), "mutation { createAgentToken(name: \"bench\") { token } }", json!({})).unwrap(),
    )["createAgentToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = Agent::start(&s.base_url, &token, "a1", "bench").unwrap();
    wait_for("the agent", Duration::from_secs(20), || {
        let res = data(s.graphql_as(Some(&admin), "{ agents { status } }", json!({})).ok()?);
        (res["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    // Clients keep their connections alive, as a long-lived API client would.
    let client = ureq::Agent::new_with_defaults();
    let submit = |cmd: &str| {
        let res = graphql_on(
            &client,
            &s.base_url,
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

    // Throughput: n runs submitted back to back by one client, until the last one succeeded.
    let before = successes();
    let t = Instant::now();
    for _ in 0..n {
        submit("true");
    }
    wait_for("all runs", Duration::from_secs(600), || (successes() >= before + n as i64).then_some(())).unwrap();
    let e2e_rate = n as f64 / t.elapsed().as_secs_f64();

    // Throughput under load: the same n runs submitted by CLIENTS clients at once.
    let server_cpu = cpu_seconds(s.pid());
    let agent_cpu = cpu_seconds(agent.pid());
    let bench_cpu = cpu_seconds(std::process::id());
    let busy = machine_busy_seconds();
    const CLIENTS: usize = 8;
    let before = successes();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            let (base, token) = (s.base_url.clone(), admin.clone());
            scope.spawn(move || {
                let client = ureq::Agent::new_with_defaults();
                for _ in 0..n / CLIENTS {
                    let res = graphql_on(
                        &client,
                        &base,
                        Some(&token),
                        "mutation { runAdhoc(agents: [\"a1\"], command: \"true\", runAsUser: \"root\") { id } }",
                        json!({}),
                    )
                    .unwrap();
                    assert!(res["errors"].is_null(), "{res}");
                }
            });
        }
    });
    let submitted = (n / CLIENTS * CLIENTS) as i64;
    wait_for("all runs", Duration::from_secs(600), || (successes() >= before + submitted).then_some(())).unwrap();
    let loaded = t.elapsed().as_secs_f64();
    let loaded_rate = submitted as f64 / loaded;
    let cpu = |after: f64, before: f64| (after - before) / loaded;
    let server_after = cpu_seconds(s.pid());
    let agent_after = cpu_seconds(agent.pid());
    let bench_after = cpu_seconds(std::process::id());
    let busy_after = machine_busy_seconds();
    let (server, agent_own, bench) =
        (cpu(server_after, server_cpu), cpu(agent_after, agent_cpu), cpu(bench_after, bench_cpu));
    // The shims are the launcher's children, reaped by the kernel: their CPU is what the machine
    // spent beyond the server, the agent and this bench (its clients included).
    let cpu = format!(
        "server {server:.2}, agent {agent_own:.2}, bench clients {bench:.2}, the rest (launcher, shims, jobs, \
         PostgreSQL) {:.2}, machine {:.2} (of 2 cores)",
        cpu(busy_after, busy) - server - agent_own - bench,
        cpu(busy_after, busy)
    );
    Figures { one_client: e2e_rate, loaded: loaded_rate, cpu, p50: percentile(&lat, 0.5), p99: percentile(&lat, 0.99) }
}
