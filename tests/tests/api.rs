//! The GraphQL API over the real server: roles and instance access for every mutation and
//! sensitive query, sessions and tokens, validation errors, import and export, pagination,
//! subscriptions over a real WebSocket, the README's examples, and the CLI.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{binary, data, error_code, Server};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const ROLES: [&str; 5] = ["viewer", "user", "operator", "admin", "superadmin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

fn make_user(s: &Server, admin: &str, name: &str, role: &str, instances: &str) -> String {
    data(
        s.graphql_as(
            Some(admin),
            "mutation($u: String!, $r: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: $r, instances: $i) { id } }",
            json!({ "u": name, "r": role, "i": instances }),
        )
        .unwrap(),
    );
    s.login(name, "password-123").unwrap()
}

fn create_task(s: &Server, token: &str, input: Value) -> Value {
    s.graphql_as(Some(token), "mutation($t: TaskInput!) { createTask(input: $t) { tid name } }", json!({ "t": input }))
        .unwrap()
}

fn task_input(name: &str) -> Value {
    json!({ "name": name, "command": "echo ${T:task_name}", "target": "etl", "runAsUser": "batch",
            "schedule": { "triggerTimes": "02:00", "timezone": "Europe/London" } })
}

/// Builds the request (query and variables) an operation sends on behalf of a role.
type RequestFor = Box<dyn Fn(&str) -> (String, Value)>;

/// One operation of the matrix: a name, the least role it needs, and the request for a role.
struct Op {
    name: &'static str,
    min: &'static str,
    request: RequestFor,
}

fn op(name: &'static str, min: &'static str, request: impl Fn(&str) -> (String, Value) + 'static) -> Op {
    Op { name, min, request: Box::new(request) }
}

