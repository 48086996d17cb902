//! Instance leases: which live server schedules which instance. Each server renews the leases it
//! holds every third of `lease_seconds`, takes its share of those that are free or expired, and
//! gives back what exceeds its share; every write that creates or advances runs checks the lease
//! (owner, fencing token, not expired) in its own transaction, so a server that stopped renewing
//! (killed, stopped, cut off from the database) creates nothing once a survivor took over.

use crate::clock::SharedClock;
use crate::db::{self, Db, DbConn, DbResult};
use baton_schema::ids::InstanceId;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// How often a server looks for a lease given back, between its rounds.
const FREE_LEASE_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// The leases this server holds, shared with the engine, which schedules only their instances.
#[derive(Debug)]
pub struct Leases {
    owner: String,
    held: RwLock<BTreeMap<InstanceId, i64>>,
    /// Moves on each time the keeper gives every lease up: a round that began before it stores
    /// nothing of what it found (its answer came too late to be trusted).
    epoch: AtomicU64,
    /// The server is stopping: it takes no lease again.
    stopping: std::sync::atomic::AtomicBool,
    /// Other servers may share the database (PostgreSQL).
    shared: bool,
}

impl Leases {
    /// A new server's leases (none yet), under a name that is new to every process: a server
    /// restarted after a stop must not pass for the one that stopped. `shared`: other servers may
    /// use the same database.
    pub fn new(shared: bool) -> Arc<Leases> {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "baton".into());
        // Without randomness the start time (to the nanosecond) still tells processes apart.
        let random = getrandom::u64().unwrap_or_else(|_| {
            u64::try_from(Utc::now().timestamp_nanos_opt().unwrap_or_default()).unwrap_or_default()
        });
        Arc::new(Leases { shared, ..Self::unshared_named(format!("{host}-{}-{random:016x}", std::process::id())) })
    }

    /// Leases under a given name, of a server that may share its database (tests).
    pub fn named(owner: String) -> Arc<Leases> {
        Arc::new(Leases { shared: true, ..Self::unshared_named(owner) })
    }

    fn unshared_named(owner: String) -> Leases {
        Leases {
            owner,
            held: RwLock::new(BTreeMap::new()),
            epoch: AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            shared: false,
        }
    }

    /// Whether other servers may share this server's database.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// This server's name when other servers may share its database: what it records for them
    /// goes under it; a lone server records nothing for others.
    pub fn shared_as(&self) -> Option<String> {
        self.shared.then(|| self.owner.clone())
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The instances this server schedules now.
    pub fn held(&self) -> BTreeSet<InstanceId> {
        self.held.read().map(|h| h.keys().copied().collect()).unwrap_or_default()
    }

    pub fn holds(&self, instance_id: InstanceId) -> bool {
        self.held.read().is_ok_and(|h| h.contains_key(&instance_id))
    }

    /// Stops scheduling every instance at once (the keeper could not renew in time, or the server
    /// is stopping); returns what was held.
    pub fn give_up(&self) -> Vec<InstanceId> {
        let Ok(mut h) = self.held.write() else { return Vec::new() };
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let lost = h.keys().copied().collect();
        h.clear();
        lost
    }

    /// The first step of a graceful stop, with no database: takes no lease again and gives up
    /// what it holds (the engine stops creating runs). Returns what was held.
    pub fn stop_taking(&self) -> Vec<InstanceId> {
        self.stopping.store(true, Ordering::SeqCst);
        self.give_up()
    }

    /// A graceful stop: takes no lease again, gives up what it holds (the engine stops creating)
    /// and gives it back in the database at once, and leaves the live servers, so a survivor
    /// takes it over at its next round instead of after it expires. Returns what was held.
    pub fn step_down(&self, c: &mut DbConn, now: DateTime<Utc>) -> DbResult<Vec<InstanceId>> {
        let held = self.stop_taking();
        for (instance, holder) in db::instance_leases::holders(c)? {
            if holder == self.owner {
                db::instance_leases::release(c, instance, &self.owner, now)?;
            }
        }
        db::servers::forget(c, &self.owner)?;
        Ok(held)
    }

    /// Inside a write's transaction: an error unless this server still holds the instance's lease
    /// (same fencing token, not expired at `now`).
    pub fn fence(&self, c: &mut DbConn, instance_id: InstanceId, now: DateTime<Utc>) -> DbResult<()> {
        self.fence_for(instance_id)?.check(c, now)
    }

    /// What a write for the instance is fenced by while this server holds its lease (checked in
    /// the write's own statement by `db::runs::advance`).
    pub fn fence_for(&self, instance_id: InstanceId) -> DbResult<db::instance_leases::Fence> {
        let token = self.held.read().ok().and_then(|h| h.get(&instance_id).copied());
        let token = token.ok_or_else(|| db::instance_leases::lost(instance_id))?;
        Ok(db::instance_leases::Fence { instance_id, owner: self.owner.clone(), token })
    }
}

