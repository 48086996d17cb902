//! Storage tests: each runs against a fresh SQLite file always, and against a fresh PostgreSQL
//! database whenever `BATON_TEST_DATABASE_URL` is set (CI sets it).
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::definition::{AlertRuleDraft, GroupDef, GroupDraft, TaskDef, TaskDraft};
use baton_schema::ids::{GroupId, RunId, TaskId};
use baton_schema::run::{RunStatus, Transition};
use baton_schema::schedule::ScheduleDraft;
use baton_server::db::{self, DatabaseUrl, Db, DbError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::connection::SimpleConnection;
use diesel::Connection;

struct TestDb {
    db: Db,
    name: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// (server URL, database name) of a PostgreSQL database to drop afterwards.
    pg: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            if let Ok(mut admin) = diesel::PgConnection::establish(base) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// A fresh database per backend available.
fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Db::open(DatabaseUrl::Sqlite(dir.path().join("t.db"))).expect("open sqlite");
    let mut out = vec![TestDb { db: sqlite, name: "sqlite", _dir: Some(dir), pg: None }];
    if let Ok(base) = std::env::var("BATON_TEST_DATABASE_URL") {
        let (url, db_name) = fresh_postgres(&base);
        let db = Db::open(DatabaseUrl::Postgres(url)).expect("open postgres");
        out.push(TestDb { db, name: "postgres", _dir: None, pg: Some((base, db_name)) });
    }
    out
}

/// Creates an empty database on the server of `base`; returns its URL and name.
fn fresh_postgres(base: &str) -> (String, String) {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("baton_test_{}_{}_{n}", std::process::id(), Utc::now().timestamp_micros());
    let mut admin = diesel::PgConnection::establish(base).expect("connect to BATON_TEST_DATABASE_URL");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database path");
    (format!("{prefix}/{name}"), name)
}

fn now() -> DateTime<Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

fn group(name: &str) -> GroupDef {
    let mut g = GroupDraft::new(name);
    g.schedule = Some(ScheduleDraft {
        trigger_times: Some("02:00".into()),
        timezone: "Europe/London".into(),
        ..Default::default()
    });
    GroupDef::parse(&g).unwrap()
}

fn task(name: &str, group: Option<&str>) -> TaskDef {
    let mut d = TaskDraft::new(name, "echo ${T:task_name}", "etl", "batch");
    d.profile.insert("MODE".into(), "full".into());
    if let Some(g) = group {
        d.group = Some(g.into());
    } else {
        d.schedule =
            Some(ScheduleDraft { cron: Some("*/5 * * * *".into()), timezone: "UTC".into(), ..Default::default() });
    }
    d.alerts.push(AlertRuleDraft { on: "failure".into(), integration: "ops".into(), ..Default::default() });
    TaskDef::parse(&d).unwrap()
}

#[test]
fn migrations_create_the_default_instance_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("nested/data/baton.db"));
    let db = Db::open(url.clone()).unwrap();
    let names: Vec<String> =
        db::instances::list(&mut db.conn().unwrap()).unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["default"]);
    drop(db);
    let again = Db::open(url).unwrap();
    assert_eq!(db::instances::list(&mut again.conn().unwrap()).unwrap().len(), 1);
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        assert!(db::instances::by_name(&mut c, "default").unwrap().is_some(), "{}", t.name);
        let other = db::instances::ensure(&mut c, "finance", now()).unwrap();
        assert_eq!(db::instances::ensure(&mut c, "finance", now()).unwrap().id, other.id, "{}", t.name);
    }
}

