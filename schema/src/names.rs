//! Names that users type: parsed once, so a value of these types is always valid.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;

fn check_identifier(field: &str, raw: &str, max: usize) -> Result<(), FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if raw.chars().count() > max {
        return Err(FieldError::new(field, "max_length", format!("must be at most {max} characters")));
    }
    if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(FieldError::new(
            field,
            "charset",
            format!("may contain only letters, digits and '_' (found {bad:?})"),
        ));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a name: `[A-Za-z0-9_]`, 1 to the maximum length.
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                check_identifier($field, raw, $max)?;
                Ok(Self(raw.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(v: String) -> Result<Self, FieldError> {
                Self::parse(&v)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(/// A task's name, unique within its instance.
    TaskName, "name", 128);
identifier!(/// A group's name, unique within its instance.
    GroupName, "name", 128);
identifier!(/// An instance's name (`default` always exists).
    InstanceName, "instance", 64);
identifier!(/// A calendar's name (`US_HOLIDAYS`).
    CalendarName, "calendar", 128);

impl InstanceName {
    pub fn default_instance() -> Self {
        Self("default".to_string())
    }
}

/// Where a task runs: an agent name, a hostname or a queue. Hostnames may carry dots and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target(String);

impl Target {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "target";
        if raw.is_empty() {
            return Err(FieldError::new(FIELD, "required", "must not be empty"));
        }
        if raw.len() > 253 {
            return Err(FieldError::new(FIELD, "max_length", "must be at most 253 characters"));
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
            return Err(FieldError::new(
                FIELD,
                "charset",
                format!("an agent name, hostname or queue: letters, digits, '_', '-', '.' (found {bad:?})"),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Target {
    type Error = FieldError;
    fn try_from(v: String) -> Result<Self, FieldError> {
        Self::parse(&v)
    }
}

impl From<Target> for String {
    fn from(v: Target) -> String {
        v.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A POSIX user name the command runs as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunAsUser(String);

impl RunAsUser {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "run_as_user";
        let mut chars = raw.chars();
        match chars.next() {
            None => return Err(FieldError::new(FIELD, "required", "must not be empty")),
            Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
                return Err(FieldError::new(FIELD, "posix_user", "must start with a letter or '_'"))
            }
            _ => {}
        }
        if raw.len() > 32 {
            return Err(FieldError::new(FIELD, "max_length", "must be at most 32 characters"));
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
            return Err(FieldError::new(
                FIELD,
                "posix_user",
                format!("a POSIX user name: letters, digits, '_', '-', '.' (found {bad:?})"),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunAsUser {
    type Error = FieldError;
    fn try_from(v: String) -> Result<Self, FieldError> {
        Self::parse(&v)
    }
}

impl From<RunAsUser> for String {
    fn from(v: RunAsUser) -> String {
        v.0
    }
}

impl fmt::Display for RunAsUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_name_rules() {
        assert!(TaskName::parse("extract_2024").is_ok());
        assert_eq!(TaskName::parse("").unwrap_err().rule, "required");
        assert_eq!(TaskName::parse(&"a".repeat(129)).unwrap_err().rule, "max_length");
        assert!(TaskName::parse(&"a".repeat(128)).is_ok());
        let e = TaskName::parse("load-data").unwrap_err();
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("name", "charset"));
        assert!(e.message.contains("'-'"));
    }

    #[test]
    fn target_and_user_rules() {
        assert!(Target::parse("db-01.example.com").is_ok());
        assert_eq!(Target::parse("a b").unwrap_err().rule, "charset");
        assert!(RunAsUser::parse("nobody").is_ok());
        assert_eq!(RunAsUser::parse("1abc").unwrap_err().rule, "posix_user");
        assert_eq!(RunAsUser::parse("root;rm").unwrap_err().rule, "posix_user");
    }

    #[test]
    fn serde_rejects_invalid_names() {
        let r: Result<TaskName, _> = serde_json::from_str("\"bad name\"");
        assert!(r.is_err());
        let ok: TaskName = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(ok.as_str(), "good");
    }
}

identifier!(/// An integration's name (`ops_slack`), referenced by alert rules.
    IntegrationName, "name", 128);

/// A credential's path key (`alerts/email`): segments of `[A-Za-z0-9_.-]` joined by `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialKey(String);

impl CredentialKey {
    pub fn parse_as(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if raw.len() > 200 {
            return Err(FieldError::new(field, "max_length", "must be at most 200 characters"));
        }
        let segment_ok =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !raw.split('/').all(segment_ok) {
            return Err(FieldError::new(
                field,
                "format",
                format!(
                    "{raw:?} must be path segments of letters, digits, '_', '.' or '-' joined by '/' (alerts/email)"
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::parse_as("key", raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CredentialKey {
    type Error = FieldError;
    fn try_from(v: String) -> Result<Self, FieldError> {
        Self::parse(&v)
    }
}

impl From<CredentialKey> for String {
    fn from(v: CredentialKey) -> String {
        v.0
    }
}

impl fmt::Display for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
