//! Model values ⇄ Sparkplug B metrics, and the payloads the node publishes.
//!
//! Integer encoding follows Sparkplug 3.0 (and Eclipse Tahu): Int8/16/32 and UInt8/16/32 go
//! in `int_value` (signed types sign-extended to 32 bits, then read as uint32), Int64 and
//! UInt64 in `long_value` (two's complement), DateTime in `long_value` as ms since the
//! epoch. The `Quality` property is an Int32 with 192 (Good), 64 (Uncertain) or 0 (Bad).

use sparkplug_rs::payload::{metric, property_value, Metric, PropertySet, PropertyValue};
use sparkplug_rs::protobuf::{Message, MessageField};
use sparkplug_rs::{DataType as SpType, Payload};
use uaedge_driver::{DataType, Quality, Timestamp, Value};

use super::aliases;
use crate::model::{TagId, TagTable};

/// A metric value that could not be turned into a model value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("metric has no value")]
    NoValue,
    #[error("metric datatype {0} is not supported")]
    UnsupportedType(u32),
    #[error("metric value does not match its datatype {0:?}")]
    Mismatch(DataType),
    #[error("value out of range for {0:?}")]
    OutOfRange(DataType),
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
}

pub const QUALITY_PROPERTY: &str = "Quality";
pub const UNITS_PROPERTY: &str = "engUnit";

/// The Sparkplug datatype of a model type (one-to-one by design).
pub fn sp_type(t: DataType) -> SpType {
    match t {
        DataType::Boolean => SpType::Boolean,
        DataType::Int8 => SpType::Int8,
        DataType::Int16 => SpType::Int16,
        DataType::Int32 => SpType::Int32,
        DataType::Int64 => SpType::Int64,
        DataType::UInt8 => SpType::UInt8,
        DataType::UInt16 => SpType::UInt16,
        DataType::UInt32 => SpType::UInt32,
        DataType::UInt64 => SpType::UInt64,
        DataType::Float => SpType::Float,
        DataType::Double => SpType::Double,
        DataType::String => SpType::String,
        DataType::DateTime => SpType::DateTime,
    }
}

/// The model type of a Sparkplug datatype code, where there is one (`Text` reads as String).
pub fn model_type(code: u32) -> Option<DataType> {
    Some(match code {
        1 => DataType::Int8,
        2 => DataType::Int16,
        3 => DataType::Int32,
        4 => DataType::Int64,
        5 => DataType::UInt8,
        6 => DataType::UInt16,
        7 => DataType::UInt32,
        8 => DataType::UInt64,
        9 => DataType::Float,
        10 => DataType::Double,
        11 => DataType::Boolean,
        12 | 14 => DataType::String,
        13 => DataType::DateTime,
        _ => return None,
    })
}

/// The metric value of a model value.
pub fn to_metric_value(v: &Value) -> metric::Value {
    use metric::Value as M;
    match v {
        Value::Boolean(b) => M::BooleanValue(*b),
        Value::Int8(x) => M::IntValue(i32::from(*x) as u32),
        Value::Int16(x) => M::IntValue(i32::from(*x) as u32),
        Value::Int32(x) => M::IntValue(*x as u32),
        Value::Int64(x) => M::LongValue(*x as u64),
        Value::UInt8(x) => M::IntValue(u32::from(*x)),
        Value::UInt16(x) => M::IntValue(u32::from(*x)),
        Value::UInt32(x) => M::IntValue(*x),
        Value::UInt64(x) => M::LongValue(*x),
        Value::Float(x) => M::FloatValue(*x),
        Value::Double(x) => M::DoubleValue(*x),
        Value::String(s) => M::StringValue(s.clone()),
        Value::DateTime(t) => M::LongValue(t.as_millis() as u64),
    }
}

