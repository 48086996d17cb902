//! The group actor's loading from the database: what a group that follows others owes.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::db::{DatabaseUrl, Db};
use baton_schema::definition::GroupDraft;
use chrono::Duration;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, d).unwrap()
}

/// Stores a group without a schedule, defined at `now`.
fn group(c: &mut DbConn, instance: InstanceId, name: &str, dependency: Option<&str>, now: DateTime<Utc>) -> GroupId {
    let draft: GroupDraft =
        serde_json::from_value(serde_json::json!({ "name": name, "dependency": dependency })).unwrap();
    db::groups::insert(c, instance, &GroupDef::parse(&draft).unwrap(), now).unwrap()
}

/// A group that follows others opens its run of a day when one of them does; when it missed
/// that (its own opening failed, or it was reloading), it owes the run, and opens it once loaded:
/// every day a group it follows opened a run since it was defined, and it has none.
#[test]
fn a_following_group_owes_the_runs_of_days_its_leaders_opened_since_it_was_defined() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
    let mut c = db.conn().unwrap();
    let instance = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
    let leases = crate::lease::Leases::named("s".into());
    crate::lease::LeaseKeeper::new(leases.clone(), Duration::seconds(3600)).round(&mut c, t(0)).unwrap();
    let up = group(&mut c, instance, "up", None, t(0));
    let other = group(&mut c, instance, "other", None, t(0));
    let report = group(&mut c, instance, "report", Some("S:up"), t(100));
    let open = |c: &mut DbConn, g: GroupId, d: u32, at: i64| {
        db::group_runs::create(c, g, day(d), "", RunStatus::Running, t(at)).unwrap();
    };
    open(&mut c, up, 1, 50); // before `report` was defined: not its
    open(&mut c, up, 2, 200);
    open(&mut c, up, 3, 300);
    open(&mut c, report, 3, 301); // it has that day's run
    open(&mut c, other, 4, 300); // a group it does not follow
    let g = load(&mut c, report, Duration::zero(), t(400), &leases).unwrap().unwrap();
    assert_eq!(g.owed, vec![day(2)]);
    // The group that leads owes nothing: it follows no one.
    let g = load(&mut c, up, Duration::zero(), t(400), &leases).unwrap().unwrap();
    assert!(g.owed.is_empty());
}
