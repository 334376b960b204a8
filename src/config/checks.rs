//! The `checks:` YAML schema under a tag, and its validation into [`CheckSpec`]s.
//!
//! One flat struct holds every kind's keys, rather than an internally tagged enum: serde
//! buffers tagged enums, which would lose the source positions of `Spanned` fields and
//! turn "unknown field" errors into errors at the whole check. Keys that do not belong to
//! the check's kind are refused in [`validate_checks`], at the key.
//!
//! ```yaml
//! checks:
//!   - { kind: limits, name: high, hi: 120, hysteresis: 2, delay: 2s,
//!       reaction: { write: { tag: conveyor/run, value: false } } }
//!   - { kind: zscore, window: 60s, threshold: 4, min_samples: 20, hits: 3 }
//!   - { kind: flatline, epsilon: 0.01, duration: 5m }
//!   - { kind: spike, window_samples: 101, threshold: 6 }
//!   - { kind: rate_of_change, window: 10s, max_per_second: 5 }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use uaedge_driver::{DataType, Duration, Value};

use super::{ConfigError, Spanned};
use crate::anomaly::{CheckKind, CheckParams, CheckSpec, Debounce, FlatSpan, Reaction, Window};
use crate::conditions::AckMode;
use crate::model::TagDef;

/// Largest `window_samples`: rings are allocated up front, and 10^7 samples of a spike
/// check already take ~0.5 GB.
pub const MAX_WINDOW_SAMPLES: u64 = 10_000_000;
/// `min_samples` when not given (capped by a count window's size).
pub const DEFAULT_MIN_SAMPLES: u64 = 10;

