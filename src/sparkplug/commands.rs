//! What comes in: NCMD (rebirth, next server), DCMD (writes to devices) and the primary
//! host's STATE.
//! Anything malformed is logged (one warn line) and dropped; nothing here can stop the node.

use std::sync::atomic::Ordering;

use serde::Deserialize;
use tracing::{debug, info, warn};
use uaedge_driver::{DataType, Value};

use super::aliases::{NEXT_SERVER, NEXT_SERVER_ALIAS, REBIRTH, REBIRTH_ALIAS};
use super::codec::{self, DeviceCommandError, Refused};
use super::link::Phase;
use super::node::NodeTask;
use super::topics::Incoming;
use crate::model::TagId;

/// The Sparkplug 3.0 STATE payload.
#[derive(Deserialize)]
struct HostState {
    online: bool,
    timestamp: u64,
}

impl NodeTask {
    pub(super) fn on_message(&mut self, topic: &str, payload: &[u8]) {
        match self.topics.classify(topic) {
            Incoming::NodeCommand => self.on_ncmd(payload),
            Incoming::DeviceCommand(device) => {
                let device = device.to_string();
                self.on_dcmd(&device, payload);
            }
            Incoming::HostState(host) => {
                if self.settings.primary_host_id.as_deref() == Some(host) {
                    self.on_state(payload);
                }
            }
            Incoming::Other => debug!(topic, "message on an unexpected topic ignored"),
        }
    }

    fn on_ncmd(&mut self, payload: &[u8]) {
        let p = match codec::decode(payload) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, bytes = payload.len(), "malformed NCMD dropped");
                return;
            }
        };
        let (mut rebirth, mut next_server) = (false, false);
        for m in &p.metrics {
            let is = |name: &str, alias: u64| {
                m.name.as_deref() == Some(name) || (m.name.is_none() && m.alias == Some(alias))
            };
            let (flag, name) = if is(REBIRTH, REBIRTH_ALIAS) {
                (&mut rebirth, REBIRTH)
            } else if is(NEXT_SERVER, NEXT_SERVER_ALIAS) {
                (&mut next_server, NEXT_SERVER)
            } else {
                warn!(metric = ?m.name, alias = ?m.alias, "NCMD for an unknown node metric dropped");
                continue;
            };
            match codec::command_value(m, DataType::Boolean) {
                Ok(Value::Boolean(v)) => *flag |= v,
                Ok(v) => warn!(metric = name, value = %v, "NCMD with a non-Boolean value dropped"),
                Err(e) => warn!(metric = name, error = %e, "NCMD with a bad value dropped"),
            }
        }
        // Moving on makes a rebirth here moot: the next server gets a birth anyway.
        if next_server {
            if self.servers.count() > 1 {
                self.leave("NCMD Next Server");
            } else {
                info!("NCMD Next Server with one server configured: staying");
            }
            return;
        }
        if rebirth {
            if self.phase == Phase::Online {
                info!("NCMD Rebirth: re-birthing the node and its devices");
                self.birth();
            } else {
                debug!("NCMD Rebirth before the node is born: the birth is coming anyway");
            }
        }
    }

    fn on_dcmd(&mut self, device: &str, payload: &[u8]) {
        let command = match codec::device_command(&self.table, device, payload) {
            Ok(c) => c,
            Err(DeviceCommandError::UnknownDevice) => {
                warn!(device, "DCMD for an unknown device dropped");
                return;
            }
            Err(DeviceCommandError::Malformed(e)) => {
                warn!(device, error = %e, bytes = payload.len(), "malformed DCMD dropped");
                return;
            }
        };
        let path = |id: TagId| {
            self.table
                .tag(id)
                .map(|t| t.path.to_string())
                .unwrap_or_default()
        };
        for refused in &command.refused {
            match refused {
                Refused::UnknownMetric { name, alias } => {
                    warn!(device, metric = ?name, alias = ?alias, "DCMD for an unknown metric dropped");
                }
                Refused::ReadOnly(id) => {
                    warn!(tag = %path(*id), "DCMD to a read-only tag dropped");
                }
                Refused::BadValue(id, e) => {
                    warn!(tag = %path(*id), error = %e, "DCMD with a value that does not fit the tag dropped");
                }
            }
        }
        for (id, value) in command.writes {
            let Ok(permit) = self.writes.clone().try_acquire_owned() else {
                warn!(tag = %path(id), "too many DCMD writes in progress; this one is dropped");
                continue;
            };
            let handle = self.handle.clone();
            // By path: the ids are this node's, which trail a reload until its Reloaded event
            // arrives; the handle resolves the path in the table in force. The write waits for the device (up to the runtime's write timeout) on
            // its own task, so the node keeps serving MQTT. Handle::write logs the result;
            // the new value comes back through the pipeline as DDATA.
            let tag = path(id);
            tokio::spawn(async move {
                // A tag no longer configured is refused and logged there too.
                let _ = handle.write_as(&tag, &value, "sparkplug host").await;
                drop(permit);
            });
        }
    }

    fn on_state(&mut self, payload: &[u8]) {
        let state: HostState = match serde_json::from_slice(payload) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "malformed STATE message dropped");
                return;
            }
        };
        let was = self.servers.host().online;
        if !self.servers.take_state(state.online, state.timestamp) {
            debug!(
                timestamp = state.timestamp,
                "STATE older than the last one on this server ignored"
            );
            return;
        }
        self.status
            .host_online
            .store(state.online, Ordering::Relaxed);
        self.status
            .hosts_online
            .store(self.servers.hosts_mask(), Ordering::Relaxed);
        match (state.online, self.phase) {
            (true, Phase::WaitingHost) => {
                info!(server = %self.server_url(), "primary host online");
                self.host_wait_until = None;
                self.birth();
            }
            (false, Phase::Online) => {
                // The specification's reaction: NDEATH and DISCONNECT; then the next server,
                // or (with one) this one again, waiting for the host; data to the journal.
                // This server counts as tried.
                self.servers.host_missing();
                self.leave("primary host offline");
            }
            // Offline where the node waits: on to the next server, if any is left to try.
            (false, Phase::WaitingHost) => {
                self.host_wait_until = None;
                self.host_missing("primary host offline");
            }
            _ if was != state.online => {
                debug!(online = state.online, "primary host state changed");
            }
            _ => {}
        }
    }
}
