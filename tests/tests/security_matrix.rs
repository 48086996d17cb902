//! Every query, mutation and subscription of the SDL (`graphql/schema.graphql`), called as each role both
//! inside and outside the instance it touches, over the real server. The table below must name
//! every field the SDL has: a new field without a row (and so without a decided guard) fails.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_hello, data, error_code, Server, Subscription};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const ROLES: [&str; 5] = ["viewer", "user", "operator", "admin", "superadmin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// The fields of one root type in the SDL.
fn sdl_fields(root: &str) -> BTreeSet<String> {
    let sdl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../graphql/schema.graphql")).unwrap();
    let body = sdl.split(&format!("type {root} {{")).nth(1).unwrap().split("\n}").next().unwrap().to_string();
    // A field is a line `\tname(` or `\tname:`; descriptions are in quotes.
    body.lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter_map(|l| {
            let name: String = l.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            (!name.is_empty() && l[name.len()..].starts_with(['(', ':'])).then_some(name)
        })
        .collect()
}

/// What a call touches: nothing of an instance's, instance `default`'s, or what only a caller
/// with every instance may touch (every caller here has one instance).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Scope {
    Global,
    Instance,
    Every,
}

/// Who calls: their role, whether they have instance `default`, their token and user name.
struct Caller {
    role: &'static str,
    inside: bool,
    token: String,
    tag: String,
}

/// The server, its superadmin's token (who prepares what each call touches), and a counter.
struct Ctx {
    s: Server,
    admin: String,
    n: std::cell::Cell<u32>,
}

