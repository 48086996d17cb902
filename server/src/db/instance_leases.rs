//! The `instance_leases` table: which server process schedules which instance, fenced by a token.

use super::schema::instance_leases;
use super::{ts, with_conn, DbConn, DbError, DbResult};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// Takes or renews the lease on an instance for `owner` if it is free, expired or already ours.
/// Returns the fencing token when held; a new holder gets a larger token than any before it.
pub fn acquire(
    conn: &mut DbConn,
    instance_id: InstanceId,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> DbResult<Option<i64>> {
    let expires = ts(now + ttl);
    with_conn!(conn, |c| c.transaction::<_, super::DbError, _>(|c| {
        let current: Option<(String, i64, chrono::NaiveDateTime)> = instance_leases::table
            .find(instance_id)
            .select((instance_leases::owner, instance_leases::fencing_token, instance_leases::expires_at))
            .first(c)
            .optional()?;
        match current {
            None => {
                let inserted = diesel::insert_into(instance_leases::table)
                    .values((
                        instance_leases::instance_id.eq(instance_id),
                        instance_leases::owner.eq(owner),
                        instance_leases::fencing_token.eq(1),
                        instance_leases::expires_at.eq(expires),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                Ok((inserted == 1).then_some(1))
            }
            Some((holder, token, until)) if holder == owner || until <= ts(now) => {
                let next = if holder == owner { token } else { token + 1 };
                let n = diesel::update(
                    instance_leases::table.find(instance_id).filter(instance_leases::fencing_token.eq(token)),
                )
                .set((
                    instance_leases::owner.eq(owner),
                    instance_leases::fencing_token.eq(next),
                    instance_leases::expires_at.eq(expires),
                ))
                .execute(c)?;
                Ok((n == 1).then_some(next))
            }
            Some(_) => Ok(None),
        }
    }))
}

/// Whether `owner` still holds the lease on an instance with `token` at `now`. Called inside the
/// transaction of a write that creates or advances runs: with PostgreSQL the lease row is locked
/// (FOR SHARE) until that transaction ends, so a takeover waits for it and the write happened
/// under a lease that was valid when it committed.
pub fn holds(
    conn: &mut DbConn,
    instance_id: InstanceId,
    owner: &str,
    token: i64,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let q = instance_leases::table
        .find(instance_id)
        .filter(instance_leases::owner.eq(owner))
        .filter(instance_leases::fencing_token.eq(token))
        .filter(instance_leases::expires_at.gt(ts(now)))
        .select(instance_leases::instance_id);
    let found: Option<InstanceId> = match conn {
        DbConn::Pg(c) => q.for_share().first(c).optional()?,
        DbConn::Sqlite(c) => q.first(c).optional()?,
    };
    Ok(found.is_some())
}

/// Gives a lease back at once (a server holding more than its share), so another takes it at
/// its next round.
pub fn release(conn: &mut DbConn, instance_id: InstanceId, owner: &str, now: DateTime<Utc>) -> DbResult<()> {
    with_conn!(conn, |c| diesel::update(
        instance_leases::table.find(instance_id).filter(instance_leases::owner.eq(owner))
    )
    .set(instance_leases::expires_at.eq(ts(now)))
    .execute(c))?;
    Ok(())
}

/// Every lease's instance and holder.
pub fn holders(conn: &mut DbConn) -> DbResult<Vec<(InstanceId, String)>> {
    Ok(with_conn!(conn, |c| instance_leases::table
        .order(instance_leases::instance_id)
        .select((instance_leases::instance_id, instance_leases::owner))
        .load(c))?)
}

/// The lease a write is fenced by: it is stored only while `owner` holds `instance_id` under
/// `token`, not expired at the write's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub instance_id: InstanceId,
    pub owner: String,
    pub token: i64,
}

impl Fence {
    /// Inside a write's transaction: `Conflict` unless the lease is still held at `now`.
    pub fn check(&self, conn: &mut DbConn, now: DateTime<Utc>) -> DbResult<()> {
        if holds(conn, self.instance_id, &self.owner, self.token, now)? {
            Ok(())
        } else {
            Err(lost(self.instance_id))
        }
    }
}

/// What a write fenced by a lease this server no longer holds fails with.
pub fn lost(instance_id: InstanceId) -> DbError {
    DbError::Conflict(format!("this server no longer holds the lease on instance {instance_id}"))
}

/// Whether some lease is free (given back or expired) at `now`: a survivor takes it at once.
pub fn any_free(conn: &mut DbConn, now: DateTime<Utc>) -> DbResult<bool> {
    let found: Option<InstanceId> = with_conn!(conn, |c| instance_leases::table
        .filter(instance_leases::expires_at.le(ts(now)))
        .select(instance_leases::instance_id)
        .first(c)
        .optional())?;
    Ok(found.is_some())
}
