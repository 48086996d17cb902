//! The seam between the API and the system: the server implements [`Backend`]; tests may too.

use crate::error::ApiError;
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The server's version.
    fn version(&self) -> &str;
    async fn instances(&self) -> Result<Vec<InstanceInfo>, ApiError>;
}
