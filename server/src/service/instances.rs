//! The instances: listing them and making new ones.

use super::*;
use async_trait::async_trait;
use baton_graphql::Instance;
use baton_schema::access::InstanceAccess;

#[async_trait]
impl baton_graphql::Instances for Services {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn instances(&self) -> BackendResult<Vec<Instance>> {
        self.run(|c| {
            Ok(db::instances::list(c)?
                .into_iter()
                .map(|r| Instance { id: r.id, name: r.name, description: r.description })
                .collect())
        })
        .await
    }

    async fn create_instance(&self, actor: &Principal, name: &str, description: &str) -> BackendResult<Instance> {
        // A new instance is outside every scoped admin's instances: only an admin of all makes one.
        if !matches!(actor.instances, InstanceAccess::All) {
            return Err(ApiError::Forbidden(format!(
                "only an admin of every instance creates instances (yours: {})",
                actor.instances
            )));
        }
        let now = self.now();
        let (actor, name, description) = (actor.clone(), name.to_string(), description.to_string());
        let info = self
            .run(move |c| {
                baton_schema::names::InstanceName::parse(&name)?;
                if db::instances::by_name(c, &name)?.is_some() {
                    return Err(ApiError::Conflict(format!("instance {name} exists")).into());
                }
                db::transaction(c, |c| {
                    let row = db::instances::ensure(c, &name, now)?;
                    if !description.is_empty() {
                        db::instances::set_description(c, row.id, &description)?;
                    }
                    audit(c, now, &actor.username, "createInstance", &name, None, Some(name.clone()))?;
                    Ok(Instance { id: row.id, name: row.name, description })
                })
            })
            .await?;
        Ok(info)
    }
}
