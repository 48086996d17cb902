//! Holiday calendars, and the schedule preview that uses them.

use crate::backend::CalendarRecord;
use crate::backend::*;
use crate::definitions::{domain, ScheduleFields};
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, InputObject, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::calendar::{Calendar as ValidCalendar, CalendarDraft, HolidayDraft};
use baton_schema::ids::CalendarId;
use baton_schema::schedule::{preview, DstNote, Schedule, ScheduleDraft};
use chrono::{DateTime, Utc};

/// Holiday calendars.
#[async_trait::async_trait]
pub trait Calendars: Send + Sync {
    async fn calendars(&self, p: &Principal, instance: Option<&str>) -> BackendResult<Vec<CalendarRecord>>;
    async fn calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<Option<CalendarRecord>>;
    async fn save_calendar(&self, p: &Principal, instance: &str, draft: CalendarDraft)
        -> BackendResult<CalendarRecord>;
    async fn delete_calendar(&self, p: &Principal, instance: &str, name: &str) -> BackendResult<bool>;
}

/// A holiday: one date, or a range of dates, with its reason.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "HolidayInput")]
pub struct Holiday {
    /// YYYY-MM-DD
    pub start: String,
    /// YYYY-MM-DD, for a range.
    pub end: Option<String>,
    #[graphql(default)]
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct Calendar {
    pub id: CalendarId,
    pub instance: String,
    pub name: String,
    pub description: String,
    pub holidays: Vec<Holiday>,
    pub updated_at: DateTime<Utc>,
}

impl From<CalendarRecord> for Calendar {
    fn from(c: CalendarRecord) -> Self {
        Calendar {
            id: c.id,
            instance: c.instance,
            name: c.draft.name,
            description: c.draft.description,
            holidays: c
                .draft
                .holidays
                .into_iter()
                .map(|h| Holiday { start: h.start, end: h.end, reason: h.reason })
                .collect(),
            updated_at: c.updated_at,
        }
    }
}

#[derive(InputObject)]
pub struct CalendarInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    #[graphql(default)]
    pub holidays: Vec<Holiday>,
}

/// One upcoming slot of a schedule.
#[derive(SimpleObject)]
pub struct PreviewSlot {
    /// The day in the schedule's timezone the slot belongs to.
    pub run_date: String,
    /// The nominal local time, as written in the schedule.
    pub local_time: String,
    /// The instant it fires.
    pub utc: DateTime<Utc>,
    /// The local wall-clock time at that instant (differs from `localTime` in a DST gap).
    pub actual_local_time: String,
    /// The UTC offset at that instant, e.g. +01:00.
    pub utc_offset: String,
    /// SHIFTED (in a spring-forward gap) or REPEATED (in a fall-back hour), if DST touched it.
    pub dst: Option<String>,
    /// The holiday's reason when the slot is skipped for a holiday.
    pub holiday: Option<String>,
}

fn offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

#[derive(Default)]
pub struct CalendarQuery;

#[Object]
impl CalendarQuery {
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn calendars(&self, ctx: &Context<'_>, instance: Option<String>) -> ApiResult<Vec<Calendar>> {
        let list = domain::<dyn Calendars>(ctx).calendars(principal(ctx)?, instance.as_deref()).await?;
        Ok(list.into_iter().map(Calendar::from).collect())
    }

    /// The next `count` slots of a schedule after `after` (default now), with DST and holidays marked.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn schedule_preview(
        &self,
        ctx: &Context<'_>,
        schedule: ScheduleFields,
        after: Option<DateTime<Utc>>,
        #[graphql(default = 10)] count: i32,
        #[graphql(default_with = "\"default\".to_string()")] instance: String,
    ) -> ApiResult<Vec<PreviewSlot>> {
        if !(1..=500).contains(&count) {
            return Err(ApiError::invalid("count", "range", "must be between 1 and 500").into());
        }
        // A preview reads the instance's calendars: only for those who have it.
        if !principal(ctx)?.instances.allows(&instance) {
            return Err(ApiError::Forbidden(format!("no access to instance {instance}")).into());
        }
        let draft: ScheduleDraft = schedule.into();
        let parsed = Schedule::parse(&draft).map_err(|e| {
            let mut scoped = baton_schema::FieldErrors::new();
            scoped.extend_under("schedule", e);
            ApiError::from(scoped)
        })?;
        let calendar = match &parsed.calendar {
            Some(name) => {
                let rec = domain::<dyn Calendars>(ctx)
                    .calendar(principal(ctx)?, &instance, name.as_str())
                    .await?
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "schedule.calendar",
                            "unknown_calendar",
                            format!("no calendar {name} in {instance}"),
                        )
                    })?;
                Some(ValidCalendar::parse(&rec.draft).map_err(ApiError::from)?)
            }
            None => None,
        };
        let after = after.unwrap_or_else(Utc::now);
        let tz = parsed.timezone;
        Ok(preview(&parsed, calendar.as_ref(), after, count as usize)
            .into_iter()
            .map(|s| PreviewSlot {
                run_date: s.run_date.to_string(),
                local_time: s.local.format("%Y-%m-%d %H:%M:%S").to_string(),
                utc: s.at,
                actual_local_time: s.actual_local(tz).format("%Y-%m-%d %H:%M:%S").to_string(),
                utc_offset: offset(s.utc_offset_seconds),
                dst: s.dst.map(|d| match d {
                    DstNote::Shifted => "SHIFTED".to_string(),
                    DstNote::Repeated => "REPEATED".to_string(),
                }),
                holiday: s.holiday,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct CalendarMutation;

#[Object]
impl CalendarMutation {
    /// Creates or replaces a calendar (by name within the instance).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn save_calendar(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "\"default\".to_string()")] instance: String,
        input: CalendarInput,
    ) -> ApiResult<Calendar> {
        let draft = CalendarDraft {
            name: input.name,
            description: input.description,
            holidays: input
                .holidays
                .into_iter()
                .map(|h| HolidayDraft { start: h.start, end: h.end, reason: h.reason })
                .collect(),
        };
        Ok(domain::<dyn Calendars>(ctx).save_calendar(principal(ctx)?, &instance, draft).await?.into())
    }

    /// Refused while a schedule names the calendar.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_calendar(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "\"default\".to_string()")] instance: String,
        name: String,
    ) -> ApiResult<bool> {
        Ok(domain::<dyn Calendars>(ctx).delete_calendar(principal(ctx)?, &instance, &name).await?)
    }
}
