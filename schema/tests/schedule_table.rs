//! Table-driven checks of when schedules fire, across DST changes, odd offsets, month ends and holidays.
//! Every expected instant below was worked out by hand from the tz database's transitions.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_schema::calendar::{Calendar, CalendarDraft, HolidayDraft};
use baton_schema::schedule::{next_fire_after, preview, DstNote, Schedule, ScheduleDraft};
use chrono::{DateTime, Utc};

struct Case {
    name: &'static str,
    tz: &'static str,
    trigger_times: Option<&'static str>,
    run_frequency: Option<&'static str>,
    cron: Option<&'static str>,
    days: Option<&'static str>,
    after: &'static str,
    /// (nominal local time, UTC instant, DST note)
    expect: &'static [(&'static str, &'static str, Option<DstNote>)],
}

const SHIFT: Option<DstNote> = Some(DstNote::Shifted);
const TWICE: Option<DstNote> = Some(DstNote::Repeated);

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn schedule(c: &Case) -> Schedule {
    Schedule::parse(&ScheduleDraft {
        trigger_times: c.trigger_times.map(Into::into),
        run_frequency: c.run_frequency.map(Into::into),
        cron: c.cron.map(Into::into),
        days: c.days.map(Into::into),
        timezone: c.tz.into(),
        calendar: None,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

const CASES: &[Case] = &[
    Case {
        name: "New York spring forward: 02:30 does not exist, fires at 03:00 EDT",
        tz: "America/New_York",
        trigger_times: Some("02:30"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-03-07T00:00:00Z",
        expect: &[
            ("2026-03-07T02:30:00", "2026-03-07T07:30:00Z", None),
            ("2026-03-08T02:30:00", "2026-03-08T07:00:00Z", SHIFT),
            ("2026-03-09T02:30:00", "2026-03-09T06:30:00Z", None),
        ],
    },
    Case {
        name: "New York spring forward: slots in the gap and at its end fire once",
        tz: "America/New_York",
        trigger_times: None,
        run_frequency: Some("01:00-04:00-30"),
        cron: None,
        days: None,
        after: "2026-03-08T05:00:00Z",
        expect: &[
            ("2026-03-08T01:00:00", "2026-03-08T06:00:00Z", None),
            ("2026-03-08T01:30:00", "2026-03-08T06:30:00Z", None),
            ("2026-03-08T02:00:00", "2026-03-08T07:00:00Z", SHIFT),
            ("2026-03-08T03:30:00", "2026-03-08T07:30:00Z", None),
            ("2026-03-08T04:00:00", "2026-03-08T08:00:00Z", None),
        ],
    },
    Case {
        name: "New York fall back: 01:30 occurs twice, fires once at the first (EDT)",
        tz: "America/New_York",
        trigger_times: Some("01:30"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-10-31T12:00:00Z",
        expect: &[
            ("2026-11-01T01:30:00", "2026-11-01T05:30:00Z", TWICE),
            ("2026-11-02T01:30:00", "2026-11-02T06:30:00Z", None),
        ],
    },
    Case {
        name: "New York fall back: a frequency window does not run the repeated hour twice",
        tz: "America/New_York",
        trigger_times: None,
        run_frequency: Some("00:30-02:30-30"),
        cron: None,
        days: None,
        after: "2026-11-01T04:00:00Z",
        expect: &[
            ("2026-11-01T00:30:00", "2026-11-01T04:30:00Z", None),
            ("2026-11-01T01:00:00", "2026-11-01T05:00:00Z", TWICE),
            ("2026-11-01T01:30:00", "2026-11-01T05:30:00Z", TWICE),
            ("2026-11-01T02:00:00", "2026-11-01T07:00:00Z", None),
            ("2026-11-01T02:30:00", "2026-11-01T07:30:00Z", None),
        ],
    },
    Case {
        name: "London spring forward (01:00 GMT -> 02:00 BST), cron",
        tz: "Europe/London",
        trigger_times: None,
        run_frequency: None,
        cron: Some("30 1 * * *"),
        days: None,
        after: "2026-03-28T02:00:00Z",
        expect: &[
            ("2026-03-29T01:30:00", "2026-03-29T01:00:00Z", SHIFT),
            ("2026-03-30T01:30:00", "2026-03-30T00:30:00Z", None),
        ],
    },
    Case {
        name: "London fall back (02:00 BST -> 01:00 GMT), cron every 20 minutes",
        tz: "Europe/London",
        trigger_times: None,
        run_frequency: None,
        cron: Some("*/20 1 * * *"),
        days: None,
        after: "2026-10-24T23:00:00Z",
        expect: &[
            ("2026-10-25T01:00:00", "2026-10-25T00:00:00Z", TWICE),
            ("2026-10-25T01:20:00", "2026-10-25T00:20:00Z", TWICE),
            ("2026-10-25T01:40:00", "2026-10-25T00:40:00Z", TWICE),
            ("2026-10-26T01:00:00", "2026-10-26T01:00:00Z", None),
        ],
    },
    Case {
        name: "Lord Howe: a 30-minute spring forward (02:00 +10:30 -> 02:30 +11)",
        tz: "Australia/Lord_Howe",
        trigger_times: Some("01:45,02:15,02:30"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-10-03T15:00:00Z",
        expect: &[
            ("2026-10-04T01:45:00", "2026-10-03T15:15:00Z", None),
            ("2026-10-04T02:15:00", "2026-10-03T15:30:00Z", SHIFT),
            ("2026-10-05T01:45:00", "2026-10-04T14:45:00Z", None),
        ],
    },
    Case {
        name: "Lord Howe: a 30-minute fall back (02:00 +11 -> 01:30 +10:30)",
        tz: "Australia/Lord_Howe",
        trigger_times: Some("01:45"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-04-04T00:00:00Z",
        expect: &[
            ("2026-04-05T01:45:00", "2026-04-04T14:45:00Z", TWICE),
            ("2026-04-06T01:45:00", "2026-04-05T15:15:00Z", None),
        ],
    },
    Case {
        name: "Kolkata: +05:30 all year",
        tz: "Asia/Kolkata",
        trigger_times: Some("09:00"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-03-08T00:00:00Z",
        expect: &[
            ("2026-03-08T09:00:00", "2026-03-08T03:30:00Z", None),
            ("2026-03-09T09:00:00", "2026-03-09T03:30:00Z", None),
        ],
    },
    Case {
        name: "Chatham: +12:45 -> +13:45 at 02:45",
        tz: "Pacific/Chatham",
        trigger_times: Some("03:00"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-09-26T00:00:00Z",
        expect: &[
            ("2026-09-27T03:00:00", "2026-09-26T14:00:00Z", SHIFT),
            ("2026-09-28T03:00:00", "2026-09-27T13:15:00Z", None),
        ],
    },
    Case {
        name: "Chatham: +13:45 -> +12:45 at 03:45, 03:00 occurs twice",
        tz: "Pacific/Chatham",
        trigger_times: Some("03:00"),
        run_frequency: None,
        cron: None,
        days: None,
        after: "2026-04-04T00:00:00Z",
        expect: &[
            ("2026-04-05T03:00:00", "2026-04-04T13:15:00Z", TWICE),
            ("2026-04-06T03:00:00", "2026-04-05T14:15:00Z", None),
        ],
    },
    Case {
        name: "Leap day by cron",
        tz: "UTC",
        trigger_times: None,
        run_frequency: None,
        cron: Some("0 12 29 2 *"),
        days: None,
        after: "2026-03-01T00:00:00Z",
        expect: &[
            ("2028-02-29T12:00:00", "2028-02-29T12:00:00Z", None),
            ("2032-02-29T12:00:00", "2032-02-29T12:00:00Z", None),
        ],
    },
    Case {
        name: "Last day of the month, through a leap February",
        tz: "UTC",
        trigger_times: Some("23:00"),
        run_frequency: None,
        cron: None,
        days: Some("last day"),
        after: "2028-01-15T00:00:00Z",
        expect: &[
            ("2028-01-31T23:00:00", "2028-01-31T23:00:00Z", None),
            ("2028-02-29T23:00:00", "2028-02-29T23:00:00Z", None),
            ("2028-03-31T23:00:00", "2028-03-31T23:00:00Z", None),
            ("2028-04-30T23:00:00", "2028-04-30T23:00:00Z", None),
        ],
    },
    Case {
        name: "Last Friday in London, across the spring change",
        tz: "Europe/London",
        trigger_times: Some("17:00"),
        run_frequency: None,
        cron: None,
        days: Some("last friday"),
        after: "2026-01-01T00:00:00Z",
        expect: &[
            ("2026-01-30T17:00:00", "2026-01-30T17:00:00Z", None),
            ("2026-02-27T17:00:00", "2026-02-27T17:00:00Z", None),
            ("2026-03-27T17:00:00", "2026-03-27T17:00:00Z", None),
            ("2026-04-24T17:00:00", "2026-04-24T16:00:00Z", None),
        ],
    },
    Case {
        name: "2nd Tuesday, cron narrowed by an ordinal day",
        tz: "UTC",
        trigger_times: None,
        run_frequency: None,
        cron: Some("0 6 * * *"),
        days: Some("2nd tuesday"),
        after: "2026-11-28T00:00:00Z",
        expect: &[
            ("2026-12-08T06:00:00", "2026-12-08T06:00:00Z", None),
            ("2027-01-12T06:00:00", "2027-01-12T06:00:00Z", None),
        ],
    },
    Case {
        name: "Weekday window crossing midnight keeps the run date it opened on",
        tz: "UTC",
        trigger_times: None,
        run_frequency: Some("22:00-01:00-60"),
        cron: None,
        days: Some("1111100"),
        after: "2026-11-27T21:00:00Z",
        expect: &[
            ("2026-11-27T22:00:00", "2026-11-27T22:00:00Z", None),
            ("2026-11-27T23:00:00", "2026-11-27T23:00:00Z", None),
            ("2026-11-28T00:00:00", "2026-11-28T00:00:00Z", None),
            ("2026-11-28T01:00:00", "2026-11-28T01:00:00Z", None),
            ("2026-11-30T22:00:00", "2026-11-30T22:00:00Z", None),
        ],
    },
    Case {
        name: "Cron with seconds",
        tz: "UTC",
        trigger_times: None,
        run_frequency: None,
        cron: Some("*/20 * * * * *"),
        days: None,
        after: "2026-11-28T10:00:05Z",
        expect: &[
            ("2026-11-28T10:00:20", "2026-11-28T10:00:20Z", None),
            ("2026-11-28T10:00:40", "2026-11-28T10:00:40Z", None),
            ("2026-11-28T10:01:00", "2026-11-28T10:01:00Z", None),
        ],
    },
];

#[test]
fn schedules_fire_at_the_right_instants() {
    for c in CASES {
        let s = schedule(c);
        let got: Vec<(String, String, Option<DstNote>)> = preview(&s, None, utc(c.after), c.expect.len())
            .into_iter()
            .map(|slot| (slot.key(), slot.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(), slot.dst))
            .collect();
        let want: Vec<(String, String, Option<DstNote>)> =
            c.expect.iter().map(|(l, u, n)| (l.to_string(), u.to_string(), *n)).collect();
        assert_eq!(got, want, "{}", c.name);
        // next_fire_after agrees with the preview, and is strictly after its argument.
        assert_eq!(
            next_fire_after(&s, None, utc(c.after)).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Some(want[0].1.clone()),
            "{}",
            c.name
        );
        assert_eq!(
            next_fire_after(&s, None, utc(&want[0].1)).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            want.get(1).map(|w| w.1.clone()),
            "{} (second)",
            c.name
        );
    }
}

#[test]
fn holiday_range_skips_and_marks() {
    let cal = Calendar::parse(&CalendarDraft {
        name: "XMAS".into(),
        description: String::new(),
        holidays: vec![HolidayDraft {
            start: "2026-12-24".into(),
            end: Some("2026-12-26".into()),
            reason: "Christmas".into(),
        }],
    })
    .unwrap();
    let s = Schedule::parse(&ScheduleDraft {
        trigger_times: Some("08:00".into()),
        timezone: "Europe/London".into(),
        calendar: Some("XMAS".into()),
        ..Default::default()
    })
    .unwrap();
    let slots = preview(&s, Some(&cal), utc("2026-12-23T00:00:00Z"), 5);
    let marks: Vec<(String, Option<&str>)> =
        slots.iter().map(|s| (s.run_date.to_string(), s.holiday.as_deref())).collect();
    assert_eq!(
        marks,
        vec![
            ("2026-12-23".into(), None),
            ("2026-12-24".into(), Some("Christmas")),
            ("2026-12-25".into(), Some("Christmas")),
            ("2026-12-26".into(), Some("Christmas")),
            ("2026-12-27".into(), None),
        ]
    );
    assert_eq!(next_fire_after(&s, Some(&cal), utc("2026-12-23T08:00:00Z")), Some(utc("2026-12-27T08:00:00Z")));
}

#[test]
fn offsets_are_reported_for_previews() {
    let s = Schedule::parse(&ScheduleDraft {
        trigger_times: Some("12:00".into()),
        timezone: "Pacific/Chatham".into(),
        ..Default::default()
    })
    .unwrap();
    let slots = preview(&s, None, utc("2026-09-25T00:00:00Z"), 2);
    assert_eq!(slots[0].utc_offset_seconds, 12 * 3600 + 45 * 60);
    assert_eq!(slots[1].utc_offset_seconds, 13 * 3600 + 45 * 60);
    assert_eq!(slots[1].actual_local(s.timezone), slots[1].local);
}
