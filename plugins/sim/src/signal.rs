//! Signals: what a simulated tag does over virtual time when nothing is wrong with it.

use std::f64::consts::TAU;

use serde::Deserialize;
use uaedge_driver::{DataType, Timestamp, Value};

/// The `signal:` of a tag's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Sine,
    Ramp,
    RandomWalk,
    Square,
    /// Same as `square`; plant people call a two-level signal a step as often as a square.
    Step,
    Constant,
    Counter,
    Cycle,
    /// The step's own timestamp, for `datetime` tags (a device clock).
    Clock,
}

impl SignalKind {
    fn name(self) -> &'static str {
        match self {
            SignalKind::Sine => "sine",
            SignalKind::Ramp => "ramp",
            SignalKind::RandomWalk => "random_walk",
            SignalKind::Square => "square",
            SignalKind::Step => "step",
            SignalKind::Constant => "constant",
            SignalKind::Counter => "counter",
            SignalKind::Cycle => "cycle",
            SignalKind::Clock => "clock",
        }
    }

    /// The option keys each signal reads; any other key given is a mistake worth reporting.
    fn fields(self) -> &'static [&'static str] {
        match self {
            SignalKind::Sine => &["amplitude", "offset", "period", "phase", "noise"],
            SignalKind::Ramp => &["min", "max", "period", "noise"],
            SignalKind::RandomWalk => &["start", "step", "min", "max", "noise"],
            SignalKind::Square | SignalKind::Step => &["low", "high", "period", "duty", "noise"],
            SignalKind::Constant => &["value", "noise"],
            SignalKind::Counter => &["start", "increment", "max", "period"],
            SignalKind::Cycle => &["values", "period"],
            SignalKind::Clock => &[],
        }
    }
}

/// A literal in config: `value: 3.5`, `value: true`, `values: [idle, run, stop]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Number(f64),
    Text(String),
}

crate::sim_tag_options! {
    /// The signal keys of a tag's `options:`. Drivers embed them in their own `TagOptions`
    /// through [`sim_tag_options!`](crate::sim_tag_options), so the YAML stays flat; this is
    /// that macro with no keys of a driver's own.
    pub struct SignalOptions {}
}

/// What a signal yields for one step before faults: a number (faults and noise apply) or a
/// finished value (text, booleans from a literal, timestamps).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    Num(f64),
    Val(Value),
}

/// A validated signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// No `signal:` given: the tag holds nothing of its own until written (an output, or a
    /// view onto bytes other tags drive).
    None,
    Sine {
        amplitude: f64,
        offset: f64,
        period: f64,
        phase: f64,
    },
    Ramp {
        min: f64,
        max: f64,
        period: f64,
    },
    RandomWalk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    Square {
        low: f64,
        high: f64,
        period: f64,
        duty: f64,
    },
    Constant(Literal),
    /// Counts once per `period` (once per step when `None`).
    Counter {
        start: f64,
        increment: f64,
        span: Option<f64>,
        period: Option<f64>,
    },
    Cycle {
        values: Vec<Literal>,
        period: Option<f64>,
    },
    Clock,
}

