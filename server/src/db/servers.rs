//! The `servers` table: which `baton serve` processes are alive, so instances are spread over them.

use super::schema::servers;
use super::{ts, with_conn, DbConn, DbResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// Records that server `id` is alive at `now`.
pub fn heartbeat(conn: &mut DbConn, id: &str, now: DateTime<Utc>) -> DbResult<()> {
    let at = ts(now);
    with_conn!(conn, |c| diesel::insert_into(servers::table)
        .values((servers::id.eq(id), servers::started_at.eq(at), servers::seen_at.eq(at)))
        .on_conflict(servers::id)
        .do_update()
        .set(servers::seen_at.eq(at))
        .execute(c))?;
    Ok(())
}

/// The servers seen at or after `since`, by id.
pub fn live(conn: &mut DbConn, since: DateTime<Utc>) -> DbResult<Vec<String>> {
    Ok(with_conn!(conn, |c| servers::table
        .filter(servers::seen_at.ge(ts(since)))
        .order(servers::id)
        .select(servers::id)
        .load(c))?)
}

/// Forgets servers not seen since `before` (they left long ago).
pub fn forget_before(conn: &mut DbConn, before: DateTime<Utc>) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(servers::table.filter(servers::seen_at.lt(ts(before)))).execute(c))?)
}

/// Forgets every server but `id` (a lone SQLite server, whose serve lock proves the others gone).
pub fn forget_others(conn: &mut DbConn, id: &str) -> DbResult<usize> {
    Ok(with_conn!(conn, |c| diesel::delete(servers::table.filter(servers::id.ne(id))).execute(c))?)
}

/// A server that stops leaves the live ones at once (its share goes to the others).
pub fn forget(conn: &mut DbConn, id: &str) -> DbResult<()> {
    with_conn!(conn, |c| diesel::delete(servers::table.filter(servers::id.eq(id))).execute(c))?;
    Ok(())
}
