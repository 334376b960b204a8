//! `GET /api/v1/alarms` and `POST /api/v1/alarms/acknowledge`: the alarm conditions of the
//! anomaly checks, as the OPC UA server shows them (Part 9), and acknowledging one.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::session::Operator;
use super::ApiError;
use crate::conditions::{ConditionCommand, ConditionError, ConditionEvent};
use crate::history::export::rfc3339;
use crate::web::audit::Entry;
use crate::web::auth::Caller;
use crate::web::Web;

#[derive(Serialize, ToSchema)]
pub struct Alarm {
    /// `device/tag/Alarms/check`: the alarm tag's path, and the key to acknowledge it by.
    pub key: String,
    pub device: String,
    pub tag: String,
    pub check: String,
    /// The OPC UA Part 9 type, e.g. ExclusiveLimitAlarmType.
    pub kind: &'static str,
    /// 1 to 1000.
    pub severity: u64,
    pub enabled: bool,
    pub active: bool,
    pub acked: bool,
    pub confirmed: bool,
    /// Of interest now: active, or waiting for acknowledgement or confirmation.
    pub retain: bool,
    pub message: String,
    /// The newest event's time.
    pub time: String,
    pub active_time: String,
    pub acked_time: String,
    pub comment: String,
    /// Who last acknowledged, confirmed or commented.
    pub user: String,
    /// The value that decided the last transition.
    pub value: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct AlarmList {
    pub alarms: Vec<Alarm>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlarmQuery {
    /// Only the alarms of interest now (active or unacknowledged): Part 9's Retain.
    retained: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// The alarm's key, `device/tag/Alarms/check`.
    pub key: String,
    pub comment: Option<String>,
}

fn alarm(e: &ConditionEvent) -> Alarm {
    let (d, s) = (&e.def, &e.state);
    Alarm {
        key: d.key.to_string(),
        device: d.device.to_string(),
        tag: d.tag.to_string(),
        check: d.check.to_string(),
        kind: d.class.type_name(),
        severity: u64::from(s.severity),
        enabled: s.enabled,
        active: s.active,
        acked: s.acked,
        confirmed: s.confirmed,
        retain: s.retain(),
        message: s.message.clone(),
        time: rfc3339(s.time),
        active_time: rfc3339(s.active_time),
        acked_time: rfc3339(s.acked_time),
        comment: s.comment.clone(),
        user: s.client_user_id.clone(),
        value: s.value.filter(|v| v.is_finite()),
    }
}

/// Every alarm condition, in config order.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms", params(AlarmQuery),
    responses(
        (status = 200, body = AlarmList, description = "OK"),
        (status = 400, body = ApiError, description = "A bad parameter"),
        (status = 401, body = ApiError, description = "Not logged in"),
    ))]
pub(crate) async fn list_alarms(
    State(web): State<Web>,
    _caller: Caller,
    query: Result<Query<AlarmQuery>, QueryRejection>,
) -> Result<Json<AlarmList>, ApiError> {
    let Query(q) = query?;
    let retained_only = q.retained.unwrap_or(false);
    let alarms = web
        .handle
        .conditions()
        .all()
        .iter()
        .filter(|e| !retained_only || e.retain())
        .map(alarm)
        .collect();
    Ok(Json(AlarmList { alarms }))
}

/// Acknowledges an alarm, with an optional comment. Needs an operator's session and the
/// CSRF token; recorded in the audit trail either way.
#[utoipa::path(post, path = "/api/v1/alarms/acknowledge", tag = "alarms",
    request_body = Acknowledge,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, body = Alarm, description = "Acknowledged: the alarm as it is now"),
        (status = 400, body = ApiError, description = "A malformed body"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 403, body = ApiError, description = "No CSRF token, or not an operator"),
        (status = 404, body = ApiError, description = "No alarm has that key"),
        (status = 409, body = ApiError, description = "Acknowledged already, or disabled"),
        (status = 503, body = ApiError, description = "The runtime is stopping"),
        (status = 413, body = ApiError, description = "A body over 64 KiB"),
        (status = 415, body = ApiError, description = "A body that is not application/json"),
    ))]
pub(crate) async fn acknowledge(
    State(web): State<Web>,
    Operator(caller): Operator,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Result<Json<Acknowledge>, JsonRejection>,
) -> Result<Json<Alarm>, ApiError> {
    let Json(ack) = body?;
    let before = web.handle.conditions().get(&ack.key);
    let command = ConditionCommand::Acknowledge {
        event_id: None,
        comment: ack.comment.clone(),
    };
    let mut entry = Entry {
        before: before.map_or(serde_json::Value::Null, |e| e.state.acked.into()),
        after: true.into(),
        comment: ack.comment.clone(),
        ..Entry::new(&caller.user, from, "acknowledge", &ack.key)
    };
    // Its own task, as a write's (see `tags::write_tag`).
    let key = ack.key.clone();
    let runner = web.clone();
    let result = runner
        .change(async move {
            let result = web.handle.condition(&key, command, &caller.user).await;
            entry.result = Entry::outcome(&result);
            web.audit(entry).await;
            result
        })
        .await
        .unwrap_or(Err(ConditionError::Stopped));
    match result {
        Ok(event) => Ok(Json(alarm(&event))),
        Err(e) => {
            let (status, code) = match e {
                ConditionError::Unknown => (StatusCode::NOT_FOUND, "not_found"),
                ConditionError::AlreadyAcked => (StatusCode::CONFLICT, "already_acked"),
                ConditionError::Disabled => (StatusCode::CONFLICT, "disabled"),
                ConditionError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
                _ => (StatusCode::CONFLICT, "refused"),
            };
            Err(ApiError::new(status, code, format!("`{}`: {e}", ack.key)))
        }
    }
}
