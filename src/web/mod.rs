//! The gateway's HTTP server: `/metrics` in the Prometheus text format, `/health` for load
//! balancers and `curl`, and with `web:` the REST API under `/api/v1` and the console.
//! `metrics:` alone serves the first two only, as it always did (loopback by default).
//!
//! axum routes the requests; axum-server serves the connections, because it closes a
//! connection whose request head does not arrive within [`HEADER_READ_TIMEOUT`] (a slow,
//! silent or idle kept-alive client costs a socket for that long, not for ever; [`cap`]
//! covers the first request's silence, which hyper's timer does not) and stops
//! gracefully. A hand-rolled HTTP/1.1 responder served this before: it closed every
//! connection after one response and would not have grown into an API.
//!
//! - [`metrics`]: the exposition, rendered on each scrape.
//! - [`api`]: the REST API and its OpenAPI document.
//! - [`console`]: the web console, a page on that API, built into the binary.
//! - [`cap`]: the cap on open connections, taken as they are accepted.
//!
//! Dependencies: the bus (the model and the status) and the history, as readers.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cap;
pub mod console;
mod frame;
pub mod metrics;
pub mod stream;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::TokioTimer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::bus::Handle;
use crate::config::web::Tls;
use crate::history::HistorySlot;
use audit::Audit;
use auth::Auth;
use cap::Capped;

/// A connection whose request head (or, kept alive, whose next request) has not arrived
/// within this is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (its body included) that takes longer than this is answered 408: the head has
/// its own timeout, a body that stops arriving would otherwise hold its connection.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
/// `/health` fails when the router does not answer within this.
const HEALTH_PROBE: Duration = Duration::from_secs(2);
/// On stop, requests under way get this long to finish.
const GRACE: Duration = Duration::from_secs(2);

/// What a listener serves.
#[derive(Clone)]
pub enum Mount {
    /// `/metrics` and `/health` (a `metrics:` section).
    Metrics,
    /// Those and the REST API (a `web:` section), with its logins and audit trail.
    Api {
        auth: Arc<Auth>,
        audit: Arc<Audit>,
        tls: Tls,
    },
}

impl Mount {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mount::Metrics => "metrics endpoint",
            Mount::Api { .. } => "web server",
        }
    }
}

/// What the handlers read.
#[derive(Clone)]
pub(crate) struct Web {
    handle: Handle,
    history: HistorySlot,
    auth: Arc<Auth>,
    audit: Option<Arc<Audit>>,
    /// The change stream's clients (a `web:` server).
    hub: Option<Arc<stream::Hub>>,
    /// Writes and acknowledgements under way, each with its audit entry: the server waits
    /// for them as it stops.
    changes: TaskTracker,
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
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let tls = match &mount {
        Mount::Api { tls, .. } => {
            let tls = tls.clone();
            match tokio::task::spawn_blocking(move || tls::server_config(&tls, addr)).await {
                Ok(Ok(config)) => config,
                Ok(Err(e)) => {
                    error!(listen = %addr, error = %e, "{what} not started: TLS");
                    return;
                }
                Err(e) => {
                    error!(listen = %addr, error = %e, "{what} not started");
                    return;
                }
            }
        }
        Mount::Metrics => None,
    };
    if !addr.ip().is_loopback() && tls.is_none() {
        warn!(listen = %addr, "{what} is reachable from the network");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(listen = %addr, scheme, "{what} listening");
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
    let changes = TaskTracker::new();
    let accepting = cancel.clone();
    let mut app = router(mount, handle, history, &cancel, changes.clone());
    if addr.ip().is_loopback() {
        app = app.layer(axum::middleware::from_fn(loopback_host));
    }
    let stopper = tokio::spawn(async move {
        cancel.cancelled().await;
        stop.graceful_shutdown(Some(GRACE));
    });
    // The peer's address: failed logins are counted per user and address.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match tls {
        // The handshake gets as long as a request head would.
        Some(config) => {
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(config))
                .handshake_timeout(HEADER_READ_TIMEOUT);
            server
                .acceptor(Capped::new(
                    acceptor,
                    false,
                    cap::MAX_CONNECTIONS,
                    accepting.clone(),
                ))
                .serve(app)
                .await
        }
        None => {
            server
                .acceptor(Capped::new(
                    DefaultAcceptor,
                    true,
                    cap::MAX_CONNECTIONS,
                    accepting.clone(),
                ))
                .serve(app)
                .await
        }
    };
    if let Err(e) = served {
        warn!(error = %e, "{what} stopped");
    }
    changes.close();
    if tokio::time::timeout(GRACE, changes.wait()).await.is_err() {
        warn!("{what}: writes under way did not end within the grace period");
    }
    stopper.abort();
}

impl Web {
    /// Runs a change (a write, an acknowledgement) with its audit entry to its end, even
    /// when the request that asked for it goes away; the server waits for it as it stops.
    async fn change<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.changes.spawn(work).await.ok()
    }

    /// Records `entry` in the audit trail (a `web:` server always has one).
    async fn audit(&self, entry: audit::Entry) {
        if let Some(audit) = &self.audit {
            audit.record(entry).await;
        }
    }
}

fn router(
    mount: Mount,
    handle: Handle,
    history: HistorySlot,
    cancel: &CancellationToken,
    changes: TaskTracker,
) -> Router {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health));
    let (router, auth, audit, hub) = match mount {
        Mount::Metrics => (
            router.fallback(not_found),
            Auth::new(&[], Default::default(), false).into(),
            None,
            None,
        ),
        Mount::Api { auth, audit, .. } => {
            let hub = stream::Hub::start(&handle, auth.clone(), cancel.child_token());
            (
                router
                    .merge(api::router())
                    .merge(console::router())
                    .fallback(not_found_api)
                    .layer(axum::middleware::from_fn(deadline)),
                auth,
                Some(audit),
                Some(hub),
            )
        }
    };
    router.with_state(Web {
        handle,
        history,
        auth,
        audit,
        hub,
        changes,
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

async fn deadline(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => api::ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took too long (a body that stopped short of its Content-Length?); a write or acknowledgement under way still ends, in the audit trail",
        )
        .into_response(),
    }
}

/// On a loopback listener, only requests that name a loopback host are served: a web page
/// elsewhere that rebinds its own name to 127.0.0.1 (DNS rebinding) must not read the
/// gateway through the engineer's browser.
async fn loopback_host(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // A browser always sends Host; a request without one (HTTP/1.0 from a script) is
    // not what this guards against.
    let Some(host) = request.headers().get(header::HOST) else {
        return next.run(request).await;
    };
    let host = host.to_str().unwrap_or("");
    // `name`, `name:port`, `[v6]` or `[v6]:port`.
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        next.run(request).await
    } else {
        api::ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host",
            "this server listens on loopback only and answers requests for localhost, 127.0.0.1 or [::1]",
        )
        .into_response()
    }
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
    api::ApiError::not_found("try /api/v1/status, /api/v1/openapi.json, /metrics or /health")
        .into_response()
}
