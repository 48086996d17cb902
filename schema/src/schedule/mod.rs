//! Schedules: what the user typed, the validated form, and when it fires.
//!
//! Evaluation works on *nominal* local times (what the user wrote, in the schedule's timezone) and
//! only then maps each to an instant with the DST policy of the spec: a nominal time inside a
//! spring-forward gap fires at the first instant after the gap; a time that occurs twice fires once,
//! at its first occurrence; several slots that land on one instant fire once.

mod days;
mod eval;
mod timing;

pub use days::{DayKind, DayMask, DayRule, Nth, OrdinalDay};
pub use eval::{next_fire_after, preview, slots_after, DstNote, Slot, SlotIter};
pub use timing::{CronSpec, RunFrequency, Timing, TriggerTimes};

/// The instant a nominal local time falls at, under the DST policy (a gap moves it to the first
/// instant after the gap; a repeated hour takes its first occurrence).
pub fn resolve_local(tz: chrono_tz::Tz, local: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    eval::resolve(tz, local).0
}

use crate::error::{FieldError, FieldErrors};
use crate::names::CalendarName;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A schedule as typed by a user or found in an import document: exactly one of trigger times,
/// run frequency and cron; optional days; a timezone; an optional calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_times: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A day mask (`1111100`) or an ordinal day (`last friday`); absent means every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<String>,
    /// An IANA timezone name.
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
}

/// A validated schedule that is known to fire at least once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub timing: Timing,
    pub days: DayRule,
    pub timezone: Tz,
    pub calendar: Option<CalendarName>,
}

pub fn parse_timezone(raw: &str) -> Result<Tz, FieldError> {
    raw.trim().parse::<Tz>().map_err(|_| {
        FieldError::new(
            "timezone",
            "iana_timezone",
            format!("{raw:?} is not an IANA timezone name such as Europe/London"),
        )
    })
}

/// Parses a local time `HH:MM`.
pub fn parse_time(raw: &str) -> Result<chrono::NaiveTime, FieldError> {
    timing::parse_hhmm("time", raw)
}

