//! Sends one queued alert through its integration: the payload each channel expects (built by
//! pure functions, tested field by field), HTTP through ureq, e-mail through lettre's SMTP
//! transport. Secrets are read from the vault at send time and scrubbed from every error text.

use crate::db::{self, alert_deliveries::DeliveryRow, DbConn};
use crate::vault::Vault;
use baton_schema::alert::{Channel, Integration, IntegrationDraft, SmtpSecurity};
use baton_schema::placeholder::{expand, PlaceholderContext};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a delivery attempt failed, and whether trying again can help.
#[derive(Debug)]
pub enum Failure {
    Retry(String),
    Permanent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(m) => f.write_str(m),
            Self::Permanent(m) => write!(f, "{m} (not retried)"),
        }
    }
}

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

const SEND_TIMEOUT: Duration = Duration::from_secs(15);

fn str_of(details: &Value, key: &str) -> String {
    details.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn values_of(details: &Value) -> HashMap<String, String> {
    details
        .get("values")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn colour(status: &str) -> &'static str {
    match status {
        "SUCCESS" => "2EB67D",
        "TEST" => "1D9BD1",
        _ => "E01E5A",
    }
}

/// The request an HTTP channel makes for a delivery; `secret` is the webhook URL (or, for
/// PagerDuty, the routing key), `credentials` the values of the keys its headers name.
pub fn http_call(
    channel: &Channel,
    d: &DeliveryRow,
    details: &Value,
    secret: &str,
    credentials: &HashMap<String, String>,
) -> Option<HttpCall> {
    let status = str_of(details, "status");
    let json_headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let call = |body: Value| HttpCall {
        method: "POST".into(),
        url: secret.to_string(),
        headers: json_headers.clone(),
        body: body.to_string(),
    };
    Some(match channel {
        Channel::Webhook { method, headers, body } => {
            let raw = values_of(details);
            // Each value is encoded for the body's format, so a job's output cannot add fields.
            let content_type = headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-type"));
            let format = BodyFormat::of(content_type.map_or("application/json", |h| h.value.as_str()));
            let values: HashMap<String, String> = raw.iter().map(|(k, v)| (k.clone(), format.encode(v))).collect();
            let render = |t: &str| expand(t, PlaceholderContext::Alert, &values).unwrap_or_else(|_| t.to_string());
            // A header value is one line.
            let one_line = |v: &str| v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
            let mut header_values: HashMap<String, String> =
                raw.iter().map(|(k, v)| (k.clone(), one_line(v))).collect();
            header_values.extend(credentials.iter().map(|(k, v)| (format!("C:{k}"), one_line(v))));
            let render_header =
                |t: &str| expand(t, PlaceholderContext::Header, &header_values).unwrap_or_else(|_| t.to_string());
            let body = match body {
                Some(t) => render(t),
                None => json!({
                    "subject": d.subject,
                    "message": d.message,
                    "trigger": d.trigger_on,
                    "integration": d.integration,
                    "source": d.source,
                    "run_id": d.run_id,
                    "task_name": details.get("task_name"),
                    "task_id": details.get("task_id"),
                    "group_name": details.get("group_name"),
                    "run_date": details.get("run_date"),
                    "status": details.get("status"),
                    "exit_code": details.get("exit_code"),
                    "duration_seconds": details.get("duration_seconds"),
                    "attempt": details.get("attempt"),
                    "reason": details.get("reason"),
                })
                .to_string(),
            };
            let mut hs: Vec<(String, String)> =
                headers.iter().map(|h| (h.name.clone(), render_header(&h.value))).collect();
            if !hs.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
                hs.push(("Content-Type".into(), "application/json".into()));
            }
            HttpCall { method: method.clone(), url: secret.to_string(), headers: hs, body }
        }
        // Chat messages carry a job's output: it is text there, never a mention, a link or markup.
        Channel::Slack => {
            let (subject, message) = (slack_text(&d.subject), slack_text(&d.message));
            call(json!({
                "text": format!("*{subject}*\n{message}"),
                "attachments": [{ "color": format!("#{}", colour(&status)), "text": message, "fallback": subject }],
            }))
        }
        Channel::Teams => call(json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": d.subject,
            "themeColor": colour(&status),
            "title": BodyFormat::Markup.encode(&d.subject),
            "text": markup_text(&d.message).replace('\n', "  \n"),
        })),
        Channel::Discord => {
            let mut content = format!("**{}**\n{}", d.subject, d.message);
            if content.chars().count() > 2000 {
                content = content.chars().take(1997).collect::<String>() + "...";
            }
            call(json!({ "content": content, "username": "Baton", "allowed_mentions": { "parse": [] } }))
        }
        Channel::Pagerduty { events_url, severity } => {
            // One incident per task and run date (or group): a success resolves it.
            let dedup = match details.get("run_date").and_then(Value::as_str) {
                Some(date) => format!("baton/{}/{date}", d.source),
                None => format!("baton/{}", d.source),
            };
            let body = if d.trigger_on == "success" {
                json!({ "routing_key": secret, "event_action": "resolve", "dedup_key": dedup })
            } else {
                let mut summary = d.subject.trim_start_matches("[Baton] ").to_string();
                if summary.chars().count() > 1024 {
                    summary = summary.chars().take(1024).collect();
                }
                json!({
                    "routing_key": secret,
                    "event_action": "trigger",
                    "dedup_key": dedup,
                    "payload": {
                        "summary": summary,
                        "source": "baton",
                        "severity": severity,
                        "timestamp": db::utc(d.created_at).to_rfc3339(),
                        "component": details.get("task_name"),
                        "group": details.get("group_name"),
                        "class": d.trigger_on,
                        "custom_details": {
                            "message": d.message,
                            "run_id": d.run_id,
                            "status": details.get("status"),
                            "exit_code": details.get("exit_code"),
                            "run_date": details.get("run_date"),
                        },
                    },
                })
            };
            HttpCall { method: "POST".into(), url: events_url.clone(), headers: json_headers, body: body.to_string() }
        }
        Channel::Email { .. } => return None,
    })
}

