//! The pure scheduling machine of one schedule: given the passing of time, which slots fire,
//! which are skipped (holidays, missed while down), and when to wake next. The engine's actors
//! only feed it `now` and carry out its actions; tests drive it with a simulated clock.

use crate::calendar::Calendar;
use crate::definition::MisfirePolicy;
use crate::run::Reason;
use crate::schedule::{slots_after, Schedule, Slot};
use chrono::{DateTime, Duration, Utc};

/// A slot is on time when handled within this of its instant; later, it was missed.
pub const ON_TIME: Duration = Duration::seconds(5);

/// Slots missed by more than this are not handled one by one: one Skipped run, the latest of
/// them, records how many there were and since when (a week's downtime of a task every second
/// is one record, not 600 000).
pub const CATCH_UP: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a run for this slot.
    Fire(Slot),
    /// Record a Skipped run for this slot, with the reason.
    Skip(Slot, Reason),
}

#[derive(Debug, Clone)]
pub struct ScheduleClock {
    schedule: Schedule,
    calendar: Option<Calendar>,
    misfire: MisfirePolicy,
    grace: Duration,
    /// Slots at or before this instant are handled.
    cursor: DateTime<Utc>,
}

impl ScheduleClock {
    /// A clock that handles slots after `handled_until` (the server's start of today, or when the
    /// definition last changed, whichever is later).
    pub fn new(
        schedule: Schedule,
        calendar: Option<Calendar>,
        misfire: MisfirePolicy,
        grace: Duration,
        handled_until: DateTime<Utc>,
    ) -> Self {
        Self { schedule, calendar, misfire, grace, cursor: handled_until }
    }

