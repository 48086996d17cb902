//! API errors. Policy: every error a client sees carries `extensions.code` (UNAUTHENTICATED,
//! FORBIDDEN, NOT_FOUND, VALIDATION, CONFLICT, INTERNAL); validation errors also name the field and
//! the rule of the first problem and list them all under `errors`; internal errors say nothing of
//! the internals (the server logs them instead).

use async_graphql::ErrorExtensions;
use baton_schema::{FieldError, FieldErrors};

/// Deliberately not `Display`: async-graphql turns any `Display` error into a plain message,
/// which would drop the code; this type converts only through [`ErrorExtensions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Unauthenticated,
    Forbidden(String),
    NotFound(String),
    Validation(FieldErrors),
    Conflict(String),
    Internal,
}

impl ApiError {
    /// The message clients see.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "authentication required".into(),
            Self::Forbidden(why) => format!("not allowed: {why}"),
            Self::NotFound(what) => format!("{what} not found"),
            Self::Validation(errors) => format!("invalid input: {errors}"),
            Self::Conflict(why) => format!("conflict: {why}"),
            Self::Internal => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation(_) => "VALIDATION",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn invalid(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldError::new(field, rule, message).into())
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", self.code());
            if let Self::Validation(errors) = self {
                if let Some(first) = errors.0.first() {
                    e.set("field", first.field.as_str());
                    e.set("rule", first.rule.as_str());
                }
                let list: Vec<async_graphql::Value> = errors
                    .iter()
                    .map(|fe| {
                        let mut m = async_graphql::indexmap::IndexMap::new();
                        m.insert(async_graphql::Name::new("field"), async_graphql::Value::from(fe.field.as_str()));
                        m.insert(async_graphql::Name::new("rule"), async_graphql::Value::from(fe.rule.as_str()));
                        m.insert(async_graphql::Name::new("message"), async_graphql::Value::from(fe.message.as_str()));
                        async_graphql::Value::Object(m)
                    })
                    .collect();
                e.set("errors", async_graphql::Value::List(list));
            }
        })
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::Validation(e.into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

pub type ApiResult<T> = Result<T, async_graphql::Error>;
