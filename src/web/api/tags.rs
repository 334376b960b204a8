//! `GET /api/v1/tags` (filtered, paged) and `/api/v1/tags/{path}`: the live tags.
//!
//! A page resumes after a tag's path (the `next` of the page before), not at a position:
//! a reload that adds or removes tags between two pages neither skips nor repeats the
//! tags that stayed. Within a device tags come in name order; devices in config order.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use crate::history::export::{json_value, rfc3339};
use crate::model::{DeviceDef, TagDef, TagState, TagTable};
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
    after: Option<String>,
    /// Tags per page, 1 to 10000 (1000 when absent).
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
        (status = 200, body = TagPage),
        (status = 400, body = ApiError, description = "A bad parameter, or a cursor whose device is gone"),
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
        None => table.devices().iter().collect(),
    };
    let mut after = None;
    if let Some(cursor) = &q.after {
        let (device, name) = cursor.split_once('/').ok_or_else(|| {
            ApiError::bad_request(format!("after `{cursor}` is not a tag path (device/tag)"))
        })?;
        let at = devices.iter().position(|d| d.name == device).ok_or_else(|| {
            ApiError::bad_request(format!(
                "after `{cursor}` names device `{device}`, which is not listed (gone by a reload?); start again without `after`"
            ))
        })?;
        devices.drain(..at);
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
        (status = 200, body = Tag),
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
