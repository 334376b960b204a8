//! The protobuf bytes of the metrics the node writes most, DDATA and journal records,
//! written straight into the payload buffer.
//!
//! The general path ([`codec::metric`] into a `sparkplug_rs` `Metric`, then
//! [`codec::encode`]) builds a large struct per sample, allocates its name and properties,
//! and walks it twice (size, then write); profiled at 1 M samples/s it was most of the
//! edge node's time. These functions write the same bytes, field for field in the order
//! the protobuf crate writes them, which the tests hold them to. Births, deaths, commands
//! and replays keep the general path.
//!
//! [`codec::metric`]: super::codec::metric
//! [`codec::encode`]: super::codec::encode

use uaedge_driver::Value;

use super::codec::{self, MetricSpec, QUALITY_PROPERTY, UNITS_PROPERTY};

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Payload field 1, its timestamp; comes before the metrics.
pub fn payload_timestamp(out: &mut Vec<u8>, ms: u64) {
    key(out, 1, VARINT);
    varint(out, ms);
}

/// Payload field 3, its seq; comes after the metrics.
pub fn payload_seq(out: &mut Vec<u8>, seq: u64) {
    key(out, 3, VARINT);
    varint(out, seq);
}

/// Appends `spec` as one metric of a payload (field 2). Its timestamp is `timestamp`, not
/// `spec.time`: ms on the wire, µs in the journal. `scratch` is reused from call to call so
/// that a batch allocates nothing per metric.
pub fn metric(out: &mut Vec<u8>, scratch: &mut Vec<u8>, spec: &MetricSpec<'_>, timestamp: u64) {
    scratch.clear();
    let m = scratch;
    if let Some(name) = spec.name {
        bytes(m, 1, name.as_bytes());
    }
    if let Some(alias) = spec.alias {
        key(m, 2, VARINT);
        varint(m, alias);
    }
    key(m, 3, VARINT);
    varint(m, timestamp);
    key(m, 4, VARINT);
    varint(m, codec::sp_type(spec.data_type) as u64);
    if spec.value.is_none() {
        key(m, 7, VARINT);
        varint(m, 1);
    }
    if spec.quality.is_some() || spec.units.is_some() {
        let props = properties(spec.quality, spec.units);
        bytes(m, 9, &props);
    }
    if let Some(v) = spec.value {
        value(m, v);
    }
    bytes(out, 2, m);
}

/// The Quality and engUnit properties: every key (field 1), then every value (field 2).
/// Rare on the hot path (a Good sample has neither), so it may allocate.
fn properties(quality: Option<i32>, units: Option<&str>) -> Vec<u8> {
    let mut set = Vec::new();
    if quality.is_some() {
        bytes(&mut set, 1, QUALITY_PROPERTY.as_bytes());
    }
    if units.is_some() {
        bytes(&mut set, 1, UNITS_PROPERTY.as_bytes());
    }
    let mut value = Vec::new();
    if let Some(q) = quality {
        key(&mut value, 1, VARINT);
        varint(&mut value, sparkplug_rs::DataType::Int32 as u64);
        key(&mut value, 3, VARINT);
        varint(&mut value, u64::from(q as u32));
        bytes(&mut set, 2, &value);
    }
    if let Some(u) = units {
        value.clear();
        key(&mut value, 1, VARINT);
        varint(&mut value, sparkplug_rs::DataType::String as u64);
        bytes(&mut value, 8, u.as_bytes());
        bytes(&mut set, 2, &value);
    }
    set
}