/// What a round changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub gained: Vec<InstanceId>,
    pub lost: Vec<InstanceId>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// Renews, takes and gives back leases, one round at a time.
pub struct LeaseKeeper {
    pub leases: Arc<Leases>,
    pub ttl: Duration,
}

impl LeaseKeeper {
    pub fn new(leases: Arc<Leases>, ttl: Duration) -> Self {
        Self { leases, ttl }
    }

    /// One round at `now`: note this server alive, renew what it holds (a lease another server
    /// took after it expired is lost), give back what exceeds its share of the instances over the
    /// live servers, and take free or expired leases up to that share.
    pub fn round(&self, c: &mut DbConn, now: DateTime<Utc>) -> DbResult<Changes> {
        self.round_since(c, now, self.leases.epoch.load(Ordering::SeqCst))
    }

    /// A round that stores what it found only if the leases were not given up since `epoch`
    /// (read before it waited for its connection).
    fn round_since(&self, c: &mut DbConn, now: DateTime<Utc>, epoch: u64) -> DbResult<Changes> {
        if self.leases.stopping.load(Ordering::SeqCst) {
            return Ok(Changes::default());
        }
        let owner = self.leases.owner.clone();
        db::servers::heartbeat(c, &owner, now)?;
        db::servers::forget_before(c, now - self.ttl * 100)?;
        // What servers publish for each other is read within moments; an hour is plenty.
        db::definition_changes::forget_before(c, now - Duration::hours(1))?;
        db::agent_changes::forget_before(c, now - Duration::hours(1))?;
        let live = db::servers::live(c, now - self.ttl)?.len().max(1);
        let instances: Vec<InstanceId> = db::instances::list(c)?.into_iter().map(|i| i.id).collect();
        let share = instances.len().div_ceil(live);
        let before = self.leases.held.read().map(|h| h.clone()).unwrap_or_default();
        let mut held = BTreeMap::new();
        for &instance in before.keys() {
            if let Some(token) = db::instance_leases::acquire(c, instance, &owner, self.ttl, now)? {
                held.insert(instance, token);
            }
        }
        while held.len() > share {
            let Some((&instance, _)) = held.iter().next_back() else { break };
            db::instance_leases::release(c, instance, &owner, now)?;
            held.remove(&instance);
        }
        // Servers start their search at different places, so they rarely race for one lease.
        let offset = owner.bytes().map(usize::from).sum::<usize>() % instances.len().max(1);
        let order = instances.iter().cycle().skip(offset).take(instances.len());
        for &instance in order {
            if held.len() >= share {
                break;
            }
            if held.contains_key(&instance) {
                continue;
            }
            if let Some(token) = db::instance_leases::acquire(c, instance, &owner, self.ttl, now)? {
                held.insert(instance, token);
            }
        }
        let changes = Changes {
            gained: held.keys().filter(|i| !before.contains_key(i)).copied().collect(),
            lost: before.keys().filter(|i| !held.contains_key(i)).copied().collect(),
        };
        // A stop began while this round ran: what it renewed goes back at once.
        if self.leases.stopping.load(Ordering::SeqCst) {
            for &instance in held.keys() {
                db::instance_leases::release(c, instance, &owner, now)?;
            }
            return Ok(Changes::default());
        }
        let mut h = self.leases.held.write().map_err(|_| db::DbError::Unavailable("the lease table lock".into()))?;
        if self.leases.epoch.load(Ordering::SeqCst) != epoch {
            // Given up while this round ran: what it renewed expires by itself or is renewed by
            // the next round, which starts from nothing held and tells the engine what it gains.
            return Err(db::DbError::Unavailable("a lease round that came back too late".into()));
        }
        *h = held;
        Ok(changes)
    }

