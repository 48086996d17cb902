//! The audit log as the API reads it: newest first, a limited caller seeing their own actions and
//! the entries about their instances.

use super::*;
use async_trait::async_trait;

#[async_trait]
impl baton_graphql::Audit for Services {
    async fn audit_log(&self, p: &Principal, f: &AuditFilter, page: PageArgs) -> BackendResult<Page<AuditRecord>> {
        let (p, f) = (p.clone(), f.clone());
        self.run(move |c| {
            let known = db::instances::list(c)?;
            let id_of = |name: &str| known.iter().find(|i| i.name == name).map(|i| i.id);
            // A caller limited to some instances reads their own entries and those about theirs.
            let visible_to = visible_instances(c, &p.instances)?
                .map(|instances| db::audit::Visible { actor: p.username.clone(), instances });
            let instance = match &f.instance {
                Some(name) => match id_of(name) {
                    Some(id) => Some(id),
                    None => return Ok(Page { items: Vec::new(), total: 0, has_next: false }),
                },
                None => None,
            };
            let f = db::audit::AuditFilter {
                actor: f.actor.clone(),
                action: f.action.clone(),
                since: f.since,
                instance,
                visible_to,
            };
            let mut rows = db::audit::page(c, &f, page.after, page.first + 1)?;
            let has_next = rows.len() as i64 > page.first;
            rows.truncate(page.first as usize);
            let total = db::audit::count(c, &f)?;
            Ok(Page {
                items: rows
                    .into_iter()
                    .map(|r| AuditRecord {
                        id: r.id,
                        at: db::utc(r.at),
                        actor: r.actor,
                        action: r.action,
                        target: r.target,
                        instance: r.instance_id.and_then(|i| known.iter().find(|k| k.id == i)).map(|k| k.name.clone()),
                        before: r.before_value,
                        after: r.after_value,
                        origin: r.origin,
                    })
                    .collect(),
                total,
                has_next,
            })
        })
        .await
    }
}