impl Ctx {
    fn unique(&self, what: &str) -> String {
        self.n.set(self.n.get() + 1);
        format!("{what}_{}", self.n.get())
    }
    fn gql(&self, q: &str, v: Value) -> Value {
        data(self.s.graphql_as(Some(&self.admin), q, v).unwrap())
    }
    fn task(&self) -> i64 {
        let t = json!({ "name": self.unique("t"), "command": "true", "target": "nowhere", "runAsUser": "batch" });
        self.gql("mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))["createTask"]["tid"]
            .as_i64()
            .unwrap()
    }
    fn group(&self) -> (i64, String) {
        let name = self.unique("g");
        let gid = self.gql("mutation($n: String!) { createGroup(input: {name: $n}) { gid } }", json!({ "n": name }))
            ["createGroup"]["gid"]
            .as_i64()
            .unwrap();
        (gid, name)
    }
    fn run(&self) -> i64 {
        let tid = self.task();
        self.gql("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
            .as_i64()
            .unwrap()
    }
    /// A credential holding a webhook URL that goes nowhere; its key.
    fn hook_key(&self) -> String {
        let k = format!("hooks/{}", self.unique("k"));
        self.gql(
            "mutation($k: String!) { setCredential(key: $k, value: \"http://127.0.0.1:9/x\") { version } }",
            json!({ "k": k }),
        );
        k
    }
    /// A webhook integration, global; its name.
    fn integration(&self) -> String {
        let n = self.unique("hook");
        self.gql(CREATE_HOOK, json!({ "n": n, "k": self.hook_key() }));
        n
    }
    /// A webhook integration of instance `default`; its name.
    fn integration_here(&self) -> String {
        let n = self.unique("hook");
        self.gql(CREATE_HOOK_HERE, json!({ "n": n, "k": self.hook_key() }));
        n
    }
    /// A credential of instance `default`; its key.
    fn key_here(&self) -> String {
        let k = format!("keys/{}", self.unique("k"));
        self.gql(SET_KEY_HERE, json!({ "k": k }));
        k
    }
    fn user(&self, instances: &str) -> i64 {
        self.gql(
            "mutation($u: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: \"viewer\", instances: $i) { id } }",
            json!({ "u": self.unique("u"), "i": instances }),
        )["createUser"]["id"]
            .as_i64()
            .unwrap()
    }
}

const CREATE_HOOK: &str =
    "mutation($n: String!, $k: String!) { createIntegration(input: {name: $n, kind: \"webhook\", credentialKey: $k}) { name } }";
const CREATE_HOOK_HERE: &str =
    "mutation($n: String!, $k: String!) { createIntegration(instance: \"default\", input: {name: $n, kind: \"webhook\", credentialKey: $k}) { name } }";
const SET_KEY_HERE: &str =
    "mutation($k: String!) { setCredential(key: $k, value: \"v\", instance: \"default\") { version } }";

type Build = Box<dyn Fn(&Ctx, &Caller) -> (String, Value)>;

struct Op {
    name: &'static str,
    /// The least role, or None: anyone, signed in or not.
    min: Option<&'static str>,
    scope: Scope,
    build: Build,
}

fn op(
    name: &'static str,
    min: Option<&'static str>,
    scope: Scope,
    build: impl Fn(&Ctx, &Caller) -> (String, Value) + 'static,
) -> Op {
    Op { name, min, scope, build: Box::new(build) }
}

fn q(s: &str, v: Value) -> (String, Value) {
    (s.to_string(), v)
}

fn mutations() -> Vec<Op> {
    use Scope::*;
    let task_input = |name: &str| json!({ "name": name, "command": "true", "target": "nowhere", "runAsUser": "batch" });
    vec![
        op("login", None, Global, |c, _| {
            q(
                "mutation($p: String!) { login(username: \"admin\", password: $p) { token } }",
                json!({ "p": c.s.admin_password }),
            )
        }),
        // (Called with a session of its own: see below.)
        op("logout", Some("viewer"), Global, |_, _| q("mutation { logout }", json!({}))),
        op("createUser", Some("admin"), Instance, |c, _| {
            q(
                "mutation($u: String!) { createUser(username: $u, password: \"password-123\", role: \"viewer\", instances: \"default\") { id } }",
                json!({ "u": c.unique("new") }),
            )
        }),
        op("updateUser", Some("admin"), Instance, |c, _| {
            q("mutation($id: Int!) { updateUser(id: $id, disabled: false) { id } }", json!({ "id": c.user("default") }))
        }),
        op("setPassword", Some("admin"), Instance, |c, _| {
            q(
                "mutation($id: Int!) { setPassword(id: $id, password: \"password-456\") }",
                json!({ "id": c.user("default") }),
            )
        }),
        op("createApiToken", Some("viewer"), Global, |c, _| {
            q("mutation($n: String!) { createApiToken(name: $n) { token } }", json!({ "n": c.unique("tok") }))
        }),
        op("revokeApiToken", Some("viewer"), Global, |c, who| {
            if who.token.is_empty() {
                return q("mutation { revokeApiToken(id: 1) }", json!({}));
            }
            let made = data(
                c.s.graphql_as(
                    Some(&who.token),
                    "mutation($n: String!) { createApiToken(name: $n) { info { id } } }",
                    json!({ "n": c.unique("tok") }),
                )
                .unwrap(),
            );
            q("mutation($id: Int!) { revokeApiToken(id: $id) }", json!({ "id": made["createApiToken"]["info"]["id"] }))
        }),
        op("createInstance", Some("admin"), Every, |c, _| {
            q("mutation($n: String!) { createInstance(name: $n) { id } }", json!({ "n": c.unique("inst") }))
        }),
        op("createTask", Some("admin"), Instance, move |c, _| {
            q("mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": task_input(&c.unique("ct")) }))
        }),
        op("updateTask", Some("admin"), Instance, move |c, _| {
            let tid = c.task();
            let name = c.gql("query($t: Int!) { task(tid: $t) { name } }", json!({ "t": tid }))["task"]["name"].clone();
            let mut t = task_input(name.as_str().unwrap());
            t["description"] = json!("changed");
            q(
                "mutation($id: Int!, $t: TaskInput!) { updateTask(tid: $id, input: $t) { version } }",
                json!({ "id": tid, "t": t }),
            )
        }),
        op("deleteTask", Some("admin"), Instance, |c, _| {
            q("mutation($id: Int!) { deleteTask(tid: $id) }", json!({ "id": c.task() }))
        }),
        op("setTaskActive", Some("admin"), Instance, |c, _| {
            q("mutation($id: Int!) { setTaskActive(tid: $id, active: false) { active } }", json!({ "id": c.task() }))
        }),
        op("createGroup", Some("admin"), Instance, |c, _| {
            q("mutation($n: String!) { createGroup(input: {name: $n}) { gid } }", json!({ "n": c.unique("cg") }))
        }),
        op("updateGroup", Some("admin"), Instance, |c, _| {
            let (gid, name) = c.group();
            q("mutation($g: Int!, $n: String!) { updateGroup(gid: $g, input: {name: $n, description: \"x\"}) { version } }", json!({ "g": gid, "n": name }))
        }),
        op("deleteGroup", Some("admin"), Instance, |c, _| {
            q("mutation($g: Int!) { deleteGroup(gid: $g) }", json!({ "g": c.group().0 }))
        }),
        op("setGroupActive", Some("admin"), Instance, |c, _| {
            q("mutation($g: Int!) { setGroupActive(gid: $g, active: false) { active } }", json!({ "g": c.group().0 }))
        }),
        op("saveCalendar", Some("admin"), Instance, |c, _| {
            q(
                "mutation($n: String!) { saveCalendar(input: {name: $n}) { id } }",
                json!({ "n": c.unique("CAL").to_uppercase() }),
            )
        }),
        op("deleteCalendar", Some("admin"), Instance, |c, _| {
            let name = c.unique("DEL").to_uppercase();
            c.gql("mutation($n: String!) { saveCalendar(input: {name: $n}) { id } }", json!({ "n": name }));
            q("mutation($n: String!) { deleteCalendar(name: $n) }", json!({ "n": name }))
        }),
        op("exportDefinitions", Some("viewer"), Instance, |_, _| {
            q("mutation { exportDefinitions(instances: [\"default\"]) }", json!({}))
        }),
        op("importDefinitions", Some("admin"), Instance, |c, _| {
            let doc = json!({ "kind": "baton.definitions", "version": 1, "instances": [{ "name": "default",
                "tasks": [{ "name": c.unique("imp"), "command": "true", "target": "nowhere", "run_as_user": "batch" }] }] });
            q(
                "mutation($d: JSON!) { importDefinitions(document: $d) { applied errors { rule } } }",
                json!({ "d": doc }),
            )
        }),
        op("createAgentToken", Some("admin"), Global, |c, _| {
            q("mutation($n: String!) { createAgentToken(name: $n) { token } }", json!({ "n": c.unique("at") }))
        }),
        // A token made by an admin of `default`: its agent serves `default`, so only callers
        // with `default` may revoke it.
        op("revokeAgentToken", Some("admin"), Instance, |c, _| {
            let maker = c.unique("tokenmaker");
            c.gql(
                "mutation($u: String!) { createUser(username: $u, password: \"password-123\", role: \"admin\", instances: \"default\") { id } }",
                json!({ "u": maker }),
            );
            let maker = c.s.login(&maker, "password-123").unwrap();
            let made = c.s.graphql_as(
                Some(&maker),
                "mutation($n: String!) { createAgentToken(name: $n) { info { id } } }",
                json!({ "n": c.unique("at") }),
            );
            let id = data(made.unwrap())["createAgentToken"]["info"]["id"].clone();
            q("mutation($id: Int!) { revokeAgentToken(id: $id) }", json!({ "id": id }))
        }),
        op("setAgentInstances", Some("admin"), Instance, |c, _| {
            // An agent registers (a hello on its own token), then serves instance default only.
            let name = c.unique("agent");
            let token = c.gql("mutation($n: String!) { createAgentToken(name: $n) { token } }", json!({ "n": name }))
                ["createAgentToken"]["token"]
                .clone();
            let (_, welcome) = agent_hello(&c.s.base_url, token.as_str().unwrap(), &name).unwrap();
            assert_eq!(welcome["type"], "welcome", "{welcome}");
            let set = "mutation($n: String!, $i: String!) { setAgentInstances(name: $n, instances: $i) { instances } }";
            c.gql(set, json!({ "n": name, "i": "default" }));
            q(set, json!({ "n": name, "i": "default" }))
        }),
        op("runAdhoc", Some("operator"), Global, |_, _| {
            q("mutation { runAdhoc(queue: \"nowhere\", command: \"true\", runAsUser: \"batch\") { id } }", json!({}))
        }),
        op("forceRun", Some("operator"), Instance, |c, _| {
            q("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": c.task() }))
        }),
        op("terminateRun", Some("operator"), Instance, |c, _| {
            q("mutation($id: Int!) { terminateRun(id: $id) }", json!({ "id": c.run() }))
        }),
        op("modifyRunStatus", Some("operator"), Instance, |c, _| {
            q("mutation($id: Int!) { modifyRunStatus(id: $id, status: SUCCESS) { ok } }", json!({ "id": c.run() }))
        }),
        op("freezeTask", Some("operator"), Instance, |c, _| {
            q("mutation($t: Int!) { freezeTask(tid: $t) { ok } }", json!({ "t": c.task() }))
        }),
        op("unfreezeTask", Some("operator"), Instance, |c, _| {
            let tid = c.task();
            c.gql("mutation($t: Int!) { freezeTask(tid: $t) { ok } }", json!({ "t": tid }));
            q("mutation($t: Int!) { unfreezeTask(tid: $t) { ok } }", json!({ "t": tid }))
        }),
        // Integrations and credentials of instance `default` (global ones, a superadmin's only, are
        // in `security_instances.rs`).
        op("createIntegration", Some("admin"), Instance, |c, _| {
            q(CREATE_HOOK_HERE, json!({ "n": c.unique("hook"), "k": c.hook_key() }))
        }),
        op("updateIntegration", Some("admin"), Instance, |c, _| {
            let (n, k) = (c.integration_here(), c.hook_key());
            q("mutation($n: String!, $k: String!) { updateIntegration(name: $n, input: {name: $n, kind: \"webhook\", credentialKey: $k}) { name } }", json!({ "n": n, "k": k }))
        }),
        op("deleteIntegration", Some("admin"), Instance, |c, _| {
            q("mutation($n: String!) { deleteIntegration(name: $n) }", json!({ "n": c.integration_here() }))
        }),
        op("setCredential", Some("admin"), Instance, |c, _| {
            q(SET_KEY_HERE, json!({ "k": format!("keys/{}", c.unique("k")) }))
        }),
        op("deleteCredential", Some("admin"), Instance, |c, _| {
            q("mutation($k: String!) { deleteCredential(key: $k) }", json!({ "k": c.key_here() }))
        }),
        op("sendTestAlert", Some("admin"), Global, |c, _| {
            q("mutation($n: String!) { sendTestAlert(integration: $n) { status } }", json!({ "n": c.integration() }))
        }),
    ]
}