/// A model value of type `t` from a metric value, strictly: the wire type must be the one
/// `t` uses, and narrow integers must fit.
pub fn from_metric_value(v: &metric::Value, t: DataType) -> Result<Value, CodecError> {
    use metric::Value as M;
    let range = || CodecError::OutOfRange(t);
    Ok(match (t, v) {
        (DataType::Boolean, M::BooleanValue(b)) => Value::Boolean(*b),
        // Signed narrow types arrive sign-extended to 32 bits; both the sign-extended and
        // the zero-extended forms are accepted (hosts differ), if the value fits.
        (DataType::Int8, M::IntValue(x)) => {
            Value::Int8(i8::try_from(*x as i32).or_else(|_| i8::try_from(*x).map_err(|_| range()))?)
        }
        (DataType::Int16, M::IntValue(x)) => Value::Int16(
            i16::try_from(*x as i32).or_else(|_| i16::try_from(*x).map_err(|_| range()))?,
        ),
        (DataType::Int32, M::IntValue(x)) => Value::Int32(*x as i32),
        (DataType::Int64, M::LongValue(x)) => Value::Int64(*x as i64),
        (DataType::UInt8, M::IntValue(x)) => Value::UInt8(u8::try_from(*x).map_err(|_| range())?),
        (DataType::UInt16, M::IntValue(x)) => {
            Value::UInt16(u16::try_from(*x).map_err(|_| range())?)
        }
        (DataType::UInt32, M::IntValue(x)) => Value::UInt32(*x),
        (DataType::UInt64, M::LongValue(x)) => Value::UInt64(*x),
        (DataType::Float, M::FloatValue(x)) => Value::Float(*x),
        (DataType::Double, M::DoubleValue(x)) => Value::Double(*x),
        (DataType::String, M::StringValue(s)) => Value::String(s.clone()),
        (DataType::DateTime, M::LongValue(ms)) => Value::DateTime(Timestamp::from_millis(
            i64::try_from(*ms).map_err(|_| range())?,
        )),
        _ => return Err(CodecError::Mismatch(t)),
    })
}

/// The value a command metric carries, in the type the metric declares (or `fallback`, the
/// tag's type, when it declares none).
pub fn command_value(m: &Metric, fallback: DataType) -> Result<Value, CodecError> {
    let t = match m.datatype {
        Some(code) => model_type(code).ok_or(CodecError::UnsupportedType(code))?,
        None => fallback,
    };
    let v = m.value.as_ref().ok_or(CodecError::NoValue)?;
    from_metric_value(v, t)
}

fn int_property(v: i32) -> PropertyValue {
    let mut p = PropertyValue::new();
    p.type_ = Some(SpType::Int32 as u32);
    p.value = Some(property_value::Value::IntValue(v as u32));
    p
}

fn string_property(v: &str) -> PropertyValue {
    let mut p = PropertyValue::new();
    p.type_ = Some(SpType::String as u32);
    p.value = Some(property_value::Value::StringValue(v.to_string()));
    p
}

/// One metric as the node publishes it.
pub struct MetricSpec<'a> {
    pub name: Option<&'a str>,
    pub alias: Option<u64>,
    pub data_type: DataType,
    pub value: Option<&'a Value>,
    /// Sparkplug quality code (192/64/0); `None` leaves the property out.
    pub quality: Option<i32>,
    pub units: Option<&'a str>,
    pub time: Timestamp,
}

pub fn metric(spec: &MetricSpec<'_>) -> Metric {
    let mut m = Metric::new();
    m.name = spec.name.map(str::to_string);
    m.alias = spec.alias;
    m.timestamp = Some(spec.time.as_millis().max(0) as u64);
    m.datatype = Some(sp_type(spec.data_type) as u32);
    match spec.value {
        Some(v) => m.value = Some(to_metric_value(v)),
        None => m.is_null = Some(true),
    }
    let mut props = PropertySet::new();
    if let Some(q) = spec.quality {
        props.keys.push(QUALITY_PROPERTY.to_string());
        props.values.push(int_property(q));
    }
    if let Some(u) = spec.units {
        props.keys.push(UNITS_PROPERTY.to_string());
        props.values.push(string_property(u));
    }
    if !props.keys.is_empty() {
        m.properties = MessageField::some(props);
    }
    m
}

