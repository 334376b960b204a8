//! uaedge: an OPC UA-centric industrial edge runtime.
pub mod model;