#[test]
fn role_matrix_over_every_mutation_and_sensitive_query() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    data(s.graphql_as(Some(&admin), "mutation { createGroup(input: {name: \"g1\", schedule: {triggerTimes: \"01:00\", timezone: \"UTC\"}}) { gid } }", json!({})).unwrap());
    let t1 = data(create_task(
        &s,
        &admin,
        json!({"name": "t1", "group": "g1", "command": "true", "target": "etl", "runAsUser": "batch"}),
    ))["createTask"]["tid"]
        .as_i64()
        .unwrap();
    let mut tokens = Vec::new();
    let mut doomed = std::collections::HashMap::new();
    for role in ROLES {
        tokens.push((role, make_user(&s, &admin, &format!("u_{role}"), role, "*")));
        let tid =
            data(create_task(&s, &admin, task_input(&format!("del_{role}"))))["createTask"]["tid"].as_i64().unwrap();
        doomed.insert(role.to_string(), tid);
        data(
            s.graphql_as(
                Some(&admin),
                "mutation($n: String!) { saveCalendar(input: {name: $n}) { id } }",
                json!({ "n": format!("DEL_{role}") }),
            )
            .unwrap(),
        );
    }
    let ops = vec![
        op("instances", "viewer", |_| ("{ instances { name } }".into(), json!({}))),
        op("me", "viewer", |_| ("{ me { username role } }".into(), json!({}))),
        op("tasks", "viewer", |_| ("{ tasks { totalCount } }".into(), json!({}))),
        op("task", "viewer", move |_| ("query($t: Int!) { task(tid: $t) { name } }".into(), json!({ "t": t1 }))),
        op("groups", "viewer", |_| ("{ groups { totalCount edges { node { name } } } }".into(), json!({}))),
        op("flowGraph", "viewer", |_| ("{ flowGraph(gid: 1) { nodes { name } } }".into(), json!({}))),
        op("calendars", "viewer", |_| ("{ calendars { name } }".into(), json!({}))),
        op("schedulePreview", "viewer", |_| {
            (
                "{ schedulePreview(schedule: {cron: \"0 2 * * *\", timezone: \"UTC\"}, count: 2) { utc } }".into(),
                json!({}),
            )
        }),
        op("apiTokens", "viewer", |_| ("{ apiTokens { name } }".into(), json!({}))),
        op("createApiToken", "viewer", |r| {
            ("mutation($n: String!) { createApiToken(name: $n) { token } }".into(), json!({ "n": format!("tok_{r}") }))
        }),
        op("exportDefinitions", "viewer", |_| ("mutation { exportDefinitions }".into(), json!({}))),
        op("users", "admin", |_| ("{ users { username } }".into(), json!({}))),
        op("auditLog", "admin", |_| ("{ auditLog(first: 5) { totalCount } }".into(), json!({}))),
        op("createTask", "admin", |r| {
            (
                "mutation($t: TaskInput!) { createTask(input: $t) { tid } }".into(),
                json!({ "t": task_input(&format!("new_{r}")) }),
            )
        }),
        op("updateTask", "admin", move |r| {
            let mut t = json!({"name": "t1", "group": "g1", "command": "true", "target": "etl", "runAsUser": "batch"});
            t["description"] = json!(format!("by {r}"));
            (
                "mutation($id: Int!, $t: TaskInput!) { updateTask(tid: $id, input: $t) { version } }".into(),
                json!({ "id": t1, "t": t }),
            )
        }),
        op("setTaskActive", "admin", move |_| {
            ("mutation($id: Int!) { setTaskActive(tid: $id, active: true) { active } }".into(), json!({ "id": t1 }))
        }),
        op("deleteTask", "admin", move |r| {
            (
                "mutation($id: Int!) { deleteTask(tid: $id) }".into(),
                json!({ "id": doomed.get(r).copied().unwrap_or(999_999) }),
            )
        }),
        op("createGroup", "admin", |r| {
            (
                "mutation($n: String!) { createGroup(input: {name: $n}) { gid } }".into(),
                json!({ "n": format!("g_{r}") }),
            )
        }),
        op("updateGroup", "admin", |r| {
            ("mutation($d: String!) { updateGroup(gid: 1, input: {name: \"g1\", description: $d, schedule: {triggerTimes: \"01:00\", timezone: \"UTC\"}}) { version } }".into(), json!({ "d": r }))
        }),
        op("setGroupActive", "admin", |_| {
            ("mutation { setGroupActive(gid: 1, active: true) { active } }".into(), json!({}))
        }),
        op("saveCalendar", "admin", |r| {
            ("mutation($n: String!) { saveCalendar(input: {name: $n, holidays: [{start: \"2026-12-25\", reason: \"Christmas\"}]}) { id } }".into(), json!({ "n": format!("CAL_{r}") }))
        }),
        op("deleteCalendar", "admin", |r| {
            ("mutation($n: String!) { deleteCalendar(name: $n) }".into(), json!({ "n": format!("DEL_{r}") }))
        }),
        op("createInstance", "admin", |r| {
            ("mutation($n: String!) { createInstance(name: $n) { id } }".into(), json!({ "n": format!("inst_{r}") }))
        }),
        op("createUser", "admin", |r| {
            ("mutation($n: String!) { createUser(username: $n, password: \"password-123\", role: \"viewer\") { id } }".into(), json!({ "n": format!("made_by_{r}") }))
        }),
        op("importDefinitions", "admin", |_| {
            (
                "mutation($d: JSON!) { importDefinitions(document: $d, dryRun: true) { applied errors { path } } }"
                    .into(),
                json!({ "d": { "kind": "baton.definitions", "version": 1, "instances": [] } }),
            )
        }),
    ];
    for o in &ops {
        let (query, vars) = (o.request)("anon");
        let res = s.graphql(&query, vars).unwrap();
        assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "{} without a login: {res}", o.name);
    }
    for (role, token) in &tokens {
        for o in &ops {
            let (query, vars) = (o.request)(role);
            let res = s.graphql_as(Some(token), &query, vars).unwrap();
            if rank(role) >= rank(o.min) {
                assert!(res.get("errors").is_none(), "{role} may {}: {res}", o.name);
            } else {
                assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{role} may not {}: {res}", o.name);
            }
        }
    }

    // A user without access to the instance sees nothing of it and changes nothing in it.
    let outsider = make_user(&s, &admin, "outsider", "admin", "elsewhere");
    let res = s.graphql_as(Some(&outsider), "query($t: Int!) { task(tid: $t) { name } }", json!({ "t": t1 })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "{res}");
    let res = data(
        s.graphql_as(Some(&outsider), "{ tasks { totalCount } groups { totalCount } instances { name } }", json!({}))
            .unwrap(),
    );
    assert_eq!(res["tasks"]["totalCount"], 0);
    assert_eq!(res["groups"]["totalCount"], 0);
    assert_eq!(res["instances"], json!([]));
    let res = create_task(&s, &outsider, task_input("sneaky"));
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");
    let res =
        s.graphql_as(Some(&outsider), "mutation { exportDefinitions(instances: [\"default\"]) }", json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");

    // Admins grant up to operator; only superadmins grant admin.
    let admin_user = &tokens[3].1;
    let res = s
        .graphql_as(
            Some(admin_user),
            "mutation { createUser(username: \"boss\", password: \"password-123\", role: \"superadmin\") { id } }",
            json!({}),
        )
        .unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");

    // Every mutation above went to the audit log, with its actor.
    let log = data(s.graphql_as(Some(&admin), "{ auditLog(first: 500, filter: {action: \"createTask\"}) { totalCount edges { node { actor target after } } } }", json!({})).unwrap());
    let actors: Vec<&str> =
        log["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["actor"].as_str().unwrap()).collect();
    assert!(actors.contains(&"u_admin") && actors.contains(&"u_superadmin") && actors.contains(&"admin"), "{actors:?}");
    assert!(!actors.contains(&"u_operator"), "a refused mutation is not recorded as done");
    let first = &log["auditLog"]["edges"][0]["node"];
    assert!(first["after"].as_str().unwrap().contains("\"command\""), "the record after the change: {first}");
}

#[test]
fn sessions_tokens_and_role_changes() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let bob = make_user(&s, &admin, "bob", "admin", "*");
    let bob_id = data(s.graphql_as(Some(&bob), "{ me { id role } }", json!({})).unwrap())["me"]["id"].as_i64().unwrap();

    let res =
        s.graphql("mutation { login(username: \"bob\", password: \"wrong-password\") { token } }", json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"));

    // An API token works as a bearer token, acts with its user's current role, and dies when revoked.
    let created = data(
        s.graphql_as(Some(&bob), "mutation { createApiToken(name: \"ci\") { token info { id name } } }", json!({}))
            .unwrap(),
    );
    let api = created["createApiToken"]["token"].as_str().unwrap().to_string();
    let api_id = created["createApiToken"]["info"]["id"].as_i64().unwrap();
    assert_eq!(data(s.graphql_as(Some(&api), "{ me { username } }", json!({})).unwrap())["me"]["username"], "bob");

    // A role change ends bob's sessions at once; his token now acts as a viewer.
    data(
        s.graphql_as(
            Some(&admin),
            "mutation($id: Int!) { updateUser(id: $id, role: \"viewer\") { role } }",
            json!({ "id": bob_id }),
        )
        .unwrap(),
    );
    let res = s.graphql_as(Some(&bob), "{ me { username } }", json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "session ended: {res}");
    let res = create_task(&s, &api, task_input("by_token"));
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");

    data(s.graphql_as(Some(&api), "mutation($id: Int!) { revokeApiToken(id: $id) }", json!({ "id": api_id })).unwrap());
    let res = s.graphql_as(Some(&api), "{ me { username } }", json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "revoked: {res}");

    // Logout ends the session; disabling a user ends theirs and refuses new logins.
    let bob2 = s.login("bob", "password-123").unwrap();
    data(s.graphql_as(Some(&bob2), "mutation { logout }", json!({})).unwrap());
    assert_eq!(
        error_code(&s.graphql_as(Some(&bob2), "{ me { id } }", json!({})).unwrap()).as_deref(),
        Some("UNAUTHENTICATED")
    );
    let bob3 = s.login("bob", "password-123").unwrap();
    data(
        s.graphql_as(
            Some(&admin),
            "mutation($id: Int!) { updateUser(id: $id, disabled: true) { disabled } }",
            json!({ "id": bob_id }),
        )
        .unwrap(),
    );
    assert_eq!(
        error_code(&s.graphql_as(Some(&bob3), "{ me { id } }", json!({})).unwrap()).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert!(s.login("bob", "password-123").is_err());

    // The browser gets an HTTP-only cookie that authenticates without a bearer token.
    let resp = ureq::post(&s.url("/graphql"))
        .send_json(json!({ "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { token } }", "variables": { "p": s.admin_password } }))
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("baton_session=") && cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let mut me = ureq::post(&s.url("/graphql"))
        .header("Cookie", pair)
        .send_json(json!({ "query": "{ me { username } }" }))
        .unwrap();
    let body: Value = me.body_mut().read_json().unwrap();
    assert_eq!(body["data"]["me"]["username"], "admin");
}

#[test]
fn validation_errors_name_the_field_and_the_rule() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    data(s.graphql_as(Some(&admin), "mutation { createGroup(input: {name: \"g\"}) { gid } }", json!({})).unwrap());
    data(create_task(
        &s,
        &admin,
        json!({"name": "a", "group": "g", "command": "true", "target": "etl", "runAsUser": "batch"}),
    ));
    data(create_task(
        &s,
        &admin,
        json!({"name": "b", "group": "g", "command": "true", "target": "etl", "runAsUser": "batch", "dependency": "S:a"}),
    ));
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"name": "bad name"}), "name", "charset"),
        (json!({"command": ""}), "command", "required"),
        (json!({"command": "run ${T:nope}"}), "command", "placeholder"),
        (json!({"target": "a b"}), "target", "charset"),
        (json!({"runAsUser": "9lives"}), "run_as_user", "posix_user"),
        (json!({"retryAttempts": 11}), "retry_attempts", "range"),
        (json!({"maxRunTimeSeconds": 82801}), "max_run_time_seconds", "range"),
        (json!({"acceptExpirySeconds": 0}), "accept_expiry_seconds", "range"),
        (json!({"stdoutPath": "out.log"}), "stdout_path", "absolute_path"),
        (json!({"profile": [{"name": "BATON_X", "value": "1"}]}), "profile.BATON_X", "reserved"),
        (json!({"misfirePolicy": "sometimes"}), "misfire_policy", "one_of"),
        (json!({"schedule": {"triggerTimes": "25:00", "timezone": "UTC"}}), "schedule.trigger_times", "time_format"),
        (json!({"schedule": {"cron": "0 0 30 2 *", "timezone": "UTC"}}), "schedule", "never_fires"),
        (
            json!({"schedule": {"runFrequency": "08:00-18:00-0", "timezone": "UTC"}}),
            "schedule.run_frequency",
            "interval_range",
        ),
        (
            json!({"schedule": {"triggerTimes": "02:00", "days": "0000000", "timezone": "UTC"}}),
            "schedule.days",
            "never_fires",
        ),
        (
            json!({"schedule": {"triggerTimes": "02:00", "days": "6th monday", "timezone": "UTC"}}),
            "schedule.days",
            "ordinal_day",
        ),
        (
            json!({"schedule": {"triggerTimes": "02:00", "timezone": "Mars/Olympus"}}),
            "schedule.timezone",
            "iana_timezone",
        ),
        (
            json!({"schedule": {"triggerTimes": "02:00", "timezone": "UTC", "calendar": "NOPE"}}),
            "schedule.calendar",
            "unknown_calendar",
        ),
        (json!({"dependency": "S:a"}), "dependency", "grouped_only"),
        (json!({"group": "nope", "schedule": null}), "group", "unknown_group"),
        (json!({"group": "g", "schedule": null, "dependency": "S:zz"}), "dependency", "unknown_name"),
        (json!({"group": "g", "schedule": null, "dependency": "S:a and"}), "dependency", "dependency_syntax"),
        (json!({"group": "g"}), "schedule", "inherited"),
        (
            json!({"alerts": [{"on": "failure", "integration": "ops", "message": "${P:nope}"}]}),
            "alerts[0].message",
            "placeholder",
        ),
    ];
    for (patch, field, rule) in cases {
        let mut input = task_input("x");
        for (k, v) in patch.as_object().unwrap() {
            input[k] = v.clone();
        }
        let res = create_task(&s, &admin, input);
        assert_eq!(error_code(&res).as_deref(), Some("VALIDATION"), "{field}/{rule}: {res}");
        let ext = &res["errors"][0]["extensions"];
        assert_eq!((ext["field"].as_str(), ext["rule"].as_str()), (Some(field), Some(rule)), "{res}");
    }
    // A cycle through an update is refused with the cycle named, and nothing changes.
    let a = json!({"name": "a", "group": "g", "command": "true", "target": "etl", "runAsUser": "batch", "dependency": "S:b"});
    let res = s
        .graphql_as(
            Some(&admin),
            "mutation($t: TaskInput!) { updateTask(tid: 1, input: $t) { tid } }",
            json!({ "t": a }),
        )
        .unwrap();
    assert_eq!(res["errors"][0]["extensions"]["rule"], "cycle", "{res}");
    assert!(res["errors"][0]["message"].as_str().unwrap().contains("a -> b -> a"), "{res}");
    let res = data(s.graphql_as(Some(&admin), "{ task(tid: 1) { dependency version } }", json!({})).unwrap());
    assert_eq!(res["task"], json!({ "dependency": null, "version": 1 }));
    // Queries nested too deep are refused before they run.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(14),
        " }".repeat(14)
    );
    let res = s.graphql_as(Some(&admin), &deep, json!({})).unwrap();
    assert!(res["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{res}");
    // Names are unique per instance.
    let res = create_task(
        &s,
        &admin,
        json!({"name": "a", "group": "g", "command": "true", "target": "etl", "runAsUser": "batch"}),
    );
    assert_eq!(error_code(&res).as_deref(), Some("CONFLICT"), "{res}");
}

