//! The Status and Runtime variables: values worked out when read or sampled, from a
//! device's link state, the alarm counts and the Sparkplug node's status.

use opcua::types::{DataValue, NodeId, StatusCode, UAString, Variant};
use uaedge_driver::Timestamp;

use super::address_space::{RuntimeField, Space, StatusField, UaNode};
use super::convert::{self, status_only};
use crate::bus::Handle;
use crate::model::TagTable;

/// What a sampler closure needs to read one Status or Runtime variable without the node
/// manager itself (the sampler runs on its own task). It holds the NodeId, not the node:
/// a reload may give the device another DeviceId, never another NodeId.
pub(super) struct LiveSampler {
    pub handle: Handle,
    pub ns: u16,
    pub node: NodeId,
}

impl LiveSampler {
    pub fn sample(&self) -> DataValue {
        let table = self.handle.table();
        let conditions = self.handle.conditions();
        let space = Space {
            ns: self.ns,
            table: &table,
            conditions: &conditions,
            historizing: false,
        };
        match space.node(&self.node) {
            Some(node) => live(&self.handle, &table, &node),
            // Its device went with a reload.
            None => status_only(StatusCode::BadNodeIdUnknown),
        }
    }
}

/// The current value of a Status or Runtime variable.
pub(super) fn live(handle: &Handle, table: &TagTable, node: &UaNode) -> DataValue {
    let sparkplug = handle.sparkplug_status();
    let now = convert::date_time(Timestamp::now());
    let good = |v: Variant| DataValue {
        value: Some(v),
        status: Some(StatusCode::Good),
        source_timestamp: Some(now),
        server_timestamp: Some(now),
        ..Default::default()
    };
    match *node {
        UaNode::StatusVar(device, field) => {
            let Some(state) = table.device_state(device) else {
                return status_only(StatusCode::BadNodeIdUnknown);
            };
            good(match field {
                StatusField::Connected => Variant::Boolean(state.connected),
                StatusField::LastError => Variant::String(
                    state
                        .last_error
                        .as_deref()
                        .map_or_else(UAString::null, UAString::from),
                ),
                StatusField::Driver => Variant::String(UAString::from(
                    table.device(device).map_or("", |d| d.driver.as_str()),
                )),
                StatusField::Reconnects => Variant::UInt64(state.reconnects),
                StatusField::SamplesIn => Variant::UInt64(state.samples_in),
            })
        }
        UaNode::RuntimeVar(RuntimeField::SamplesIn) => {
            let total = table
                .devices()
                .iter()
                .filter_map(|d| table.device_state(d.id))
                .map(|s| s.samples_in)
                .sum::<u64>();
            good(Variant::UInt64(total))
        }
        // Alarms are the runtime's own: they exist with or without MQTT.
        UaNode::RuntimeVar(RuntimeField::AlarmsActive) => {
            good(Variant::UInt64(handle.alarm_counts().active))
        }
        UaNode::RuntimeVar(RuntimeField::AlarmTransitions) => {
            good(Variant::UInt64(handle.alarm_counts().transitions))
        }
        UaNode::RuntimeVar(field) => {
            // Without a `sparkplug:` section there is no MQTT link to describe.
            let Some(sparkplug) = sparkplug else {
                return status_only(StatusCode::BadOutOfService);
            };
            let s = sparkplug.snapshot();
            let id = &sparkplug.identity;
            good(match field {
                RuntimeField::MqttConnected => Variant::Boolean(s.mqtt_connected),
                RuntimeField::PrimaryHostOnline => Variant::Boolean(s.primary_host_online),
                RuntimeField::MqttServer => Variant::String(
                    id.brokers
                        .get(s.server)
                        .map_or_else(UAString::null, |u| UAString::from(u.as_str())),
                ),
                RuntimeField::MqttServers => Variant::from(
                    id.brokers
                        .iter()
                        .map(|u| UAString::from(u.as_str()))
                        .collect::<Vec<_>>(),
                ),
                RuntimeField::PrimaryHostOnlineByServer => Variant::from(
                    (0..id.brokers.len())
                        .map(|i| s.host_online_on(i))
                        .collect::<Vec<bool>>(),
                ),
                RuntimeField::MqttServerSwitches => Variant::UInt64(s.server_switches),
                RuntimeField::StoreBacklog => Variant::UInt64(s.backlog_records),
                RuntimeField::SamplesOut
                | RuntimeField::SamplesIn
                | RuntimeField::AlarmsActive
                | RuntimeField::AlarmTransitions => Variant::UInt64(s.samples_published),
            })
        }
        _ => status_only(StatusCode::BadNodeIdUnknown),
    }
}