fn nonblank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Schedule {
    /// Parses every field, collecting all errors, and rejects a schedule that can never fire.
    pub fn parse(draft: &ScheduleDraft) -> Result<Schedule, FieldErrors> {
        let mut errors = FieldErrors::new();
        let given = [
            nonblank(&draft.trigger_times).map(|t| TriggerTimes::parse(t).map(Timing::TriggerTimes)),
            nonblank(&draft.run_frequency).map(|t| RunFrequency::parse(t).map(Timing::RunFrequency)),
            nonblank(&draft.cron).map(|t| CronSpec::parse(t).map(|c| Timing::Cron(Box::new(c)))),
        ];
        let count = given.iter().filter(|g| g.is_some()).count();
        let timing = if count != 1 {
            errors.push(FieldError::new(
                "",
                "one_timing",
                format!("exactly one of trigger_times, run_frequency and cron must be set ({count} given)"),
            ));
            None
        } else {
            given.into_iter().flatten().next().and_then(|r| errors.take(r))
        };
        let days = errors.take(DayRule::parse(draft.days.as_deref().unwrap_or("")));
        let timezone = errors.take(parse_timezone(&draft.timezone));
        let calendar = match nonblank(&draft.calendar) {
            Some(c) => errors.take(CalendarName::parse(c).map_err(|e| FieldError { field: "calendar".into(), ..e })),
            None => None,
        };
        let (Some(timing), Some(days), Some(timezone)) = (timing, days, timezone) else {
            return Err(errors);
        };
        let schedule = Schedule { timing, days, timezone, calendar };
        if !errors.is_empty() {
            return Err(errors);
        }
        if schedule.can_never_fire() {
            return Err(FieldError::new("", "never_fires", "this schedule can never fire").into());
        }
        Ok(schedule)
    }

    pub fn to_draft(&self) -> ScheduleDraft {
        let (mut trigger_times, mut run_frequency, mut cron) = (None, None, None);
        match &self.timing {
            Timing::TriggerTimes(t) => trigger_times = Some(t.to_string()),
            Timing::RunFrequency(f) => run_frequency = Some(f.to_string()),
            Timing::Cron(c) => cron = Some(c.to_string()),
        }
        let days = self.days.to_string();
        ScheduleDraft {
            trigger_times,
            run_frequency,
            cron,
            days: (!days.is_empty()).then_some(days),
            timezone: self.timezone.name().to_string(),
            calendar: self.calendar.as_ref().map(ToString::to_string),
        }
    }

    /// Weekday and date patterns repeat every 28 years (within one century), so a schedule with no
    /// slot in 29 years from a fixed date has none at all. Holidays are not considered here.
    fn can_never_fire(&self) -> bool {
        let from = NaiveDate::from_ymd_opt(2001, 1, 1).map(|d| d.and_hms_opt(0, 0, 0));
        let Some(Some(from)) = from else { return true };
        let from: DateTime<Utc> = DateTime::from_naive_utc_and_offset(from, Utc);
        slots_after(self, None, from).next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(tt: Option<&str>, rf: Option<&str>, cron: Option<&str>, days: Option<&str>, tz: &str) -> ScheduleDraft {
        ScheduleDraft {
            trigger_times: tt.map(Into::into),
            run_frequency: rf.map(Into::into),
            cron: cron.map(Into::into),
            days: days.map(Into::into),
            timezone: tz.into(),
            calendar: None,
        }
    }

    fn rules(d: &ScheduleDraft) -> Vec<(String, String)> {
        Schedule::parse(d).unwrap_err().0.into_iter().map(|e| (e.field, e.rule)).collect()
    }

    #[test]
    fn exactly_one_timing() {
        assert_eq!(rules(&draft(None, None, None, None, "UTC")), vec![("".into(), "one_timing".into())]);
        assert_eq!(
            rules(&draft(Some("02:00"), None, Some("* * * * *"), None, "UTC")),
            vec![("".into(), "one_timing".into())]
        );
    }

    #[test]
    fn all_errors_at_once() {
        let got = rules(&draft(Some("25:00"), None, None, Some("1111"), "Mars/Olympus"));
        assert_eq!(
            got,
            vec![
                ("trigger_times".into(), "time_format".into()),
                ("days".into(), "day_mask".into()),
                ("timezone".into(), "iana_timezone".into()),
            ]
        );
    }

    #[test]
    fn never_firing_schedules_are_rejected() {
        assert_eq!(rules(&draft(None, None, Some("0 0 30 2 *"), None, "UTC")), vec![("".into(), "never_fires".into())]);
        assert_eq!(
            rules(&draft(Some("02:00"), None, None, Some("0000000"), "UTC")),
            vec![("days".into(), "never_fires".into())]
        );
        // The 1st of a month is never its last Friday.
        assert_eq!(
            rules(&draft(None, None, Some("0 0 1 * *"), Some("last friday"), "UTC")),
            vec![("".into(), "never_fires".into())]
        );
        // Leap day only: rare but real.
        assert!(Schedule::parse(&draft(None, None, Some("0 0 29 2 *"), None, "UTC")).is_ok());
    }

    #[test]
    fn draft_round_trip() {
        for d in [
            draft(Some("18:00,02:00"), None, None, Some("1111100"), "Europe/London"),
            draft(None, Some("22:00-02:00-30"), None, Some("last friday"), "America/New_York"),
            draft(None, None, Some("0 */5 * * * *"), None, "Asia/Kolkata"),
        ] {
            let s = Schedule::parse(&d).unwrap();
            assert_eq!(Schedule::parse(&s.to_draft()).unwrap(), s);
        }
        let normalised =
            Schedule::parse(&draft(Some("18:00, 02:00"), None, None, Some("first monday"), "UTC")).unwrap();
        assert_eq!(normalised.to_draft().trigger_times.as_deref(), Some("02:00,18:00"));
        assert_eq!(normalised.to_draft().days.as_deref(), Some("1st monday"));
    }
}
