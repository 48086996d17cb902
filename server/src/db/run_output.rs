//! The `run_output` table: stdout and stderr of each attempt, as chunks keyed by byte offset.

use super::schema::run_output;
use super::{ts, with_conn, DbConn, DbResult};
use baton_schema::agent::v1::Stream;
use baton_schema::ids::RunId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = run_output)]
pub struct OutputRow {
    pub id: i64,
    pub run_id: RunId,
    pub attempt: i32,
    #[diesel(deserialize_as = String)]
    pub stream: Stream,
    pub byte_offset: i64,
    pub data: String,
    pub created_at: NaiveDateTime,
    /// The server that stored it.
    pub server: Option<String>,
}

/// A chunk to store: `data` at byte `offset` of one stream of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub run_id: RunId,
    pub attempt: i32,
    pub stream: Stream,
    pub offset: i64,
    pub data: &'a str,
}

/// Stores a chunk; a chunk replayed at an offset already stored is ignored. Returns whether it was new.
pub fn append(conn: &mut DbConn, chunk: Chunk<'_>, now: DateTime<Utc>, server: &str) -> DbResult<bool> {
    let n = with_conn!(conn, |c| diesel::insert_into(run_output::table)
        .values((
            run_output::run_id.eq(chunk.run_id),
            run_output::attempt.eq(chunk.attempt),
            run_output::stream.eq(chunk.stream.as_str()),
            run_output::byte_offset.eq(chunk.offset),
            run_output::data.eq(chunk.data),
            run_output::created_at.eq(ts(now)),
            run_output::server.eq(Some(server)),
        ))
        .on_conflict((run_output::run_id, run_output::stream, run_output::attempt, run_output::byte_offset))
        .do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Chunks of one stream of one attempt that end after `from`, in order, at most `limit` chunks.
pub fn read(
    conn: &mut DbConn,
    run_id: RunId,
    attempt: i32,
    stream: Stream,
    from: i64,
    limit: i64,
) -> DbResult<Vec<OutputRow>> {
    // A chunk that starts before `from` may still reach past it: start from the last chunk
    // that begins at or before `from`.
    let start: Option<i64> = with_conn!(conn, |c| run_output::table
        .filter(
            run_output::run_id
                .eq(run_id)
                .and(run_output::stream.eq(stream.as_str()))
                .and(run_output::attempt.eq(attempt))
        )
        .filter(run_output::byte_offset.le(from))
        .select(diesel::dsl::max(run_output::byte_offset))
        .first(c))?;
    Ok(with_conn!(conn, |c| run_output::table
        .filter(
            run_output::run_id
                .eq(run_id)
                .and(run_output::stream.eq(stream.as_str()))
                .and(run_output::attempt.eq(attempt))
        )
        .filter(run_output::byte_offset.ge(start.unwrap_or(0)))
        .order(run_output::byte_offset)
        .limit(limit)
        .select(OutputRow::as_select())
        .load(c))?)
}

/// Drops the chunks of a stream that end at or before `keep_from` (a byte offset), so at least
/// the bytes from `keep_from` on stay; returns the bytes dropped. Keeps the tail beyond the cap.
pub fn trim_to(conn: &mut DbConn, run_id: RunId, attempt: i32, stream: Stream, keep_from: i64) -> DbResult<i64> {
    if keep_from <= 0 {
        return Ok(0);
    }
    let before: Vec<(i64, i64, String)> = with_conn!(conn, |c| run_output::table
        .filter(
            run_output::run_id
                .eq(run_id)
                .and(run_output::stream.eq(stream.as_str()))
                .and(run_output::attempt.eq(attempt))
        )
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

/// The newest chunk's id (where a server starts following the others' output).
pub fn last_id(conn: &mut DbConn) -> DbResult<i64> {
    let id: Option<i64> = with_conn!(conn, |c| run_output::table.select(diesel::dsl::max(run_output::id)).first(c))?;
    Ok(id.unwrap_or(0))
}

/// Chunks after `after` stored by servers other than `me`, in order; and the newest id read.
pub fn foreign_after(conn: &mut DbConn, after: i64, me: &str, limit: i64) -> DbResult<(i64, Vec<OutputRow>)> {
    let rows: Vec<OutputRow> = with_conn!(conn, |c| run_output::table
        .filter(run_output::id.gt(after))
        .order(run_output::id)
        .limit(limit)
        .select(OutputRow::as_select())
        .load(c))?;
    let last = rows.last().map_or(after, |r| r.id);
    Ok((last, rows.into_iter().filter(|r| r.server.as_deref() != Some(me)).collect()))
}
