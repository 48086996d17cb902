//! Storage: diesel over r2d2, one code base for SQLite (the embedded default) and PostgreSQL.
//!
//! The pool hands out [`DbConn`], a `MultiConnection` over both backends. Repository functions
//! (one module per table) take `&mut DbConn` and use [`with_conn!`] to run the same diesel code on
//! whichever backend is inside, so both get the full dialect (RETURNING, upserts, booleans).
//! Diesel is blocking: async callers go through [`Db::run`], which uses the blocking thread pool.

pub mod agent_changes;
pub mod agent_tokens;
pub mod agents;
pub mod alert_deliveries;
pub mod alert_rules;
pub mod api_tokens;
pub mod audit;
pub mod batch;
pub mod calendars;
pub mod credentials;
pub mod definition_changes;
pub mod dependencies;
pub mod events;
pub mod group_runs;
pub mod groups;
pub mod instance_leases;
pub mod instances;
pub mod integrations;
pub mod run_output;
pub mod run_transitions;
pub mod runs;
pub mod schema;
pub mod servers;
pub mod sessions;
pub mod tail;
pub mod tasks;
pub mod users;

use baton_schema::ids::RunId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection inside a [`DbConn`].
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use with_conn;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://...` or `postgresql://...` is PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path is SQLite.
    pub fn parse(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
            Self::Sqlite(PathBuf::from(path))
        }
    }

    /// Holds a SQLite database for one `baton serve` while the returned file is open: SQLite is
    /// the embedded single-server store, and a second server on the same file would schedule
    /// everything twice, so it refuses to start. PostgreSQL needs no such lock (servers share it
    /// through instance leases).
    pub fn lock_for_serving(&self) -> anyhow::Result<Option<std::fs::File>> {
        let Self::Sqlite(path) = self else { return Ok(None) };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let lock_path = PathBuf::from(format!("{}.serve-lock", path.display()));
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another baton serve is using the SQLite database {}: SQLite serves one server only; \
                 to run several servers, give each the same PostgreSQL --database-url",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    pub fn sqlite_in(data_dir: &Path) -> Self {
        Self::Sqlite(data_dir.join("baton.db"))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// For logs: the path, or the URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let creds = &u[s + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    format!("{}{user}:***{}", &u[..s + 3], &u[at..])
                }
                _ => u.clone(),
            },
        }
    }
}

/// Opens connections of the configured backend only: a PostgreSQL URL never falls back to
/// creating a SQLite file of that name, as a derived `MultiConnection::establish` would.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(u) => {
                let mut c = PgConnection::establish(u).map_err(r2d2::Error::ConnectionError)?;
                // A server stopped (SIGSTOP) in the middle of a transaction keeps its row locks,
                // among them the lease row a fenced write reads FOR SHARE: PostgreSQL ends such a
                // session so a survivor can take the lease over.
                c.batch_execute("SET idle_in_transaction_session_timeout = '3s'").map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Pg(c))
            }
            DatabaseUrl::Sqlite(p) => {
                let mut c = SqliteConnection::establish(&p.to_string_lossy()).map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        with_conn!(conn, |c| c.batch_execute("SELECT 1")).map_err(r2d2::Error::QueryError)
    }

    /// A connection whose transaction could not be ended (a commit that failed on a full disk, a
    /// server gone mid-statement) is dropped rather than handed out again: every later
    /// transaction on it would fail, and the server would not recover by itself.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => Self::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Self::Conflict(info.message().to_string())
            }
            // SQLite reports foreign key failures with an unknown kind.
            Error::DatabaseError(kind, info)
                if matches!(kind, DatabaseErrorKind::ForeignKeyViolation)
                    || info.message().contains("FOREIGN KEY constraint failed") =>
            {
                Self::Conflict(format!("still referenced: {}", info.message()))
            }
            other => Self::Query(other),
        }
    }
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Whether the database answers, as the last round trip found it: `/healthz` says degraded
/// while it does not, and the server carries on by itself once it does again.
#[derive(Debug, Default)]
pub struct Health {
    down: std::sync::atomic::AtomicBool,
    since: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl Health {
    /// A round trip worked.
    pub fn available(&self) {
        use std::sync::atomic::Ordering;
        // Every checkout says so: a read, not a write, while all is well.
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            if let Ok(mut s) = self.since.lock() {
                if let Some((at, _)) = s.take() {
                    tracing::info!(after_ms = at.elapsed().as_millis() as u64, "the database answers again");
                }
            }
        }
    }

    /// A round trip failed for want of the database; the first failure's time is kept.
    pub fn unavailable(&self, why: &str) {
        if let Ok(mut s) = self.since.lock() {
            match s.as_mut() {
                Some((_, reason)) => why.clone_into(reason),
                None => *s = Some((std::time::Instant::now(), why.to_string())),
            }
        }
        self.down.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the database has not answered, and the last reason; None while it answers.
    pub fn down(&self) -> Option<(std::time::Duration, String)> {
        if !self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.since.lock().ok()?.as_ref().map(|(at, why)| (at.elapsed(), why.clone()))
    }
}

/// The pool, and the way async code reaches it.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    url: DatabaseUrl,
    batcher: batch::Batcher,
    health: std::sync::Arc<Health>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.url.redacted())
    }
}

