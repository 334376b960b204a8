//! The web console: one page and its script and stylesheet, built into the binary
//! (`include_bytes!`), so `cargo build` alone makes a uaedge that serves it — no Node.js, no
//! files to install beside the binary.
//!
//! The page is plain JavaScript on the REST API, with no third-party code: it draws
//! tables (the device page renders only the rows in view, so 10,000 tags scroll freely),
//! one line chart (a polyline in SVG: a chart library would weigh more than the whole
//! console) and forms. The console's files carry a Content-Security-Policy that allows
//! scripts, styles and connections from the gateway itself only, and no inline script or
//! style: text from devices or the config cannot become code (the API's answers are JSON,
//! which a browser never runs).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Web;

/// Nothing from elsewhere, nothing inline, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX: &[u8] = include_bytes!("console/index.html");
const SCRIPT: &[u8] = include_bytes!("console/app.js");
const STYLE: &[u8] = include_bytes!("console/app.css");
const ICON: &[u8] = include_bytes!("console/icon.svg");

/// The files and their types, for the router and for the page-weight benchmark.
pub const ASSETS: [(&str, &str, &[u8]); 4] = [
    ("/", "text/html; charset=utf-8", INDEX),
    ("/console/app.js", "text/javascript; charset=utf-8", SCRIPT),
    ("/console/app.css", "text/css; charset=utf-8", STYLE),
    ("/console/icon.svg", "image/svg+xml", ICON),
];

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small enough to fetch again; never a stale console after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) fn router() -> Router<Web> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { asset(content_type, body) }))
        })
}
