//! Deterministic simulated devices for uaedge, shared by the `profinet-sim` and `enip-sim`
//! drivers: a plant engineer runs uaedge with no hardware, and tests and demos of anomaly
//! detection see the same values at the same steps on every run.
//!
//! # Virtual time
//! A [`SimDevice`] has a sample period (by default the device's poll interval). Step `k`
//! has the time `start + k * period`, where `start` is the wall clock at build aligned down
//! to the period. Each read emits every step elapsed since the previous read, oldest first,
//! each with its own `source_time`. The value of a tag at step `k` is a function of
//! `(seed, tag name, k, faults, writes)`, never of when or how often the runtime reads, so
//! reading every step or every seventh step gives the same stream. A read that finds no new
//! step due pushes nothing. A read emits at most [`MAX_CATCH_UP`] steps and, beyond the steps
//! one poll interval brings, at most [`MAX_CATCH_UP_SAMPLES`] samples: a device read later
//! than that (the pipeline behind it overloaded, the process suspended) skips the oldest.
//!
//! # Signals (tag `options:`)
//! | `signal:` | keys (default) | value at time `t` since start |
//! |---|---|---|
//! | `sine` | `amplitude`, `offset` (0), `period`, `phase` (0, degrees) | `offset + amplitude·sin(2πt/period + phase)` |
//! | `ramp` | `min` (0), `max`, `period` | sawtooth from min up to (not reaching) max |
//! | `random_walk` | `start` ((min+max)/2), `step`, `min`, `max` | previous + step·U(-1,1), reflected at min/max |
//! | `square` / `step` | `low` (0), `high` (1), `period`, `duty` (0.5) | high for the first `duty` of each period |
//! | `constant` | `value` | value (number, bool or text) |
//! | `counter` | `start` (0), `increment` (1), `max` (the integer type's max), `period` (one step) | start + n·increment after n periods, back to start after max |
//! | `cycle` | `values: [..]`, `period` (one step) | each value in turn, held for `period` |
//! | `clock` | | the step's time (datetime tags) |
//!
//! `noise: σ` adds gaussian noise to any numeric signal. Numbers saturate at the tag type's
//! bounds. A tag without `signal:` holds nothing of its own until written (an output).
//!
//! # Faults (device `faults:`)
//! `- { kind: spike, tag: hydraulics/pressure, at: 90s, magnitude: 40, every: 5m }`.
//! Kinds: `spike` (`magnitude`, one step by default), `drift` (`rate` per second, for
//! `duration` or forever), `stuck`, `dropout` (Bad CommFailure), `device_failure` (Bad
//! DeviceFailure), `noise_burst` (`sigma`), `offline` (no `tag`: connect and read fail with
//! NotConnected; steps inside the window produce nothing). `at`, `duration` and `every` are
//! offsets from the start; `every` repeats the window.
//!
//! # Writes
//! A write to a writable tag is held from the current step (or the next, if the current one
//! was already read) until the next write; it overrides the signal.

mod device;
mod factory;
mod fault;
pub mod image;
mod names;
mod rng;
mod signal;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use uaedge_driver::{async_trait, Driver, LinkError, Reading, Timestamp, Value, WriteError};

pub use device::{
    sample_reading, SimDevice, SimTag, Step, TagSample, MAX_CATCH_UP, MAX_CATCH_UP_SAMPLES,
    MAX_REPLAY,
};
pub use factory::{box_driver, check_device, parse_number, sim_tags, start_device, SimAddress};
pub use fault::{Effect, Fault, FaultKind, FaultSpec};
pub use rng::name_key;
pub use signal::{zero_value, Literal, Signal, SignalKind, SignalOptions};

/// Where a simulated driver gets the time: the wall clock in service, a hand-set one in
/// tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(at.0)))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The driver a factory builds when a device it was handed cannot be simulated after all
/// (see [`box_driver`]). `DriverFactory::build` cannot fail, and `validate` refuses all it
/// can know at config load ([`check_device`]); what is left depends on the device's poll
/// interval, which `validate` is not told. The device stays Bad and says why.
#[derive(Debug)]
pub struct ConfigErrorDriver {
    message: String,
}

impl ConfigErrorDriver {
    pub fn new(device: &str, message: impl Into<String>) -> ConfigErrorDriver {
        let message = message.into();
        tracing::error!(device, error = %message, "simulated device cannot start");
        ConfigErrorDriver { message }
    }
}

#[async_trait]
impl Driver for ConfigErrorDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        Err(LinkError::protocol(format!(
            "configuration error: {}",
            self.message
        )))
    }

    async fn read(&mut self, _out: &mut Vec<Reading>) -> Result<(), LinkError> {
        Err(LinkError::protocol(format!(
            "configuration error: {}",
            self.message
        )))
    }

    async fn write(&mut self, _tag: u32, _value: &Value) -> Result<(), WriteError> {
        Err(LinkError::protocol(format!("configuration error: {}", self.message)).into())
    }
}

/// Defines a driver's tag options: the signal keys of [`SignalOptions`], flat beside the
/// driver's own keys, with `deny_unknown_fields` (which `#[serde(flatten)]` would lose).
/// The calling crate must depend on `serde`. Extra fields must be `Option`s or carry
/// `#[serde(default)]`.
#[macro_export]
macro_rules! sim_tag_options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub signal: Option<$crate::SignalKind>,
            pub amplitude: Option<f64>,
            pub offset: Option<f64>,
            pub period: Option<uaedge_driver::Duration>,
            /// Degrees.
            pub phase: Option<f64>,
            pub min: Option<f64>,
            pub max: Option<f64>,
            pub start: Option<f64>,
            pub step: Option<f64>,
            pub low: Option<f64>,
            pub high: Option<f64>,
            pub duty: Option<f64>,
            pub value: Option<$crate::Literal>,
            pub values: Option<Vec<$crate::Literal>>,
            pub increment: Option<f64>,
            /// Standard deviation of gaussian noise added to every step.
            pub noise: Option<f64>,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// The signal part of these options.
            pub fn signal_options(&self) -> $crate::SignalOptions {
                $crate::SignalOptions {
                    signal: self.signal,
                    amplitude: self.amplitude,
                    offset: self.offset,
                    period: self.period,
                    phase: self.phase,
                    min: self.min,
                    max: self.max,
                    start: self.start,
                    step: self.step,
                    low: self.low,
                    high: self.high,
                    duty: self.duty,
                    value: self.value.clone(),
                    values: self.values.clone(),
                    increment: self.increment,
                    noise: self.noise,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests;