fn document(tasks: usize, bad_at: Option<usize>) -> Value {
    let tasks: Vec<Value> = (0..tasks)
        .map(|i| {
            let cron = if Some(i) == bad_at { "0 0 30 2 *" } else { "*/15 * * * *" };
            json!({ "name": format!("job_{i:05}"), "command": "true", "target": "etl", "run_as_user": "batch",
                    "schedule": { "cron": cron, "timezone": "UTC" } })
        })
        .collect();
    json!({ "kind": "baton.definitions", "version": 1, "instances": [{ "name": "default", "tasks": tasks }] })
}

fn import(s: &Server, token: &str, doc: &Value, dry_run: bool, mode: &str) -> Value {
    data(
        s.graphql_as(
            Some(token),
            "mutation($d: JSON!, $dry: Boolean!, $m: ImportMode!) { importDefinitions(document: $d, dryRun: $dry, mode: $m) {
                applied created { kind name } deleted { kind name } changed { item { kind name } fields { field before after } }
                errors { path rule message } } }",
            json!({ "d": doc, "dry": dry_run, "m": mode }),
        )
        .unwrap(),
    )["importDefinitions"]
        .clone()
}

/// An integration `ops` (Slack) with its webhook URL in the credential store.
fn ops_integration(s: &Server, token: &str) {
    let res = data(
        s.graphql_as(
            Some(token),
            "mutation { setCredential(key: \"hooks/ops\", value: \"https://hooks.example.com/services/T/B/x\") { version }
                        createIntegration(input: {name: \"ops\", kind: \"slack\", credentialKey: \"hooks/ops\"}) { name } }",
            json!({}),
        )
        .unwrap(),
    );
    assert_eq!(res["createIntegration"]["name"], "ops");
}

fn task_count(s: &Server, token: &str) -> i64 {
    data(s.graphql_as(Some(token), "{ tasks { totalCount } }", json!({})).unwrap())["tasks"]["totalCount"]
        .as_i64()
        .unwrap()
}

#[test]
fn import_plans_applies_atomically_and_round_trips() {
    let a = Server::start().unwrap();
    let admin = a.admin().unwrap();
    let doc = json!({ "kind": "baton.definitions", "version": 1, "instances": [{
        "name": "default",
        "calendars": [{ "name": "HOL", "holidays": [{ "start": "2026-12-24", "end": "2026-12-26", "reason": "Christmas" }] }],
        "groups": [{ "name": "nightly", "schedule": { "trigger_times": "02:00", "timezone": "Europe/London", "calendar": "HOL" } }],
        "tasks": [
            { "name": "extract", "group": "nightly", "command": "extract.sh ${E:YYYYMMDD}", "target": "etl", "run_as_user": "batch",
              "alerts": [{ "on": "failure", "integration": "ops" }] },
            { "name": "load", "group": "nightly", "command": "load.sh", "target": "etl", "run_as_user": "batch", "dependency": "S:extract",
              "profile": { "MODE": "full" } }
        ] }] });

    // Alert rules may only name integrations that exist on the importing server.
    let plan = import(&a, &admin, &doc, false, "MERGE");
    assert_eq!(
        (plan["applied"].as_bool(), plan["errors"][0]["rule"].as_str()),
        (Some(false), Some("unknown_integration"))
    );
    assert_eq!(plan["errors"][0]["path"], "$.instances[0].tasks[0].alerts[0].integration", "{plan}");
    ops_integration(&a, &admin);

    let plan = import(&a, &admin, &doc, true, "MERGE");
    assert_eq!(plan["applied"], false);
    let created: Vec<String> = plan["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}:{}", c["kind"].as_str().unwrap(), c["name"].as_str().unwrap()))
        .collect();
    assert_eq!(created, vec!["calendar:HOL", "group:nightly", "task:extract", "task:load"]);
    assert_eq!(task_count(&a, &admin), 0, "a dry run changes nothing");

    let plan = import(&a, &admin, &doc, false, "MERGE");
    assert_eq!(plan["applied"], true, "{plan}");
    assert_eq!(task_count(&a, &admin), 2);
    let graph =
        data(a.graphql_as(Some(&admin), "{ flowGraph(gid: 1) { edges { from to state } } }", json!({})).unwrap());
    assert_eq!(graph["flowGraph"]["edges"], json!([{ "from": 2, "to": 1, "state": "S" }]));

    // A changed field shows up field by field.
    let mut changed = doc.clone();
    changed["instances"][0]["tasks"][1]["command"] = json!("load.sh --fast");
    let plan = import(&a, &admin, &changed, true, "MERGE");
    assert_eq!(
        plan["changed"],
        json!([{ "item": { "kind": "task", "name": "load" }, "fields": [{ "field": "command", "before": "load.sh", "after": "load.sh --fast" }] }])
    );
    assert_eq!(plan["created"], json!([]));

    // Replace mode deletes what the document lacks.
    let mut fewer = doc.clone();
    fewer["instances"][0]["tasks"] = json!([doc["instances"][0]["tasks"][0]]);
    let plan = import(&a, &admin, &fewer, true, "REPLACE");
    assert_eq!(plan["deleted"], json!([{ "kind": "task", "name": "load" }]), "{plan}");

    // Round trip: export, import into an empty server, export again: the same document.
    let exported = data(a.graphql_as(Some(&admin), "mutation { exportDefinitions }", json!({})).unwrap())
        ["exportDefinitions"]
        .clone();
    assert!(!exported.to_string().contains("password"), "no secrets in exports");
    assert!(!exported.to_string().contains("hooks.example.com"), "no webhook URLs in exports");
    let b = Server::start().unwrap();
    let b_admin = b.admin().unwrap();
    ops_integration(&b, &b_admin);
    assert_eq!(import(&b, &b_admin, &exported, false, "MERGE")["applied"], true);
    let again = data(b.graphql_as(Some(&b_admin), "mutation { exportDefinitions }", json!({})).unwrap())
        ["exportDefinitions"]
        .clone();
    assert_eq!(again, exported);
    // New definitions after an import by id get fresh ids.
    let res = data(create_task(&b, &b_admin, task_input("after_import")));
    assert_eq!(res["createTask"]["tid"], 3);
}

#[test]
fn an_id_of_another_instances_definition_is_an_error_at_its_path() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let doc = json!({ "kind": "baton.definitions", "version": 1, "instances": [{
        "name": "default",
        "groups": [{ "name": "nightly", "schedule": { "trigger_times": "02:00", "timezone": "UTC" } }],
        "tasks": [{ "name": "extract", "group": "nightly", "command": "true", "target": "etl", "run_as_user": "batch" }] }] });
    let plan = import(&s, &admin, &doc, false, "MERGE");
    assert_eq!(plan["applied"], true, "{plan}");
    // The export carries each definition's id; under another instance's name, those ids are
    // the default instance's.
    let mut moved = data(s.graphql_as(Some(&admin), "mutation { exportDefinitions }", json!({})).unwrap())
        ["exportDefinitions"]
        .clone();
    moved["instances"][0]["name"] = json!("other");
    for kind in ["groups", "tasks"] {
        for entry in moved["instances"][0][kind].as_array_mut().unwrap() {
            entry["instance"] = json!("other");
        }
    }
    let plan = import(&s, &admin, &moved, false, "MERGE");
    assert_eq!(plan["applied"], false, "{plan}");
    let errors: Vec<(String, String)> = plan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["rule"].as_str().unwrap().to_string()))
        .collect();
    assert!(errors.contains(&("$.instances[0].groups[0].gid".into(), "other_instance".into())), "{plan}");
    assert_eq!(task_count(&s, &admin), 1, "nothing was applied");
}

