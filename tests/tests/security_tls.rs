//! TLS end to end, with a CA and certificate made at test time: the server serves HTTPS and WSS
//! itself, an agent that trusts the CA runs work over wss://, an agent that does not trust it
//! refuses the server, a plain http:// server off this host is refused unless --insecure, and the
//! session cookie is `Secure`.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{graphql_on, wait_for, Agent, Server, TestCertificates};
use serde_json::{json, Value};
use std::time::Duration;

fn gql(client: &ureq::Agent, s: &Server, token: &str, q: &str, v: Value) -> Value {
    let res = graphql_on(client, &s.base_url, Some(token), q, v).unwrap();
    assert!(res["errors"].is_null(), "{res}");
    res["data"].clone()
}

#[test]
fn work_runs_over_tls_and_an_untrusted_server_is_refused() {
    let certs = TestCertificates::new().unwrap();
    let s = Server::start_with(&["--tls-cert", certs.cert.to_str().unwrap(), "--tls-key", certs.key.to_str().unwrap()])
        .unwrap();
    assert!(s.base_url.starts_with("https://127.0.0.1:"), "{}", s.base_url);
    let client = certs.client();
    // Logging in over HTTPS sets a Secure cookie.
    let mut resp = client
        .post(&s.url("/graphql"))
        .send_json(json!({ "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { token } }",
                           "variables": { "p": s.admin_password } }))
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let body: Value = resp.body_mut().read_json().unwrap();
    let admin = body["data"]["login"]["token"].as_str().unwrap().to_string();
    let token = |name: &str| {
        gql(&client, &s, &admin, "mutation($n: String!) { createAgentToken(name: $n) { token } }", json!({ "n": name }))
            ["createAgentToken"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // An agent that trusts the CA: online over wss://, and runs a job.
    let https = s.base_url.replace("127.0.0.1", "localhost");
    let _trusting =
        Agent::start_with_args(&https, &token("a1"), "a1", "etl", &["--ca", certs.ca.to_str().unwrap()]).unwrap();
    wait_for("a1 online over wss", Duration::from_secs(20), || {
        let res = gql(&client, &s, &admin, "{ agents { name status } }", json!({}));
        res["agents"].as_array()?.iter().any(|a| a["name"] == "a1" && a["status"] == "ONLINE").then_some(())
    })
    .unwrap();
    let id = gql(
        &client,
        &s,
        &admin,
        "mutation { runAdhoc(agents: [\"a1\"], command: \"echo over-tls\", runAsUser: \"root\") { id } }",
        json!({}),
    )["runAdhoc"][0]["id"]
        .as_i64()
        .unwrap();
    wait_for("the run over TLS", Duration::from_secs(20), || {
        let r = gql(&client, &s, &admin, "query($id: Int!) { run(id: $id) { status } }", json!({ "id": id }));
        (r["run"]["status"] == "SUCCESS").then_some(())
    })
    .unwrap();

    // An agent that trusts only the system's roots refuses this server, and never registers.
    let doubting = Agent::start(&https, &token("a2"), "a2", "etl").unwrap();
    let said = wait_for("a2 to refuse the certificate", Duration::from_secs(20), || {
        doubting.stderr_lines().into_iter().find(|l| l.contains("certificate"))
    })
    .unwrap();
    assert!(said.to_lowercase().contains("unknown") || said.contains("UnknownIssuer"), "{said}");
    let agents = gql(&client, &s, &admin, "{ agents { name } }", json!({}));
    assert!(!agents.to_string().contains("\"a2\""), "{agents}");
}

#[test]
fn plain_text_off_this_host_needs_insecure() {
    let off_host = "http://baton.example.invalid:8080";
    let mut refused = Agent::start(off_host, "t", "a1", "etl").unwrap();
    let status = wait_for("the agent to stop", Duration::from_secs(10), || refused.child.try_wait().unwrap()).unwrap();
    assert!(!status.success());
    // Its stderr is read by another thread: the lines may come a moment after the exit.
    let mut said = String::new();
    let refusal = wait_for("the refusal on stderr", Duration::from_secs(10), || {
        said.extend(refused.stderr_lines().into_iter().map(|l| l + "\n"));
        (said.contains("is not encrypted") && said.contains("--insecure")).then_some(())
    });
    assert!(refusal.is_ok(), "{said}");
    // With --insecure it goes on to connect (to a name that does not resolve, so it retries).
    let allowed = Agent::start_with_args(off_host, "t", "a1", "etl", &["--insecure"]).unwrap();
    let tried = wait_for("a connection attempt", Duration::from_secs(10), || {
        allowed.stderr_lines().into_iter().find(|l| l.contains("connecting to ws://baton.example.invalid:8080/agent"))
    });
    assert!(tried.is_ok(), "{tried:?}");
}

#[test]
fn postgresql_is_reached_over_tls_when_the_url_asks() {
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    let Some(url) = baton_tests::fresh_postgres() else {
        assert!(!baton_tests::in_ci(), "CI runs the PostgreSQL tests (cargo xtask test starts PostgreSQL)");
        eprintln!("skipped: set BATON_TEST_DATABASE_URL");
        return;
    };
    let s = Server::start_with(&["--database-url", &format!("{url}?sslmode=require")]).unwrap();
    let admin = s.admin().unwrap();
    assert!(
        baton_tests::data(s.graphql_as(Some(&admin), "{ me { username } }", json!({})).unwrap())["me"]["username"]
            == "admin"
    );
    // Every session of the server's on its database is encrypted.
    #[derive(QueryableByName)]
    struct Sessions {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        plain: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        encrypted: i64,
    }
    let database = url.rsplit_once('/').unwrap().1.to_string();
    let mut c = diesel::PgConnection::establish(&url).unwrap();
    let counts: Sessions = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE NOT s.ssl) AS plain, count(*) FILTER (WHERE s.ssl) AS encrypted \
         FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
         WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(&database)
    .get_result(&mut c)
    .unwrap();
    assert!(counts.encrypted > 0 && counts.plain == 0, "encrypted {}, plain {}", counts.encrypted, counts.plain);
}