#[test]
fn unreachable_postgres_is_a_clear_error() {
    let err = Db::open(DatabaseUrl::Postgres("postgres://baton:secret@127.0.0.1:1/baton".into())).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("cannot open the database postgres://baton:***@127.0.0.1:1/baton"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn definitions_round_trip_and_keep_their_rules() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let gid = db::groups::insert(&mut c, inst, &group("nightly"), now()).unwrap();
        let mut extract = task("extract", Some("nightly"));
        let tid = db::tasks::insert(&mut c, inst, Some(gid), &extract, now()).unwrap();
        db::alert_rules::replace(&mut c, db::alert_rules::Owner::Task(tid), &extract.alerts).unwrap();

        let row = db::tasks::get(&mut c, tid).unwrap();
        let alerts = db::alert_rules::of(&mut c, db::alert_rules::Owner::Task(tid))
            .unwrap()
            .iter()
            .map(|r| r.to_draft().unwrap())
            .collect();
        let back = TaskDef::parse(&row.to_draft("default", Some("nightly"), alerts).unwrap()).unwrap();
        extract.tid = Some(tid);
        assert_eq!(back, extract, "{}", t.name);

        // Names are unique per instance.
        let dup = db::tasks::insert(&mut c, inst, Some(gid), &task("extract", Some("nightly")), now());
        assert!(matches!(dup, Err(DbError::Conflict(_))), "{}: {dup:?}", t.name);
        // A group with tasks cannot be deleted (foreign keys are on for SQLite too).
        assert!(matches!(db::groups::delete(&mut c, gid), Err(DbError::Conflict(_))), "{}", t.name);
        // Updates bump the version.
        extract.description = "pulls the files".into();
        db::tasks::update(&mut c, tid, inst, Some(gid), &extract, now()).unwrap();
        let row = db::tasks::get(&mut c, tid).unwrap();
        assert_eq!((row.version, row.description.as_str()), (2, "pulls the files"), "{}", t.name);
        assert!(matches!(
            db::tasks::update(&mut c, TaskId(999_999), inst, None, &extract, now()),
            Err(DbError::NotFound)
        ));
        db::tasks::delete(&mut c, tid).unwrap();
        db::groups::delete(&mut c, gid).unwrap();
    }
}

#[test]
fn task_pages_are_complete_stable_and_filtered() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        for i in 0..250 {
            let mut def = task(&format!("job_{i:03}"), None);
            def.active = i % 5 != 0;
            db::tasks::insert(&mut c, inst, None, &def, now()).unwrap();
        }
        let all = db::tasks::TaskFilter::default();
        assert_eq!(db::tasks::count(&mut c, &all).unwrap(), 250);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = db::tasks::page(&mut c, &all, after, 40).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.id);
            seen.extend(page.into_iter().map(|r| r.name));
        }
        assert_eq!(seen.len(), 250, "{}", t.name);
        assert_eq!(seen.first().map(String::as_str), Some("job_000"));
        let inactive = db::tasks::TaskFilter { active: Some(false), ..Default::default() };
        assert_eq!(db::tasks::count(&mut c, &inactive).unwrap(), 50, "{}", t.name);
        // '_' in a search is literal, not a LIKE wildcard.
        let search = db::tasks::TaskFilter { search: Some("jo_".into()), ..Default::default() };
        let names: Vec<String> =
            db::tasks::page(&mut c, &search, None, 100).unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, Vec::<String>::new(), "{}", t.name);
        let search = db::tasks::TaskFilter { search: Some("job_01".into()), ..Default::default() };
        assert_eq!(db::tasks::count(&mut c, &search).unwrap(), 10, "{}", t.name);
    }
}

fn new_run(task_id: TaskId, slot: &str) -> db::runs::NewRun {
    db::runs::NewRun {
        kind: "scheduled".into(),
        task_id: Some(task_id),
        task_name: "job".into(),
        instance_id: None,
        group_id: None,
        group_run_id: None,
        run_date: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        slot: slot.into(),
        status: RunStatus::Idle,
        command: "true".into(),
        target: "etl".into(),
        run_as_user: "batch".into(),
        scheduled_for: Some(now().naive_utc()),
        created_at: now().naive_utc(),
        updated_at: now().naive_utc(),
        job: None,
    }
}

