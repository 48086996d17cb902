//! Server configuration: defaults, then a TOML file, then environment variables and flags.

use crate::db::DatabaseUrl;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What `baton serve` needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub agent_heartbeat: crate::agents::HeartbeatPolicy,
    /// How long a run's agent may stay away before the run fails with `agent lost`.
    pub agent_lost_seconds: u32,
    /// Bytes of output kept per stream and attempt (the tail is kept).
    pub run_output_cap_bytes: i64,
    /// Slots missed by less than this while the server was down still run (misfire policy).
    pub misfire_grace_seconds: u32,
    /// The credential store's master key file (generated when absent and nothing is stored).
    pub master_key_file: PathBuf,
    pub alerts: crate::alerts::AlertPolicy,
    /// How long an instance lease lasts unless renewed (renewed every third of it).
    pub lease_seconds: u32,
    /// On SIGTERM, how long the server waits for its connections and writes before it exits
    /// (it stops taking work and gives its leases back at once).
    pub shutdown_seconds: u32,
    /// The largest request body read (a GraphQL POST, an import).
    pub max_body_bytes: usize,
    /// Origins besides the server's own whose pages may use a session cookie or open a socket.
    pub allowed_origins: Vec<String>,
    /// HTTPS and WSS: the certificate chain and its private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// How many GraphQL sockets may be open.
    pub socket_caps: crate::socket_caps::SocketCaps,
}

/// The PEM files the server's TLS is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TOML file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// Seconds between agent heartbeats (1-300).
    pub agent_heartbeat_seconds: Option<u32>,
    /// Missed heartbeats after which an agent is OFFLINE (1-100).
    pub agent_missed_heartbeats: Option<u32>,
    /// Seconds a run's agent may stay away before the run fails with `agent lost` (default 300).
    pub agent_lost_seconds: Option<u32>,
    /// Bytes of output kept per stream and attempt, the tail (default 10 MiB).
    pub run_output_cap_bytes: Option<i64>,
    /// Slots missed by less than this while the server was down run once (default 900).
    pub misfire_grace_seconds: Option<u32>,
    /// The master key file (default `<data_dir>/master.key`); `BATON_MASTER_KEY` wins over it.
    pub master_key_file: Option<PathBuf>,
    /// Attempts at delivering one alert before it is given up (1-20, default 6).
    pub alert_attempts: Option<u32>,
    /// Milliseconds before the first retry of an alert; each next one waits twice as long (default 2000).
    pub alert_retry_base_ms: Option<u64>,
    /// Seconds between deadline checks (1-300, default 15).
    pub alert_check_seconds: Option<u32>,
    /// Seconds an instance lease lasts unless renewed (3-300, default 10): a server that stops
    /// renewing loses its instances to a survivor within this and 2 s.
    pub lease_seconds: Option<u32>,
    /// Seconds a stopping server waits for its connections and writes (1-300, default 5).
    pub shutdown_seconds: Option<u32>,
    /// The largest request body read, in bytes (1 KiB-1 GiB, default 16 MiB).
    pub max_body_bytes: Option<usize>,
    /// Origins (`https://ops.example.com`) besides the server's own whose pages may send the
    /// session cookie or open the GraphQL socket.
    pub allowed_origins: Option<Vec<String>>,
    /// The PEM certificate chain to serve HTTPS with (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// GraphQL sockets open at once: in all (default 10,000), from one address (256), for one
    /// user (64).
    pub max_sockets: Option<usize>,
    /// Hosts webhooks may reach although they resolve to loopback, private or link-local
    /// addresses (`["hooks.internal", "127.0.0.1"]`); none by default.
    pub alert_allowed_hosts: Option<Vec<String>>,
    pub max_sockets_per_address: Option<usize>,
    pub max_sockets_per_user: Option<usize>,
}

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// 16 MiB: room for a large import, not for a memory attack.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

