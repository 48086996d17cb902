//! Facts about the server itself.

use async_graphql::{Context, Object};

#[derive(Default)]
pub struct MetaQuery;

#[Object]
impl MetaQuery {
    /// The server's version.
    async fn version(&self, ctx: &Context<'_>) -> String {
        crate::definitions::domain::<dyn crate::instances::Instances>(ctx).version().to_string()
    }
}