    /// When the next slot is due.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        slots_after(&self.schedule, self.calendar.as_ref(), self.cursor).next().map(|s| s.at)
    }

    /// Everything due up to `now`, in order; the clock then stands at `now`.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        if now <= self.cursor {
            return Vec::new();
        }
        let mut out = Vec::new();
        let horizon = now - CATCH_UP;
        if self.cursor < horizon {
            out.extend(self.missed_before(horizon, now));
            self.cursor = horizon;
        }
        let due: Vec<Slot> =
            slots_after(&self.schedule, self.calendar.as_ref(), self.cursor).take_while(|s| s.at <= now).collect();
        self.cursor = now;
        let missed_in_grace: Vec<usize> = due
            .iter()
            .enumerate()
            .filter(|(_, s)| s.holiday.is_none() && now - s.at > ON_TIME && now - s.at <= self.grace)
            .map(|(i, _)| i)
            .collect();
        let keep_once = missed_in_grace.last().copied();
        for (i, slot) in due.into_iter().enumerate() {
            let late = now - slot.at;
            if let Some(reason) = slot.holiday.clone() {
                out.push(Action::Skip(slot, Reason::Holiday { reason }));
            } else if late <= ON_TIME {
                out.push(Action::Fire(slot));
            } else if late <= self.grace {
                let fire = match self.misfire {
                    MisfirePolicy::RunAll => true,
                    MisfirePolicy::RunOnce => Some(i) == keep_once,
                    MisfirePolicy::Skip => false,
                };
                if fire {
                    out.push(Action::Fire(slot));
                } else {
                    out.push(Action::Skip(slot, Reason::Missed { by_seconds: late.num_seconds() }));
                }
            } else {
                out.push(Action::Skip(slot, Reason::Missed { by_seconds: late.num_seconds() }));
            }
        }
        out
    }

    /// The one record of the slots (holidays aside) after the cursor and up to `horizon`, when
    /// there are any: counted, not collected.
    fn missed_before(&self, horizon: DateTime<Utc>, now: DateTime<Utc>) -> Option<Action> {
        let mut since = None;
        let mut last = None;
        let mut slots = 0u64;
        for slot in slots_after(&self.schedule, self.calendar.as_ref(), self.cursor).take_while(|s| s.at <= horizon) {
            if slot.holiday.is_none() {
                since.get_or_insert(slot.at);
                slots += 1;
                last = Some(slot);
            }
        }
        let (last, since) = (last?, since?);
        let by_seconds = (now - last.at).num_seconds();
        Some(Action::Skip(last, Reason::MissedMany { slots, since, by_seconds }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{CalendarDraft, HolidayDraft};
    use crate::schedule::ScheduleDraft;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn clock(cron: &str, misfire: MisfirePolicy, from: &str) -> ScheduleClock {
        let s =
            Schedule::parse(&ScheduleDraft { cron: Some(cron.into()), timezone: "UTC".into(), ..Default::default() })
                .unwrap();
        ScheduleClock::new(s, None, misfire, Duration::minutes(15), t(from))
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Fire(s) => format!("fire {}", s.local.format("%H:%M")),
                Action::Skip(s, r) => format!("skip {} ({r})", s.local.format("%H:%M")),
            })
            .collect()
    }

    #[test]
    fn fires_each_slot_once_on_a_simulated_clock() {
        let mut c = clock("*/10 * * * *", MisfirePolicy::RunOnce, "2026-11-28T09:55:00Z");
        let mut fired = Vec::new();
        let mut now = t("2026-11-28T09:55:00Z");
        // Jump from wake-up to wake-up, a little late each time, as timers are.
        for _ in 0..6 {
            now = c.next_wakeup().unwrap() + Duration::milliseconds(3);
            fired.extend(kinds(&c.poll(now)));
            assert!(c.poll(now).is_empty(), "a second poll at the same instant fires nothing");
        }
        assert_eq!(fired, vec!["fire 10:00", "fire 10:10", "fire 10:20", "fire 10:30", "fire 10:40", "fire 10:50"]);
        assert_eq!(now, t("2026-11-28T10:50:00.003Z"));
    }

    #[test]
    fn slots_past_the_catch_up_window_are_one_record() {
        // Down for three days: the slots more than a day late are one Skipped run, the latest of
        // them, with how many and since when; the last day's go through the misfire policy.
        let mut c = clock("*/5 * * * *", MisfirePolicy::Skip, "2026-11-25T10:00:00Z");
        let now = t("2026-11-28T10:01:00Z");
        let actions = c.poll(now);
        let Action::Skip(first, Reason::MissedMany { slots, since, by_seconds }) = &actions[0] else {
            panic!("{:?}", actions[0]);
        };
        // 10:05 on the 25th to 10:00 on the 27th, 12 an hour.
        assert_eq!((*slots, *since), (2 * 24 * 12, t("2026-11-25T10:05:00Z")));
        assert_eq!((first.at, *by_seconds), (t("2026-11-27T10:00:00Z"), 24 * 3600 + 60));
        assert_eq!(actions.len(), 1 + 24 * 12, "then each slot of the last day");
        assert!(actions[1..].iter().all(|a| matches!(a, Action::Skip(_, Reason::Missed { .. }))));
        assert!(matches!(&actions[1], Action::Skip(s, _) if s.at == t("2026-11-27T10:05:00Z")));
        // Every slot is in one record or another, once; the next poll starts after them.
        assert!(c.poll(now).is_empty());
        assert!(kinds(&actions).iter().filter(|k| k.contains("none was run")).count() == 1);
    }

    #[test]
    fn misfire_policies_after_downtime() {
        // Down from 09:55 to 10:26: slots 10:00, 10:05 ... 10:25; grace 15 minutes.
        let run = |policy| kinds(&clock("*/5 * * * *", policy, "2026-11-28T09:55:00Z").poll(t("2026-11-28T10:26:00Z")));
        assert_eq!(
            run(MisfirePolicy::RunOnce),
            vec![
                "skip 10:00 (missed by 1560 s while the server was down)",
                "skip 10:05 (missed by 1260 s while the server was down)",
                "skip 10:10 (missed by 960 s while the server was down)",
                "skip 10:15 (missed by 660 s while the server was down)",
                "skip 10:20 (missed by 360 s while the server was down)",
                "fire 10:25",
            ]
        );
        let all = run(MisfirePolicy::RunAll);
        assert_eq!(all.iter().filter(|k| k.starts_with("fire")).count(), 3, "{all:?}");
        let skip = run(MisfirePolicy::Skip);
        assert!(skip.iter().all(|k| k.starts_with("skip")), "{skip:?}");
    }

    #[test]
    fn holidays_are_skipped_with_their_reason() {
        let cal = Calendar::parse(&CalendarDraft {
            name: "H".into(),
            description: String::new(),
            holidays: vec![HolidayDraft { start: "2026-12-25".into(), end: None, reason: "Christmas".into() }],
        })
        .unwrap();
        let s = Schedule::parse(&ScheduleDraft {
            trigger_times: Some("08:00".into()),
            timezone: "UTC".into(),
            calendar: Some("H".into()),
            ..Default::default()
        })
        .unwrap();
        let mut c =
            ScheduleClock::new(s, Some(cal), MisfirePolicy::RunOnce, Duration::minutes(15), t("2026-12-24T12:00:00Z"));
        assert_eq!(
            c.next_wakeup(),
            Some(t("2026-12-25T08:00:00Z")),
            "a holiday slot still wakes the clock, to record the skip"
        );
        assert_eq!(kinds(&c.poll(t("2026-12-25T08:00:01Z"))), vec!["skip 08:00 (holiday: Christmas)"]);
        assert_eq!(kinds(&c.poll(t("2026-12-26T08:00:00Z"))), vec!["fire 08:00"]);
    }
}
