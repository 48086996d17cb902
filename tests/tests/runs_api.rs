//! The read side of runs through the API: filters, a run's timeline, output by offset and the
//! dashboard's counters, scoped to the caller's instances. Runs are written through the server's
//! own storage layer into the running server's database (the engine that writes them in
//! production lands with its own issue).
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::run::{RunStatus, Transition};
use baton_server::db::{self, DatabaseUrl, Db};
use baton_tests::{data, error_code, Server};
use chrono::{Duration, Utc};
use serde_json::json;

#[test]
fn runs_timeline_output_and_dashboard() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let tid = data(s.graphql_as(Some(&admin), "mutation { createTask(input: {name: \"nightly_load\", command: \"load.sh\", target: \"etl\", runAsUser: \"batch\", schedule: {triggerTimes: \"02:00\", timezone: \"UTC\"}}) { tid } }", json!({})).unwrap())["createTask"]["tid"].as_i64().unwrap();

    let store = Db::open(DatabaseUrl::Sqlite(s.data_dir.path().join("baton.db"))).unwrap();
    let mut c = store.conn().unwrap();
    let today = Utc::now().date_naive();
    let now = Utc::now();
    let mut ids = Vec::new();
    for (slot, status) in [("02:00", RunStatus::Success), ("03:00", RunStatus::Failed), ("04:00", RunStatus::Running)] {
        let new = db::runs::NewRun {
            kind: "scheduled".into(),
            task_id: Some(baton_schema::ids::TaskId(tid)),
            task_name: "nightly_load".into(),
            instance_id: Some(baton_schema::ids::InstanceId(1)),
            group_id: None,
            group_run_id: None,
            run_date: today,
            slot: slot.into(),
            status,
            command: "load.sh".into(),
            target: "etl".into(),
            run_as_user: "batch".into(),
            scheduled_for: Some(now.naive_utc()),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            job: None,
        };
        ids.push(db::runs::create(&mut c, &new).unwrap().id());
    }
    let steps = [RunStatus::Idle, RunStatus::Triggered, RunStatus::Started, RunStatus::Running, RunStatus::Failed];
    let trs: Vec<Transition> = steps
        .windows(2)
        .enumerate()
        .map(|(i, w)| Transition {
            from: w[0],
            to: w[1],
            attempt: 1,
            at: now + Duration::milliseconds(i as i64),
            reason: None,
        })
        .collect();
    db::run_transitions::append(&mut c, ids[1], &trs, "test").unwrap();
    db::runs::set(
        &mut c,
        ids[1],
        &db::runs::RunChange {
            status: RunStatus::Failed,
            attempt: 1,
            reason: Some(Some(r#"{"kind":"exit_code","code":3}"#.into())),
            agent_id: None,
            pid: Some(Some(4242)),
            exit_code: Some(Some(3)),
            triggered_at: None,
            started_at: Some(Some(now.naive_utc())),
            ended_at: Some(Some((now + Duration::seconds(2)).naive_utc())),
            updated_at: now.naive_utc(),
        },
    )
    .unwrap();
    db::run_output::append(
        &mut c,
        db::run_output::Chunk {
            run_id: ids[1],
            attempt: 1,
            stream: baton_schema::agent::v1::Stream::Stdout,
            offset: 0,
            data: "héllo ",
        },
        now,
        "test",
    )
    .unwrap();
    db::run_output::append(
        &mut c,
        db::run_output::Chunk {
            run_id: ids[1],
            attempt: 1,
            stream: baton_schema::agent::v1::Stream::Stdout,
            offset: 7,
            data: "world\n",
        },
        now,
        "test",
    )
    .unwrap();
    db::run_output::append(
        &mut c,
        db::run_output::Chunk {
            run_id: ids[1],
            attempt: 1,
            stream: baton_schema::agent::v1::Stream::Stderr,
            offset: 0,
            data: "boom\n",
        },
        now,
        "test",
    )
    .unwrap();
    db::runs::add_output_bytes(&mut c, ids[1], 13, 5, 0).unwrap();

    let res = data(s.graphql_as(Some(&admin), "{ runs(filter: {status: [FAILED]}) { totalCount edges { node { id status reason exitCode pid durationMs transitions { seq from to } } } } }", json!({})).unwrap());
    let failed = &res["runs"]["edges"][0]["node"];
    assert_eq!(res["runs"]["totalCount"], 1);
    assert_eq!(
        (failed["status"].as_str(), failed["reason"].as_str(), failed["exitCode"].as_i64()),
        (Some("FAILED"), Some("exit code 3"), Some(3))
    );
    assert_eq!(failed["durationMs"], 2000);
    let to: Vec<&str> = failed["transitions"].as_array().unwrap().iter().map(|t| t["to"].as_str().unwrap()).collect();
    assert_eq!(to, vec!["TRIGGERED", "STARTED", "RUNNING", "FAILED"]);

    let res = data(
        s.graphql_as(
            Some(&admin),
            "{ runs(first: 2) { totalCount pageInfo { hasNextPage } edges { node { slot } } } }",
            json!({}),
        )
        .unwrap(),
    );
    let slots: Vec<&str> =
        res["runs"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["slot"].as_str().unwrap()).collect();
    assert_eq!(
        (slots, res["runs"]["pageInfo"]["hasNextPage"].as_bool()),
        (vec!["04:00", "03:00"], Some(true)),
        "newest first"
    );

    let q = "query($id: Int!, $o: Int!, $l: Int!) { runOutput(runId: $id, stream: STDOUT, offset: $o, limit: $l) { offset data nextOffset totalBytes } }";
    let out = data(s.graphql_as(Some(&admin), q, json!({ "id": ids[1], "o": 0, "l": 1000 })).unwrap());
    assert_eq!(out["runOutput"], json!({ "offset": 0, "data": "héllo world\n", "nextOffset": 13, "totalBytes": 13 }));
    let out = data(s.graphql_as(Some(&admin), q, json!({ "id": ids[1], "o": 7, "l": 3 })).unwrap());
    assert_eq!(out["runOutput"], json!({ "offset": 7, "data": "wor", "nextOffset": 10, "totalBytes": 13 }));

    let dash = data(s.graphql_as(Some(&admin), "{ dashboard { counts { status count } } }", json!({})).unwrap());
    let counts: Vec<(String, i64)> = dash["dashboard"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["status"].as_str().unwrap().to_string(), c["count"].as_i64().unwrap()))
        .collect();
    for (status, n) in [("SUCCESS", 1), ("FAILED", 1), ("RUNNING", 1), ("IDLE", 0)] {
        assert!(counts.contains(&(status.to_string(), n)), "{status}: {counts:?}");
    }

    // A user of another instance sees none of it.
    data(s.graphql_as(Some(&admin), "mutation { createUser(username: \"far\", password: \"password-123\", role: \"viewer\", instances: \"elsewhere\") { id } }", json!({})).unwrap());
    let far = s.login("far", "password-123").unwrap();
    let res =
        data(s.graphql_as(Some(&far), "{ runs { totalCount } dashboard { counts { count } } }", json!({})).unwrap());
    assert_eq!(res["runs"]["totalCount"], 0);
    assert!(res["dashboard"]["counts"].as_array().unwrap().iter().all(|c| c["count"] == 0));
    let res = s.graphql_as(Some(&far), "query($id: Int!) { run(id: $id) { id } }", json!({ "id": ids[0] })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"));
}
