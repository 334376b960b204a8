//! The REST API under `/api/v1`: JSON in and out, every failure a JSON
//! [`ApiError`] with a stable `error` code, and an OpenAPI document derived from the
//! handlers and their types ([`utoipa`]), served at `/api/v1/openapi.json`, so the
//! document cannot drift from what the handlers answer.
//!
//! - [`status`]: the gateway, its config and reloads, and every component's counters.
//! - [`config`]: the config file that runs, its secrets masked.
//! - [`reload`]: an admin reloads it.
//! - [`devices`]: each device's link and counters.
//! - [`tags`]: the live tags, filtered and paged.
//! - [`history`]: a tag's recent samples from the historian (the console's trend).
//! - [`alarms`]: the alarm conditions, and acknowledging one.
//! - [`session`]: logging in and out (see [`crate::web::auth`]).
//!
//! With `users:` configured every endpoint but the login and this document needs a
//! session; without, they are open for reading.

pub mod alarms;
pub mod config;
pub mod devices;
pub mod history;
pub mod reload;
pub mod session;
pub mod status;
pub mod tags;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::Web;

/// The largest request body taken: a login or a write is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// What every failed request answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// A stable code: `not_found`, `bad_request`, ...
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            message: message.into(),
            status,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header of `secs`.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            error: "not_found",
            message: message.into(),
            status: StatusCode::NOT_FOUND,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            error: "bad_request",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        // A body too large (413) or not JSON (415) keeps its status; JSON of the wrong
        // shape is a 400 like every other bad parameter, not axum's 422.
        let status = match e.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "bad_request", e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The session cookie, named in the document as the API's security scheme.
struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::web::auth::COOKIE))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uaedge",
        description = "The gateway's live model, devices and status. Times are RFC 3339 in UTC."
    ),
    modifiers(&SessionCookie),
    security(("session" = [])),
    paths(
        session::login,
        session::logout,
        session::session,
        status::get_status,
        config::get_config,
        reload::reload,
        devices::list_devices,
        devices::get_device,
        tags::list_tags,
        tags::get_tag,
        tags::write_tag,
        alarms::list_alarms,
        alarms::acknowledge,
        history::samples,
        crate::web::stream::events
    )
)]
struct Doc;

/// The document, rendered once: it is fixed at build time.
fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = Doc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        doc.to_json().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot render the OpenAPI document");
            "{}".to_string()
        })
    })
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

async fn unknown() -> ApiError {
    ApiError::not_found("no such API endpoint; /api/v1/openapi.json lists them")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; /api/v1/openapi.json lists what it takes",
    )
}

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(session::login))
        .route("/api/v1/logout", post(session::logout))
        .route("/api/v1/session", get(session::session))
        .route("/api/v1/status", get(status::get_status))
        .route("/api/v1/config", get(config::get_config))
        .route("/api/v1/reload", post(reload::reload))
        .route("/api/v1/devices", get(devices::list_devices))
        .route("/api/v1/devices/{name}", get(devices::get_device))
        .route("/api/v1/tags", get(tags::list_tags))
        .route(
            "/api/v1/tags/{*path}",
            get(tags::get_tag).post(tags::write_tag),
        )
        .route("/api/v1/events", get(crate::web::stream::events))
        .route("/api/v1/history", get(history::samples))
        .route("/api/v1/alarms", get(alarms::list_alarms))
        .route("/api/v1/alarms/acknowledge", post(alarms::acknowledge))
        .route("/api/v1/{*rest}", axum::routing::any(unknown))
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}
