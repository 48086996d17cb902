//! The web UI in a real browser: Debian's Chromium driven through chromedriver (WebDriver, via
//! fantoccini), against the real server and a real agent. Logs in, watches a forced run go from
//! Triggered to Success without a reload, follows output live, terminates a long run, and checks
//! that a viewer is not offered operators' actions. Saves a screenshot of each page it visits in
//! `target/ui-screenshots`.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{agent_token_cli, chromium, data, free_port, in_ci, wait_for, Agent, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    let bin = ["/usr/bin/chromedriver"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    wait_for("chromedriver", Duration::from_secs(20), || ureq::get(&status).call().ok().map(|_| ())).ok()?;
    Some(Driver { child, url })
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium().unwrap().to_string_lossy(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--no-first-run", "--disable-background-networking"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// Waits until the element's text satisfies `ok`, reading it again (never a fixed sleep).
async fn text_until(c: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        if Instant::now() >= deadline {
            let page = match c.find(Locator::Css("main")).await {
                Ok(m) => m.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("timed out waiting for {what} in {css}; last text: {last:?}; the page says:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shot(c: &Client, name: &str) {
    let dir = baton_tests::bin_dir().parent().unwrap().join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}

async fn login(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(base).await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#login")).await.unwrap();
    c.find(Locator::Css("#username")).await.unwrap().send_keys(user).await.unwrap();
    c.find(Locator::Css("#password")).await.unwrap().send_keys(password).await.unwrap();
    c.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
    text_until(c, "#who", "the logged-in user", |t| t.starts_with(user)).await;
}

fn gql(s: &Server, token: &str, q: &str, v: Value) -> Value {
    data(s.graphql_as(Some(token), q, v).unwrap())
}

#[test]
fn operators_and_viewers_use_the_ui_live_in_a_real_browser() {
    let (Some(_), Some(driver)) = (chromium(), chromedriver()) else {
        assert!(!in_ci(), "Chromium and chromedriver must be installed in CI (cargo xtask test installs them)");
        eprintln!("skipped: no Chromium or chromedriver here (sudo apt-get install chromium chromium-driver)");
        return;
    };
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let token = agent_token_cli(s.data_dir.path(), "hosts").unwrap();
    let _agent = Agent::start(&s.base_url, &token, "a1", "etl").unwrap();
    wait_for("the agent", Duration::from_secs(20), || {
        (gql(&s, &admin, "{ agents { status } }", json!({}))["agents"][0]["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    let task = |name: &str, command: &str| -> i64 {
        let t = json!({"name": name, "command": command, "target": "etl", "runAsUser": "root"});
        gql(&s, &admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }", json!({ "t": t }))["createTask"]
            ["tid"]
            .as_i64()
            .unwrap()
    };
    let talk = task("talk", "echo hello; sleep 1; echo world; echo oops >&2");
    let long = task("long", "sleep 300");
    let big = task("big", "seq 1 100000");
    gql(
        &s,
        &admin,
        "mutation { createUser(username: \"vera\", password: \"viewer-password-1\", role: \"viewer\") { id } }",
        json!({}),
    );
    let password = s.admin_password.clone();
    let base = s.url("/");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        login(&c, &base, "admin", &password).await;
        text_until(&c, "#counts", "today's counts", |t| t.contains("Success")).await;
        shot(&c, "dashboard").await;

        // A forced run appears and goes to Success on the runs page, without a reload.
        c.goto(&s.url("/task-runs")).await.unwrap();
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#no-runs")).await.unwrap();
        let run = gql(&s, &admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": talk }))["forceRun"]
            ["id"]
            .as_i64()
            .unwrap();
        let row = format!("#run-{run}");
        text_until(&c, &row, "the forced run, live", |t| {
            t.contains("Triggered") || t.contains("Started") || t.contains("Running")
        })
        .await;
        text_until(&c, &row, "its success, live", |t| t.contains("Success")).await;
        shot(&c, "task-runs").await;
        // Filtered by name: another task's runs are not listed.
        c.find(Locator::Css("#filter-name")).await.unwrap().send_keys("nomatch").await.unwrap();
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#no-runs")).await.unwrap();
        c.find(Locator::Css("#filter-name")).await.unwrap().clear().await.unwrap();
        c.find(Locator::Css("#filter-name")).await.unwrap().send_keys("talk").await.unwrap();
        text_until(&c, &row, "the run, filtered by its name", |t| t.contains("talk")).await;

        // Output is followed live, stdout and stderr apart.
        let run2 = gql(&s, &admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": talk }))["forceRun"]
            ["id"]
            .as_i64()
            .unwrap();
        c.goto(&s.url(&format!("/task-runs/{run2}"))).await.unwrap();
        text_until(&c, "#stdout", "the first line", |t| t.contains("hello")).await;
        text_until(&c, "#stdout", "the second line, followed", |t| t.contains("hello") && t.contains("world")).await;
        text_until(&c, "#stderr", "stderr apart", |t| t.contains("oops") && !t.contains("hello")).await;
        text_until(&c, "#timeline", "the timeline", |t| t.contains("Running") && t.contains("Success")).await;
        shot(&c, "run").await;

        // Large output opens on its latest window; Earlier pages back to the start, Latest returns.
        let run4 = gql(&s, &admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": big }))["forceRun"]
            ["id"]
            .as_i64()
            .unwrap();
        wait_for("the big run", Duration::from_secs(30), || {
            let r = gql(&s, &admin, "query($id: Int!) { run(id: $id) { status stdoutBytes } }", json!({ "id": run4 }));
            (r["run"]["status"] == "SUCCESS" && r["run"]["stdoutBytes"] == 588_895).then_some(())
        })
        .unwrap();
        c.goto(&s.url(&format!("/task-runs/{run4}"))).await.unwrap();
        let tail = text_until(&c, "#stdout", "the latest window", |t| t.trim_end().ends_with("\n100000")).await;
        assert!(!tail.starts_with("1\n2\n3\n"), "only a window is shown");
        text_until(&c, "#stdout-range", "the range", |t| t.contains("of 588895")).await;
        for _ in 0..3 {
            let earlier = c.find(Locator::Css("#stdout-earlier")).await.unwrap();
            if earlier.attr("disabled").await.unwrap().is_some() {
                break;
            }
            let before = c.find(Locator::Css("#stdout-range")).await.unwrap().text().await.unwrap();
            earlier.click().await.unwrap();
            text_until(&c, "#stdout-range", "the earlier window", |t| t != before).await;
        }
        text_until(&c, "#stdout", "the first window", |t| t.starts_with("1\n2\n3\n")).await;
        click(&c, "#stdout-latest").await;
        text_until(&c, "#stdout", "the latest window again", |t| t.trim_end().ends_with("\n100000")).await;

        // Terminate a long run from its page.
        let run3 = gql(&s, &admin, "mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": long }))["forceRun"]
            ["id"]
            .as_i64()
            .unwrap();
        c.goto(&s.url(&format!("/task-runs/{run3}"))).await.unwrap();
        text_until(&c, "#run-status", "the long run running", |t| t.contains("Running")).await;
        c.find(Locator::Css("#terminate")).await.unwrap().click().await.unwrap();
        text_until(&c, "#run-status", "its termination", |t| t.contains("Terminated")).await;
        text_until(&c, "#run-reason", "who terminated it", |t| t.contains("terminated by admin")).await;

        for (path, name, css) in [("/agents", "agents", "#agents"), ("/scheduler", "scheduler", "#health")] {
            c.goto(&s.url(path)).await.unwrap();
            c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await.unwrap();
            shot(&c, name).await;
        }
        text_until(&c, "#health", "the scheduler's figures", |t| t.contains("Connected agents")).await;

        // Adhoc: a command on a chosen agent, its output live.
        c.goto(&s.url("/adhoc")).await.unwrap();
        click(&c, "#pick-a1").await;
        c.find(Locator::Css("#adhoc-command")).await.unwrap().send_keys("echo adhoc-$((40+2))").await.unwrap();
        c.find(Locator::Css("#adhoc-user")).await.unwrap().send_keys("root").await.unwrap();
        c.find(Locator::Css("#adhoc-run")).await.unwrap().click().await.unwrap();
        text_until(&c, "#adhoc-run-a1 #stdout", "the adhoc output", |t| t.contains("adhoc-42")).await;
        shot(&c, "adhoc").await;

        // Calendars: one created from the page.
        c.goto(&s.url("/calendars")).await.unwrap();
        fill(&c, "#cal-name", "holidays").await;
        c.find(Locator::Css("#cal-holidays")).await.unwrap().send_keys("2026-12-25 Christmas").await.unwrap();
        c.find(Locator::Css("#save-calendar")).await.unwrap().click().await.unwrap();
        text_until(&c, "#calendar-holidays", "the saved calendar", |t| {
            t.contains("2026-12-25") && t.contains("Christmas")
        })
        .await;
        shot(&c, "calendars").await;

        // Administration: users, tokens (shown once), the audit log.
        c.goto(&s.url("/admin")).await.unwrap();
        text_until(&c, "#users", "the users", |t| t.contains("vera")).await;
        // A user's role is changed from the page (and changed back before vera logs in).
        for role in ["operator", "viewer"] {
            let select = c.find(Locator::Css("#role-vera")).await.unwrap();
            select.select_by_value(role).await.unwrap();
            text_until(&c, "#admin-notice", "the role change", |t| t.contains("Role changed")).await;
            wait_for("the stored role", Duration::from_secs(10), || {
                let users = gql(&s, &admin, "{ users { username role } }", json!({}));
                users["users"].as_array()?.iter().any(|u| u["username"] == "vera" && u["role"] == role).then_some(())
            })
            .unwrap();
        }
        c.find(Locator::Css("#token-name")).await.unwrap().send_keys("ci").await.unwrap();
        c.find(Locator::Css("#create-token")).await.unwrap().click().await.unwrap();
        text_until(&c, "#admin-notice", "the new token, once", |t| t.contains("not shown again")).await;
        text_until(&c, "#audit", "the audit log", |t| t.contains("saveCalendar") || t.contains("createUser")).await;
        shot(&c, "admin").await;

        // A viewer sees the run but is offered no operator action.
        c.find(Locator::Css("#logout")).await.unwrap().click().await.unwrap();
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#login")).await.unwrap();
        login(&c, &base, "vera", "viewer-password-1").await;
        c.goto(&s.url(&format!("/task-runs/{run}"))).await.unwrap();
        text_until(&c, "#run-status", "the run", |t| t.contains("Success")).await;
        assert!(c.find(Locator::Css("#actions")).await.is_err(), "a viewer is offered no operator action");
        assert!(c.find(Locator::Css("#terminate")).await.is_err());
        let nav = text_until(&c, "nav", "the menu", |t| t.contains("Task runs")).await;
        assert!(!nav.contains("Adhoc") && !nav.contains("Administration"), "{nav}");
        shot(&c, "viewer-run").await;
        c.close().await.unwrap();
    });
}

/// Types into a form field, replacing what it holds.
async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Picks an option of a select by its value.
/// Picks an option of a select by its value, once the option is there (options may load later).
async fn choose(c: &Client, css: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await.unwrap();
        match e.select_by_value(value).await {
            Ok(()) => return,
            Err(err) if Instant::now() >= deadline => panic!("no option {value:?} in {css}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Clicks an element through a dispatched event: for an edge's label, which another label may
/// cover where two edges cross.
async fn dispatch_click(c: &Client, css: &str) {
    let script = "document.querySelector(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))";
    c.execute(script, vec![json!(css)]).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

#[test]
fn tasks_and_groups_are_built_in_the_browser_with_the_flow_graph_and_an_import_plan() {
    let (Some(_), Some(driver)) = (chromium(), chromedriver()) else {
        assert!(!in_ci(), "Chromium and chromedriver must be installed in CI (cargo xtask test installs them)");
        eprintln!("skipped: no Chromium or chromedriver here");
        return;
    };
    let sink = baton_tests::sink::Sink::start();
    // The sink is on this host: alerts may go there only when listed.
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("baton.toml");
    std::fs::write(&config_file, "alert_allowed_hosts = [\"127.0.0.1\"]\n").unwrap();
    let s = Server::start_with(&["--config", config_file.to_str().unwrap()]).unwrap();
    let admin = s.admin().unwrap();
    let password = s.admin_password.clone();
    let base = s.url("/");
    let dependency_of = |name: &str| -> Value {
        let res = gql(
            &s,
            &admin,
            "query($n: String) { tasks(filter: {search: $n}) { nodes { name dependency } } }",
            json!({ "n": name }),
        );
        res["tasks"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["dependency"].clone())
            .unwrap_or(Value::Null)
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        login(&c, &base, "admin", &password).await;

        // Integrations: a credential set in an instance (and never shown back), a Slack
        // integration of that instance that uses it, refused first for a credential that does not
        // exist, then a test alert logged.
        c.goto(&s.url("/integrations")).await.unwrap();
        text_until(&c, "main h2", "the integrations page", |t| t.contains("Integrations")).await;
        let secret_url = format!("{}/slack/UI-T0KEN", sink.base_url);
        fill(&c, "#c-key", "hooks/ops").await;
        fill(&c, "#c-value", &secret_url).await;
        fill(&c, "#c-instance", "default").await;
        click(&c, "#set-credential").await;
        text_until(&c, "#integrations-notice", "the credential set", |t| t.contains("hooks/ops set (version 1)")).await;
        text_until(&c, "#key-hooks-ops", "the key listed", |t| t.contains("hooks/ops") && t.contains("default")).await;
        fill(&c, "#i-name", "ops").await;
        fill(&c, "#i-instance", "default").await;
        choose(&c, "#i-kind", "slack").await;
        fill(&c, "#i-credentialKey", "hooks/none").await;
        click(&c, "#save-integration").await;
        text_until(&c, "#error-credential_key", "the unknown credential", |t| t.contains("no credential hooks/none")).await;
        fill(&c, "#i-credentialKey", "hooks/ops").await;
        click(&c, "#save-integration").await;
        text_until(&c, "#integration-ops", "the integration", |t| {
            t.contains("slack") && t.contains("hooks/ops ✓") && t.contains("default")
        })
        .await;
        click(&c, "#test-ops").await;
        text_until(&c, "#integrations-notice", "the test alert", |t| t.contains("Test alert through ops: SENT")).await;
        text_until(&c, "#deliveries", "the delivery log", |t| t.contains("[Baton] Test alert from admin") && t.contains("HTTP 200")).await;
        assert_eq!(sink.to("/slack/UI-T0KEN").len(), 1);
        let page = c.source().await.unwrap();
        assert!(!page.contains("UI-T0KEN"), "the page never holds a credential's value");
        shot(&c, "integrations").await;

        c.goto(&s.url("/tasks")).await.unwrap();
        text_until(&c, "#tasks-page", "the page", |t| t.contains("Tasks & Groups")).await;

        // A group with an alert picked from the integrations, then three tasks in it; a bad name
        // is refused beside its field.
        click(&c, "#new-group").await;
        fill(&c, "#g-name", "etl").await;
        fill(&c, "#g-when", "02:00").await;
        choose(&c, "#g-alert-on", "not_started_by").await;
        choose(&c, "#g-alert-integration", "ops").await;
        fill(&c, "#g-alert-when", "03:00").await;
        click(&c, "#g-alert-add").await;
        click(&c, "#save-group").await;
        text_until(&c, ".flow h3", "the new group's graph", |t| t.contains("etl")).await;
        click(&c, "#new-task").await;
        fill(&c, "#f-name", "bad name!").await;
        fill(&c, "#f-command", "true").await;
        fill(&c, "#f-target", "etl").await;
        fill(&c, "#f-runAsUser", "root").await;
        // A dependency's syntax is checked as it is typed, before anything is sent.
        fill(&c, "#f-dependency", "S:extract and (").await;
        let why = text_until(&c, "#check-dependency", "the dependency's check", |t| !t.is_empty()).await;
        assert!(why.contains("at character"), "{why}");
        fill(&c, "#f-dependency", "S:extract").await;
        text_until(&c, "#check-dependency", "the check to clear", str::is_empty).await;
        fill(&c, "#f-dependency", "").await;
        click(&c, "#save-task").await;
        let why = text_until(&c, "#error-name", "the name's validation message", |t| !t.is_empty()).await;
        assert!(!why.contains("empty"), "the name typed was read: {why}");
        for name in ["extract", "transform", "load"] {
            click(&c, "#new-task").await;
            fill(&c, "#f-name", name).await;
            fill(&c, "#f-group", "etl").await;
            fill(&c, "#f-command", "true").await;
            fill(&c, "#f-target", "etl").await;
            fill(&c, "#f-runAsUser", "root").await;
            if name == "extract" {
                // An alert rule with a bad trigger is refused beside the alerts; a good one is kept.
                fill(&c, "#f-alerts", "whenever ops").await;
                click(&c, "#save-task").await;
                text_until(&c, "#error-alerts", "the alert rule's message", |t| t.contains("alerts")).await;
                fill(&c, "#f-alerts", "").await;
                choose(&c, "#f-alert-on", "failure").await;
                choose(&c, "#f-alert-integration", "ops").await;
                click(&c, "#f-alert-add").await;
                let lines = c.find(Locator::Css("#f-alerts")).await.unwrap().prop("value").await.unwrap();
                assert_eq!(lines.as_deref(), Some("failure ops"));
            }
            click(&c, "#save-task").await;
            text_until(&c, "#form-saved", "the saved task", |t| t.contains(name)).await;
        }
        shot(&c, "task-form").await;
        let alerts = gql(&s, &admin, "{ tasks(filter: {search: \"extract\"}) { nodes { alerts { on integration } } } }", json!({}));
        assert_eq!(alerts["tasks"]["nodes"][0]["alerts"], json!([{"on": "failure", "integration": "ops"}]), "{alerts}");
        let alerts = gql(&s, &admin, "{ tasks(filter: {search: \"load\"}) { nodes { alerts { on } } } }", json!({}));
        assert_eq!(alerts["tasks"]["nodes"][0]["alerts"], json!([]), "a new task's form starts empty");
        let alerts = gql(&s, &admin, "{ groups { nodes { alerts { on at integration } } } }", json!({}));
        assert_eq!(alerts["groups"]["nodes"][0]["alerts"], json!([{"on": "not_started_by", "at": "03:00", "integration": "ops"}]), "{alerts}");
        // The table sorts by name, both ways.
        click(&c, "#tab-groups").await;
        click(&c, "#tab-tasks").await;
        click(&c, "#sort-name").await;
        text_until(&c, "#definitions tbody tr:first-child", "ascending order", |t| t.starts_with("extract")).await;
        click(&c, "#sort-name").await;
        text_until(&c, "#definitions tbody tr:first-child", "descending order", |t| t.starts_with("transform")).await;

        // Two dependencies connected in the flow graph; a third that would close a cycle is refused.
        click(&c, "#tab-groups").await;
        let gid = gql(&s, &admin, "{ groups { nodes { gid } } }", json!({}))["groups"]["nodes"][0]["gid"].as_i64().unwrap();
        click(&c, &format!("#group-{gid}")).await;
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#node-load")).await.unwrap();
        click(&c, "#connect").await;
        for (up, down) in [("extract", "transform"), ("transform", "load")] {
            click(&c, &format!("#node-{up}")).await;
            click(&c, &format!("#node-{down}")).await;
            text_until(&c, "#flow-notice", "the dependency", |t| t.contains("added")).await;
            let expected = format!("S:{up}");
            wait_for("the stored dependency", Duration::from_secs(10), || (dependency_of(down) == json!(expected)).then_some(())).unwrap();
        }
        click(&c, "#node-load").await;
        click(&c, "#node-extract").await;
        text_until(&c, "#flow-notice", "the cycle refused", |t| t.contains("cycle")).await;
        assert_eq!(dependency_of("extract"), Value::Null, "a refused dependency is not stored");
        // Upstream above downstream in the drawing.
        let y = |css: &'static str| {
            let c = &c;
            async move { c.find(Locator::Css(css)).await.unwrap().attr("y").await.unwrap().unwrap().parse::<f64>().unwrap() }
        };
        assert!(y("#node-extract rect").await < y("#node-transform rect").await);
        assert!(y("#node-transform rect").await < y("#node-load rect").await);
        shot(&c, "flow-graph").await;

        // Removing an edge removes only that term of the expression, keeping the rest as
        // written; an edge that is not one term is not removed, and the form is offered.
        let tid_of = |name: &str| -> i64 {
            let res = gql(&s, &admin, "query($n: String) { tasks(filter: {search: $n}) { nodes { tid name } } }", json!({ "n": name }));
            res["tasks"]["nodes"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["tid"].as_i64().unwrap()
        };
        let made = gql(&s, &admin, "mutation($t: TaskInput!) { createTask(input: $t) { tid } }",
            json!({ "t": { "name": "check", "command": "true", "target": "etl", "runAsUser": "root", "group": "etl" } }));
        assert!(made["createTask"]["tid"].is_i64(), "{made}");
        let load = tid_of("load");
        let set_load = |dependency: &str| {
            let t = json!({ "name": "load", "command": "true", "target": "etl", "runAsUser": "root", "group": "etl", "dependency": dependency });
            let res = gql(&s, &admin, "mutation($id: Int!, $t: TaskInput!) { updateTask(tid: $id, input: $t) { dependency } }", json!({ "id": load, "t": t }));
            assert_eq!(res["updateTask"]["dependency"], dependency, "{res}");
        };
        let written = "(S:extract or S:check) and S:transform";
        for (removed, left) in [("transform", "S:extract or S:check"), ("check", "S:extract and S:transform"), ("extract", "S:check and S:transform")] {
            set_load(written);
            click(&c, "#tab-tasks").await;
            click(&c, "#tab-groups").await;
            click(&c, &format!("#group-{gid}")).await;
            let edge = format!("#edge-{}-{load} text", tid_of(removed));
            c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(&edge)).await.unwrap();
            dispatch_click(&c, &edge).await;
            text_until(&c, "#flow-notice", "the edge removed", |t| t.contains("removed") && t.contains(left)).await;
            wait_for("the expression kept as written", Duration::from_secs(10), || (dependency_of("load") == json!(left)).then_some(())).unwrap();
        }
        set_load("S:extract or F:extract");
        click(&c, "#tab-tasks").await;
        click(&c, "#tab-groups").await;
        click(&c, &format!("#group-{gid}")).await;
        let edge = format!("#edge-{}-{load} text", tid_of("extract"));
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(&edge)).await.unwrap();
        dispatch_click(&c, &edge).await;
        text_until(&c, "#flow-notice", "the refusal", |t| t.contains("several terms")).await;
        assert_eq!(dependency_of("load"), json!("S:extract or F:extract"), "nothing rewritten");
        click(&c, "#edit-expression").await;
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#f-dependency")).await.unwrap();
        click(&c, "#tab-tasks").await;
        click(&c, "#tab-groups").await;
        click(&c, &format!("#group-{gid}")).await;
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#node-load")).await.unwrap();

        // An import shows its plan first, and applies only when asked.
        let doc = json!({"kind": "baton.definitions", "version": 1, "instances": [{"name": "default",
            "tasks": [{"name": "imported", "command": "true", "target": "etl", "run_as_user": "root"}]}]});
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(file.path(), doc.to_string()).unwrap();
        click(&c, "#import").await;
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#import-file")).await.unwrap()
            .send_keys(&file.path().to_string_lossy()).await.unwrap();
        text_until(&c, "#plan-created", "the plan", |t| t.contains("created: 1") && t.contains("imported")).await;
        assert_eq!(dependency_of("imported"), Value::Null);
        assert!(gql(&s, &admin, "{ tasks(filter: {search: \"imported\"}) { totalCount } }", json!({}))["tasks"]["totalCount"] == 0, "nothing applied before the confirmation");
        shot(&c, "import-plan").await;
        click(&c, "#apply-import").await;
        text_until(&c, "#import-done", "the import", |t| t.contains("Imported")).await;
        assert_eq!(gql(&s, &admin, "{ tasks(filter: {search: \"imported\"}) { totalCount } }", json!({}))["tasks"]["totalCount"], 1);

        // Export downloads every definition as a document (the page's download link is caught).
        let catch = "window.downloads = []; HTMLAnchorElement.prototype.click = function () { \
            window.downloads.push(decodeURIComponent(this.href.split(',')[1])); };";
        c.execute(catch, vec![]).await.unwrap();
        click(&c, "#export").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let exported: Value = loop {
            let got = c.execute("return window.downloads;", vec![]).await.unwrap();
            if let Some(text) = got.as_array().and_then(|a| a.first()).and_then(Value::as_str) {
                break serde_json::from_str(text).unwrap();
            }
            assert!(Instant::now() < deadline, "Export downloaded nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(exported["kind"], "baton.definitions", "{exported}");
        let tasks = exported["instances"][0]["tasks"].as_array().cloned().unwrap_or_default();
        assert!(tasks.iter().any(|t| t["name"] == "imported"), "the export has the imported task: {exported}");
        c.close().await.unwrap();
    });
}

/// GraphiQL's scripts and styles come from the server itself: under the content security policy
/// (no other origin, no inline script) the editor renders and answers a query.
#[test]
fn graphiql_runs_from_the_binary_under_the_content_security_policy() {
    let (Some(_), Some(driver)) = (chromium(), chromedriver()) else {
        assert!(!in_ci(), "Chromium and chromedriver must be installed in CI (cargo xtask test installs them)");
        eprintln!("skipped: no Chromium or chromedriver here (sudo apt-get install chromium chromium-driver)");
        return;
    };
    let s = Server::start().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = browser(&driver).await;
        c.goto(&s.url("/graphql")).await.unwrap();
        c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(".graphiql-container")).await.unwrap();
        // The page's own fetcher reaches the server: the schema's docs explorer lists the root types.
        c.find(Locator::XPath("//button[contains(@aria-label, 'Documentation Explorer')]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        text_until(&c, ".graphiql-doc-explorer", "the schema's root types", |t| t.contains("Query")).await;
        shot(&c, "graphiql").await;
        c.close().await.unwrap();
    });
}
