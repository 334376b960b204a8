//! `GET /api/v1/devices` and `/api/v1/devices/{name}`: each device's link and counters.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::model::{DeviceDef, TagTable};
use crate::web::auth::Caller;
use crate::web::Web;

#[derive(Serialize, ToSchema)]
pub struct Device {
    pub name: String,
    pub driver: String,
    /// The link is up.
    pub connected: bool,
    /// Why the link last failed; null while it never did.
    pub last_error: Option<String>,
    /// Times the link came back after a loss.
    pub reconnects: u64,
    /// Readings taken from the device.
    pub samples_in: u64,
    /// Changes passed on (past deadbands).
    pub samples_out: u64,
    /// Tags read from the device.
    pub tags: u64,
    /// Alarm tags of its anomaly checks.
    pub alarm_tags: u64,
    /// Tags (of either kind) whose quality is Bad now.
    pub bad_tags: u64,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

fn device(table: &TagTable, d: &DeviceDef) -> Device {
    let state = table.device_state(d.id).unwrap_or_default();
    let bad = table.states(|states| {
        d.tag_ids()
            .filter(|id| states.get(id.index()).is_some_and(|s| s.quality.is_bad()))
            .count()
    });
    Device {
        name: d.name.clone(),
        driver: d.driver.clone(),
        connected: state.connected,
        last_error: state.last_error,
        reconnects: state.reconnects,
        samples_in: state.samples_in,
        samples_out: state.samples_out,
        tags: u64::from(d.driver_tags),
        alarm_tags: u64::from(d.tag_count.saturating_sub(d.driver_tags)),
        bad_tags: bad as u64,
    }
}

/// Every configured device, in config order.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    responses((status = 200, body = DeviceList, description = "OK"),
        (status = 401, body = ApiError, description = "Not logged in")))]
pub(crate) async fn list_devices(State(web): State<Web>, _caller: Caller) -> Json<DeviceList> {
    let table = web.handle.table();
    Json(DeviceList {
        devices: table.devices().iter().map(|d| device(&table, d)).collect(),
    })
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{name}", tag = "devices",
    params(("name" = String, Path, description = "The device's name")),
    responses(
        (status = 200, body = Device, description = "OK"),
        (status = 400, body = ApiError, description = "A name that is not UTF-8"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "No device has that name"),
    ))]
pub(crate) async fn get_device(
    State(web): State<Web>,
    _caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Device>, ApiError> {
    let Path(name) = name.map_err(ApiError::from)?;
    let table = web.handle.table();
    table
        .device_id(&name)
        .and_then(|id| table.device(id))
        .map(|d| Json(device(&table, d)))
        .ok_or_else(|| ApiError::not_found(format!("no device `{name}`")))
}
