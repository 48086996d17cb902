//! Groups over the real binaries: a group of five tasks with a diamond of dependencies and a
//! failing branch, an operator who modifies the failed status so the rest proceeds, a group that
//! follows another (group-to-group dependency), and freeze / unfreeze / disable recorded as
//! operator events.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_token_cli, data, free_port, wait_for, Agent, Server};
use chrono::{Timelike, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn config() -> String {
    let path = std::env::temp_dir().join(format!("baton-groups-{}-{}.toml", std::process::id(), free_port()));
    std::fs::write(
        &path,
        "agent_heartbeat_seconds = 1\nmisfire_grace_seconds = 900\nalert_allowed_hosts = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn gql(s: &Server, admin: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(admin), q, v).unwrap())
}

fn start(s: &Server) -> (String, Agent) {
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let agent = Agent::start(&s.base_url, &token, "a1", "etl").unwrap();
    wait_for("the agent", Duration::from_secs(20), || {
        (gql(s, &admin, "{ agents { status } }", json!({}))["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    (admin, agent)
}

fn task(s: &Server, admin: &str, t: Value) -> i64 {
    gql(s, admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))["createTask"]["tid"]
        .as_i64()
        .unwrap()
}

/// Today's runs of a group, by task name.
fn group_runs_by_task(s: &Server, admin: &str, gid: i64) -> HashMap<String, Value> {
    let res = gql(
        s,
        admin,
        "query($g: Int!) { runs(first: 100, filter: {groupId: $g}) { edges { node { id taskName status reason kind triggeredAt endedAt } } } }",
        json!({ "g": gid }),
    );
    res["runs"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["taskName"].as_str().unwrap().to_string(), e["node"].clone()))
        .collect()
}

fn group_run_status(s: &Server, admin: &str, gid: i64) -> Option<String> {
    let res = gql(s, admin, "query($g: Int!) { groupRuns(gid: $g) { status } }", json!({ "g": gid }));
    res["groupRuns"][0]["status"].as_str().map(str::to_string)
}

fn ts(v: &Value) -> chrono::DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn a_diamond_with_a_failing_branch_then_modify_status_lets_the_rest_and_a_following_group_proceed() {
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let (admin, _agent) = start(&s);
    // Fires once, a few seconds from now (a slot missed while the test set up still runs once).
    let at = Utc::now() + chrono::Duration::seconds(6);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    // Group alerts go to a Slack-like sink: the group run's failure, then its success.
    let sink = baton_tests::sink::Sink::start();
    gql(
        &s,
        &admin,
        "mutation($u: String!) { setCredential(key: \"hooks/ops\", value: $u) { version }
           createIntegration(input: {name: \"ops\", kind: \"slack\", credentialKey: \"hooks/ops\"}) { name } }",
        json!({ "u": format!("{}/ops", sink.base_url) }),
    );
    let nightly = gql(
        &s,
        &admin,
        "mutation($c: String!) { createGroup(input: {name: \"nightly\", schedule: {cron: $c, timezone: \"UTC\"},
           alerts: [{on: \"failure\", integration: \"ops\"}, {on: \"success\", integration: \"ops\", message: \"${T:group_name} ${P:status}\"}]}) { gid } }",
        json!({ "c": cron }),
    )["createGroup"]["gid"]
        .as_i64()
        .unwrap();
    let member = |name: &str, command: &str, dep: Option<&str>| json!({"name": name, "group": "nightly", "command": command, "target": "etl", "runAsUser": "root", "dependency": dep});
    task(&s, &admin, member("extract", "echo extract", None));
    task(&s, &admin, member("left", "echo left", Some("S:extract")));
    task(&s, &admin, member("right", "echo right; exit 3", Some("S:extract")));
    task(&s, &admin, member("load", "echo load", Some("S:left and S:right")));
    task(&s, &admin, member("cleanup", "echo cleanup", Some("F:left or F:right")));
    // A group without a schedule that follows nightly on the same run date.
    let report = gql(
        &s,
        &admin,
        "mutation { createGroup(input: {name: \"report\", dependency: \"S:nightly\"}) { gid } }",
        json!({}),
    )["createGroup"]["gid"]
        .as_i64()
        .unwrap();
    task(
        &s,
        &admin,
        json!({"name": "publish", "group": "report", "command": "echo publish", "target": "etl", "runAsUser": "root"}),
    );

    // The failing branch: right fails, cleanup handles it, load keeps waiting, the group fails.
    let runs = wait_for("nightly to fail", Duration::from_secs(40), || {
        (group_run_status(&s, &admin, nightly).as_deref() == Some("FAILED"))
            .then(|| group_runs_by_task(&s, &admin, nightly))
    })
    .unwrap();
    let status = |r: &HashMap<String, Value>, n: &str| r[n]["status"].as_str().unwrap().to_string();
    assert_eq!(
        ["extract", "left", "right", "cleanup", "load"].map(|n| status(&runs, n)),
        ["SUCCESS", "SUCCESS", "FAILED", "SUCCESS", "IDLE"],
        "{runs:?}"
    );
    assert_eq!(runs["right"]["reason"], "exit code 3");
    let alert =
        wait_for("the group's failure alert", Duration::from_secs(20), || sink.to("/ops").first().map(|r| r.json()))
            .unwrap();
    assert!(
        alert["text"].as_str().unwrap().starts_with("*[Baton] nightly failed*\nnightly failed (run date "),
        "{alert}"
    );
    assert!(runs.values().all(|r| r["kind"] == "scheduled"));
    // Each started only after what it depends on ended.
    let started = |n: &str| ts(&runs[n]["triggeredAt"]);
    let ended = |n: &str| ts(&runs[n]["endedAt"]);
    assert!(started("left") >= ended("extract") && started("right") >= ended("extract"));
    assert!(started("cleanup") >= ended("right"));
    // The follower opened its run for the day and waits on nightly.
    let follower = group_run_status(&s, &admin, report);
    if follower.as_deref() != Some("IDLE") {
        for l in s.stderr_lines().iter().filter(|l| l.contains("group")) {
            eprintln!("{l}");
        }
    }
    assert_eq!(follower.as_deref(), Some("IDLE"));
    assert_eq!(status(&group_runs_by_task(&s, &admin, report), "publish"), "IDLE");

    // An operator sets right to Success: load runs, nightly succeeds, report follows.
    let right = runs["right"]["id"].as_i64().unwrap();
    let ev = gql(
        &s,
        &admin,
        "mutation($r: Int!) { modifyRunStatus(id: $r, status: SUCCESS) { kind actor origin runId ok result acknowledgedAt } }",
        json!({ "r": right }),
    );
    let ev = &ev["modifyRunStatus"];
    assert_eq!(
        (ev["kind"].as_str(), ev["actor"].as_str(), ev["ok"].as_bool()),
        (Some("modify_status"), Some("admin"), Some(true))
    );
    assert_eq!(ev["runId"].as_i64(), Some(right));
    assert!(ev["acknowledgedAt"].is_string(), "{ev}");
    wait_for("nightly to succeed", Duration::from_secs(30), || {
        (group_run_status(&s, &admin, nightly).as_deref() == Some("SUCCESS")).then_some(())
    })
    .unwrap();
    let runs = group_runs_by_task(&s, &admin, nightly);
    assert_eq!(status(&runs, "load"), "SUCCESS");
    assert_eq!(runs["right"]["reason"], "status modified by admin");
    assert_eq!(runs.len(), 5, "one run per task and slot: {runs:?}");
    wait_for("report to follow", Duration::from_secs(30), || {
        (group_run_status(&s, &admin, report).as_deref() == Some("SUCCESS")).then_some(())
    })
    .unwrap();
    assert_eq!(status(&group_runs_by_task(&s, &admin, report), "publish"), "SUCCESS");
    let alerts = wait_for("the group's success alert", Duration::from_secs(20), || {
        let r = sink.to("/ops");
        (r.len() == 2).then_some(r)
    })
    .unwrap();
    assert_eq!(alerts[1].json()["text"], "*[Baton] nightly succeeded*\nnightly SUCCESS");

    // Only SUCCESS, FAILED or SKIPPED may be set, naming the field and the rule.
    let bad = s
        .graphql_as(
            Some(&admin),
            "mutation($r: Int!) { modifyRunStatus(id: $r, status: RUNNING) { ok } }",
            json!({ "r": right }),
        )
        .unwrap();
    assert_eq!(baton_tests::error_code(&bad).as_deref(), Some("VALIDATION"), "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "status");
    // Setting the status it already has is refused by the run's state machine; the event is
    // recorded with the refusal.
    let again = s
        .graphql_as(
            Some(&admin),
            "mutation($r: Int!) { modifyRunStatus(id: $r, status: SUCCESS) { ok } }",
            json!({ "r": right }),
        )
        .unwrap();
    assert_eq!(baton_tests::error_code(&again).as_deref(), Some("CONFLICT"), "{again}");
    let events = gql(&s, &admin, "{ operatorEvents { kind runId ok result } }", json!({}));
    let modify: Vec<&Value> = events["operatorEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "modify_status" && e["runId"] == right)
        .collect();
    assert_eq!(modify.iter().map(|e| e["ok"].as_bool().unwrap()).collect::<Vec<_>>(), [false, true], "{events}");
    assert!(modify[0]["result"].as_str().unwrap().contains("illegal transition"), "{events}");
    let h = gql(&s, &admin, "{ scheduler { groupActors actorRestarts } }", json!({}));
    assert_eq!(h["scheduler"]["groupActors"], 2);
    assert_eq!(h["scheduler"]["actorRestarts"], 0);
}

#[test]
fn freeze_holds_a_task_for_the_day_unfreeze_releases_it_and_each_is_an_acknowledged_event() {
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let (admin, _agent) = start(&s);
    let tid = task(
        &s,
        &admin,
        json!({"name": "tick", "command": "echo tick", "target": "etl", "runAsUser": "root",
               "schedule": {"cron": "*/2 * * * * *", "timezone": "UTC"}}),
    );
    let runs = |s: &Server| -> Vec<Value> {
        let res = gql(
            s,
            &admin,
            "query($t: Int!) { runs(first: 500, filter: {taskId: $t}) { edges { node { id status reason } } } }",
            json!({ "t": tid }),
        );
        res["runs"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
    };
    wait_for("a first run", Duration::from_secs(20), || {
        runs(&s).iter().any(|r| r["status"] == "SUCCESS").then_some(())
    })
    .unwrap();
    let ev =
        gql(&s, &admin, "mutation($t: Int!) { freezeTask(tid: $t) { kind ok result runDate } }", json!({ "t": tid }));
    assert_eq!((ev["freezeTask"]["kind"].as_str(), ev["freezeTask"]["ok"].as_bool()), (Some("freeze"), Some(true)));
    assert_eq!(ev["freezeTask"]["runDate"].as_str().unwrap(), Utc::now().date_naive().to_string());
    let frozen = wait_for("two frozen slots", Duration::from_secs(20), || {
        let f: Vec<Value> = runs(&s).into_iter().filter(|r| r["status"] == "FROZEN").collect();
        (f.len() >= 2).then_some(f)
    })
    .unwrap();
    assert!(frozen.iter().all(|r| r["reason"] == "frozen"));
    let ev = gql(&s, &admin, "mutation($t: Int!) { unfreezeTask(tid: $t) { kind ok result } }", json!({ "t": tid }));
    assert_eq!(ev["unfreezeTask"]["ok"], true);
    assert!(ev["unfreezeTask"]["result"].as_str().unwrap().contains("released"), "{ev}");
    // The held runs run now, each once.
    let ids: Vec<i64> = frozen.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    wait_for("the released runs to succeed", Duration::from_secs(20), || {
        let all = runs(&s);
        ids.iter().all(|id| all.iter().any(|r| r["id"] == *id && r["status"] == "SUCCESS")).then_some(())
    })
    .unwrap();
    // Disabling is an operator event too, and stops the task.
    gql(&s, &admin, "mutation($t: Int!) { setTaskActive(tid: $t, active: false) { active } }", json!({ "t": tid }));
    let events =
        gql(&s, &admin, "query($t: Int!) { operatorEvents(taskId: $t) { kind actor ok result } }", json!({ "t": tid }));
    let kinds: Vec<&str> =
        events["operatorEvents"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["disable", "unfreeze", "freeze"], "{events}");
    assert!(events["operatorEvents"].as_array().unwrap().iter().all(|e| e["actor"] == "admin" && e["ok"] == true));
}
