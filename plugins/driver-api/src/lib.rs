//! The driver API of uaedge.
//!
//! A protocol driver is a crate under `plugins/` that depends on this crate alone. It turns
//! one device's tags into [`Reading`]s and carries writes back to the device. The runtime owns
//! everything around it: scheduling, reconnecting with backoff, scaling, deadband, and
//! shutdown. A driver never spawns its own reconnect loop.
//!
//! Errors come in two layers, as in `tokio-modbus`: a [`LinkError`] means the connection is
//! gone (every tag of the device turns Bad and the runtime reconnects); a per-tag failure,
//! such as a Modbus exception, is a [`Reading`] with Bad quality and the link stays up.

mod backoff;
mod driver;
mod duration;
pub mod json;
mod quality;
mod size;
mod value;

pub use backoff::Backoff;
pub use driver::{
    DeviceInfo, Driver, DriverFactory, LinkError, LinkErrorKind, Reading, TagSpec, WriteError,
};
pub use duration::Duration;
pub use quality::{BadReason, Quality, UncertainReason};
pub use size::ByteSize;
pub use value::{DataType, Timestamp, Value, ValueError};

/// Re-exported so that drivers implement [`Driver`] with the same macro version as the runtime.
pub use async_trait::async_trait;