/// The value, in the field [`codec::to_metric_value`] puts it.
fn value(m: &mut Vec<u8>, v: &Value) {
    let int = |m: &mut Vec<u8>, x: u32| {
        key(m, 10, VARINT);
        varint(m, u64::from(x));
    };
    let long = |m: &mut Vec<u8>, x: u64| {
        key(m, 11, VARINT);
        varint(m, x);
    };
    match v {
        Value::Boolean(b) => {
            key(m, 14, VARINT);
            varint(m, u64::from(*b));
        }
        Value::Int8(x) => int(m, i32::from(*x) as u32),
        Value::Int16(x) => int(m, i32::from(*x) as u32),
        Value::Int32(x) => int(m, *x as u32),
        Value::UInt8(x) => int(m, u32::from(*x)),
        Value::UInt16(x) => int(m, u32::from(*x)),
        Value::UInt32(x) => int(m, *x),
        Value::Int64(x) => long(m, *x as u64),
        Value::UInt64(x) => long(m, *x),
        Value::DateTime(t) => long(m, t.as_millis() as u64),
        Value::Float(x) => {
            key(m, 12, FIXED32);
            m.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Double(x) => {
            key(m, 13, FIXED64);
            m.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::String(s) => bytes(m, 15, s.as_bytes()),
    }
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, field << 3 | wire_type);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use uaedge_driver::{BadReason, DataType, Quality, Timestamp, UncertainReason};

    fn values() -> Vec<Option<Value>> {
        vec![
            None,
            Some(Value::Boolean(true)),
            Some(Value::Boolean(false)),
            Some(Value::Int8(-1)),
            Some(Value::Int8(127)),
            Some(Value::Int16(-300)),
            Some(Value::Int32(i32::MIN)),
            Some(Value::Int32(0)),
            Some(Value::Int64(-5_000_000_000)),
            Some(Value::Int64(i64::MAX)),
            Some(Value::UInt8(250)),
            Some(Value::UInt16(65000)),
            Some(Value::UInt32(u32::MAX)),
            Some(Value::UInt64(u64::MAX)),
            Some(Value::UInt64(0)),
            Some(Value::Float(1.5)),
            Some(Value::Float(f32::NAN)),
            Some(Value::Float(-0.0)),
            Some(Value::Double(-2.25)),
            Some(Value::Double(f64::INFINITY)),
            Some(Value::String(String::new())),
            Some(Value::String("Überdruck ✓ ".repeat(20))),
            Some(Value::DateTime(Timestamp::from_millis(1_700_000_000_123))),
            Some(Value::DateTime(Timestamp::from_millis(-5))),
        ]
    }

    /// The same metric through the general path: a struct, then protobuf.
    fn general(
        spec: &MetricSpec<'_>,
        timestamp: u64,
        seq: Option<u64>,
        ts: Option<u64>,
    ) -> Vec<u8> {
        let mut m = codec::metric(spec);
        m.timestamp = Some(timestamp);
        let mut p = sparkplug_rs::Payload::new();
        p.metrics = vec![m];
        p.seq = seq;
        p.timestamp = ts;
        codec::encode(&p)
    }

    #[test]
    fn every_metric_is_byte_for_byte_what_the_protobuf_crate_writes() {
        let qualities = [
            Quality::Good,
            Quality::Uncertain(UncertainReason::LastUsableValue),
            Quality::Bad(BadReason::CommFailure),
        ];
        let names = [None, Some("line/temperature"), Some("")];
        let mut scratch = Vec::new();
        let mut checked = 0;
        for value in values() {
            let data_type = value.as_ref().map_or(DataType::Double, Value::data_type);
            for quality in qualities {
                for name in names {
                    for units in [None, Some("°C")] {
                        for alias in [None, Some(0), Some(1 << 40)] {
                            let spec = MetricSpec {
                                name,
                                alias,
                                data_type,
                                value: value.as_ref(),
                                quality: codec::data_quality(quality),
                                units,
                                time: Timestamp::from_millis(1_700_000_000_000),
                            };
                            for timestamp in [0, 1_700_000_000_000_000, u64::MAX] {
                                let mut out = Vec::new();
                                payload_timestamp(&mut out, 1_700_000_000_999);
                                metric(&mut out, &mut scratch, &spec, timestamp);
                                payload_seq(&mut out, 255);
                                let want =
                                    general(&spec, timestamp, Some(255), Some(1_700_000_000_999));
                                assert_eq!(
                                    out, want,
                                    "{value:?} {quality:?} {name:?} {units:?} {alias:?}"
                                );
                                let mut bare = Vec::new();
                                metric(&mut bare, &mut scratch, &spec, timestamp);
                                assert_eq!(bare, general(&spec, timestamp, None, None));
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 3000, "{checked}");
    }

    #[test]
    fn many_metrics_in_one_payload_decode_as_written() {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        payload_timestamp(&mut out, 7);
        let all = values();
        for (i, v) in all.iter().enumerate() {
            let spec = MetricSpec {
                name: None,
                alias: Some(i as u64),
                data_type: v.as_ref().map_or(DataType::Int32, Value::data_type),
                value: v.as_ref(),
                quality: None,
                units: None,
                time: Timestamp::from_millis(0),
            };
            metric(&mut out, &mut scratch, &spec, i as u64);
        }
        payload_seq(&mut out, 3);
        let p = codec::decode(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.timestamp, p.seq, p.metrics.len()),
            (Some(7), Some(3), all.len())
        );
        for (i, m) in p.metrics.iter().enumerate() {
            assert_eq!((m.alias, m.timestamp), (Some(i as u64), Some(i as u64)));
        }
    }
}