impl SignalOptions {
    /// Checks the options against the tag's type and turns them into a [`Signal`] and a
    /// noise σ. Errors name the key at fault and what was expected.
    pub fn build(&self, data_type: DataType) -> Result<(Signal, f64), String> {
        let Some(kind) = self.signal else {
            if let Some(key) = self.given().first() {
                return Err(format!(
                    "`{key}` needs a `signal:` (sine, ramp, random_walk, square, step, constant, counter, cycle, clock)"
                ));
            }
            return Ok((Signal::None, 0.0));
        };
        let allowed = kind.fields();
        if let Some(key) = self.given().into_iter().find(|k| !allowed.contains(k)) {
            return Err(format!(
                "`{key}` does not apply to signal `{}` (it takes: {})",
                kind.name(),
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        check_kind_fits(kind, data_type)?;
        let need = |v: Option<f64>, key: &str| {
            v.ok_or_else(|| format!("signal `{}` needs `{key}`", kind.name()))
        };
        let period = |required: bool| -> Result<Option<f64>, String> {
            match self.period {
                Some(p) if p.get().is_zero() => Err("`period` must be greater than zero".into()),
                Some(p) => Ok(Some(p.get().as_secs_f64())),
                None if required => Err(format!("signal `{}` needs `period`", kind.name())),
                None => Ok(None),
            }
        };
        let signal = match kind {
            SignalKind::Sine => Signal::Sine {
                amplitude: need(self.amplitude, "amplitude")?,
                offset: self.offset.unwrap_or(0.0),
                period: period(true)?.unwrap_or(1.0),
                phase: self.phase.unwrap_or(0.0).to_radians(),
            },
            SignalKind::Ramp => {
                let (min, max) = (self.min.unwrap_or(0.0), need(self.max, "max")?);
                if max <= min {
                    return Err(format!("ramp needs min < max, got min {min}, max {max}"));
                }
                Signal::Ramp {
                    min,
                    max,
                    period: period(true)?.unwrap_or(1.0),
                }
            }
            SignalKind::RandomWalk => {
                let (min, max) = (need(self.min, "min")?, need(self.max, "max")?);
                let step = need(self.step, "step")?;
                if max < min || step < 0.0 {
                    return Err(format!(
                        "random_walk needs min <= max and step >= 0, got min {min}, max {max}, step {step}"
                    ));
                }
                let start = self.start.unwrap_or((min + max) / 2.0);
                if !(min..=max).contains(&start) {
                    return Err(format!(
                        "random_walk `start` {start} is outside {min}..{max}"
                    ));
                }
                Signal::RandomWalk {
                    start,
                    step,
                    min,
                    max,
                }
            }
            SignalKind::Square | SignalKind::Step => {
                let duty = self.duty.unwrap_or(0.5);
                if !(0.0..=1.0).contains(&duty) {
                    return Err(format!(
                        "`duty` is a fraction of the period, 0..1, got {duty}"
                    ));
                }
                Signal::Square {
                    low: self.low.unwrap_or(0.0),
                    high: self.high.unwrap_or(1.0),
                    period: period(true)?.unwrap_or(1.0),
                    duty,
                }
            }
            SignalKind::Constant => {
                let value = self
                    .value
                    .clone()
                    .ok_or_else(|| "signal `constant` needs `value`".to_string())?;
                literal_raw(&value, data_type)?;
                Signal::Constant(value)
            }
            SignalKind::Counter => {
                let start = self.start.unwrap_or(0.0);
                let increment = self.increment.unwrap_or(1.0);
                let max = self
                    .max
                    .or_else(|| integer_bounds(data_type).map(|(_, hi)| hi));
                let span = match max {
                    Some(max) if max < start => {
                        return Err(format!("counter `max` {max} is below `start` {start}"))
                    }
                    // Wrapping at max means max itself is the last value before start again,
                    // as a PLC counter does.
                    Some(max) if data_type.is_float() => Some(max - start),
                    Some(max) => Some(max - start + 1.0),
                    None => None,
                };
                Signal::Counter {
                    start,
                    increment,
                    span,
                    period: period(false)?,
                }
            }
            SignalKind::Cycle => {
                let values = self.values.clone().unwrap_or_default();
                if values.is_empty() {
                    return Err("signal `cycle` needs a non-empty `values:` list".into());
                }
                for v in &values {
                    literal_raw(v, data_type)?;
                }
                Signal::Cycle {
                    values,
                    period: period(false)?,
                }
            }
            SignalKind::Clock => Signal::Clock,
        };
        let noise = self.noise.unwrap_or(0.0);
        if !(noise >= 0.0 && noise.is_finite()) {
            return Err(format!(
                "`noise` is a standard deviation, >= 0, got {noise}"
            ));
        }
        if noise > 0.0 && !data_type.is_numeric() {
            return Err(format!(
                "`noise` needs a numeric tag, this one is {data_type}"
            ));
        }
        if let (Some((lo, hi)), Some((tlo, thi))) = (signal.range(), integer_bounds(data_type)) {
            if lo < tlo || hi > thi {
                return Err(format!(
                    "signal `{}` spans {lo}..{hi}, which does not fit {data_type} ({tlo}..{thi})",
                    kind.name()
                ));
            }
        }
        Ok((signal, noise))
    }

    fn given(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |set: bool, key| {
            if set {
                keys.push(key);
            }
        };
        add(self.amplitude.is_some(), "amplitude");
        add(self.offset.is_some(), "offset");
        add(self.period.is_some(), "period");
        add(self.phase.is_some(), "phase");
        add(self.min.is_some(), "min");
        add(self.max.is_some(), "max");
        add(self.start.is_some(), "start");
        add(self.step.is_some(), "step");
        add(self.low.is_some(), "low");
        add(self.high.is_some(), "high");
        add(self.duty.is_some(), "duty");
        add(self.value.is_some(), "value");
        add(self.values.is_some(), "values");
        add(self.increment.is_some(), "increment");
        add(self.noise.is_some(), "noise");
        keys
    }
}

fn check_kind_fits(kind: SignalKind, data_type: DataType) -> Result<(), String> {
    let ok = match data_type {
        DataType::String => matches!(kind, SignalKind::Constant | SignalKind::Cycle),
        DataType::Boolean => matches!(
            kind,
            SignalKind::Square | SignalKind::Step | SignalKind::Constant | SignalKind::Cycle
        ),
        DataType::DateTime => matches!(kind, SignalKind::Clock | SignalKind::Constant),
        _ => kind != SignalKind::Clock,
    };
    if ok {
        Ok(())
    } else {
        let takes = match data_type {
            DataType::String => "constant or cycle",
            DataType::Boolean => "square, step, constant or cycle",
            DataType::DateTime => "clock or constant",
            _ => "sine, ramp, random_walk, square, step, constant, counter or cycle",
        };
        Err(format!(
            "signal `{}` does not fit a {data_type} tag (it takes {takes})",
            kind.name()
        ))
    }
}

/// Integer types' bounds, for load-time range checks; `None` for the rest.
fn integer_bounds(data_type: DataType) -> Option<(f64, f64)> {
    Some(match data_type {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN as f64, i64::MAX as f64),
        DataType::UInt8 => (0.0, u8::MAX.into()),
        DataType::UInt16 => (0.0, u16::MAX.into()),
        DataType::UInt32 => (0.0, u32::MAX.into()),
        DataType::UInt64 => (0.0, u64::MAX as f64),
        _ => return None,
    })
}

/// A literal as the tag's type wants it; checked at load so the runtime never meets a
/// mismatch.
pub(crate) fn literal_raw(lit: &Literal, data_type: DataType) -> Result<Raw, String> {
    match (lit, data_type) {
        (Literal::Text(s), DataType::String) => Ok(Raw::Val(Value::String(s.clone()))),
        (Literal::Bool(b), DataType::Boolean) => Ok(Raw::Val(Value::Boolean(*b))),
        (Literal::Number(x), DataType::Boolean) => Ok(Raw::Val(Value::Boolean(*x != 0.0))),
        (Literal::Number(x), t) if t.is_numeric() || t == DataType::DateTime => {
            Value::from_f64(*x, t).map_err(|e| e.to_string())?;
            Ok(Raw::Num(*x))
        }
        (Literal::Number(x), DataType::String) => Ok(Raw::Val(Value::String(x.to_string()))),
        (lit, t) => Err(format!("{lit:?} is not a {t} value")),
    }
}

impl Signal {
    /// The value at step `k` (time `t` seconds after the device's start). A random walk is
    /// not pure: the device keeps its state and calls [`Signal::walk`] instead.
    #[inline]
    pub(crate) fn eval(
        &self,
        data_type: DataType,
        k: u64,
        t: f64,
        time: Timestamp,
        walk: f64,
    ) -> Option<Raw> {
        Some(match self {
            Signal::None => return None,
            Signal::Sine {
                amplitude,
                offset,
                period,
                phase,
            } => Raw::Num(offset + amplitude * (TAU * t / period + phase).sin()),
            Signal::Ramp { min, max, period } => {
                Raw::Num(min + (max - min) * (t / period).rem_euclid(1.0))
            }
            Signal::RandomWalk { .. } => Raw::Num(walk),
            Signal::Square {
                low,
                high,
                period,
                duty,
            } => {
                let phase = (t / period).rem_euclid(1.0);
                Raw::Num(if phase < *duty { *high } else { *low })
            }
            Signal::Constant(lit) => return literal_raw(lit, data_type).ok(),
            Signal::Cycle { values, period } => {
                let slot = match period {
                    Some(p) => (t / p).floor() as u64,
                    None => k,
                };
                let len = values.len().max(1) as u64;
                let lit = values.get(usize::try_from(slot % len).ok()?)?;
                return literal_raw(lit, data_type).ok();
            }
            Signal::Counter {
                start,
                increment,
                span,
                period,
            } => {
                let counts = match period {
                    Some(p) => (t / p).floor(),
                    None => k as f64,
                };
                let travelled = counts * increment;
                Raw::Num(match span {
                    Some(span) if *span > 0.0 => start + travelled.rem_euclid(*span),
                    _ => start + travelled,
                })
            }
            Signal::Clock => Raw::Val(Value::DateTime(time)),
        })
    }

    /// One step of a random walk, reflected at its bounds so it does not stick to them.
    pub(crate) fn walk(&self, previous: f64, u: f64) -> f64 {
        let Signal::RandomWalk { step, min, max, .. } = self else {
            return previous;
        };
        let mut v = previous + step * u;
        if v > *max {
            v = 2.0 * max - v;
        }
        if v < *min {
            v = 2.0 * min - v;
        }
        v.clamp(*min, *max)
    }

    pub(crate) fn walk_start(&self) -> f64 {
        match self {
            Signal::RandomWalk { start, .. } => *start,
            _ => 0.0,
        }
    }

    /// The nominal range (without noise), for the load-time check against integer types
    /// (the only caller).
    fn range(&self) -> Option<(f64, f64)> {
        let span = |a: f64, b: f64| Some((a.min(b), a.max(b)));
        match self {
            Signal::Sine {
                amplitude, offset, ..
            } => span(offset - amplitude, offset + amplitude),
            Signal::Ramp { min, max, .. } | Signal::RandomWalk { min, max, .. } => span(*min, *max),
            Signal::Square { low, high, .. } => span(*low, *high),
            // Only asked for integer types, whose counters cover start..=max.
            Signal::Counter {
                start,
                span: Some(s),
                ..
            } => span(*start, start + s - 1.0),
            _ => None,
        }
    }
}

/// Converts a number to the tag's type, saturating at the type's bounds as a PLC limits an
/// analog value, so noise on a signal near a bound never turns a reading Bad.
#[inline]
pub(crate) fn number_to_value(x: f64, data_type: DataType) -> Value {
    if let Ok(v) = Value::from_f64(x, data_type) {
        return v;
    }
    match data_type {
        DataType::Int8 => Value::Int8(if x < 0.0 { i8::MIN } else { i8::MAX }),
        DataType::Int16 => Value::Int16(if x < 0.0 { i16::MIN } else { i16::MAX }),
        DataType::Int32 => Value::Int32(if x < 0.0 { i32::MIN } else { i32::MAX }),
        DataType::Int64 => Value::Int64(if x < 0.0 { i64::MIN } else { i64::MAX }),
        DataType::UInt8 => Value::UInt8(if x < 0.0 { 0 } else { u8::MAX }),
        DataType::UInt16 => Value::UInt16(if x < 0.0 { 0 } else { u16::MAX }),
        DataType::UInt32 => Value::UInt32(if x < 0.0 { 0 } else { u32::MAX }),
        DataType::UInt64 => Value::UInt64(if x < 0.0 { 0 } else { u64::MAX }),
        DataType::Float => Value::Float(if x < 0.0 { f32::MIN } else { f32::MAX }),
        DataType::Double => Value::Double(x),
        DataType::Boolean => Value::Boolean(x != 0.0),
        DataType::String => Value::String(x.to_string()),
        DataType::DateTime => Value::DateTime(Timestamp(if x < 0.0 { 0 } else { i64::MAX })),
    }
}

/// The value an untouched register holds: zero, false, empty.
pub fn zero_value(data_type: DataType) -> Value {
    match data_type {
        DataType::String => Value::String(String::new()),
        DataType::DateTime => Value::DateTime(Timestamp(0)),
        t => number_to_value(0.0, t),
    }
}
