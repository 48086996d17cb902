//! HTTP wiring: `/healthz`, `/graphql` (queries and mutations over POST, GraphiQL over GET,
//! subscriptions over WebSocket at `/graphql/ws` or `/graphql` with an upgrade), and the embedded
//! web UI at `/`. Callers are identified here, from the session cookie or a bearer token.

use crate::agent_gateway::agent_socket;
use crate::config::Config;
use crate::db::Db;
use crate::service::users;
use crate::web_guard::{refusal, security_headers, WebPolicy};
use actix_web::http::StatusCode;
use actix_web::{get, http::header, middleware, web, App, HttpRequest, HttpResponse, HttpServer, Responder};
use baton_graphql::{prepare_request, Backend, BatonSchema, ClientInfo, SESSION_COOKIE};
use rust_embed::RustEmbed;
use std::sync::Arc;

/// The web UI, built by `cargo xtask` into web/dist and embedded in release builds.
#[derive(RustEmbed)]
#[folder = "../web/dist"]
struct UiAssets;

/// GraphiQL (its page, scripts and styles; see graphiql/LICENSES.txt), served from the binary.
#[derive(RustEmbed)]
#[folder = "graphiql"]
struct GraphiqlAssets;

#[derive(Clone)]
struct AppState {
    schema: BatonSchema,
    backend: Arc<dyn Backend>,
    db: Db,
    /// The GraphQL sockets open, against their caps.
    sockets: Arc<crate::socket_caps::SocketCounts>,
    clock: crate::clock::SharedClock,
}

/// `200 ok` while the database answers; `503 degraded` with the reason while it does not (the
/// server keeps running and carries on by itself when it answers again).
#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> impl Responder {
    let version = env!("CARGO_PKG_VERSION");
    match state.db.health().down() {
        None => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "version": version})),
        Some((for_how_long, why)) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "degraded",
            "version": version,
            "database": format!("unreachable for {} s: {why}", for_how_long.as_secs()),
        })),
    }
}

/// The token a request carries: `Authorization: Bearer ...`, else the session cookie.
fn request_token(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())).filter(|t| !t.is_empty())
}

fn client_info(req: &HttpRequest, token: Option<String>) -> ClientInfo {
    let ip = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    // The connection's own scheme (not a forwarded header a client could set).
    let https = req.app_config().secure();
    ClientInfo { ip, session_token: token, https }
}

/// The rustls configuration of `--tls-cert` and `--tls-key`.
fn tls_config(files: &crate::config::TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("tls_cert: reading {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("tls_cert: {} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("tls_key: reading {}", files.key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls_cert and tls_key do not make a certificate and its key")
}

async fn graphql(
    state: web::Data<AppState>,
    policy: web::Data<WebPolicy>,
    http: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refused) = policy.check_origin(&http) {
        return refused.response();
    }
    // Who asks decides how much may be read: a request without a session, a login's, is small.
    let token = request_token(&http);
    let principal = users::principal_for(&state.db, token.clone(), state.clock.now()).await;
    let body = match policy.read_json(&http, payload, policy.body_limit(principal.is_some())).await {
        Ok(b) => b,
        Err(refused) => return refused.response(),
    };
    let req: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refusal(StatusCode::BAD_REQUEST, "body", "graphql_request", format!("not a GraphQL request: {e}"))
                .response()
        }
    };
    let request = prepare_request(req, &state.backend, principal, client_info(&http, token));
    let response = state.schema.execute(request).await;
    let mut out = HttpResponse::Ok();
    // Headers the resolvers set (the session cookie of `login` and `logout`).
    for (name, value) in response.http_headers.iter() {
        if let Ok(v) = header::HeaderValue::from_bytes(value.as_bytes()) {
            out.append_header((name.as_str(), v));
        }
    }
    out.json(response)
}

/// GraphiQL for GET, the WebSocket transport for an upgrade.
async fn graphql_get(
    state: web::Data<AppState>,
    policy: web::Data<WebPolicy>,
    http: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    if http.headers().contains_key(header::UPGRADE) {
        return subscriptions(state, policy, http, payload).await;
    }
    Ok(graphiql_file("index.html"))
}

/// A file of GraphiQL's (`/graphiql/...`).
async fn graphiql_asset(path: web::Path<String>) -> HttpResponse {
    graphiql_file(&path)
}

