//! Helpers for end-to-end tests over the real binaries: start `baton` on port 0 with a fresh data
//! directory, wait for conditions with a deadline (never a fixed sleep), and clean up on drop.
#![allow(clippy::unwrap_used)]

pub mod sink;

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The directory holding the workspace's built binaries (target/debug when tests run in debug).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BATON_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("target dir")
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing: build it first (cargo build --workspace --bins)", path.display());
    path
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `baton serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base_url: String,
    pub data_dir: tempfile::TempDir,
    /// The first superadmin's password, printed once on first start.
    pub admin_password: String,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the real binary on 127.0.0.1:0 with a fresh data directory and waits until it
    /// prints the address it listens on.
    pub fn start() -> Result<Server> {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Result<Server> {
        Self::start_in(tempfile::tempdir()?, extra)
    }

    /// Starts on an existing data directory (prepared, say, with `baton user create`).
    pub fn start_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Result<Server> {
        Self::start_at(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts on an existing data directory and a given address (to restart on the same port).
    pub fn start_at(data_dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> Result<Server> {
        Self::start_env(data_dir, listen, extra, &[])
    }

    /// Starts with extra environment variables (they win over the defaults set here).
    pub fn start_env(
        data_dir: tempfile::TempDir,
        listen: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Server> {
        let mut child = Command::new(binary("baton"))
            .args(["serve", "--listen", listen, "--data"])
            .arg(data_dir.path())
            .args(extra)
            .env_remove("BATON_DATABASE_URL")
            .env_remove("BATON_CONFIG")
            .env_remove("BATON_MASTER_KEY")
            .env("BATON_LOG", std::env::var("TEST_LOG").map(|_| "debug").unwrap_or("warn"))
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting baton")?;
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut password = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("baton: created the first superadmin: username admin, password ")
                {
                    password = rest.split_whitespace().next().unwrap_or_default().to_string();
                }
                if let Some(url) = line.strip_prefix("baton listening on ") {
                    let _ = addr_tx.send((url.to_string(), password.clone()));
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[baton {pid}] {line}");
                }
                let _ = err_tx.send(line);
            }
        });
        let (base_url, admin_password) = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let lines: Vec<String> = err_rx.try_iter().collect();
                bail!("baton did not start listening within 30 s; stderr:\n{}", lines.join("\n"));
            }
        };
        Ok(Server { child, base_url, data_dir, admin_password, stderr: err_rx })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Runs a GraphQL operation without credentials and returns the whole response.
    pub fn graphql(&self, query: &str, variables: serde_json::Value) -> Result<serde_json::Value> {
        self.graphql_as(None, query, variables)
    }

    /// Runs a GraphQL operation with a bearer token (if any) and returns the whole response.
    pub fn graphql_as(
        &self,
        token: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<serde_json::Value> {
        graphql_at(&self.base_url, token, query, variables)
    }

    /// Logs in and returns the bearer token.
    pub fn login(&self, username: &str, password: &str) -> Result<String> {
        let res = self.graphql(
            "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }",
            serde_json::json!({ "u": username, "p": password }),
        )?;
        res.pointer("/data/login/token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .with_context(|| format!("login failed: {res}"))
    }

    /// The superadmin's token.
    pub fn admin(&self) -> Result<String> {
        self.login("admin", &self.admin_password)
    }

    /// Kills the server (SIGKILL) and hands back its data directory, to start it again.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit: how long it took, and
    /// whether it exited successfully.
    pub fn terminate(&mut self, timeout: Duration) -> Result<(Duration, bool)> {
        let started = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let status = wait_for("the server to exit", timeout, || self.child.try_wait().ok().flatten())?;
        Ok((started.elapsed(), status.success()))
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Chromium, if installed.
/// Runs a GraphQL operation against the server at `base_url` (from any thread).
pub fn graphql_at(
    base_url: &str,
    token: Option<&str>,
    query: &str,
    variables: serde_json::Value,
) -> Result<serde_json::Value> {
    graphql_on(&ureq::Agent::new_with_defaults(), base_url, token, query, variables)
}

/// `graphql_at` over `client`'s connections (kept alive between requests), as a long-lived API
/// client would.
pub fn graphql_on(
    client: &ureq::Agent,
    base_url: &str,
    token: Option<&str>,
    query: &str,
    variables: serde_json::Value,
) -> Result<serde_json::Value> {
    let body = serde_json::json!({ "query": query, "variables": variables });
    let mut req = client.post(&format!("{base_url}/graphql"));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send_json(&body).context("POST /graphql")?;
    Ok(resp.body_mut().read_json()?)
}

/// The Python that runs the test SMTP server (`cargo xtask test` prepares it in target/pyenv).
pub fn smtp_python() -> Option<PathBuf> {
    std::env::var_os("BATON_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| Some(bin_dir().parent()?.join("pyenv/bin/python")))
        .filter(|p| p.exists())
}

pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// True when running in CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The `extensions.code` of the first error of a GraphQL response, if any.
pub fn error_code(res: &serde_json::Value) -> Option<String> {
    res.pointer("/errors/0/extensions/code").and_then(|c| c.as_str()).map(str::to_string)
}

/// The data of a response that must have succeeded.
pub fn data(res: serde_json::Value) -> serde_json::Value {
    assert!(res.get("errors").is_none_or(|e| e.as_array().is_none_or(|a| a.is_empty())), "unexpected errors: {res}");
    res["data"].clone()
}

/// The run-as users the tests' agents allow unless a test says otherwise: the agent runs as root
/// in CI, and root is allowed only by name.
pub const TEST_RUN_AS: [&str; 2] = ["--allow-run-as", "root,nobody,batch,no_such_user_here"];

/// A running `baton-agent`, killed when dropped.
pub struct Agent {
    pub child: Child,
    pub state_dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
    stderr: mpsc::Receiver<String>,
}

impl Agent {
    /// Enrolls an agent through `api` (a token of its own, made by `admin`), starts it against
    /// `servers` (one URL or several) and waits until `api` lists it ONLINE.
    pub fn enrolled(api: &Server, admin: &str, servers: &str, name: &str, queues: &str) -> Result<Agent> {
        let made = data(api.graphql_as(
            Some(admin),
            "mutation($n: String!) { createAgentToken(name: $n) { token } }",
            serde_json::json!({ "n": name }),
        )?);
        let token = made["createAgentToken"]["token"].as_str().context("no token made")?.to_string();
        let agent = Agent::start(servers, &token, name, queues)?;
        wait_for(&format!("agent {name} online"), Duration::from_secs(20), || {
            let res = data(api.graphql_as(Some(admin), "{ agents { name status } }", serde_json::json!({})).ok()?);
            res["agents"].as_array()?.iter().any(|a| a["name"] == name && a["status"] == "ONLINE").then_some(())
        })?;
        Ok(agent)
    }

    /// Starts the real agent binary against `server` with the given token, name and queues.
    pub fn start(server: &str, token: &str, name: &str, queues: &str) -> Result<Agent> {
        Self::start_with_args(server, token, name, queues, &[])
    }

    /// Starts the agent on a state directory the caller keeps (to restart it on the same state).
    pub fn start_with_state(server: &str, token: &str, name: &str, queues: &str, state_dir: &Path) -> Result<Agent> {
        Self::spawn(server, token, name, queues, state_dir, &[])
    }

    /// Starts the agent with more flags, on a state directory of its own.
    pub fn start_with_args(server: &str, token: &str, name: &str, queues: &str, extra: &[&str]) -> Result<Agent> {
        let dir = tempfile::tempdir()?;
        let mut a = Self::spawn(server, token, name, queues, dir.path(), extra)?;
        a._owned = Some(dir);
        Ok(a)
    }

    fn spawn(server: &str, token: &str, name: &str, queues: &str, state_dir: &Path, extra: &[&str]) -> Result<Agent> {
        let state_dir = state_dir.to_path_buf();
        let mut child = Command::new(binary("baton-agent"))
            .args(["--server", server, "--token", token, "--name", name, "--queues", queues, "--state-dir"])
            .arg(&state_dir)
            .args(if extra.iter().any(|a| a.starts_with("--allow-run-as")) { &[][..] } else { &TEST_RUN_AS[..] })
            .args(extra)
            // Each step of each run it sends and each acknowledgement (debug): what a test
            // reports when a run does not end.
            .env("BATON_LOG", std::env::var("TEST_LOG").map(|_| "debug").unwrap_or("info,baton_agent=debug"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting baton-agent")?;
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[agent] {line}");
                }
                let _ = tx.send(line);
            }
        });
        Ok(Agent { child, state_dir, _owned: None, stderr: rx })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the agent to exit and returns its exit code and everything it wrote to stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(Option<i32>, String)> {
        let status = wait_for("the agent to exit", timeout, || self.child.try_wait().ok().flatten())?;
        // Read until the reader thread has seen the end of the pipe.
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        Ok((status.code(), lines.join("\n")))
    }

    /// What the agent wrote to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Sends a signal (by name, e.g. STOP or CONT) to the agent.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an agent enrollment token with the CLI, straight into a server's database, and
/// returns the token (the command's last line).
pub fn agent_token_cli(data_dir: &Path, name: &str) -> Result<String> {
    let out = Command::new(binary("baton"))
        .args(["agent-token", "create", "--name", name, "--data"])
        .arg(data_dir)
        .output()?;
    if !out.status.success() {
        bail!("baton agent-token create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().last().unwrap_or_default().trim().to_string())
}

/// This host's name, as the agent reads it (and claims it in its hello).
pub fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// A free port on 127.0.0.1 (for a server that must come back on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit(") ").next().and_then(|r| r.chars().next());
        state != Some('Z')
    })
}

/// A process's resident memory, in bytes (0 once it is gone).
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// A fresh, empty database on the PostgreSQL server of `BATON_TEST_DATABASE_URL` (set by
/// `cargo xtask test`), as a URL for `--database-url`; None when the variable is not set.
pub fn fresh_postgres() -> Option<String> {
    use diesel::{Connection, RunQueryDsl};
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::env::var("BATON_TEST_DATABASE_URL").ok()?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    let name = format!("baton_e2e_{}_{stamp}_{n}", std::process::id());
    let mut admin = diesel::PgConnection::establish(&base).expect("connect to BATON_TEST_DATABASE_URL");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create a test database");
    let (prefix, _) = base.rsplit_once('/').expect("a URL with a database path");
    Some(format!("{prefix}/{name}"))
}

/// The databases an end-to-end test runs on: SQLite (None: the server's default under its data
/// directory) and, when the test command started one, a fresh PostgreSQL database.
pub fn databases() -> Vec<Option<String>> {
    std::iter::once(None).chain(fresh_postgres().map(Some)).collect()
}

/// How many times each (run, attempt) was executed, from a log the tests' commands append
/// `$BATON_RUN_ID $BATON_ATTEMPT` to: a second execution of an attempt shows as a count of 2.
pub fn executions(log: &Path) -> std::collections::BTreeMap<(i64, i64), usize> {
    let mut out = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let mut words = line.split_whitespace().map(|w| w.parse::<i64>().unwrap());
        *out.entry((words.next().unwrap(), words.next().unwrap())).or_insert(0) += 1;
    }
    out
}

/// The pid of the server holding the first instance's lease (a server's name is HOST-PID-RANDOM).
pub fn lease_holder_pid(store: &baton_server::db::Db) -> Option<u32> {
    let mut c = store.conn().ok()?;
    let holders = baton_server::db::instance_leases::holders(&mut c).ok()?;
    holders.first()?.1.rsplit('-').nth(1)?.parse().ok()
}

/// A graphql-transport-ws connection to `/graphql/ws` with one subscription started.
pub struct Subscription {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
}

impl Subscription {
    /// Connects with `token`, subscribes to `query` and waits for the server's acknowledgement.
    pub fn start(base_url: &str, token: &str, query: &str, variables: serde_json::Value) -> Result<Subscription> {
        use tungstenite::client::IntoClientRequest;
        let mut req = format!("{}/graphql/ws", base_url.replacen("http", "ws", 1)).into_client_request()?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut ws, _) = tungstenite::connect(req)?;
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
        }
        let init = serde_json::json!({ "type": "connection_init", "payload": { "token": token } });
        ws.send(tungstenite::Message::Text(init.to_string().into()))?;
        let mut sub = Subscription { ws };
        let ack = sub.next_frame(Duration::from_secs(10))?.context("no connection_ack")?;
        if ack["type"] != "connection_ack" {
            bail!("expected connection_ack, got {ack}");
        }
        let start = serde_json::json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        sub.ws.send(tungstenite::Message::Text(start.to_string().into()))?;
        Ok(sub)
    }

    /// The next frame within `timeout`, or None.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => return Ok(Some(serde_json::from_str(&t)?)),
                Ok(tungstenite::Message::Close(why)) => {
                    bail!(
                        "the server closed the socket: {}",
                        why.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default()
                    )
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Every frame up to and including the first for which `last` holds; fails after `timeout`.
    pub fn frames_until(
        &mut self,
        timeout: Duration,
        mut last: impl FnMut(&serde_json::Value) -> bool,
    ) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(f) = self.next_frame(left)? {
                let done = last(&f);
                out.push(f);
                if done {
                    return Ok(out);
                }
            }
        }
        bail!("timed out after {timeout:?}; frames so far: {out:?}")
    }
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, as PEM files.
pub struct TestCertificates {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's certificate, for a client that trusts it.
    pub ca_der: Vec<u8>,
}

impl TestCertificates {
    /// Makes a new CA and server certificate (rcgen, at test time).
    pub fn new() -> Result<TestCertificates> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Baton test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.distinguished_name.push(DnType::CommonName, "baton test server");
        let cert = params.signed_by(&key, &ca)?;
        let dir = tempfile::tempdir()?;
        let (ca_path, cert_path, key_path) =
            (dir.path().join("ca.pem"), dir.path().join("server.pem"), dir.path().join("server.key"));
        std::fs::write(&ca_path, ca.pem())?;
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        let ca_der = ca.der().to_vec();
        Ok(TestCertificates { dir, ca: ca_path, cert: cert_path, key: key_path, ca_der })
    }

    /// An HTTP client that trusts this CA only.
    pub fn client(&self) -> ureq::Agent {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let roots = RootCerts::Specific(std::sync::Arc::new(vec![Certificate::from_der(&self.ca_der).to_owned()]));
        ureq::Agent::config_builder().tls_config(TlsConfig::builder().root_certs(roots).build()).build().into()
    }
}

/// A GraphQL request to a server on 127.0.0.1 sent from another loopback address `from` (say
/// 127.0.0.2), as a client on another host: the server sees that address. Plain HTTP/1.1.
pub fn graphql_from(
    from: std::net::Ipv4Addr,
    base_url: &str,
    query: &str,
    variables: serde_json::Value,
) -> Result<serde_json::Value> {
    use std::io::{Read, Write};
    let host = base_url.trim_start_matches("http://");
    let to: std::net::SocketAddr = host.parse().context("a server address")?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    socket.connect(&to.into())?;
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, json) = response.split_once("\r\n\r\n").context("an HTTP response")?;
    // A chunked body (actix answers JSON with a length, but allow for chunks): take the JSON.
    let start = json.find('{').context("a JSON body")?;
    let end = json.rfind('}').context("a JSON body")?;
    Ok(serde_json::from_str(&json[start..=end])?)
}

/// A raw agent connection (`/agent`), for tests that speak the protocol themselves.
pub type AgentSocket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens an agent connection and says hello as `name` with `token` (hostname `h`, no queues);
/// the server's first answer.
pub fn agent_hello(base_url: &str, token: &str, name: &str) -> Result<(AgentSocket, serde_json::Value)> {
    agent_hello_as(base_url, token, name, "h", &[])
}

/// The same, claiming `hostname` and `queues` (an enrollment token keeps what its agent first
/// claimed).
pub fn agent_hello_as(
    base_url: &str,
    token: &str,
    name: &str,
    hostname: &str,
    queues: &[&str],
) -> Result<(AgentSocket, serde_json::Value)> {
    let (mut ws, _) = tungstenite::connect(format!("{}/agent", base_url.replacen("http", "ws", 1)).as_str())?;
    let hello = serde_json::json!({"type": "hello", "protocol": 1, "token": token, "name": name, "hostname": hostname,
                                   "queues": queues, "version": "x", "os": "y", "last_acked_seq": 0});
    ws.send(tungstenite::Message::Text(hello.to_string().into()))?;
    let answer = next_agent_frame(&mut ws).context("the server closed the connection")?;
    Ok((ws, answer))
}

/// The next text frame of an agent connection, or None once it is closed.
pub fn next_agent_frame(ws: &mut AgentSocket) -> Option<serde_json::Value> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A PostgreSQL cluster of one test's own (`initdb` into a temporary directory, its own port on
/// 127.0.0.1), for the tests that stop or stall PostgreSQL: no other test loses its database.
/// As root, the cluster runs as the `postgres` user (PostgreSQL refuses to run as root).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_user: Option<&'static str>,
}

impl PrivatePostgres {
    /// Starts a new cluster, or None when PostgreSQL's server programs are not installed here.
    pub fn start() -> Option<PrivatePostgres> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("baton-pg-").tempdir().expect("a temporary directory");
        let as_user = is_root().then_some("postgres");
        if let Some(user) = as_user {
            let ok = Command::new("chown").args(["-R", user]).arg(dir.path()).status().is_ok_and(|s| s.success());
            assert!(ok, "chown of {} to {user}", dir.path().display());
        }
        let pg = PrivatePostgres { dir, bin, port: free_port(), as_user };
        let data = pg.data_dir();
        let out = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "baton", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        pg.resume_service();
        Some(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// A URL for `--database-url`.
    pub fn url(&self) -> String {
        format!("postgres://baton@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the cluster (fast shutdown: sessions are ended, as when a database host goes away).
    pub fn stop(&self) {
        let out = self.command("pg_ctl").args(["stop", "-m", "fast", "-w", "-D"]).arg(self.data_dir()).output();
        assert!(out.as_ref().is_ok_and(|o| o.status.success()), "pg_ctl stop: {out:?}");
    }

    /// Starts it again (also the first start), and waits until it takes connections.
    pub fn resume_service(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let out = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(&log)
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap_or_default();
        let Some(main) = pid_file.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else { return Vec::new() };
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat.rsplit(") ").next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    /// SIGSTOPs (true) or SIGCONTs (false) the whole cluster: connections stay open and nothing
    /// answers, as when a database host stalls.
    pub fn stall(&self, stalled: bool) {
        let sig = if stalled { "-STOP" } else { "-CONT" };
        for pid in self.processes() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stall(false);
        let _ = self.command("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(self.data_dir()).output();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where PostgreSQL's server programs are (Debian puts them under /usr/lib/postgresql/VERSION/bin).
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    versions.pop()
}

/// A tmpfs mounted for one test, unmounted when dropped.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size` (such as "2m"), or None when this process may not mount (not root).
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    /// Bytes still free on it.
    pub fn free(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(self.dir.path()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