/// The format of a webhook's body, as its `Content-Type` says: what its placeholders' values
/// are encoded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    /// Inside a JSON string (or as a number): escaped as JSON string content.
    Json,
    /// `application/x-www-form-urlencoded`: percent-encoded.
    Form,
    /// XML or HTML: entities for `& < > " '`.
    Markup,
    /// Anything else (`text/plain`): as it is.
    Text,
}

impl BodyFormat {
    fn of(content_type: &str) -> BodyFormat {
        let t = content_type.to_ascii_lowercase();
        if t.contains("json") {
            BodyFormat::Json
        } else if t.contains("x-www-form-urlencoded") {
            BodyFormat::Form
        } else if t.contains("xml") || t.contains("html") {
            BodyFormat::Markup
        } else {
            BodyFormat::Text
        }
    }

    fn encode(self, v: &str) -> String {
        match self {
            BodyFormat::Json => {
                let quoted = Value::String(v.to_string()).to_string();
                quoted[1..quoted.len() - 1].to_string()
            }
            BodyFormat::Form => v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect(),
            BodyFormat::Markup => v
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;"),
            BodyFormat::Text => v.to_string(),
        }
    }
}

/// Text for Slack's mrkdwn: `& < >` escaped, so `<!channel>` or `<url|label>` stay text.
fn slack_text(v: &str) -> String {
    v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Text for a Teams card (markdown and HTML): entities for HTML, backslashes before markdown.
fn markup_text(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in BodyFormat::Markup.encode(v).chars() {
        if matches!(c, '*' | '_' | '[' | ']' | '(' | ')' | '`' | '#' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces the secret (and, for a URL, its path and query) wherever it appears.
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(secret, "***");
    if let Some(rest) = secret.split_once("://").map(|(_, r)| r) {
        if let Some((_, path)) = rest.split_once('/') {
            if path.len() >= 4 {
                out = out.replace(path, "***");
            }
        }
    }
    out
}

fn send_http(call: &HttpCall, allowed_hosts: &Arc<Vec<String>>) -> Result<String, Failure> {
    let agent = super::outbound::agent(allowed_hosts.clone(), SEND_TIMEOUT);
    let mut req = ureq::http::Request::builder().method(call.method.as_str()).uri(&call.url);
    for (n, v) in &call.headers {
        req = req.header(n, v);
    }
    let req = req.body(call.body.clone()).map_err(|e| Failure::Permanent(format!("building the request: {e}")))?;
    let resp = agent.run(req).map_err(|e| match e {
        // Refused by where it would go: trying again changes nothing.
        ureq::Error::BadUri(why) => Failure::Permanent(why),
        e => Failure::Retry(format!("sending: {e}")),
    })?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(format!("HTTP {status}")),
        300..=399 => Err(Failure::Permanent(format!("HTTP {status}: alerts do not follow redirects"))),
        408 | 425 | 429 | 500..=599 => Err(Failure::Retry(format!("HTTP {status}"))),
        _ => Err(Failure::Permanent(format!("HTTP {status}"))),
    }
}

fn send_email(
    channel: &Channel,
    d: &DeliveryRow,
    password: Option<&str>,
    allowed_hosts: &[String],
) -> Result<String, Failure> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};
    let Channel::Email { host, port, security, username, from, to, ca_file } = channel else {
        return Err(Failure::Permanent("not an e-mail integration".into()));
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| Failure::Permanent(format!("{what}: {e}"));
    let mut msg = Message::builder().from(from.parse().map_err(|e| bad("from", &e))?).subject(d.subject.clone());
    for t in to {
        msg = msg.to(t.parse().map_err(|e| bad("to", &e))?);
    }
    let msg = msg
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(d.message.clone())
        .map_err(|e| bad("building the message", &e))?;
    let tls = match security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::StartTls | SmtpSecurity::Tls => {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(path) = ca_file {
                let pem = super::outbound::read_ca_file(path).map_err(Failure::Permanent)?;
                params = params.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| bad("ca_file", &e))?);
            }
            let params = params.build_rustls().map_err(|e| bad("TLS settings", &e))?;
            if *security == SmtpSecurity::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    // Connect to the address checked (TLS still checks the certificate against `host`).
    let addr = super::outbound::smtp_address(allowed_hosts, host, *port).map_err(Failure::Permanent)?;
    let mut transport =
        SmtpTransport::builder_dangerous(addr.ip().to_string()).port(addr.port()).tls(tls).timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(pw)) = (username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), pw.to_string()));
    }
    let resp = transport.build().send(&msg).map_err(|e| {
        if e.is_permanent() {
            Failure::Permanent(format!("SMTP: {e}"))
        } else {
            Failure::Retry(format!("SMTP: {e}"))
        }
    })?;
    Ok(format!("SMTP {}", resp.code()))
}