#[test]
fn one_run_per_slot_transitions_in_order_and_output_once() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let tid = db::tasks::insert(&mut c, inst, None, &task("job", None), now()).unwrap();
        let first = db::runs::create(&mut c, &new_run(tid, "2026-11-28T12:00:00")).unwrap();
        let second = db::runs::create(&mut c, &new_run(tid, "2026-11-28T12:00:00")).unwrap();
        assert!(matches!(first, db::runs::Created::New(_)), "{}", t.name);
        assert_eq!(second, db::runs::Created::Existing(first.id()), "{}", t.name);
        let other = db::runs::create(&mut c, &new_run(tid, "2026-11-28T12:05:00")).unwrap();
        assert_ne!(other.id(), first.id());

        let steps = [(RunStatus::Idle, RunStatus::Triggered), (RunStatus::Triggered, RunStatus::Started)];
        let trs: Vec<Transition> = steps
            .iter()
            .enumerate()
            .map(|(i, (f, to))| Transition {
                from: *f,
                to: *to,
                attempt: 1,
                at: now() + Duration::seconds(i as i64),
                reason: None,
            })
            .collect();
        db::run_transitions::append(&mut c, first.id(), &trs[..1], "s1").unwrap();
        db::run_transitions::append(&mut c, first.id(), &trs[1..], "s1").unwrap();
        let stored = db::run_transitions::of_run(&mut c, first.id()).unwrap();
        let got: Vec<(i32, RunStatus)> = stored.iter().map(|r| (r.seq, r.to_status)).collect();
        assert_eq!(got, vec![(1, RunStatus::Triggered), (2, RunStatus::Started)], "{}", t.name);

        assert!(db::run_output::append(
            &mut c,
            db::run_output::Chunk {
                run_id: first.id(),
                attempt: 1,
                stream: baton_schema::agent::v1::Stream::Stdout,
                offset: 0,
                data: "hello "
            },
            now(),
            "s1"
        )
        .unwrap());
        assert!(db::run_output::append(
            &mut c,
            db::run_output::Chunk {
                run_id: first.id(),
                attempt: 1,
                stream: baton_schema::agent::v1::Stream::Stdout,
                offset: 6,
                data: "world\n"
            },
            now(),
            "s1"
        )
        .unwrap());
        assert!(
            !db::run_output::append(
                &mut c,
                db::run_output::Chunk {
                    run_id: first.id(),
                    attempt: 1,
                    stream: baton_schema::agent::v1::Stream::Stdout,
                    offset: 6,
                    data: "world\n"
                },
                now(),
                "s1"
            )
            .unwrap(),
            "replay ignored"
        );
        let from_8: Vec<(i64, String)> =
            db::run_output::read(&mut c, first.id(), 1, baton_schema::agent::v1::Stream::Stdout, 8, 10)
                .unwrap()
                .into_iter()
                .map(|r| (r.byte_offset, r.data))
                .collect();
        assert_eq!(from_8, vec![(6, "world\n".to_string())], "{}", t.name);

        let failed = db::runs::RunFilter { statuses: Some(vec![RunStatus::Idle]), ..Default::default() };
        let page = db::runs::page(&mut c, &failed, None, 10).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![other.id(), first.id()], "newest first");
        assert_eq!(db::runs::page(&mut c, &failed, Some(other.id()), 10).unwrap().len(), 1);
        assert_eq!(db::runs::count(&mut c, &failed).unwrap(), 2);
    }
}

/// A task of that name in the default instance and one run of it for `slot`: the run's id.
fn one_run(c: &mut db::DbConn, task_name: &str, slot: &str) -> RunId {
    let inst = db::instances::by_name(c, "default").unwrap().unwrap().id;
    let tid = db::tasks::insert(c, inst, None, &task(task_name, None), now()).unwrap();
    db::runs::create(c, &new_run(tid, slot)).unwrap().id()
}

