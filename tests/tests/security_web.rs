//! The web surface under attack, over the real server: hostile input (a dependency expression
//! nested 300,000 deep, a 17 MiB body), pages of other sites (a foreign `Origin` on a POST or a
//! WebSocket upgrade, a `text/plain` body), and the headers every response carries. After each
//! attack the server still answers `/healthz`.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{data, Server};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;

/// An HTTP client that hands back every status instead of failing on 4xx.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// POSTs `body` to /graphql with the given headers: the status and the body as JSON (or null).
fn post(s: &Server, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let mut req = client().post(&s.url("/graphql"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn still_up(s: &Server) {
    let mut resp = client().get(&s.url("/healthz")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.body_mut().read_to_string().unwrap().contains("\"ok\""));
}

fn query_body(query: &str, variables: Value) -> Vec<u8> {
    json!({ "query": query, "variables": variables }).to_string().into_bytes()
}

#[test]
fn hostile_input_is_refused_naming_the_field_and_the_limit() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    // Once this aborted the whole server with a stack overflow.
    let deep = format!("{}S:a{}", "(".repeat(300_000), ")".repeat(300_000));
    let nested = format!("{}S:a{}", "(".repeat(40), ")".repeat(40));
    for dependency in [deep, nested] {
        let input = json!({ "name": "victim", "command": "true", "target": "a1", "runAsUser": "batch",
                            "dependency": dependency });
        let res = s
            .graphql_as(
                Some(&admin),
                "mutation($t: TaskInput!) { createTask(input: $t) { tid } }",
                json!({ "t": input }),
            )
            .unwrap();
        let e = &res["errors"][0];
        assert_eq!(e["extensions"]["code"], "VALIDATION", "{res}");
        assert_eq!(e["extensions"]["field"], "dependency", "{res}");
        assert!(e["message"].as_str().unwrap().contains("(the limit)"), "{res}");
        still_up(&s);
    }
    // The same through an import.
    let deep = format!("{}S:a{}", "(".repeat(100_000), ")".repeat(100_000));
    let doc = json!({ "kind": "baton.definitions", "version": 1, "instances": [{ "name": "default", "tasks": [
        { "name": "victim", "command": "true", "target": "a1", "run_as_user": "batch", "dependency": deep }
    ] }] });
    let res = data(
        s.graphql_as(
            Some(&admin),
            "mutation($d: JSON!) { importDefinitions(document: $d) { applied errors { path rule message } } }",
            json!({ "d": doc }),
        )
        .unwrap(),
    );
    let import = &res["importDefinitions"];
    assert_eq!(import["applied"], false, "{res}");
    assert!(import["errors"][0]["message"].as_str().unwrap().contains("(the limit)"), "{res}");
    still_up(&s);

    // A body over max_body_bytes (16 MiB) is refused before it is read whole.
    let pad = "x".repeat(17 << 20);
    let body = query_body("{ __typename }", json!({ "pad": pad }));
    let (status, res) =
        post(&s, &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {admin}"))], body);
    assert_eq!(status, 413, "{res}");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "max_body_bytes");
    still_up(&s);
    // Just under it is read (and answered).
    let pad = "x".repeat(15 << 20);
    let (status, res) = post(
        &s,
        &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {admin}"))],
        query_body("{ __typename }", json!({ "pad": pad })),
    );
    assert_eq!((status, &res["data"]["__typename"]), (200, &json!("Query")), "{res}");
    // Without a session (or with a token that is none), 64 KiB is the most: enough for a login.
    for auth in [None, Some("Bearer bt_not-a-token")] {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let pad = "x".repeat(65 << 10);
        let (status, res) = post(&s, &headers, query_body("{ __typename }", json!({ "pad": pad })));
        assert_eq!((status, &res["errors"][0]["extensions"]["rule"]), (413, &json!("anonymous_body_bytes")), "{res}");
        let pad = "x".repeat(60 << 10);
        let (status, res) = post(&s, &headers, query_body("{ __typename }", json!({ "pad": pad })));
        assert_eq!((status, &res["data"]["__typename"]), (200, &json!("Query")), "{res}");
    }
    // Deeply nested JSON is a clear error too.
    let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"query\": \"{{ __typename }}\", \"variables\": {{\"v\": {nested}}}}}");
    let (status, res) = post(
        &s,
        &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {admin}"))],
        body.into_bytes(),
    );
    assert_eq!(status, 400, "{res}");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "graphql_request");
    still_up(&s);
}