/// A delivery ready to send: what storage had to say, read before anything goes out.
pub struct Prepared {
    integration: Integration,
    credentials: HashMap<String, String>,
}

/// Reads the delivery's integration and its credentials. The connection is not needed past
/// this: sending (up to `SEND_TIMEOUT`) must never hold the database.
pub fn prepare(c: &mut DbConn, vault: &Vault, d: &DeliveryRow) -> Result<Prepared, Failure> {
    let row = db::integrations::by_name(c, &d.integration)
        .map_err(|e| Failure::Retry(format!("reading integration {}: {e}", d.integration)))?
        .ok_or_else(|| Failure::Permanent(format!("integration {} does not exist", d.integration)))?;
    let draft: IntegrationDraft = serde_json::from_str(&row.config)
        .map_err(|e| Failure::Permanent(format!("integration {} is damaged: {e}", d.integration)))?;
    let integration = Integration::parse(&draft)
        .map_err(|e| Failure::Permanent(format!("integration {} is invalid: {e}", d.integration)))?;
    let mut credentials = HashMap::new();
    let keys = integration.credential_keys();
    // A key set through another server a moment ago is read here before it is called missing.
    if keys.iter().any(|k| vault.lookup_for(k.as_str(), row.instance_id).is_none()) {
        vault.refresh(c).map_err(|e| Failure::Retry(format!("reading the credentials again: {e}")))?;
    }
    for key in keys {
        let value = vault.lookup_for(key.as_str(), row.instance_id).ok_or_else(|| {
            Failure::Permanent(format!("credential {key} of integration {} is not set", d.integration))
        })?;
        credentials.insert(key.to_string(), value);
    }
    Ok(Prepared { integration, credentials })
}

