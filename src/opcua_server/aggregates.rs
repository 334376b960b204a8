//! Part 13 aggregates over a tag's raw history, as HistoryRead's ReadProcessedDetails asks
//! for them: Interpolative, Average, TimeAverage, Minimum, Maximum, Count, Start, End and
//! Delta, with Part 13's data-based StatusCodes (Good, Uncertain_DataSubNormal, Bad by
//! PercentDataGood/PercentDataBad), the Calculated, Interpolated, Partial and MultiValue
//! bits, and Bad_NoData for an interval without data.
//!
//! Bad raw values are left out of every calculation and counted against the interval.
//! Uncertain ones count as Bad while TreatUncertainAsBad (the default) holds. Boolean and
//! String tags interpolate stepped (Part 11's `Stepped`), numbers sloped. Results are
//! Double, except Count (Int32) and the aggregates that return a stored value (Minimum,
//! Maximum, Start, End), which keep the tag's type.

use opcua::types::{
    AggregateConfiguration, DataValue, NodeId, ObjectId, StatusCode, StatusCodeInfoType,
    StatusCodeValueType, Variant,
};
use uaedge_driver::{Quality, Timestamp, Value};

use super::convert;
use crate::history::chunk::Point;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Interpolative,
    Average,
    TimeAverage,
    Minimum,
    Maximum,
    Count,
    Start,
    End,
    Delta,
}

impl Aggregate {
    pub const ALL: [Aggregate; 9] = [
        Aggregate::Interpolative,
        Aggregate::Average,
        Aggregate::TimeAverage,
        Aggregate::Minimum,
        Aggregate::Maximum,
        Aggregate::Count,
        Aggregate::Start,
        Aggregate::End,
        Aggregate::Delta,
    ];

    pub fn object_id(self) -> ObjectId {
        match self {
            Aggregate::Interpolative => ObjectId::AggregateFunction_Interpolative,
            Aggregate::Average => ObjectId::AggregateFunction_Average,
            Aggregate::TimeAverage => ObjectId::AggregateFunction_TimeAverage,
            Aggregate::Minimum => ObjectId::AggregateFunction_Minimum,
            Aggregate::Maximum => ObjectId::AggregateFunction_Maximum,
            Aggregate::Count => ObjectId::AggregateFunction_Count,
            Aggregate::Start => ObjectId::AggregateFunction_Start,
            Aggregate::End => ObjectId::AggregateFunction_End,
            Aggregate::Delta => ObjectId::AggregateFunction_Delta,
        }
    }

    pub fn of(id: &NodeId) -> Option<Aggregate> {
        let numeric = id.as_object_id().ok()?;
        Aggregate::ALL
            .into_iter()
            .find(|a| a.object_id() == numeric)
    }

    /// Whether it needs numbers (a String tag has none).
    fn numeric(self) -> bool {
        !matches!(self, Aggregate::Count | Aggregate::Start | Aggregate::End)
    }
}

/// An AggregateConfiguration as it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub treat_uncertain_as_bad: bool,
    pub percent_good: u8,
    pub percent_bad: u8,
    pub sloped_extrapolation: bool,
}

/// Part 13's defaults (4.2.1.2), which this server also keeps as its own capabilities.
pub const DEFAULTS: Config = Config {
    treat_uncertain_as_bad: true,
    percent_good: 100,
    percent_bad: 100,
    sloped_extrapolation: false,
};

/// The configuration a request asks for. An all-zero one (what a client sends when it
/// leaves the structure unset) means the defaults, as the OPC Foundation's stack reads it.
pub fn config(c: &AggregateConfiguration) -> Result<Config, StatusCode> {
    let all_zero = !c.use_server_capabilities_defaults
        && !c.treat_uncertain_as_bad
        && c.percent_data_bad == 0
        && c.percent_data_good == 0
        && !c.use_sloped_extrapolation;
    if c.use_server_capabilities_defaults || all_zero {
        return Ok(DEFAULTS);
    }
    let (good, bad) = (c.percent_data_good, c.percent_data_bad);
    if good > 100 || bad > 100 || u16::from(good) + u16::from(bad) < 100 {
        return Err(StatusCode::BadAggregateInvalidInputs);
    }
    Ok(Config {
        treat_uncertain_as_bad: c.treat_uncertain_as_bad,
        percent_good: good,
        percent_bad: bad,
        sloped_extrapolation: c.use_sloped_extrapolation,
    })
}

