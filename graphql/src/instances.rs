//! Instances: the namespaces tasks and groups live in.

use crate::backend::{Backend, InstanceInfo};
use crate::error::ApiResult;
use async_graphql::{Context, ErrorExtensions, Object, SimpleObject};
use std::sync::Arc;

/// A namespace of tasks and groups; names are unique within it.
#[derive(SimpleObject)]
pub struct Instance {
    pub id: i64,
    pub name: String,
    pub description: String,
}

impl From<InstanceInfo> for Instance {
    fn from(i: InstanceInfo) -> Self {
        Self { id: i.id, name: i.name, description: i.description }
    }
}

#[derive(Default)]
pub struct InstanceQuery;

#[Object]
impl InstanceQuery {
    /// Every instance, by name.
    async fn instances(&self, ctx: &Context<'_>) -> ApiResult<Vec<Instance>> {
        let backend = ctx.data_unchecked::<Arc<dyn Backend>>();
        let list = backend.instances().await.map_err(|e| e.extend())?;
        Ok(list.into_iter().map(Instance::from).collect())
    }
}
