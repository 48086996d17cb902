//! The `alert_deliveries` and `alert_attempts` tables: the alert queue and its delivery log.

use super::schema::{alert_attempts, alert_deliveries};
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::ids::{AlertDeliveryId, RunId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_deliveries)]
pub struct DeliveryRow {
    pub id: AlertDeliveryId,
    /// One alert per key: a rule firing twice for the same thing is sent once.
    pub dedupe_key: String,
    pub integration: String,
    /// `task:ID`, `group:ID` or `test`.
    pub source: String,
    pub run_id: Option<RunId>,
    pub trigger_on: String,
    pub subject: String,
    pub message: String,
    /// JSON facts the channels put in their payloads (task, status, exit code...).
    pub details: String,
    /// pending, sent or failed (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: AlertDeliveryId,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub ok: bool,
    pub detail: String,
}

/// A delivery to queue.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = alert_deliveries)]
pub struct NewDelivery {
    pub dedupe_key: String,
    pub integration: String,
    pub source: String,
    pub run_id: Option<RunId>,
    pub trigger_on: String,
    pub subject: String,
    pub message: String,
    pub details: String,
}

/// Queues a delivery unless one with the same key exists; the new id, or `None` when it was a
/// duplicate.
pub fn enqueue(conn: &mut DbConn, d: &NewDelivery, now: DateTime<Utc>) -> DbResult<Option<AlertDeliveryId>> {
    let id: Option<AlertDeliveryId> = with_conn!(conn, |c| diesel::insert_into(alert_deliveries::table)
        .values((
            d,
            alert_deliveries::status.eq("pending"),
            alert_deliveries::attempts.eq(0),
            alert_deliveries::next_attempt_at.eq(Some(ts(now))),
            alert_deliveries::created_at.eq(ts(now)),
            alert_deliveries::updated_at.eq(ts(now)),
        ))
        .on_conflict(alert_deliveries::dedupe_key)
        .do_nothing()
        .returning(alert_deliveries::id)
        .get_result(c)
        .optional())?;
    Ok(id)
}

/// Pending deliveries whose time has come, oldest first.
pub fn due(conn: &mut DbConn, now: DateTime<Utc>, limit: i64) -> DbResult<Vec<DeliveryRow>> {
    Ok(with_conn!(conn, |c| alert_deliveries::table
        .filter(alert_deliveries::status.eq("pending"))
        .filter(alert_deliveries::next_attempt_at.le(ts(now)))
        .order(alert_deliveries::next_attempt_at)
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(c))?)
}

/// When the next pending delivery is due.
pub fn next_due(conn: &mut DbConn) -> DbResult<Option<NaiveDateTime>> {
    Ok(with_conn!(conn, |c| alert_deliveries::table
        .filter(alert_deliveries::status.eq("pending"))
        .select(diesel::dsl::min(alert_deliveries::next_attempt_at))
        .first::<Option<NaiveDateTime>>(c))?)
}

/// Records one attempt and the delivery's new state (`next` = when to try again, if at all).
pub fn record_attempt(
    conn: &mut DbConn,
    id: AlertDeliveryId,
    attempt: i32,
    result: Result<String, String>,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let ok = result.is_ok();
    let (detail, last_error) = match result {
        Ok(d) => (d, None),
        Err(e) => (e.clone(), Some(e)),
    };
    let status = if ok {
        "sent"
    } else if next.is_some() {
        "pending"
    } else {
        "failed"
    };
    with_conn!(conn, |c| {
        diesel::insert_into(alert_attempts::table)
            .values((
                alert_attempts::delivery_id.eq(id),
                alert_attempts::attempt.eq(attempt),
                alert_attempts::at.eq(ts(now)),
                alert_attempts::ok.eq(ok),
                alert_attempts::detail.eq(&detail),
            ))
            .execute(c)?;
        diesel::update(alert_deliveries::table.find(id))
            .set((
                alert_deliveries::status.eq(status),
                alert_deliveries::attempts.eq(attempt),
                alert_deliveries::next_attempt_at.eq(next.map(ts)),
                alert_deliveries::last_error.eq(last_error),
                alert_deliveries::updated_at.eq(ts(now)),
            ))
            .execute(c)
    })?;
    Ok(())
}

/// The delivery log, newest first.
pub fn list(conn: &mut DbConn, integration: Option<&str>, limit: i64) -> DbResult<Vec<DeliveryRow>> {
    Ok(with_conn!(conn, |c| {
        let mut q = alert_deliveries::table
            .select(DeliveryRow::as_select())
            .order(alert_deliveries::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(i) = integration {
            q = q.filter(alert_deliveries::integration.eq(i.to_string()));
        }
        q.load(c)
    })?)
}

pub fn get(conn: &mut DbConn, id: AlertDeliveryId) -> DbResult<Option<DeliveryRow>> {
    Ok(with_conn!(conn, |c| alert_deliveries::table.find(id).select(DeliveryRow::as_select()).first(c).optional())?)
}

/// The attempts of these deliveries, in order.
pub fn attempts_of(conn: &mut DbConn, ids: &[AlertDeliveryId]) -> DbResult<Vec<AttemptRow>> {
    super::in_chunks(ids, |ids| {
        Ok(with_conn!(conn, |c| alert_attempts::table
            .filter(alert_attempts::delivery_id.eq_any(ids))
            .order((alert_attempts::delivery_id, alert_attempts::attempt))
            .select(AttemptRow::as_select())
            .load(c))?)
    })
}

/// Whether a delivery with this key exists (deadline alerts fire once).
pub fn exists(conn: &mut DbConn, key: &str) -> DbResult<bool> {
    let n: i64 = with_conn!(conn, |c| alert_deliveries::table
        .filter(alert_deliveries::dedupe_key.eq(key))
        .count()
        .get_result(c))?;
    Ok(n > 0)
}
