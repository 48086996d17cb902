//! Alerts over the real binaries, against real local endpoints only: an HTTP sink for webhook,
//! Slack, Teams, Discord and PagerDuty payloads (checked field by field), a real SMTP server
//! (aiosmtpd, with STARTTLS and AUTH) for e-mail, retries after the sink fails twice, and the
//! credential store: a missing or wrong master key, secrets masked in run output across a chunk
//! boundary, and never found in the API, the logs, the export or the database file.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::sink::Sink;
use baton_tests::{agent_token_cli, binary, data, free_port, in_ci, smtp_python, wait_for, Agent, Server};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

fn config() -> String {
    let path = std::env::temp_dir().join(format!("baton-alerts-{}-{}.toml", std::process::id(), free_port()));
    std::fs::write(&path, "agent_heartbeat_seconds = 1\nalert_retry_base_ms = 200\nalert_attempts = 4\nalert_allowed_hosts = [\"127.0.0.1\"]\n").unwrap();
    path.to_string_lossy().into_owned()
}

fn gql(s: &Server, admin: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(admin), q, v).unwrap())
}

fn set_credential(s: &Server, admin: &str, key: &str, value: &str) -> Value {
    gql(
        s,
        admin,
        "mutation($k: String!, $v: String!) { setCredential(key: $k, value: $v) { key version } }",
        json!({ "k": key, "v": value }),
    )["setCredential"]
        .clone()
}

fn integration(s: &Server, admin: &str, input: Value) -> Value {
    gql(
        s,
        admin,
        "mutation($i: IntegrationInput!) { createIntegration(input: $i) { name kind credentialSet } }",
        json!({ "i": input }),
    )["createIntegration"]
        .clone()
}

const DELIVERIES: &str = "query($i: String) { alertDeliveries(integration: $i) { id integration source runId trigger subject message status attempts lastError log { attempt at ok detail } } }";

fn deliveries(s: &Server, admin: &str, integration: Option<&str>) -> Vec<Value> {
    gql(s, admin, DELIVERIES, json!({ "i": integration }))["alertDeliveries"].as_array().unwrap().clone()
}

