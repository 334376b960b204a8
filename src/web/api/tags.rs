//! `GET /api/v1/tags` (filtered, paged) and `/api/v1/tags/{path}`: the live tags;
//! `POST /api/v1/tags/{path}` writes one.
//!
//! Tags come by device name, then by tag name, and a page resumes after
//! a path (the `next` of the page before), not at a position: a reload between two pages
//! neither skips nor repeats a tag that stayed.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use uaedge_driver::json::value_from_json;
use uaedge_driver::{LinkErrorKind, WriteError};
use utoipa::{IntoParams, ToSchema};

use super::session::Operator;
use super::ApiError;
use crate::history::export::{json_value, rfc3339};
use crate::model::{DeviceDef, TagDef, TagState, TagTable};
use crate::web::audit::Entry;
use crate::web::auth::Caller;
use crate::web::Web;

/// A page holds this many tags unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;
/// And never more than this.
const MAX_LIMIT: usize = 10_000;

#[derive(Serialize, ToSchema)]
pub struct Tag {
    /// `device/tag`, the tag's name with its folders.
    pub path: String,
    pub device: String,
    /// The tag's name within its device, folders separated by `/`.
    pub name: String,
    /// As in the config: bool, int8 … uint64, float32, float64, string, datetime.
    #[serde(rename = "type")]
    pub data_type: &'static str,
    /// Null before the first reading; NaN and infinities as text.
    pub value: serde_json::Value,
    /// Good, Uncertain(reason) or Bad(reason).
    pub quality: String,
    /// When the device took the reading; null before the first.
    pub source_time: Option<String>,
    /// When uaedge received it.
    pub server_time: Option<String>,
    pub units: Option<String>,
    pub description: Option<String>,
    pub writable: bool,
    /// Kept by the historian (when there is one).
    pub historized: bool,
    /// An anomaly check's alarm tag (`<tag>/Alarms/<check>`).
    pub alarm: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TagPage {
    pub tags: Vec<Tag>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagQuery {
    /// Only this device's tags.
    device: Option<String>,
    /// Only tags whose path (`device/tag`) starts with this.
    prefix: Option<String>,
    /// Resume after this path: the `next` of the previous page.
    #[param(pattern = "^[^/]+/.+$")]
    after: Option<String>,
    /// Tags per page, 1 to 10000 (1000 when absent).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

fn time(us: i64) -> Option<String> {
    (us != 0).then(|| rfc3339(us))
}

fn tag(table: &TagTable, def: &TagDef, state: TagState) -> Tag {
    let alarm = table
        .device(def.device)
        .is_some_and(|d| d.is_alarm_tag(def.id));
    Tag {
        path: def.path.to_string(),
        device: def.path.device.to_string(),
        name: def.path.tag.to_string(),
        data_type: def.data_type.name(),
        value: json_value(&state.value),
        quality: state.quality.to_string(),
        source_time: time(state.source_time.as_micros()),
        server_time: time(state.server_time.as_micros()),
        units: def.units.as_deref().map(str::to_string),
        description: def.description.as_deref().map(str::to_string),
        writable: def.writable,
        historized: def.historized,
        alarm,
    }
}

/// What `prefix` (a path prefix) leaves of `device`: `None` for none of its tags, else the
/// prefix its tag names must have.
fn name_prefix<'p>(device: &DeviceDef, prefix: &'p str) -> Option<&'p str> {
    let name = device.name.as_str();
    if prefix.len() > name.len() {
        prefix.strip_prefix(name)?.strip_prefix('/')
    } else {
        name.starts_with(prefix).then_some("")
    }
}

/// Live tags, filtered by device and path prefix, a page at a time.
#[utoipa::path(get, path = "/api/v1/tags", tag = "tags", params(TagQuery),
    responses(
        (status = 200, body = TagPage, description = "OK"),
        (status = 400, body = ApiError, description = "A bad parameter"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "`device` names no device"),
    ))]