#[test]
fn a_step_is_stored_whole_or_refused_whole() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let run = one_run(&mut c, "job", "2026-11-28T12:00:00");
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let ttl = Duration::seconds(10);
        let token = db::instance_leases::acquire(&mut c, inst, "a", ttl, now()).unwrap().unwrap();
        let fence = db::instance_leases::Fence { instance_id: inst, owner: "a".into(), token };
        let step = |from: RunStatus, to: RunStatus, secs: i64| Transition {
            from,
            to,
            attempt: 1,
            at: now() + Duration::seconds(secs),
            reason: None,
        };
        let change = |status: RunStatus, exit_code: Option<Option<i32>>| db::runs::RunChange {
            status,
            attempt: 1,
            reason: None,
            agent_id: None,
            pid: Some(Some(42)),
            exit_code,
            triggered_at: Some(Some(now().naive_utc())),
            started_at: None,
            ended_at: None,
            updated_at: now().naive_utc(),
        };
        let idle = db::runs::Expected { status: RunStatus::Idle, attempt: 0, agent_id: None };
        let triggered = db::runs::Expected { status: RunStatus::Triggered, attempt: 1, agent_id: None };
        let to_triggered = change(RunStatus::Triggered, None);
        let first = [step(RunStatus::Idle, RunStatus::Triggered, 0)];
        let advance = |c: &mut db::DbConn, expected, change, trs: &[Transition], fence, at: DateTime<Utc>| {
            let s = db::runs::Step { run_id: run, expected, change, transitions: trs, server: "s1", fence, now: at };
            db::runs::advance(c, &s)
        };
        advance(&mut c, &idle, &to_triggered, &first, Some(&fence), now()).unwrap();

        // A stale view, then a lost lease: refused, and nothing of either is stored.
        let stale = advance(&mut c, &idle, &to_triggered, &first, Some(&fence), now());
        assert!(matches!(stale, Err(DbError::Conflict(_))), "{}: {stale:?}", t.name);
        let later = now() + Duration::seconds(11);
        assert_eq!(db::instance_leases::acquire(&mut c, inst, "b", ttl, later).unwrap(), Some(token + 1));
        let ended = change(RunStatus::Failed, Some(Some(3)));
        let two = [step(RunStatus::Triggered, RunStatus::Started, 1), step(RunStatus::Started, RunStatus::Failed, 2)];
        let fenced = advance(&mut c, &triggered, &ended, &two, Some(&fence), later);
        assert!(matches!(&fenced, Err(DbError::Conflict(why)) if why.contains("lease")), "{}: {fenced:?}", t.name);
        let row = db::runs::get(&mut c, run).unwrap();
        assert_eq!((row.status.as_str(), row.pid, row.exit_code), ("TRIGGERED", Some(42), None), "{}", t.name);
        assert_eq!(db::run_transitions::of_run(&mut c, run).unwrap().len(), 1, "{}", t.name);

        // Unfenced, from the run as it is: both steps, in order after the first; a field the
        // change leaves alone keeps its value.
        advance(&mut c, &triggered, &ended, &two, None, later).unwrap();
        let row = db::runs::get(&mut c, run).unwrap();
        assert_eq!((row.status.as_str(), row.exit_code, row.pid), ("FAILED", Some(3), Some(42)), "{}", t.name);
        assert_eq!(row.triggered_at, Some(now().naive_utc()), "{}", t.name);
        let stored: Vec<(i32, RunStatus)> =
            db::run_transitions::of_run(&mut c, run).unwrap().into_iter().map(|r| (r.seq, r.to_status)).collect();
        let want = [(1, RunStatus::Triggered), (2, RunStatus::Started), (3, RunStatus::Failed)];
        assert_eq!(stored, want, "{}", t.name);
    }
}

#[test]
fn batched_writes_share_transactions_and_a_failing_one_undoes_only_itself() {
    for t in databases() {
        let tid = {
            let mut c = t.db.conn().unwrap();
            let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
            db::tasks::insert(&mut c, inst, None, &task("job", None), now()).unwrap()
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let before = t.db.write_batches();
        let results: Vec<Result<RunId, DbError>> = rt.block_on(async {
            let writes = (0..500).map(|i| {
                let db = t.db.clone();
                async move {
                    // Write 250 names a task that does not exist: the foreign key refuses it.
                    let task_id = if i == 250 { TaskId(tid.0 + 1_000) } else { tid };
                    let run = new_run(task_id, &format!("2026-11-28T12:{:02}:{:02}", i / 60, i % 60));
                    db.write(move |c| Ok(db::runs::create(c, &run)?.id())).await
                }
            });
            futures_util::future::join_all(writes).await
        });
        let batches = t.db.write_batches() - before;
        assert!(results[250].is_err(), "{}", t.name);
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 499, "{}", t.name);
        assert!(batches < 50, "{}: 500 writes took {batches} transactions", t.name);
        let mut c = t.db.conn().unwrap();
        let stored =
            db::runs::count(&mut c, &db::runs::RunFilter { task_id: Some(tid), ..Default::default() }).unwrap();
        assert_eq!(stored, 499, "{}: every other write is stored", t.name);
    }
}

#[test]
fn lookups_by_more_ids_than_a_statement_may_bind() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let tid = db::tasks::insert(&mut c, inst, None, &task("job", None), now()).unwrap();
        // SQLite binds at most 32,766 variables per statement; imports of 100,000 tasks look up more.
        let mut ids: Vec<TaskId> = (1_000_000..1_040_000).map(TaskId).collect();
        ids.push(tid);
        let tasks = db::tasks::get_many(&mut c, &ids).unwrap();
        assert_eq!(tasks.iter().map(|r| r.id).collect::<Vec<_>>(), vec![tid], "{}", t.name);
        assert!(db::dependencies::of_tasks(&mut c, &ids).unwrap().is_empty(), "{}", t.name);
        let group_ids: Vec<GroupId> = ids.iter().map(|t| GroupId(t.0)).collect();
        assert!(db::groups::get_many(&mut c, &group_ids).unwrap().is_empty(), "{}", t.name);
    }
}

