//! The audit log as the API reads it: newest first, a limited caller seeing only their own actions.

use super::*;
use async_trait::async_trait;

#[async_trait]
impl baton_graphql::Audit for Services {
    async fn audit_log(&self, p: &Principal, f: &AuditFilter, page: PageArgs) -> BackendResult<Page<AuditRecord>> {
        // Audit entries name no instance: a caller limited to some sees only their own.
        let actor = match (&p.instances, &f.actor) {
            (InstanceAccess::All, a) => a.clone(),
            (InstanceAccess::Only(_), Some(a)) if *a != p.username => {
                return Ok(Page { items: Vec::new(), total: 0, has_next: false })
            }
            (InstanceAccess::Only(_), _) => Some(p.username.clone()),
        };
        let f = db::audit::AuditFilter { actor, action: f.action.clone(), since: f.since };
        self.run(move |c| {
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
