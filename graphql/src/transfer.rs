//! Import and export of definitions as one versioned JSON document.

use crate::backend::*;
use crate::backend::{ImportMode, ImportPlan, PlanChange, PlanItem};
use crate::definitions::domain;
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Enum, Json, Object, SimpleObject};
use baton_schema::access::Role;
use baton_schema::document::Document;

/// Import and export of definitions.
#[async_trait::async_trait]
pub trait Transfer: Send + Sync {
    async fn export(&self, p: &Principal, instances: Option<Vec<String>>) -> BackendResult<Document>;
    async fn import(
        &self,
        p: &Principal,
        document: serde_json::Value,
        mode: ImportMode,
        dry_run: bool,
    ) -> BackendResult<ImportPlan>;
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ImportMode")]
pub enum ImportModeInput {
    /// Create or update what the document has (by id, else by name); keep the rest.
    Merge,
    /// As merge, and delete what the document's instances have that it lacks.
    Replace,
}

#[derive(SimpleObject)]
#[graphql(name = "PlanItem")]
pub struct PlanItemView {
    /// calendar, group, task or instance
    pub kind: String,
    pub instance: String,
    pub name: String,
}

impl From<PlanItem> for PlanItemView {
    fn from(p: PlanItem) -> Self {
        PlanItemView { kind: p.kind, instance: p.instance, name: p.name }
    }
}

#[derive(SimpleObject)]
pub struct FieldChangeView {
    pub field: String,
    pub before: Json<serde_json::Value>,
    pub after: Json<serde_json::Value>,
}

#[derive(SimpleObject)]
pub struct PlanChangeView {
    pub item: PlanItemView,
    pub fields: Vec<FieldChangeView>,
}

impl From<PlanChange> for PlanChangeView {
    fn from(c: PlanChange) -> Self {
        PlanChangeView {
            item: c.item.into(),
            fields: c
                .fields
                .into_iter()
                .map(|f| FieldChangeView { field: f.field, before: Json(f.before), after: Json(f.after) })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct PlanError {
    /// The JSON path of the problem, e.g. `$.instances[0].tasks[3].schedule.timezone`.
    pub path: String,
    pub rule: String,
    pub message: String,
}

/// What an import does (or would do): nothing is applied when there are errors.
#[derive(SimpleObject)]
pub struct ImportResult {
    pub created: Vec<PlanItemView>,
    pub changed: Vec<PlanChangeView>,
    pub deleted: Vec<PlanItemView>,
    pub errors: Vec<PlanError>,
    /// True when the plan was carried out (not a dry run, no errors).
    pub applied: bool,
}

impl From<ImportPlan> for ImportResult {
    fn from(p: ImportPlan) -> Self {
        ImportResult {
            created: p.created.into_iter().map(Into::into).collect(),
            changed: p.changed.into_iter().map(Into::into).collect(),
            deleted: p.deleted.into_iter().map(Into::into).collect(),
            errors: p
                .errors
                .into_iter()
                .map(|e| PlanError { path: e.field, rule: e.rule, message: e.message })
                .collect(),
            applied: p.applied,
        }
    }
}

#[derive(Default)]
pub struct TransferMutation;

#[Object]
impl TransferMutation {
    /// The versioned document of every calendar, group, task and alert rule of the chosen
    /// instances (all the caller may see when absent). No secrets.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn export_definitions(
        &self,
        ctx: &Context<'_>,
        instances: Option<Vec<String>>,
    ) -> ApiResult<Json<serde_json::Value>> {
        let doc = domain::<dyn Transfer>(ctx).export(principal(ctx)?, instances).await?;
        Ok(Json(serde_json::to_value(doc).map_err(|_| ApiError::Internal)?))
    }

    /// Validates the whole document, then applies it in one transaction unless `dryRun`.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn import_definitions(
        &self,
        ctx: &Context<'_>,
        document: Json<serde_json::Value>,
        #[graphql(default)] dry_run: bool,
        #[graphql(default_with = "ImportModeInput::Merge")] mode: ImportModeInput,
    ) -> ApiResult<ImportResult> {
        let mode = match mode {
            ImportModeInput::Merge => ImportMode::Merge,
            ImportModeInput::Replace => ImportMode::Replace,
        };
        Ok(domain::<dyn Transfer>(ctx).import(principal(ctx)?, document.0, mode, dry_run).await?.into())
    }
}
