//! Fault injection: deterministic, seeded, and a pure function of the step index like the
//! signals, so a demo shows the same anomaly at the same step on every run.

use serde::Deserialize;
use uaedge_driver::{DataType, Duration};

/// The `kind:` of a fault in a device's `faults:` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Adds `magnitude` for `duration` (default: exactly one step).
    Spike,
    /// Adds `rate` per second since the fault began, for `duration` or to the end.
    Drift,
    /// Freezes the value it had at the window's first step.
    Stuck,
    /// No value, Bad(CommFailure): the device stopped answering for this tag.
    Dropout,
    /// No value, Bad(DeviceFailure): the device reports the point itself as failed
    /// (PROFINET: the subslot's IOPS turns bad).
    DeviceFailure,
    /// The whole device is unreachable: connect and read fail with NotConnected.
    Offline,
    /// Adds gaussian noise of σ = `sigma`.
    NoiseBurst,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Spike => "spike",
            FaultKind::Drift => "drift",
            FaultKind::Stuck => "stuck",
            FaultKind::Dropout => "dropout",
            FaultKind::DeviceFailure => "device_failure",
            FaultKind::Offline => "offline",
            FaultKind::NoiseBurst => "noise_burst",
        }
    }
}

/// One entry of `faults:` as written in config. `at`, `duration` and `every` are offsets
/// from the device's start (its first step).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// The tag's name within the device; every kind but `offline` needs one.
    #[serde(default)]
    pub tag: Option<String>,
    pub at: Duration,
    #[serde(default)]
    pub duration: Option<Duration>,
    /// Repeats the fault every so often (the window starts at `at + n * every`).
    #[serde(default)]
    pub every: Option<Duration>,
    #[serde(default)]
    pub magnitude: Option<f64>,
    /// Drift per second, in the tag's raw units.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub sigma: Option<f64>,
}

/// What an active fault does to a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    Spike(f64),
    Drift(f64),
    Stuck,
    Dropout,
    DeviceFailure,
    Offline,
    NoiseBurst(f64),
}

/// A validated fault, its times in microseconds from the device's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub effect: Effect,
    /// Index of the tag in the device's tags; `None` for device-wide faults.
    pub tag: Option<usize>,
    at: i64,
    duration: Option<i64>,
    every: Option<i64>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.get().as_micros()).unwrap_or(i64::MAX)
}

impl Fault {
    /// Validates one spec against the device's tags (`names[i]`, `types[i]`).
    pub fn resolve(
        spec: &FaultSpec,
        names: &[&str],
        types: &[DataType],
        period: std::time::Duration,
    ) -> Result<Fault, String> {
        let kind = spec.kind;
        let k = kind.name();
        let tag = match (&spec.tag, kind) {
            (Some(_), FaultKind::Offline) => {
                return Err("an `offline` fault takes the whole device; remove `tag`".into())
            }
            (None, FaultKind::Offline) => None,
            (None, _) => return Err(format!("a `{k}` fault needs `tag`")),
            (Some(name), _) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
                format!(
                    "`tag: {name}` is not a tag of this device (tags: {})",
                    names.join(", ")
                )
            })?),
        };
        let data_type = tag.and_then(|i| types.get(i).copied());
        let numeric = |what: &str| -> Result<(), String> {
            match data_type {
                Some(t) if !t.is_numeric() => Err(format!(
                    "a `{k}` fault {what}, so it needs a numeric tag, not {t}"
                )),
                _ => Ok(()),
            }
        };
        let need = |v: Option<f64>, key: &str| -> Result<f64, String> {
            match v {
                Some(x) if x.is_finite() => Ok(x),
                Some(x) => Err(format!("`{key}` must be a finite number, got {x}")),
                None => Err(format!("a `{k}` fault needs `{key}`")),
            }
        };
        let unused = |v: bool, key: &str| -> Result<(), String> {
            if v {
                Err(format!("`{key}` does not apply to a `{k}` fault"))
            } else {
                Ok(())
            }
        };
        if kind != FaultKind::Spike {
            unused(spec.magnitude.is_some(), "magnitude")?;
        }
        if kind != FaultKind::Drift {
            unused(spec.rate.is_some(), "rate")?;
        }
        if kind != FaultKind::NoiseBurst {
            unused(spec.sigma.is_some(), "sigma")?;
        }
        let effect = match kind {
            FaultKind::Spike => {
                numeric("adds to the value")?;
                Effect::Spike(need(spec.magnitude, "magnitude")?)
            }
            FaultKind::Drift => {
                numeric("adds to the value")?;
                Effect::Drift(need(spec.rate, "rate")?)
            }
            FaultKind::NoiseBurst => {
                numeric("adds to the value")?;
                let sigma = need(spec.sigma, "sigma")?;
                if sigma < 0.0 {
                    return Err(format!(
                        "`sigma` is a standard deviation, >= 0, got {sigma}"
                    ));
                }
                Effect::NoiseBurst(sigma)
            }
            FaultKind::Stuck => Effect::Stuck,
            FaultKind::Dropout => Effect::Dropout,
            FaultKind::DeviceFailure => Effect::DeviceFailure,
            FaultKind::Offline => Effect::Offline,
        };
        let duration = match (spec.duration, kind) {
            (Some(d), _) if d.get().is_zero() => {
                return Err("`duration` must be greater than zero".into())
            }
            (Some(d), _) => Some(micros(d)),
            // One step, wherever `at` falls between steps: the window [at, at + period)
            // always holds exactly one step time.
            (None, FaultKind::Spike) => Some(i64::try_from(period.as_micros()).unwrap_or(1)),
            (None, FaultKind::Drift) if spec.every.is_none() => None,
            (None, _) => return Err(format!("a `{k}` fault needs `duration`")),
        };
        let every = match spec.every {
            Some(e) if Some(micros(e)) <= duration => {
                return Err(format!(
                    "`every: {e}` must be longer than the fault's duration, or the windows overlap"
                ))
            }
            Some(e) => Some(micros(e)),
            None => None,
        };
        Ok(Fault {
            kind,
            effect,
            tag,
            at: micros(spec.at),
            duration,
            every,
        })
    }

    /// The occurrence active at `t` µs after start: its number and its start, in µs.
    pub fn occurrence(&self, t: i64) -> Option<(u64, i64)> {
        if t < self.at {
            return None;
        }
        let n = match self.every {
            Some(e) if e > 0 => (t - self.at) / e,
            _ => 0,
        };
        let begins = self
            .at
            .saturating_add(n.saturating_mul(self.every.unwrap_or(0)));
        match self.duration {
            Some(d) if t >= begins.saturating_add(d) => None,
            _ => Some((u64::try_from(n).unwrap_or(0), begins)),
        }
    }

    /// Where the active occurrence ends, µs after start, for log lines.
    pub fn ends(&self, begins: i64) -> Option<i64> {
        self.duration.map(|d| begins.saturating_add(d))
    }
}