#[test]
fn one_bad_task_among_a_thousand_leaves_the_database_untouched() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let plan = import(&s, &admin, &document(1000, Some(999)), false, "MERGE");
    assert_eq!(plan["applied"], false);
    assert_eq!(
        plan["errors"],
        json!([{ "path": "$.instances[0].tasks[999].schedule", "rule": "never_fires", "message": "this schedule can never fire" }])
    );
    assert_eq!(task_count(&s, &admin), 0);
    // A problem only the database can see (an unknown group) also rolls everything back.
    let mut doc = document(1000, None);
    doc["instances"][0]["tasks"][500]["group"] = json!("missing");
    doc["instances"][0]["tasks"][500].as_object_mut().unwrap().remove("schedule");
    let plan = import(&s, &admin, &doc, false, "MERGE");
    assert_eq!(plan["errors"][0]["path"], "$.instances[0].tasks[500].group", "{plan}");
    assert_eq!(task_count(&s, &admin), 0);
    // Structural problems carry their JSON path too.
    let mut doc = document(3, None);
    doc["instances"][0]["tasks"][2]["retries"] = json!(3);
    let plan = import(&s, &admin, &doc, false, "MERGE");
    assert_eq!(plan["errors"][0]["path"], "$.instances[0].tasks[2]", "{plan}");
    assert!(plan["errors"][0]["message"].as_str().unwrap().contains("retries"));
}

