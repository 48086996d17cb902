//! Failover on PostgreSQL: two servers and one agent that knows both; the holder of the instance's
//! lease is SIGKILLed just before a slot, a few times. Measured: from the kill to the next slot's
//! process start on the survivor, against the delay from a slot to its process start with no kill
//! (the baseline, measured in the same run); and the slots lost or run twice. Needs
//! `BATON_TEST_DATABASE_URL` (the test command's PostgreSQL):
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p baton-tests --bench failover
//! ```
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_server::db::{self, DatabaseUrl, Db};
use baton_tests::{data, free_port, fresh_postgres, lease_holder_pid, wait_for, Agent, Server};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const LEASE_SECONDS: i64 = 10;
const ROUNDS: usize = 3;

/// Scheduled runs by slot, with when their process started.
fn started_by_slot(store: &Db) -> BTreeMap<DateTime<Utc>, Vec<Option<DateTime<Utc>>>> {
    let mut c = store.conn().unwrap();
    let filter = db::runs::RunFilter { kind: Some("scheduled".into()), ..Default::default() };
    let mut out: BTreeMap<DateTime<Utc>, Vec<Option<DateTime<Utc>>>> = BTreeMap::new();
    for r in db::runs::page(&mut c, &filter, None, 100_000).unwrap() {
        let running = db::run_transitions::of_run(&mut c, r.id)
            .unwrap()
            .into_iter()
            .find(|t| t.to_status == baton_schema::run::RunStatus::Running)
            .map(|t| t.at.and_utc());
        out.entry(r.scheduled_for.unwrap().and_utc()).or_default().push(running);
    }
    out
}

fn main() {
    let Some(url) = fresh_postgres() else {
        println!("failover: not measured (set BATON_TEST_DATABASE_URL to a PostgreSQL server)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, format!("agent_heartbeat_seconds = 1\nlease_seconds = {LEASE_SECONDS}\n")).unwrap();
    let args = ["--config", config.to_str().unwrap(), "--database-url", &url];
    let listens: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut servers: Vec<Option<Server>> =
        listens.iter().map(|l| Some(Server::start_at(tempfile::tempdir().unwrap(), l, &args).unwrap())).collect();
    let password = servers[0].as_ref().unwrap().admin_password.clone();
    let s = servers[1].as_ref().unwrap();
    let admin = s.login("admin", &password).unwrap();
    let token =
        data(s.graphql_as(Some(&admin), "mutation { createAgentToken(name: \"b\") { token } }", json!({})).unwrap())
            ["createAgentToken"]["token"]
            .as_str()
            .unwrap()
            .to_string();
    let urls: Vec<String> = listens.iter().map(|l| format!("http://{l}")).collect();
    let _agent = Agent::start(&urls.join(","), &token, "a1", "etl").unwrap();
    let task = json!({"name": "tick", "command": "true", "target": "etl", "runAsUser": "root",
                      "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}, "misfirePolicy": "run_all"});
    data(
        s.graphql_as(Some(&admin), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": task }))
            .unwrap(),
    );
    let store = Db::open(DatabaseUrl::Postgres(url.clone())).unwrap();

    // Baseline: ten slots with nobody killed, from each slot to its process start.
    wait_for("ten slots", Duration::from_secs(60), || {
        (started_by_slot(&store).values().filter(|r| r[0].is_some()).count() >= 10).then_some(())
    })
    .unwrap();
    let mut baseline: Vec<f64> = started_by_slot(&store)
        .iter()
        .filter_map(|(slot, r)| Some((r[0]? - *slot).num_microseconds()? as f64 / 1000.0))
        .collect();
    baseline.sort_by(f64::total_cmp);

    let mut failovers = Vec::new();
    for _ in 0..ROUNDS {
        let owner = wait_for("a lease holder", Duration::from_secs(30), || lease_holder_pid(&store)).unwrap();
        let i = servers.iter().position(|s| s.as_ref().is_some_and(|s| s.pid() == owner)).unwrap();
        wait_for("just before a slot", Duration::from_secs(5), || {
            let now = Utc::now();
            (now.timestamp() % 2 == 1 && now.timestamp_subsec_millis() >= 700).then_some(())
        })
        .unwrap();
        let killed = Utc::now();
        let data_dir = servers[i].take().unwrap().kill();
        let next = DateTime::from_timestamp(killed.timestamp() + 1, 0).unwrap();
        let started = wait_for("the next slot to start on the survivor", Duration::from_secs(60), || {
            started_by_slot(&store).get(&next).and_then(|r| r[0])
        })
        .unwrap();
        failovers.push((started - killed).num_milliseconds() as f64 / 1000.0);
        // The killed server comes back, so the next round has a survivor again.
        servers[i] = Some(Server::start_at(data_dir, &listens[i], &args).unwrap());
        wait_for("a few slots", Duration::from_secs(60), || {
            (started_by_slot(&store).keys().next_back().is_some_and(|last| *last > next + chrono::Duration::seconds(6)))
                .then_some(())
        })
        .unwrap();
    }
    let slots = started_by_slot(&store);
    let twice = slots.values().filter(|r| r.len() > 1).count();
    let keys: Vec<&DateTime<Utc>> = slots.keys().collect();
    let lost: i64 = keys.windows(2).map(|w| (*w[1] - *w[0]).num_seconds() / 2 - 1).sum();
    let median = baseline[baseline.len() / 2];
    println!("slot -> process start, no kill (baseline)   p50 {median:>8.1} ms over {} slots", baseline.len());
    for (n, f) in failovers.iter().enumerate() {
        println!(
            "owner SIGKILLed -> next slot's process start on the survivor, round {}: {f:.2} s (lease {LEASE_SECONDS} s; \
             {:.0}x the baseline)",
            n + 1,
            f * 1000.0 / median
        );
    }
    let worst = failovers.iter().copied().fold(0.0, f64::max);
    println!(
        "worst failover {worst:.2} s = {:.2} of lease + 2 s; slots lost {lost}, run twice {twice}, of {}",
        worst / (LEASE_SECONDS as f64 + 2.0),
        slots.len()
    );
}
