//! Many small writes in one transaction: run transitions, output chunks and new runs come in
//! bursts (thousands of runs due at one instant), and one transaction each would serialise them
//! behind one fsync each. A writer thread takes whatever is queued (up to `MAX_BATCH`), runs each
//! piece in its own savepoint inside one transaction, commits once, and only then answers each
//! caller: what a caller publishes after its answer is stored.

use super::{DbConn, DbError, DbResult, Manager};
use diesel::r2d2;
use diesel::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// At most this many writes share a transaction.
pub const MAX_BATCH: usize = 1024;

/// Tells a caller whether the transaction holding its write was committed.
type Finish = Box<dyn FnOnce(bool) + Send>;
/// One caller's write, run inside the batch's transaction.
type Job = Box<dyn FnOnce(&mut DbConn) -> Finish + Send>;

#[derive(Clone)]
pub struct Batcher {
    writer: Arc<Writer>,
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
    /// Starts the writer thread; it ends when the last handle is dropped.
    pub fn start(pool: r2d2::Pool<Manager>) -> Batcher {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let batches = Arc::new(AtomicU64::new(0));
        let counter = batches.clone();
        let spawned = std::thread::Builder::new().name("baton-db-batch".into()).spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                // Dropping the jobs (no connection) drops their answer channels: callers see an error.
                let Ok(mut conn) = pool.get() else {
                    tracing::error!(writes = jobs.len(), "no database connection for a batch of writes");
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let mut finish: Vec<Finish> = Vec::with_capacity(jobs.len());
                let done = (*conn).transaction::<(), diesel::result::Error, _>(|c| {
                    for job in jobs {
                        finish.push(job(c));
                    }
                    Ok(())
                });
                if let Err(e) = &done {
                    tracing::error!(error = %e, "committing a batch of writes");
                }
                for f in finish {
                    f(done.is_ok());
                }
            }
        });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "starting the database writer thread");
                None
            }
        };
        Batcher { writer: Arc::new(Writer { tx: Some(tx), thread }), batches }
    }

    /// Transactions the writer has run.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Queues `f` now, behind every write queued before it (writes are run in the order they
    /// are queued), to run in a savepoint of its own (its failure undoes only its own writes);
    /// returns what answers once its batch is committed.
    pub fn submit<T, F>(&self, f: F) -> impl std::future::Future<Output = DbResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<DbResult<T>>();
        let job: Job = Box::new(move |c: &mut DbConn| {
            let res = c.transaction(f);
            Box::new(move |committed: bool| {
                let res = if committed { res } else { Err(DbError::Unavailable("the batch was not committed".into())) };
                let _ = answer.send(res);
            })
        });
        let queued = self
            .writer
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