/// One entry of a tag's `checks:` list, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub kind: Spanned<CheckKind>,
    /// Defaults to the kind's name.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub window: Option<Spanned<Duration>>,
    #[serde(default)]
    pub window_samples: Option<Spanned<u64>>,
    /// How long the condition must hold (by sample time) before the alarm changes state.
    #[serde(default)]
    pub delay: Option<Spanned<Duration>>,
    /// How many consecutive samples must agree before the alarm changes state.
    #[serde(default)]
    pub hits: Option<Spanned<u32>>,
    #[serde(default)]
    pub lo: Option<Spanned<f64>>,
    #[serde(default)]
    pub hi: Option<Spanned<f64>>,
    #[serde(default)]
    pub hysteresis: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_per_second: Option<Spanned<f64>>,
    #[serde(default)]
    pub threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_samples: Option<Spanned<u64>>,
    #[serde(default)]
    pub min_spread: Option<Spanned<f64>>,
    #[serde(default)]
    pub epsilon: Option<Spanned<f64>>,
    #[serde(default)]
    pub duration: Option<Spanned<Duration>>,
    #[serde(default)]
    pub reaction: Option<ReactionConfig>,
    /// The alarm condition's Severity, 1..=1000 (see `conditions.rs` for the defaults).
    #[serde(default)]
    pub severity: Option<Spanned<u16>>,
    /// `required` (the default for limits) or `auto`.
    #[serde(default)]
    pub ack: Option<Spanned<AckMode>>,
    /// Whether an acknowledged alarm also waits for Confirm (default false).
    #[serde(default)]
    pub confirm: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionConfig {
    pub write: WriteConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteConfig {
    /// `device/tag`, or a tag path in the check's own device (tried first).
    pub tag: Spanned<String>,
    pub value: Spanned<Scalar>,
}

/// A YAML scalar, typed later against the target tag.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn to_value(&self, to: DataType) -> Result<Value, uaedge_driver::ValueError> {
        match self {
            Scalar::Bool(b) => Value::Boolean(*b).convert(to),
            Scalar::Int(i) => Value::Int64(*i).convert(to),
            Scalar::UInt(u) => Value::UInt64(*u).convert(to),
            Scalar::Float(f) => Value::Double(*f).convert(to),
            Scalar::Str(s) => Value::String(s.clone()).convert(to),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean, number or string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys each kind takes besides `kind, name, delay, hits, reaction`.
fn params_of(kind: CheckKind) -> &'static [&'static str] {
    match kind {
        CheckKind::Limits => &["lo", "hi", "hysteresis"],
        CheckKind::RateOfChange => &["window", "window_samples", "max_per_second", "hysteresis"],
        CheckKind::Zscore | CheckKind::Spike => &[
            "window",
            "window_samples",
            "threshold",
            "min_samples",
            "min_spread",
            "hysteresis",
        ],
        CheckKind::Flatline => &["epsilon", "duration", "window_samples"],
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.get().as_micros()).unwrap_or(i64::MAX)
}

/// Validates one tag's checks. `lookup` finds a tag by its `device/tag` path (for
/// reactions); errors go to `errors` at the offending key, and the checks without errors
/// come back.
pub fn validate_checks<'a>(
    owner: &TagDef,
    checks: &[CheckConfig],
    lookup: impl Fn(&str) -> Option<&'a TagDef>,
    errors: &mut Vec<ConfigError>,
) -> Vec<CheckSpec> {
    let mut specs = Vec::with_capacity(checks.len());
    if let Some(first) = checks.first() {
        if !(owner.data_type.is_numeric() || owner.data_type == DataType::Boolean) {
            errors.push(first.kind.error(format!(
                "checks need a numeric or boolean tag, but `{}` is {}",
                owner.path, owner.data_type
            )));
            return specs;
        }
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    for check in checks {
        let name = check
            .name
            .as_ref()
            .map_or_else(|| check.kind.name().to_string(), |n| n.value.clone());
        let name_error = |msg: String| match &check.name {
            Some(n) => n.error(msg),
            None => check.kind.error(msg),
        };
        if name.trim().is_empty() || name.contains('/') {
            errors.push(name_error(format!(
                "check name `{name}` must be non-empty and must not contain `/`"
            )));
            continue;
        }
        if let Some(line) = names.get(&name) {
            errors.push(name_error(format!(
                "duplicate check name `{name}` on this tag (first at line {line}); give one a `name:`"
            )));
            continue;
        }
        names.insert(name.clone(), check.kind.pos.line);
        let before = errors.len();
        let spec = validate_one(owner, check, name, &lookup, errors);
        if errors.len() == before {
            specs.extend(spec);
        }
    }
    specs
}

fn validate_one<'a>(
    owner: &TagDef,
    c: &CheckConfig,
    name: String,
    lookup: &impl Fn(&str) -> Option<&'a TagDef>,
    errors: &mut Vec<ConfigError>,
) -> Option<CheckSpec> {
    let kind = c.kind.value;
    let allowed = params_of(kind);
    macro_rules! only_for_kinds {
        ($($field:ident),*) => {$(
            if let Some(f) = &c.$field {
                if !allowed.contains(&stringify!($field)) {
                    errors.push(f.error(format!(
                        "`{}` does not apply to a {kind} check (it takes: {})",
                        stringify!($field),
                        allowed.join(", ")
                    )));
                }
            }
        )*};
    }
    only_for_kinds!(
        window,
        window_samples,
        lo,
        hi,
        hysteresis,
        max_per_second,
        threshold,
        min_samples,
        min_spread,
        epsilon,
        duration
    );

    let debounce = match (&c.delay, &c.hits) {
        (Some(d), Some(_)) => {
            errors.push(d.error("give either `delay` or `hits`, not both"));
            Debounce::default()
        }
        (Some(d), None) => Debounce::Delay(micros(d.value)),
        (None, Some(h)) if h.value == 0 => {
            errors.push(h.error("`hits` must be at least 1"));
            Debounce::default()
        }
        (None, Some(h)) => Debounce::Hits(h.value),
        (None, None) => Debounce::default(),
    };

    let finite = |f: &Option<Spanned<f64>>, positive: bool, errors: &mut Vec<ConfigError>| {
        let s = f.as_ref()?;
        let ok = s.value.is_finite()
            && if positive {
                s.value > 0.0
            } else {
                s.value >= 0.0
            };
        if !ok {
            let what = if positive {
                "positive"
            } else {
                "zero or positive"
            };
            errors.push(s.error(format!("must be a finite {what} number")));
            return None;
        }
        Some(s.value)
    };
    // Absent is reported here; present but invalid was reported by `finite` already.
    let required = |v: Option<f64>, present: bool, key: &str, errors: &mut Vec<ConfigError>| {
        if !present {
            errors.push(c.kind.error(format!("a {kind} check needs `{key}`")));
        }
        v
    };
    let hysteresis = finite(&c.hysteresis, false, errors).unwrap_or(0.0);
    // A hysteresis at least as large as the threshold would make clearing impossible.
    let check_hysteresis = |limit: Option<f64>, errors: &mut Vec<ConfigError>| {
        if let (Some(l), Some(h)) = (limit, &c.hysteresis) {
            if h.value >= l {
                errors.push(h.error(format!(
                    "hysteresis {} must be smaller than the threshold {l}",
                    h.value
                )));
            }
        }
    };

    let window = window_of(c, kind, errors);
    let min_samples = |window: Option<Window>, floor: u64, errors: &mut Vec<ConfigError>| {
        let cap = match window {
            Some(Window::Samples(n)) => n as u64,
            _ => u64::MAX,
        };
        match &c.min_samples {
            Some(m) if m.value < floor || m.value > cap => {
                errors.push(m.error(format!(
                    "min_samples must be between {floor} and the window's {cap} samples"
                )));
                floor as usize
            }
            Some(m) => m.value as usize,
            None if cap < floor => {
                errors.push(c.kind.error(format!(
                    "a {kind} check needs a window of at least {floor} samples"
                )));
                floor as usize
            }
            None => DEFAULT_MIN_SAMPLES.min(cap) as usize,
        }
    };

    let params = match kind {
        CheckKind::Limits => {
            let lo = c.lo.as_ref().map(|s| s.value);
            let hi = c.hi.as_ref().map(|s| s.value);
            for s in [&c.lo, &c.hi].into_iter().flatten() {
                if !s.value.is_finite() {
                    errors.push(s.error("must be a finite number"));
                }
            }
            match (lo, hi, &c.hi) {
                (None, None, _) => {
                    errors.push(c.kind.error("a limits check needs `lo`, `hi` or both"))
                }
                (Some(l), Some(h), Some(hs)) if l >= h => {
                    errors.push(hs.error(format!("hi ({h}) must be greater than lo ({l})")))
                }
                (Some(l), Some(h), _) if 2.0 * hysteresis >= h - l => {
                    if let Some(hy) = &c.hysteresis {
                        errors.push(hy.error(format!(
                            "hysteresis {hysteresis} leaves no band to clear in: it must be below half of hi - lo ({})",
                            (h - l) / 2.0
                        )));
                    }
                }
                _ => {}
            }
            CheckParams::Limits { lo, hi, hysteresis }
        }
        CheckKind::RateOfChange => {
            let max = required(
                finite(&c.max_per_second, true, errors),
                c.max_per_second.is_some(),
                "max_per_second",
                errors,
            );
            check_hysteresis(max, errors);
            if let Some(Window::Samples(n)) = window {
                if n < 2 {
                    if let Some(w) = &c.window_samples {
                        errors.push(w.error("a rate needs a window of at least 2 samples"));
                    }
                }
            }
            CheckParams::RateOfChange {
                max_per_second: max.unwrap_or(f64::INFINITY),
                hysteresis,
                window: window.unwrap_or(Window::Samples(2)),
            }
        }
        CheckKind::Zscore | CheckKind::Spike => {
            let threshold = required(
                finite(&c.threshold, true, errors),
                c.threshold.is_some(),
                "threshold",
                errors,
            );
            check_hysteresis(threshold, errors);
            if window.is_none() && c.window.is_none() && c.window_samples.is_none() {
                errors.push(c.kind.error(format!(
                    "a {kind} check needs `window` (a duration) or `window_samples`"
                )));
            }
            let min_samples = min_samples(window, 2, errors);
            let min_spread = finite(&c.min_spread, false, errors).unwrap_or(0.0);
            let window = window.unwrap_or(Window::Samples(2));
            let threshold = threshold.unwrap_or(f64::INFINITY);
            if kind == CheckKind::Zscore {
                CheckParams::Zscore {
                    threshold,
                    hysteresis,
                    min_samples,
                    min_spread,
                    window,
                }
            } else {
                CheckParams::Spike {
                    threshold,
                    hysteresis,
                    min_samples,
                    min_spread,
                    window,
                }
            }
        }
        CheckKind::Flatline => {
            let epsilon = required(
                finite(&c.epsilon, false, errors),
                c.epsilon.is_some(),
                "epsilon",
                errors,
            );
            let span = match (&c.duration, window) {
                (Some(d), Some(_)) => {
                    errors.push(d.error("give either `duration` or `window_samples`, not both"));
                    FlatSpan::Samples(2)
                }
                (Some(d), None) if d.value.get().is_zero() => {
                    errors.push(d.error("duration must be greater than zero"));
                    FlatSpan::Samples(2)
                }
                (Some(d), None) => FlatSpan::Duration(micros(d.value)),
                (None, Some(Window::Samples(n))) => FlatSpan::Samples(n),
                (None, _) => {
                    errors.push(
                        c.kind
                            .error("a flatline check needs `duration` (or `window_samples`)"),
                    );
                    FlatSpan::Samples(2)
                }
            };
            CheckParams::Flatline {
                epsilon: epsilon.unwrap_or(0.0),
                span,
            }
        }
    };

    let reaction = c
        .reaction
        .as_ref()
        .and_then(|r| reaction(owner, r, lookup, errors));
    Some(CheckSpec {
        tag: owner.id,
        name: Arc::from(name),
        params,
        debounce,
        reaction,
    })
}