fn with_agent(s: &Server, admin: &str) -> Agent {
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let agent = Agent::start(&s.base_url, &token, "a1", "etl").unwrap();
    wait_for("the agent", Duration::from_secs(20), || {
        (gql(s, admin, "{ agents { status } }", json!({}))["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    agent
}

const CREATE_TASK: &str = "mutation($t: TaskInput!) { createTask(input: $t) { tid } }";

/// Asks to create a task; the whole answer (a refusal is what some tests check).
fn try_task(s: &Server, admin: &str, t: Value) -> Value {
    s.graphql_as(Some(admin), CREATE_TASK, json!({ "t": t })).unwrap()
}

fn task(s: &Server, admin: &str, t: Value) -> i64 {
    data(try_task(s, admin, t))["createTask"]["tid"].as_i64().unwrap()
}

fn force_run(s: &Server, admin: &str, tid: i64) -> i64 {
    gql(s, admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))["forceRun"]["id"]
        .as_i64()
        .unwrap()
}

fn run_status(s: &Server, admin: &str, id: i64) -> String {
    gql(s, admin, "query($id: Int!) { run(id: $id) { status } }", json!({ "id": id }))["run"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_failed_run_alerts_every_http_channel_with_its_own_payload() {
    let sink = Sink::start();
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let admin = s.admin().unwrap();
    let _agent = with_agent(&s, &admin);
    let url = |p: &str| format!("{}{p}", sink.base_url);
    set_credential(&s, &admin, "hooks/generic", &url("/hook/generic-T0KEN1"));
    set_credential(&s, &admin, "hooks/slack", &url("/slack/T000/B000/T0KEN2"));
    set_credential(&s, &admin, "hooks/teams", &url("/teams/T0KEN3"));
    set_credential(&s, &admin, "hooks/discord", &url("/discord/T0KEN4"));
    set_credential(&s, &admin, "pagerduty/ops", "R0UTING-KEY-5");
    set_credential(&s, &admin, "api/token", "API-T0KEN-6");
    let hook = integration(
        &s,
        &admin,
        json!({
            "name": "generic", "kind": "webhook", "credentialKey": "hooks/generic", "method": "PUT",
            "headers": [{ "name": "X-Baton-Task", "value": "${T:task_name}" }, { "name": "Authorization", "value": "Bearer ${C:api/token}" }],
            "body": "{\"task\":\"${T:task_name}\",\"tid\":${T:task_id},\"status\":\"${P:status}\",\"code\":${P:exit_code},\"region\":\"${E:REGION}\"}",
        }),
    );
    assert_eq!(hook, json!({ "name": "generic", "kind": "webhook", "credentialSet": true }));
    for (name, kind) in [("slack", "slack"), ("teams", "teams"), ("discord", "discord")] {
        integration(&s, &admin, json!({ "name": name, "kind": kind, "credentialKey": format!("hooks/{name}") }));
    }
    integration(
        &s,
        &admin,
        json!({ "name": "pd", "kind": "pagerduty", "credentialKey": "pagerduty/ops", "eventsUrl": url("/pd/v2/enqueue"), "severity": "critical" }),
    );
    // A rule naming an integration that does not exist is refused beside its field.
    let res = try_task(
        &s,
        &admin,
        json!({ "name": "bad", "command": "true", "target": "etl", "runAsUser": "root", "alerts": [{ "on": "failure", "integration": "nobody" }] }),
    );
    assert_eq!(res["errors"][0]["extensions"]["field"], "alerts[0].integration", "{res}");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "unknown_integration", "{res}");

    let on_failure = |i: &str| json!({ "on": "failure", "integration": i });
    let tid = task(
        &s,
        &admin,
        json!({
            "name": "load", "command": "echo loading eu; echo row 9 bad; exit 3", "target": "etl", "runAsUser": "root",
            "profile": [{ "name": "REGION", "value": "eu" }],
            "alerts": [
                on_failure("generic"), on_failure("slack"), on_failure("teams"), on_failure("discord"), on_failure("pd"),
                { "on": "success", "integration": "generic" },
            ],
        }),
    );
    let run = force_run(&s, &admin, tid);
    let sent = wait_for("five alerts sent", Duration::from_secs(30), || {
        let d = deliveries(&s, &admin, None);
        (d.len() == 5 && d.iter().all(|d| d["status"] == "SENT")).then_some(d)
    })
    .unwrap();
    assert_eq!(run_status(&s, &admin, run), "FAILED");
    for d in &sent {
        assert_eq!((d["trigger"].as_str(), d["runId"].as_i64()), (Some("failure"), Some(run)), "{d}");
        assert_eq!(d["subject"], "[Baton] load failed");
        assert_eq!(d["log"], json!([{ "attempt": 1, "at": d["log"][0]["at"], "ok": true, "detail": "HTTP 200" }]));
        assert_eq!(d["source"], format!("task:{tid}"));
    }
    let run_date = chrono::Utc::now().date_naive().to_string();

    let generic = sink.to("/hook/generic-T0KEN1");
    assert_eq!(generic.len(), 1, "the success rule did not fire: {generic:?}");
    assert_eq!(generic[0].method, "PUT");
    assert_eq!(generic[0].header("X-Baton-Task"), Some("load"));
    assert_eq!(generic[0].header("Authorization"), Some("Bearer API-T0KEN-6"));
    assert_eq!(generic[0].header("Content-Type"), Some("application/json"));
    assert_eq!(generic[0].json(), json!({ "task": "load", "tid": tid, "status": "FAILED", "code": 3, "region": "eu" }));

    let slack = sink.to("/slack/T000/B000/T0KEN2")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("*[Baton] load failed*\nload failed: exit code 3 (run "), "{text}");
    assert!(text.contains(", exit code 3, duration "), "{text}");
    assert!(text.ends_with("\n\nLast output:\nloading eu\nrow 9 bad"), "{text}");
    assert_eq!(slack["attachments"][0]["color"], "#E01E5A");

    let teams = sink.to("/teams/T0KEN3")[0].json();
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["@context"], "https://schema.org/extensions");
    assert_eq!(
        (teams["title"].as_str(), teams["summary"].as_str()),
        (Some("[Baton] load failed"), Some("[Baton] load failed"))
    );
    assert_eq!(teams["themeColor"], "E01E5A");
    assert!(teams["text"].as_str().unwrap().ends_with("Last output:  \nloading eu  \nrow 9 bad"), "{teams}");

    let discord = sink.to("/discord/T0KEN4")[0].json();
    assert_eq!(discord["username"], "Baton");
    assert!(
        discord["content"].as_str().unwrap().starts_with("**[Baton] load failed**\nload failed: exit code 3"),
        "{discord}"
    );

    let pd = sink.to("/pd/v2/enqueue");
    assert_eq!(pd[0].header("Content-Type"), Some("application/json"));
    let pd = pd[0].json();
    assert_eq!(pd["routing_key"], "R0UTING-KEY-5");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], format!("baton/task:{tid}/{run_date}"));
    assert_eq!(pd["payload"]["summary"], "load failed");
    assert_eq!(
        (pd["payload"]["source"].as_str(), pd["payload"]["severity"].as_str()),
        (Some("baton"), Some("critical"))
    );
    assert_eq!((pd["payload"]["component"].as_str(), pd["payload"]["class"].as_str()), (Some("load"), Some("failure")));
    assert_eq!(pd["payload"]["custom_details"]["exit_code"], 3);
    assert_eq!(pd["payload"]["custom_details"]["run_id"], run);
    assert_eq!(sink.received().len(), 5);

    // A task given rules later alerts too (which tasks have rules is read again on a change).
    let tid2 = task(
        &s,
        &admin,
        json!({ "name": "later", "command": "exit 4", "target": "etl", "runAsUser": "root", "alerts": [on_failure("slack")] }),
    );
    force_run(&s, &admin, tid2);
    let text = wait_for("the later task's alert", Duration::from_secs(30), || {
        sink.to("/slack/T000/B000/T0KEN2").get(1).map(|r| r.json()["text"].as_str().unwrap_or_default().to_string())
    })
    .unwrap();
    assert!(text.starts_with("*[Baton] later failed*\nlater failed: exit code 4"), "{text}");
}