fn graphiql_file(name: &str) -> HttpResponse {
    match GraphiqlAssets::get(name) {
        Some(f) => HttpResponse::Ok()
            .content_type(mime_guess::from_path(name).first_or_octet_stream().as_ref())
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(f.data.into_owned()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// graphql-transport-ws (and the older graphql-ws). The caller is the cookie's or bearer's, or the
/// `token` (or `Authorization: Bearer ...`) of the connection_init payload.
async fn subscriptions(
    state: web::Data<AppState>,
    policy: web::Data<WebPolicy>,
    http: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    if let Err(refused) = policy.check_origin(&http) {
        return Ok(refused.response());
    }
    let token = request_token(&http);
    let client = client_info(&http, token.clone());
    let refused = |why: String| Ok(refusal(StatusCode::TOO_MANY_REQUESTS, "socket", "limit", why).response());
    let admission = match state.sockets.admit(&client.ip) {
        Ok(a) => a,
        Err(why) => return refused(why),
    };
    let from_upgrade = users::principal_for(&state.db, token.clone(), state.clock.now()).await;
    if let Some(p) = &from_upgrade {
        if let Err(why) = admission.of_user(&p.user_id.to_string()) {
            return refused(why);
        }
    }
    let parts = crate::graphql_socket::SocketParts {
        schema: state.schema.clone(),
        backend: state.backend.clone(),
        db: state.db.clone(),
        max_message_bytes: policy.body_limit(from_upgrade.is_some()),
        admission,
        clock: state.clock.clone(),
    };
    crate::graphql_socket::serve(parts, &http, payload, token, from_upgrade, client)
}

/// Serves a UI file, or `index.html` for client-side routes so they survive a reload.
async fn ui(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    let (name, file) = match UiAssets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (path, f),
        None => match UiAssets::get("index.html") {
            Some(f) => ("index.html", f),
            None => {
                return HttpResponse::ServiceUnavailable()
                    .content_type("text/plain; charset=utf-8")
                    .body("The web UI has not been built: run `cargo xtask run` (or `cargo xtask ui`).")
            }
        },
    };
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let cache = if name == "index.html" { "no-cache" } else { "public, max-age=300" };
    HttpResponse::Ok().content_type(mime.as_ref()).insert_header(("Cache-Control", cache)).body(file.data.into_owned())
}

/// Binds, prints the address it listens on (tests read it when the port is 0), and serves.
pub async fn serve(config: Config, db: Db) -> anyhow::Result<()> {
    let crate::app::App { db, schema, backend, hub, driver, stopping, clock } = crate::app::build(&config, db).await?;
    let sockets = crate::socket_caps::SocketCounts::new(config.socket_caps);
    let state = AppState { schema, backend, db, sockets, clock };
    let policy = WebPolicy { max_body_bytes: config.max_body_bytes, allowed_origins: config.allowed_origins.clone() };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(hub.clone()))
            .app_data(web::Data::new(driver.clone()))
            .app_data(web::Data::new(policy.clone()))
            .wrap(security_headers())
            .wrap(middleware::Compress::default())
            .wrap(middleware::Logger::new("%r %s %Dms").log_target("baton::http"))
            .service(healthz)
            .route("/graphql", web::post().to(graphql))
            .route("/graphql", web::get().to(graphql_get))
            .route("/graphql/ws", web::get().to(subscriptions))
            .route("/graphiql/{file}", web::get().to(graphiql_asset))
            .route("/agent", web::get().to(agent_socket))
            .default_service(web::get().to(ui))
    })
    // Small frames (a dispatch, an acknowledgement) go out at once: without this, Nagle's algorithm
    // holds a frame sent while the previous one awaits the agent's delayed ACK (about 40 ms).
    .on_connect(|conn, _| {
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let tcp = conn
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .or_else(|| conn.downcast_ref::<Tls>().map(|tls| tls.get_ref().0));
        if let Some(tcp) = tcp {
            let _ = tcp.set_nodelay(true);
        }
    });
    // Signals are ours: a stop first hands the work over, then lets the connections finish.
    let server = server.disable_signals().shutdown_timeout(u64::from(config.shutdown_seconds));
    let (server, scheme) = match &config.tls {
        Some(files) => (server.bind_rustls_0_23(config.listen, tls_config(files)?), "https"),
        None => (server.bind(config.listen), "http"),
    };
    let server = server.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    for addr in server.addrs() {
        println!("baton listening on {scheme}://{addr}");
        tracing::info!(%addr, scheme, "listening");
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let why = stop_signal().await;
        tracing::info!(signal = why, "stopping: no new work; handing over to the other servers");
        stopping.begin().await;
        handle.stop(true).await;
    });
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; says which.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; the server stops only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