#[test]
fn ten_thousand_tasks_import_and_page_completely() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let started = std::time::Instant::now();
    let plan = import(&s, &admin, &document(10_000, None), false, "MERGE");
    eprintln!("imported 10,000 tasks in {:?}", started.elapsed());
    assert_eq!(plan["applied"], true);
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let res = data(
            s.graphql_as(
                Some(&admin),
                "query($a: String) { tasks(first: 500, after: $a) { totalCount pageInfo { hasNextPage } edges { cursor node { name } } } }",
                json!({ "a": after }),
            )
            .unwrap(),
        );
        let conn = &res["tasks"];
        assert_eq!(conn["totalCount"], 10_000);
        for e in conn["edges"].as_array().unwrap() {
            assert!(seen.insert(e["node"]["name"].as_str().unwrap().to_string()), "no task twice");
        }
        pages += 1;
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["edges"].as_array().unwrap().last().map(|e| e["cursor"].as_str().unwrap().to_string());
    }
    assert_eq!((seen.len(), pages), (10_000, 20));
    let res = data(
        s.graphql_as(Some(&admin), "{ tasks(filter: {search: \"job_0999\"}) { totalCount } }", json!({})).unwrap(),
    );
    assert_eq!(res["tasks"]["totalCount"], 10);
    let res = s.graphql_as(Some(&admin), "{ tasks(first: 501) { totalCount } }", json!({})).unwrap();
    assert_eq!(res["errors"][0]["extensions"]["field"], "first");
}

