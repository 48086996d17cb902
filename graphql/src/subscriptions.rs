//! Live events over graphql-transport-ws. Each stream keeps the order in which changes were made.

use crate::backend::DefinitionChange;
use crate::definitions::domain;
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, SimpleObject, Subscription};
use baton_schema::access::Role;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

#[derive(SimpleObject, Clone)]
pub struct DefinitionEvent {
    /// task, group or calendar
    pub kind: String,
    pub id: i64,
    pub name: String,
    pub instance: String,
    /// created, updated or deleted
    pub action: String,
    pub at: DateTime<Utc>,
    /// Increases by one per change the server publishes.
    pub sequence: i64,
}

impl From<DefinitionChange> for DefinitionEvent {
    fn from(c: DefinitionChange) -> Self {
        DefinitionEvent {
            kind: c.kind.as_str().to_string(),
            id: c.id,
            name: c.name,
            instance: c.instance,
            action: c.action,
            at: c.at,
            sequence: i64::try_from(c.sequence).unwrap_or(i64::MAX),
        }
    }
}

#[derive(Default)]
pub struct DefinitionSubscription;

#[Subscription]
impl DefinitionSubscription {
    /// Every change to a task, group or calendar in the instances the caller may see.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn definition_changes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = DefinitionEvent>> {
        let access = principal(ctx)?.instances.clone();
        Ok(domain::<dyn crate::definitions::Definitions>(ctx).definition_changes().filter_map(move |c| {
            let visible = access.allows(&c.instance);
            async move { visible.then(|| DefinitionEvent::from(c)) }
        }))
    }
}