pub(crate) async fn list_tags(
    State(web): State<Web>,
    _caller: Caller,
    query: Result<Query<TagQuery>, QueryRejection>,
) -> Result<Json<TagPage>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is out of range: 1 to {MAX_LIMIT}"
        )));
    }
    let table = web.handle.table();
    let mut devices: Vec<&DeviceDef> = match &q.device {
        Some(name) => vec![table
            .device_id(name)
            .and_then(|id| table.device(id))
            .ok_or_else(|| ApiError::not_found(format!("no device `{name}`")))?],
        None => {
            let mut all: Vec<&DeviceDef> = table.devices().iter().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            all
        }
    };
    let mut after = None;
    if let Some(cursor) = &q.after {
        let (device, name) = cursor.split_once('/').ok_or_else(|| {
            ApiError::bad_request(format!("after `{cursor}` is not a tag path (device/tag)"))
        })?;
        // Devices after the cursor's, by name: one a reload removed is simply passed.
        devices.retain(|d| d.name.as_str() >= device);
        after = Some((device, name));
    }
    let prefix = q.prefix.as_deref().unwrap_or("");
    // One more than the page, to tell whether another follows.
    let mut defs: Vec<&TagDef> = Vec::with_capacity(limit + 1);
    for d in devices {
        let Some(names) = name_prefix(d, prefix) else {
            continue;
        };
        let resume = after
            .filter(|(device, _)| *device == d.name)
            .map(|(_, n)| n);
        defs.extend(
            table
                .tags_by_name(d.id, names, resume)
                .take(limit + 1 - defs.len()),
        );
        if defs.len() > limit {
            break;
        }
    }
    let more = defs.len() > limit;
    defs.truncate(limit);
    // Copied under the lock, turned into JSON after it: the router waits on this lock.
    let states: Vec<TagState> = table.states(|states| {
        defs.iter()
            .map(|d| states.get(d.id.index()).cloned().unwrap_or_default())
            .collect()
    });
    let tags: Vec<Tag> = defs
        .iter()
        .zip(states)
        .map(|(d, s)| tag(&table, d, s))
        .collect();
    let next = more.then(|| tags.last().map(|t| t.path.clone())).flatten();
    Ok(Json(TagPage { tags, next }))
}

/// One tag, by its path.
#[utoipa::path(get, path = "/api/v1/tags/{path}", tag = "tags",
    params(("path" = String, Path, description = "The tag's path, `device/tag` (folders included)")),
    responses(
        (status = 200, body = Tag, description = "OK"),
        (status = 400, body = ApiError, description = "A path that is not UTF-8"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "No tag has that path"),
    ))]
