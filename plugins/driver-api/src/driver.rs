use serde::de::DeserializeOwned;

use crate::{BadReason, DataType, Quality, Timestamp, Value};

/// What went wrong with a device's link. The runtime reacts to any `LinkError` by marking
/// every tag of the device Bad, dropping the connection and reconnecting with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct LinkError {
    pub kind: LinkErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkErrorKind {
    /// There is no connection (refused, unreachable, closed by the peer, device offline).
    NotConnected,
    /// The device did not answer in time.
    Timeout,
    /// The connection exists but the exchange broke (I/O error, malformed frame).
    Protocol,
}

impl LinkError {
    pub fn new(kind: LinkErrorKind, message: impl Into<String>) -> LinkError {
        LinkError {
            kind,
            message: message.into(),
        }
    }

    pub fn not_connected(message: impl Into<String>) -> LinkError {
        LinkError::new(LinkErrorKind::NotConnected, message)
    }

    pub fn timeout(message: impl Into<String>) -> LinkError {
        LinkError::new(LinkErrorKind::Timeout, message)
    }

    pub fn protocol(message: impl Into<String>) -> LinkError {
        LinkError::new(LinkErrorKind::Protocol, message)
    }

    /// The quality the device's tags take while this error stands.
    pub fn quality(&self) -> Quality {
        match self.kind {
            LinkErrorKind::NotConnected => Quality::Bad(BadReason::NotConnected),
            LinkErrorKind::Timeout | LinkErrorKind::Protocol => {
                Quality::Bad(BadReason::CommFailure)
            }
        }
    }
}

/// Why a write did not reach the device. Each maps onto an OPC UA status and a log line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("tag is not writable")]
    NotWritable,
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// The device answered and refused (e.g. a Modbus exception); the link is fine.
    #[error("device refused the write: {0}")]
    Rejected(String),
    #[error("link failed: {0}")]
    Link(#[from] LinkError),
}

/// One tag's result from one read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index of the tag in the `tags` the driver was built with.
    pub tag: u32,
    /// `None` when the device gave no value (Bad quality); consumers keep the last one.
    pub value: Option<Value>,
    pub quality: Quality,
    /// The device's own timestamp where it has one; otherwise the runtime stamps the read.
    pub source_time: Option<Timestamp>,
}

impl Reading {
    pub fn good(tag: u32, value: Value) -> Reading {
        Reading {
            tag,
            value: Some(value),
            quality: Quality::Good,
            source_time: None,
        }
    }

    pub fn bad(tag: u32, reason: BadReason) -> Reading {
        Reading {
            tag,
            value: None,
            quality: Quality::Bad(reason),
            source_time: None,
        }
    }

    pub fn at(mut self, time: Timestamp) -> Reading {
        self.source_time = Some(time);
        self
    }
}

/// A tag as handed to a driver: its name within the device, the raw type the device holds,
/// and the address the factory parsed at config load.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSpec<A> {
    /// The tag's path inside its device, e.g. `hydraulics/pressure`.
    pub name: String,
    /// The type as stored on the device (before scaling).
    pub data_type: DataType,
    pub writable: bool,
    pub address: A,
}

/// What a factory knows of the device it builds a driver for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's name from config, for log fields.
    pub name: String,
    /// How often the runtime calls [`Driver::read`].
    pub poll_interval: std::time::Duration,
}

/// One connection to one device. The runtime calls `connect`, then `read` once per poll
/// interval; `write` may come between reads. All three run on one task, so a driver needs
/// no locking of its own.
#[async_trait::async_trait]
pub trait Driver: Send {
    /// Opens the link. Called at start and after every `LinkError`, with capped
    /// exponential backoff in between.
    async fn connect(&mut self) -> Result<(), LinkError>;

    /// Reads the device, pushing [`Reading`]s into `out` (cleared by the caller; ignored
    /// when `Err` is returned). A polled device pushes one reading per tag. A driver that
    /// buffers (a device with a history, a simulator catching up on elapsed steps) may push
    /// several readings of one tag, oldest first, each with its own `source_time`, or none
    /// when nothing new is due. A tag the device refused is a Bad reading; `Err` is for the
    /// link.
    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError>;

    /// Writes one tag (already converted to its raw `data_type`).
    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError>;

    /// Drops the link before a reconnect (after a `LinkError`); `connect` follows.
    async fn disconnect(&mut self) {}

    /// Ends the link for good: shutdown, or the device left the config. A driver that
    /// keeps state across reconnects (a session a server keeps for it) lets go of it here.
    async fn close(&mut self) {
        self.disconnect().await;
    }
}

/// Builds drivers of one kind from config. The runtime's registry maps each `driver:` name to
/// a factory; the factory validates its own options and addresses at config load, so every
/// mistake is reported with its file, line and key before anything starts.
pub trait DriverFactory: Send + Sync {
    /// The device's `options:` map, deserialized with `deny_unknown_fields`.
    type Options: DeserializeOwned + Send;
    /// A tag's `options:` map (absent means `Default`).
    type TagOptions: DeserializeOwned + Default + Send;
    /// A tag's address, parsed from its `address:` string.
    type Address: Send + Clone + std::fmt::Debug;

    /// Parses a tag address, given the tag's raw type and options. The error is shown to the
    /// user next to the `address:` key, so say what is wrong and what was expected.
    fn parse_address(
        &self,
        address: &str,
        data_type: DataType,
        options: &Self::TagOptions,
    ) -> Result<Self::Address, String>;

    /// Checks the device as a whole (e.g. overlapping addresses, options that contradict).
    fn validate(
        &self,
        _options: &Self::Options,
        _tags: &[TagSpec<Self::Address>],
    ) -> Result<(), String> {
        Ok(())
    }

    /// Creates the driver.
    fn build(
        &self,
        device: &DeviceInfo,
        options: Self::Options,
        tags: Vec<TagSpec<Self::Address>>,
    ) -> Box<dyn Driver>;

    /// Renders an address back for `uaedge tags`.
    fn describe(&self, address: &Self::Address) -> String {
        format!("{address:?}")
    }
}
