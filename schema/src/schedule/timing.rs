//! When in a run date a schedule fires: trigger times, run-frequency windows, or cron.

use crate::error::FieldError;
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Parses `HH:MM` (24-hour, two digits each) for the given field.
pub(crate) fn parse_hhmm(field: &str, raw: &str) -> Result<NaiveTime, FieldError> {
    let bad = || {
        FieldError::new(field, "time_format", format!("{raw:?} is not a local time in the form HH:MM (00:00-23:59)"))
    };
    let raw = raw.trim();
    let (h, m) = raw.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

fn hhmm(t: NaiveTime) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// `HH:MM[,HH:MM...]`: fixed local times, kept sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerTimes(Vec<NaiveTime>);

impl TriggerTimes {
    pub const FIELD: &'static str = "trigger_times";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.trim().is_empty() {
            return Err(FieldError::new(Self::FIELD, "required", "must list at least one time HH:MM"));
        }
        let mut times = raw.split(',').map(|p| parse_hhmm(Self::FIELD, p)).collect::<Result<Vec<_>, _>>()?;
        times.sort();
        times.dedup();
        Ok(Self(times))
    }

    pub fn times(&self) -> &[NaiveTime] {
        &self.0
    }
}

impl fmt::Display for TriggerTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|t| hhmm(*t)).collect();
        f.write_str(&parts.join(","))
    }
}

/// `START-END-INTERVAL`: every INTERVAL minutes from START to END (inclusive) local time. START
/// after END crosses midnight; START equal to END is a whole day (END excluded), so
/// `02:00-02:00-1440` fires once a day at 02:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunFrequency {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub interval_minutes: u32,
}

impl RunFrequency {
    pub const FIELD: &'static str = "run_frequency";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let parts: Vec<&str> = raw.trim().split('-').collect();
        let [start, end, interval] = parts.as_slice() else {
            return Err(FieldError::new(
                Self::FIELD,
                "frequency_format",
                format!("{raw:?} is not START-END-INTERVAL, e.g. 08:00-18:00-30"),
            ));
        };
        let start = parse_hhmm(Self::FIELD, start)?;
        let end = parse_hhmm(Self::FIELD, end)?;
        let interval_minutes: u32 = interval.trim().parse().map_err(|_| {
            FieldError::new(
                Self::FIELD,
                "interval_range",
                format!("interval {interval:?} must be a whole number of minutes, 1-1440"),
            )
        })?;
        if !(1..=1440).contains(&interval_minutes) {
            return Err(FieldError::new(
                Self::FIELD,
                "interval_range",
                format!("interval {interval_minutes} must be 1-1440 minutes"),
            ));
        }
        Ok(Self { start, end, interval_minutes })
    }

    /// The window's nominal local slots for one run date, in order.
    pub(crate) fn slots(&self, run_date: NaiveDate) -> Vec<NaiveDateTime> {
        let first = run_date.and_time(self.start);
        let (last, inclusive) = match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => (run_date.and_time(self.end), true),
            std::cmp::Ordering::Greater => (run_date.succ_opt().unwrap_or(run_date).and_time(self.end), true),
            std::cmp::Ordering::Equal => (first + Duration::days(1), false),
        };
        let step = Duration::minutes(i64::from(self.interval_minutes));
        let mut out = Vec::new();
        let mut t = first;
        while t < last || (inclusive && t == last) {
            out.push(t);
            t += step;
        }
        out
    }
}

impl fmt::Display for RunFrequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", hhmm(self.start), hhmm(self.end), self.interval_minutes)
    }
}

/// A 5- or 6-field (seconds first) cron expression with Vixie semantics: day of week 0 and 7 are
/// Sunday; when day of month and day of week are both restricted, either matches. Parsed and
/// evaluated by `croner`, on nominal local times (DST is resolved by the schedule, not here).
#[derive(Debug, Clone)]
pub struct CronSpec {
    source: String,
    /// Shared by every schedule with the same expression: a parsed expression takes kilobytes,
    /// and a hundred thousand tasks use a few hundred expressions.
    cron: Arc<Cron>,
}

/// Parsed expressions by source, while any schedule holds them.
fn interned(source: &str) -> Option<Arc<Cron>> {
    INTERNED.get_or_init(Default::default).lock().ok()?.get(source).and_then(Weak::upgrade)
}

fn intern(source: &str, cron: Cron) -> Arc<Cron> {
    let cron = Arc::new(cron);
    if let Ok(mut map) = INTERNED.get_or_init(Default::default).lock() {
        // Now and then, forget the expressions no schedule holds any more.
        if INSERTS.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        map.insert(source.to_string(), Arc::downgrade(&cron));
    }
    cron
}

