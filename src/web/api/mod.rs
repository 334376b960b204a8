//! The REST API under `/api/v1`: JSON in and out, every failure a JSON
//! [`ApiError`] with a stable `error` code, and an OpenAPI document derived from the
//! handlers and their types ([`utoipa`]), served at `/api/v1/openapi.json`, so the
//! document cannot drift from what the handlers answer.
//!
//! - [`status`]: the gateway, its config and reloads, and every component's counters.
//! - [`devices`]: each device's link and counters.
//! - [`tags`]: the live tags, filtered and paged.

pub mod devices;
pub mod status;
pub mod tags;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::Web;

/// What every failed request answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// A stable code: `not_found`, `bad_request`, ...
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            error: "not_found",
            message: message.into(),
            status: StatusCode::NOT_FOUND,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            error: "bad_request",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uaedge",
        description = "The gateway's live model, devices and status. Times are RFC 3339 in UTC."
    ),
    paths(
        status::get_status,
        devices::list_devices,
        devices::get_device,
        tags::list_tags,
        tags::get_tag
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

pub(super) fn router() -> Router<Web> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/status", get(status::get_status))
        .route("/api/v1/devices", get(devices::list_devices))
        .route("/api/v1/devices/{name}", get(devices::get_device))
        .route("/api/v1/tags", get(tags::list_tags))
        .route("/api/v1/tags/{*path}", get(tags::get_tag))
        .route("/api/v1/{*rest}", get(unknown))
}
