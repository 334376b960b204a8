//! The validated form of a check: what config loading produces and the engine runs.
//!
//! Everything here is checked already (`lo < hi`, thresholds positive, the reaction's tag
//! exists and is writable, its value fits that tag's type), so the engine has no error
//! paths. Times are microseconds, like [`uaedge_driver::Timestamp`].

use std::fmt;
use std::sync::Arc;

use uaedge_driver::Value;

use super::window::Window;
use crate::model::TagId;

/// The kinds of check, as written in `kind:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Limits,
    RateOfChange,
    Zscore,
    Flatline,
    Spike,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Limits => "limits",
            CheckKind::RateOfChange => "rate_of_change",
            CheckKind::Zscore => "zscore",
            CheckKind::Flatline => "flatline",
            CheckKind::Spike => "spike",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long a flatline must last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatSpan {
    /// By source time, microseconds.
    Duration(i64),
    /// By consecutive good samples.
    Samples(usize),
}

/// Each kind's parameters. `hysteresis` is in the unit of the threshold it relaxes.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckParams {
    /// Hit outside `[lo, hi]`; clear inside `[lo + hysteresis, hi - hysteresis]`.
    Limits {
        lo: Option<f64>,
        hi: Option<f64>,
        hysteresis: f64,
    },
    /// Hit when `|newest - oldest| / Δt` over the window exceeds `max_per_second`; clear at
    /// or below `max_per_second - hysteresis`.
    RateOfChange {
        max_per_second: f64,
        hysteresis: f64,
        window: Window,
    },
    /// Hit when the sample is more than `threshold` standard deviations from the mean of
    /// the window before it; clear within `threshold - hysteresis`.
    Zscore {
        threshold: f64,
        hysteresis: f64,
        min_samples: usize,
        /// Floor for σ, in engineering units, so a quantised, mostly-constant signal does
        /// not alarm on every step.
        min_spread: f64,
        window: Window,
    },
    /// Hit when every good value for `span` stayed within `epsilon` of the one that
    /// started the run; clear when a value moves further.
    Flatline { epsilon: f64, span: FlatSpan },
    /// Hit when the sample is more than `threshold` MADs from the median of the window
    /// before it; clear within `threshold - hysteresis`.
    Spike {
        threshold: f64,
        hysteresis: f64,
        min_samples: usize,
        /// Floor for the MAD, in engineering units.
        min_spread: f64,
        window: Window,
    },
}

impl CheckParams {
    pub fn kind(&self) -> CheckKind {
        match self {
            CheckParams::Limits { .. } => CheckKind::Limits,
            CheckParams::RateOfChange { .. } => CheckKind::RateOfChange,
            CheckParams::Zscore { .. } => CheckKind::Zscore,
            CheckParams::Flatline { .. } => CheckKind::Flatline,
            CheckParams::Spike { .. } => CheckKind::Spike,
        }
    }
}

/// How long a condition must persist before the alarm changes state, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debounce {
    /// Continuously, by sample time (microseconds). `Delay(0)`, the default, acts at once.
    Delay(i64),
    /// For this many consecutive good samples.
    Hits(u32),
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::Delay(0)
    }
}

/// A write to do when the alarm turns Active.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub tag: TagId,
    /// `device/tag`, for the log.
    pub path: Arc<str>,
    /// Already converted to the target tag's type.
    pub value: Value,
}

/// One check on one tag.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub tag: TagId,
    /// The alarm's name under its tag: `<tag>/Alarms/<name>`.
    pub name: Arc<str>,
    pub params: CheckParams,
    pub debounce: Debounce,
    pub reaction: Option<Reaction>,
}

impl CheckSpec {
    pub fn kind(&self) -> CheckKind {
        self.params.kind()
    }
}

/// The path of an alarm's Boolean beside its tag (`hydraulics/pressure/Alarms/high`): the
/// Sparkplug metric name and the OPC UA browse path below the device.
pub fn alarm_path(tag: &str, check: &str) -> String {
    format!("{tag}/Alarms/{check}")
}