#[test]
fn pages_of_other_sites_cannot_use_the_session() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let cookie = format!("baton_session={admin}");
    let create = query_body("mutation { createGroup(input: {name: \"csrf\"}) { gid } }", json!({}));
    // A form or text/plain POST (what a page of another site can send without asking first).
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let (status, res) = post(&s, &[("Content-Type", ct), ("Cookie", &cookie)], create.clone());
        assert_eq!(status, 415, "{ct}: {res}");
        assert_eq!(res["errors"][0]["extensions"]["field"], "Content-Type");
    }
    // JSON with a foreign Origin.
    let (status, res) = post(
        &s,
        &[("Content-Type", "application/json"), ("Cookie", &cookie), ("Origin", "https://evil.example")],
        create.clone(),
    );
    assert_eq!(status, 403, "{res}");
    assert_eq!(res["errors"][0]["extensions"]["rule"], "same_origin");
    let groups = data(s.graphql_as(Some(&admin), "{ groups { totalCount } }", json!({})).unwrap());
    assert_eq!(groups["groups"]["totalCount"], 0, "nothing was created: {groups}");
    // The server's own pages pass.
    let own = s.base_url.clone();
    let (status, res) =
        post(&s, &[("Content-Type", "application/json"), ("Cookie", &cookie), ("Origin", &own)], create);
    assert_eq!((status, res["data"]["createGroup"]["gid"].is_i64()), (200, true), "{res}");

    // The GraphQL socket: a foreign Origin is refused at the upgrade, the server's own is not.
    for (origin, accepted) in [("https://evil.example", false), (own.as_str(), true)] {
        let mut req = s.url("/graphql/ws").replace("http://", "ws://").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        req.headers_mut().insert("Cookie", cookie.parse().unwrap());
        match tungstenite::connect(req) {
            Ok(_) => assert!(accepted, "{origin} was let in"),
            Err(tungstenite::Error::Http(resp)) => {
                assert!(!accepted, "{origin} was refused");
                assert_eq!(resp.status().as_u16(), 403);
            }
            Err(e) => panic!("{origin}: {e}"),
        }
    }
    still_up(&s);
}

#[test]
fn every_response_carries_the_security_headers() {
    let s = Server::start().unwrap();
    for path in ["/", "/healthz", "/graphql"] {
        let resp = client().get(&s.url(path)).call().unwrap();
        let h = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        // Scripts: this server's, and WebAssembly; no eval, no inline script.
        let scripts = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap_or_default();
        assert_eq!(scripts, "script-src 'self' 'wasm-unsafe-eval'", "{path}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
    }
}

/// Writes a config file with `lines` and starts a server with it.
fn server_with(lines: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.toml");
    std::fs::write(&path, lines).unwrap();
    (Server::start_with(&["--config", path.to_str().unwrap()]).unwrap(), dir)
}

type GraphqlSocket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// A graphql-transport-ws connection to `/graphql/ws`, or the HTTP status it was refused with
/// at the upgrade (0 for any other failure).
fn graphql_socket(s: &Server) -> Result<GraphqlSocket, u16> {
    let mut req = s.url("/graphql/ws").replace("http://", "ws://").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tungstenite::connect(req).map(|(ws, _)| ws).map_err(|e| match e {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        _ => 0,
    })
}

/// Reads a socket until the server closes it: the close code and reason (0 when it just ended).
fn closed_with(ws: &mut GraphqlSocket) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string()),
            Ok(tungstenite::Message::Close(None)) | Err(_) => return (0, String::new()),
            Ok(_) => {}
        }
    }
}

#[test]
fn socket_messages_are_capped_even_in_pieces() {
    use tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    let (s, _dir) = server_with("max_body_bytes = 1048576\n");
    let admin = s.admin().unwrap();
    let open = || graphql_socket(&s).unwrap();
    let closed_for_size = |ws: &mut GraphqlSocket| closed_with(ws).0;
    // One message over the cap.
    let mut ws = open();
    let big = json!({ "type": "connection_init", "payload": { "token": admin, "pad": "x".repeat(2 << 20) } });
    let _ = ws.send(tungstenite::Message::Text(big.to_string().into()));
    assert_eq!(closed_for_size(&mut ws), 1009, "closed: message too big");
    // The same in 64 KiB continuation frames: the total counts.
    let mut ws = open();
    let piece = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    let _ = ws.write(tungstenite::Message::Frame(Frame::message(piece.clone(), OpCode::Data(Data::Text), false)));
    while sent < 40 {
        if ws
            .write(tungstenite::Message::Frame(Frame::message(piece.clone(), OpCode::Data(Data::Continue), false)))
            .is_err()
        {
            break;
        }
        let _ = ws.flush();
        sent += 1;
    }
    assert_eq!(closed_for_size(&mut ws), 1009, "closed: continuations over the cap");
    still_up(&s);
}

