//! Instances: the namespaces tasks and groups live in.

use crate::backend::*;
use crate::definitions::domain;
use crate::error::ApiResult;
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::ids::InstanceId;

/// The instances: what exists, and making new ones.
#[async_trait::async_trait]
pub trait Instances: Send + Sync {
    /// The server's version.
    fn version(&self) -> &str;
    async fn instances(&self) -> BackendResult<Vec<Instance>>;
    async fn create_instance(&self, actor: &Principal, name: &str, description: &str) -> BackendResult<Instance>;
}

/// A namespace of tasks and groups; names are unique within it.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    pub name: String,
    pub description: String,
}

#[derive(Default)]
pub struct InstanceQuery;

#[Object]
impl InstanceQuery {
    /// The instances the caller may see, by name.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn instances(&self, ctx: &Context<'_>) -> ApiResult<Vec<Instance>> {
        let access = &principal(ctx)?.instances;
        let all = domain::<dyn Instances>(ctx).instances().await?;
        Ok(all.into_iter().filter(|i| access.allows(&i.name)).collect())
    }
}

#[derive(Default)]
pub struct InstanceMutation;

#[Object]
impl InstanceMutation {
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_instance(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] description: String,
    ) -> ApiResult<Instance> {
        Ok(domain::<dyn Instances>(ctx).create_instance(principal(ctx)?, &name, &description).await?)
    }
}
