//! Alert channels and when alert rules fire: integrations as typed and validated, which run
//! transitions a rule answers, and deadline checks ("did not start by", "still running at",
//! "ran longer than") judged against a clock passed in.

use crate::definition::AlertTrigger;
use crate::error::{FieldError, FieldErrors};
use crate::names::{CredentialKey, IntegrationName};
use crate::placeholder::{scan, PlaceholderContext};
use crate::run::{Reason, RunStatus, Transition};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// PagerDuty's Events API v2 endpoint, used unless an integration names another.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The kinds of channel Baton can send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    Webhook,
    Slack,
    Teams,
    Discord,
    Email,
    Pagerduty,
}

impl IntegrationKind {
    pub const ALL: [IntegrationKind; 6] =
        [Self::Webhook, Self::Slack, Self::Teams, Self::Discord, Self::Email, Self::Pagerduty];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Discord => "discord",
            Self::Email => "email",
            Self::Pagerduty => "pagerduty",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            FieldError::new(
                "kind",
                "one_of",
                format!("{raw:?} must be webhook, slack, teams, discord, email or pagerduty"),
            )
        })
    }

    /// What the credential under `credential_key` holds for this kind.
    pub fn secret_is(self) -> &'static str {
        match self {
            Self::Webhook | Self::Slack | Self::Teams | Self::Discord => "the webhook URL (it carries a token)",
            Self::Email => "the SMTP password",
            Self::Pagerduty => "the routing (integration) key",
        }
    }
}

/// One HTTP header of a generic webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// An integration as typed in a form; fields that do not apply to its kind must be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationDraft {
    pub name: String,
    /// webhook, slack, teams, discord, email, pagerduty
    pub kind: String,
    /// The credential store key of the secret (see [`IntegrationKind::secret_is`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_key: Option<String>,
    /// Webhook: GET, POST, PUT or PATCH (POST when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Webhook: extra headers; values may hold placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Webhook: the body template (a JSON document of the alert when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// E-mail: the SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<i64>,
    /// E-mail: starttls (default), tls or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// E-mail: a PEM file of extra CA certificates on the server host (a private mail relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PagerDuty: the Events API v2 URL ([`PAGERDUTY_EVENTS_URL`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
    /// PagerDuty: critical, error (default), warning or info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    None,
}

/// A validated integration's channel settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    Webhook {
        method: String,
        headers: Vec<Header>,
        body: Option<String>,
    },
    Slack,
    Teams,
    Discord,
    Email {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        from: String,
        to: Vec<String>,
        ca_file: Option<String>,
    },
    Pagerduty {
        events_url: String,
        severity: String,
    },
}

/// A validated integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub name: IntegrationName,
    pub kind: IntegrationKind,
    pub credential_key: Option<CredentialKey>,
    pub channel: Channel,
    /// The draft as given (what is stored and shown).
    pub draft: IntegrationDraft,
}

fn is_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !s.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'))
        }
        None => false,
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > "https://".len()
        && !s.contains(char::is_whitespace)
}

impl Integration {
    /// Every credential it needs: its own key, then those its webhook headers name.
    pub fn credential_keys(&self) -> Vec<CredentialKey> {
        let mut keys: Vec<CredentialKey> = self.credential_key.iter().cloned().collect();
        if let Channel::Webhook { headers, .. } = &self.channel {
            for h in headers {
                for p in scan("headers", &h.value, PlaceholderContext::Header).unwrap_or_default() {
                    if p.kind == 'C' {
                        if let Ok(k) = CredentialKey::parse(p.key) {
                            if !keys.contains(&k) {
                                keys.push(k);
                            }
                        }
                    }
                }
            }
        }
        keys
    }

