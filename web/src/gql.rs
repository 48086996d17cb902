//! A small GraphQL client over `fetch`: one POST to /graphql, errors turned into readable text.

use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Deserialize)]
struct Response<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
}

/// Runs a query without variables and decodes its `data`.
pub async fn query<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    let body = serde_json::json!({ "query": query });
    let resp = gloo_net::http::Request::post("/graphql")
        .json(&body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let r: Response<T> = resp.json().await.map_err(|e| e.to_string())?;
    match (r.data, r.errors.first()) {
        (_, Some(e)) => Err(e.message.clone()),
        (Some(d), None) => Ok(d),
        (None, None) => Err("empty response".into()),
    }
}