/// The quality code a DDATA metric carries: the property is left out for Good (hosts read
/// its absence as Good), so steady data stays small.
pub fn data_quality(q: Quality) -> Option<i32> {
    (!q.is_good()).then_some(q.sparkplug_code())
}

/// A payload with `seq` (absent for NDEATH) and the current time.
pub fn payload(seq: Option<u8>, metrics: Vec<Metric>) -> Payload {
    let mut p = Payload::new();
    p.timestamp = Some(Timestamp::now().as_millis().max(0) as u64);
    p.seq = seq.map(u64::from);
    p.metrics = metrics;
    p
}

/// Marks metrics replayed from the store. The one place that knows how history is encoded:
/// Sparkplug 3.0 flags each metric `is_historical`; if the specification moves history to
/// separate payloads, only this function changes.
pub fn historical_payload(seq: u8, mut metrics: Vec<Metric>) -> Payload {
    for m in &mut metrics {
        m.is_historical = Some(true);
    }
    payload(Some(seq), metrics)
}

/// The `bdSeq` metric (Int64, as Eclipse Tahu and the 3.0 examples carry it).
pub fn bd_seq_metric(bd_seq: u8, alias: Option<u64>) -> Metric {
    metric(&MetricSpec {
        name: Some("bdSeq"),
        alias,
        data_type: DataType::Int64,
        value: Some(&Value::Int64(i64::from(bd_seq))),
        quality: None,
        units: None,
        time: Timestamp::now(),
    })
}

pub fn encode(p: &Payload) -> Vec<u8> {
    // Writing into a Vec cannot fail for well-formed messages; an empty payload is the
    // harmless fallback rather than a panic.
    p.write_to_bytes().unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<Payload, CodecError> {
    Payload::parse_from_bytes(bytes).map_err(|e| CodecError::Protobuf(e.to_string()))
}

/// Why a DCMD as a whole was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceCommandError {
    #[error("unknown device")]
    UnknownDevice,
    #[error(transparent)]
    Malformed(#[from] CodecError),
}

/// Why one metric of a DCMD was not turned into a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Neither its name nor its alias is a tag of the device.
    UnknownMetric {
        name: Option<String>,
        alias: Option<u64>,
    },
    ReadOnly(TagId),
    BadValue(TagId, CodecError),
}

/// A DCMD checked against the model: the writes it asks for, in payload order, and the
/// metrics refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceCommand {
    pub writes: Vec<(TagId, Value)>,
    pub refused: Vec<Refused>,
}

