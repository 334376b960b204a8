//! Local anomaly detection: per-tag checks over sliding windows, evaluated as samples
//! arrive, with a debounced alarm state machine per (tag, check).
//!
//! - [`config`]: the `checks:` YAML under a tag, validated into [`CheckSpec`]s with errors
//!   located at the offending key.
//! - [`AnomalyEngine`]: `process` every sample, `tick` periodically; alarm transitions come
//!   out as [`AlarmEvent`]s, with a [`ReactionRequest`] when the check has a `reaction`.
//!
//! Costs per sample and check: O(1) amortised for limits, rate of change, z-score and
//! flatline; O(log n) typical (O(log² n) worst case) for the spike check's exact rolling
//! median and MAD. No allocation per sample once windows are warm.

mod alarm;
mod checks;
mod engine;
mod median_mad;
mod moments;
mod order_stat;
mod spec;
mod window;

pub use alarm::AlarmState;
pub use engine::{AlarmEvent, AnomalyEngine, AnomalyStats, ReactionRequest};
pub use spec::{alarm_path, CheckKind, CheckParams, CheckSpec, Debounce, FlatSpan, Reaction};
pub use window::Window;

#[cfg(test)]
mod scenario_tests;
