//! Assembly: builds a server's long-lived parts in the order they need each other, each given
//! what it needs when it is made (the credential store first, so a missing or wrong key stops the
//! start before anything runs), and starts their background work. `http::serve` only puts the
//! result on the network.

use crate::agents::AgentHub;
use crate::config::Config;
use crate::db::{DatabaseUrl, Db};
use crate::driver::Driver;
use crate::service::Services;
use baton_graphql::backend::ChangeKind;
use baton_graphql::Definitions;
use baton_graphql::{build_schema, Backend, BatonSchema};
use baton_schema::ids::{GroupId, TaskId};
use std::sync::Arc;

/// A server's parts that answer requests.
pub struct App {
    pub db: Db,
    pub schema: BatonSchema,
    pub backend: Arc<dyn Backend>,
    pub hub: Arc<AgentHub>,
    pub driver: Arc<Driver>,
    pub stopping: Stopping,
    /// The server's clock: everything that reads the time reads it.
    pub clock: crate::clock::SharedClock,
}

/// What the engine and the driver are told when the leases change.
type LeasesChanged = Arc<dyn Fn(crate::lease::Changes) + Send + Sync>;

/// A graceful stop's first step, which the HTTP server's graceful stop follows.
#[derive(Clone)]
pub struct Stopping {
    db: Db,
    leases: Arc<crate::lease::Leases>,
    hub: Arc<AgentHub>,
    clock: crate::clock::SharedClock,
    changed: LeasesChanged,
}

impl Stopping {
    /// Stops taking work at once: the engine stops creating runs, the leases go back in the
    /// database (a survivor takes them over at its next round, not after they expire), and the
    /// agents' connections close once what they sent is stored (they move to another server).
    pub async fn begin(&self) {
        let lost = self.leases.stop_taking();
        (self.changed)(crate::lease::Changes { gained: Vec::new(), lost: lost.clone() });
        self.hub.close_all();
        let (leases, now) = (self.leases.clone(), self.clock.now());
        let given_back = self.db.run(move |c| leases.step_down(c, now));
        match tokio::time::timeout(std::time::Duration::from_secs(2), given_back).await {
            Ok(Ok(_)) => tracing::info!(instances = ?lost, "stopping: leases given back"),
            Ok(Err(e)) => tracing::warn!(error = %e, "stopping: the leases expire by themselves"),
            Err(_) => tracing::warn!("stopping: the database did not answer; the leases expire by themselves"),
        }
    }
}

/// Builds every part on `db` as `config` says and starts its background work (on the current
/// actix runtime).
pub async fn build(config: &Config, db: Db) -> anyhow::Result<App> {
    let env_key = std::env::var(crate::vault::KEY_ENV).ok();
    let vault = {
        let mut c = db.conn().map_err(|e| anyhow::anyhow!("{e}"))?;
        Arc::new(crate::vault::Vault::open(&mut c, env_key.as_deref(), &config.master_key_file)?)
    };
    let marked = db.run(crate::db::agents::mark_all_offline).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::debug!(agents = marked, "no agent is connected yet");
    let clock = crate::clock::system();
    // Which instances this server schedules: every one with SQLite (its serve lock proves it
    // alone), its share of them with PostgreSQL. The first round runs before anything is loaded.
    let alone = matches!(config.database, DatabaseUrl::Sqlite(_));
    let leases = crate::lease::Leases::new(!alone);
    // Only servers that share a database record their agents' changes for each other.
    let hub = AgentHub::new(db.clone(), config.agent_heartbeat, clock.clone(), leases.shared_as());
    actix_web::rt::spawn(hub.clone().watch_heartbeats());
    let keeper =
        crate::lease::LeaseKeeper::new(leases.clone(), chrono::Duration::seconds(i64::from(config.lease_seconds)));
    {
        let mut c = db.conn().map_err(|e| anyhow::anyhow!("{e}"))?;
        if alone {
            keeper.take_over_all(&mut c, clock.now()).map_err(|e| anyhow::anyhow!("taking the leases: {e}"))?;
        }
        let first = keeper.round(&mut c, clock.now()).map_err(|e| anyhow::anyhow!("taking the leases: {e}"))?;
        tracing::info!(server = leases.owner(), instances = ?first.gained, "instance leases taken");
    }
    let driver = Driver::new(
        db.clone(),
        hub.clone(),
        chrono::Duration::seconds(i64::from(config.agent_lost_seconds)),
        config.run_output_cap_bytes,
        clock.clone(),
        leases.clone(),
        vault.clone(),
    );
    // A lone server carries on every unfinished run at once; servers sharing PostgreSQL share
    // them out through the run queue (by lease) and their agents' connections.
    if alone {
        driver.recover().await;
    } else {
        actix_web::rt::spawn(driver.clone().follow_others());
        actix_web::rt::spawn(driver.clone().follow_others_output());
        actix_web::rt::spawn(hub.clone().follow_others());
    }
    actix_web::rt::spawn(driver.clone().run_queue());
    actix_web::rt::spawn(driver.clone().run_clock());
    let grace = chrono::Duration::seconds(i64::from(config.misfire_grace_seconds));
    let deps = crate::engine::EngineDeps::new(db.clone(), driver.clone(), grace, leases);
    let alerts = crate::alerts::Alerts::start(
        db.clone(),
        vault.clone(),
        config.alerts.clone(),
        clock.clone(),
        driver.subscribe(),
        deps.group_ends.subscribe(),
    )?;
    let services = Services::new(db.clone(), hub.clone(), driver.clone(), deps.clone(), vault.clone(), alerts.clone());
    let engine = crate::engine::Engine::start(deps);
    let (on_change, runs_of) = (engine.clone(), driver.clone());
    let changed: LeasesChanged = Arc::new(move |changes: crate::lease::Changes| {
        runs_of.let_go(&changes.lost);
        on_change.do_send(crate::engine::ReloadAll);
    });
    let keeper_changed = changed.clone();
    let stopping =
        Stopping { db: db.clone(), leases: keeper.leases.clone(), hub: hub.clone(), clock: clock.clone(), changed };
    actix_web::rt::spawn(keeper.keep(db.clone(), clock.clone(), move |changes| keeper_changed(changes)));
    // Definitions changed through the API reach the engine at once: no restart, no refresh.
    let mut changes = services.definition_changes();
    actix_web::rt::spawn(async move {
        use futures_util::StreamExt;
        while let Some(c) = changes.next().await {
            alerts.definitions_changed();
            match c.kind {
                ChangeKind::Task => engine.do_send(crate::engine::TaskChanged(TaskId(c.id))),
                ChangeKind::Group => engine.do_send(crate::engine::GroupChanged(GroupId(c.id))),
                _ => engine.do_send(crate::engine::ReloadAll),
            }
        }
    });
    if !alone {
        actix_web::rt::spawn(services.clone().follow_other_servers());
        actix_web::rt::spawn(vault.follow(db.clone()));
    }
    let backend: Arc<dyn Backend> = services;
    Ok(App { schema: build_schema(backend.clone()), backend, db, hub, driver, stopping, clock })
}
