//! Which run dates a schedule may fire on: a Monday-first day mask or an ordinal day of the month.

use crate::calendar::{is_weekday, Calendar};
use crate::error::FieldError;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use std::fmt;

const FIELD: &str = "days";

/// Seven `0`/`1` characters, Monday first: `1111100` is weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMask([bool; 7]);

impl DayMask {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        if raw.len() != 7 || !raw.bytes().all(|b| b == b'0' || b == b'1') {
            return Err(FieldError::new(
                FIELD,
                "day_mask",
                format!("{raw:?} must be 7 characters of 0 or 1, Monday first (1111100 = weekdays)"),
            ));
        }
        let mut mask = [false; 7];
        for (i, b) in raw.bytes().enumerate() {
            mask[i] = b == b'1';
        }
        if !mask.contains(&true) {
            return Err(FieldError::new(FIELD, "never_fires", "a day mask of 0000000 never fires"));
        }
        Ok(Self(mask))
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.0[date.weekday().num_days_from_monday() as usize]
    }
}

impl fmt::Display for DayMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for on in self.0 {
            f.write_str(if on { "1" } else { "0" })?;
        }
        Ok(())
    }
}

/// Which occurrence in the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nth {
    /// 1-based from the start of the month.
    From(u8),
    Last,
}

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    Weekday(Weekday),
    /// Any calendar day.
    Day,
    /// Monday to Friday, not a holiday of the schedule's calendar.
    BusinessDay,
}

/// `first monday`, `last friday`, `2nd tuesday`, `last day`, `2nd business day` of every month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrdinalDay {
    pub nth: Nth,
    pub kind: DayKind,
}

fn parse_nth(word: &str) -> Option<Nth> {
    let n = match word {
        "last" => return Some(Nth::Last),
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        w => {
            let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let suffix = &w[digits.len()..];
            let n: u8 = digits.parse().ok()?;
            let expected = match (n % 100, n % 10) {
                (11..=13, _) => "th",
                (_, 1) => "st",
                (_, 2) => "nd",
                (_, 3) => "rd",
                _ => "th",
            };
            if suffix != expected {
                return None;
            }
            n
        }
    };
    Some(Nth::From(n))
}

fn parse_weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

impl OrdinalDay {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let lower = raw.trim().to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let bad = |why: &str| {
            FieldError::new(
                FIELD,
                "ordinal_day",
                format!("{raw:?}: {why}; expected e.g. 'first monday', 'last friday', '2nd tuesday', 'last day', '2nd business day'"),
            )
        };
        let (nth_word, kind) = match words.as_slice() {
            [n, "day"] => (*n, DayKind::Day),
            [n, "business", "day"] => (*n, DayKind::BusinessDay),
            [n, w] => (*n, DayKind::Weekday(parse_weekday(w).ok_or_else(|| bad("unknown day name"))?)),
            _ => return Err(bad("not an ordinal day")),
        };
        let nth = parse_nth(nth_word).ok_or_else(|| bad("unknown ordinal"))?;
        let max = match kind {
            DayKind::Weekday(_) => 5,
            DayKind::Day => 31,
            DayKind::BusinessDay => 23,
        };
        if let Nth::From(n) = nth {
            if n == 0 || n > max {
                return Err(bad(&format!("the ordinal must be 1-{max} for this kind of day")));
            }
        }
        Ok(Self { nth, kind })
    }

    /// Whether `date` is this ordinal day of its month.
    pub fn matches(&self, date: NaiveDate, calendar: Option<&Calendar>) -> bool {
        let counts = |d: NaiveDate| match self.kind {
            DayKind::Weekday(w) => d.weekday() == w,
            DayKind::Day => true,
            DayKind::BusinessDay => calendar.map_or_else(|| is_weekday(d), |c| c.is_business_day(d)),
        };
        if !counts(date) {
            return false;
        }
        match self.nth {
            Nth::From(n) => {
                let first = date.with_day(1).unwrap_or(date);
                let before = first.iter_days().take_while(|d| *d < date).filter(|d| counts(*d)).count();
                before + 1 == usize::from(n)
            }
            Nth::Last => {
                let mut d = date;
                while let Some(next) = d.checked_add_days(Days::new(1)) {
                    if next.month() != date.month() {
                        return true;
                    }
                    if counts(next) {
                        return false;
                    }
                    d = next;
                }
                true
            }
        }
    }
}

