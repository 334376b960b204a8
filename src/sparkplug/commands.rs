//! What comes in: NCMD (rebirth), DCMD (writes to devices) and the primary host's STATE.
//! Anything malformed is logged (one warn line) and dropped; nothing here can stop the node.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use tracing::{debug, info, warn};
use uaedge_driver::{DataType, Value};

use super::aliases::{REBIRTH, REBIRTH_ALIAS};
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
        let mut rebirth = false;
        for m in &p.metrics {
            let is_rebirth = m.name.as_deref() == Some(REBIRTH)
                || (m.name.is_none() && m.alias == Some(REBIRTH_ALIAS));
            if !is_rebirth {
                warn!(metric = ?m.name, alias = ?m.alias, "NCMD for an unknown node metric dropped");
                continue;
            }
            match codec::command_value(m, DataType::Boolean) {
                Ok(Value::Boolean(true)) => rebirth = true,
                Ok(Value::Boolean(false)) => {}
                Ok(v) => warn!(value = %v, "NCMD Rebirth with a non-Boolean value dropped"),
                Err(e) => warn!(error = %e, "NCMD Rebirth with a bad value dropped"),
            }
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
        if self.host_ts.is_some_and(|last| state.timestamp < last) {
            debug!(
                timestamp = state.timestamp,
                "STATE older than the last one ignored"
            );
            return;
        }
        self.host_ts = Some(state.timestamp);
        let was = self.host_online;
        self.host_online = state.online;
        self.status
            .host_online
            .store(state.online, Ordering::Relaxed);
        match (state.online, self.phase) {
            (true, Phase::WaitingHost) => {
                info!("primary host online");
                self.birth();
            }
            (false, Phase::Online) => {
                info!("primary host offline: NDEATH, disconnect, data to the journal until it is back");
                self.host_offline();
            }
            _ if was != state.online => {
                debug!(online = state.online, "primary host state changed");
            }
            _ => {}
        }
    }

    /// The specification's reaction to an offline primary host: end this session with an
    /// explicit NDEATH, then reconnect (a new bdSeq) and wait for the host.
    fn host_offline(&mut self) {
        let bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq);
        if let Some(session) = self.session.take() {
            let bytes = codec::encode(&codec::payload(
                None,
                vec![codec::bd_seq_metric(bd_seq, None)],
            ));
            let _ = session.client.try_publish(
                self.topics.ndeath(),
                rumqttc::QoS::AtLeastOnce,
                false,
                bytes,
            );
            // DISCONNECT follows the NDEATH in the same ordered queue; finish it aside.
            tokio::spawn(session.disconnect(Duration::from_secs(2)));
        }
        self.lost("primary host offline", true);
    }
}
