//! The server's side of the GraphQL seam: [`baton_graphql::Backend`] over the database.

use crate::db::{self, Db, DbError};
use async_trait::async_trait;
use baton_graphql::{ApiError, Backend, InstanceInfo};

pub struct ServerBackend {
    pub db: Db,
}

/// Database failures are logged here and reach clients only as INTERNAL.
pub(crate) fn internal(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::NotFound("record".into()),
        DbError::Conflict(m) => ApiError::Conflict(m),
        other => {
            tracing::error!(error = %other, "database error");
            ApiError::Internal
        }
    }
}

#[async_trait]
impl Backend for ServerBackend {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn instances(&self) -> Result<Vec<InstanceInfo>, ApiError> {
        let rows = self.db.run(db::instances::list).await.map_err(internal)?;
        Ok(rows.into_iter().map(|r| InstanceInfo { id: r.id, name: r.name, description: r.description }).collect())
    }
}
