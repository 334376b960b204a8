//! The live variables uaedge adds beside the tags: those of each device's `Status` object
//! and those of the `Runtime` object, with their names, types and descriptions. Their
//! values come from `live_values.rs`; their place in the address space from
//! `address_space.rs`.

use opcua::types::DataTypeId;

/// A live variable of the Status object of each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusField {
    Connected,
    LastError,
    Driver,
    Reconnects,
    SamplesIn,
}

impl StatusField {
    pub const ALL: [StatusField; 5] = [
        StatusField::Connected,
        StatusField::LastError,
        StatusField::Driver,
        StatusField::Reconnects,
        StatusField::SamplesIn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatusField::Connected => "Connected",
            StatusField::LastError => "LastError",
            StatusField::Driver => "Driver",
            StatusField::Reconnects => "Reconnects",
            StatusField::SamplesIn => "SamplesIn",
        }
    }

    pub fn data_type(self) -> DataTypeId {
        match self {
            StatusField::Connected => DataTypeId::Boolean,
            StatusField::LastError | StatusField::Driver => DataTypeId::String,
            StatusField::Reconnects | StatusField::SamplesIn => DataTypeId::UInt64,
        }
    }
}

/// A live variable of the Runtime object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeField {
    MqttConnected,
    PrimaryHostOnline,
    MqttServer,
    MqttServers,
    PrimaryHostOnlineByServer,
    MqttServerSwitches,
    StoreBacklog,
    SamplesIn,
    SamplesOut,
    AlarmsActive,
    AlarmTransitions,
}

impl RuntimeField {
    pub const ALL: [RuntimeField; 11] = [
        RuntimeField::MqttConnected,
        RuntimeField::PrimaryHostOnline,
        RuntimeField::MqttServer,
        RuntimeField::MqttServers,
        RuntimeField::PrimaryHostOnlineByServer,
        RuntimeField::MqttServerSwitches,
        RuntimeField::StoreBacklog,
        RuntimeField::SamplesIn,
        RuntimeField::SamplesOut,
        RuntimeField::AlarmsActive,
        RuntimeField::AlarmTransitions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuntimeField::MqttConnected => "MqttConnected",
            RuntimeField::PrimaryHostOnline => "PrimaryHostOnline",
            RuntimeField::MqttServer => "MqttServer",
            RuntimeField::MqttServers => "MqttServers",
            RuntimeField::PrimaryHostOnlineByServer => "PrimaryHostOnlineByServer",
            RuntimeField::MqttServerSwitches => "MqttServerSwitches",
            RuntimeField::StoreBacklog => "StoreBacklog",
            RuntimeField::SamplesIn => "SamplesIn",
            RuntimeField::SamplesOut => "SamplesOut",
            RuntimeField::AlarmsActive => "AlarmsActive",
            RuntimeField::AlarmTransitions => "AlarmTransitions",
        }
    }

    pub fn data_type(self) -> DataTypeId {
        match self {
            RuntimeField::MqttConnected
            | RuntimeField::PrimaryHostOnline
            | RuntimeField::PrimaryHostOnlineByServer => DataTypeId::Boolean,
            RuntimeField::MqttServer | RuntimeField::MqttServers => DataTypeId::String,
            _ => DataTypeId::UInt64,
        }
    }

    /// -1 for a scalar, 1 for the per-server arrays (one entry a configured server).
    pub fn value_rank(self) -> i32 {
        match self {
            RuntimeField::MqttServers | RuntimeField::PrimaryHostOnlineByServer => 1,
            _ => -1,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            RuntimeField::MqttConnected => "The Sparkplug edge node's MQTT connection is up",
            RuntimeField::PrimaryHostOnline => {
                "The Sparkplug primary host is online on the MQTT server in use (true without a primary host)"
            }
            RuntimeField::MqttServer => "The MQTT server in use, or being tried",
            RuntimeField::MqttServers => "The configured MQTT servers, in order",
            RuntimeField::PrimaryHostOnlineByServer => {
                "The primary host's STATE on each server of MqttServers, as last seen there"
            }
            RuntimeField::MqttServerSwitches => {
                "Births of the edge node on another MQTT server than the one of the birth before, since start"
            }
            RuntimeField::StoreBacklog => {
                "Store-and-forward records waiting for the broker's acknowledgement"
            }
            RuntimeField::SamplesIn => "Readings taken from all devices since start",
            RuntimeField::SamplesOut => "Samples acknowledged by the MQTT broker since start",
            RuntimeField::AlarmsActive => "Anomaly alarms Active now (tags' Alarms/<check>)",
            RuntimeField::AlarmTransitions => "Anomaly alarm transitions (either way) since start",
        }
    }
}