#[test]
fn definition_changes_arrive_in_order_over_a_websocket() {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    for path in ["/graphql/ws", "/graphql"] {
        let mut req = s.url(path).replace("http://", "ws://").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tungstenite::connect(req).unwrap();
        // Reads give up after a while, so a missing event fails the test instead of hanging it.
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            tcp.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
        }
        ws.send(Message::Text(json!({ "type": "connection_init", "payload": { "token": admin } }).to_string().into()))
            .unwrap();
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { definitionChanges { kind name action sequence } }" } });
        ws.send(Message::Text(subscribe.to_string().into())).unwrap();
        // The server registers the subscription a moment after it reads it; changes made before
        // that are not this subscriber's. So: make changes one by one until three have arrived,
        // then check they are consecutive changes, in the order made.
        let mut created: Vec<String> = Vec::new();
        let mut got: Vec<Value> = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while got.len() < 3 {
            assert!(std::time::Instant::now() < deadline, "only {} events arrived for {created:?}", got.len());
            let name = format!("ws{}_{}", path.len(), created.len());
            data(
                s.graphql_as(
                    Some(&admin),
                    "mutation($n: String!) { createGroup(input: {name: $n}) { gid } }",
                    json!({ "n": name }),
                )
                .unwrap(),
            );
            created.push(name);
            while let Ok(msg) = ws.read() {
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("connection_ack") => {}
                        Some("next") => got.push(v["payload"]["data"]["definitionChanges"].clone()),
                        _ => panic!("unexpected frame {v}"),
                    }
                }
            }
        }
        let names: Vec<&str> = got.iter().map(|g| g["name"].as_str().unwrap()).collect();
        let first = created.iter().position(|c| c == names[0]).unwrap();
        assert_eq!(
            names,
            created[first..first + names.len()].iter().map(String::as_str).collect::<Vec<_>>(),
            "in order, none missing"
        );
        let seqs: Vec<i64> = got.iter().map(|g| g["sequence"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert!(got.iter().all(|g| g["kind"] == "group" && g["action"] == "created"));
    }
}

