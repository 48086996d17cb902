//! The `calendars` and `calendar_dates` tables: holiday calendars and their dates or ranges.

use super::schema::{calendar_dates, calendars};
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::calendar::{Calendar, CalendarDraft, HolidayDraft};
use baton_schema::ids::{CalendarId, InstanceId};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = calendars)]
pub struct CalendarRow {
    pub id: CalendarId,
    pub instance_id: InstanceId,
    pub name: String,
    pub description: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = calendar_dates)]
pub struct CalendarDateRow {
    pub id: i64,
    pub calendar_id: CalendarId,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub reason: String,
}

/// Creates or replaces (by name within the instance) a calendar and all its dates.
pub fn save(conn: &mut DbConn, instance_id: InstanceId, cal: &Calendar, now: DateTime<Utc>) -> DbResult<CalendarId> {
    with_conn!(conn, |c| c.transaction::<_, super::DbError, _>(|c| {
        let existing: Option<CalendarId> = calendars::table
            .filter(calendars::instance_id.eq(instance_id).and(calendars::name.eq(cal.name.as_str())))
            .select(calendars::id)
            .first(c)
            .optional()?;
        let id = match existing {
            Some(id) => {
                diesel::update(calendars::table.find(id))
                    .set((calendars::description.eq(&cal.description), calendars::updated_at.eq(ts(now))))
                    .execute(c)?;
                diesel::delete(calendar_dates::table.filter(calendar_dates::calendar_id.eq(id))).execute(c)?;
                id
            }
            None => diesel::insert_into(calendars::table)
                .values((
                    calendars::instance_id.eq(instance_id),
                    calendars::name.eq(cal.name.as_str()),
                    calendars::description.eq(&cal.description),
                    calendars::created_at.eq(ts(now)),
                    calendars::updated_at.eq(ts(now)),
                ))
                .returning(calendars::id)
                .get_result(c)?,
        };
        let rows: Vec<_> = cal
            .holidays
            .iter()
            .map(|h| {
                (
                    calendar_dates::calendar_id.eq(id),
                    calendar_dates::start_date.eq(h.start),
                    calendar_dates::end_date.eq(h.end),
                    calendar_dates::reason.eq(&h.reason),
                )
            })
            .collect();
        for chunk in rows.chunks(500) {
            diesel::insert_into(calendar_dates::table).values(chunk).execute(c)?;
        }
        Ok(id)
    }))
}

pub fn list(conn: &mut DbConn, instance_id: Option<InstanceId>) -> DbResult<Vec<CalendarRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = calendars::table.select(CalendarRow::as_select()).order(calendars::name).into_boxed();
        if let Some(i) = instance_id {
            q = q.filter(calendars::instance_id.eq(i));
        }
        q.load(c)
    })?)
}

pub fn by_name(conn: &mut DbConn, instance_id: InstanceId, name: &str) -> DbResult<Option<CalendarRow>> {
    Ok(with_conn!(conn, |c| calendars::table
        .filter(calendars::instance_id.eq(instance_id).and(calendars::name.eq(name)))
        .select(CalendarRow::as_select())
        .first(c)
        .optional())?)
}

pub fn dates(conn: &mut DbConn, calendar_id: CalendarId) -> DbResult<Vec<CalendarDateRow>> {
    Ok(with_conn!(conn, |c| calendar_dates::table
        .filter(calendar_dates::calendar_id.eq(calendar_id))
        .order((calendar_dates::start_date, calendar_dates::id))
        .select(CalendarDateRow::as_select())
        .load(c))?)
}

/// The calendar as a draft (what the API and the export show).
pub fn draft(conn: &mut DbConn, row: &CalendarRow) -> DbResult<CalendarDraft> {
    let holidays = dates(conn, row.id)?
        .into_iter()
        .map(|d| HolidayDraft {
            start: d.start_date.to_string(),
            end: (d.end_date != d.start_date).then(|| d.end_date.to_string()),
            reason: d.reason,
        })
        .collect();
    Ok(CalendarDraft { name: row.name.clone(), description: row.description.clone(), holidays })
}

/// The validated calendar, for schedule evaluation.
pub fn load(conn: &mut DbConn, instance_id: InstanceId, name: &str) -> DbResult<Option<Calendar>> {
    let Some(row) = by_name(conn, instance_id, name)? else { return Ok(None) };
    let d = draft(conn, &row)?;
    Calendar::parse(&d).map(Some).map_err(|e| super::DbError::Corrupt(format!("calendar {name}: {e}")))
}

pub fn delete(conn: &mut DbConn, id: CalendarId) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(calendars::table.find(id)).execute(c))?)
}