/// Decodes a DCMD payload for `device` and maps its metrics (by name, else by alias) to
/// writes to that device's tags. Pure, so that the fuzz target runs exactly this code.
pub fn device_command(
    table: &TagTable,
    device: &str,
    payload: &[u8],
) -> Result<DeviceCommand, DeviceCommandError> {
    let dev = table
        .devices()
        .iter()
        .find(|d| d.name == device)
        .map(|d| d.id)
        .ok_or(DeviceCommandError::UnknownDevice)?;
    let p = decode(payload)?;
    let mut out = DeviceCommand::default();
    for m in &p.metrics {
        let by_name = m
            .name
            .as_deref()
            .and_then(|n| table.find(&format!("{device}/{n}")));
        let by_alias = m
            .alias
            .and_then(aliases::tag)
            .filter(|id| table.tag(*id).is_some_and(|t| t.device == dev));
        let Some(tag) = by_name.or(by_alias).and_then(|id| table.tag(id)) else {
            out.refused.push(Refused::UnknownMetric {
                name: m.name.clone(),
                alias: m.alias,
            });
            continue;
        };
        if !tag.writable {
            out.refused.push(Refused::ReadOnly(tag.id));
            continue;
        }
        match command_value(m, tag.data_type) {
            Ok(v) => out.writes.push((tag.id, v)),
            Err(e) => out.refused.push(Refused::BadValue(tag.id, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_metric_value() {
        let values = [
            Value::Boolean(true),
            Value::Int8(-5),
            Value::Int16(-300),
            Value::Int32(-70000),
            Value::Int64(-5_000_000_000),
            Value::UInt8(250),
            Value::UInt16(65000),
            Value::UInt32(4_000_000_000),
            Value::UInt64(u64::MAX),
            Value::Float(1.5),
            Value::Double(-2.25),
            Value::String("x".into()),
            Value::DateTime(Timestamp::from_millis(1_700_000_000_123)),
        ];
        for v in values {
            let t = v.data_type();
            assert_eq!(from_metric_value(&to_metric_value(&v), t), Ok(v.clone()));
            assert_eq!(model_type(sp_type(t) as u32), Some(t));
        }
        // Int8 -1 is sign-extended on the wire, as Tahu does.
        assert_eq!(
            to_metric_value(&Value::Int8(-1)),
            metric::Value::IntValue(u32::MAX)
        );
    }

    #[test]
    fn commands_are_checked_strictly() {
        let mut m = Metric::new();
        m.datatype = Some(SpType::Boolean as u32);
        m.value = Some(metric::Value::IntValue(1));
        assert!(command_value(&m, DataType::Boolean).is_err());
        m.datatype = Some(SpType::UInt8 as u32);
        m.value = Some(metric::Value::IntValue(300));
        assert_eq!(
            command_value(&m, DataType::UInt8),
            Err(CodecError::OutOfRange(DataType::UInt8))
        );
        m.datatype = Some(SpType::DataSet as u32);
        assert!(command_value(&m, DataType::UInt8).is_err());
        m.datatype = None;
        m.value = None;
        assert_eq!(command_value(&m, DataType::UInt8), Err(CodecError::NoValue));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn a_dcmd_maps_to_writes_of_its_device_and_refuses_the_rest() {
        let config = crate::config::Config::parse(
            "t.yaml",
            r#"
node: { name: t }
devices:
  - name: press
    driver: modbus
    options: { transport: tcp, host: 127.0.0.1 }
    tags:
      - { name: setpoint, type: float32, address: "hr:0", writable: true }
      - { name: pressure, type: float32, address: "ir:0" }
  - name: mixer
    driver: modbus
    options: { transport: tcp, host: 127.0.0.1 }
    tags:
      - { name: speed, type: int16, address: "hr:0", writable: true }
"#,
        )
        .unwrap();
        let table = TagTable::new(config.device_defs, config.tag_defs);
        let id = |path: &str| table.find(path).unwrap();
        let metric = |name: Option<&str>, alias: Option<u64>, v: metric::Value| {
            let mut m = Metric::new();
            m.name = name.map(String::from);
            m.alias = alias;
            m.value = Some(v);
            m
        };
        let alias = |path: &str| aliases::of_tag(id(path));
        let bytes = encode(&payload(
            None,
            vec![
                metric(Some("setpoint"), None, metric::Value::FloatValue(1.5)),
                metric(
                    None,
                    Some(alias("press/setpoint")),
                    metric::Value::FloatValue(2.5),
                ),
                metric(Some("pressure"), None, metric::Value::FloatValue(3.0)),
                metric(None, Some(alias("mixer/speed")), metric::Value::IntValue(1)),
                metric(Some("setpoint"), None, metric::Value::BooleanValue(true)),
            ],
        ));
        let setpoint = id("press/setpoint");
        assert_eq!(
            device_command(&table, "press", &bytes),
            Ok(DeviceCommand {
                writes: vec![(setpoint, Value::Float(1.5)), (setpoint, Value::Float(2.5))],
                refused: vec![
                    Refused::ReadOnly(id("press/pressure")),
                    Refused::UnknownMetric {
                        name: None,
                        alias: Some(alias("mixer/speed"))
                    },
                    Refused::BadValue(setpoint, CodecError::Mismatch(DataType::Float)),
                ],
            })
        );
        assert_eq!(
            device_command(&table, "nosuch", &bytes),
            Err(DeviceCommandError::UnknownDevice)
        );
        assert!(matches!(
            device_command(&table, "press", &[0xFF]),
            Err(DeviceCommandError::Malformed(CodecError::Protobuf(_)))
        ));
    }
}
