//! The command line's client side: `baton login`, `baton export` and `baton import` talk to a
//! running server's GraphQL API with a token, as any automation would.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where `baton login` keeps the server and token for later commands.
pub fn credentials_path() -> PathBuf {
    if let Ok(p) = std::env::var("BATON_CREDENTIALS") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".config/baton/credentials.json")
}

/// A server and the token to use with it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: String,
    pub token: Option<String>,
}

impl Remote {
    /// Flags and environment first, then what `baton login` saved.
    pub fn resolve(server: Option<String>, token: Option<String>) -> Result<Remote> {
        let saved: Option<Value> =
            std::fs::read_to_string(credentials_path()).ok().and_then(|t| serde_json::from_str(&t).ok());
        let saved_str = |k: &str| saved.as_ref().and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_string);
        let server = server.or_else(|| saved_str("server")).unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let token = token.or_else(|| saved_str("token"));
        Ok(Remote { server: server.trim_end_matches('/').to_string(), token })
    }

    /// Runs one GraphQL operation; GraphQL errors become one readable error.
    pub fn graphql(&self, query: &str, variables: Value) -> Result<Value> {
        let url = format!("{}/graphql", self.server);
        let mut req = ureq::post(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req
            .send_json(json!({ "query": query, "variables": variables }))
            .with_context(|| format!("calling {url}"))?;
        let body: Value = resp.body_mut().read_json().context("reading the server's answer")?;
        if let Some(errors) = body.get("errors").and_then(|e| e.as_array()).filter(|e| !e.is_empty()) {
            let msgs: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.pointer("/extensions/code").and_then(|c| c.as_str()).unwrap_or("ERROR");
                    format!("{code}: {}", e.get("message").and_then(|m| m.as_str()).unwrap_or("?"))
                })
                .collect();
            bail!("{}", msgs.join("; "));
        }
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }
}

pub fn login(remote: &Remote, username: &str, password: &str) -> Result<String> {
    let data = remote.graphql(
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token user { role } } }",
        json!({ "u": username, "p": password }),
    )?;
    let token = data.pointer("/login/token").and_then(|t| t.as_str()).context("no token in the answer")?.to_string();
    let path = credentials_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&json!({ "server": remote.server, "token": token }))?;
    write_private(&path, &text)?;
    Ok(token)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn export(remote: &Remote, instances: &[String]) -> Result<Value> {
    let vars = if instances.is_empty() { json!({}) } else { json!({ "i": instances }) };
    let data = remote.graphql("mutation($i: [String!]) { exportDefinitions(instances: $i) }", vars)?;
    data.get("exportDefinitions").cloned().context("no document in the answer")
}

pub fn import(remote: &Remote, document: Value, dry_run: bool, replace: bool) -> Result<Value> {
    let data = remote.graphql(
        "mutation($d: JSON!, $dry: Boolean!, $m: ImportMode!) { importDefinitions(document: $d, dryRun: $dry, mode: $m) {
            applied created { kind instance name } deleted { kind instance name }
            changed { item { kind instance name } fields { field before after } }
            errors { path rule message } } }",
        json!({ "d": document, "dry": dry_run, "m": if replace { "REPLACE" } else { "MERGE" } }),
    )?;
    data.get("importDefinitions").cloned().context("no plan in the answer")
}