    pub fn parse(d: &IntegrationDraft) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = errors.take(IntegrationName::parse(&d.name));
        let kind = errors.take(IntegrationKind::parse(&d.kind));
        let credential_key = match d.credential_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => errors.take(CredentialKey::parse_as("credential_key", k)),
            None => None,
        };
        let unused = |errors: &mut FieldErrors, field: &str, set: bool, kind: IntegrationKind| {
            if set {
                errors.push(FieldError::new(
                    field,
                    "not_applicable",
                    format!("does not apply to a {} integration", kind.as_str()),
                ));
            }
        };
        let Some(kind) = kind else { return Err(errors) };
        if kind != IntegrationKind::Email
            && credential_key.is_none()
            && d.credential_key.as_deref().is_none_or(|k| k.trim().is_empty())
        {
            errors.push(FieldError::new(
                "credential_key",
                "required",
                format!("name the credential that holds {}", kind.secret_is()),
            ));
        }
        if kind != IntegrationKind::Webhook {
            unused(&mut errors, "method", d.method.is_some(), kind);
            unused(&mut errors, "headers", !d.headers.is_empty(), kind);
            unused(&mut errors, "body", d.body.is_some(), kind);
        }
        if kind != IntegrationKind::Email {
            for (f, set) in [
                ("smtp_host", d.smtp_host.is_some()),
                ("smtp_port", d.smtp_port.is_some()),
                ("security", d.security.is_some()),
                ("username", d.username.is_some()),
                ("from", d.from.is_some()),
                ("to", !d.to.is_empty()),
                ("ca_file", d.ca_file.is_some()),
            ] {
                unused(&mut errors, f, set, kind);
            }
        }
        if kind != IntegrationKind::Pagerduty {
            unused(&mut errors, "events_url", d.events_url.is_some(), kind);
            unused(&mut errors, "severity", d.severity.is_some(), kind);
        }
        let channel = match kind {
            IntegrationKind::Webhook => {
                let method = d.method.as_deref().unwrap_or("POST").trim().to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH"].contains(&method.as_str()) {
                    errors.push(FieldError::new(
                        "method",
                        "one_of",
                        format!("{method:?} must be GET, POST, PUT or PATCH"),
                    ));
                }
                for (i, h) in d.headers.iter().enumerate() {
                    let field = format!("headers[{i}]");
                    if h.name.is_empty() || !h.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
                        errors.push(FieldError::new(
                            format!("{field}.name"),
                            "header_name",
                            "letters, digits, '-' and '_' only",
                        ));
                    }
                    if h.value.contains(['\r', '\n']) {
                        errors.push(FieldError::new(
                            format!("{field}.value"),
                            "single_line",
                            "must not contain a line break",
                        ));
                    }
                    errors.take(scan(&format!("{field}.value"), &h.value, PlaceholderContext::Header));
                }
                if let Some(b) = &d.body {
                    errors.take(scan("body", b, PlaceholderContext::Alert));
                }
                Channel::Webhook { method, headers: d.headers.clone(), body: d.body.clone() }
            }
            IntegrationKind::Slack => Channel::Slack,
            IntegrationKind::Teams => Channel::Teams,
            IntegrationKind::Discord => Channel::Discord,
            IntegrationKind::Email => {
                let host = d.smtp_host.as_deref().map(str::trim).unwrap_or("").to_string();
                if host.is_empty() || host.contains(char::is_whitespace) {
                    errors.push(FieldError::new("smtp_host", "required", "the SMTP server's host name"));
                }
                let security = match d.security.as_deref().unwrap_or("starttls") {
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    "none" => SmtpSecurity::None,
                    other => {
                        errors.push(FieldError::new(
                            "security",
                            "one_of",
                            format!("{other:?} must be starttls, tls or none"),
                        ));
                        SmtpSecurity::StartTls
                    }
                };
                let default_port = match security {
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::None => 25,
                };
                let port = match d.smtp_port {
                    None => default_port,
                    Some(p) => match u16::try_from(p) {
                        Ok(p) if p > 0 => p,
                        _ => {
                            errors.push(FieldError::new("smtp_port", "range", "must be between 1 and 65535"));
                            default_port
                        }
                    },
                };
                let username = d.username.as_deref().map(str::trim).filter(|u| !u.is_empty()).map(String::from);
                if credential_key.is_some() && username.is_none() {
                    errors.push(FieldError::new(
                        "username",
                        "required",
                        "the SMTP user whose password the credential holds",
                    ));
                }
                if username.is_some() && credential_key.is_none() {
                    errors.push(FieldError::new(
                        "credential_key",
                        "required",
                        "name the credential that holds the SMTP password",
                    ));
                }
                let from = d.from.as_deref().map(str::trim).unwrap_or("").to_string();
                if !is_address(&from) {
                    errors.push(FieldError::new("from", "address", format!("{from:?} is not an e-mail address")));
                }
                if d.to.is_empty() {
                    errors.push(FieldError::new("to", "required", "at least one recipient"));
                }
                for (i, t) in d.to.iter().enumerate() {
                    if !is_address(t.trim()) {
                        errors.push(FieldError::new(
                            format!("to[{i}]"),
                            "address",
                            format!("{t:?} is not an e-mail address"),
                        ));
                    }
                }
                let to = d.to.iter().map(|t| t.trim().to_string()).collect();
                let ca_file = d.ca_file.as_deref().map(str::trim).filter(|f| !f.is_empty()).map(String::from);
                if ca_file.as_deref().is_some_and(|f| !f.starts_with('/')) {
                    errors.push(FieldError::new("ca_file", "absolute", "must be an absolute path on the server host"));
                }
                Channel::Email { host, port, security, username, from, to, ca_file }
            }
            IntegrationKind::Pagerduty => {
                let events_url = d.events_url.clone().unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string());
                if !is_http_url(&events_url) {
                    errors.push(FieldError::new("events_url", "url", format!("{events_url:?} is not an http(s) URL")));
                }
                let severity = d.severity.clone().unwrap_or_else(|| "error".into());
                if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
                    errors.push(FieldError::new(
                        "severity",
                        "one_of",
                        format!("{severity:?} must be critical, error, warning or info"),
                    ));
                }
                Channel::Pagerduty { events_url, severity }
            }
        };
        errors.into_result(|| Integration {
            name: name.expect("checked"),
            kind,
            credential_key,
            channel,
            draft: d.clone(),
        })
    }
}