/// One interval: the samples with `lo ≤ time ≤ hi`, its result stamped `stamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub lo: i64,
    pub hi: i64,
    pub stamp: i64,
}

/// Part 13 5.4.2.2: from `start` towards `end` in steps of `step` µs (0: one interval),
/// the last one what is left; each includes its start and excludes its end. Backwards
/// when `end < start`, stamped at the later bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    start: i64,
    end: i64,
    step: u64,
    span: u64,
    pub count: u64,
}

impl Intervals {
    pub fn new(start: i64, end: i64, step: i64) -> Intervals {
        let span = end.abs_diff(start);
        let step = if step <= 0 { span } else { step.unsigned_abs() }.max(1);
        Intervals {
            start,
            end,
            step,
            span,
            count: span.div_ceil(step),
        }
    }

    pub fn get(&self, k: u64) -> Interval {
        let off = k.saturating_mul(self.step).min(self.span);
        let len = self.step.min(self.span - off).max(1);
        let (off, len) = (off as i64, len as i64);
        if self.end >= self.start {
            let lo = self.start + off;
            Interval {
                lo,
                hi: lo + len - 1,
                stamp: lo,
            }
        } else {
            let hi = self.start - off;
            Interval {
                lo: hi - len + 1,
                hi,
                stamp: hi,
            }
        }
    }
}

/// A tag's raw history around a processed read: sorted, one sample per time, reaching
/// past both ends far enough to interpolate.
pub struct Raw<'a> {
    pub points: &'a [Point],
    /// The oldest and newest stored sample times: intervals outside them have no data.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Boolean and String: hold values, never draw lines between them.
    pub stepped: bool,
    /// A String tag: nothing numeric to compute.
    pub textual: bool,
}

fn status(severity: StatusCode, kind: StatusCodeValueType) -> StatusCode {
    severity
        .set_info_type(StatusCodeInfoType::DataValue)
        .set_value_type(kind)
}

fn result(stamp: i64, value: Option<Variant>, code: StatusCode) -> DataValue {
    let time = convert::date_time(Timestamp(stamp));
    DataValue {
        value: if code.is_bad() { None } else { value },
        status: Some(code),
        source_timestamp: Some(time),
        ..Default::default()
    }
}

fn no_data(stamp: i64) -> DataValue {
    result(stamp, None, StatusCode::BadNoData)
}