static INTERNED: OnceLock<Mutex<HashMap<String, Weak<Cron>>>> = OnceLock::new();
static INSERTS: AtomicUsize = AtomicUsize::new(0);

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for CronSpec {}

impl CronSpec {
    pub const FIELD: &'static str = "cron";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let source = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = source.split(' ').count();
        if source.is_empty() || (!source.starts_with('@') && !(5..=6).contains(&fields)) {
            return Err(FieldError::new(
                Self::FIELD,
                "cron_fields",
                format!("{raw:?} must have 5 fields (minute hour day month weekday) or 6 (seconds first)"),
            ));
        }
        if source.eq_ignore_ascii_case("@reboot") {
            return Err(FieldError::new(Self::FIELD, "cron_syntax", "@reboot has no fire times"));
        }
        if let Some(cron) = interned(&source) {
            return Ok(Self { source, cron });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(&source)
            .map_err(|e| FieldError::new(Self::FIELD, "cron_syntax", format!("{raw:?}: {e}")))?;
        let cron = intern(&source, cron);
        Ok(Self { source, cron })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first nominal local time at or after `from` that the expression matches.
    pub(crate) fn next_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&from, true).ok()
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Exactly one way of choosing the times within a run date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    TriggerTimes(TriggerTimes),
    RunFrequency(RunFrequency),
    Cron(Box<CronSpec>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_times_sorted_and_checked() {
        assert_eq!(TriggerTimes::parse("18:30, 02:00,18:30").unwrap().to_string(), "02:00,18:30");
        for bad in ["", "24:00", "7:00", "07:60", "07-00", "07:00,"] {
            let e = TriggerTimes::parse(bad).unwrap_err();
            assert_eq!(e.field, "trigger_times", "{bad}");
        }
    }

    #[test]
    fn run_frequency_windows() {
        let d: NaiveDate = "2026-06-01".parse().unwrap();
        let f = RunFrequency::parse("08:00-10:00-30").unwrap();
        assert_eq!(f.slots(d).len(), 5);
        let daily = RunFrequency::parse("02:00-02:00-1440").unwrap();
        assert_eq!(daily.slots(d), vec![d.and_hms_opt(2, 0, 0).unwrap()]);
        let hourly_all_day = RunFrequency::parse("00:00-00:00-60").unwrap();
        assert_eq!(hourly_all_day.slots(d).len(), 24);
        let night = RunFrequency::parse("22:00-02:00-60").unwrap();
        let slots = night.slots(d);
        assert_eq!(slots.len(), 5);
        assert_eq!(slots[4], "2026-06-02T02:00:00".parse::<NaiveDateTime>().unwrap());
        assert_eq!(RunFrequency::parse("08:00-10:00-0").unwrap_err().rule, "interval_range");
        assert_eq!(RunFrequency::parse("08:00-10:00-1441").unwrap_err().rule, "interval_range");
        assert_eq!(RunFrequency::parse("08:00-10:00").unwrap_err().rule, "frequency_format");
        assert_eq!(night.to_string(), "22:00-02:00-60");
    }

    #[test]
    fn cron_fields_and_syntax() {
        assert!(CronSpec::parse("*/5 * * * *").is_ok());
        // Schedules with the same expression share one parsed form.
        let (a, b) = (CronSpec::parse("7 3 * * 1-5").unwrap(), CronSpec::parse("7  3 * * 1-5").unwrap());
        assert!(Arc::ptr_eq(&a.cron, &b.cron));
        assert!(!Arc::ptr_eq(&a.cron, &CronSpec::parse("8 3 * * 1-5").unwrap().cron));
        assert!(CronSpec::parse("30 */5 * * * *").is_ok());
        assert_eq!(CronSpec::parse("* * * *").unwrap_err().rule, "cron_fields");
        assert_eq!(CronSpec::parse("* * * * * * *").unwrap_err().rule, "cron_fields");
        assert_eq!(CronSpec::parse("61 * * * *").unwrap_err().rule, "cron_syntax");
        assert_eq!(CronSpec::parse("@reboot").unwrap_err().rule, "cron_syntax");
    }

    #[test]
    fn cron_is_vixie() {
        let t = |s: &str| s.parse::<NaiveDateTime>().unwrap();
        // Day of week 7 is Sunday.
        let sun = CronSpec::parse("0 9 * * 7").unwrap();
        assert_eq!(sun.next_from(t("2026-11-28T00:00:00")), Some(t("2026-11-29T09:00:00")));
        // Day of month OR day of week when both are restricted: the 1st, or any Monday.
        let either = CronSpec::parse("0 0 1 * 1").unwrap();
        assert_eq!(either.next_from(t("2026-11-28T00:00:00")), Some(t("2026-11-30T00:00:00")));
        assert_eq!(either.next_from(t("2026-11-30T00:00:01")), Some(t("2026-12-01T00:00:00")));
    }
}
