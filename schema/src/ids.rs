//! Newtype ids, so a task id can never be passed where a run id is expected. They cross every
//! boundary as themselves: database row (feature `sql`), GraphQL object (feature `graphql`, as
//! an `Int`), agent frame and UI. The core builds without either feature (the wasm check).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "sql", derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow))]
        #[cfg_attr(feature = "sql", diesel(sql_type = diesel::sql_types::BigInt))]
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

        #[cfg(feature = "sql")]
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                i64::from_sql(bytes).map(Self)
            }
        }

        #[cfg(feature = "sql")]
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                self.0.to_sql(out)
            }
        }

        /// An `Int` in the API, parsed and written as the bare number was (async-graphql's own
        /// `i64` scalar does it): clients see no change.
        #[cfg(feature = "graphql")]
        #[async_graphql::Scalar(name = "Int")]
        impl async_graphql::ScalarType for $name {
            fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
                <i64 as async_graphql::ScalarType>::parse(value)
                    .map(Self)
                    .map_err(async_graphql::InputValueError::propagate)
            }

            fn is_valid(value: &async_graphql::Value) -> bool {
                <i64 as async_graphql::ScalarType>::is_valid(value)
            }

            fn to_value(&self) -> async_graphql::Value {
                async_graphql::ScalarType::to_value(&self.0)
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
id_type!(/// One run of a group for a run date (its member runs carry it).
    GroupRunId);
id_type!(/// An agent as registered (its name is what it reports; this is its row).
    AgentId);
id_type!(/// A user account.
    UserId);
id_type!(/// An instance: the unit of access and of scheduling leases.
    InstanceId);
id_type!(/// A holiday calendar.
    CalendarId);
id_type!(/// An API token (not its secret).
    ApiTokenId);
id_type!(/// An agent enrollment token (not its secret).
    AgentTokenId);
id_type!(/// An alert integration.
    IntegrationId);
id_type!(/// One alert in the delivery log (its attempts hang off it).
    AlertDeliveryId);