/// Whether a rule with this trigger answers this run transition. Operators' status changes do
/// not alert; deadlines are judged by [`deadline_due`] instead.
pub fn answers(trigger: &AlertTrigger, t: &Transition) -> bool {
    if matches!(t.reason, Some(Reason::ModifiedBy { .. })) {
        return false;
    }
    let ended = matches!(t.to, RunStatus::Success | RunStatus::Failed | RunStatus::Terminated);
    match trigger {
        AlertTrigger::Success => t.to == RunStatus::Success,
        AlertTrigger::Failure => matches!(t.to, RunStatus::Failed | RunStatus::Terminated),
        AlertTrigger::Always => ended,
        AlertTrigger::Retry => matches!(t.reason, Some(Reason::RetryScheduled { .. })),
        AlertTrigger::Timeout => t.to == RunStatus::Failed && matches!(t.reason, Some(Reason::Timeout { .. })),
        AlertTrigger::NotStartedBy { .. } | AlertTrigger::StillRunningAt { .. } | AlertTrigger::LongerThan { .. } => {
            false
        }
    }
}

/// The rule trigger's name, as stored and shown (`failure`, `not_started_by`...).
pub fn trigger_name(trigger: &AlertTrigger) -> &'static str {
    match trigger {
        AlertTrigger::Failure => "failure",
        AlertTrigger::Success => "success",
        AlertTrigger::Always => "always",
        AlertTrigger::Retry => "retry",
        AlertTrigger::Timeout => "timeout",
        AlertTrigger::NotStartedBy { .. } => "not_started_by",
        AlertTrigger::StillRunningAt { .. } => "still_running_at",
        AlertTrigger::LongerThan { .. } => "longer_than",
    }
}

/// What a deadline check knows of one run (or group run: `Id` says which) of a run date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFact<Id> {
    pub run_id: Id,
    /// When its process started (Running), if it did.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A deadline that has passed unmet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineDue<Id> {
    /// Unique per rule and occasion: the same deadline alerts once.
    pub occasion: String,
    pub run_id: Option<Id>,
    /// What happened, for the message: "did not start by 06:00 (Europe/Paris)".
    pub what: String,
}

/// The instant a local deadline on a run date falls at, under the schedule DST policy.
pub fn deadline_instant(run_date: NaiveDate, at: chrono::NaiveTime, tz: Tz) -> DateTime<Utc> {
    crate::schedule::resolve_local(tz, run_date.and_time(at))
}