#[test]
fn a_socket_closes_when_its_session_ends_or_access_changes() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    for (name, change) in [("ended", "logout"), ("demoted", "role"), ("disabled", "disable")] {
        let id = data(
            s.graphql_as(
                Some(&admin),
                "mutation($u: String!) { createUser(username: $u, password: \"password-123\", role: \"operator\", instances: \"*\") { id } }",
                json!({ "u": name }),
            )
            .unwrap(),
        )["createUser"]["id"]
            .as_i64()
            .unwrap();
        let session = s.login(name, "password-123").unwrap();
        let mut sub = baton_tests::Subscription::start(
            &s.base_url,
            &session,
            "subscription { definitionChanges { name } }",
            json!({}),
        )
        .unwrap();
        match change {
            "logout" => {
                data(s.graphql_as(Some(&session), "mutation { logout }", json!({})).unwrap());
            }
            "role" => {
                data(
                    s.graphql_as(
                        Some(&admin),
                        "mutation($id: Int!) { updateUser(id: $id, role: \"viewer\") { id } }",
                        json!({ "id": id }),
                    )
                    .unwrap(),
                );
            }
            _ => {
                data(
                    s.graphql_as(
                        Some(&admin),
                        "mutation($id: Int!) { updateUser(id: $id, disabled: true) { id } }",
                        json!({ "id": id }),
                    )
                    .unwrap(),
                );
            }
        }
        let closed = baton_tests::wait_for("the socket to close", std::time::Duration::from_secs(10), || {
            match sub.next_frame(std::time::Duration::from_millis(200)) {
                Err(e) => Some(e.to_string()),
                Ok(_) => None,
            }
        })
        .unwrap();
        assert!(closed.contains("4403"), "{change}: {closed}");
    }
}

#[test]
fn lists_and_output_count_in_the_query_cost() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    // 600 aliases of a 1 MiB output read (1,800 arguments, within their limit): refused for
    // their cost before anything runs.
    let fields: String =
        (0..600).map(|i| format!("o{i}: runOutput(runId: 1, stream: STDOUT, limit: 1048576) {{ data }} ")).collect();
    let res = s.graphql_as(Some(&admin), &format!("{{ {fields} }}"), json!({})).unwrap();
    let message = res["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{res}");
    // Forty pages of 500 runs cost too much as well; the largest page of tasks with its fields does not.
    let fields: String =
        (0..40).map(|i| format!("o{i}: runs(first: 500) {{ nodes {{ id status taskName reason }} }} ")).collect();
    let res = s.graphql_as(Some(&admin), &format!("{{ {fields} }}"), json!({})).unwrap();
    assert!(res["errors"][0]["message"].as_str().unwrap_or_default().contains("too complex"), "40 pages of 500: {res}");
    let res = s
        .graphql_as(
            Some(&admin),
            "{ tasks(first: 500) { totalCount nodes { tid name command target runAsUser description } } }",
            json!({}),
        )
        .unwrap();
    assert!(res["errors"].is_null(), "{res}");
    still_up(&s);
}