fn subscriptions() -> Vec<Op> {
    use Scope::*;
    vec![
        op("definitionChanges", Some("viewer"), Global, |_, _| {
            q("subscription { definitionChanges { name } }", json!({}))
        }),
        op("agentEvents", Some("viewer"), Global, |_, _| q("subscription { agentEvents { name } }", json!({}))),
        op("runEvents", Some("viewer"), Instance, |c, _| {
            q("subscription($id: Int!) { runEvents(runId: $id) { to } }", json!({ "id": c.run() }))
        }),
        op("runOutput", Some("viewer"), Instance, |c, _| {
            q("subscription($id: Int!) { runOutput(runId: $id) { data } }", json!({ "id": c.run() }))
        }),
    ]
}

/// What a call got: refused (FORBIDDEN or UNAUTHENTICATED, or an import's `forbidden` error),
/// hidden (NOT_FOUND), done, or an error without a code (the request itself is wrong).
#[derive(Debug, PartialEq, Clone, Copy)]
enum Outcome {
    Refused,
    Hidden,
    Done,
    Malformed,
}

fn outcome(res: &Value) -> (Outcome, String) {
    let code = error_code(res)
        .or_else(|| res.pointer("/payload/errors/0/extensions/code").and_then(Value::as_str).map(str::to_string))
        .or_else(|| res.pointer("/payload/0/extensions/code").and_then(Value::as_str).map(str::to_string));
    let errors = res.get("errors").or_else(|| res.pointer("/payload/errors")).and_then(Value::as_array);
    let import_refused = res.pointer("/data/importDefinitions/errors/0/rule") == Some(&json!("forbidden"));
    let o = match code.as_deref() {
        Some("FORBIDDEN" | "UNAUTHENTICATED") => Outcome::Refused,
        Some("NOT_FOUND") => Outcome::Hidden,
        _ if import_refused => Outcome::Refused,
        None if errors.is_some_and(|e| !e.is_empty()) || res["type"] == "error" => Outcome::Malformed,
        _ => Outcome::Done,
    };
    (o, res.to_string())
}

