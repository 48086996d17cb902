//! The audit log, for admins.

use crate::backend::*;
use crate::backend::{AuditFilter, AuditRecord};
use crate::definitions::{connection, domain, page_args, ListConnection};
use crate::error::ApiResult;
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, InputObject, Object};
use baton_schema::access::Role;
use chrono::{DateTime, Utc};

/// The audit log.
#[async_trait::async_trait]
pub trait Audit: Send + Sync {
    /// Newest first; a caller limited to some instances sees their own actions and the entries
    /// about their instances.
    async fn audit_log(&self, p: &Principal, f: &AuditFilter, page: PageArgs) -> BackendResult<Page<AuditRecord>>;
}

#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Only the entries about this instance.
    pub instance: Option<String>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Newest first.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ListConnection<AuditRecord>> {
        let f = filter.unwrap_or_default();
        let f = AuditFilter { actor: f.actor, action: f.action, since: f.since, instance: f.instance };
        let page = domain::<dyn Audit>(ctx).audit_log(principal(ctx)?, &f, page_args(first, after)?).await?;
        Ok(connection(page, |a| a.id, AuditRecord::from))
    }
}
