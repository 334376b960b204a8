//! The change stream's `tags` frame: a JSON array of `{path, value, quality, source_time}`,
//! written in one pass. A gateway of 100,000 tags a second encodes every change once (per
//! distinct filter), so the path, quality and time go straight into the frame through
//! `collect_str`, and a value as the number it is, instead of each becoming a string of
//! its own (and a number being printed and parsed back) first.

use std::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use uaedge_driver::Value;

use crate::model::{Sample, TagDef, TagTable};

/// The frame of the `samples` whose tags `wanted` accepts; `None` when it accepts none.
pub(super) fn tags_json(
    table: &TagTable,
    samples: &[Sample],
    wanted: impl Fn(&TagDef) -> bool,
) -> Option<String> {
    let list: Vec<Change<'_>> = samples
        .iter()
        .filter_map(|sample| {
            let def = table.tag(sample.tag)?;
            wanted(def).then_some(Change { def, sample })
        })
        .collect();
    if list.is_empty() {
        return None;
    }
    serde_json::to_string(&list).ok()
}

struct Change<'a> {
    def: &'a TagDef,
    sample: &'a Sample,
}

impl Serialize for Change<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Change", 4)?;
        m.serialize_field("path", &Shown(&self.def.path))?;
        m.serialize_field("value", &ValueJson(&self.sample.value))?;
        m.serialize_field("quality", &Shown(&self.sample.quality))?;
        let us = self.sample.time.as_micros();
        m.serialize_field("source_time", &(us != 0).then_some(Rfc3339(us)))?;
        m.end()
    }
}

/// A `Display` written as a JSON string, escaped on the way, with no string of its own.
struct Shown<'a, T: fmt::Display>(&'a T);

impl<T: fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// A value as the API gives it everywhere (`crate::history::export::json_value`): numbers
/// as numbers, NaN and infinities as text, times as RFC 3339.
struct ValueJson<'a>(&'a Option<Value>);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(Value::Boolean(v)) => s.serialize_bool(*v),
            Some(Value::Int8(v)) => s.serialize_i64(i64::from(*v)),
            Some(Value::Int16(v)) => s.serialize_i64(i64::from(*v)),
            Some(Value::Int32(v)) => s.serialize_i64(i64::from(*v)),
            Some(Value::Int64(v)) => s.serialize_i64(*v),
            Some(Value::UInt8(v)) => s.serialize_u64(u64::from(*v)),
            Some(Value::UInt16(v)) => s.serialize_u64(u64::from(*v)),
            Some(Value::UInt32(v)) => s.serialize_u64(u64::from(*v)),
            Some(Value::UInt64(v)) => s.serialize_u64(*v),
            Some(Value::Float(v)) if v.is_finite() => match whole(f64::from(*v)) {
                Some(w) => w.serialize(s),
                None => s.serialize_f32(*v),
            },
            Some(Value::Double(v)) if v.is_finite() => match whole(*v) {
                Some(w) => w.serialize(s),
                None => s.serialize_f64(*v),
            },
            Some(v @ (Value::Float(_) | Value::Double(_))) => s.collect_str(v),
            Some(Value::String(v)) => s.serialize_str(v),
            Some(Value::DateTime(t)) => s.collect_str(&Rfc3339(t.as_micros())),
        }
    }
}

/// A float with no fraction that fits an integer, as that integer: `json_value` prints
/// 42.0 as `42`, and the stream must say what `/api/v1/tags` says.
fn whole(v: f64) -> Option<Whole> {
    // 2^64 and 2^63: the first floats past u64 and i64.
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    const I64_START: f64 = -9_223_372_036_854_775_808.0;
    if v.fract() != 0.0 || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    if (0.0..U64_END).contains(&v) {
        Some(Whole::U(v as u64))
    } else if (I64_START..0.0).contains(&v) {
        Some(Whole::I(v as i64))
    } else {
        None
    }
}

enum Whole {
    U(u64),
    I(i64),
}

impl Serialize for Whole {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Whole::U(v) => s.serialize_u64(v),
            Whole::I(v) => s.serialize_i64(v),
        }
    }
}

/// µs since the epoch as RFC 3339 in UTC with µs, as `crate::history::export::rfc3339`
/// writes it.
struct Rfc3339(i64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(t) => {
                // As chrono writes years past four digits: with their sign.
                let year = t.year();
                if (0..=9999).contains(&year) {
                    write!(f, "{year:04}")?;
                } else {
                    write!(f, "{year:+05}")?;
                }
                write!(
                    f,
                    "-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.timestamp_subsec_micros()
                )
            }
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Rfc3339;
    use crate::history::export::{json_value, rfc3339};
    use uaedge_driver::{Timestamp, Value};

    #[test]
    fn times_are_written_as_the_api_writes_them_elsewhere() {
        for us in [
            1,
            1_796_000_000_123_456,
            1_796_000_000_000_000,
            946_684_799_999_999,
        ] {
            assert_eq!(Rfc3339(us).to_string(), rfc3339(us), "{us}");
        }
    }

    #[test]
    fn values_are_written_as_the_api_writes_them_elsewhere() {
        let values = [
            None,
            Some(Value::Boolean(true)),
            Some(Value::Int8(-8)),
            Some(Value::Int64(i64::MIN)),
            Some(Value::UInt64(u64::MAX)),
            Some(Value::Float(0.1)),
            Some(Value::Float(1e30)),
            Some(Value::Float(42.0)),
            Some(Value::Double(-3.0)),
            Some(Value::Double(1e15)),
            Some(Value::Double(1e20)),
            Some(Value::Double(-0.0)),
            Some(Value::Float(f32::NAN)),
            Some(Value::Double(-120_000.4)),
            Some(Value::Double(f64::INFINITY)),
            Some(Value::String("a \"quoted\"\nline".into())),
            Some(Value::DateTime(Timestamp(1_796_000_000_123_456))),
        ];
        for v in values {
            let ours: serde_json::Value = serde_json::from_str(
                &serde_json::to_string(&super::ValueJson(&v)).unwrap_or_default(),
            )
            .unwrap_or_default();
            assert_eq!(ours, json_value(&v), "{v:?}");
        }
    }
}
