//! The API's contract: the checked-in SDL matches the code, and the schema runs without a server.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use async_trait::async_trait;
use baton_graphql::{build_schema, sdl, ApiError, Backend, InstanceInfo};
use std::sync::Arc;

struct Fixed(Result<Vec<InstanceInfo>, ApiError>);

#[async_trait]
impl Backend for Fixed {
    fn version(&self) -> &str {
        "9.9.9"
    }
    async fn instances(&self) -> Result<Vec<InstanceInfo>, ApiError> {
        self.0.clone()
    }
}

#[test]
fn checked_in_sdl_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let current = sdl();
    if std::env::var_os("BATON_UPDATE_SDL").is_some() {
        std::fs::write(&path, &current).expect("write schema.graphql");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == current,
        "graphql/schema.graphql is stale: run `BATON_UPDATE_SDL=1 cargo test -p baton-graphql --test schema` and commit it"
    );
}

#[tokio::test]
async fn version_and_instances() {
    let ok = build_schema(Arc::new(Fixed(Ok(vec![InstanceInfo {
        id: 1,
        name: "default".into(),
        description: String::new(),
    }]))));
    let res = ok.execute("{ version instances { name } }").await;
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(
        res.data.into_json().unwrap(),
        serde_json::json!({"version": "9.9.9", "instances": [{"name": "default"}]})
    );
}

#[tokio::test]
async fn errors_carry_codes_and_hide_internals() {
    let failing = build_schema(Arc::new(Fixed(Err(ApiError::Internal))));
    let res = failing.execute("{ instances { name } }").await;
    let err = serde_json::to_value(&res.errors[0]).unwrap();
    assert_eq!(err["extensions"]["code"], "INTERNAL");
    assert_eq!(err["message"], "internal error");
}

#[tokio::test]
async fn deep_queries_are_refused() {
    let schema = build_schema(Arc::new(Fixed(Ok(vec![]))));
    let deep = format!("{}{}", "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name", " } } } } } } } } } } } } } } } } }");
    let res = schema.execute(deep.as_str()).await;
    assert!(res.errors.iter().any(|e| e.message.contains("nested too deep")), "{:?}", res.errors);
}
