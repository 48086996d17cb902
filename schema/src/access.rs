//! Who may do what: roles in their order, and which instances a user may see.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Roles, each including everything the ones before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything it has access to.
    Viewer,
    /// Views, and takes basic actions on its own tasks.
    User,
    /// Force-run, terminate, freeze, modify status, adhoc commands.
    Operator,
    /// Definitions, users, integrations, credentials, configuration.
    Admin,
    /// Everything, and grants admin and superadmin.
    Superadmin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Viewer, Role::User, Role::Operator, Role::Admin, Role::Superadmin];

    pub fn parse(raw: &str) -> Result<Role, FieldError> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw.trim().to_ascii_lowercase()).ok_or_else(|| {
            FieldError::new("role", "one_of", format!("{raw:?} must be viewer, user, operator, admin or superadmin"))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::User => "user",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::Superadmin => "superadmin",
        }
    }

    /// Whether a user of this role may give `other` to someone: admins grant up to operator,
    /// superadmins grant anything.
    pub fn may_grant(self, other: Role) -> bool {
        match self {
            Self::Superadmin => true,
            Self::Admin => other <= Self::Operator,
            _ => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The instances a user may see: all (`*`) or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceAccess {
    All,
    Only(Vec<String>),
}

impl InstanceAccess {
    /// `*`, or a comma-separated list of instance names.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::All);
        }
        let mut names = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            crate::names::InstanceName::parse(part).map_err(|e| FieldError { field: "instances".into(), ..e })?;
            if !names.iter().any(|n| n == part) {
                names.push(part.to_string());
            }
        }
        Ok(Self::Only(names))
    }

    /// Whether everything `other` reaches is reachable here too (what one may grant).
    pub fn covers(&self, other: &InstanceAccess) -> bool {
        match (self, other) {
            (Self::All, _) => true,
            (Self::Only(_), Self::All) => false,
            (Self::Only(_), Self::Only(names)) => names.iter().all(|n| self.allows(n)),
        }
    }

    pub fn allows(&self, instance: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == instance),
        }
    }
}

impl fmt::Display for InstanceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(names) => f.write_str(&names.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_grant_rules_hold() {
        assert!(Role::Viewer < Role::User && Role::User < Role::Operator && Role::Admin < Role::Superadmin);
        assert_eq!(Role::parse("Operator").unwrap(), Role::Operator);
        assert_eq!(Role::parse("root").unwrap_err().rule, "one_of");
        assert!(Role::Admin.may_grant(Role::Operator));
        assert!(!Role::Admin.may_grant(Role::Admin));
        assert!(Role::Superadmin.may_grant(Role::Superadmin));
        assert!(!Role::Operator.may_grant(Role::Viewer));
    }

    #[test]
    fn instance_access() {
        assert!(InstanceAccess::parse("*").unwrap().allows("anything"));
        let some = InstanceAccess::parse("default, finance,default").unwrap();
        assert_eq!(some.to_string(), "default,finance");
        assert!(some.allows("finance") && !some.allows("hr"));
        assert_eq!(InstanceAccess::parse("fin ance").unwrap_err().field, "instances");
    }
}
