//! The real `baton` binary: it starts on port 0 with a fresh data directory, answers /healthz and
//! GraphQL, serves the wasm UI, and fails clearly on bad configuration; and `schema.rs` says what
//! the migrations make.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{binary, chromium, in_ci, Server};
use std::process::Command;

#[test]
fn healthz_graphql_and_the_ui() {
    let server = Server::start().unwrap();

    let mut health = ureq::get(&server.url("/healthz")).call().unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.body_mut().read_json().unwrap();
    assert_eq!(body["status"], "ok");

    let res = server.graphql("{ version }", serde_json::json!({})).unwrap();
    assert_eq!(res["data"]["version"], env!("CARGO_PKG_VERSION"));
    let token = server.admin().unwrap();
    let res = server.graphql_as(Some(&token), "{ instances { name } }", serde_json::json!({})).unwrap();
    assert_eq!(res["data"]["instances"], serde_json::json!([{"name": "default"}]));

    // The SQLite database was created under the data directory, with no configuration.
    assert!(server.data_dir.path().join("baton.db").exists());

    // `/` is the UI's page, which loads start.js (no inline script), which loads the generated
    // JS, which loads the wasm.
    let index = ureq::get(&server.url("/")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(index.contains("src=\"/start.js\"") && !index.contains("import init"), "{index}");
    let start = ureq::get(&server.url("/start.js")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(start.contains("/baton_web.js"), "{start}");
    let js = ureq::get(&server.url("/baton_web.js")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(js.contains("baton_web_bg.wasm"), "the JS glue names its wasm");
    let mut wasm = ureq::get(&server.url("/baton_web_bg.wasm")).call().unwrap();
    assert_eq!(wasm.headers().get("content-type").unwrap(), "application/wasm");
    let bytes = wasm.body_mut().with_config().limit(64 * 1024 * 1024).read_to_vec().unwrap();
    assert_eq!(&bytes[..4], b"\0asm", "a real wasm module");
    // Browsers get it compressed: brotli when they accept it, else gzip.
    for (accept, expected) in [("br", "br"), ("gzip", "gzip")] {
        let res = ureq::get(&server.url("/baton_web_bg.wasm")).header("Accept-Encoding", accept).call().unwrap();
        assert_eq!(res.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some(expected), "{accept}");
    }

    // Client-side routes get the page too, so they survive a reload.
    let route = ureq::get(&server.url("/task-runs")).call().unwrap().body_mut().read_to_string().unwrap();
    assert_eq!(route, index);
}

#[test]
fn the_ui_renders_the_version_in_a_real_browser() {
    let Some(chrome) = chromium() else {
        assert!(!in_ci(), "Chromium must be installed in CI (cargo xtask test installs it)");
        eprintln!("skipped: no Chromium here (sudo apt-get install chromium)");
        return;
    };
    let server = Server::start().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(server.url("/"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let expected = format!("<p id=\"version\">Baton {}</p>", env!("CARGO_PKG_VERSION"));
    assert!(dom.contains(&expected), "the wasm app did not render the version from GraphQL:\n{dom}");
}

#[test]
fn bad_configuration_is_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmystery = 1\n").unwrap();
    let out = Command::new(binary("baton")).arg("serve").arg("--config").arg(&config).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("baton: error: config file") && last.contains("unknown field `mystery`"), "{stderr}");

    let out = Command::new(binary("baton"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", "postgres://baton:hunter2@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("baton: error: cannot open the database postgres://baton:***@127.0.0.1:1/none"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password is never printed");
}

#[test]
fn help_is_clear() {
    let out = Command::new(binary("baton")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("serve") && text.contains("workload-automation scheduler"), "{text}");
    let out = Command::new(binary("baton")).args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--data", "--database-url", "--config"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn a_second_server_on_the_same_sqlite_file_refuses_to_start() {
    let first = Server::start().unwrap();
    let out = Command::new(binary("baton"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(first.data_dir.path())
        .env_remove("BATON_DATABASE_URL")
        .env_remove("BATON_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("baton: error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("another baton serve is using the SQLite database"), "{stderr}");
    assert!(lines[0].contains("PostgreSQL"), "says what to use instead: {stderr}");
    // The first one is untouched, and once it is gone the file serves again.
    assert_eq!(ureq::get(&first.url("/healthz")).call().unwrap().status(), 200);
    let data_dir = first.kill();
    let again = Server::start_in(data_dir, &[]).unwrap();
    assert_eq!(ureq::get(&again.url("/healthz")).call().unwrap().status(), 200);
}

/// The one-shot commands leave no thread behind that touches TLS or a pool while the process
/// exits: against PostgreSQL (over TLS where the server offers it), each verb exits 0 every time.
#[test]
fn every_database_verb_exits_cleanly_fifty_times_on_postgresql() {
    let Some(url) = baton_tests::fresh_postgres() else {
        assert!(!in_ci(), "PostgreSQL must be there in CI (cargo xtask test starts it)");
        eprintln!("skipped: BATON_TEST_DATABASE_URL is not set");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(binary("baton"));
        cmd.args(args).args(["--database-url", &url, "--data"]).arg(data.path());
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        cmd.stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "baton {args:?} ended with {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for i in 0..50 {
        run(&["agent-token", "create", "--name", &format!("t{i}")], None);
        run(
            &["user", "create", "--username", &format!("u{i}"), "--role", "viewer", "--password-stdin"],
            Some("a-long-password\n"),
        );
        run(&["master-key", "rotate"], None);
    }
}

/// The columns of each table: name -> (SQL type as the database reports it, nullable).
type Columns = std::collections::BTreeMap<String, std::collections::BTreeMap<String, (String, bool)>>;

/// The tables `server/src/db/schema.rs` declares, parsed from its `diesel::table!` blocks: the
/// diesel type of each column and whether it is `Nullable`.
fn declared_schema() -> Columns {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/src/db/schema.rs")).unwrap();
    let mut out = Columns::new();
    for block in text.split("diesel::table! {").skip(1) {
        let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
        let head = lines.next().unwrap();
        let table = head.split_whitespace().next().unwrap().to_string();
        let columns = out.entry(table).or_default();
        for line in lines.take_while(|l| *l != "}") {
            let Some((name, ty)) = line.trim_end_matches(',').split_once(" -> ") else { continue };
            let nullable = ty.starts_with("Nullable<");
            let ty = ty.trim_start_matches("Nullable<").trim_end_matches('>');
            columns.insert(name.to_string(), (ty.to_string(), nullable));
        }
    }
    out
}

/// The tables a freshly migrated database has (diesel's own bookkeeping left out).
fn migrated_schema(url: &baton_server::db::DatabaseUrl) -> Columns {
    use diesel::sql_types::{Integer, Text};
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        data_type: String,
        #[diesel(sql_type = Integer)]
        nullable: i32,
    }
    let rows: Vec<Column> = match baton_server::db::connect_once(url).unwrap() {
        baton_server::db::DbConn::Pg(mut c) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type,
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .load(&mut c)
        .unwrap(),
        baton_server::db::DbConn::Sqlite(mut c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type,
                    CASE WHEN p.\"notnull\" = 0 AND p.pk = 0 THEN 1 ELSE 0 END AS nullable
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .load(&mut c)
        .unwrap(),
    };
    let mut out = Columns::new();
    for r in rows.into_iter().filter(|r| r.table_name != "__diesel_schema_migrations") {
        out.entry(r.table_name).or_default().insert(r.column_name, (r.data_type.to_lowercase(), r.nullable == 1));
    }
    out
}

/// Whether a column the database reports as `sql` may be read as diesel's `declared`.
fn type_matches(declared: &str, sql: &str) -> bool {
    let accepted: &[&str] = match declared {
        "BigInt" => &["bigint", "integer"],
        "Integer" => &["integer", "int"],
        "Text" => &["text", "character varying"],
        "Timestamp" => &["timestamp", "timestamp without time zone"],
        "Date" => &["date"],
        "Bool" => &["boolean"],
        "Double" => &["double", "double precision", "real"],
        "Binary" => &["blob", "bytea"],
        _ => &[],
    };
    accepted.contains(&sql)
}

/// `schema.rs` is written by hand over two migration trees: it must say what both of them make,
/// table for table and column for column (name, type and nullability), as crates.io checks
/// `diesel print-schema` against its file.
#[test]
fn schema_rs_matches_what_the_migrations_make_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![baton_server::db::DatabaseUrl::Sqlite(dir.path().join("schema.db"))];
    urls.extend(baton_tests::fresh_postgres().map(|u| baton_server::db::DatabaseUrl::parse(&u)));
    let declared = declared_schema();
    assert!(declared.len() >= 20 && declared["runs"].len() >= 20, "schema.rs was read: {:?}", declared.keys());
    for url in &urls {
        let made = migrated_schema(url);
        let mut wrong = Vec::new();
        let tables: std::collections::BTreeSet<&String> = declared.keys().chain(made.keys()).collect();
        for table in tables {
            let (d, m) = (declared.get(table), made.get(table));
            let (Some(d), Some(m)) = (d, m) else {
                wrong.push(format!(
                    "table {table}: in schema.rs {}, made by the migrations {}",
                    d.is_some(),
                    m.is_some()
                ));
                continue;
            };
            let columns: std::collections::BTreeSet<&String> = d.keys().chain(m.keys()).collect();
            for col in columns {
                match (d.get(col), m.get(col)) {
                    (Some((ty, null)), Some((sql, sql_null))) => {
                        if !type_matches(ty, sql) || null != sql_null {
                            wrong.push(format!(
                                "{table}.{col}: schema.rs says {ty} (nullable {null}), the database {sql} (nullable {sql_null})"
                            ));
                        }
                    }
                    (d, m) => wrong.push(format!(
                        "{table}.{col}: in schema.rs {}, made by the migrations {}",
                        d.is_some(),
                        m.is_some()
                    )),
                }
            }
        }
        assert!(wrong.is_empty(), "{}:\n{}", url.redacted(), wrong.join("\n"));
    }
}