/// The deadline alerts due at `now` for one rule on one run date. `expected` says whether the
/// schedule runs on that date (not a holiday, not outside its days).
pub fn deadline_due<Id: Copy + std::fmt::Display>(
    trigger: &AlertTrigger,
    run_date: NaiveDate,
    tz: Tz,
    expected: bool,
    runs: &[RunFact<Id>],
    now: DateTime<Utc>,
) -> Vec<DeadlineDue<Id>> {
    match *trigger {
        AlertTrigger::NotStartedBy { at } => {
            let deadline = deadline_instant(run_date, at, tz);
            let started_in_time = runs.iter().any(|r| r.started_at.is_some_and(|s| s <= deadline));
            if now < deadline || started_in_time || (!expected && runs.is_empty()) {
                return Vec::new();
            }
            vec![DeadlineDue {
                occasion: format!("{run_date}"),
                run_id: runs.first().map(|r| r.run_id),
                what: format!("did not start by {} ({tz}) on {run_date}", at.format("%H:%M")),
            }]
        }
        AlertTrigger::StillRunningAt { at } => {
            let deadline = deadline_instant(run_date, at, tz);
            if now < deadline {
                return Vec::new();
            }
            runs.iter()
                .filter(|r| r.started_at.is_some_and(|s| s <= deadline) && r.ended_at.is_none_or(|e| e > deadline))
                .map(|r| DeadlineDue {
                    occasion: format!("{run_date}:{}", r.run_id),
                    run_id: Some(r.run_id),
                    what: format!("still running at {} ({tz}) on {run_date}", at.format("%H:%M")),
                })
                .collect()
        }
        AlertTrigger::LongerThan { minutes } => {
            let limit = Duration::minutes(i64::from(minutes));
            runs.iter()
                .filter_map(|r| {
                    let started = r.started_at?;
                    let end = r.ended_at.unwrap_or(now);
                    (end - started > limit && now >= started + limit).then(|| DeadlineDue {
                        occasion: format!("{}", r.run_id),
                        run_id: Some(r.run_id),
                        what: format!("running longer than {minutes} minutes"),
                    })
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RunId;
    use chrono::{NaiveTime, TimeZone};

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn integrations_are_checked_field_by_field() {
        let slack = IntegrationDraft {
            name: "ops_slack".into(),
            kind: "slack".into(),
            credential_key: Some("alerts/slack".into()),
            ..Default::default()
        };
        assert_eq!(Integration::parse(&slack).unwrap().channel, Channel::Slack);

        let mut bad = slack.clone();
        bad.credential_key = None;
        bad.smtp_host = Some("mail".into());
        let e = Integration::parse(&bad).unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(got, [("credential_key", "required"), ("smtp_host", "not_applicable")]);

        let email = IntegrationDraft {
            name: "mail".into(),
            kind: "email".into(),
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(70_000),
            security: Some("ssl".into()),
            from: Some("baton".into()),
            to: vec!["ops@example.com".into(), "not an address".into()],
            credential_key: Some("alerts/email".into()),
            ..Default::default()
        };
        let e = Integration::parse(&email).unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(
            got,
            [
                ("security", "one_of"),
                ("smtp_port", "range"),
                ("username", "required"),
                ("from", "address"),
                ("to[1]", "address")
            ]
        );

        let hook = IntegrationDraft {
            name: "hook".into(),
            kind: "webhook".into(),
            credential_key: Some("hooks/x".into()),
            method: Some("delete".into()),
            headers: vec![Header { name: "X-Run".into(), value: "${P:nope}".into() }],
            body: Some("{\"t\":\"${T:task_name}\"}".into()),
            ..Default::default()
        };
        let e = Integration::parse(&hook).unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(got, [("method", "one_of"), ("headers[0].value", "placeholder")]);

        let e =
            Integration::parse(&IntegrationDraft { name: "p d".into(), kind: "pager".into(), ..Default::default() })
                .unwrap_err();
        let got: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(got, [("name", "charset"), ("kind", "one_of")]);
        let e = CredentialKey::parse("alerts//x").unwrap_err();
        assert_eq!(e.rule, "format");
    }

    fn tr(to: RunStatus, reason: Option<Reason>) -> Transition {
        Transition { from: RunStatus::Running, to, attempt: 1, at: utc(2026, 1, 1, 0, 0), reason }
    }

    #[test]
    fn rules_answer_the_transitions_they_name() {
        let timeout = tr(RunStatus::Failed, Some(Reason::Timeout { after_seconds: 5 }));
        let failed = tr(RunStatus::Failed, Some(Reason::ExitCode { code: 3 }));
        let ok = tr(RunStatus::Success, Some(Reason::ExitCode { code: 0 }));
        let retry = tr(RunStatus::Idle, Some(Reason::RetryScheduled { next_attempt: 2, at: utc(2026, 1, 1, 0, 1) }));
        let modified = tr(RunStatus::Success, Some(Reason::ModifiedBy { user: "op".into() }));
        let cases = [
            (AlertTrigger::Failure, [true, true, false, false, false]),
            (AlertTrigger::Timeout, [true, false, false, false, false]),
            (AlertTrigger::Success, [false, false, true, false, false]),
            (AlertTrigger::Always, [true, true, true, false, false]),
            (AlertTrigger::Retry, [false, false, false, true, false]),
        ];
        for (trigger, expected) in cases {
            let got = [&timeout, &failed, &ok, &retry, &modified].map(|t| answers(&trigger, t));
            assert_eq!(got, expected, "{trigger:?}");
        }
    }

    #[test]
    fn deadlines_on_a_simulated_clock() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let by_six = AlertTrigger::NotStartedBy { at: hm(6, 0) };
        let none: &[RunFact<RunId>] = &[];
        // 06:00 in Paris in July is 04:00 UTC.
        assert!(deadline_due(&by_six, date, tz, true, none, utc(2026, 7, 1, 3, 59)).is_empty());
        let due = deadline_due(&by_six, date, tz, true, none, utc(2026, 7, 1, 4, 0));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].what, "did not start by 06:00 (Europe/Paris) on 2026-07-01");
        // Not expected that day (a holiday) and no run: nothing to say.
        assert!(deadline_due(&by_six, date, tz, false, none, utc(2026, 7, 1, 5, 0)).is_empty());
        let started = RunFact { run_id: RunId(7), started_at: Some(utc(2026, 7, 1, 3, 30)), ended_at: None };
        assert!(deadline_due(&by_six, date, tz, true, std::slice::from_ref(&started), utc(2026, 7, 1, 5, 0)).is_empty());
        let late = RunFact { run_id: RunId(8), started_at: Some(utc(2026, 7, 1, 4, 30)), ended_at: None };
        assert_eq!(
            deadline_due(&by_six, date, tz, true, std::slice::from_ref(&late), utc(2026, 7, 1, 5, 0))[0].run_id,
            Some(RunId(8))
        );

        let at_seven = AlertTrigger::StillRunningAt { at: hm(7, 0) };
        assert!(
            deadline_due(&at_seven, date, tz, true, std::slice::from_ref(&started), utc(2026, 7, 1, 4, 59)).is_empty()
        );
        let due = deadline_due(&at_seven, date, tz, true, std::slice::from_ref(&started), utc(2026, 7, 1, 5, 0));
        assert_eq!((due[0].run_id, due[0].occasion.as_str()), (Some(RunId(7)), "2026-07-01:7"));
        let done = RunFact { ended_at: Some(utc(2026, 7, 1, 4, 50)), ..started.clone() };
        assert!(deadline_due(&at_seven, date, tz, true, &[done], utc(2026, 7, 1, 6, 0)).is_empty());
        // Ended after the deadline, seen late: it was still running at 07:00.
        let ended_late = RunFact { ended_at: Some(utc(2026, 7, 1, 5, 10)), ..started.clone() };
        assert_eq!(deadline_due(&at_seven, date, tz, true, &[ended_late], utc(2026, 7, 1, 6, 0)).len(), 1);

        let longer = AlertTrigger::LongerThan { minutes: 45 };
        assert!(
            deadline_due(&longer, date, tz, true, std::slice::from_ref(&started), utc(2026, 7, 1, 4, 15)).is_empty()
        );
        assert_eq!(
            deadline_due(&longer, date, tz, true, std::slice::from_ref(&started), utc(2026, 7, 1, 4, 16)).len(),
            1
        );
        let quick = RunFact { ended_at: Some(utc(2026, 7, 1, 3, 40)), ..started };
        assert!(deadline_due(&longer, date, tz, true, &[quick], utc(2026, 7, 1, 9, 0)).is_empty());
    }

    #[test]
    fn a_deadline_in_a_dst_gap_falls_after_the_gap() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        // 02:30 does not exist that night; the first instant after the gap is 03:00 CEST = 01:00 UTC.
        assert_eq!(deadline_instant(date, hm(2, 30), tz), utc(2026, 3, 29, 1, 0));
    }
}
