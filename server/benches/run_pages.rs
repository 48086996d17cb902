//! How fast the runs list pages with a million runs, against the same queries on a hundred.
//!
//! `cargo bench -p baton-server --bench run_pages` fills two SQLite databases (100 and 1,000,000
//! runs), then times the API's queries on each: the first page, a page deep in the history (by
//! cursor), a filtered page, and the count. It prints medians and the ratio 1M / 100.

use baton_server::db::{self, DatabaseUrl, Db};
use diesel::connection::SimpleConnection;
use std::time::{Duration, Instant};

fn fill(dir: &std::path::Path, runs: u64) -> Db {
    let db = Db::open(DatabaseUrl::Sqlite(dir.join(format!("runs_{runs}.db")))).expect("open");
    let mut c = db.conn().expect("conn");
    let sql = format!(
        "INSERT INTO tasks (instance_id, name, command, target, run_as_user, active, created_at, updated_at)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
           SELECT 1, 'task_' || i, 'true', 'etl', 'batch', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM n;
         INSERT INTO runs (kind, task_id, task_name, instance_id, run_date, slot, status, attempt, command, target,
                           run_as_user, created_at, updated_at)
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {runs})
           SELECT 'scheduled', 1 + (i % 100), 'task_' || (1 + (i % 100)), 1,
                  date('2020-01-01', '+' || (i / 1440) || ' days'), printf('%05d', i),
                  CASE WHEN i % 50 = 0 THEN 'FAILED' ELSE 'SUCCESS' END, 1, 'true', 'etl', 'batch',
                  datetime('2020-01-01', '+' || i || ' minutes'), datetime('2020-01-01', '+' || i || ' minutes')
           FROM n;"
    );
    match &mut *c {
        db::DbConn::Sqlite(s) => s.batch_execute(&sql).expect("fill"),
        db::DbConn::Pg(_) => unreachable!("the bench uses SQLite"),
    }
    drop(c);
    db
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..101)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[50]
}

fn measure(db: &Db, runs: i64) -> Vec<(&'static str, Duration)> {
    let mut c = db.conn().expect("conn");
    let all = db::runs::RunFilter::default();
    let failed =
        db::runs::RunFilter { statuses: Some(vec![baton_schema::run::RunStatus::Failed]), ..Default::default() };
    let deep_cursor = Some(baton_schema::ids::RunId(runs.min(10_000)));
    vec![
        (
            "first page of 50",
            median(|| assert_eq!(db::runs::page(&mut c, &all, None, 51).expect("page").len(), 51.min(runs as usize))),
        ),
        (
            "a page deep in history",
            median(|| {
                db::runs::page(&mut c, &all, deep_cursor, 51).expect("page");
            }),
        ),
        (
            "first page of FAILED",
            median(|| {
                db::runs::page(&mut c, &failed, None, 51).expect("page");
            }),
        ),
        (
            "first page of one task",
            median(|| {
                db::runs::page(
                    &mut c,
                    &db::runs::RunFilter { task_id: Some(baton_schema::ids::TaskId(7)), ..Default::default() },
                    None,
                    51,
                )
                .expect("page");
            }),
        ),
        (
            "totalCount of FAILED",
            median(|| {
                db::runs::count(&mut c, &failed).expect("count");
            }),
        ),
    ]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let small = fill(dir.path(), 100);
    let big = fill(dir.path(), 1_000_000);
    println!("filled 100 and 1,000,000 runs in {:.1?}", t.elapsed());
    let a = measure(&small, 100);
    let b = measure(&big, 1_000_000);
    println!("{:<26} {:>12} {:>12} {:>8}", "query (median of 101)", "100 runs", "1M runs", "ratio");
    for ((name, s), (_, m)) in a.iter().zip(b.iter()) {
        println!("{name:<26} {:>12.1?} {:>12.1?} {:>7.1}x", s, m, m.as_secs_f64() / s.as_secs_f64());
    }
}