/// The README's GraphQL examples, run verbatim in order: the first logs in, the rest use its token.
#[test]
fn readme_examples_run_verbatim() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```graphql\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 4, "the README has its examples");
    let s = Server::start().unwrap();
    let login = data(s.graphql(blocks[0], json!({ "password": s.admin_password })).unwrap());
    let token = login["login"]["token"].as_str().unwrap().to_string();
    for block in &blocks[1..] {
        let res = s.graphql_as(Some(&token), block, json!({})).unwrap();
        assert!(res.get("errors").is_none(), "README example failed:\n{block}\n{res}");
    }
    let exported = data(s.graphql_as(Some(&token), "mutation { exportDefinitions }", json!({})).unwrap());
    assert_eq!(exported["exportDefinitions"]["instances"][0]["tasks"][0]["name"], "extract");
}

#[test]
fn command_line_user_create_login_export_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary("baton"))
        .args(["user", "create", "--username", "ops", "--role", "admin", "--password-stdin", "--data"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ops-password-1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = Server::start_in(dir, &[]).unwrap();
    assert!(s.admin_password.is_empty(), "no generated superadmin when a user exists");

    let creds = tempfile::tempdir().unwrap();
    let creds_file = creds.path().join("credentials.json");
    let baton = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::new(binary("baton"))
            .args(args)
            .env("BATON_CREDENTIALS", &creds_file)
            .env_remove("BATON_TOKEN")
            .env_remove("BATON_SERVER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out =
        baton(&["login", "--server", &s.base_url, "--username", "ops", "--password-stdin"], Some("ops-password-1\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let doc_path = creds.path().join("doc.json");
    std::fs::write(&doc_path, document(3, None).to_string()).unwrap();
    let out = baton(&["import", doc_path.to_str().unwrap(), "--dry-run"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((plan["applied"].as_bool(), plan["created"].as_array().unwrap().len()), (Some(false), 3));
    let out = baton(&["import", doc_path.to_str().unwrap()], None);
    assert!(out.status.success());

    let out = baton(&["export"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["instances"][0]["tasks"].as_array().unwrap().len(), 3);

    std::fs::write(&doc_path, document(3, Some(1)).to_string()).unwrap();
    let out = baton(&["import", doc_path.to_str().unwrap()], None);
    assert!(!out.status.success(), "a bad document fails the command");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was imported"));
}

#[test]
fn a_storage_failure_is_internal_not_a_missing_record() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let force = "mutation { forceRun(tid: 999) { id } }";
    let res = s.graphql_as(Some(&admin), force, json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "no such task: {res}");
    let read = "{ task(tid: 999) { name } }";
    let res = s.graphql_as(Some(&admin), read, json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("NOT_FOUND"), "no such task: {res}");
    // The tasks table goes away under the server: its look-up fails, which is not "no such task".
    let file = std::fs::read_dir(s.data_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .unwrap();
    let mut c = diesel::SqliteConnection::establish(&file.to_string_lossy()).unwrap();
    c.batch_execute("PRAGMA foreign_keys = OFF; ALTER TABLE tasks RENAME TO tasks_gone;").unwrap();
    let res = s.graphql_as(Some(&admin), force, json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("INTERNAL"), "{res}");
    let res = s.graphql_as(Some(&admin), read, json!({})).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("INTERNAL"), "reading a task too: {res}");
    assert!(!res.to_string().contains("tasks"), "storage details stay in the server's log: {res}");
}
