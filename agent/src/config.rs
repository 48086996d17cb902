//! The agent's options: flags, then environment variables, then a TOML file, then defaults.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;

/// Baton's agent: runs commands on this host for a Baton server and reports every step.
#[derive(Parser, Debug, Default)]
#[command(name = "baton-agent", version)]
pub struct Cli {
    /// The server's URL; several, comma-separated, are tried in turn (http://host:8080).
    #[arg(long, env = "BATON_SERVER", value_delimiter = ',')]
    pub server: Vec<String>,
    /// The enrollment token (`baton agent-token create --name N` prints one).
    #[arg(long, env = "BATON_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// This agent's name, unique among the server's agents (default: the hostname).
    #[arg(long, env = "BATON_AGENT_NAME")]
    pub name: Option<String>,
    /// Queues this agent serves, comma-separated; a task whose target is one of them may run here.
    #[arg(long, env = "BATON_AGENT_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Where the agent keeps its durable state (event log, runs it accepted).
    #[arg(long, env = "BATON_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// How long the files of a finished attempt (journal, default stdout and stderr) stay in the
    /// state directory after its end was reported [default: 604800, a week].
    #[arg(long, env = "BATON_AGENT_KEEP_RUNS_SECONDS")]
    pub keep_runs_seconds: Option<u64>,
    /// The users this agent may run jobs as, comma-separated [default: the user the agent runs
    /// as, unless that is root: root is allowed only when named here].
    #[arg(long, env = "BATON_AGENT_ALLOW_RUN_AS", value_delimiter = ',')]
    pub allow_run_as: Vec<String>,
    /// Trust the servers' certificates that this CA (a PEM file) signed, instead of the system's
    /// roots.
    #[arg(long, env = "BATON_AGENT_CA")]
    pub ca: Option<PathBuf>,
    /// Allow plain http:// and ws:// to a server that is not on this host (tokens and
    /// credentials then cross the network in clear).
    #[arg(long, env = "BATON_AGENT_INSECURE")]
    pub insecure: bool,
    /// A TOML file with server, token, name, queues, state_dir, keep_runs_seconds, allow_run_as,
    /// ca and insecure.
    #[arg(long, env = "BATON_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<Vec<String>>,
    token: Option<String>,
    name: Option<String>,
    queues: Option<Vec<String>>,
    state_dir: Option<PathBuf>,
    keep_runs_seconds: Option<u64>,
    allow_run_as: Option<Vec<String>>,
    ca: Option<PathBuf>,
    insecure: Option<bool>,
}

/// A week: how long a finished attempt's files are kept unless told otherwise.
const KEEP_RUNS_SECONDS: u64 = 7 * 24 * 3600;

/// Settled options.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<String>,
    pub token: String,
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub state_dir: PathBuf,
    pub keep_runs: std::time::Duration,
    /// The users jobs may run as here.
    pub allow_run_as: Vec<String>,
    /// How wss:// servers are checked: by the CA of `--ca` (None: the system's roots).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a server URL names this host (loopback), where plain text never leaves the machine:
