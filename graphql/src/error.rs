//! API errors. Policy: every error a client sees carries `extensions.code` (UNAUTHENTICATED,
//! FORBIDDEN, NOT_FOUND, VALIDATION, CONFLICT, INTERNAL); validation errors also name the field and
//! the rule; internal errors say nothing of the internals (they are logged by the server instead).

use async_graphql::ErrorExtensions;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {message}")]
    Validation { field: String, rule: String, message: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation { .. } => "VALIDATION",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal => "INTERNAL",
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
            e.set("code", self.code());
            if let Self::Validation { field, rule, .. } = self {
                e.set("field", field.as_str());
                e.set("rule", rule.as_str());
            }
        })
    }
}

impl From<baton_schema::FieldError> for ApiError {
    fn from(e: baton_schema::FieldError) -> Self {
        Self::Validation { field: e.field, rule: e.rule, message: e.message }
    }
}

pub type ApiResult<T> = Result<T, async_graphql::Error>;
