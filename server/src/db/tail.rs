//! Following a table by increasing id, as servers sharing a database read each other's rows.
//! Ids are taken when rows are written, not when they commit: a transaction that commits after a
//! later one would be skipped by a plain "after the last id", so every `RECHECK_EVERY`-th read
//! goes back over the newest `RECHECK` ids, and what was already handed out is left out.

use std::collections::BTreeSet;

/// How many of the newest ids are read again.
const RECHECK: i64 = 500;

/// One read in this many goes back over the newest ids (the others read only what is new).
const RECHECK_EVERY: u32 = 10;

#[derive(Debug, Clone)]
pub struct Tail {
    start: i64,
    last: i64,
    seen: BTreeSet<i64>,
    reads: u32,
}

impl Tail {
    /// Follows what comes after `start` (the newest id when following begins).
    pub fn after(start: i64) -> Self {
        Self { start, last: start, seen: BTreeSet::new(), reads: 0 }
    }

    /// Where the next read starts (exclusive): after the newest id read, or, one read in
    /// `RECHECK_EVERY`, `RECHECK` ids before it.
    pub fn from(&mut self) -> i64 {
        self.reads = self.reads.wrapping_add(1);
        if self.reads % RECHECK_EVERY == 1 {
            self.floor()
        } else {
            self.last
        }
    }

    fn floor(&self) -> i64 {
        self.last.saturating_sub(RECHECK).max(self.start)
    }

    /// Notes how far a read got.
    pub fn advance(&mut self, last: i64) {
        self.last = self.last.max(last);
        let floor = self.floor();
        self.seen.retain(|id| *id > floor);
    }

    /// Whether row `id` is new: each is handed out once.
    pub fn is_new(&mut self, id: i64) -> bool {
        id > self.start && self.seen.insert(id)
    }
}

/// Follows a table that other servers write, until the server stops: `last` gives where to
/// start (asked again until the database answers), `read(conn, from)` the rows after `from` that other servers wrote (and how far it read),
/// `id` a row's id; each new row goes to `publish`, in order, once.
pub async fn follow<R, L, F, I, P>(
    db: super::Db,
    every: std::time::Duration,
    what: &str,
    last: L,
    read: F,
    id: I,
    mut publish: P,
) where
    R: Send + 'static,
    L: Fn(&mut super::DbConn) -> super::DbResult<i64> + Send + Sync + Clone + 'static,
    F: Fn(&mut super::DbConn, i64) -> super::DbResult<(i64, Vec<R>)> + Send + Sync + Clone + 'static,
    I: Fn(&R) -> i64,
    P: FnMut(R),
{
    let mut tick = tokio::time::interval(every);
    // Where to start, read again until the database answers.
    let mut tail = loop {
        tick.tick().await;
        match db.run(last.clone()).await {
            Ok(start) => break Tail::after(start),
            Err(e) => tracing::warn!(error = %e, "finding where to follow other servers' {what} from"),
        }
    };
    loop {
        tick.tick().await;
        let (read, from) = (read.clone(), tail.from());
        match db.run(move |c| read(c, from)).await {
            Ok((next, rows)) => {
                tail.advance(next);
                for row in rows {
                    if tail.is_new(id(&row)) {
                        publish(row);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading other servers' {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database that does not answer when following begins delays it; it never ends it.
    #[test]
    fn following_begins_once_the_database_answers() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::Db::open(super::super::DatabaseUrl::sqlite_in(dir.path())).unwrap();
        let asked = Arc::new(AtomicU32::new(0));
        let counted = asked.clone();
        let last = move |_: &mut super::super::DbConn| match counted.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(super::super::DbError::Conflict("the database is away".into())),
            _ => Ok(10),
        };
        let read = |_: &mut super::super::DbConn, from: i64| Ok((from.max(11), vec![11_i64]));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        actix::System::new().block_on(async move {
            let every = std::time::Duration::from_millis(5);
            let following = follow(
                db,
                every,
                "rows",
                last,
                read,
                |r| *r,
                move |r| {
                    let _ = tx.send(r);
                },
            );
            tokio::select! {
                () = following => panic!("following ended"),
                got = rx.recv() => assert_eq!(got, Some(11)),
                () = tokio::time::sleep(std::time::Duration::from_secs(10)) => panic!("nothing followed"),
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 3, "asked where to start until it answered");
    }

    #[test]
    fn a_row_that_commits_after_a_later_one_is_still_handed_out_once() {
        let mut t = Tail::after(10);
        // Ids 11 and 13 are visible; 12 commits late.
        assert_eq!(t.from(), 10);
        t.advance(13);
        assert_eq!([11, 13].map(|id| t.is_new(id)), [true, true]);
        assert_eq!(t.from(), 13, "most reads take only what is new");
        let back = (0..RECHECK_EVERY).map(|_| t.from()).min().unwrap();
        assert!(back <= 11, "one read in {RECHECK_EVERY} goes back far enough");
        t.advance(13);
        assert_eq!([11, 12, 13].map(|id| t.is_new(id)), [false, true, false]);
        assert!(!t.is_new(9), "nothing from before following began");
    }
}
