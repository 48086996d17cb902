//! The GraphQL WebSocket (`/graphql/ws`, graphql-transport-ws or graphql-ws): frames and
//! messages capped in size, at most `MAX_OPERATIONS` running at once, counted against the
//! socket caps, closed (4408) unless it sends `connection_init` within `INIT_WITHIN`, and closed
//! once its caller's session ends or their role, instances or state change, since what it may
//! see was decided when it opened.

use crate::db::Db;
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use async_graphql::http::{WebSocket, WebSocketProtocols as Protocols, WsMessage};
use baton_graphql::{request_data, Backend, BatonSchema, ClientInfo, Principal};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an open socket checks that its caller is still who they were.
const RECHECK: Duration = Duration::from_secs(2);

/// How long a socket may stay open without `connection_init`.
pub const INIT_WITHIN: Duration = Duration::from_secs(5);

/// Messages read from a socket and not yet handled, at most.
const WAITING: usize = 64;

/// Operations (subscriptions, or queries sent over the socket) running on one socket, at most.
pub const MAX_OPERATIONS: usize = 100;

/// The operations running on one socket, by the id the client gave them, so that one socket
/// cannot hold more than [`MAX_OPERATIONS`] streams open.
struct Operations {
    protocol: Protocols,
    running: std::collections::HashSet<String>,
}

impl Operations {
    /// A client's message: None to pass it on, or the error to answer instead (the operation
    /// does not start; the socket stays).
    fn incoming(&mut self, text: &str) -> Option<String> {
        let msg: serde_json::Value = serde_json::from_str(text).ok()?;
        let id = msg.get("id").and_then(|v| v.as_str()).map(str::to_string);
        match (msg.get("type").and_then(|v| v.as_str()), id) {
            (Some("subscribe" | "start"), Some(id)) => {
                if self.running.len() >= MAX_OPERATIONS && !self.running.contains(&id) {
                    let error = serde_json::json!({ "message": format!(
                        "more than {MAX_OPERATIONS} operations on one socket: complete one first, or open another socket"
                    ), "extensions": { "code": "LIMIT" } });
                    // graphql-transport-ws sends a list of errors, graphql-ws one.
                    let payload = match self.protocol {
                        Protocols::GraphQLWS => serde_json::json!([error]),
                        _ => error,
                    };
                    return Some(serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string());
                }
                self.running.insert(id);
                None
            }
            (Some("complete" | "stop"), Some(id)) => {
                self.running.remove(&id);
                None
            }
            _ => None,
        }
    }

    /// A message to the client: an operation it completes or fails has ended.
    fn outgoing(&mut self, text: &str) {
        // The message type is serialised first: only these two are parsed.
        if text.starts_with("{\"type\":\"complete\"") || text.starts_with("{\"type\":\"error\"") {
            if let Some(id) = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_string))
            {
                self.running.remove(&id);
            }
        }
    }
}

/// Close code for a socket that did not send `connection_init` in time (graphql-transport-ws).
const INIT_TIMEOUT: u16 = 4408;

/// Close code for a socket whose caller's access ended or changed (the 4000s are the
/// application's; 4403 as graphql-transport-ws uses 4403 for "forbidden").
const ACCESS_CHANGED: u16 = 4403;

/// Who the socket serves: the token it authenticated with and what that gave.
type Caller = Arc<Mutex<Option<(String, Principal)>>>;

/// What one socket needs from the server.
pub struct SocketParts {
    pub schema: BatonSchema,
    pub backend: Arc<dyn Backend>,
    pub db: Db,
    /// The largest message (after continuations) read.
    pub max_message_bytes: usize,
    /// Its place in the socket counts, given back when it closes.
    pub admission: crate::socket_caps::Admission,
    /// The server's clock (sessions expire by it).
    pub clock: crate::clock::SharedClock,
}

