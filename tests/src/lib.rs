//! Helpers for end-to-end tests over the real binaries: start `baton` on port 0 with a fresh data
//! directory, wait for conditions with a deadline (never a fixed sleep), and clean up on drop.
#![allow(clippy::unwrap_used)]

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
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the real binary on 127.0.0.1:0 with a fresh data directory and waits until it
    /// prints the address it listens on.
    pub fn start() -> Result<Server> {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Result<Server> {
        let data_dir = tempfile::tempdir()?;
        let mut child = Command::new(binary("baton"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data_dir.path())
            .args(extra)
            .env_remove("BATON_DATABASE_URL")
            .env_remove("BATON_CONFIG")
            .env("BATON_LOG", std::env::var("TEST_LOG").map(|_| "debug").unwrap_or("warn"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting baton")?;
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("baton listening on ") {
                    let _ = addr_tx.send(url.to_string());
                }
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[baton] {line}");
                }
                let _ = err_tx.send(line);
            }
        });
        let base_url = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let lines: Vec<String> = err_rx.try_iter().collect();
                bail!("baton did not start listening within 30 s; stderr:\n{}", lines.join("\n"));
            }
        };
        Ok(Server { child, base_url, data_dir, stderr: err_rx })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Runs a GraphQL query and returns the whole response (data and errors).
    pub fn graphql(&self, query: &str, variables: serde_json::Value) -> Result<serde_json::Value> {
        let body = serde_json::json!({ "query": query, "variables": variables });
        let mut resp = ureq::post(&self.url("/graphql")).send_json(&body).context("POST /graphql")?;
        Ok(resp.body_mut().read_json()?)
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
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// True when running in CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}