impl Db {
    /// Connects (failing fast with a clear error when the database is unreachable) and applies
    /// the embedded migrations of the backend.
    pub fn open(url: DatabaseUrl) -> anyhow::Result<Db> {
        use anyhow::Context;
        // SQLite has one writer; a transaction that reads and then writes fails at once
        // (SQLITE_BUSY_SNAPSHOT, whatever the busy timeout) when another connection wrote in
        // between. One connection serialises all access and avoids that; statements are short.
        let max = match url {
            DatabaseUrl::Sqlite(_) => 1,
            DatabaseUrl::Postgres(_) => 16,
        };
        // Probe once directly, so an unreachable database is one clear error rather than a pool timeout.
        drop(connect_once(&url)?);
        let manager = Manager { url: url.clone() };
        let pool = r2d2::Pool::builder()
            .max_size(max)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)
            .with_context(|| format!("building the connection pool for {}", url.redacted()))?;
        // PostgreSQL takes writes on several connections at once; SQLite has one.
        let (writers, keep) = match url {
            DatabaseUrl::Sqlite(_) => (1, false),
            DatabaseUrl::Postgres(_) => (4, true),
        };
        let batcher = batch::Batcher::start(pool.clone(), writers, keep);
        Ok(Db { pool, url, batcher, health: std::sync::Arc::default() })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Whether the database answers.
    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn conn(&self) -> DbResult<PooledConnection<Manager>> {
        Ok(self.pool.get()?)
    }

    /// Runs a small write in the next batch (one transaction for many writers, see `batch`);
    /// answers once it is committed.
    pub async fn write<T, F>(&self, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        self.batcher.submit(0, false, f).await
    }

    /// Queues a small write now, behind every write queued before it; the future answers once
    /// it is committed. For callers whose writes must be stored in the order they come.
    pub fn submit<T, F>(&self, f: F) -> impl std::future::Future<Output = DbResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        self.batcher.submit(0, false, f)
    }

    /// As `submit`, in order with the other writes for the run only (its transitions and
    /// output), which may go on another connection than the rest.
    pub fn submit_for<T, F>(&self, key: RunId, f: F) -> impl std::future::Future<Output = DbResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        self.batcher.submit(key.0, false, f)
    }

    /// As `submit_for`, for a write that is atomic by itself (one statement, as
    /// `runs::advance` is on PostgreSQL, or its own transaction): alone in its batch, it runs
    /// without a transaction around it.
    pub fn submit_atomic_for<T, F>(
        &self,
        key: RunId,
        f: F,
    ) -> impl std::future::Future<Output = DbResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        self.batcher.submit(key.0, true, f)
    }

    /// Transactions the batch writer has run (for tests and benchmarks).
    pub fn write_batches(&self) -> u64 {
        self.batcher.batches()
    }

    /// Runs blocking diesel work on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> DbResult<T> + Send + 'static,
    {
        let (pool, health) = (self.pool.clone(), self.health.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().inspect_err(|e| health.unavailable(&e.to_string()))?;
            health.available();
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }
}

/// One connection of the configured backend, opened and migrated on the caller's thread, with
/// no pool: the one-shot commands use it, so when they return no pool thread is left opening a
/// connection (with TLS, for PostgreSQL) while the process tears its libraries down.
pub fn connect_once(url: &DatabaseUrl) -> anyhow::Result<DbConn> {
    use anyhow::Context;
    if let DatabaseUrl::Sqlite(p) = url {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
    }
    let manager = Manager { url: url.clone() };
    let mut conn = manager.connect().with_context(|| format!("cannot open the database {}", url.redacted()))?;
    match &mut conn {
        DbConn::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    }
    .map_err(|e| anyhow::anyhow!("applying migrations to {}: {e}", url.redacted()))?;
    Ok(conn)
}

/// Ids per `IN (...)` list: SQLite binds at most 32,766 variables per statement.
pub const IDS_PER_QUERY: usize = 10_000;

/// Runs a query over a long list of ids in pieces that every backend accepts.
pub(crate) fn in_chunks<I, T>(ids: &[I], mut f: impl FnMut(&[I]) -> DbResult<Vec<T>>) -> DbResult<Vec<T>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        out.extend(f(chunk)?);
    }
    Ok(out)
}

/// Timestamps are stored as UTC without a zone.
pub fn ts(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// Reads a JSON column, calling bad data what it is.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> DbResult<T> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Runs `f` in one transaction on whichever backend `conn` holds.
pub fn transaction<T, E>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(f)
}

/// After rows were inserted with explicit ids (an import), moves PostgreSQL's id sequences past
/// them; SQLite's AUTOINCREMENT follows by itself.
pub fn sync_id_sequences(conn: &mut DbConn) -> DbResult<()> {
    if let DbConn::Pg(c) = conn {
        for table in ["tasks", "groups"] {
            c.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))"
            ))?;
        }
    }
    Ok(())
}
