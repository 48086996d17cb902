//! DataLoaders: related records are fetched in one batch per request, never one query per row.

use crate::backend::{Backend, Principal};
use crate::error::ApiError;
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;

/// Groups by GID, as the caller may see them.
pub struct GroupLoader {
    pub backend: Arc<dyn Backend>,
    pub principal: Principal,
}

impl Loader<i64> for GroupLoader {
    type Value = crate::backend::GroupRecord;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let groups = self.backend.groups_by_ids(&self.principal, keys).await?;
        Ok(groups.into_iter().filter_map(|g| g.draft.gid.map(|id| (id.0, g))).collect())
    }
}
