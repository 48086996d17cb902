//! The `run_output` table: stdout and stderr of each attempt, as chunks keyed by byte offset.

use super::schema::run_output;
use super::{ts, with_conn, DbConn, DbResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = run_output)]
pub struct OutputRow {
    pub id: i64,
    pub run_id: i64,
    pub attempt: i32,
    pub stream: String,
    pub byte_offset: i64,
    pub data: String,
    pub created_at: NaiveDateTime,
}

/// Stores a chunk; a chunk replayed at an offset already stored is ignored. Returns whether it was new.
pub fn append(
    conn: &mut DbConn,
    run_id: i64,
    attempt: i32,
    stream: &str,
    offset: i64,
    data: &str,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::insert_into(run_output::table)
        .values((
            run_output::run_id.eq(run_id),
            run_output::attempt.eq(attempt),
            run_output::stream.eq(stream),
            run_output::byte_offset.eq(offset),
            run_output::data.eq(data),
            run_output::created_at.eq(ts(now)),
        ))
        .on_conflict((run_output::run_id, run_output::stream, run_output::attempt, run_output::byte_offset))
        .do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Chunks of one stream of one attempt that end after `from`, in order, at most `limit` chunks.
pub fn read(
    conn: &mut DbConn,
    run_id: i64,
    attempt: i32,
    stream: &str,
    from: i64,
    limit: i64,
) -> DbResult<Vec<OutputRow>> {
    // A chunk that starts before `from` may still reach past it: start from the last chunk
    // that begins at or before `from`.
    let start: Option<i64> = with_conn!(conn, |c| run_output::table
        .filter(run_output::run_id.eq(run_id).and(run_output::stream.eq(stream)).and(run_output::attempt.eq(attempt)))
        .filter(run_output::byte_offset.le(from))
        .select(diesel::dsl::max(run_output::byte_offset))
        .first(c))?;
    Ok(with_conn!(conn, |c| run_output::table
        .filter(run_output::run_id.eq(run_id).and(run_output::stream.eq(stream)).and(run_output::attempt.eq(attempt)))
        .filter(run_output::byte_offset.ge(start.unwrap_or(0)))
        .order(run_output::byte_offset)
        .limit(limit)
        .select(OutputRow::as_select())
        .load(c))?)
}

/// Drops the chunks of a stream that end at or before `keep_from` (a byte offset), so at least
/// the bytes from `keep_from` on stay; returns the bytes dropped. Keeps the tail beyond the cap.
pub fn trim_to(conn: &mut DbConn, run_id: i64, attempt: i32, stream: &str, keep_from: i64) -> DbResult<i64> {
    if keep_from <= 0 {
        return Ok(0);
    }
    let before: Vec<(i64, i64, String)> = with_conn!(conn, |c| run_output::table
        .filter(run_output::run_id.eq(run_id).and(run_output::stream.eq(stream)).and(run_output::attempt.eq(attempt)))
        .select((run_output::id, run_output::byte_offset, run_output::data))
        .filter(run_output::byte_offset.lt(keep_from))
        .load::<(i64, i64, String)>(c))?;
    let mut dropped = 0i64;
    let mut ids = Vec::new();
    for (id, offset, data) in before {
        if offset + data.len() as i64 <= keep_from {
            ids.push(id);
            dropped += data.len() as i64;
        }
    }
    if !ids.is_empty() {
        with_conn!(conn, |c| diesel::delete(run_output::table.filter(run_output::id.eq_any(&ids))).execute(c))?;
    }
    Ok(dropped)
}