/// A few kilobytes of fragments that spread one another three times each (3^24 fields once
/// expanded, nested less deep than the parser's limit)
/// from an anonymous client: each is refused at once, naming the rule, and `/healthz` answers
/// throughout.
/// A small document cannot ask for a large answer: repeated or unknown arguments are counted
/// before validation, and a response lists at most 100 errors (each unknown field is one).
#[test]
fn a_small_document_gets_a_small_answer() {
    let s = Server::start().unwrap();
    let ask = |query: String| {
        let (status, res) = post(&s, &[("Content-Type", "application/json")], query_body(&query, json!({})));
        (status, res.to_string().len(), res)
    };
    let repeated: String = (0..12_000).map(|_| "a:1,").collect();
    let (status, size, res) = ask(format!("{{version({repeated})}}"));
    assert_eq!((status, &res["errors"][0]["extensions"]["rule"]), (200, &json!("arguments")), "{res}");
    assert!(size < 1_000, "{size} bytes");
    let unknown: String = (0..5_000).map(|i| format!("f{i} ")).collect();
    let (_, size, res) = ask(format!("{{ {unknown} }}"));
    let errors = res["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 101, "{}", &res.to_string()[..300]);
    assert!(errors[100]["message"].as_str().unwrap().contains("4900 more errors not shown"), "{}", errors[100]);
    assert!(size < 64 << 10, "{size} bytes for a document of {} bytes", unknown.len());
    still_up(&s);
}

#[test]
fn a_fragment_bomb_is_refused_before_it_is_expanded() {
    let s = Server::start().unwrap();
    let mut bomb = String::from("query { ...f25 }\nfragment f1 on Query { __typename }\n");
    for i in 2..=25 {
        bomb.push_str(&format!("fragment f{i} on Query {{ ...f{p} ...f{p} ...f{p} }}\n", p = i - 1));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let (url, body, tx) = (s.url("/graphql"), query_body(&bomb, json!({})), tx.clone());
        std::thread::spawn(move || {
            let resp = client().post(&url).header("Content-Type", "application/json").send(body);
            let text = resp.ok().and_then(|mut r| r.body_mut().read_to_string().ok()).unwrap_or_default();
            let _ = tx.send(serde_json::from_str::<Value>(&text).unwrap_or(Value::Null));
        });
    }
    for _ in 0..3 {
        let res = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("answered at once");
        let e = &res["errors"][0]["extensions"];
        assert_eq!(
            (e["code"].as_str(), e["field"].as_str(), e["rule"].as_str()),
            (Some("VALIDATION"), Some("query"), Some("fields")),
            "{res}"
        );
        still_up(&s);
    }
}

/// GraphQL sockets are capped per address, per user and in total, and one that never sends
/// `connection_init` is closed with 4408 within a few seconds; `/healthz` answers throughout.
#[test]
fn idle_and_excess_sockets_are_refused_or_closed() {
    let (s, _dir) = server_with("max_sockets_per_address = 3\nmax_sockets_per_user = 1\n");
    let admin = s.admin().unwrap();
    let open = || graphql_socket(&s);
    let started = std::time::Instant::now();
    let mut idle: Vec<_> = (0..3).map(|_| open().unwrap()).collect();
    // A fourth from this address is refused at the upgrade.
    assert_eq!(open().map(|_| ()), Err(429), "a fourth socket from one address");
    still_up(&s);
    // Those that never said connection_init are closed, in a few seconds.
    for ws in &mut idle {
        assert_eq!(closed_with(ws).0, 4408);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    // Their places are given back; one user gets one socket here.
    let init = json!({ "type": "connection_init", "payload": { "token": admin } }).to_string();
    let mut first = open().unwrap();
    first.send(tungstenite::Message::Text(init.clone().into())).unwrap();
    assert!(matches!(first.read().unwrap(), tungstenite::Message::Text(t) if t.contains("connection_ack")));
    let mut second = open().unwrap();
    second.send(tungstenite::Message::Text(init.into())).unwrap();
    let (code, reason) = closed_with(&mut second);
    assert!(code != 0 && reason.contains("max_sockets_per_user"), "closed {code}: {reason}");
    drop((first, second));
    // A flood of messages behind a connection_init still being checked closes the socket at once
    // (it never stalls the socket's deadlines), and its place comes back.
    let mut flood = open().unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = flood.get_mut() {
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    }
    let junk = json!({ "type": "connection_init", "payload": { "token": "not-a-token" } }).to_string();
    let _ = flood.send(tungstenite::Message::Text(junk.into()));
    for _ in 0..200 {
        let _ = flood.send(tungstenite::Message::Text("{\"type\":\"ping\"}".into()));
    }
    let (code, reason) = closed_with(&mut flood);
    assert_eq!(code, 1008, "{reason}");
    wait_for_places(&open);
    still_up(&s);
}

/// Waits until three sockets open again from this address (closed ones gave their places back).
fn wait_for_places<T>(open: &impl Fn() -> Result<T, u16>) {
    baton_tests::wait_for("the sockets' places back", std::time::Duration::from_secs(10), || {
        let three: Vec<_> = (0..3).map(|_| open()).collect();
        three.iter().all(Result::is_ok).then_some(())
    })
    .unwrap();
}

/// One socket runs at most 100 operations at once: the next is refused with an error for its
/// id and the socket stays; once one completes, another may start.
#[test]
fn a_socket_runs_a_bounded_number_of_subscriptions() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let mut ws = graphql_socket(&s).unwrap();
    let send = |ws: &mut GraphqlSocket, v: Value| ws.send(tungstenite::Message::Text(v.to_string().into())).unwrap();
    send(&mut ws, json!({ "type": "connection_init", "payload": { "token": admin } }));
    let next = |ws: &mut GraphqlSocket| -> Value {
        loop {
            if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    assert_eq!(next(&mut ws)["type"], "connection_ack");
    let subscribe = |id: &str| json!({ "type": "subscribe", "id": id, "payload": { "query": "subscription { agentEvents { name } }" } });
    for i in 0..100 {
        send(&mut ws, subscribe(&format!("s{i}")));
    }
    send(&mut ws, subscribe("one-too-many"));
    let refused = next(&mut ws);
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("one-too-many")), "{refused}");
    assert!(refused["payload"][0]["message"].as_str().unwrap().contains("more than 100 operations"), "{refused}");
    // Completing one makes room; the socket was never closed.
    send(&mut ws, json!({ "type": "complete", "id": "s0" }));
    send(&mut ws, json!({ "type": "subscribe", "id": "q", "payload": { "query": "{ version }" } }));
    let answer = std::iter::repeat_with(|| next(&mut ws)).find(|m| m["id"] == "q").unwrap();
    assert_eq!(answer["type"], "next", "{answer}");
    still_up(&s);
}
