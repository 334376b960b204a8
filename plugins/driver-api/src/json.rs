//! How the model's values and times are written as JSON text and read back from it, in
//! one place: the web API's tag, history and audit bodies, its change stream (encoded
//! straight into the frame, without a `serde_json::Value` of its own), `uaedge history`
//! and the `exec` driver's protocol all say the same.

use std::fmt;

use crate::{DataType, Timestamp, Value};
use serde::ser::{Serialize, Serializer};

/// A value as uaedge writes it in JSON everywhere (the web API and its change stream,
/// `uaedge history`): numbers as numbers, a float with no fraction as the integer it is,
/// NaN and infinities as text, times as RFC 3339, no value as `null`.
pub struct ValueJson<'a>(pub &'a Option<Value>);

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

/// A float with no fraction that fits an integer, as that integer: 42.0 is written `42`,
/// as a float's shortest text is, and as OPC UA clients show a whole Double.
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

/// µs since the epoch as RFC 3339 in UTC with six decimals and `Z`; a year past four
/// digits with its sign (as chrono writes it); out of chrono's range, the bare number.
pub struct Rfc3339(pub i64);

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

/// An RFC 3339 time (any offset) as the model's timestamp.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.timestamp_micros()))
}

/// `value` as the model's value of type `to`, with the conversion rules every driver uses
/// ([`Value::convert`]): a JSON bool, number or string, and for a `datetime` tag an
/// RFC 3339 text. The error says what did not fit.
pub fn value_from_json(value: &serde_json::Value, to: DataType) -> Result<Value, String> {
    let given = match value {
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int64(i),
            (None, Some(u), _) => Value::UInt64(u),
            (None, None, Some(x)) => Value::Double(x),
            _ => return Err(format!("{n} is not a number uaedge can hold")),
        },
        serde_json::Value::String(s) if to == DataType::DateTime => Value::DateTime(
            parse_rfc3339(s).map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))?,
        ),
        // NaN and the infinities as ValueJson writes them: JSON has no number for them.
        serde_json::Value::String(s)
            if to.is_float() && matches!(s.as_str(), "NaN" | "inf" | "-inf") =>
        {
            Value::Double(s.parse().unwrap_or(f64::NAN))
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => return Err(format!("a {to} tag takes no {other}")),
    };
    given.convert(to).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{value_from_json, Rfc3339, ValueJson};
    use crate::{DataType, Timestamp, Value};

    #[test]
    fn times_are_rfc3339_in_utc_with_microseconds() {
        for (us, text) in [
            (1, "1970-01-01T00:00:00.000001Z"),
            (1_796_000_000_123_456, "2026-11-30T00:53:20.123456Z"),
            (1_796_000_000_000_000, "2026-11-30T00:53:20.000000Z"),
            (946_684_799_999_999, "1999-12-31T23:59:59.999999Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (253_402_300_800_000_000, "+10000-01-01T00:00:00.000000Z"),
            (i64::MAX, "9223372036854775807"),
        ] {
            assert_eq!(Rfc3339(us).to_string(), text, "{us}");
            // chrono writes the same where it can.
            if let Some(t) = chrono::DateTime::from_timestamp_micros(us) {
                assert_eq!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), text);
            }
        }
    }

    #[test]
    fn values_are_written_as_their_type_says() {
        let cases = [
            (None, "null"),
            (Some(Value::Boolean(true)), "true"),
            (Some(Value::Int8(-8)), "-8"),
            (Some(Value::Int64(i64::MIN)), "-9223372036854775808"),
            (Some(Value::UInt64(u64::MAX)), "18446744073709551615"),
            (Some(Value::Float(0.1)), "0.1"),
            (Some(Value::Float(1e30)), "1e+30"),
            (Some(Value::Float(42.0)), "42"),
            (Some(Value::Double(-3.0)), "-3"),
            (Some(Value::Double(1e15)), "1000000000000000"),
            (Some(Value::Double(1e20)), "1e+20"),
            (Some(Value::Double(-0.0)), "-0.0"),
            (Some(Value::Float(f32::NAN)), "\"NaN\""),
            (Some(Value::Double(-120_000.4)), "-120000.4"),
            (Some(Value::Double(f64::INFINITY)), "\"inf\""),
            (
                Some(Value::String("a \"quoted\"\nline".into())),
                r#""a \"quoted\"\nline""#,
            ),
            (
                Some(Value::DateTime(Timestamp(1_796_000_000_123_456))),
                "\"2026-11-30T00:53:20.123456Z\"",
            ),
        ];
        for (v, text) in cases {
            assert_eq!(
                serde_json::to_string(&ValueJson(&v)).ok().as_deref(),
                Some(text),
                "{v:?}"
            );
        }
    }

    #[test]
    fn json_values_take_the_tags_type() {
        let v = |j: serde_json::Value, t| value_from_json(&j, t);
        assert_eq!(v(2.into(), DataType::Double), Ok(Value::Double(2.0)));
        assert_eq!(v(true.into(), DataType::Boolean), Ok(Value::Boolean(true)));
        assert_eq!(v(300.into(), DataType::UInt16), Ok(Value::UInt16(300)));
        assert!(v(70_000.into(), DataType::UInt16).is_err());
        assert!(v((-1).into(), DataType::UInt8).is_err());
        assert!(v("x".into(), DataType::Int32).is_err());
        assert!(v(serde_json::json!([1]), DataType::Int32).is_err());
        assert_eq!(
            v("1970-01-01T00:00:01Z".into(), DataType::DateTime),
            Ok(Value::DateTime(Timestamp(1_000_000)))
        );
        assert!(v("yesterday".into(), DataType::DateTime).is_err());
        assert_eq!(
            v("-inf".into(), DataType::Float),
            Ok(Value::Float(f32::NEG_INFINITY))
        );
        assert!(matches!(v("NaN".into(), DataType::Double), Ok(Value::Double(x)) if x.is_nan()));
        assert_eq!(
            v("NaN".into(), DataType::String),
            Ok(Value::String("NaN".into()))
        );
        assert!(v("inf".into(), DataType::Int32).is_err());
        assert_eq!(
            v(u64::MAX.into(), DataType::UInt64),
            Ok(Value::UInt64(u64::MAX))
        );
    }
}