/// `window:` or `window_samples:` (not both), where the kind takes one.
fn window_of(c: &CheckConfig, kind: CheckKind, errors: &mut Vec<ConfigError>) -> Option<Window> {
    let allowed = params_of(kind);
    match (&c.window, &c.window_samples) {
        (Some(w), Some(_)) if allowed.contains(&"window") => {
            errors.push(w.error("give either `window` or `window_samples`, not both"));
            None
        }
        (Some(w), _) if allowed.contains(&"window") => {
            if w.value.get().is_zero() {
                errors.push(w.error("window must be greater than zero"));
                return None;
            }
            Some(Window::Duration(micros(w.value)))
        }
        (_, Some(n)) if allowed.contains(&"window_samples") => {
            if n.value == 0 || n.value > MAX_WINDOW_SAMPLES {
                errors.push(n.error(format!(
                    "window_samples must be between 1 and {MAX_WINDOW_SAMPLES}"
                )));
                return None;
            }
            Some(Window::Samples(n.value as usize))
        }
        _ => None,
    }
}

fn reaction<'a>(
    owner: &TagDef,
    r: &ReactionConfig,
    lookup: &impl Fn(&str) -> Option<&'a TagDef>,
    errors: &mut Vec<ConfigError>,
) -> Option<Reaction> {
    let w = &r.write;
    // A path in the check's own device wins: it is what a reader of the tag sees nearby.
    let local = format!("{}/{}", owner.path.device, w.tag.value);
    let Some(target) = lookup(&local).or_else(|| lookup(&w.tag.value)) else {
        errors.push(w.tag.error(format!(
            "reaction tag `{}` not found (neither `{local}` nor a `device/tag` path)",
            w.tag.value
        )));
        return None;
    };
    if !target.writable {
        errors.push(w.tag.error(format!(
            "reaction tag `{}` is not writable (set `writable: true` on it)",
            target.path
        )));
        return None;
    }
    match w.value.value.to_value(target.data_type) {
        Ok(value) => Some(Reaction {
            tag: target.id,
            path: Arc::from(target.path.to_string()),
            value,
        }),
        Err(e) => {
            errors.push(w.value.error(format!(
                "reaction value does not fit `{}` ({}): {e}",
                target.path, target.data_type
            )));
            None
        }
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
