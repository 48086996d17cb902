//! `${E:VAR}`, `${T:task_name}`, `${P:status}`...: checked when a definition is saved, expanded at run time.

use crate::error::FieldError;
use std::collections::HashMap;

/// Where a text is used decides which placeholders it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceholderContext {
    /// Commands and stdout/stderr paths: `E` and `T`.
    Command,
    /// Alert texts: `E`, `T` and `P`.
    Alert,
    /// Webhook headers: `E`, `T`, `P`, and `C` (a credential, for an `Authorization` header).
    Header,
}

impl PlaceholderContext {
    fn allows_run(self) -> bool {
        matches!(self, Self::Alert | Self::Header)
    }
}

const TASK_KEYS: [&str; 3] = ["task_name", "task_id", "group_name"];
const RUN_KEYS: [&str; 4] = ["status", "exit_code", "duration", "stdout"];

/// One placeholder found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub start: usize,
    pub end: usize,
    pub kind: char,
    pub key: &'a str,
}

fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Finds every `${X:key}` in `text`, checking each against `ctx`.
pub fn scan<'a>(field: &str, text: &'a str, ctx: PlaceholderContext) -> Result<Vec<Placeholder<'a>>, FieldError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${") {
        let start = rest + found;
        let Some(close) = text[start..].find('}') else {
            return Err(FieldError::new(
                field,
                "placeholder",
                format!("unclosed placeholder at character {}", start + 1),
            ));
        };
        let end = start + close + 1;
        let inner = &text[start + 2..end - 1];
        let bad = |why: &str| {
            FieldError::new(
                field,
                "placeholder",
                format!("unknown placeholder ${{{inner}}} at character {}: {why}", start + 1),
            )
        };
        let (kind, key) = inner.split_once(':').ok_or_else(|| bad("expected ${E:VAR}, ${T:...} or ${P:...}"))?;
        let kind = match kind {
            "E" if is_env_name(key) => 'E',
            "E" => return Err(bad("not an environment variable name")),
            "T" if TASK_KEYS.contains(&key) => 'T',
            "T" => return Err(bad("T takes task_name, task_id or group_name")),
            "P" if ctx.allows_run() && RUN_KEYS.contains(&key) => 'P',
            "P" if ctx.allows_run() => return Err(bad("P takes status, exit_code, duration or stdout")),
            "P" => return Err(bad("run placeholders (P) are only allowed in alert texts")),
            "C" if ctx == PlaceholderContext::Header => match crate::names::CredentialKey::parse_as(field, key) {
                Ok(_) => 'C',
                Err(e) => return Err(bad(&e.message)),
            },
            "C" => return Err(bad("credentials (C) are only allowed in profile values and webhook headers")),
            _ => return Err(bad("the kind must be E, T or P")),
        };
        out.push(Placeholder { start, end, kind, key });
        rest = end;
    }
    Ok(out)
}

/// Replaces every placeholder with its value; `values` is keyed by `"E:VAR"`, `"T:task_name"`...
/// A placeholder without a value becomes empty, as an unset shell variable would.
pub fn expand(text: &str, ctx: PlaceholderContext, values: &HashMap<String, String>) -> Result<String, FieldError> {
    let found = scan("text", text, ctx)?;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in found {
        out.push_str(&text[at..p.start]);
        if let Some(v) = values.get(&format!("{}:{}", p.kind, p.key)) {
            out.push_str(v);
        }
        at = p.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Expands a command's `${T:...}` and the `${E:...}` in `values` (the profile, YYYYMMDD, HHMM);
/// any other `${E:VAR}` becomes `${VAR}`, for the shell to read from the host's environment.
pub fn expand_command(text: &str, values: &HashMap<String, String>) -> Result<String, FieldError> {
    let found = scan("command", text, PlaceholderContext::Command)?;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in found {
        out.push_str(&text[at..p.start]);
        match values.get(&format!("{}:{}", p.kind, p.key)) {
            Some(v) => out.push_str(v),
            None if p.kind == 'E' => out.push_str(&format!("${{{}}}", p.key)),
            None => {}
        }
        at = p.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// The credential keys a profile value names with `${C:key}` (a run sees their values in its
/// environment, and the agent masks them in its output). Other text is left as it is.
pub fn credential_refs(field: &str, text: &str) -> Result<Vec<crate::names::CredentialKey>, FieldError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${C:") {
        let start = rest + found;
        let Some(close) = text[start..].find('}') else {
            return Err(FieldError::new(
                field,
                "placeholder",
                format!("unclosed ${{C:...}} at character {}", start + 1),
            ));
        };
        let key = crate::names::CredentialKey::parse_as(field, &text[start + 4..start + close])?;
        if !out.contains(&key) {
            out.push(key);
        }
        rest = start + close + 1;
    }
    Ok(out)
}

/// Replaces each `${C:key}` with `lookup(key)`.
pub fn expand_credentials(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${C:") {
        let start = rest + found;
        let Some(close) = text[start..].find('}') else { break };
        out.push_str(&text[rest..start]);
        out.push_str(&lookup(&text[start + 4..start + close]).unwrap_or_default());
        rest = start + close + 1;
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_profile_values() {
        let keys = credential_refs("profile.DSN", "postgres://app:${C:db/app}@h/${C:db/app}?${E:X}").unwrap();
        assert_eq!(keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["db/app"]);
        let e = credential_refs("profile.DSN", "${C:bad key}").unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("profile.DSN", "format"));
        let out = expand_credentials("u:${C:db/app}@h", |k| (k == "db/app").then(|| "s3cret".to_string()));
        assert_eq!(out, "u:s3cret@h");
    }

    use super::*;

    #[test]
    fn a_command_keeps_unknown_environment_variables_for_the_shell() {
        let values: HashMap<String, String> =
            [("E:YYYYMMDD", "20261206"), ("T:task_name", "load")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let out = expand_command("run ${T:task_name} ${E:YYYYMMDD} ${E:HOME}", &values).unwrap();
        assert_eq!(out, "run load 20261206 ${HOME}");
        assert_eq!(expand_command("x ${Q:nope}", &values).unwrap_err().field, "command");
    }

    #[test]
    fn known_placeholders_pass_unknown_fail() {
        let ok =
            scan("command", "run.sh ${E:YYYYMMDD} ${T:task_name} > /tmp/${T:task_id}", PlaceholderContext::Command)
                .unwrap();
        assert_eq!(ok.len(), 3);
        for (text, needle) in [
            ("${X:foo}", "kind"),
            ("${T:owner}", "task_name"),
            ("${P:status}", "only allowed in alert"),
            ("${E:1BAD}", "environment"),
            ("echo ${E:HOME", "unclosed"),
            ("${nothing}", "expected"),
        ] {
            let e = scan("command", text, PlaceholderContext::Command).unwrap_err();
            assert_eq!((e.field.as_str(), e.rule.as_str()), ("command", "placeholder"));
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
        assert!(scan("message", "${P:status} ${P:stdout}", PlaceholderContext::Alert).is_ok());
        assert!(scan("message", "${P:pid}", PlaceholderContext::Alert).is_err());
    }

    #[test]
    fn expansion() {
        let values: HashMap<String, String> = [("E:YYYYMMDD", "20261128"), ("T:task_name", "load")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            expand("/data/${T:task_name}/${E:YYYYMMDD}/${E:UNSET}.log", PlaceholderContext::Command, &values).unwrap(),
            "/data/load/20261128/.log"
        );
    }
}
