//! Facts about the server itself, and its clock: resolvers read the time from it, never from
//! the system, so what they decide follows the server's clock (simulated in tests).

use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};

/// The server's clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The time now, by the server's clock.
pub fn now(ctx: &Context<'_>) -> DateTime<Utc> {
    crate::definitions::domain::<dyn Clock>(ctx).now()
}

#[derive(Default)]
pub struct MetaQuery;

#[Object]
impl MetaQuery {
    /// The server's version.
    async fn version(&self, ctx: &Context<'_>) -> String {
        crate::definitions::domain::<dyn crate::instances::Instances>(ctx).version().to_string()
    }
}
