//! `GET /api/v1/status`: the gateway at a glance.

use std::time::SystemTime;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::bus::{GatewayInfo, ReloadRecord};
use crate::web::auth::Caller;
use crate::web::Web;

#[derive(Serialize, ToSchema)]
pub struct GatewayStatus {
    /// The running uaedge's version.
    pub version: &'static str,
    /// The gateway's name (`node.name`).
    pub node: String,
    pub started: String,
    pub uptime_s: u64,
    pub config: ConfigInfo,
    /// The last reload (SIGHUP, `systemctl reload`); null before the first.
    pub last_reload: Option<ReloadInfo>,
    pub devices: DeviceCounts,
    /// Tags in the model, alarm tags included.
    pub tags: u64,
    pub alarms: AlarmInfo,
    /// The Sparkplug edge node; null without a `sparkplug:` section.
    pub sparkplug: Option<SparkplugInfo>,
    pub opcua: OpcUaInfo,
}

#[derive(Serialize, ToSchema)]
pub struct ConfigInfo {
    pub file: String,
    /// SHA-256 of the file in force, as `sha256sum` prints it.
    pub sha256: String,
    /// When it took effect.
    pub applied: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReloadInfo {
    pub time: String,
    pub outcome: ReloadOutcome,
    /// Why the file was refused, where in it.
    pub errors: Vec<ConfigErrorInfo>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOutcome {
    Applied,
    Unchanged,
    Refused,
}

#[derive(Serialize, ToSchema)]
pub struct ConfigErrorInfo {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// The key's path in the document, e.g. `devices[0].tags[3].address`.
    pub key: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceCounts {
    pub total: u64,
    pub connected: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AlarmInfo {
    pub checks: u64,
    pub active: u64,
    pub transitions: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SparkplugInfo {
    pub group_id: String,
    pub edge_node_id: String,
    /// The server in use (or being tried): `mqtt://host:port` or `mqtts://host:port`.
    pub broker: String,
    /// Every configured server in order, with the primary host's STATE as last seen there.
    pub brokers: Vec<BrokerInfo>,
    /// Births on another server than the one of the birth before, since the start.
    pub server_switches: u64,
    /// The Sparkplug host application this node follows, when the config names one.
    pub primary_host_id: Option<String>,
    pub mqtt_connected: bool,
    /// NBIRTH is out: data flows.
    pub born: bool,
    /// On the server in use; always true without `primary_host_id`.
    pub primary_host_online: bool,
    pub bd_seq: u64,
    /// Journal records not yet acknowledged by the broker, and their size.
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    pub samples_published: u64,
    pub samples_replayed: u64,
    pub records_dropped: u64,
}

#[derive(Serialize, ToSchema)]
pub struct BrokerInfo {
    pub url: String,
    /// The one in use (or being tried).
    pub current: bool,
    /// The primary host's STATE there, as last seen (true without `primary_host_id`).
    pub primary_host_online: bool,
}

#[derive(Serialize, ToSchema)]
pub struct OpcUaInfo {
    /// The server listens (false without an `opcua:` section, or while it starts).
    pub running: bool,
    pub endpoints: Vec<EndpointDescription>,
    /// Sessions open now.
    pub sessions: u64,
    /// TCP connections to the OPC UA port now open.
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Connections that ended before their secure channel opened.
    pub handshake_failures: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointDescription {
    pub url: String,
    /// e.g. `None`, `Basic256Sha256`, `Aes256-Sha256-RsaPss`.
    pub security_policy: String,
    /// `None`, `Sign` or `SignAndEncrypt`.
    pub security_mode: String,
}

/// RFC 3339 in UTC with µs.
pub(crate) fn time(t: SystemTime) -> String {
    let us = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    crate::history::export::rfc3339(us)
}

pub(super) fn reload_info(r: &ReloadRecord) -> ReloadInfo {
    ReloadInfo {
        time: time(r.time),
        outcome: match r.outcome {
            crate::bus::ReloadOutcome::Applied => ReloadOutcome::Applied,
            crate::bus::ReloadOutcome::Unchanged => ReloadOutcome::Unchanged,
            crate::bus::ReloadOutcome::Refused => ReloadOutcome::Refused,
        },
        errors: r
            .errors
            .iter()
            .map(|e| ConfigErrorInfo {
                file: e.file.clone(),
                line: e.line as u64,
                column: e.column as u64,
                key: e.key.clone(),
                message: e.message.clone(),
            })
            .collect(),
    }
}

/// The gateway, its config, and every component's counters.
#[utoipa::path(get, path = "/api/v1/status", tag = "gateway",
    responses((status = 200, body = GatewayStatus, description = "OK"),
        (status = 401, body = ApiError, description = "Not logged in")))]
pub(crate) async fn get_status(State(web): State<Web>, _caller: Caller) -> Json<GatewayStatus> {
    let handle = &web.handle;
    let table = handle.table();
    let GatewayInfo {
        node,
        config_file,
        config_sha256,
        started,
        applied,
        last_reload,
    } = handle.status().gateway();
    let connected = table
        .devices()
        .iter()
        .filter(|d| table.device_state(d.id).is_some_and(|s| s.connected))
        .count();
    let alarms = handle.alarm_counts();
    let (accepted, open, failures) = handle.opcua_connections().snapshot();
    let opcua = handle.status().opcua();
    Json(GatewayStatus {
        version: env!("CARGO_PKG_VERSION"),
        node,
        started: time(started),
        uptime_s: started.elapsed().map_or(0, |d| d.as_secs()),
        config: ConfigInfo {
            file: config_file,
            sha256: config_sha256,
            applied: time(applied),
        },
        last_reload: last_reload.as_ref().map(reload_info),
        devices: DeviceCounts {
            total: table.devices().len() as u64,
            connected: connected as u64,
        },
        tags: table.tags().len() as u64,
        alarms: AlarmInfo {
            checks: alarms.checks,
            active: alarms.active,
            transitions: alarms.transitions,
        },
        sparkplug: handle.sparkplug_status().map(|s| {
            let id = &s.identity;
            let snap = s.snapshot();
            let brokers: Vec<BrokerInfo> = (id.brokers.iter().enumerate())
                .map(|(i, url)| BrokerInfo {
                    url: url.clone(),
                    current: i == snap.server,
                    primary_host_online: snap.host_online_on(i),
                })
                .collect();
            let s = snap;
            SparkplugInfo {
                group_id: id.group_id.clone(),
                edge_node_id: id.edge_node_id.clone(),
                broker: id.brokers.get(s.server).cloned().unwrap_or_default(),
                brokers,
                server_switches: s.server_switches,
                primary_host_id: id.primary_host_id.clone(),
                mqtt_connected: s.mqtt_connected,
                born: s.born,
                primary_host_online: s.primary_host_online,
                bd_seq: s.bd_seq,
                backlog_records: s.backlog_records,
                backlog_bytes: s.backlog_bytes,
                samples_published: s.samples_published,
                samples_replayed: s.samples_replayed,
                records_dropped: s.records_dropped,
            }
        }),
        opcua: OpcUaInfo {
            running: opcua.is_some(),
            endpoints: opcua.as_ref().map_or_else(Vec::new, |o| {
                o.endpoints
                    .iter()
                    .map(|e| EndpointDescription {
                        url: e.url.clone(),
                        security_policy: e.security_policy.clone(),
                        security_mode: e.security_mode.clone(),
                    })
                    .collect()
            }),
            sessions: opcua.as_ref().map_or(0, |o| o.sessions()),
            connections_open: open,
            connections_accepted: accepted,
            handshake_failures: failures,
        },
    })
}
