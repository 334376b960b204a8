//! `POST /api/v1/reload`: an admin re-reads the config file, as `systemctl reload uaedge`
//! (SIGHUP) does, and gets the outcome: applied, unchanged, or refused with every error's
//! file, line, column and key (the running config then stays).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;

use super::session::Admin;
use super::status::{reload_info, ReloadInfo};
use super::ApiError;
use crate::bus::ReloadRefused;
use crate::web::audit::Entry;
use crate::web::Web;

/// How long the answer waits for the reload to finish: within the request deadline.
const WAIT: Duration = Duration::from_secs(12);
const POLL: Duration = Duration::from_millis(100);

/// Reloads the config file and answers with the outcome.
#[utoipa::path(post, path = "/api/v1/reload", tag = "gateway",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, body = ReloadInfo, description = "Done: applied, unchanged, or refused with its errors"),
        (status = 202, body = ApiError, description = "Still under way after 12 s: /api/v1/status will show its outcome"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 403, body = ApiError, description = "No CSRF token, or not an admin"),
        (status = 409, body = ApiError, description = "A reload is waiting already"),
        (status = 503, body = ApiError, description = "This runtime takes no reload requests"),
    ))]
pub(crate) async fn reload(
    State(web): State<Web>,
    Admin(caller): Admin,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
) -> Result<Json<ReloadInfo>, ApiError> {
    let status = web.handle.status().clone();
    let before = status.gateway().last_reload.map(|r| r.time);
    let file = status.gateway().config_file;
    let mut entry = Entry::new(&caller.user, from, "reload", &file);
    if let Err(e) = status.request_reload(&caller.user) {
        entry.result = format!("refused: {e}");
        web.audit(entry).await;
        return Err(match e {
            ReloadRefused::Busy => ApiError::new(StatusCode::CONFLICT, "busy", e.to_string()),
            ReloadRefused::NotServed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_served", e.to_string())
            }
        });
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(done) = status
            .gateway()
            .last_reload
            .filter(|r| Some(r.time) != before)
        {
            entry.result = format!("{:?}", done.outcome).to_lowercase();
            web.audit(entry).await;
            return Ok(Json(reload_info(&done)));
        }
        tokio::time::sleep(POLL).await;
    }
    entry.result = "under way".to_string();
    web.audit(entry).await;
    Err(ApiError::new(
        StatusCode::ACCEPTED,
        "under_way",
        "the reload is still under way; GET /api/v1/status shows its outcome",
    ))
}
