//! Baton's GraphQL API: types, queries, mutations and subscriptions, one module per domain, merged
//! in [`build_schema`]. The API reaches the rest of the system only through the [`Backend`] trait,
//! which the server implements: this crate knows no actix-web and no diesel, and the whole schema
//! can be executed in tests with `schema.execute()`.

mod backend;
pub mod error;
mod instances;
mod meta;

pub use backend::{Backend, InstanceInfo};
pub use error::ApiError;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema};
use std::sync::Arc;

/// The root of every query: one part per domain.
#[derive(MergedObject, Default)]
pub struct Query(meta::MetaQuery, instances::InstanceQuery);

pub type BatonSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Query nesting and cost limits: deep or huge queries are refused before they run.
pub const MAX_DEPTH: usize = 16;
pub const MAX_COMPLEXITY: usize = 5_000;

pub fn build_schema(backend: Arc<dyn Backend>) -> BatonSchema {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription)
        .data(backend)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The SDL of the schema, as checked in at `graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription).finish().sdl()
}
