//! Holiday calendars: named sets of dates and date ranges on which scheduled work is skipped.

use crate::error::{FieldError, FieldErrors};
use crate::names::CalendarName;
use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A holiday: one date or an inclusive range of dates, with the reason shown on skipped runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub reason: String,
}

/// A validated calendar. Holidays are kept sorted by start date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub name: CalendarName,
    pub description: String,
    pub holidays: Vec<Holiday>,
}

/// A calendar as typed by a user or found in an import document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub holidays: Vec<HolidayDraft>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayDraft {
    /// `YYYY-MM-DD`
    pub start: String,
    /// `YYYY-MM-DD`; absent for a single day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default)]
    pub reason: String,
}

fn parse_date(field: &str, raw: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "date", format!("{raw:?} is not a date in the form YYYY-MM-DD")))
}

impl Calendar {
    pub fn parse(draft: &CalendarDraft) -> Result<Calendar, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = errors.take(CalendarName::parse(&draft.name).map_err(|e| FieldError { field: "name".into(), ..e }));
        let mut holidays = Vec::with_capacity(draft.holidays.len());
        for (i, h) in draft.holidays.iter().enumerate() {
            let at = format!("holidays[{i}]");
            let start = errors.take(parse_date(&format!("{at}.start"), &h.start));
            let end = match &h.end {
                Some(e) => errors.take(parse_date(&format!("{at}.end"), e)),
                None => start,
            };
            if h.reason.chars().count() > 256 {
                errors.push(FieldError::new(format!("{at}.reason"), "max_length", "must be at most 256 characters"));
            }
            if let (Some(start), Some(end)) = (start, end) {
                if end < start {
                    errors.push(FieldError::new(format!("{at}.end"), "range_order", "must not be before start"));
                } else {
                    holidays.push(Holiday { start, end, reason: h.reason.trim().to_string() });
                }
            }
        }
        holidays.sort_by_key(|h| (h.start, h.end));
        let description = draft.description.clone();
        errors.into_result(|| Calendar { name: name.expect("checked"), description, holidays })
    }

    pub fn to_draft(&self) -> CalendarDraft {
        CalendarDraft {
            name: self.name.to_string(),
            description: self.description.clone(),
            holidays: self
                .holidays
                .iter()
                .map(|h| HolidayDraft {
                    start: h.start.to_string(),
                    end: (h.end != h.start).then(|| h.end.to_string()),
                    reason: h.reason.clone(),
                })
                .collect(),
        }
    }

    /// The holiday covering `date`, if any.
    pub fn holiday_on(&self, date: NaiveDate) -> Option<&Holiday> {
        // Ranges may overlap, so a binary search on start alone is not enough; calendars are small.
        self.holidays.iter().take_while(|h| h.start <= date).find(|h| date <= h.end)
    }

    /// A business day is a Monday-to-Friday that is not a holiday of this calendar.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        is_weekday(date) && self.holiday_on(date).is_none()
    }
}

pub(crate) fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_days() {
        let cal = Calendar::parse(&CalendarDraft {
            name: "US_HOLIDAYS".into(),
            description: String::new(),
            holidays: vec![
                HolidayDraft { start: "2026-12-24".into(), end: Some("2026-12-26".into()), reason: "Christmas".into() },
                HolidayDraft { start: "2026-07-03".into(), end: None, reason: "Independence Day (observed)".into() },
            ],
        })
        .unwrap();
        assert_eq!(cal.holidays[0].reason, "Independence Day (observed)");
        assert!(cal.holiday_on(d("2026-12-23")).is_none());
        assert_eq!(cal.holiday_on(d("2026-12-25")).unwrap().reason, "Christmas");
        assert!(cal.holiday_on(d("2026-12-26")).is_some());
        assert!(cal.holiday_on(d("2026-12-27")).is_none());
        assert!(!cal.is_business_day(d("2026-07-03")));
        assert!(!cal.is_business_day(d("2026-07-04")), "a Saturday");
        assert!(cal.is_business_day(d("2026-07-06")));
        assert_eq!(Calendar::parse(&cal.to_draft()).unwrap(), cal);
    }

    #[test]
    fn errors_name_the_holiday() {
        let err = Calendar::parse(&CalendarDraft {
            name: "bad name".into(),
            description: String::new(),
            holidays: vec![
                HolidayDraft { start: "2026-02-30".into(), end: None, reason: String::new() },
                HolidayDraft { start: "2026-03-05".into(), end: Some("2026-03-01".into()), reason: String::new() },
            ],
        })
        .unwrap_err();
        let got: Vec<_> = err.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(got, vec![("name", "charset"), ("holidays[0].start", "date"), ("holidays[1].end", "range_order")]);
    }
}
