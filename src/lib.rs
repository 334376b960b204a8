//! uaedge: an OPC UA-centric industrial edge runtime.
//!
//! [`runtime::run`] is the entry point both `main` and the integration tests call.
pub mod anomaly;
pub mod config;
pub mod drivers;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod opcua_server;
pub mod runtime;
pub mod sparkplug;
pub mod store;
pub mod systemd;