impl Prepared {
    /// One attempt at sending; secrets are scrubbed from what it says.
    pub fn send(&self, d: &DeliveryRow, allowed_hosts: &Arc<Vec<String>>) -> Result<String, Failure> {
        let secret = self.integration.credential_key.as_ref().and_then(|k| self.credentials.get(k.as_str()).cloned());
        let details: Value = serde_json::from_str(&d.details).unwrap_or(Value::Null);
        let channel = &self.integration.channel;
        let result = match http_call(channel, d, &details, secret.as_deref().unwrap_or_default(), &self.credentials) {
            Some(call) => send_http(&call, allowed_hosts),
            None => send_email(channel, d, secret.as_deref(), allowed_hosts),
        };
        let clean = |m: String| self.credentials.values().fold(m, |m, v| scrub(&m, v));
        match result {
            Ok(m) => Ok(clean(m)),
            Err(Failure::Retry(m)) => Err(Failure::Retry(clean(m))),
            Err(Failure::Permanent(m)) => Err(Failure::Permanent(clean(m))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_schema::alert::Header;

    fn delivery(trigger: &str) -> (DeliveryRow, Value) {
        let details = json!({
            "status": "FAILED", "task_name": "load", "task_id": 3, "group_name": "", "run_date": "2026-11-28",
            "exit_code": 2, "values": { "T:task_name": "load", "P:status": "FAILED", "P:exit_code": "2" },
        });
        let now = chrono::Utc::now().naive_utc();
        (
            DeliveryRow {
                id: baton_schema::ids::AlertDeliveryId(1),
                dedupe_key: "k".into(),
                integration: "ops".into(),
                source: "task:3".into(),
                run_id: Some(baton_schema::ids::RunId(9)),
                trigger_on: trigger.into(),
                subject: "[Baton] load failed".into(),
                message: "load failed: exit code 2".into(),
                details: details.to_string(),
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                created_at: now,
                updated_at: now,
            },
            details,
        )
    }

    #[test]
    fn payloads_per_channel() {
        let (d, details) = delivery("failure");
        let hook = Channel::Webhook {
            method: "PUT".into(),
            headers: vec![
                Header { name: "X-Task".into(), value: "${T:task_name}".into() },
                Header { name: "Authorization".into(), value: "Bearer ${C:api/token}".into() },
            ],
            body: Some("{\"t\":\"${T:task_name}\",\"code\":${P:exit_code}}".into()),
        };
        let creds: HashMap<String, String> = [("api/token".to_string(), "s3cr3t".to_string())].into();
        let c = http_call(&hook, &d, &details, "http://127.0.0.1:9/hook/tok", &creds).unwrap();
        assert_eq!(c.headers[1], ("Authorization".to_string(), "Bearer s3cr3t".to_string()));
        assert_eq!((c.method.as_str(), c.url.as_str()), ("PUT", "http://127.0.0.1:9/hook/tok"));
        assert_eq!(c.body, "{\"t\":\"load\",\"code\":2}");
        assert_eq!(c.headers[0], ("X-Task".to_string(), "load".to_string()));

        let slack: Value =
            serde_json::from_str(&http_call(&Channel::Slack, &d, &details, "u", &HashMap::new()).unwrap().body)
                .unwrap();
        assert_eq!(slack["text"], "*[Baton] load failed*\nload failed: exit code 2");
        assert_eq!(
            slack_text("<!channel> & <https://evil|reset>"),
            "&lt;!channel&gt; &amp; &lt;https://evil|reset&gt;"
        );
        assert_eq!(markup_text("<b>**x**</b> [y](z)"), "&lt;b&gt;\\*\\*x\\*\\*&lt;/b&gt; \\[y\\]\\(z\\)");
        let teams: Value =
            serde_json::from_str(&http_call(&Channel::Teams, &d, &details, "u", &HashMap::new()).unwrap().body)
                .unwrap();
        assert_eq!(
            (teams["@type"].as_str(), teams["title"].as_str()),
            (Some("MessageCard"), Some("[Baton] load failed"))
        );
        let pd = Channel::Pagerduty { events_url: "http://127.0.0.1:9/v2/enqueue".into(), severity: "critical".into() };
        let call = http_call(&pd, &d, &details, "ROUTING", &HashMap::new()).unwrap();
        let body: Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(call.url, "http://127.0.0.1:9/v2/enqueue");
        assert_eq!(body["routing_key"], "ROUTING");
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "baton/task:3/2026-11-28");
        assert_eq!(body["payload"]["severity"], "critical");
        let (ok, details) = delivery("success");
        let body: Value =
            serde_json::from_str(&http_call(&pd, &ok, &details, "ROUTING", &HashMap::new()).unwrap().body).unwrap();
        assert_eq!((body["event_action"].as_str(), body.get("payload")), (Some("resolve"), None));
    }

    #[test]
    fn values_are_encoded_for_the_bodys_format() {
        let sly = "a\"b&c<d> e=f\n";
        assert_eq!(BodyFormat::of("application/json; charset=utf-8").encode(sly), "a\\\"b&c<d> e=f\\n");
        assert_eq!(BodyFormat::of("application/x-www-form-urlencoded").encode(sly), "a%22b%26c%3Cd%3E%20e%3Df%0A");
        assert_eq!(BodyFormat::of("text/xml").encode(sly), "a&quot;b&amp;c&lt;d&gt; e=f\n");
        assert_eq!(BodyFormat::of("text/plain").encode(sly), sly);
    }

    #[test]
    fn secrets_are_scrubbed_from_errors() {
        let s = "https://hooks.example.com/services/T000/B000/XXXXSECRET";
        assert_eq!(scrub(&format!("bad uri {s}"), s), "bad uri ***");
        assert_eq!(scrub("GET /services/T000/B000/XXXXSECRET failed", s), "GET /*** failed");
    }

    #[test]
    fn a_key_set_through_another_server_is_read_before_it_is_called_missing() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::Db::open(db::DatabaseUrl::Sqlite(dir.path().join("b.db"))).unwrap();
        let mut c = db.conn().unwrap();
        let key_file = dir.path().join("master.key");
        let (here, there) =
            (Vault::open(&mut c, None, &key_file).unwrap(), Vault::open(&mut c, None, &key_file).unwrap());
        here.set(&mut c, "hooks/ops", "http://127.0.0.1:9/hook", None, chrono::Utc::now()).unwrap();
        let draft = IntegrationDraft {
            name: "ops".into(),
            kind: "slack".into(),
            credential_key: Some("hooks/ops".into()),
            ..Default::default()
        };
        let config = db::to_json(&draft);
        let stored = db::integrations::Stored { kind: "slack", config: &config, credential_key: Some("hooks/ops") };
        db::integrations::insert(&mut c, "ops", &stored, None, chrono::Utc::now()).unwrap();
        let (d, _) = delivery("failure");
        let ready = prepare(&mut c, &there, &d).map_err(|e| format!("{e:?}")).unwrap();
        assert_eq!(ready.credentials.get("hooks/ops").map(String::as_str), Some("http://127.0.0.1:9/hook"));
    }
}
