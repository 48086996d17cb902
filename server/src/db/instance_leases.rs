//! The `instance_leases` table: which server process schedules which instance, fenced by a token.

use super::schema::instance_leases;
use super::{ts, with_conn, DbConn, DbResult};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// Takes or renews the lease on an instance for `owner` if it is free, expired or already ours.
/// Returns the fencing token when held; a new holder gets a larger token than any before it.
pub fn acquire(
    conn: &mut DbConn,
    instance_id: i64,
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