#[test]
fn a_failing_endpoint_is_retried_with_backoff_and_every_attempt_is_logged() {
    let sink = Sink::start();
    sink.answer("/flaky", &[503, 503]);
    sink.answer("/gone", &[404]);
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let admin = s.admin().unwrap();
    set_credential(&s, &admin, "hooks/flaky", &format!("{}/flaky", sink.base_url));
    set_credential(&s, &admin, "hooks/gone", &format!("{}/gone", sink.base_url));
    integration(&s, &admin, json!({ "name": "flaky", "kind": "slack", "credentialKey": "hooks/flaky" }));
    integration(&s, &admin, json!({ "name": "gone", "kind": "discord", "credentialKey": "hooks/gone" }));

    let first = gql(
        &s,
        &admin,
        "mutation { sendTestAlert(integration: \"flaky\") { id status attempts lastError log { ok detail } } }",
        json!({}),
    )["sendTestAlert"]
        .clone();
    // The test answers with its first attempt: refused, to be retried.
    assert_eq!(first["status"], "PENDING", "{first}");
    assert_eq!((first["attempts"].as_i64(), first["lastError"].as_str()), (Some(1), Some("HTTP 503")));
    let done = wait_for("the third attempt", Duration::from_secs(20), || {
        let d = deliveries(&s, &admin, Some("flaky"));
        (d[0]["status"] == "SENT").then(|| d[0].clone())
    })
    .unwrap();
    let log = done["log"].as_array().unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a["attempt"].as_i64().unwrap(), a["ok"].as_bool().unwrap(), a["detail"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(1, false, "HTTP 503"), (2, false, "HTTP 503"), (3, true, "HTTP 200")]
    );
    let at = |i: usize| log[i]["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    // Backoff: 200 ms, then 400 ms.
    assert!(at(1) - at(0) >= chrono::Duration::milliseconds(200), "{log:?}");
    assert!(at(2) - at(1) >= chrono::Duration::milliseconds(400), "{log:?}");
    assert_eq!(sink.to("/flaky").len(), 3);
    assert_eq!(
        sink.to("/flaky")[2].json()["text"],
        "*[Baton] Test alert from admin*\nThis is a test alert sent by admin through flaky."
    );

    // An endpoint that takes its time holds up nothing else: while the sink has not answered,
    // the API still reads and writes storage (with SQLite, one connection), and the delivery,
    // answered afterwards, succeeds on that attempt (it did not time out waiting).
    sink.hold("/flaky");
    let (base, token) = (s.base_url.clone(), admin.clone());
    let pending = std::thread::spawn(move || {
        baton_tests::graphql_at(
            &base,
            Some(&token),
            "mutation { sendTestAlert(integration: \"flaky\") { status log { ok detail } } }",
            json!({}),
        )
        .unwrap()
    });
    wait_for("the held request", Duration::from_secs(10), || (sink.to("/flaky").len() == 4).then_some(())).unwrap();
    let during = gql(&s, &admin, "mutation { setCredential(key: \"other/key\", value: \"v\") { version } }", json!({}));
    assert_eq!(during["setCredential"]["version"], 1);
    assert_eq!(gql(&s, &admin, "{ integrations { name } }", json!({}))["integrations"].as_array().unwrap().len(), 2);
    sink.release("/flaky");
    let answered = pending.join().unwrap();
    assert_eq!(answered["data"]["sendTestAlert"]["status"], "SENT", "{answered}");
    assert_eq!(answered["data"]["sendTestAlert"]["log"], json!([{ "ok": true, "detail": "HTTP 200" }]));

    // A 404 will not get better: given up at once.
    let gone =
        gql(&s, &admin, "mutation { sendTestAlert(integration: \"gone\") { status attempts lastError } }", json!({}));
    assert_eq!(
        gone["sendTestAlert"],
        json!({ "status": "FAILED", "attempts": 1, "lastError": "HTTP 404 (not retried)" })
    );
}

