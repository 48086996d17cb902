//! Instances isolate, over the real server and a real agent: a caller limited to one instance
//! sees no run, output, operator event, alert delivery or audit entry of another through any
//! query or subscription, an admin of one instance grants only that instance and reads the audit
//! entries of that instance, and agents take only the runs of the instances they serve.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{data, error_code, wait_for, Agent, Server, Subscription};
use serde_json::{json, Value};
use std::time::Duration;

fn gql(s: &Server, token: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(token), q, v).unwrap())
}

fn user(s: &Server, admin: &str, name: &str, role: &str, instances: &str) -> String {
    gql(
        s,
        admin,
        "mutation($u: String!, $r: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: $r, instances: $i) { id } }",
        json!({ "u": name, "r": role, "i": instances }),
    );
    s.login(name, "password-123").unwrap()
}

fn task(s: &Server, admin: &str, name: &str, instance: &str) -> i64 {
    let t = json!({ "name": name, "instance": instance, "command": format!("echo out-of-{instance}"),
                    "target": "etl", "runAsUser": "root" });
    gql(s, admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))["createTask"]["tid"]
        .as_i64()
        .unwrap()
}

fn force_run(s: &Server, token: &str, tid: i64) -> i64 {
    gql(s, token, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .as_i64()
        .unwrap()
}

fn wait_success(s: &Server, admin: &str, id: i64) {
    wait_for("the run to succeed", Duration::from_secs(30), || {
        let r = gql(s, admin, "query($id: Int!) { run(id: $id) { status } }", json!({ "id": id }));
        (r["run"]["status"] == "SUCCESS").then_some(())
    })
    .unwrap();
}

/// A server with instances `default` and `other`, its superadmin's token, and agent `a1` online.
fn rig() -> (Server, String, Agent) {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    gql(&s, &admin, "mutation { createInstance(name: \"other\") { id } }", json!({}));
    let agent = Agent::enrolled(&s, &admin, &s.base_url, "a1", "etl").unwrap();
    (s, admin, agent)
}

#[test]
fn a_caller_of_one_instance_sees_nothing_of_another() {
    let (s, admin, _agent) = rig();
    let (mine, theirs) = (task(&s, &admin, "mine", "default"), task(&s, &admin, "theirs", "other"));
    let viewer = user(&s, &admin, "viewer1", "viewer", "default");
    let operator = user(&s, &admin, "operator1", "operator", "default");

    // Live run events: the other instance's run happens first, then this instance's; events
    // come in order, so once this one's SUCCESS arrives, anything of the other would have too.
    let mut events =
        Subscription::start(&s.base_url, &viewer, "subscription { runEvents { runId to } }", json!({})).unwrap();
    // The subscription is live once the server has read it: a run of the viewer's own instance
    // shows it.
    let first = force_run(&s, &admin, mine);
    events.frames_until(Duration::from_secs(30), |f| f["payload"]["data"]["runEvents"]["runId"] == first).unwrap();
    let hidden = force_run(&s, &admin, theirs);
    wait_success(&s, &admin, hidden);
    let shown = force_run(&s, &admin, mine);
    let frames = events
        .frames_until(Duration::from_secs(30), |f| {
            let e = &f["payload"]["data"]["runEvents"];
            e["runId"] == shown && e["to"] == "SUCCESS"
        })
        .unwrap();
    let seen: Vec<i64> = frames.iter().filter_map(|f| f["payload"]["data"]["runEvents"]["runId"].as_i64()).collect();
    assert!(!seen.contains(&hidden), "the viewer saw run {hidden} of another instance: {seen:?}");
    assert!(seen.contains(&shown));

    // A run of another instance: not found, whether asked for or subscribed to.
    let res = s.graphql_as(Some(&viewer), "query($id: Int!) { run(id: $id) { id } }", json!({ "id": hidden })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "{res}");
    for q in [
        "subscription($id: Int!) { runOutput(runId: $id) { data } }",
        "subscription($id: Int!) { runEvents(runId: $id) { to } }",
    ] {
        let mut sub = Subscription::start(&s.base_url, &viewer, q, json!({ "id": hidden })).unwrap();
        let frame = sub.next_frame(Duration::from_secs(10)).unwrap().unwrap();
        let code = frame.pointer("/payload/errors/0/extensions/code").or(frame.pointer("/payload/0/extensions/code"));
        assert_eq!(code, Some(&json!("NOT_FOUND")), "{q}: {frame}");
        assert!(frame.pointer("/payload/data/runOutput/data").is_none(), "{q}: {frame}");
    }

    // Operator events about another instance's runs are not listed.
    let listed = gql(&s, &operator, "{ operatorEvents { kind runId } }", json!({}));
    let ids: Vec<i64> =
        listed["operatorEvents"].as_array().unwrap().iter().filter_map(|e| e["runId"].as_i64()).collect();
    assert!(ids.contains(&shown) && !ids.contains(&hidden), "{listed}");
}

#[test]
fn an_admin_of_one_instance_grants_only_that_instance() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    gql(&s, &admin, "mutation { createInstance(name: \"other\") { id } }", json!({}));
    let local = user(&s, &admin, "local_admin", "admin", "default");
    let create = |instances: &str| {
        s.graphql_as(
            Some(&local),
            "mutation($u: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: \"operator\", instances: $i) { id } }",
            json!({ "u": format!("u_{}", instances.replace(['*', ','], "_")), "i": instances }),
        )
        .unwrap()
    };
    for refused in ["*", "other", "default,other"] {
        let res = create(refused);
        assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{refused}: {res}");
    }
    let res = create("default");
    assert!(res["data"]["createUser"]["id"].is_i64(), "{res}");
    // Nor may it widen a user of its own instance, or touch a user of another.
    let id = res["data"]["createUser"]["id"].as_i64().unwrap();
    let widen = s
        .graphql_as(
            Some(&local),
            "mutation($id: Int!) { updateUser(id: $id, instances: \"*\") { id } }",
            json!({ "id": id }),
        )
        .unwrap();
    assert_eq!(error_code(&widen).as_deref(), Some("FORBIDDEN"), "{widen}");
    let other = gql(
        &s,
        &admin,
        "mutation { createUser(username: \"elsewhere\", password: \"password-123\", role: \"viewer\", instances: \"other\") { id } }",
        json!({}),
    )["createUser"]["id"]
        .as_i64()
        .unwrap();
    let touch = s
        .graphql_as(
            Some(&local),
            "mutation($id: Int!) { updateUser(id: $id, disabled: true) { id } }",
            json!({ "id": other }),
        )
        .unwrap();
    assert_eq!(error_code(&touch).as_deref(), Some("FORBIDDEN"), "{touch}");

    // The audit log: an admin of one instance reads their own entries and those about their
    // instance, whoever made them; nothing about another instance or about global things.
    task(&s, &admin, "here", "default");
    task(&s, &admin, "there", "other");
    let q =
        "query($f: AuditFilterInput) { auditLog(first: 100, filter: $f) { nodes { actor action target instance } } }";
    let log = gql(&s, &local, q, json!({}));
    let nodes = log["auditLog"]["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|e| e["actor"] == "local_admin" && e["action"] == "createUser"), "{log}");
    assert!(
        nodes.iter().any(|e| e["actor"] == "admin" && e["action"] == "createTask" && e["instance"] == "default"),
        "another admin's change in this instance: {log}"
    );
    for e in nodes {
        assert!(e["actor"] == "local_admin" || e["instance"] == "default", "not theirs to read: {e}");
    }
    let other_only = gql(&s, &local, q, json!({ "f": { "instance": "other" } }));
    assert_eq!(other_only["auditLog"]["nodes"], json!([]), "{other_only}");
    let all = gql(&s, &admin, q, json!({ "f": { "instance": "other" } }));
    let targets: Vec<&str> =
        all["auditLog"]["nodes"].as_array().unwrap().iter().filter_map(|e| e["target"].as_str()).collect();
    assert!(targets.iter().any(|t| t.ends_with(" there")), "the superadmin reads every instance's: {all}");
    assert!(targets.iter().all(|t| !t.ends_with(" here")), "the filter keeps one instance: {all}");
}

#[test]
fn adhoc_runs_reach_only_agents_serving_the_callers_instances() {
    let (s, admin, _agent) = rig();
    let set = "mutation($i: String!) { setAgentInstances(name: \"a1\", instances: $i) { instances } }";
    assert_eq!(gql(&s, &admin, set, json!({ "i": "other" }))["setAgentInstances"]["instances"], "other");
    let mine = user(&s, &admin, "op_default", "operator", "default");
    let theirs = user(&s, &admin, "op_other", "operator", "other");
    let adhoc = |token: &str, target: &str| {
        s.graphql_as(
            Some(token),
            &format!("mutation {{ runAdhoc({target}, command: \"true\", runAsUser: \"root\") {{ id }} }}"),
            json!({}),
        )
        .unwrap()
    };
    let res = adhoc(&mine, "agents: [\"a1\"]");
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");
    let res = adhoc(&mine, "queue: \"etl\"");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "no_agent", "{res}");
    for token in [&theirs, &admin] {
        let res = adhoc(token, "agents: [\"a1\"]");
        assert!(res["data"]["runAdhoc"][0]["id"].is_i64(), "{res}");
    }
    // An admin of one instance cannot take an agent from the others, nor give it theirs.
    let local = user(&s, &admin, "admin_default", "admin", "default");
    let res = s.graphql_as(Some(&local), set, json!({ "i": "default" })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");
}

#[test]
fn an_adhoc_run_is_seen_only_by_operators_of_the_instances_its_agent_served() {
    let (s, admin, _agent) = rig();
    let set = "mutation($i: String!) { setAgentInstances(name: \"a1\", instances: $i) { instances } }";
    gql(&s, &admin, set, json!({ "i": "other" }));
    let mine = user(&s, &admin, "op_default", "operator", "default");
    let theirs = user(&s, &admin, "op_other", "operator", "other");
    let viewer_all = user(&s, &admin, "viewer_all", "viewer", "*");
    let adhoc =
        "mutation { runAdhoc(agents: [\"a1\"], command: \"echo secret-of-other\", runAsUser: \"root\") { id } }";
    let id = gql(&s, &theirs, adhoc, json!({}))["runAdhoc"][0]["id"].as_i64().unwrap();
    wait_success(&s, &admin, id);
    // Its agent served only `other` then; it keeps that reach when the agent changes hands.
    gql(&s, &admin, set, json!({ "i": "default" }));
    let ask = |token: &str, q: &str| s.graphql_as(Some(token), q, json!({ "id": id })).unwrap();
    let listed = |token: &str| {
        let r = ask(token, "query { runs(filter: { kind: \"adhoc\" }) { edges { node { id } } } }");
        r["data"]["runs"]["edges"].as_array().unwrap_or_else(|| panic!("{r}")).iter().any(|e| e["node"]["id"] == id)
    };
    assert!(listed(&theirs) && listed(&admin), "its operators see it");
    assert!(!listed(&mine), "an operator of another instance does not list it");
    assert!(!listed(&viewer_all), "adhoc runs are for operators and up");
    for token in [&mine, &viewer_all] {
        for q in [
            "query($id: Int!) { run(id: $id) { id } }",
            "query($id: Int!) { runOutput(runId: $id, stream: STDOUT) { data } }",
            "mutation($id: Int!) { modifyRunStatus(id: $id, status: FAILED) { id } }",
        ] {
            let r = ask(token, q);
            assert!(r["data"].is_null() || r["data"].as_object().unwrap().values().all(Value::is_null), "{q}: {r}");
            assert!(matches!(error_code(&r).as_deref(), Some("NOT_FOUND" | "FORBIDDEN")), "{q}: {r}");
        }
    }
    let r = ask(&theirs, "query($id: Int!) { runOutput(runId: $id, stream: STDOUT) { data } }");
    assert!(r["data"]["runOutput"]["data"].as_str().unwrap().contains("secret-of-other"), "{r}");
}

#[test]
fn tasks_reach_only_agents_serving_their_instance() {
    let (s, admin, _agent) = rig();
    let set = "mutation($i: String!) { setAgentInstances(name: \"a1\", instances: $i) { instances } }";
    gql(&s, &admin, set, json!({ "i": "default" }));
    let theirs = task(&s, &admin, "job_other", "other");
    let mine = task(&s, &admin, "job_default", "default");
    let waiting = force_run(&s, &admin, theirs);
    // A run forced after it is dispatched after it: by the time that one succeeds, a1 had its
    // chance to take the other instance's run.
    let later = force_run(&s, &admin, mine);
    wait_success(&s, &admin, later);
    let run = |id: i64| gql(&s, &admin, "query($id: Int!) { run(id: $id) { status agentId } }", json!({ "id": id }));
    let r = run(waiting);
    assert_eq!(r["run"]["status"], "TRIGGERED", "{r}");
    assert!(r["run"]["agentId"].is_null(), "a1 serves only default: {r}");
    // Once a1 serves every instance, the waiting run goes to it.
    gql(&s, &admin, set, json!({ "i": "*" }));
    wait_success(&s, &admin, waiting);
}

#[test]
fn credentials_and_integrations_belong_to_an_instance_or_to_all() {
    let (s, admin, _agent) = rig();
    let here = user(&s, &admin, "admin_default", "admin", "default");
    let there = user(&s, &admin, "admin_other", "admin", "other");
    let set = |token: &str, key: &str, instance: Option<&str>| {
        let q = "mutation($k: String!, $i: String) { setCredential(key: $k, value: \"s3cret-default\", instance: $i) { key instance version } }";
        s.graphql_as(Some(token), q, json!({ "k": key, "i": instance })).unwrap()
    };
    let rule = |res: &Value| res["errors"][0]["extensions"]["rule"].as_str().map(str::to_string);

    // An admin sets a credential in their instance, not a global one nor in another instance.
    let res = set(&here, "db/token", Some("default"));
    assert_eq!(res["data"]["setCredential"]["instance"], "default", "{res}");
    assert_eq!(error_code(&set(&here, "db/global", None)).as_deref(), Some("FORBIDDEN"));
    assert_eq!(error_code(&set(&here, "db/theirs", Some("other"))).as_deref(), Some("FORBIDDEN"));
    // Another instance's admin neither sees nor touches it, and is not told whose the key is.
    let keys = |token: &str| gql(&s, token, "{ credentialKeys { key instance } }", json!({}))["credentialKeys"].clone();
    assert_eq!(keys(&there), json!([]));
    let res = set(&there, "db/token", Some("other"));
    assert_eq!(rule(&res).as_deref(), Some("unique"), "{res}");
    assert!(!res.to_string().contains("default"), "{res}");
    let res = s.graphql_as(Some(&there), "mutation { deleteCredential(key: \"db/token\") }", json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "{res}");
    // A global credential is everyone's to see and name, and a superadmin's to change.
    set(&admin, "shared/hook", None);
    assert_eq!(keys(&there), json!([{ "key": "shared/hook", "instance": null }]));
    assert_eq!(error_code(&set(&here, "shared/hook", None)).as_deref(), Some("FORBIDDEN"));

    // Integrations likewise; one of an instance names only global keys or that instance's.
    let hook = |token: &str, name: &str, key: &str, instance: Option<&str>| {
        let q = "mutation($n: String!, $k: String!, $i: String) { createIntegration(instance: $i, input: {name: $n, kind: \"webhook\", credentialKey: $k}) { name instance } }";
        s.graphql_as(Some(token), q, json!({ "n": name, "k": key, "i": instance })).unwrap()
    };
    let res = hook(&here, "hook_here", "db/token", Some("default"));
    assert_eq!(res["data"]["createIntegration"]["instance"], "default", "{res}");
    let res = hook(&there, "hook_there", "db/token", Some("other"));
    assert_eq!(rule(&res).as_deref(), Some("unknown_credential"), "{res}");
    let res = hook(&admin, "hook_global", "db/token", None);
    assert_eq!(rule(&res).as_deref(), Some("unknown_credential"), "a global integration names global keys: {res}");
    // A global credential is named only by what a superadmin writes: an instance's admin would
    // otherwise send it to their own endpoint, as the integration's key or in a header.
    let res = hook(&there, "hook_there", "shared/hook", Some("other"));
    assert_eq!(rule(&res).as_deref(), Some("global_credential"), "{res}");
    assert_eq!(res["errors"][0]["extensions"]["field"], "credential_key", "{res}");
    let in_header = "mutation($i: IntegrationInput!) { createIntegration(instance: \"other\", input: $i) { name } }";
    set(&there, "db/theirs", Some("other"));
    let header = json!({ "i": { "name": "hook_header", "kind": "webhook", "credentialKey": "db/theirs",
        "headers": [{ "name": "X-Key", "value": "${C:shared/hook}" }] } });
    let res = s.graphql_as(Some(&there), in_header, header.clone()).unwrap();
    assert_eq!(rule(&res).as_deref(), Some("global_credential"), "{res}");
    assert!(gql(&s, &admin, in_header, header)["createIntegration"].is_object(), "a superadmin may");
    // Nor does an instance's admin change what a superadmin wrote while it names one.
    let upd = "mutation($i: IntegrationInput!) { updateIntegration(name: \"hook_header\", input: $i) { name } }";
    let moved = json!({ "i": { "name": "hook_header", "kind": "webhook", "credentialKey": "db/theirs",
        "method": "PUT", "headers": [{ "name": "X-Key", "value": "${C:shared/hook}" }] } });
    let res = s.graphql_as(Some(&there), upd, moved).unwrap();
    assert_eq!(rule(&res).as_deref(), Some("global_credential"), "{res}");
    assert!(hook(&there, "hook_there", "db/theirs", Some("other"))["data"]["createIntegration"].is_object());
    let names = |token: &str| {
        let list = gql(&s, token, "{ integrations { name } }", json!({}));
        let mut v: Vec<String> =
            list["integrations"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&here), ["hook_here"]);
    assert_eq!(names(&there), ["hook_header", "hook_there"]);

    // Definitions of an instance name only what is global or theirs, whoever saves them.
    let save = |instance: &str, name: &str, extra: Value| {
        let mut t = json!({ "name": name, "instance": instance, "command": "test \"$SECRET\" = s3cret-default",
                            "target": "etl", "runAsUser": "root" });
        t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s.graphql_as(Some(&admin), "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))
            .unwrap()
    };
    let profile = json!({ "profile": [{ "name": "SECRET", "value": "${C:db/token}" }] });
    let res = save("other", "borrows_a_key", profile.clone());
    assert_eq!(rule(&res).as_deref(), Some("unknown_credential"), "{res}");
    let alert = json!({ "alerts": [{ "on": "failure", "integration": "hook_here" }] });
    let res = save("other", "borrows_a_hook", alert.clone());
    assert_eq!(rule(&res).as_deref(), Some("unknown_integration"), "{res}");
    assert!(save("default", "uses_its_hook", alert)["data"]["createTask"]["tid"].is_i64());
    // And the instance's own task gets the value at dispatch.
    let res = save("default", "uses_its_key", profile);
    let tid = res["data"]["createTask"]["tid"].as_i64().unwrap_or_else(|| panic!("{res}"));
    wait_success(&s, &admin, force_run(&s, &admin, tid));
    // A task's profile names a global key only when a superadmin writes it, in a form or an import.
    let global = json!({ "name": "reads_global", "instance": "other", "command": "true", "target": "etl",
                         "runAsUser": "root", "profile": [{ "name": "K", "value": "${C:shared/hook}" }] });
    let create = "mutation($t: TaskInput!) { createTask(input: $t) { tid } }";
    let res = s.graphql_as(Some(&there), create, json!({ "t": global })).unwrap();
    assert_eq!(rule(&res).as_deref(), Some("global_credential"), "{res}");
    assert_eq!(res["errors"][0]["extensions"]["field"], "profile.K", "{res}");
    let tid = gql(&s, &admin, create, json!({ "t": global }))["createTask"]["tid"].as_i64().unwrap();
    // Its runs go only to agents serving every instance, which only an admin of every instance
    // makes: an agent an instance's admin enrolled never receives a global credential.
    let serve = "mutation($i: String!) { setAgentInstances(name: \"a1\", instances: $i) { instances } }";
    gql(&s, &admin, serve, json!({ "i": "other" }));
    let waiting = force_run(&s, &admin, tid);
    let plain = json!({ "name": "plain_other", "instance": "other", "command": "true", "target": "etl",
                        "runAsUser": "root" });
    let plain = gql(&s, &admin, create, json!({ "t": plain }))["createTask"]["tid"].as_i64().unwrap();
    wait_success(&s, &admin, force_run(&s, &admin, plain));
    let r = gql(&s, &admin, "query($id: Int!) { run(id: $id) { status agentId } }", json!({ "id": waiting }));
    assert_eq!((r["run"]["status"].as_str(), r["run"]["agentId"].as_i64()), (Some("TRIGGERED"), None), "{r}");
    gql(&s, &admin, serve, json!({ "i": "*" }));
    wait_success(&s, &admin, waiting);
    let edit = json!({ "name": "reads_global", "instance": "other", "command": "echo $K", "target": "etl",
                       "runAsUser": "root", "profile": [{ "name": "K", "value": "${C:shared/hook}" }] });
    let update = "mutation($id: Int!, $t: TaskInput!) { updateTask(tid: $id, input: $t) { tid } }";
    let res = s.graphql_as(Some(&there), update, json!({ "id": tid, "t": edit })).unwrap();
    assert_eq!(rule(&res).as_deref(), Some("global_credential"), "an edit that keeps it: {res}");
    let doc = json!({ "kind": "baton.definitions", "version": 1, "instances": [{ "name": "other",
        "tasks": [{ "name": "imported_global", "instance": "other", "command": "echo $K", "target": "etl", "run_as_user": "root",
                    "profile": { "K": "${C:shared/hook}" } }] }] });
    let import = "mutation($d: JSON!) { importDefinitions(document: $d, mode: MERGE) { errors { path rule } } }";
    let res = gql(&s, &there, import, json!({ "d": doc }));
    let errors = res["importDefinitions"]["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["rule"] == "global_credential"), "{res}");
}

/// Says hello as agent `name` with `token`, claiming `hostname` and `queues`; the first answer
/// and the connection.
fn hello(s: &Server, token: &str, name: &str, hostname: &str, queues: &[&str]) -> (baton_tests::AgentSocket, Value) {
    let (mut ws, _) = tungstenite::connect(s.url("/agent").replacen("http", "ws", 1).as_str()).unwrap();
    let hello = json!({"type": "hello", "protocol": 1, "token": token, "name": name, "hostname": hostname,
                       "queues": queues, "version": "x", "os": "y", "last_acked_seq": 0, "incarnation": "i1"});
    ws.send(tungstenite::Message::Text(hello.to_string().into())).unwrap();
    let answer = baton_tests::next_agent_frame(&mut ws).unwrap();
    (ws, answer)
}

/// An agent is only what the server issued: a token an admin of `other` makes enrols an agent
/// that serves `other` only, whatever it says of itself (here the hostname of `default`'s
/// agent, which `default`'s task targets); and it may not later claim another hostname or more
/// queues than at its first registration.
#[test]
fn an_agent_serves_only_its_makers_instances_and_claims_no_more_than_it_first_did() {
    let (s, admin, agent) = rig();
    let ada = user(&s, &admin, "ada", "admin", "other");
    let made = gql(&s, &ada, "mutation { createAgentToken(name: \"ada-agent\") { token } }", json!({}));
    let token = made["createAgentToken"]["token"].as_str().unwrap().to_string();
    // It claims the hostname `default`'s task targets.
    let (mut evil, answer) = hello(&s, &token, "evil", "target-of-default", &["etl"]);
    assert_eq!(answer["type"], "welcome", "{answer}");
    let agents = gql(&s, &admin, "{ agents { name instances } }", json!({}));
    let evil_row = agents["agents"].as_array().unwrap().iter().find(|a| a["name"] == "evil").unwrap().clone();
    assert_eq!(evil_row["instances"], "other", "{agents}");
    // `default`'s run for that target, with `default`'s agent away: it waits; evil gets nothing.
    drop(agent);
    let t =
        json!({ "name": "victim", "command": "echo secret-work", "target": "target-of-default", "runAsUser": "root" });
    let tid = gql(&s, &admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))
        ["createTask"]["tid"]
        .as_i64()
        .unwrap();
    let run = force_run(&s, &admin, tid);
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = evil.get_mut() {
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    while let Ok(frame) = evil.read() {
        if let tungstenite::Message::Text(t) = frame {
            assert!(!t.contains("\"dispatch\""), "another instance's run reached the agent: {t}");
        }
    }
    let r = gql(&s, &admin, "query($id: Int!) { run(id: $id) { status agentId } }", json!({ "id": run }));
    assert_eq!(r["run"]["status"], "TRIGGERED", "{r}");
    assert!(r["run"]["agentId"].is_null(), "{r}");
    drop(evil);
    // Later claims beyond the first registration are refused.
    let (_, answer) = hello(&s, &token, "evil", "another-host", &["etl"]);
    assert_eq!(answer["reason"], "this enrollment token is bound to hostname target-of-default, not another-host");
    let (_, answer) = hello(&s, &token, "evil", "target-of-default", &["etl", "payroll"]);
    assert_eq!(answer["reason"], "queues payroll are not this enrollment token's (it was bound to: etl)", "{answer}");
    // Nor may she free `default`'s agent name to take it with a token of hers: its token serves
    // beyond her instances.
    let tokens = gql(&s, &admin, "{ agentTokens { id agentName } }", json!({}));
    let a1 = tokens["agentTokens"].as_array().unwrap().iter().find(|t| t["agentName"] == "a1").unwrap()["id"].clone();
    let res =
        s.graphql_as(Some(&ada), "mutation($id: Int!) { revokeAgentToken(id: $id) }", json!({ "id": a1 })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");
    let (_, answer) = hello(&s, &token, "a1", "target-of-default", &["etl"]);
    assert_eq!(answer["type"], "refused", "{answer}");
}

/// An admin of one instance sees and touches only the users, API tokens and agent tokens of
/// their instances: not the superadmin, not another instance's users, their tokens or agents.
#[test]
fn a_scoped_admin_sees_only_the_users_and_tokens_of_its_instances() {
    let (s, admin, _agent) = rig();
    let ada = user(&s, &admin, "ada", "admin", "other");
    user(&s, &admin, "olga", "viewer", "other");
    user(&s, &admin, "dora", "viewer", "default");
    let made = gql(&s, &admin, "mutation { createApiToken(name: \"root-ci\") { token info { id } } }", json!({}));
    let root_token = made["createApiToken"]["info"]["id"].clone();
    gql(&s, &ada, "mutation { createAgentToken(name: \"ada-agent\") { token } }", json!({}));

    let names = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list].as_array().unwrap().iter().map(|x| x[field].as_str().unwrap_or_default().to_string()).collect()
    };
    let users = names(&gql(&s, &ada, "{ users { username } }", json!({})), "users", "username");
    assert!(users.contains(&"ada".to_string()) && users.contains(&"olga".to_string()), "{users:?}");
    assert!(!users.contains(&"admin".to_string()) && !users.contains(&"dora".to_string()), "{users:?}");
    let tokens = names(&gql(&s, &ada, "{ apiTokens { name } }", json!({})), "apiTokens", "name");
    assert!(!tokens.contains(&"root-ci".to_string()), "{tokens:?}");
    let res = s
        .graphql_as(Some(&ada), "mutation($id: Int!) { revokeApiToken(id: $id) }", json!({ "id": root_token }))
        .unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "{res}");
    let agent_tokens = names(&gql(&s, &ada, "{ agentTokens { name } }", json!({})), "agentTokens", "name");
    assert_eq!(agent_tokens, ["ada-agent"], "the superadmin's token of agent a1 is not hers to see");
    // The superadmin sees them all.
    let all = names(&gql(&s, &admin, "{ agentTokens { name } }", json!({})), "agentTokens", "name");
    assert_eq!(all.len(), 2, "{all:?}");
}
