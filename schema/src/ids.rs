//! Newtype ids, so a task id can never be passed where a run id is expected. Only the ids the
//! code carries are defined; others join as their values start to cross boundaries.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(/// A task's TID.
    TaskId);
id_type!(/// A group's GID.
    GroupId);
id_type!(/// One run of a task (all its attempts).
    RunId);