#[test]
fn sessions_tokens_and_credentials() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let uid = db::users::insert(&mut c, "ada", "$argon2id$...", "operator", "*", now()).unwrap();
        assert!(matches!(db::users::insert(&mut c, "ada", "x", "viewer", "*", now()), Err(DbError::Conflict(_))));
        db::sessions::insert(&mut c, uid, "h1", now() + Duration::hours(8), now()).unwrap();
        let user = db::sessions::live_user(&mut c, "h1", now()).unwrap();
        assert_eq!(user.map(|u| u.id), Some(uid), "{}", t.name);
        assert!(db::sessions::live_user(&mut c, "h1", now() + Duration::hours(9)).unwrap().is_none(), "expired");
        assert_eq!(db::sessions::delete_for_user(&mut c, uid).unwrap(), 1);
        assert!(db::sessions::live_user(&mut c, "h1", now()).unwrap().is_none());

        let tok = db::api_tokens::insert(&mut c, uid, "ci", "th", Some(now() + Duration::days(1)), now()).unwrap();
        assert!(db::api_tokens::find_live(&mut c, "th", now()).unwrap().is_some());
        assert!(db::api_tokens::find_live(&mut c, "th", now() + Duration::days(2)).unwrap().is_none());
        db::api_tokens::revoke(&mut c, tok, now()).unwrap();
        assert!(db::api_tokens::find_live(&mut c, "th", now()).unwrap().is_none());
        assert!(matches!(db::api_tokens::revoke(&mut c, tok, now()), Err(DbError::NotFound)));

        // A rotation keeps the instance the key was set in; a key of another instance (or a
        // global one for an instance's) is not touched.
        let default = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let sealed = |nonce, ciphertext| db::credentials::Sealed { nonce, ciphertext };
        db::credentials::put(&mut c, "alerts/email", &sealed("n1", "c1"), Some(default), now()).unwrap();
        db::credentials::put(&mut c, "alerts/email", &sealed("n2", "c2"), Some(default), now()).unwrap();
        let elsewhere = db::credentials::put(&mut c, "alerts/email", &sealed("n3", "c3"), None, now());
        assert!(matches!(elsewhere, Err(DbError::Conflict(_))), "{}: {elsewhere:?}", t.name);
        let row = db::credentials::get(&mut c, "alerts/email").unwrap().unwrap();
        assert_eq!((row.version, row.ciphertext.as_str()), (2, "c2"), "{}", t.name);
        assert_eq!(row.instance_id, Some(default), "{}", t.name);
        assert_eq!(db::credentials::keys(&mut c).unwrap().len(), 1);
    }
}

#[test]
fn instance_leases_are_fenced() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let inst = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let ttl = Duration::seconds(10);
        assert_eq!(db::instance_leases::acquire(&mut c, inst, "a", ttl, now()).unwrap(), Some(1), "{}", t.name);
        assert_eq!(db::instance_leases::acquire(&mut c, inst, "b", ttl, now()).unwrap(), None);
        assert_eq!(
            db::instance_leases::acquire(&mut c, inst, "a", ttl, now() + Duration::seconds(5)).unwrap(),
            Some(1)
        );
        assert_eq!(
            db::instance_leases::acquire(&mut c, inst, "b", ttl, now() + Duration::seconds(16)).unwrap(),
            Some(2)
        );
        assert_eq!(db::instance_leases::acquire(&mut c, inst, "a", ttl, now() + Duration::seconds(17)).unwrap(), None);
    }
}

