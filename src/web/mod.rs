//! The gateway's HTTP server: `/metrics` in the Prometheus text format, `/health` for load
//! balancers and `curl`, and with `web:` the REST API under `/api/v1`. `metrics:` alone
//! serves the first two only, as it always did (loopback by default).
//!
//! axum routes the requests; axum-server serves the connections, because it closes a
//! connection whose request head does not arrive within [`HEADER_READ_TIMEOUT`] (a slow,
//! silent or idle kept-alive client costs a socket for that long, not for ever) and stops
//! gracefully. A hand-rolled HTTP/1.1 responder served this before: it closed every
//! connection after one response and would not have grown into an API.
//!
//! - [`metrics`]: the exposition, rendered on each scrape.
//! - [`api`]: the REST API and its OpenAPI document.
//!
//! Dependencies: the bus (the model and the status) and the history, as readers.

pub mod api;
pub mod auth;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioTimer;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bus::Handle;
use crate::history::HistorySlot;
use auth::Auth;

/// A connection whose request head (or, kept alive, whose next request) has not arrived
/// within this is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `/health` fails when the router does not answer within this.
const HEALTH_PROBE: Duration = Duration::from_secs(2);
/// On stop, requests under way get this long to finish.
const GRACE: Duration = Duration::from_secs(2);

/// What a listener serves.
#[derive(Clone)]
pub enum Mount {
    /// `/metrics` and `/health` (a `metrics:` section).
    Metrics,
    /// Those and the REST API (a `web:` section), with its logins.
    Api(Arc<Auth>),
}

impl Mount {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mount::Metrics => "metrics endpoint",
            Mount::Api(_) => "web server",
        }
    }
}

/// What the handlers read.
#[derive(Clone)]
pub(crate) struct Web {
    handle: Handle,
    history: HistorySlot,
    auth: Arc<Auth>,
}

/// Binds `listen` (the caller logs a failure and runs without the server).
pub fn bind(listen: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves until `cancel`, then lets requests under way finish for [`GRACE`].
pub async fn serve(
    listener: std::net::TcpListener,
    mount: Mount,
    handle: Handle,
    history: HistorySlot,
    cancel: CancellationToken,
) {
    let what = mount.name();
    if let Ok(addr) = listener.local_addr() {
        if !addr.ip().is_loopback() {
            warn!(listen = %addr, "{what} is reachable from the network");
        }
        info!(listen = %addr, "{what} listening");
    }
    // HTTP/1 only: with HTTP/2 as well, each connection first passes a protocol sniff that
    // no timer covers, so a client that connects and sends nothing would be kept for ever.
    let mut server = match axum_server::from_tcp(listener) {
        Ok(server) => server.http1_only(),
        Err(e) => {
            warn!(error = %e, "{what} not started");
            return;
        }
    };
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let stop = axum_server::Handle::new();
    let server = server.handle(stop.clone());
    let app = router(mount, handle, history);
    let stopper = tokio::spawn(async move {
        cancel.cancelled().await;
        stop.graceful_shutdown(Some(GRACE));
    });
    // The peer's address: failed logins are counted per user and address.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = server.serve(app).await {
        warn!(error = %e, "{what} stopped");
    }
    stopper.abort();
}

fn router(mount: Mount, handle: Handle, history: HistorySlot) -> Router {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health));
    let (router, auth) = match mount {
        Mount::Metrics => (
            router.fallback(not_found),
            Auth::new(&[], Default::default()).into(),
        ),
        Mount::Api(auth) => (router.merge(api::router()).fallback(not_found_api), auth),
    };
    router.with_state(Web {
        handle,
        history,
        auth,
    })
}

async fn metrics(State(web): State<Web>) -> Response {
    let body = metrics::render(&web.handle, web.history.read().as_deref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn health(State(web): State<Web>) -> Response {
    if web.handle.probe(HEALTH_PROBE).await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "router not answering\n").into_response()
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "try /metrics or /health\n").into_response()
}

async fn not_found_api() -> Response {
    (
        StatusCode::NOT_FOUND,
        "try /api/v1/status, /api/v1/openapi.json, /metrics or /health\n",
    )
        .into_response()
}
