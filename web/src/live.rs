//! Live updates: a graphql-transport-ws subscription over `/graphql/ws` (the session cookie
//! identifies the caller), reconnected with backoff when the connection drops. Pages use it as a
//! signal to read again, so a missed event while disconnected costs nothing.

use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use graphql_client::GraphQLQuery;
use serde::Deserialize;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use yew::prelude::*;

fn ws_url() -> String {
    let loc = gloo_utils::window().location();
    let scheme = if loc.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{}/graphql/ws", loc.host().unwrap_or_default())
}

/// Events within this many milliseconds reach the page as one.
const SETTLE_MS: u32 = 100;

/// Hands events to the page at most once per `SETTLE_MS`: pages read again on an event, and a
/// burst of thousands of transitions must not become thousands of reads. A reconnection
/// (`null`, "read everything again") wins over the events it is merged with.
struct Coalesce {
    pending: RefCell<Option<Value>>,
    /// The page's callback as of its latest render (one from an earlier render would read stale
    /// state: whether the page still follows, what it shows).
    on_next: Rc<RefCell<Callback<Value>>>,
}

impl Coalesce {
    fn push(self: &Rc<Self>, v: Value) {
        let mut pending = self.pending.borrow_mut();
        match pending.as_mut() {
            Some(held) => {
                if v.is_null() {
                    *held = Value::Null;
                }
            }
            None => {
                *pending = Some(v);
                let me = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    gloo_timers::future::TimeoutFuture::new(SETTLE_MS).await;
                    let next = me.pending.borrow_mut().take();
                    if let Some(v) = next {
                        let on_next = me.on_next.borrow().clone();
                        on_next.emit(v);
                    }
                });
            }
        }
    }
}

/// A frame the server sends (graphql-transport-ws).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    ConnectionAck,
    Next {
        payload: Next,
    },
    Ping,
    Error,
    Complete,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Next {
    #[serde(default)]
    data: Value,
}

/// Runs one connection until it closes; hands each event's `data` on.
async fn session(query: &str, variables: &Value, on_next: &Rc<Coalesce>, alive: &Cell<bool>) -> bool {
    let Ok(ws) = WebSocket::open_with_protocol(&ws_url(), "graphql-transport-ws") else { return false };
    let (mut tx, mut rx) = ws.split();
    let init = json!({ "type": "connection_init", "payload": {} }).to_string();
    if tx.send(Message::Text(init)).await.is_err() {
        return false;
    }
    let mut subscribed = false;
    while let Some(msg) = rx.next().await {
        if !alive.get() {
            return true;
        }
        let Ok(Message::Text(text)) = msg else { break };
        let Ok(frame) = serde_json::from_str::<Incoming>(&text) else { continue };
        match frame {
            Incoming::ConnectionAck if !subscribed => {
                let sub =
                    json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
                if tx.send(Message::Text(sub.to_string())).await.is_err() {
                    break;
                }
                subscribed = true;
                // Whatever happened while (re)connecting is read again.
                on_next.push(Value::Null);
            }
            Incoming::Next { payload } => on_next.push(payload.data),
            Incoming::Ping => {
                let _ = tx.send(Message::Text(json!({ "type": "pong" }).to_string())).await;
            }
            Incoming::Error | Incoming::Complete => break,
            Incoming::ConnectionAck | Incoming::Other => {}
        }
    }
    subscribed
}

/// Subscribes to a subscription of `crate::ops` while the component lives; `on_next` gets each
/// event's data (and `None` after each (re)connection, to read again what may have been missed).
#[hook]
pub fn use_subscription<Q>(variables: Q::Variables, on_next: Callback<Option<Q::ResponseData>>)
where
    Q: GraphQLQuery + 'static,
{
    let body = Q::build_query(variables);
    let variables = serde_json::to_value(&body.variables).unwrap_or(Value::Null);
    // An event that does not read as the operation's data is taken as "read again".
    let on_value = on_next.reform(|v: Value| serde_json::from_value(v).ok());
    use_events(body.query, variables, on_value);
}

#[hook]
fn use_events(query: &'static str, variables: Value, on_next: Callback<Value>) {
    let latest = use_mut_ref(|| on_next.clone());
    *latest.borrow_mut() = on_next;
    let key = variables.to_string();
    use_effect_with(key, move |_| {
        let alive = Rc::new(Cell::new(true));
        let flag = alive.clone();
        let out = Rc::new(Coalesce { pending: RefCell::new(None), on_next: latest });
        wasm_bindgen_futures::spawn_local(async move {
            let mut backoff = 250u32;
            while flag.get() {
                if session(query, &variables, &out, &flag).await {
                    backoff = 250;
                }
                if !flag.get() {
                    break;
                }
                gloo_timers::future::TimeoutFuture::new(backoff).await;
                backoff = (backoff * 2).min(10_000);
            }
        });
        move || alive.set(false)
    });
}
