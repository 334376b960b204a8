//! uaedge: an OPC UA-centric industrial edge runtime.
//!
//! [`runtime::Runtime::start`] is the entry point both `main` and the integration tests
//! call; components meet the model through the [`bus`].
pub mod anomaly;
pub mod bus;
pub mod conditions;
pub mod config;
pub mod history;
pub mod logging;
pub mod model;
pub mod opcua_server;
pub mod runtime;
pub mod sparkplug;
pub mod store;
pub mod systemd;
pub mod web;
