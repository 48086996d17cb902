//! Many small writes in one transaction: run transitions, output chunks and new runs come in
//! bursts (thousands of runs due at one instant), and one transaction each would serialise them
//! behind one fsync each. A writer thread takes whatever is queued (up to `MAX_BATCH`), runs each
//! piece in its own savepoint inside one transaction, commits once, and only then answers each
//! caller: what a caller publishes after its answer is stored. SQLite has one writer; PostgreSQL
//! has several, each with its own queue, so that one writer's round trips do not hold up the
//! others: writes given the same key (a run's id) go to the same writer, in the order they came.

use super::{DbConn, DbError, DbResult, Manager};
use diesel::r2d2;
use diesel::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// At most this many writes share a transaction.
pub const MAX_BATCH: usize = 1024;

/// Tells a caller whether the transaction holding its write was committed.
type Finish = Box<dyn FnOnce(bool) + Send>;
/// One caller's write, run inside the batch's transaction (or alone, when the flag says it is the
/// batch's only write): whether it worked, and its answer.
type Job = Box<dyn FnOnce(&mut DbConn, bool) -> (bool, Finish) + Send>;

/// How long a writer reuses the connection of its last batch without asking the pool (which
/// tests each connection with a round trip) when that batch worked.
const REUSE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone)]
pub struct Batcher {
    writers: Arc<Vec<Writer>>,
    /// Transactions committed (or tried) so far.
    batches: Arc<AtomicU64>,
}

/// The writer thread and its queue. When the last handle goes, the queue closes and the thread
/// is waited for, so its connections are closed by the time the `Db` is gone (a database
/// reopened right after never races the old pool's last checkpoint).
struct Writer {
    tx: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            // A job that dropped the last handle runs on the writer itself, which cannot wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Batcher {
    /// Starts `writers` writer threads (at least one); they end when the last handle is dropped.
    /// `keep`: each writer keeps its connection between batches.
    pub fn start(pool: r2d2::Pool<Manager>, writers: usize, keep: bool) -> Batcher {
        let batches = Arc::new(AtomicU64::new(0));
        let writers = (0..writers.max(1)).map(|i| Writer::start(pool.clone(), i, keep, batches.clone())).collect();
        Batcher { writers: Arc::new(writers), batches }
    }

    /// Transactions the writers have run.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Queues `f` now on the writer of `key`, behind every write queued there before it (writes
    /// with the same key are run in the order they are queued), to run in a savepoint of its own
    /// (its failure undoes only its own writes); returns what answers once its batch is committed.
    /// `atomic`: `f` is atomic by itself (one statement, or its own transaction), so alone in a
    /// batch it needs no transaction around it.
    pub fn submit<T, F>(
        &self,
        key: i64,
        atomic: bool,
        f: F,
    ) -> impl std::future::Future<Output = DbResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<DbResult<T>>();
        let job: Job = Box::new(move |c: &mut DbConn, alone: bool| {
            let res = if atomic && alone { f(c) } else { c.transaction(f) };
            let worked = res.is_ok();
            let finish: Finish = Box::new(move |committed: bool| {
                let res = if committed { res } else { Err(DbError::Unavailable("the batch was not committed".into())) };
                let _ = answer.send(res);
            });
            (worked, finish)
        });
        let writer = &self.writers[usize::try_from(key.unsigned_abs() % self.writers.len() as u64).unwrap_or(0)];
        let queued = writer
            .tx
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| DbError::Unavailable("the database writer has stopped".into()));
        async move {
            queued?;
            answered.await.map_err(|_| DbError::Unavailable("the database writer dropped a write".into()))?
        }
    }
}

impl Writer {
    /// `keep`: the writer keeps its connection between batches (not with SQLite, whose one
    /// connection the readers share).
    fn start(pool: r2d2::Pool<Manager>, index: usize, keep: bool, counter: Arc<AtomicU64>) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let spawned = std::thread::Builder::new().name(format!("baton-db-batch-{index}")).spawn(move || {
            let mut kept: Option<(r2d2::PooledConnection<Manager>, Instant)> = None;
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let conn = match kept.take() {
                    Some((c, at)) if at.elapsed() < REUSE_FOR => Ok(c),
                    _ => pool.get(),
                };
                // Dropping the jobs (no connection) drops their answer channels: callers see an error.
                let Ok(mut conn) = conn else {
                    tracing::error!(writes = jobs.len(), "no database connection for a batch of writes");
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let worked = match <[Job; 1]>::try_from(jobs) {
                    // A write alone is its own transaction (or needs none): no savepoint, two
                    // round trips fewer.
                    Ok([job]) => {
                        let (ok, finish) = job(&mut conn, true);
                        finish(true);
                        ok
                    }
                    Err(jobs) => {
                        let mut finish: Vec<Finish> = Vec::with_capacity(jobs.len());
                        let done = (*conn).transaction::<(), diesel::result::Error, _>(|c| {
                            for job in jobs {
                                finish.push(job(c, false).1);
                            }
                            Ok(())
                        });
                        if let Err(e) = &done {
                            tracing::error!(error = %e, "committing a batch of writes");
                        }
                        for f in finish {
                            f(done.is_ok());
                        }
                        done.is_ok()
                    }
                };
                // After a failure the pool tests the connection again before it is used.
                if keep && worked {
                    kept = Some((conn, Instant::now()));
                }
            }
        });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "starting a database writer thread");
                None
            }
        };
        Writer { tx: Some(tx), thread }
    }
}