/// the host as a URL parser reads it, so `http://127.0.0.1:1@elsewhere/` is elsewhere.
fn on_this_host(url: &str) -> bool {
    match url::Url::parse(url).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A TLS client that trusts the certificates the CA in `ca` (PEM) signed, and nothing else.
fn client_tls(ca: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("ca: reading {}: {e}", ca.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        bail!("ca: {} holds no CA certificate", ca.display());
    }
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The user the agent runs as, unless root (who must be allowed by name).
fn own_user() -> Option<String> {
    let me = nix::unistd::Uid::current();
    if me.is_root() {
        return None;
    }
    nix::unistd::User::from_uid(me).ok().flatten().map(|u| u.name)
}

/// Creates `dir` (and its parents) if needed, and makes it the agent's alone (0700): it holds
/// the event log and every attempt's journal and output.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn check_name(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 253 || !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        bail!("{what}: {v:?} may contain only letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config> {
        let file = match &cli.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {}", p.display(), e.message()))?
            }
            None => FileConfig::default(),
        };
        let servers = if cli.server.is_empty() { file.server.unwrap_or_default() } else { cli.server };
        let servers: Vec<String> =
            servers.into_iter().map(|s| s.trim().trim_end_matches('/').to_string()).filter(|s| !s.is_empty()).collect();
        if servers.is_empty() {
            bail!("server: give the server's URL with --server (or BATON_SERVER)");
        }
        let insecure = cli.insecure || file.insecure.unwrap_or(false);
        for s in &servers {
            let plain = s.starts_with("http://") || s.starts_with("ws://");
            if !(plain || s.starts_with("https://") || s.starts_with("wss://")) {
                bail!("server: {s:?} must start with http://, https://, ws:// or wss://");
            }
            if plain && !insecure && !on_this_host(s) {
                bail!(
                    "server: {s} is not encrypted (the token and credentials would cross the network in clear); \
                     use https:// or wss://, or --insecure to allow it"
                );
            }
        }
        let tls = match cli.ca.or(file.ca) {
            Some(ca) => Some(std::sync::Arc::new(client_tls(&ca)?)),
            None => None,
        };
        let token = cli
            .token
            .or(file.token)
            .filter(|t| !t.is_empty())
            .context("token: give the enrollment token with --token (or BATON_AGENT_TOKEN)")?;
        let hostname = hostname();
        let name = cli.name.or(file.name).unwrap_or_else(|| hostname.clone());
        check_name("name", &name)?;
        let queues = if cli.queues.is_empty() { file.queues.unwrap_or_default() } else { cli.queues };
        for q in &queues {
            check_name("queues", q)?;
        }
        let allow_run_as =
            if cli.allow_run_as.is_empty() { file.allow_run_as.unwrap_or_default() } else { cli.allow_run_as };
        let allow_run_as: Vec<String> =
            allow_run_as.into_iter().map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
        for u in &allow_run_as {
            check_name("allow_run_as", u)?;
        }
        let allow_run_as = if allow_run_as.is_empty() { own_user().into_iter().collect() } else { allow_run_as };
        let state_dir = cli.state_dir.or(file.state_dir).unwrap_or_else(|| PathBuf::from("baton-agent-state"));
        private_dir(&state_dir).with_context(|| format!("creating the state directory {}", state_dir.display()))?;
        let keep = cli.keep_runs_seconds.or(file.keep_runs_seconds).unwrap_or(KEEP_RUNS_SECONDS);
        if keep == 0 {
            bail!("keep_runs_seconds: must be at least 1 (a finished attempt's files are needed until it is reported)");
        }
        let keep_runs = std::time::Duration::from_secs(keep);
        Ok(Config { servers, token, name, hostname, queues, state_dir, keep_runs, allow_run_as, tls })
    }

    /// The WebSocket URL of a server.
    pub fn socket_url(server: &str) -> String {
        let ws = server.trim_end_matches('/').replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        format!("{ws}/agent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        let state = dir.path().join("state");
        std::fs::write(&file, format!("server = [\"http://a:1\", \"http://b:2\"]\ninsecure = true\ntoken = \"t\"\nname = \"from_file\"\nqueues = [\"q1\"]\nstate_dir = {state:?}\n")).unwrap();
        let cfg =
            Config::from_cli(Cli { config: Some(file.clone()), name: Some("from_flag".into()), ..Default::default() })
                .unwrap();
        assert_eq!(cfg.servers, vec!["http://a:1", "http://b:2"]);
        assert_eq!((cfg.name.as_str(), cfg.queues.clone()), ("from_flag", vec!["q1".to_string()]));
        assert!(state.is_dir(), "the state directory is created");
        assert_eq!(Config::socket_url("https://x:8443/"), "wss://x:8443/agent");
        assert_eq!(Config::socket_url("http://127.0.0.1:80"), "ws://127.0.0.1:80/agent");

        let err = Config::from_cli(Cli {
            config: Some(file.clone()),
            queues: vec!["bad queue".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("queues:"), "{err}");
        let err =
            Config::from_cli(Cli { server: vec!["ftp://x".into()], token: Some("t".into()), ..Default::default() })
                .unwrap_err();
        assert!(err.to_string().starts_with("server:"), "{err}");
        let err =
            Config::from_cli(Cli { server: vec!["http://127.0.0.1:1".into()], ..Default::default() }).unwrap_err();
        assert!(err.to_string().starts_with("token:"), "{err}");
        // Plain text only where it stays on this host, unless --insecure says so.
        let plain = |url: &str, insecure: bool| {
            let cli = Cli {
                server: vec![url.into()],
                token: Some("t".into()),
                state_dir: Some(state.clone()),
                insecure,
                ..Default::default()
            };
            Config::from_cli(cli).map(|_| ()).map_err(|e| e.to_string())
        };
        for ok in ["http://127.0.0.1:8080", "ws://localhost:1", "http://[::1]:8080", "https://baton.example.com"] {
            assert_eq!(plain(ok, false), Ok(()), "{ok}");
        }
        let fooled =
            ["http://127.0.0.1:1@baton.example.com/", "ws://localhost@10.0.0.1:8080", "http://[::1]@example.com"];
        let elsewhere = ["http://baton.example.com:8080", "ws://10.0.0.1:8080", "http://127.0.0.1.example.com"];
        for refused in elsewhere.into_iter().chain(fooled) {
            let err = plain(refused, false).unwrap_err();
            assert!(err.starts_with("server:") && err.contains("--insecure"), "{refused}: {err}");
            assert_eq!(plain(refused, true), Ok(()), "{refused} with --insecure");
        }
        assert_eq!(cfg.keep_runs, std::time::Duration::from_secs(7 * 24 * 3600), "a week by default");
        let err =
            Config::from_cli(Cli { config: Some(file.clone()), keep_runs_seconds: Some(0), ..Default::default() })
                .unwrap_err();
        assert!(err.to_string().starts_with("keep_runs_seconds:"), "{err}");
        std::fs::write(&file, "sever = \"typo\"\n").unwrap();
        let err = Config::from_cli(Cli { config: Some(file), ..Default::default() }).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `sever`"), "{err:#}");
    }
}
