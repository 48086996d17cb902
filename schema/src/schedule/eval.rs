//! When a schedule fires: run dates, nominal slots, and their instants under the DST policy.

use super::{Schedule, Timing};
use crate::calendar::Calendar;
use chrono::{DateTime, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How far ahead evaluation looks before concluding a schedule has no further slot.
const HORIZON_DAYS: u64 = 366 * 30;

/// Why a slot's instant is not simply its nominal local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DstNote {
    /// The nominal time does not exist (spring forward): fires at the first instant after the gap.
    Shifted,
    /// The nominal time occurs twice (fall back): fires once, at the first occurrence.
    Repeated,
}

/// One occurrence of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The day in the schedule's timezone this slot belongs to (a window that crosses midnight
    /// keeps the date it opened on).
    pub run_date: NaiveDate,
    /// The nominal local time, as the user wrote it; shown in previews and as `${E:HHMM}`.
    pub local: NaiveDateTime,
    /// The instant it fires.
    pub at: DateTime<Utc>,
    /// The UTC offset in force at `at`, in seconds.
    pub utc_offset_seconds: i32,
    pub dst: Option<DstNote>,
    /// The calendar's reason when the run date is a holiday: the slot yields a Skipped run.
    pub holiday: Option<String>,
}

impl Slot {
    /// The slot's identity within its run date, part of a run's unique key.
    pub fn key(&self) -> String {
        self.local.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    /// The local wall-clock time at which it really fires (differs from `local` in a DST gap).
    pub fn actual_local(&self, tz: Tz) -> NaiveDateTime {
        self.at.with_timezone(&tz).naive_local()
    }
}

/// Maps a nominal local time to its instant under the DST policy.
pub(crate) fn resolve(tz: Tz, local: NaiveDateTime) -> (DateTime<Utc>, Option<DstNote>) {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), None),
        LocalResult::Ambiguous(first, _) => (first.with_timezone(&Utc), Some(DstNote::Repeated)),
        LocalResult::None => {
            // Walk back minute by minute to the last wall-clock minute before the gap; offsets change
            // on whole minutes, so the gap ends one minute after that minute's instant.
            let mut probe = local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(local);
            for _ in 0..(48 * 60) {
                probe -= Duration::minutes(1);
                if let Some(before) = tz.from_local_datetime(&probe).earliest() {
                    return (before.with_timezone(&Utc) + Duration::minutes(1), Some(DstNote::Shifted));
                }
            }
            // No timezone has a gap of two days; fall back to reading the time as UTC.
            (DateTime::from_naive_utc_and_offset(local, Utc), Some(DstNote::Shifted))
        }
    }
}

/// The slots of a schedule that fire strictly after `after`, in order, holidays included (marked).
pub struct SlotIter<'a> {
    schedule: &'a Schedule,
    calendar: Option<&'a Calendar>,
    after: DateTime<Utc>,
    /// Cron searches never need to start earlier than this (slots before it fire before `after`).
    floor: NaiveDateTime,
    next_date: NaiveDate,
    last_date: NaiveDate,
    run_date: Option<(NaiveDate, Option<String>)>,
    listed: std::vec::IntoIter<NaiveDateTime>,
    cron_cursor: Option<NaiveDateTime>,
    prev_at: Option<DateTime<Utc>>,
}

pub fn slots_after<'a>(schedule: &'a Schedule, calendar: Option<&'a Calendar>, after: DateTime<Utc>) -> SlotIter<'a> {
    let local_after = after.with_timezone(&schedule.timezone).naive_local();
    // A window that crosses midnight belongs to the previous run date.
    let start = local_after.date().pred_opt().unwrap_or(local_after.date());
    SlotIter {
        schedule,
        calendar,
        after,
        floor: local_after - Duration::hours(3),
        next_date: start,
        last_date: start.checked_add_days(Days::new(HORIZON_DAYS)).unwrap_or(start),
        run_date: None,
        listed: Vec::new().into_iter(),
        cron_cursor: None,
        prev_at: None,
    }
}

impl SlotIter<'_> {
    fn day_start(date: NaiveDate) -> NaiveDateTime {
        date.and_hms_opt(0, 0, 0).unwrap_or_default()
    }

    /// The next nominal slot of the current run date.
    fn next_nominal(&mut self) -> Option<NaiveDateTime> {
        let (date, _) = self.run_date.as_ref()?;
        match &self.schedule.timing {
            Timing::Cron(cron) => {
                let cursor = self.cron_cursor?;
                let found = cron.next_from(cursor).filter(|t| t.date() == *date);
                self.cron_cursor = found.map(|t| t + Duration::seconds(1));
                found
            }
            _ => self.listed.next(),
        }
    }

    /// Moves to the next run date that passes the day rule and has slots. False past the horizon.
    fn advance(&mut self) -> bool {
        let s = self.schedule;
        loop {
            let mut date = self.next_date;
            if date > self.last_date {
                self.run_date = None;
                return false;
            }
            if let Timing::Cron(cron) = &s.timing {
                let from = Self::day_start(date).max(self.floor);
                let Some(first) = cron.next_from(from) else {
                    self.run_date = None;
                    return false;
                };
                // Skip straight to the next day the expression matches.
                date = date.max(first.date());
                if date > self.last_date {
                    self.run_date = None;
                    return false;
                }
                self.cron_cursor = Some(if first.date() == date { first } else { Self::day_start(date) });
            }
            self.next_date = date.succ_opt().unwrap_or(date);
            if !s.days.matches(date, self.calendar) {
                continue;
            }
            self.listed = match &s.timing {
                Timing::TriggerTimes(t) => t.times().iter().map(|t| date.and_time(*t)).collect::<Vec<_>>().into_iter(),
                Timing::RunFrequency(f) => f.slots(date).into_iter(),
                Timing::Cron(_) => Vec::new().into_iter(),
            };
            let holiday = self.calendar.and_then(|c| c.holiday_on(date)).map(|h| h.reason.clone());
            self.run_date = Some((date, holiday));
            return true;
        }
    }
}

impl Iterator for SlotIter<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        loop {
            let Some(local) = self.next_nominal() else {
                if !self.advance() {
                    return None;
                }
                continue;
            };
            let tz = self.schedule.timezone;
            let (at, dst) = resolve(tz, local);
            // Slots that land on one instant (several in one DST gap) fire once: the first keeps it.
            if self.prev_at.is_some_and(|p| at <= p) {
                continue;
            }
            self.prev_at = Some(at);
            if at <= self.after {
                continue;
            }
            let (run_date, holiday) = self.run_date.clone()?;
            let utc_offset_seconds = tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc();
            return Some(Slot { run_date, local, at, utc_offset_seconds, dst, holiday });
        }
    }
}

/// The next instant strictly after `after` at which the schedule fires (holidays skipped).
pub fn next_fire_after(
    schedule: &Schedule,
    calendar: Option<&Calendar>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    slots_after(schedule, calendar, after).find(|s| s.holiday.is_none()).map(|s| s.at)
}

/// The next `count` slots after `after`, holiday slots included and marked.
pub fn preview(schedule: &Schedule, calendar: Option<&Calendar>, after: DateTime<Utc>, count: usize) -> Vec<Slot> {
    slots_after(schedule, calendar, after).take(count).collect()
}
