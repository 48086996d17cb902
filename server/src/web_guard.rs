//! What the web surface refuses before a handler runs (a page of another site using the
//! session cookie, a body that is not JSON or too big) and the headers every response carries.

use actix_web::http::{header, StatusCode};
use actix_web::{middleware, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// The content security policy of every response: the UI's own scripts and WebAssembly only,
/// no framing, no plugins, requests only to this server.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries.
pub fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
}

/// The limits and origins of one server.
#[derive(Clone, Debug)]
pub struct WebPolicy {
    pub max_body_bytes: usize,
    /// Origins besides the server's own, without a trailing slash.
    pub allowed_origins: Vec<String>,
}

/// A request refused before any handler ran: what was wrong and the rule.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub field: &'static str,
    pub rule: &'static str,
    pub message: String,
}

impl Refusal {
    /// The answer, in the shape of a GraphQL error.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "errors": [{ "message": self.message, "extensions": { "code": "VALIDATION", "field": self.field, "rule": self.rule } }]
        }))
    }
}

pub fn refusal(status: StatusCode, field: &'static str, rule: &'static str, message: String) -> Refusal {
    Refusal { status, field, rule, message }
}

impl WebPolicy {
    /// A browser names the page's origin on every cross-site POST and WebSocket upgrade; only
    /// this server's own (by its `Host`, either scheme) and the configured ones pass. A request
    /// without `Origin` is not a browser's cross-site request and passes.
    pub fn check_origin(&self, req: &HttpRequest) -> Result<(), Refusal> {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let own = !host.is_empty()
            && origin
                .split_once("://")
                .is_some_and(|(scheme, rest)| (scheme == "http" || scheme == "https") && rest == host);
        if own || self.allowed_origins.iter().any(|o| o == origin) {
            return Ok(());
        }
        Err(refusal(
            StatusCode::FORBIDDEN,
            "Origin",
            "same_origin",
            format!("requests from {origin:?} are not allowed (only this server's own pages and allowed_origins)"),
        ))
    }

    /// The most a request (or a GraphQL socket's message) may send without a session: enough
    /// for a login, so that floods of large anonymous bodies cost the server little memory.
    pub const ANONYMOUS_BODY_BYTES: usize = 64 * 1024;

    /// The body limit for a caller: `max_body_bytes` once signed in, else [`Self::ANONYMOUS_BODY_BYTES`].
    pub fn body_limit(&self, signed_in: bool) -> usize {
        if signed_in {
            self.max_body_bytes
        } else {
            Self::ANONYMOUS_BODY_BYTES.min(self.max_body_bytes)
        }
    }

    /// Reads a JSON body of at most `limit` bytes (see [`Self::body_limit`]): another content type
    /// (a form, `text/plain`, which a page of another site can send without asking) and a bigger
    /// body are refused.
    pub async fn read_json(
        &self,
        req: &HttpRequest,
        mut payload: web::Payload,
        limit: usize,
    ) -> Result<web::Bytes, Refusal> {
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        if media.as_deref() != Some("application/json") {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type",
                "application_json",
                "the body must be application/json".into(),
            ));
        }
        let anonymous = limit < self.max_body_bytes;
        let too_big = || {
            if anonymous {
                refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body",
                    "anonymous_body_bytes",
                    format!("the body is larger than {limit} bytes, the most a request without a session may send"),
                )
            } else {
                refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body",
                    "max_body_bytes",
                    format!("the body is larger than {limit} bytes (max_body_bytes)"),
                )
            }
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_big());
        }
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| refusal(StatusCode::BAD_REQUEST, "body", "readable", format!("reading the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}
