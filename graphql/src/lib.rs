//! Baton's GraphQL API: types, queries, mutations and subscriptions, one module per domain, merged
//! in [`build_schema`]. The API reaches the rest of the system only through the [`Backend`] trait,
//! which the server implements: this crate knows no actix-web and no diesel, and the whole schema
//! can be executed in tests with `schema.execute()`.
//!
//! Conventions every domain follows: lists are Relay connections with `totalCount` and opaque
//! cursors (keyset on the id, so deep pages stay fast); every non-public field has a
//! [`guard::RoleGuard`]; the backend enforces instance access; errors carry `extensions.code`.

mod agents;
mod alerting;
mod audit;
mod auth;
pub mod backend;
mod calendars;
mod definitions;
pub mod error;
mod execution;
pub mod guard;
mod instances;
pub mod layout;
pub mod limits;
mod meta;
mod operations;
mod runs;
mod scheduler;
mod subscriptions;
mod transfer;

pub use agents::Agents;
pub use alerting::Alerting;
pub use audit::Audit;
pub use auth::Auth;
pub use auth::{SESSION_COOKIE, SESSION_HOURS};
pub use backend::{ClientInfo, Principal};
pub use calendars::Calendars;
pub use definitions::Definitions;
pub use error::ApiError;
pub use execution::Execution;
pub use instances::{Instance, Instances};
pub use meta::Clock;
pub use operations::Operations;
pub use runs::Runs;
pub use scheduler::SchedulerState;
pub use transfer::Transfer;

use async_graphql::dataloader::DataLoader;
use async_graphql::{MergedObject, MergedSubscription, Schema};
use std::sync::Arc;

/// The root of every query: one part per domain.
#[derive(MergedObject, Default)]
pub struct Query(
    meta::MetaQuery,
    instances::InstanceQuery,
    auth::AuthQuery,
    definitions::DefinitionQuery,
    calendars::CalendarQuery,
    audit::AuditQuery,
    runs::RunQuery,
    agents::AgentQuery,
    scheduler::SchedulerQuery,
    operations::OperatorQuery,
    alerting::AlertQuery,
);

/// The root of every mutation: one part per domain.
#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    instances::InstanceMutation,
    definitions::DefinitionMutation,
    calendars::CalendarMutation,
    transfer::TransferMutation,
    agents::AgentMutation,
    execution::ExecutionMutation,
    operations::OperatorMutation,
    alerting::AlertMutation,
);

/// The root of every subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    subscriptions::DefinitionSubscription,
    agents::AgentSubscription,
    execution::ExecutionSubscription,
);

/// Lists the domains once: `Backend` is their sum, and `add_domains` puts each into a schema on its
/// own (so a resolver asks for its domain only, and a test may fake just one).
macro_rules! domains {
    ($($domain:path),+ $(,)?) => {
        /// Everything the API needs from the system: the sum of the domains' traits, each defined
        /// beside its resolvers. The server implements each domain.
        pub trait Backend: $($domain +)+ 'static {}

        impl<T> Backend for T where T: $($domain +)+ 'static {}

        fn add_domains(
            builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
            backend: &Arc<dyn Backend>,
        ) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
            builder $(.data(backend.clone() as Arc<dyn $domain>))+
        }
    };
}

domains!(
    instances::Instances,
    auth::Auth,
    definitions::Definitions,
    calendars::Calendars,
    audit::Audit,
    transfer::Transfer,
    runs::Runs,
    operations::Operations,
    execution::Execution,
    scheduler::SchedulerState,
    agents::Agents,
    alerting::Alerting,
    meta::Clock,
);

pub type BatonSchema = Schema<Query, Mutation, Subscription>;

/// Query nesting and cost limits: deep or huge queries are refused before they run. A field
/// costs 1; a list costs its page size (`first` or `limit`) times what each item asks for; output
/// costs 1 per KiB asked for (`runOutput(limit)`). The largest page of tasks with every field is
/// well within; 2,000 aliases of `runOutput` are not.
pub const MAX_DEPTH: usize = 16;
pub const MAX_COMPLEXITY: usize = 50_000;

pub fn build_schema(backend: Arc<dyn Backend>) -> BatonSchema {
    add_domains(schema_builder(), &backend).finish()
}

/// The schema with its limits and no domain yet: `build_schema` adds every domain; a test adds
/// the one (fake) domain it exercises, as `Arc<dyn Runs>` and so on.
pub fn schema_builder() -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(limits::DocumentLimits)
}

/// Attaches to one request the caller, where it came from, and DataLoaders scoped to the caller.
pub fn prepare_request(
    mut request: async_graphql::Request,
    backend: &Arc<dyn Backend>,
    principal: Option<Principal>,
    client: ClientInfo,
) -> async_graphql::Request {
    if let Some(p) = principal {
        request = request
            .data(DataLoader::new(
                definitions::GroupLoader {
                    backend: backend.clone() as Arc<dyn definitions::Definitions>,
                    principal: p.clone(),
                },
                tokio::spawn,
            ))
            .data(p);
    }
    request.data(client)
}

/// The same for a subscription connection.
pub fn request_data(
    backend: &Arc<dyn Backend>,
    principal: Option<Principal>,
    client: ClientInfo,
) -> async_graphql::Data {
    let mut data = async_graphql::Data::default();
    if let Some(p) = principal {
        data.insert(DataLoader::new(
            definitions::GroupLoader {
                backend: backend.clone() as Arc<dyn definitions::Definitions>,
                principal: p.clone(),
            },
            tokio::spawn,
        ));
        data.insert(p);
    }
    data.insert(client);
    data
}

/// The SDL of the schema, as checked in at `graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).finish().sdl()
}
