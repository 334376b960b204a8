//! The model bus: the events every component receives from the router, in order, and the
//! [`Handle`] through which components read the model, write to devices and report how
//! they are doing.
//!
//! Dependencies point one way: this module imports the model and nothing else of the
//! crate. The runtime builds the bus and starts the components with a [`Handle`]; a
//! component imports this module, never the runtime that started it. What a component
//! reports about itself (MQTT link, OPC UA connections, alarm counts) lives in
//! [`status`], which the component writes and readers (`/metrics`, the OPC UA Runtime
//! object, the Sparkplug node metrics) read.

mod event;
mod handle;
pub mod status;

pub use event::{queue_depth, ModelEvent, Reloaded};
pub use handle::{Handle, ModelView, Publisher, WriteRequest};
pub use status::{AlarmCounts, AlarmStatus, ConnectionStats, SparkplugStatus, StatusSnapshot};
