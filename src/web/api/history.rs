//! `GET /api/v1/history`: a tag's recent samples from the historian, newest last — what
//! the console's trend draws.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use crate::history::export::{json_value, rfc3339};
use crate::web::auth::Caller;
use crate::web::Web;

/// The window looked back when the query does not say: ten minutes.
const DEFAULT_SECONDS: u64 = 600;
/// Points in one answer unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 2000;
const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The tag's path, `device/tag`.
    tag: String,
    /// How far back from now, in seconds (default 600).
    #[param(minimum = 1)]
    seconds: Option<u64>,
    /// The newest this many samples of the window (default 2000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Point {
    /// The sample's source time.
    pub time: String,
    /// Null for a sample without a value (a Bad reading).
    pub value: serde_json::Value,
    /// Good, Uncertain(reason) or Bad(reason).
    pub quality: String,
}

#[derive(Serialize, ToSchema)]
pub struct Samples {
    pub tag: String,
    /// Oldest first.
    pub points: Vec<Point>,
    /// Older samples in the window were left out (`limit`).
    pub more: bool,
}

/// A tag's samples over the last `seconds`, as the historian kept them.
#[utoipa::path(get, path = "/api/v1/history", tag = "tags", params(HistoryQuery),
    responses(
        (status = 200, body = Samples, description = "OK"),
        (status = 400, body = ApiError, description = "A parameter out of range"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "No such tag, or the historian does not keep it"),
        (status = 503, body = ApiError, description = "The historian cannot read its file"),
    ))]
pub(crate) async fn samples(
    State(web): State<Web>,
    _caller: Caller,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Samples>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let seconds = q.seconds.unwrap_or(DEFAULT_SECONDS);
    if seconds == 0 {
        return Err(ApiError::bad_request("seconds must be at least 1"));
    }
    if web.handle.table().find(&q.tag).is_none() {
        return Err(ApiError::not_found(format!("no tag `{}`", q.tag)));
    }
    let Some(history) = web.history.read().clone() else {
        return Err(ApiError::not_found(
            "no historian runs (the config has no `history:` section)",
        ));
    };
    let to = uaedge_driver::Timestamp::now().as_micros();
    let from =
        to.saturating_sub(i64::try_from(seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
    let tag = q.tag.clone();
    // A read may touch the file: off the async threads.
    let read = tokio::task::spawn_blocking(move || history.read_raw(&tag, from, to, true, limit))
        .await
        .map_err(|e| unavailable(&e.to_string()))?
        .map_err(|e| unavailable(&e.to_string()))?;
    let Some(mut read) = read else {
        return Err(ApiError::not_found(format!(
            "the historian does not keep `{}` (`history: false` on the tag)",
            q.tag
        )));
    };
    // Read newest first, so that `limit` keeps the newest; given oldest first.
    read.points.reverse();
    Ok(Json(Samples {
        tag: q.tag,
        points: read
            .points
            .into_iter()
            .map(|p| Point {
                time: rfc3339(p.time),
                value: json_value(&p.value),
                quality: p.quality.to_string(),
            })
            .collect(),
        more: read.more,
    }))
}

fn unavailable(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "history_unavailable",
        format!("the historian cannot read: {why}"),
    )
}
