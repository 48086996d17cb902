//! A small GraphQL client over `fetch`: one POST to /graphql with the session cookie, errors
//! turned into readable text with the server's code (UNAUTHENTICATED sends the user to login).
//! The operations it sends are typed (`crate::ops`).

use graphql_client::GraphQLQuery;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Response<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
    #[serde(default)]
    extensions: Option<Value>,
}

/// What went wrong with a request, as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    /// The server's `extensions.code` (UNAUTHENTICATED, FORBIDDEN, VALIDATION, ...), or NETWORK.
    pub code: String,
    pub message: String,
    /// Validation errors by field (the field's name as the API spells it, and the message).
    pub fields: Vec<(String, String)>,
}

impl Error {
    /// A field's value refused before sending, as the server's validation errors read.
    pub fn field_error(field: &str, message: &str) -> Self {
        Error {
            code: "VALIDATION".into(),
            message: format!("{field}: {message}"),
            fields: vec![(field.to_string(), message.to_string())],
        }
    }

    /// An answer without data or errors.
    fn empty() -> Self {
        Error { code: "ERROR".into(), message: "empty response".into(), fields: Vec::new() }
    }

    /// The message for one field, to show beside it.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(f, _)| f == name || f.ends_with(&format!(".{name}")) || f.starts_with(&format!("{name}[")))
            .map(|(f, m)| if f == name { m.clone() } else { format!("{f}: {m}") })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn network(e: impl std::fmt::Display) -> Error {
    Error { code: "NETWORK".into(), message: format!("cannot reach the server: {e}"), fields: Vec::new() }
}

/// Runs an operation of `crate::ops` with its variables and gives its typed `data`.
pub async fn run<Q: GraphQLQuery>(variables: Q::Variables) -> Result<Q::ResponseData, Error> {
    post(&Q::build_query(variables)).await
}

async fn post<T: DeserializeOwned>(body: &impl Serialize) -> Result<T, Error> {
    let resp = gloo_net::http::Request::post("/graphql").json(body).map_err(network)?.send().await.map_err(network)?;
    let r: Response<T> = resp.json().await.map_err(network)?;
    match (r.data, r.errors.into_iter().next()) {
        (_, Some(e)) => {
            let code = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("ERROR")
                .to_string();
            let mut fields: Vec<(String, String)> = Vec::new();
            if let Some(list) = e.extensions.as_ref().and_then(|x| x.get("errors")).and_then(Value::as_array) {
                for f in list {
                    let name = f.get("field").and_then(Value::as_str).unwrap_or_default().to_string();
                    let msg = f.get("message").and_then(Value::as_str).unwrap_or_default().to_string();
                    fields.push((name, msg));
                }
            }
            Err(Error { code, message: e.message, fields })
        }
        (Some(d), None) => Ok(d),
        (None, None) => Err(Error::empty()),
    }
}

/// What a page shows while its data is on the way.
#[derive(Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(Error),
}
