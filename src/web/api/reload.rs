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
    let file = web.handle.status().gateway().config_file;
    let mut entry = Entry::new(&caller.user, from, "reload", &file);
    let outcome = match web.handle.status().request_reload(&caller.user) {
        Ok(outcome) => outcome,
        Err(e) => {
            entry.result = format!("refused: {e}");
            web.audit(entry).await;
            return Err(match e {
                ReloadRefused::Busy => ApiError::new(StatusCode::CONFLICT, "busy", e.to_string()),
                ReloadRefused::NotServed => {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_served", e.to_string())
                }
            });
        }
    };
    // Recorded as asked before it runs: a reload that restarts this very server ends the
    // request, and the outcome entry below (on the tracker, which outlives the request for
    // a grace period) may then come from the next server's side or not at all.
    entry.result = "requested".to_string();
    web.audit(entry.clone()).await;
    let runner = web.clone();
    let done = runner
        .change(async move {
            let done = tokio::time::timeout(WAIT, outcome).await;
            entry.result = match &done {
                Ok(Ok(record)) => format!("{:?}", record.outcome).to_lowercase(),
                Ok(Err(_)) => "no outcome: the runtime stopped".to_string(),
                Err(_) => "under way".to_string(),
            };
            web.audit(entry).await;
            done
        })
        .await;
    match done {
        Some(Ok(Ok(record))) => Ok(Json(reload_info(&record))),
        Some(Err(_)) => Err(ApiError::new(
            StatusCode::ACCEPTED,
            "under_way",
            "the reload is still under way; GET /api/v1/status shows its outcome",
        )),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the gateway is stopping; the reload's outcome is unknown",
        )),
    }
}
