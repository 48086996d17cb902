//! HTTP wiring: `/healthz`, `/graphql` (and GraphiQL), and the embedded web UI at `/`.

use crate::api::ServerBackend;
use crate::config::Config;
use crate::db::Db;
use actix_web::{get, middleware, web, App, HttpRequest, HttpResponse, HttpServer, Responder};
use async_graphql::http::GraphiQLSource;
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse};
use baton_graphql::{build_schema, BatonSchema};
use rust_embed::RustEmbed;
use std::sync::Arc;

/// The web UI, built by `cargo xtask` into web/dist and embedded in release builds.
#[derive(RustEmbed)]
#[folder = "../web/dist"]
struct UiAssets;

#[get("/healthz")]
async fn healthz() -> impl Responder {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn graphql(schema: web::Data<BatonSchema>, req: GraphQLRequest) -> GraphQLResponse {
    schema.execute(req.into_inner()).await.into()
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Baton GraphQL")
            .finish(),
    )
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
    let schema = build_schema(Arc::new(ServerBackend { db }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(schema.clone()))
            .wrap(middleware::Compress::default())
            .wrap(tracing_actix())
            .service(healthz)
            .route("/graphql", web::post().to(graphql))
            .route("/graphql", web::get().to(graphiql))
            .default_service(web::get().to(ui))
    })
    .bind(config.listen)
    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    for addr in server.addrs() {
        println!("baton listening on http://{addr}");
        tracing::info!(%addr, "listening");
    }
    server.run().await?;
    Ok(())
}

fn tracing_actix() -> middleware::Logger {
    middleware::Logger::new("%r %s %Dms").log_target("baton::http")
}