impl fmt::Display for OrdinalDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nth {
            Nth::Last => f.write_str("last")?,
            Nth::From(n) => {
                let suffix = match (n % 100, n % 10) {
                    (11..=13, _) => "th",
                    (_, 1) => "st",
                    (_, 2) => "nd",
                    (_, 3) => "rd",
                    _ => "th",
                };
                write!(f, "{n}{suffix}")?
            }
        }
        match self.kind {
            DayKind::Day => f.write_str(" day"),
            DayKind::BusinessDay => f.write_str(" business day"),
            DayKind::Weekday(w) => {
                let name = match w {
                    Weekday::Mon => "monday",
                    Weekday::Tue => "tuesday",
                    Weekday::Wed => "wednesday",
                    Weekday::Thu => "thursday",
                    Weekday::Fri => "friday",
                    Weekday::Sat => "saturday",
                    Weekday::Sun => "sunday",
                };
                write!(f, " {name}")
            }
        }
    }
}

/// The run-date filter of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DayRule {
    #[default]
    Every,
    Mask(DayMask),
    Ordinal(OrdinalDay),
}

impl DayRule {
    /// A mask when the text is 7 binary digits, an ordinal day otherwise; empty means every day.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let t = raw.trim();
        if t.is_empty() {
            Ok(Self::Every)
        } else if t.bytes().all(|b| b.is_ascii_digit()) {
            DayMask::parse(t).map(Self::Mask)
        } else {
            OrdinalDay::parse(t).map(Self::Ordinal)
        }
    }

    pub fn matches(&self, date: NaiveDate, calendar: Option<&Calendar>) -> bool {
        match self {
            Self::Every => true,
            Self::Mask(m) => m.contains(date),
            Self::Ordinal(o) => o.matches(date, calendar),
        }
    }
}

impl fmt::Display for DayRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every => Ok(()),
            Self::Mask(m) => m.fmt(f),
            Self::Ordinal(o) => o.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Calendar, CalendarDraft, HolidayDraft};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn masks() {
        let weekdays = DayMask::parse("1111100").unwrap();
        assert!(weekdays.contains(d("2026-11-27")), "Friday");
        assert!(!weekdays.contains(d("2026-11-28")), "Saturday");
        assert_eq!(DayMask::parse("0000000").unwrap_err().rule, "never_fires");
        assert_eq!(DayMask::parse("111110").unwrap_err().rule, "day_mask");
        assert_eq!(DayMask::parse("1111102").unwrap_err().rule, "day_mask");
        assert_eq!(DayRule::parse("11").unwrap_err().rule, "day_mask");
    }

    #[test]
    fn ordinals_parse_and_print() {
        for (raw, canon) in [
            ("first monday", "1st monday"),
            ("Last Friday", "last friday"),
            ("2nd tuesday", "2nd tuesday"),
            ("last day", "last day"),
            ("first day", "1st day"),
            ("2nd business day", "2nd business day"),
            ("23rd day", "23rd day"),
        ] {
            assert_eq!(OrdinalDay::parse(raw).unwrap().to_string(), canon);
        }
        for bad in ["6th monday", "0th day", "2st monday", "last moonday", "monday", "32nd day", "11st day"] {
            let e = OrdinalDay::parse(bad).unwrap_err();
            assert_eq!((e.field.as_str(), e.rule.as_str()), ("days", "ordinal_day"), "{bad}");
        }
    }

    #[test]
    fn ordinal_matching_at_month_ends() {
        let last_fri = OrdinalDay::parse("last friday").unwrap();
        assert!(last_fri.matches(d("2026-01-30"), None));
        assert!(!last_fri.matches(d("2026-01-23"), None));
        assert!(last_fri.matches(d("2026-02-27"), None));
        let last_day = OrdinalDay::parse("last day").unwrap();
        assert!(last_day.matches(d("2028-02-29"), None), "leap year");
        assert!(!last_day.matches(d("2028-02-28"), None));
        assert!(last_day.matches(d("2027-02-28"), None));
        assert!(last_day.matches(d("2026-04-30"), None));
        let second_tue = OrdinalDay::parse("2nd tuesday").unwrap();
        assert!(second_tue.matches(d("2026-12-08"), None));
        assert!(!second_tue.matches(d("2026-12-01"), None));
    }

    #[test]
    fn business_days_skip_holidays() {
        let cal = Calendar::parse(&CalendarDraft {
            name: "C".into(),
            description: String::new(),
            holidays: vec![HolidayDraft { start: "2026-06-01".into(), end: None, reason: "x".into() }],
        })
        .unwrap();
        let second = OrdinalDay::parse("2nd business day").unwrap();
        // June 2026 starts on a Monday (a holiday here): business days are 2nd, 3rd, ...
        assert!(second.matches(d("2026-06-03"), Some(&cal)));
        assert!(second.matches(d("2026-06-02"), None));
        let last = OrdinalDay::parse("last business day").unwrap();
        assert!(last.matches(d("2026-10-30"), None), "Friday 30th; 31st is a Saturday");
    }
}