pub(crate) async fn get_tag(
    State(web): State<Web>,
    _caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Tag>, ApiError> {
    let Path(path) = path?;
    let table = web.handle.table();
    let def = table
        .find(&path)
        .and_then(|id| table.tag(id))
        .ok_or_else(|| ApiError::not_found(format!("no tag `{path}`")))?;
    let state = table.state(def.id).unwrap_or_default();
    Ok(Json(tag(&table, def, state)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Write {
    /// The new value in the tag's engineering units: a number, true/false, a string, or
    /// RFC 3339 text for a datetime tag.
    #[schema(value_type = Scalar)]
    pub value: serde_json::Value,
}

/// A value a tag can take. The schema only: a Write's value is read as JSON and typed by
/// its tag.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Scalar {
    Boolean(bool),
    Number(f64),
    Text(String),
}

#[derive(Serialize, ToSchema)]
pub struct Written {
    pub path: String,
    /// The value the device took, in the tag's type.
    pub value: serde_json::Value,
    /// The tag's value before the write.
    pub previous: serde_json::Value,
}

/// Writes a writable tag: the device's answer is the response. Needs an operator's session
/// and the CSRF token; recorded in the audit trail either way.
#[utoipa::path(post, path = "/api/v1/tags/{path}", tag = "tags", request_body = Write,
    params(
        ("path" = String, Path, description = "The tag's path, `device/tag`"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token"),
    ),
    responses(
        (status = 200, body = Written, description = "The device took the value"),
        (status = 400, body = ApiError, description = "A value that does not fit the tag"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 403, body = ApiError, description = "No CSRF token, or not an operator"),
        (status = 404, body = ApiError, description = "No tag has that path"),
        (status = 409, body = ApiError, description = "The tag is not writable, or the device refused the value"),
        (status = 502, body = ApiError, description = "The device is not connected"),
        (status = 504, body = ApiError, description = "The device did not answer in time"),
        (status = 413, body = ApiError, description = "A body over 64 KiB"),
        (status = 415, body = ApiError, description = "A body that is not application/json"),
    ))]
pub(crate) async fn write_tag(
    State(web): State<Web>,
    Operator(caller): Operator,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Write>, JsonRejection>,
) -> Result<Json<Written>, ApiError> {
    let Path(path) = path?;
    let Json(write) = body?;
    let table = web.handle.table();
    let def = table
        .find(&path)
        .and_then(|id| table.tag(id))
        .ok_or_else(|| ApiError::not_found(format!("no tag `{path}`")))?;
    if !def.writable {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_writable",
            format!("tag `{path}` is not writable (`writable: true` in its config makes it so)"),
        ));
    }
    let value = value_from_json(&write.value, def.data_type).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_value",
            format!("`{path}`: {e}"),
        )
    })?;
    let previous = json_value(&table.state(def.id).and_then(|s| s.value));
    let after = json_value(&Some(value.clone()));
    let mut entry = Entry {
        before: previous.clone(),
        after: after.clone(),
        ..Entry::new(&caller.user, from, "write", &path)
    };
    // Its own task: a client that goes, or the request deadline, must not drop a write
    // under way before it is in the audit trail.
    let target = path.clone();
    let runner = web.clone();
    let result = runner
        .change(async move {
            let result = web.handle.write_as(&target, &value, &caller.user).await;
            entry.result = Entry::outcome(&result);
            web.audit(entry).await;
            result
        })
        .await
        .unwrap_or_else(|| Err(WriteError::Rejected("the write task failed".into())));
    match result {
        Ok(()) => Ok(Json(Written {
            path,
            value: after,
            previous,
        })),
        Err(e) => Err(write_error(&path, e)),
    }
}

fn write_error(path: &str, e: WriteError) -> ApiError {
    let (status, code) = match &e {
        WriteError::NotWritable => (StatusCode::CONFLICT, "not_writable"),
        WriteError::TypeMismatch(_) => (StatusCode::BAD_REQUEST, "bad_value"),
        // The device (or the alarm behind an Acked tag) answered no: the value, not the
        // link, is at fault.
        WriteError::Rejected(_) => (StatusCode::CONFLICT, "refused"),
        WriteError::Link(l) if l.kind == LinkErrorKind::Timeout => {
            (StatusCode::GATEWAY_TIMEOUT, "device_timeout")
        }
        WriteError::Link(_) => (StatusCode::BAD_GATEWAY, "device_unreachable"),
    };
    ApiError::new(status, code, format!("write to `{path}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceId;

    fn device(name: &str) -> DeviceDef {
        DeviceDef {
            id: DeviceId(0),
            name: name.to_string(),
            driver: "sim".to_string(),
            first_tag: 0,
            tag_count: 0,
            driver_tags: 0,
        }
    }

    #[test]
    fn a_path_prefix_selects_devices_and_then_tag_names() {
        let (press, press3) = (device("press"), device("press3"));
        assert_eq!(name_prefix(&press, ""), Some(""));
        assert_eq!(name_prefix(&press, "pr"), Some(""));
        assert_eq!(name_prefix(&press, "press"), Some(""));
        assert_eq!(name_prefix(&press3, "press"), Some(""));
        // Past the device's name only through its `/`.
        assert_eq!(name_prefix(&press, "press/"), Some(""));
        assert_eq!(name_prefix(&press, "press/oil"), Some("oil"));
        assert_eq!(name_prefix(&press3, "press/oil"), None);
        assert_eq!(name_prefix(&press, "press3/oil"), None);
        assert_eq!(name_prefix(&press3, "press3/oil"), Some("oil"));
        assert_eq!(name_prefix(&press, "q"), None);
    }
}