/// What each caller must get.
fn expected(op: &Op, who: Option<&Caller>) -> Vec<Outcome> {
    let Some(min) = op.min else { return vec![Outcome::Done] };
    let Some(who) = who else { return vec![Outcome::Refused] };
    if rank(who.role) < rank(min) {
        return vec![Outcome::Refused];
    }
    if op.scope == Scope::Instance && !who.inside {
        return vec![Outcome::Refused, Outcome::Hidden];
    }
    if op.scope == Scope::Every {
        return vec![Outcome::Refused];
    }
    vec![Outcome::Done]
}

#[test]
fn every_mutation_and_subscription_as_every_role_in_and_out_of_its_instance() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let c = Ctx { s, admin, n: std::cell::Cell::new(0) };
    c.gql("mutation { createInstance(name: \"other\") { id } }", json!({}));
    let (muts, subs) = (mutations(), subscriptions());
    let named = |ops: &[Op]| ops.iter().map(|o| o.name.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(named(&muts), sdl_fields("Mutation"), "every mutation of the SDL has a row, and no more");
    assert_eq!(named(&subs), sdl_fields("Subscription"), "every subscription of the SDL has a row, and no more");

    // A caller per role, inside (instance default) and outside (instance other).
    let caller = |role: &'static str, inside: bool| -> Caller {
        let tag = c.unique(&format!("{role}_{}", if inside { "in" } else { "out" }));
        let instances = if inside { "default" } else { "other" };
        c.gql(
            "mutation($u: String!, $r: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: $r, instances: $i) { id } }",
            json!({ "u": tag, "r": role, "i": instances }),
        );
        let token = c.s.login(&tag, "password-123").unwrap();
        Caller { role, inside, token, tag }
    };
    let callers: Vec<Caller> = ROLES.iter().flat_map(|r| [caller(r, true), caller(r, false)]).collect();
    let anonymous = Caller { role: "viewer", inside: false, token: String::new(), tag: "anonymous".into() };
    let mut failures = Vec::new();
    for (is_sub, ops) in [(false, &muts), (true, &subs)] {
        for op in ops.iter() {
            for who in std::iter::once(None).chain(callers.iter().map(Some)) {
                let (query, vars) = (op.build)(&c, who.unwrap_or(&anonymous));
                // Logging out ends the session it is sent with: it gets one of its own.
                let fresh =
                    (op.name == "logout").then(|| who.map(|w| c.s.login(&w.tag, "password-123").unwrap())).flatten();
                let token = fresh.as_deref().or(who.map(|w| w.token.as_str()));
                let res = if is_sub {
                    match Subscription::start(&c.s.base_url, token.unwrap_or(""), &query, vars) {
                        Ok(mut sub) => {
                            sub.next_frame(Duration::from_millis(300)).unwrap().unwrap_or(json!({ "type": "none" }))
                        }
                        Err(e) => {
                            json!({ "errors": [{ "message": e.to_string(), "extensions": { "code": "UNAUTHENTICATED" } }] })
                        }
                    }
                } else {
                    c.s.graphql_as(token, &query, vars).unwrap()
                };
                let (got, body) = outcome(&res);
                let want = expected(op, who);
                if !want.contains(&got) {
                    let tag = who.map_or("anonymous", |w| w.tag.as_str());
                    failures.push(format!("{} as {tag}: got {got:?}, want {want:?}: {body}", op.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong:\n{}", failures.len(), failures.join("\n"));
}

/// What a query asks of instance `default`: one of its things (outside, refused or hidden), or a
/// list whose answer must show its thing exactly to the callers inside who may see it.
enum Asks {
    /// Nothing of an instance's: every caller at the role gets it.
    Global,
    /// One thing of `default`'s.
    Item,
    /// A list: `probe` says whether the answer shows `default`'s thing; callers inside from role
    /// `sees` up must see it, every other caller must not.
    List { sees: &'static str, probe: Box<dyn Fn(&Value) -> bool> },
}

struct QueryOp {
    name: &'static str,
    min: Option<&'static str>,
    asks: Asks,
    query: String,
    vars: Value,
}

/// Whether `list` (an array) has an element whose `key` is `want`.
fn has(list: &Value, key: &str, want: &Value) -> bool {
    list.as_array().is_some_and(|l| l.iter().any(|i| i.pointer(key) == Some(want)))
}

/// Instance `default`'s things, made once by the superadmin, and the query rows that ask for them.
fn queries(c: &Ctx) -> Vec<QueryOp> {
    let (gid, _) = c.group();
    let hook = c.integration_here();
    let task = json!({ "name": c.unique("q"), "command": "true", "target": "nowhere", "runAsUser": "batch",
                       "schedule": { "cron": "* * * * *", "timezone": "UTC" },
                       "alerts": [{ "on": "always", "integration": hook }] });
    let tid = c.gql("mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": task }))["createTask"]
        ["tid"]
        .as_i64()
        .unwrap();
    let run = c.gql("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"].clone();
    c.gql("mutation($id: Int!) { terminateRun(id: $id) }", json!({ "id": run }));
    let calendar = c.unique("QCAL").to_uppercase();
    c.gql("mutation($n: String!) { saveCalendar(input: {name: $n}) { id } }", json!({ "n": calendar }));
    let key = c.key_here();
    // An agent serving `default` only, and a token made by an admin of `default`.
    let agent = c.unique("qagent");
    let token = c.gql("mutation($n: String!) { createAgentToken(name: $n) { token } }", json!({ "n": agent }))
        ["createAgentToken"]["token"]
        .clone();
    let _ = agent_hello(&c.s.base_url, token.as_str().unwrap(), &agent).unwrap();
    c.gql(
        "mutation($n: String!) { setAgentInstances(name: $n, instances: \"default\") { instances } }",
        json!({ "n": agent }),
    );
    let maker = c.unique("qmaker");
    c.gql(
        "mutation($u: String!) { createUser(username: $u, password: \"password-123\", role: \"admin\", instances: \"default\") { id } }",
        json!({ "u": maker }),
    );
    let maker_token = c.s.login(&maker, "password-123").unwrap();
    let agent_token = c.unique("qtoken");
    data(
        c.s.graphql_as(
            Some(&maker_token),
            "mutation($n: String!) { createAgentToken(name: $n) { token } }",
            json!({ "n": agent_token }),
        )
        .unwrap(),
    );
    let api_token = data(
        c.s.graphql_as(Some(&maker_token), "mutation { createApiToken(name: \"qapi\") { info { id } } }", json!({}))
            .unwrap(),
    )["createApiToken"]["info"]["id"]
        .clone();
    // The run's end alert is tried at once; wait until its delivery is logged.
    baton_tests::wait_for("the end alert's delivery", Duration::from_secs(20), || {
        let d = c.gql("{ alertDeliveries { runId } }", json!({}));
        has(&d["alertDeliveries"], "/runId", &run).then_some(())
    })
    .unwrap();

    let item = |name, min, query: &str, vars: Value| QueryOp {
        name,
        min: Some(min),
        asks: Asks::Item,
        query: query.into(),
        vars,
    };
    let global = |name, min: Option<&'static str>, query: &str| QueryOp {
        name,
        min,
        asks: Asks::Global,
        query: query.into(),
        vars: json!({}),
    };
    let list = |name, min, sees, query: &str, probe: Box<dyn Fn(&Value) -> bool>| QueryOp {
        name,
        min: Some(min),
        asks: Asks::List { sees, probe },
        query: query.into(),
        vars: json!({}),
    };
    let (tid_v, run_v, gid_v) = (json!(tid), run.clone(), json!(gid));
    let (task_id, group_id) = (tid_v.clone(), gid_v.clone());
    let (api_id, maker_name) = (api_token.clone(), json!(maker));
    let audited = json!(format!("calendar {calendar}"));
    vec![
        global("version", None, "{ version }"),
        global("me", Some("viewer"), "{ me { id } }"),
        global("scheduler", Some("viewer"), "{ scheduler { version } }"),
        list("instances", "viewer", "viewer", "{ instances { name } }", Box::new(|r| has(&r["instances"], "/name", &json!("default")))),
        list("users", "admin", "admin", "{ users { username } }", Box::new(move |r| has(&r["users"], "/username", &maker_name))),
        list("apiTokens", "viewer", "admin", "{ apiTokens { id } }", Box::new(move |r| has(&r["apiTokens"], "/id", &api_id))),
        list("tasks", "viewer", "viewer", "{ tasks { edges { node { tid } } } }", Box::new(move |r| has(&r["tasks"]["edges"], "/node/tid", &task_id))),
        item("task", "viewer", "query($t: Int!) { task(tid: $t) { tid } }", json!({ "t": tid_v })),
        list("groups", "viewer", "viewer", "{ groups { edges { node { gid } } } }", Box::new(move |r| has(&r["groups"]["edges"], "/node/gid", &group_id))),
        item("group", "viewer", "query($g: Int!) { group(gid: $g) { gid } }", json!({ "g": gid_v })),
        item("flowGraph", "viewer", "query($g: Int!) { flowGraph(gid: $g) { nodes { name } } }", json!({ "g": gid_v })),
        item("groupRuns", "viewer", "query($g: Int!) { groupRuns(gid: $g) { id } }", json!({ "g": gid_v })),
        list("calendars", "viewer", "viewer", "{ calendars { name } }", Box::new(move |r| has(&r["calendars"], "/name", &json!(calendar)))),
        item("schedulePreview", "viewer", "{ schedulePreview(schedule: {cron: \"0 0 * * *\", timezone: \"UTC\"}, count: 1, instance: \"default\") { utc } }", json!({})),
        list("auditLog", "admin", "admin", "{ auditLog { edges { node { target } } } }", Box::new(move |r| {
            has(&r["auditLog"]["edges"], "/node/target", &audited)
        })),
        list("runs", "viewer", "viewer", "{ runs { edges { node { id } } } }", {
            let run = run_v.clone();
            Box::new(move |r| has(&r["runs"]["edges"], "/node/id", &run))
        }),
        item("run", "viewer", "query($id: Int!) { run(id: $id) { id } }", json!({ "id": run_v })),
        item("runOutput", "viewer", "query($id: Int!) { runOutput(runId: $id, stream: STDOUT) { totalBytes } }", json!({ "id": run_v })),
        list("dashboard", "viewer", "viewer", "{ dashboard { counts { count } } }", Box::new(|r| {
            r["dashboard"]["counts"].as_array().is_some_and(|l| l.iter().any(|c| c["count"].as_i64() > Some(0)))
        })),
        list("agents", "viewer", "viewer", "{ agents { name } }", Box::new(move |r| has(&r["agents"], "/name", &json!(agent)))),
        list("agentTokens", "admin", "admin", "{ agentTokens { name } }", Box::new(move |r| has(&r["agentTokens"], "/name", &json!(agent_token)))),
        list("upcomingRuns", "viewer", "viewer", "{ upcomingRuns(limit: 100) { taskId } }", Box::new(move |r| has(&r["upcomingRuns"], "/taskId", &json!(tid)))),
        list("operatorEvents", "viewer", "viewer", "{ operatorEvents { kind runId } }", {
            let run = run_v.clone();
            Box::new(move |r| has(&r["operatorEvents"], "/runId", &run))
        }),
        // Its rows are missed slots, found by the same rule as `runs`; none is made here.
        global("missedRuns", Some("viewer"), "{ missedRuns { id } }"),
        list("integrations", "viewer", "viewer", "{ integrations { name } }", Box::new(move |r| has(&r["integrations"], "/name", &json!(hook)))),
        list("credentialKeys", "admin", "admin", "{ credentialKeys { key } }", Box::new(move |r| has(&r["credentialKeys"], "/key", &json!(key)))),
        list("alertDeliveries", "operator", "operator", "{ alertDeliveries { runId } }", {
            let run = run_v.clone();
            Box::new(move |r| has(&r["alertDeliveries"], "/runId", &run))
        }),
    ]
}

#[test]
fn every_query_as_every_role_in_and_out_of_its_instance() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let c = Ctx { s, admin, n: std::cell::Cell::new(0) };
    c.gql("mutation { createInstance(name: \"other\") { id } }", json!({}));
    let ops = queries(&c);
    let named = ops.iter().map(|o| o.name.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(named, sdl_fields("Query"), "every query of the SDL has a row, and no more");

    let mut failures = Vec::new();
    let callers: Vec<Caller> = ROLES
        .iter()
        .flat_map(|role| {
            [true, false].map(|inside| {
                let tag = c.unique(&format!("q{role}_{}", if inside { "in" } else { "out" }));
                c.gql(
                    "mutation($u: String!, $r: String!, $i: String!) { createUser(username: $u, password: \"password-123\", role: $r, instances: $i) { id } }",
                    json!({ "u": tag, "r": role, "i": if inside { "default" } else { "other" } }),
                );
                Caller { role, inside, token: c.s.login(&tag, "password-123").unwrap(), tag }
            })
        })
        .collect();
    for op in &ops {
        for who in std::iter::once(None).chain(callers.iter().map(Some)) {
            let res = c.s.graphql_as(who.map(|w| w.token.as_str()), &op.query, op.vars.clone()).unwrap();
            let (got, body) = outcome(&res);
            let tag = who.map_or("anonymous", |w| w.tag.as_str());
            let allowed = match (op.min, who) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(min), Some(w)) => rank(w.role) >= rank(min),
            };
            let wrong = match (&op.asks, allowed, who) {
                (_, false, _) => (got != Outcome::Refused).then(|| format!("want Refused, got {got:?}")),
                (Asks::Global, true, _) => (got != Outcome::Done).then(|| format!("want Done, got {got:?}")),
                (Asks::Item, true, Some(w)) if !w.inside => {
                    (!matches!(got, Outcome::Refused | Outcome::Hidden)).then(|| format!("want hidden, got {got:?}"))
                }
                (Asks::Item, true, _) => (got != Outcome::Done).then(|| format!("want Done, got {got:?}")),
                (Asks::List { sees, probe }, true, w) => {
                    let should = w.is_some_and(|w| w.inside && rank(w.role) >= rank(sees));
                    if got != Outcome::Done {
                        Some(format!("want Done, got {got:?}"))
                    } else {
                        (probe(&res["data"]) != should).then(|| format!("shows default's: want {should}"))
                    }
                }
            };
            if let Some(why) = wrong {
                failures.push(format!("{} as {tag}: {why}: {body}", op.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong:\n{}", failures.len(), failures.join("\n"));
}

/// The records each instance owns, and whose owner the API checks when a query returns them.
const RECORDS: [&str; 11] = [
    "Task",
    "Group",
    "Run",
    "GroupRun",
    "Agent",
    "AgentToken",
    "ApiToken",
    "User",
    "Calendar",
    "Integration",
    "AlertDelivery",
];

/// The object fields that return a record, each with why it cannot reach past the caller's
/// instances: a new one fails `object_fields_that_reach_records_are_decided` until it is here.
const REACHING_FIELDS: [(&str, &str); 11] = [
    ("CreatedAgentToken.info", "the token just made, by its maker"),
    ("CreatedApiToken.info", "the caller's own new token"),
    ("FlowGraph.group", "the group the caller asked the graph of, checked by flowGraph"),
    ("GroupConnection.nodes", "the page groups(...) filtered"),
    ("GroupEdge.node", "the page groups(...) filtered"),
    ("LoginPayload.user", "the caller"),
    ("RunConnection.nodes", "the page runs(...) filtered"),
    ("RunEdge.node", "the page runs(...) filtered"),
    ("Task.group", "the task's group, always of the task's instance (saving checks it)"),
    ("TaskConnection.nodes", "the page tasks(...) filtered"),
    ("TaskEdge.node", "the page tasks(...) filtered"),
];

/// The queries and mutations are checked as every role above; the objects they return reach
/// other records only through fields decided here (a field that took arguments or returned
/// another instance's record would need its own row in the matrix).
#[test]
fn object_fields_that_reach_records_are_decided() {
    let sdl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../graphql/schema.graphql")).unwrap();
    let mut reaching = BTreeSet::new();
    let mut with_arguments = Vec::new();
    for block in sdl.split("\ntype ").skip(1) {
        let name: String = block.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if matches!(name.as_str(), "Query" | "Mutation" | "Subscription") {
            continue;
        }
        let body = block.split("\n}").next().unwrap();
        for line in body.lines().filter_map(|l| l.strip_prefix('\t')) {
            let field: String = line.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if field.is_empty() || !line[field.len()..].starts_with(['(', ':']) {
                continue;
            }
            if line[field.len()..].starts_with('(') {
                with_arguments.push(format!("{name}.{field}"));
            }
            let ty: String = line.rsplit(':').next().unwrap().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            if RECORDS.contains(&ty.as_str()) {
                reaching.insert(format!("{name}.{field}"));
            }
        }
    }
    let decided: BTreeSet<String> = REACHING_FIELDS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(reaching, decided, "object fields returning a record, and the decided ones");
    assert!(with_arguments.is_empty(), "object fields with arguments need rows of their own: {with_arguments:?}");
}
