//! The runtime: it builds the [model bus](crate::bus), runs one task per device and the
//! router, starts the components (Sparkplug, OPC UA, metrics, web, history) with a [`Handle`](crate::bus::Handle), and stops
//! them all in order. [`Runtime::start`] is the one entry point; `main` and the tests call
//! it, then [`Runtime::reload`] and [`Runtime::shutdown`].
//!
//! ```text
//!  device tasks ──RouterMsg──▶ router ──ModelEvent──▶ subscribers (Sparkplug, OPC UA)
//!  (device_task.rs)  bounded   (router.rs)  bounded    │
//!        ▲                        │ writes (alone)      │ read the table and write to
//!        │                        ▼                     │ devices through the Handle
//!        │                     TagTable ◀── read ── Handle (bus/handle.rs)
//!        └──────── WriteRequest, bounded, per device ◀──┘
//! ```
//!
//! Device tasks own their driver and its reconnect loop; they hand readings to the router
//! over a bounded channel, so a slow router slows the polling rather than growing memory.
//! The router applies scaling and report-by-exception, is the only writer of the
//! [`TagTable`](crate::model::TagTable), and fans the reported samples out to subscribers.
//! Anomaly checks judge every reading before report-by-exception; their alarms are tags
//! of the model (see `router_checks.rs`).
//!
//! # Reload
//! [`Runtime::reload`] applies a new config in place. Devices are matched by name; one
//! whose link fingerprint (see `config::link_fingerprint`: driver, options, enabled, poll
//! interval, reconnect, tags without their checks) is unchanged keeps its task and its open
//! connection. Removed and changed devices' tasks stop, added and changed ones start fresh.
//! The new table replaces the old one as a whole, with the kept devices' values, qualities
//! and link state carried over by path; the new table travels the router's own queue, so
//! every event before it is judged against the old table and every one after it against
//! the new one, and subscribers get [`ModelEvent::Reloaded`](crate::bus::ModelEvent) with
//! the states of that moment. Anomaly checks restart with the new config (windows empty,
//! the transition count from zero, alarms normal: an Active one is published as cleared
//! and fires again if its condition holds). Alarm reactions find their target by path, so
//! a reload between an alarm and its write cannot send it to the wrong tag. A changed
//! `sparkplug:`, `opcua:`, `metrics:`, `web:` or `history:` section (or `state_dir`) restarts that one
//! component.

mod components;
mod device_task;
mod reload;
mod router;
mod router_checks;
mod supervisor;

pub use reload::ReloadSummary;

/// How long shutdown (and a reload) waits for each stage before it logs the laggard and
/// moves on.
const STAGE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);
pub use supervisor::{Runtime, RuntimeError};