#[test]
fn agents_register_once_per_name_and_a_new_incarnation_numbers_its_events_anew() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let queues = vec!["etl".to_string(), "reports".to_string()];
        let r = db::agents::Registration {
            name: "a1",
            hostname: "h1",
            queues: &queues,
            version: "0.1.0",
            os: "linux",
            incarnation: "i1",
        };
        let (first, new) = db::agents::register(&mut c, &r, now()).unwrap();
        assert!(!new, "a first registration is no reinstall");
        let (again, new) =
            db::agents::register(&mut c, &db::agents::Registration { hostname: "h2", ..r.clone() }, now()).unwrap();
        assert!(!new, "the same incarnation again");
        assert_eq!(first.id, again.id, "{}", t.name);
        assert_eq!((again.hostname.as_str(), again.queue_list()), ("h2", vec!["etl", "reports"]));
        db::agents::set_acked(&mut c, first.id, "i1", 7).unwrap();
        db::agents::set_acked(&mut c, first.id, "i1", 3).unwrap();
        let acked = |c: &mut db::DbConn| db::agents::by_name(c, "a1").unwrap().unwrap().last_acked_seq;
        assert_eq!(acked(&mut c), 7, "acks never go back");

        // A rebuilt host: the same name, state made anew. Its events are numbered from 1 again,
        // and what a connection of the old incarnation stores late counts for nothing.
        let (rebuilt, new) =
            db::agents::register(&mut c, &db::agents::Registration { incarnation: "i2", ..r.clone() }, now()).unwrap();
        assert!(new, "{}: another incarnation under a known name", t.name);
        assert_eq!((rebuilt.id, rebuilt.last_acked_seq, rebuilt.incarnation.as_str()), (first.id, 0, "i2"));
        db::agents::set_acked(&mut c, first.id, "i1", 9).unwrap();
        assert_eq!(acked(&mut c), 0, "the old incarnation's acknowledgement");
        db::agents::set_acked(&mut c, first.id, "i2", 1).unwrap();
        assert_eq!(acked(&mut c), 1);

        // An agent from before incarnations says none: it keeps the stored one.
        let (old, new) =
            db::agents::register(&mut c, &db::agents::Registration { incarnation: "", ..r.clone() }, now()).unwrap();
        assert!(!new);
        assert_eq!((old.incarnation.as_str(), old.last_acked_seq), ("i2", 1));
    }
}

/// Statuses, streams and kinds are checked text on both backends: a word no enum writes is
/// refused, naming the column, and what was stored stays.
#[test]
fn statuses_streams_and_kinds_take_only_their_words() {
    for t in databases() {
        let mut c = t.db.conn().unwrap();
        let run = one_run(&mut c, "checked", "s1");
        let refused = [
            format!("UPDATE runs SET status = 'DONE' WHERE id = {run}"),
            format!("UPDATE runs SET status = 'idle' WHERE id = {run}"),
            format!(
                "INSERT INTO run_transitions (run_id, seq, from_status, to_status, attempt, at) \
                 VALUES ({run}, 1, 'IDLE', 'FINISHED', 1, '2026-11-28 12:00:00')"
            ),
            format!(
                "INSERT INTO run_output (run_id, attempt, stream, byte_offset, data, created_at) \
                 VALUES ({run}, 1, 'stdin', 0, 'x', '2026-11-28 12:00:00')"
            ),
            "INSERT INTO definition_changes (kind, entity_id, name, instance, action, server, at) \
             VALUES ('job', 1, 'x', 'default', 'created', 'a', '2026-11-28 12:00:00')"
                .to_string(),
            "INSERT INTO agent_changes (name, status, server, at) VALUES ('a1', 'AWAY', 'a', '2026-11-28 12:00:00')"
                .to_string(),
        ];
        for sql in &refused {
            let table = sql.split_whitespace().find(|w| w.contains('_') || *w == "runs").unwrap();
            match execute(&mut c, sql) {
                Ok(()) => panic!("{}: {sql} was stored", t.name),
                Err(e) => assert!(e.to_string().contains(table), "{}: {e} does not name {table}", t.name),
            }
        }
        assert_eq!(db::runs::get(&mut c, run).unwrap().status, RunStatus::Idle, "{}", t.name);
        execute(&mut c, &format!("UPDATE runs SET status = 'FROZEN' WHERE id = {run}")).unwrap();
        assert_eq!(db::runs::get(&mut c, run).unwrap().status, RunStatus::Frozen, "{}: a known word is stored", t.name);
    }
}

fn execute(c: &mut db::DbConn, sql: &str) -> diesel::QueryResult<()> {
    match c {
        db::DbConn::Pg(p) => p.batch_execute(sql),
        db::DbConn::Sqlite(s) => s.batch_execute(sql),
    }
}
