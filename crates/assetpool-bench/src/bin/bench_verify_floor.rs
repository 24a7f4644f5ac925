//! `bench-verify-floor`: the verify path with nothing around the check. A
//! bare axum server (as `bench-ceiling`) whose `GET /v1/resource` runs
//! assetpool's own check and answer on a database seeded by `bench-seed`:
//! the server's credential check (`authenticate_request`: API key, then
//! token, from the same caches), the request counted against its key (usage
//! tracking on, flushed every 5 s as the server does), and the server's
//! `/v1/resource` handler for the answer. Left out is everything else the
//! server wraps a request in: the observe layer (request id, span, metrics,
//! log, security headers), the own routes' layer (control characters, time
//! limit, `Cache-Control`) and the listener's limits and watchdog. Its
//! connections are axum's (`axum::serve`, hyper-util's automatic protocol
//! choice) rather than the server's own listener (hyper's HTTP/1 connection);
//! it installs no log subscriber and starts no webhook delivery; it always
//! counts usage and takes the client address from the socket.
//!
//! Between `bench-ceiling` and `assetpool serve` on the same load, it splits
//! what verify costs above bare HTTP into the check with its bookkeeping
//! (floor − ceiling) and the layers and listener (server − floor).
//!
//! Usage: `bench-verify-floor --database sqlite://PATH --issuer ISSUER
//! [--listen ADDR]` (production environment, default address
//! `127.0.0.1:8092`); prints `listening on http://ADDR` once ready.

use anyhow::Context as _;
use assetpool_server::background::BackgroundTasks;
use assetpool_server::controllers::resource::get_resource;
use assetpool_server::extract::{authenticate_request, Authenticated};
use assetpool_server::state::AppState;
use assetpool_server::usage::UsageSlot;
use assetpool_server::{Application, ServerSettings};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum::Router;
use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;

// The server's allocator, so that the floor differs from it in the layers and
// the listener only.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves `GET /v1/resource` with the check alone.
#[derive(Debug, Parser)]
struct Args {
    /// The database seeded by `bench-seed` (`sqlite://PATH`).
    #[arg(long)]
    database: String,
    /// The issuer the seeded tokens name (`bench-seed --issuer`).
    #[arg(long)]
    issuer: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8092")]
    listen: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    assetpool_bench::block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut settings = ServerSettings::new(args.database);
    settings.issuer = Some(args.issuer);
    // The application's own listener is never served; this one is.
    settings.listen = "127.0.0.1:0".to_owned();
    let flush = settings.usage_flush_interval;
    let poll = settings.change_poll_interval;
    let application = Application::build(settings)
        .await
        .context("cannot open the seeded database")?;
    let state = application.state().clone();
    let _tasks = BackgroundTasks::start(state.service.clone(), poll, flush);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let app = Router::new()
        .route("/v1/resource", get(resource))
        .with_state(state);
    eprintln!("listening on http://{local}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The server's check and answer, with the request counted against its key
/// as the observe layer counts it.
async fn resource(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    // No trusted proxies: the client is the peer.
    let slot = Arc::new(UsageSlot::new(peer.ip().to_canonical()));
    parts.extensions.insert(slot.clone());
    let response = match authenticate_request(&parts.headers, &parts.extensions, &state).await {
        Ok(verified) => match get_resource(Authenticated(verified)).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        },
        Err(error) => error.into_response(),
    };
    slot.count(&response);
    response
}