    /// Forgets every lease held by a server that is gone (SQLite: the serve lock proves no other
    /// server runs, so a restarted one need not wait for its predecessor's leases to expire).
    pub fn take_over_all(&self, c: &mut DbConn, now: DateTime<Utc>) -> DbResult<()> {
        db::servers::forget_others(c, &self.leases.owner)?;
        for (instance, holder) in db::instance_leases::holders(c)? {
            if holder != self.leases.owner {
                db::instance_leases::release(c, instance, &holder, now)?;
            }
        }
        Ok(())
    }

    /// Keeps the leases until the server stops, telling `changed` what each round changed.
    ///
    /// A round reads the time once it holds a connection, so one that waited in the pool's
    /// checkout still writes leases that last their full term from then, never one already
    /// expired. A round that fails, or has not come back by the time what this server holds
    /// expires, gives every lease up at once: the engine stops creating runs rather than have
    /// its writes refused by the fence, and the next round that works takes them again.
    pub async fn keep(self, db: Db, clock: SharedClock, changed: impl Fn(Changes) + Send + 'static) {
        let every = (self.ttl / 3).to_std().unwrap_or(std::time::Duration::from_secs(3));
        let ttl = self.ttl;
        let keeper = Arc::new(self);
        // When the leases this server holds expire, as the last round that worked wrote them.
        let mut held_until: Option<DateTime<Utc>> = None;
        loop {
            let (k, round_clock) = (keeper.clone(), clock.clone());
            // A round given up on (below) may still get its connection later: it must then
            // store nothing, or the engine would never hear of what it holds.
            let epoch = keeper.leases.epoch.load(Ordering::SeqCst);
            let round = db.run(move |c| {
                let now = round_clock.now();
                k.round_since(c, now, epoch).map(|changes| (changes, now))
            });
            let limit = match held_until {
                Some(until) => (until - clock.now()).to_std().unwrap_or_default(),
                None => ttl.to_std().unwrap_or(every * 3),
            };
            let failed = match tokio::time::timeout(limit, round).await {
                Ok(Ok((changes, at))) => {
                    held_until = Some(at + ttl);
                    db.health().available();
                    if !changes.is_empty() {
                        tracing::info!(gained = ?changes.gained, lost = ?changes.lost, "instance leases changed");
                        changed(changes);
                    }
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} ms", limit.as_millis())),
            };
            if let Some(why) = failed {
                tracing::error!(error = %why, "renewing instance leases; scheduling stops until they are back");
                db.health().unavailable(&why);
                held_until = None;
                let lost = keeper.leases.give_up();
                if !lost.is_empty() {
                    changed(Changes { gained: Vec::new(), lost });
                }
            }
            // The next round starts in a third of the term, and always before the leases expire;
            // meanwhile a lease given back (a server stopping) is looked for every second, and
            // taken over at once.
            let next = match held_until {
                Some(until) => every.min((until - clock.now() - ttl / 3).to_std().unwrap_or_default()),
                None => every,
            };
            let due = tokio::time::Instant::now() + next;
            loop {
                let step = due.saturating_duration_since(tokio::time::Instant::now()).min(FREE_LEASE_LOOK);
                if step.is_zero() {
                    break;
                }
                tokio::time::sleep(step).await;
                // Alone (SQLite), no other server gives a lease back.
                if !keeper.leases.shared() || keeper.leases.stopping.load(Ordering::SeqCst) {
                    continue;
                }
                let now = clock.now();
                if let Ok(Ok(true)) =
                    tokio::time::timeout(FREE_LEASE_LOOK, db.run(move |c| db::instance_leases::any_free(c, now))).await
                {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::db::DatabaseUrl;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn keeper(name: &str) -> LeaseKeeper {
        LeaseKeeper::new(Leases::named(name.into()), Duration::seconds(10))
    }

    fn setup(instances: usize) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::sqlite_in(dir.path())).unwrap();
        let mut c = db.conn().unwrap();
        for i in 1..instances {
            db::instances::ensure(&mut c, &format!("inst{i}"), t(0)).unwrap();
        }
        drop(c);
        (dir, db)
    }

    #[test]
    fn a_lone_server_takes_every_lease_and_keeps_its_token_while_it_renews() {
        let (_dir, db) = setup(3);
        let mut c = db.conn().unwrap();
        let a = keeper("a");
        let first = a.round(&mut c, t(0)).unwrap();
        assert_eq!(first.gained.len(), 3);
        let tokens = a.leases.held.read().unwrap().clone();
        for s in [3, 6, 9, 12, 30] {
            assert!(a.round(&mut c, t(s)).unwrap().is_empty(), "renewed at {s}");
        }
        assert_eq!(*a.leases.held.read().unwrap(), tokens, "renewing keeps the fencing tokens");
        for i in a.leases.held() {
            a.leases.fence(&mut c, i, t(31)).unwrap();
        }
    }

    #[test]
    fn a_second_server_gets_its_share_and_a_silent_one_is_replaced_after_its_lease() {
        let (_dir, db) = setup(4);
        let mut c = db.conn().unwrap();
        let (a, b) = (keeper("a"), keeper("b"));
        assert_eq!(a.round(&mut c, t(0)).unwrap().gained.len(), 4);
        // b arrives: a sees two live servers and gives back half; b takes it.
        assert!(b.round(&mut c, t(1)).unwrap().gained.is_empty(), "nothing is free yet");
        assert_eq!(a.round(&mut c, t(3)).unwrap().lost.len(), 2);
        assert_eq!(b.round(&mut c, t(4)).unwrap().gained.len(), 2);
        let (held_a, held_b) = (a.leases.held(), b.leases.held());
        assert_eq!(held_a.len() + held_b.len(), 4);
        assert!(held_a.is_disjoint(&held_b));

        // a stops renewing at t(3): its leases are b's once expired (t(13)), not before.
        assert!(b.round(&mut c, t(12)).unwrap().gained.is_empty(), "not before the lease expires");
        let took = b.round(&mut c, t(14)).unwrap();
        assert_eq!(took.gained.iter().copied().collect::<BTreeSet<_>>(), held_a);
        assert_eq!(b.leases.held().len(), 4);

        // a wakes up: every write it tries is fenced off, and its next round says what it lost.
        let stolen = *held_a.iter().next().unwrap();
        let refused = a.leases.fence(&mut c, stolen, t(15)).unwrap_err();
        assert!(matches!(refused, crate::db::DbError::Conflict(_)), "{refused:?}");
        let lost = a.round(&mut c, t(15)).unwrap();
        assert_eq!(lost.lost.iter().copied().collect::<BTreeSet<_>>(), held_a);
        assert!(a.leases.held().is_empty() || a.leases.held().is_disjoint(&b.leases.held()));
    }

    #[test]
    fn a_stolen_lease_has_a_larger_token_and_the_old_one_is_fenced_even_unexpired_in_memory() {
        let (_dir, db) = setup(1);
        let mut c = db.conn().unwrap();
        let (a, b) = (keeper("a"), keeper("b"));
        a.round(&mut c, t(0)).unwrap();
        let inst = *a.leases.held().iter().next().unwrap();
        let old = a.leases.held.read().unwrap()[&inst];
        // a is stopped past its lease; b takes it.
        b.round(&mut c, t(11)).unwrap();
        let new = b.leases.held.read().unwrap()[&inst];
        assert!(new > old, "a new holder gets a larger token ({old} -> {new})");
        // a still believes it holds the lease (it has not run a round): the fence refuses.
        assert!(a.leases.holds(inst));
        assert!(a.leases.fence(&mut c, inst, t(12)).is_err());
        b.leases.fence(&mut c, inst, t(12)).unwrap();
        // An expired lease is refused to its own holder too, until it renews.
        assert!(b.leases.fence(&mut c, inst, t(22)).is_err());
        b.round(&mut c, t(22)).unwrap();
        b.leases.fence(&mut c, inst, t(22)).unwrap();
    }

    #[test]
    fn a_restarted_lone_server_takes_its_predecessors_leases_at_once() {
        let (_dir, db) = setup(2);
        let mut c = db.conn().unwrap();
        keeper("before").round(&mut c, t(0)).unwrap();
        let after = keeper("after");
        assert!(after.round(&mut c, t(1)).unwrap().gained.is_empty(), "held by the one before");
        after.take_over_all(&mut c, t(2)).unwrap();
        assert_eq!(after.round(&mut c, t(2)).unwrap().gained.len(), 2);
    }
}