impl Config {
    pub fn load(file: Option<&Path>, o: Overrides) -> anyhow::Result<Config> {
        let f = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))?
            }
            None => FileConfig::default(),
        };
        let listen_text = o.listen.or(f.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = match listen_text.parse() {
            Ok(a) => a,
            Err(_) => bail!("listen: {listen_text:?} is not an address such as 127.0.0.1:8080"),
        };
        let data_dir = o.data_dir.or(f.data_dir).unwrap_or_else(|| PathBuf::from("data"));
        let database = match o.database_url.or(f.database_url) {
            Some(u) if u.trim().is_empty() => bail!("database_url: must not be empty"),
            Some(u) => DatabaseUrl::parse(u.trim()),
            None => DatabaseUrl::sqlite_in(&data_dir),
        };
        let mut agent_heartbeat = crate::agents::HeartbeatPolicy::default();
        if let Some(v) = f.agent_heartbeat_seconds {
            if !(1..=300).contains(&v) {
                bail!("agent_heartbeat_seconds: {v} must be between 1 and 300");
            }
            agent_heartbeat.interval_seconds = v;
        }
        if let Some(v) = f.agent_missed_heartbeats {
            if !(1..=100).contains(&v) {
                bail!("agent_missed_heartbeats: {v} must be between 1 and 100");
            }
            agent_heartbeat.missed = v;
        }
        let agent_lost_seconds = f.agent_lost_seconds.unwrap_or(300);
        if !(1..=86_400).contains(&agent_lost_seconds) {
            bail!("agent_lost_seconds: {agent_lost_seconds} must be between 1 and 86400");
        }
        let run_output_cap_bytes = f.run_output_cap_bytes.unwrap_or(10 * 1024 * 1024);
        if !(1024..=1 << 34).contains(&run_output_cap_bytes) {
            bail!("run_output_cap_bytes: {run_output_cap_bytes} must be between 1024 and 17179869184");
        }
        let misfire_grace_seconds = f.misfire_grace_seconds.unwrap_or(900);
        if misfire_grace_seconds > 86_400 {
            bail!("misfire_grace_seconds: {misfire_grace_seconds} must be at most 86400");
        }
        let alert_attempts = f.alert_attempts.unwrap_or(6);
        if !(1..=20).contains(&alert_attempts) {
            bail!("alert_attempts: {alert_attempts} must be between 1 and 20");
        }
        let alert_retry_base_ms = f.alert_retry_base_ms.unwrap_or(2_000);
        if !(10..=3_600_000).contains(&alert_retry_base_ms) {
            bail!("alert_retry_base_ms: {alert_retry_base_ms} must be between 10 and 3600000");
        }
        let alert_check_seconds = f.alert_check_seconds.unwrap_or(15);
        if !(1..=300).contains(&alert_check_seconds) {
            bail!("alert_check_seconds: {alert_check_seconds} must be between 1 and 300");
        }
        let lease_seconds = f.lease_seconds.unwrap_or(10);
        if !(3..=300).contains(&lease_seconds) {
            bail!("lease_seconds: {lease_seconds} must be between 3 and 300");
        }
        let shutdown_seconds = f.shutdown_seconds.unwrap_or(5);
        if !(1..=300).contains(&shutdown_seconds) {
            bail!("shutdown_seconds: {shutdown_seconds} must be between 1 and 300");
        }
        let max_body_bytes = f.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=1 << 30).contains(&max_body_bytes) {
            bail!("max_body_bytes: {max_body_bytes} must be between 1024 and 1073741824");
        }
        let allowed_origins = f.allowed_origins.unwrap_or_default();
        if let Some(bad) = allowed_origins.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://"))) {
            bail!("allowed_origins: {bad:?} must be an origin such as https://ops.example.com");
        }
        let tls = match (o.tls_cert.or(f.tls_cert), o.tls_key.or(f.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("tls_cert, tls_key: give both (the certificate chain and its private key) or neither"),
        };
        let caps = crate::socket_caps::SocketCaps::default();
        let cap = |key: &str, value: Option<usize>, default: usize| match value.unwrap_or(default) {
            n @ 1..=1_000_000 => Ok(n),
            n => Err(anyhow::anyhow!("{key}: {n} must be between 1 and 1000000")),
        };
        let socket_caps = crate::socket_caps::SocketCaps {
            total: cap("max_sockets", f.max_sockets, caps.total)?,
            per_address: cap("max_sockets_per_address", f.max_sockets_per_address, caps.per_address)?,
            per_user: cap("max_sockets_per_user", f.max_sockets_per_user, caps.per_user)?,
        };
        let master_key_file = f.master_key_file.unwrap_or_else(|| data_dir.join("master.key"));
        Ok(Config {
            socket_caps,
            lease_seconds,
            shutdown_seconds,
            max_body_bytes,
            tls,
            allowed_origins: allowed_origins.into_iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
            master_key_file,
            alerts: crate::alerts::AlertPolicy {
                attempts: alert_attempts,
                retry_base: std::time::Duration::from_millis(alert_retry_base_ms),
                check_every: std::time::Duration::from_secs(u64::from(alert_check_seconds)),
                allowed_hosts: std::sync::Arc::new(f.alert_allowed_hosts.unwrap_or_default()),
            },
            listen,
            data_dir,
            database,
            agent_heartbeat,
            agent_lost_seconds,
            run_output_cap_bytes,
            misfire_grace_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_overrides() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database, DatabaseUrl::Sqlite(PathBuf::from("data/baton.db")));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\ndatabase_url = \"postgres://u@127.0.0.1/b\"\n").unwrap();
        let c =
            Config::load(Some(&path), Overrides { listen: Some("127.0.0.1:0".into()), ..Default::default() }).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert_eq!(c.database, DatabaseUrl::Postgres("postgres://u@127.0.0.1/b".into()));
    }

    #[test]
    fn bad_config_is_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton.toml");
        std::fs::write(&path, "listen = 8080\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&path), Overrides::default()).unwrap_err());
        assert!(e.contains("baton.toml") && e.contains("invalid type"), "{e}");
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&path), Overrides::default()).unwrap_err());
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = Config::load(None, Overrides { listen: Some("localhost".into()), ..Default::default() }).unwrap_err();
        assert_eq!(e.to_string(), "listen: \"localhost\" is not an address such as 127.0.0.1:8080");
        let e = Config::load(Some(Path::new("/nonexistent/baton.toml")), Overrides::default()).unwrap_err();
        assert!(format!("{e:#}").starts_with("reading config file /nonexistent/baton.toml"));
    }
}