impl Raw<'_> {
    /// A sample counts in a calculation: a value, and Good (or Uncertain where Uncertain
    /// is not treated as Bad).
    fn usable(&self, p: &Point, cfg: &Config) -> bool {
        p.value.is_some()
            && match p.quality {
                Quality::Good => true,
                Quality::Uncertain(_) => !cfg.treat_uncertain_as_bad,
                Quality::Bad(_) => false,
            }
    }

    fn number(p: &Point) -> Option<f64> {
        p.value.as_ref().and_then(Value::as_f64)
    }

    /// Index of the first sample at or after `t`.
    fn at_or_after(&self, t: i64) -> usize {
        self.points.partition_point(|p| p.time < t)
    }

    /// Whether the interval reaches past the stored data (Part 13 5.3.3.2: Partial).
    fn partial(&self, iv: &Interval) -> bool {
        let before = self.first.is_some_and(|f| iv.lo < f && f <= iv.hi);
        let after = self.last.is_some_and(|l| iv.lo <= l && l < iv.hi);
        before || after
    }

    fn outside_data(&self, iv: &Interval) -> bool {
        match (self.first, self.last) {
            (Some(f), Some(l)) => iv.hi < f || iv.lo > l,
            _ => true,
        }
    }

    /// Part 13's data-based status: Bad when PercentDataBad of the samples are Bad,
    /// Good when PercentDataGood are Good, else Uncertain_DataSubNormal.
    fn data_status(&self, good: usize, total: usize, cfg: &Config) -> StatusCode {
        if total == 0 {
            return StatusCode::BadNoData;
        }
        let bad = total - good;
        if bad * 100 >= usize::from(cfg.percent_bad) * total && bad > 0 {
            StatusCode::Bad
        } else if good * 100 >= usize::from(cfg.percent_good) * total {
            StatusCode::Good
        } else {
            StatusCode::UncertainDataSubNormal
        }
    }

    /// The value at `t` (Part 13 3.1.8, interpolated bounds): a usable sample there, or
    /// the line (or step) between the nearest usable ones around it; after the last, held
    /// (or extended, with sloped extrapolation). `None` before the first usable sample.
    fn value_at(&self, t: i64, cfg: &Config) -> Option<(f64, StatusCode, StatusCodeValueType)> {
        let i = self.at_or_after(t);
        if let Some(p) = self.points.get(i).filter(|p| p.time == t) {
            if self.usable(p, cfg) {
                let severity = convert::status_code(p.quality);
                return Some((Self::number(p)?, severity, StatusCodeValueType::Raw));
            }
        }
        let mut skipped = false;
        let before = self.points[..i].iter().rev().find(|p| {
            let u = self.usable(p, cfg);
            skipped |= !u;
            u
        })?;
        let after = self.points[i..].iter().find(|p| {
            let u = self.usable(p, cfg) && p.time > t;
            skipped |= !u && p.time > t;
            u
        });
        let vb = Self::number(before)?;
        let uncertain =
            skipped || !before.quality.is_good() || after.is_some_and(|a| !a.quality.is_good());
        let (value, severity) = match after {
            Some(a) => {
                let va = Self::number(a)?;
                let v = if self.stepped {
                    vb
                } else {
                    vb + (va - vb) * (t - before.time) as f64 / (a.time - before.time) as f64
                };
                (
                    v,
                    if uncertain {
                        StatusCode::UncertainDataSubNormal
                    } else {
                        StatusCode::Good
                    },
                )
            }
            None => {
                // Past the data: held, or the line through the last two usable samples.
                let v = if cfg.sloped_extrapolation && !self.stepped {
                    let prev = self.points[..i]
                        .iter()
                        .rev()
                        .filter(|p| self.usable(p, cfg) && p.time < before.time)
                        .find_map(|p| Self::number(p).map(|v| (p.time, v)));
                    match prev {
                        Some((tp, vp)) => {
                            vb + (vb - vp) * (t - before.time) as f64 / (before.time - tp) as f64
                        }
                        None => vb,
                    }
                } else {
                    vb
                };
                (v, StatusCode::UncertainDataSubNormal)
            }
        };
        Some((value, severity, StatusCodeValueType::Interpolated))
    }

    /// The result of `agg` over `iv`.
    pub fn compute(&self, agg: Aggregate, iv: &Interval, cfg: &Config) -> DataValue {
        if self.textual && agg.numeric() {
            return result(iv.stamp, None, StatusCode::BadAggregateNotSupported);
        }
        let from = self.at_or_after(iv.lo);
        let to = self.at_or_after(iv.hi.saturating_add(1));
        let inside = &self.points[from..to];
        let total = inside.len();
        let good = inside.iter().filter(|p| self.usable(p, cfg)).count();
        let partial = self.partial(iv);
        let with_partial = |code: StatusCode| code.set_partial(partial && !code.is_bad());
        let calculated = StatusCodeValueType::Calculated;
        match agg {
            Aggregate::Interpolative => match self.value_at(iv.lo, cfg) {
                Some((v, severity, kind)) => {
                    result(iv.stamp, Some(Variant::Double(v)), status(severity, kind))
                }
                None => no_data(iv.stamp),
            },
            Aggregate::Average => {
                let sum: f64 = inside
                    .iter()
                    .filter(|p| self.usable(p, cfg))
                    .filter_map(Self::number)
                    .sum();
                if good == 0 {
                    return no_data(iv.stamp);
                }
                let code = self.data_status(good, total, cfg);
                result(
                    iv.stamp,
                    Some(Variant::Double(sum / good as f64)),
                    status(code, calculated),
                )
            }
            Aggregate::TimeAverage => self.time_average(iv, cfg, inside, partial),
            Aggregate::Minimum | Aggregate::Maximum => {
                let max = agg == Aggregate::Maximum;
                let mut best: Option<(&Point, f64, usize)> = None;
                for p in inside.iter().filter(|p| self.usable(p, cfg)) {
                    let Some(v) = Self::number(p) else { continue };
                    best = match best {
                        None => Some((p, v, 1)),
                        Some((bp, bv, n)) if v == bv => Some((bp, bv, n + 1)),
                        Some(b) if (v > b.1) == max => Some((p, v, 1)),
                        keep => keep,
                    };
                }
                let Some((p, _, n)) = best else {
                    return no_data(iv.stamp);
                };
                let severity = if good == total {
                    StatusCode::Good
                } else {
                    StatusCode::UncertainDataSubNormal
                };
                let kind = if p.time == iv.lo {
                    StatusCodeValueType::Raw
                } else {
                    calculated
                };
                let code = with_partial(status(severity, kind)).set_multi_value(n > 1);
                result(iv.stamp, p.value.as_ref().map(convert::variant), code)
            }
            Aggregate::Count => {
                if self.outside_data(iv) {
                    return no_data(iv.stamp);
                }
                // An empty interval inside the data is a Good zero; one of Bad samples only
                // has no count (Part 13 Annex A).
                let code = if total == 0 {
                    StatusCode::Good
                } else if inside.iter().all(|p| p.quality.is_bad()) {
                    StatusCode::Bad
                } else {
                    self.data_status(good, total, cfg)
                };
                let value = Variant::Int32(i32::try_from(good).unwrap_or(i32::MAX));
                result(
                    iv.stamp,
                    Some(value),
                    with_partial(status(code, calculated)),
                )
            }
            Aggregate::Start | Aggregate::End => {
                let p = if agg == Aggregate::Start {
                    inside.first()
                } else {
                    inside.last()
                };
                let Some(p) = p else {
                    return no_data(iv.stamp);
                };
                let code = with_partial(status(
                    convert::status_code(p.quality),
                    StatusCodeValueType::Raw,
                ));
                result(p.time, p.value.as_ref().map(convert::variant), code)
            }
            Aggregate::Delta => {
                let mut usable = inside.iter().filter(|p| self.usable(p, cfg));
                let (Some(first), last) = (usable.next(), usable.next_back()) else {
                    return no_data(iv.stamp);
                };
                let last = last.unwrap_or(first);
                let (Some(a), Some(b)) = (Self::number(first), Self::number(last)) else {
                    return no_data(iv.stamp);
                };
                let severity = if good == total {
                    StatusCode::Good
                } else {
                    StatusCode::UncertainDataSubNormal
                };
                let code = with_partial(status(severity, calculated));
                result(iv.stamp, Some(Variant::Double(b - a)), code)
            }
        }
    }

    /// Area under the line (or steps) through the usable samples, from the interpolated
    /// value at the interval's start to the one at its end, over the interval's width.
    fn time_average(
        &self,
        iv: &Interval,
        cfg: &Config,
        inside: &[Point],
        partial: bool,
    ) -> DataValue {
        let end = iv.hi.saturating_add(1);
        let mut knots: Vec<(i64, f64)> = Vec::with_capacity(inside.len() + 2);
        let mut uncertain = false;
        // Without a start bound the interval counts from its first usable sample.
        if let Some((v, s, _)) = self.value_at(iv.lo, cfg) {
            uncertain |= !s.is_good();
            knots.push((iv.lo, v));
        }
        for p in inside {
            if !self.usable(p, cfg) {
                uncertain = true;
                continue;
            }
            uncertain |= !p.quality.is_good();
            if let Some(v) = Self::number(p) {
                if knots.last().is_none_or(|k| k.0 < p.time) {
                    knots.push((p.time, v));
                }
            }
        }
        if knots.is_empty() {
            return no_data(iv.stamp);
        }
        if let Some((v, s, _)) = self.value_at(end, cfg) {
            uncertain |= !s.is_good();
            knots.push((end, v));
        } else if let Some(&(t, v)) = knots.last() {
            knots.push((end.max(t), v));
        }
        let width = (end - knots[0].0) as f64;
        let area: f64 = knots
            .windows(2)
            .map(|w| {
                let ((t0, v0), (t1, v1)) = (w[0], w[1]);
                let dt = (t1 - t0) as f64;
                if self.stepped {
                    v0 * dt
                } else {
                    (v0 + v1) / 2.0 * dt
                }
            })
            .sum();
        let value = if width > 0.0 {
            area / width
        } else {
            knots[0].1
        };
        let severity = if uncertain {
            StatusCode::UncertainDataSubNormal
        } else {
            StatusCode::Good
        };
        let code = status(severity, StatusCodeValueType::Calculated).set_partial(partial);
        result(iv.stamp, Some(Variant::Double(value)), code)
    }
}

#[cfg(test)]
#[path = "aggregates_tests.rs"]
mod tests;
