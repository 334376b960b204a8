//! The model bus: the events every component receives from the router, in order, and the
//! [`Handle`] through which components read the model, write to devices and report how
//! they are doing.
//!
//! Dependencies point one way: this module imports the model and the alarm conditions
//! (the model's alarms as Part 9 sees them) and nothing else of the crate. The runtime builds the bus and starts the components with a [`Handle`]; a
//! component imports this module, never the runtime that started it. How the parts are
//! doing (the MQTT link, OPC UA connections, the router's alarm counts) lives in
//! [`status`]: the part it describes writes it, readers (`/metrics`, the OPC UA Runtime
//! object, the Sparkplug node metrics) read it.

mod event;
pub mod gateway;
mod handle;
pub mod status;

pub use event::{queue_depth, ModelEvent, Reloaded, Start};
pub use gateway::{GatewayInfo, ReloadError, ReloadOutcome, ReloadRecord};
pub use handle::{ConditionRequest, Handle, ModelView, Publisher, WriteRequest};
pub use status::{
    AlarmCounts, AlarmStatus, ConnectionStats, EndpointInfo, OpcUaStatus, ReloadRefused,
    ReloadRequest, SparkplugIdentity, SparkplugStatus, StatusSnapshot,
};