/// The SMTP server of the e-mail tests, killed on drop.
struct Smtp {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(user: &str, password: &str) -> Option<Smtp> {
    let Some(python) = smtp_python() else {
        assert!(!in_ci(), "the SMTP test server needs target/pyenv: run cargo xtask test");
        eprintln!("skipped: no Python with aiosmtpd (cargo xtask test prepares target/pyenv)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(dir.path())
        .arg(port.to_string())
        .args([user, password])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    Some(Smtp { child, dir, port })
}

#[test]
fn e_mail_goes_through_a_real_smtp_server_over_starttls_with_auth() {
    let Some(mail) = smtp("baton", "m4il-Pa55word") else { return };
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let admin = s.admin().unwrap();
    set_credential(&s, &admin, "alerts/email", "m4il-Pa55word");
    let input = json!({
        "name": "mail", "kind": "email", "credentialKey": "alerts/email", "smtpHost": "127.0.0.1", "smtpPort": mail.port,
        "security": "starttls", "username": "baton", "from": "baton@example.org", "to": ["ops@example.org", "dba@example.org"],
        "caFile": mail.dir.path().join("ca.pem").display().to_string(),
    });
    integration(&s, &admin, input);
    let sent = gql(
        &s,
        &admin,
        "mutation { sendTestAlert(integration: \"mail\") { status attempts log { ok detail } } }",
        json!({}),
    );
    assert_eq!(sent["sendTestAlert"]["status"], "SENT", "{sent}");
    assert!(sent["sendTestAlert"]["log"][0]["detail"].as_str().unwrap().starts_with("SMTP 250"), "{sent}");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(mail.dir.path().join("mail-1.json")).unwrap()).unwrap();
    assert_eq!(stored["from"], "baton@example.org");
    assert_eq!(stored["to"], json!(["ops@example.org", "dba@example.org"]));
    assert_eq!((stored["tls"].as_bool(), stored["authenticated"].as_bool()), (Some(true), Some(true)));
    let message = stored["data"].as_str().unwrap();
    assert!(message.contains("Subject: [Baton] Test alert from admin\r\n"), "{message}");
    assert!(message.contains("This is a test alert sent by admin through mail."), "{message}");

    // A rotated, wrong password: the server refuses the login, and that is not retried.
    let rotated = set_credential(&s, &admin, "alerts/email", "wrong-password");
    assert_eq!(rotated["version"], 2);
    let refused = gql(&s, &admin, "mutation { sendTestAlert(integration: \"mail\") { status lastError } }", json!({}));
    assert_eq!(refused["sendTestAlert"]["status"], "FAILED", "{refused}");
    let why = refused["sendTestAlert"]["lastError"].as_str().unwrap();
    assert!(why.contains("535") && !why.contains("wrong-password"), "{why}");
    assert!(!mail.dir.path().join("mail-2.json").exists());
}

/// `baton serve` on an existing data directory that must refuse to start: its exit and stderr.
fn refused_start(data: &std::path::Path, envs: &[(&str, &str)]) -> String {
    let mut child = Command::new(binary("baton"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env_remove("BATON_MASTER_KEY")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for("baton to refuse to start", Duration::from_secs(20), || child.try_wait().unwrap()).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "it started: {err}");
    err
}

#[test]
fn a_missing_or_wrong_master_key_stops_the_server_and_decrypts_nothing() {
    let sink = Sink::start();
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let key_file = s.data_dir.path().join("master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the generated key is its owner's only");
    set_credential(&s, &admin, "hooks/ops", &format!("{}/ops/S3CRET-T0KEN", sink.base_url));
    integration(&s, &admin, json!({ "name": "ops", "kind": "slack", "credentialKey": "hooks/ops" }));
    let password = s.admin_password.clone();
    let data_dir = s.kill();

    let key = std::fs::read_to_string(&key_file).unwrap();
    std::fs::rename(&key_file, data_dir.path().join("elsewhere.key")).unwrap();
    let err = refused_start(data_dir.path(), &[]);
    assert!(err.contains("master key missing: 1 credential(s) are stored but"), "{err}");
    assert!(err.contains("restore that file or set BATON_MASTER_KEY (nothing was decrypted)"), "{err}");
    assert!(!key_file.exists(), "no new key may replace the lost one");

    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let err = refused_start(data_dir.path(), &[("BATON_MASTER_KEY", wrong)]);
    assert!(err.contains("wrong master key: credential hooks/ops cannot be decrypted with the master key from the BATON_MASTER_KEY environment variable"), "{err}");
    assert!(!err.contains("S3CRET"), "{err}");
    let err = refused_start(data_dir.path(), &[("BATON_MASTER_KEY", "not a key")]);
    assert!(err.contains("BATON_MASTER_KEY environment variable: not base64"), "{err}");

    // The right key, from the environment: the secret is there, and works.
    let s = Server::start_env(data_dir, "127.0.0.1:0", &["--config", &config()], &[("BATON_MASTER_KEY", key.trim())])
        .unwrap();
    let admin = s.login("admin", &password).unwrap();
    let sent = gql(&s, &admin, "mutation { sendTestAlert(integration: \"ops\") { status } }", json!({}));
    assert_eq!(sent["sendTestAlert"]["status"], "SENT");
    assert_eq!(sink.to("/ops/S3CRET-T0KEN").len(), 1);
}

/// Every place a secret must never show up in.
fn assert_nowhere(secret: &str, places: &[(&str, String)]) {
    for (name, text) in places {
        assert!(!text.contains(secret), "the secret appears in {name}");
    }
}

#[test]
fn secrets_are_masked_in_output_across_chunks_and_never_returned_logged_or_exported() {
    let sink = Sink::start();
    let debug = [("BATON_LOG", "debug")];
    let s = Server::start_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", &["--config", &config()], &debug).unwrap();
    let admin = s.admin().unwrap();
    let agent = with_agent(&s, &admin);
    let password = "Pw-7f3c9e1d-NEVER-SHOWN";
    let hook_token = "H00K-T0KEN-NEVER-SHOWN";
    set_credential(&s, &admin, "db/password", password);
    set_credential(&s, &admin, "hooks/ops", &format!("{}/ops/{hook_token}", sink.base_url));
    integration(&s, &admin, json!({ "name": "ops", "kind": "slack", "credentialKey": "hooks/ops" }));

    // A profile may only name credentials that exist.
    let res = try_task(
        &s,
        &admin,
        json!({ "name": "bad", "command": "true", "target": "etl", "runAsUser": "root", "profile": [{ "name": "X", "value": "${C:db/none}" }] }),
    );
    assert_eq!(res["errors"][0]["extensions"]["field"], "profile.X", "{res}");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "unknown_credential", "{res}");

    // The secret is written in two pieces half a second apart: the agent reads the first piece
    // alone, so the secret straddles two chunks.
    let command = "printf 'pw=%s' \"$(printf %s \"$DB_PASSWORD\" | cut -c1-9)\"; sleep 0.5; \
                   printf '%s\\n' \"$(printf %s \"$DB_PASSWORD\" | cut -c10-)\"; echo \"whole=$DB_PASSWORD\" >&2; exit 1";
    let tid = task(
        &s,
        &admin,
        json!({
            "name": "leaky", "command": command, "target": "etl", "runAsUser": "root",
            "profile": [{ "name": "DB_PASSWORD", "value": "${C:db/password}" }],
            "alerts": [{ "on": "failure", "integration": "ops", "message": "${T:task_name}: ${P:stdout}" }],
        }),
    );
    let run = force_run(&s, &admin, tid);
    wait_for("the run to end", Duration::from_secs(30), || (run_status(&s, &admin, run) == "FAILED").then_some(()))
        .unwrap();
    let output = gql(
        &s,
        &admin,
        "query($id: Int!) { out: runOutput(runId: $id, stream: STDOUT, limit: 65536) { data } err: runOutput(runId: $id, stream: STDERR, limit: 65536) { data } }",
        json!({ "id": run }),
    );
    let stars = "*".repeat(password.len());
    assert_eq!(output["out"]["data"], format!("pw={stars}\n"), "masked across the chunk boundary");
    assert_eq!(output["err"]["data"], format!("whole={stars}\n"));
    wait_for("the alert", Duration::from_secs(20), || {
        (deliveries(&s, &admin, None).first()?["status"] == "SENT").then_some(())
    })
    .unwrap();
    assert_eq!(
        sink.to(&format!("/ops/{hook_token}"))[0].json()["text"],
        format!("*[Baton] leaky failed*\nleaky: pw={stars}")
    );

    let export = gql(&s, &admin, "mutation { exportDefinitions }", json!({}));
    let everything = [
        ("credentialKeys", gql(&s, &admin, "{ credentialKeys { key version usedBy } }", json!({})).to_string()),
        (
            "integrations",
            gql(&s, &admin, "{ integrations { name credentialKey headers { value } body } }", json!({})).to_string(),
        ),
        (
            "the task",
            gql(
                &s,
                &admin,
                "query($t: Int!) { task(tid: $t) { profile { name value } command } }",
                json!({ "t": tid }),
            )
            .to_string(),
        ),
        ("the export", export.to_string()),
        (
            "the audit log",
            gql(&s, &admin, "{ auditLog(first: 100) { edges { node { action target before after } } } }", json!({}))
                .to_string(),
        ),
        ("the delivery log", deliveries(&s, &admin, None).iter().map(Value::to_string).collect()),
        ("the server's log", s.stderr_lines().join("\n")),
        ("the agent's log", agent.stderr_lines().join("\n")),
    ];
    for secret in [password, hook_token] {
        assert_nowhere(secret, &everything);
    }
    // At rest: the database holds ciphertext only.
    for f in std::fs::read_dir(s.data_dir.path()).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        for secret in [password, hook_token] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret",
                f.path().display()
            );
        }
    }
    let keys = gql(&s, &admin, "{ credentialKeys { key usedBy } }", json!({}));
    assert_eq!(
        keys["credentialKeys"],
        json!([{ "key": "db/password", "usedBy": ["task leaky"] }, { "key": "hooks/ops", "usedBy": ["integration ops"] }])
    );
    // In use: refused; and keys have no field that could carry a value.
    let res = s.graphql_as(Some(&admin), "mutation { deleteCredential(key: \"db/password\") }", json!({})).unwrap();
    assert_eq!(res["errors"][0]["extensions"]["code"], "CONFLICT", "{res}");
    let res = s.graphql_as(Some(&admin), "{ credentialKeys { value } }", json!({})).unwrap();
    assert!(res["errors"][0]["message"].as_str().unwrap().contains("Unknown field \"value\""), "{res}");
}

