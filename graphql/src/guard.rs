//! Guards: every field that is not public names the least role it needs.

use crate::backend::Principal;
use crate::error::ApiError;
use async_graphql::{Context, Guard};
use baton_schema::access::Role;

/// Allows callers whose role is at least the given one.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let p = principal(ctx)?;
        if p.role >= self.0 {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("needs the {} role", self.0)).into())
        }
    }
}

/// The caller, or UNAUTHENTICATED.
pub fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal, ApiError> {
    ctx.data_opt::<Principal>().ok_or(ApiError::Unauthenticated)
}
