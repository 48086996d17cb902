//! Facts about the server itself.

use crate::backend::Backend;
use async_graphql::{Context, Object};
use std::sync::Arc;

#[derive(Default)]
pub struct MetaQuery;

#[Object]
impl MetaQuery {
    /// The server's version.
    async fn version(&self, ctx: &Context<'_>) -> String {
        ctx.data_unchecked::<Arc<dyn Backend>>().version().to_string()
    }
}