#[test]
fn the_master_key_is_rotated_with_every_value_sealed_again() {
    let sink = Sink::start();
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let admin = s.admin().unwrap();
    set_credential(&s, &admin, "hooks/ops", &format!("{}/ops/R0TATED", sink.base_url));
    integration(&s, &admin, json!({ "name": "ops", "kind": "slack", "credentialKey": "hooks/ops" }));
    let password = s.admin_password.clone();
    let data_dir = s.kill();
    let key_file = data_dir.path().join("master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let out = Command::new(binary("baton"))
        .args(["master-key", "rotate", "--data"])
        .arg(data_dir.path())
        .env_remove("BATON_MASTER_KEY")
        .env_remove("BATON_DATABASE_URL")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("1 credential(s) sealed under a new master key, now in "), "{said}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(!data_dir.path().join("master.key.new").exists());

    // The old key opens nothing any more; the new one opens everything.
    let err = refused_start(data_dir.path(), &[("BATON_MASTER_KEY", old_key.trim())]);
    assert!(err.contains("wrong master key: credential hooks/ops cannot be decrypted"), "{err}");
    let s = Server::start_in(data_dir, &["--config", &config()]).unwrap();
    let admin = s.login("admin", &password).unwrap();
    let sent = gql(&s, &admin, "mutation { sendTestAlert(integration: \"ops\") { status } }", json!({}));
    assert_eq!(sent["sendTestAlert"]["status"], "SENT");
    assert_eq!(sink.to("/ops/R0TATED").len(), 1);
}

/// What leaves the server is encoded for where it goes and goes only where allowed: a job's
/// output pasted into a webhook's JSON body stays one string (it cannot add fields), and a
/// webhook to an address on this host is refused for good unless `alert_allowed_hosts` lists it.
#[test]
fn a_webhook_body_is_escaped_and_a_private_address_must_be_listed() {
    let sink = Sink::start();
    let s = Server::start_with(&["--config", &config()]).unwrap();
    let admin = s.admin().unwrap();
    let _agent = with_agent(&s, &admin);
    set_credential(&s, &admin, "hooks/escape", &format!("{}/hook/escape", sink.base_url));
    let body = "{\"task\":\"${T:task_name}\",\"out\":\"${P:stdout}\"}";
    integration(
        &s,
        &admin,
        json!({ "name": "escape", "kind": "webhook", "credentialKey": "hooks/escape", "body": body }),
    );
    let command = r#"printf '%s\n' '","admin":true,"x":"'; exit 1"#;
    let tid = task(
        &s,
        &admin,
        json!({ "name": "sly", "command": command, "target": "etl", "runAsUser": "root",
                "alerts": [{ "on": "failure", "integration": "escape" }] }),
    );
    force_run(&s, &admin, tid);
    let got = wait_for("the alert", Duration::from_secs(30), || sink.to("/hook/escape").into_iter().next()).unwrap();
    let sent = got.json();
    let keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["out", "task"], "the output added fields: {sent}");
    assert!(sent["out"].as_str().unwrap().contains("\"admin\":true"), "{sent}");

    // A server with no list refuses the same address, naming the key, and tries no more.
    let bare = Server::start().unwrap();
    let admin = bare.admin().unwrap();
    set_credential(&bare, &admin, "hooks/local", &format!("{}/hook/local", sink.base_url));
    integration(&bare, &admin, json!({ "name": "local", "kind": "slack", "credentialKey": "hooks/local" }));
    let sent = gql(&bare, &admin, "mutation { sendTestAlert(integration: \"local\") { status } }", json!({}));
    assert_eq!(sent["sendTestAlert"]["status"], "FAILED", "{sent}");
    let d = deliveries(&bare, &admin, Some("local"));
    assert_eq!(d[0]["attempts"], 1, "refused for good: {d:?}");
    assert!(d[0]["lastError"].as_str().unwrap().contains("alert_allowed_hosts lists 127.0.0.1"), "{d:?}");
    assert!(sink.to("/hook/local").is_empty(), "nothing reached it");
    // So does an e-mail integration whose SMTP host is on loopback; one whose `ca_file` is a
    // device that never ends is refused before anything is read.
    let smtp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_credential(&bare, &admin, "mail/pw", "pw");
    for (name, host, ca) in [("mail_local", "127.0.0.1", None), ("mail_ca", "127.0.0.1", Some("/dev/zero"))] {
        let input = json!({ "name": name, "kind": "email", "credentialKey": "mail/pw", "smtpHost": host,
            "smtpPort": smtp.local_addr().unwrap().port(), "security": if ca.is_some() { "tls" } else { "none" },
            "username": "u", "from": "baton@example.org", "to": ["ops@example.org"], "caFile": ca });
        integration(&bare, &admin, input);
        let q = format!("mutation {{ sendTestAlert(integration: \"{name}\") {{ status lastError }} }}");
        let sent = gql(&bare, &admin, &q, json!({}));
        assert_eq!(sent["sendTestAlert"]["status"], "FAILED", "{sent}");
        let why = sent["sendTestAlert"]["lastError"].as_str().unwrap();
        let want = if ca.is_some() { "not a regular file" } else { "alert_allowed_hosts lists 127.0.0.1" };
        assert!(why.contains(want), "{why}");
    }
    smtp.set_nonblocking(true).unwrap();
    assert!(smtp.accept().is_err(), "no SMTP connection was made");
}