/// Upgrades the request and serves the socket on its own task. `token` and `from_upgrade` are
/// the caller of the upgrade request (cookie or bearer), used unless `connection_init` names
/// another token.
pub fn serve(
    parts: SocketParts,
    http: &HttpRequest,
    payload: actix_web::web::Payload,
    token: Option<String>,
    from_upgrade: Option<Principal>,
    client: ClientInfo,
) -> actix_web::Result<HttpResponse> {
    let protocol = http
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| list.split(',').find_map(|p| p.trim().parse::<Protocols>().ok()))
        .ok_or_else(|| {
            actix_web::error::ErrorBadRequest("Sec-WebSocket-Protocol: graphql-transport-ws or graphql-ws")
        })?;
    let (mut response, mut session, stream) = actix_ws::handle(http, payload)?;
    response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol.sec_websocket_protocol()));
    let mut stream = stream
        .max_frame_size(parts.max_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(parts.max_message_bytes);
    let caller: Caller = Arc::new(Mutex::new(token.zip(from_upgrade.clone())));
    let SocketParts { schema, backend, db, admission, clock, .. } = parts;
    let admission = Arc::new(admission);
    let initialised = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (input, messages) = tokio::sync::mpsc::channel::<String>(WAITING);
    let messages = tokio_stream::wrappers::ReceiverStream::new(messages);
    let on_init = {
        let (db, backend, caller, clock) = (db.clone(), backend.clone(), caller.clone(), clock.clone());
        let (admission, initialised) = (admission.clone(), initialised.clone());
        move |value: serde_json::Value| async move {
            initialised.store(true, std::sync::atomic::Ordering::SeqCst);
            let init_token = value
                .get("token")
                .or_else(|| value.get("Authorization"))
                .and_then(|v| v.as_str())
                .map(|t| t.trim_start_matches("Bearer ").to_string());
            let principal = match init_token {
                Some(t) => {
                    let p = crate::service::users::principal_for(&db, Some(t.clone()), clock.now()).await;
                    if let Ok(mut c) = caller.lock() {
                        *c = p.clone().map(|p| (t, p));
                    }
                    p
                }
                None => from_upgrade,
            };
            if let Some(p) = &principal {
                admission.of_user(&p.user_id.to_string()).map_err(async_graphql::Error::new)?;
            }
            Ok(request_data(&backend, principal, client))
        }
    };
    let mut graphql = Box::pin(WebSocket::new(schema, messages, protocol).on_connection_init(on_init));
    let mut operations = Operations { protocol, running: std::collections::HashSet::new() };
    actix_web::rt::spawn(async move {
        let _counted = admission;
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        let init_by = tokio::time::sleep(INIT_WITHIN);
        tokio::pin!(init_by);
        let closing = loop {
            tokio::select! {
                () = &mut init_by, if !initialised.load(std::sync::atomic::Ordering::SeqCst) => {
                    let description = "Connection initialisation timeout".to_string();
                    break Some(CloseReason { code: CloseCode::Other(INIT_TIMEOUT), description: Some(description) });
                }
                frame = stream.next() => match frame {
                    // Never waits for room: a client that sends faster than its messages are
                    // handled (or while its connection_init is still being checked) is closed,
                    // so the loop always gets back to its deadlines.
                    Some(Ok(AggregatedMessage::Text(t))) => match operations.incoming(&t) {
                        Some(refused) => {
                            if session.text(refused).await.is_err() {
                                break None;
                            }
                        }
                        None => match input.try_send(t.to_string()) {
                        Ok(()) => {}
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            let description = Some(format!("more than {WAITING} messages waiting"));
                            break Some(CloseReason { code: CloseCode::Policy, description });
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break None,
                        },
                    },
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        break Some(CloseReason { code: CloseCode::Unsupported, description: Some("text frames only".into()) });
                    }
                    Some(Ok(AggregatedMessage::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    // A frame or message over its cap, or a protocol error.
                    Some(Err(e)) => break Some(CloseReason { code: CloseCode::Size, description: Some(e.to_string()) }),
                },
                out = graphql.next() => match out {
                    Some(WsMessage::Text(t)) => {
                        operations.outgoing(&t);
                        if session.text(t).await.is_err() {
                            break None;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        break Some(CloseReason { code: CloseCode::from(code), description: Some(reason) })
                    }
                    None => break None,
                },
                _ = recheck.tick() => {
                    let known = caller.lock().ok().and_then(|c| c.clone());
                    if let Some((token, was)) = known {
                        // A storage error says nothing about the caller: the socket stays.
                        let at = clock.now();
                        let now = db.run(move |c| Ok(crate::service::users::authenticate(c, &token, at))).await;
                        if matches!(now, Ok(Ok(p)) if p.as_ref() != Some(&was)) {
                            let description = "the session ended, or the user's access changed".to_string();
                            break Some(CloseReason { code: CloseCode::Other(ACCESS_CHANGED), description: Some(description) });
                        }
                    }
                }
            }
        };
        let _ = session.close(closing).await;
    });
    Ok(response)
}
