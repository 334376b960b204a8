//! The one-to-one mapping between the model and OPC UA's built-in types: data types,
//! values, qualities and timestamps.

use opcua::types::{
    DataTypeId, DataValue, DateTime, StatusCode, TimestampsToReturn, UAString, Variant,
};
use uaedge_driver::{BadReason, DataType, Quality, Timestamp, UncertainReason, Value};

use crate::model::{TagId, TagState};

/// 100 ns ticks between 1601-01-01 (OPC UA's epoch) and 1970-01-01 (the model's).
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

pub fn data_type_id(t: DataType) -> DataTypeId {
    match t {
        DataType::Boolean => DataTypeId::Boolean,
        DataType::Int8 => DataTypeId::SByte,
        DataType::Int16 => DataTypeId::Int16,
        DataType::Int32 => DataTypeId::Int32,
        DataType::Int64 => DataTypeId::Int64,
        DataType::UInt8 => DataTypeId::Byte,
        DataType::UInt16 => DataTypeId::UInt16,
        DataType::UInt32 => DataTypeId::UInt32,
        DataType::UInt64 => DataTypeId::UInt64,
        DataType::Float => DataTypeId::Float,
        DataType::Double => DataTypeId::Double,
        DataType::String => DataTypeId::String,
        DataType::DateTime => DataTypeId::DateTime,
    }
}

pub fn status_code(q: Quality) -> StatusCode {
    match q {
        Quality::Good => StatusCode::Good,
        Quality::Uncertain(UncertainReason::LastUsableValue) => {
            StatusCode::UncertainLastUsableValue
        }
        Quality::Bad(BadReason::NotConnected) => StatusCode::BadNotConnected,
        Quality::Bad(BadReason::CommFailure) => StatusCode::BadCommunicationError,
        Quality::Bad(BadReason::DeviceFailure) => StatusCode::BadDeviceFailure,
        Quality::Bad(BadReason::ConfigError) => StatusCode::BadConfigurationError,
        Quality::Bad(BadReason::OutOfService) => StatusCode::BadOutOfService,
    }
}

/// Model time to OPC UA time, clamped to the range OPC UA can carry (1601..9999) rather
/// than failing on a device clock gone wild.
pub fn date_time(t: Timestamp) -> DateTime {
    let ticks = t
        .as_micros()
        .checked_mul(10)
        .and_then(|t| t.checked_add(UNIX_EPOCH_TICKS))
        .unwrap_or(if t.as_micros() < 0 { 0 } else { i64::MAX });
    DateTime::from(ticks.clamp(0, DateTime::endtimes_ticks()))
}

pub fn timestamp(d: &DateTime) -> Timestamp {
    Timestamp((d.checked_ticks().saturating_sub(UNIX_EPOCH_TICKS)) / 10)
}

pub fn variant(v: &Value) -> Variant {
    match v {
        Value::Boolean(x) => Variant::Boolean(*x),
        Value::Int8(x) => Variant::SByte(*x),
        Value::Int16(x) => Variant::Int16(*x),
        Value::Int32(x) => Variant::Int32(*x),
        Value::Int64(x) => Variant::Int64(*x),
        Value::UInt8(x) => Variant::Byte(*x),
        Value::UInt16(x) => Variant::UInt16(*x),
        Value::UInt32(x) => Variant::UInt32(*x),
        Value::UInt64(x) => Variant::UInt64(*x),
        Value::Float(x) => Variant::Float(*x),
        Value::Double(x) => Variant::Double(*x),
        Value::String(s) => Variant::String(UAString::from(s.as_str())),
        Value::DateTime(t) => Variant::DateTime(Box::new(date_time(*t))),
    }
}

/// A client's value as a model value; `None` for types the model does not have (arrays,
/// structures, …), which the write refuses with BadTypeMismatch.
pub fn model_value(v: &Variant) -> Option<Value> {
    Some(match v {
        Variant::Boolean(x) => Value::Boolean(*x),
        Variant::SByte(x) => Value::Int8(*x),
        Variant::Int16(x) => Value::Int16(*x),
        Variant::Int32(x) => Value::Int32(*x),
        Variant::Int64(x) => Value::Int64(*x),
        Variant::Byte(x) => Value::UInt8(*x),
        Variant::UInt16(x) => Value::UInt16(*x),
        Variant::UInt32(x) => Value::UInt32(*x),
        Variant::UInt64(x) => Value::UInt64(*x),
        Variant::Float(x) => Value::Float(*x),
        Variant::Double(x) => Value::Double(*x),
        Variant::String(s) => Value::String(s.as_ref().to_string()),
        Variant::DateTime(d) => Value::DateTime(timestamp(d)),
        _ => return None,
    })
}

/// A tag's state as OPC UA reports it. A Bad value carries no value: OPC UA Part 4 (7.7)
/// says a client must ignore it and the server shall set it to null, and it makes the
/// status change visible to subscriptions without a filter, which compare values only.
pub fn data_value(
    value: Option<&Value>,
    quality: Quality,
    source: Timestamp,
    server: Timestamp,
) -> DataValue {
    let value = if quality.is_bad() {
        None
    } else {
        value.map(variant)
    };
    DataValue {
        value,
        status: Some(status_code(quality)),
        source_timestamp: Some(date_time(source)),
        source_picoseconds: None,
        server_timestamp: Some(date_time(server)),
        server_picoseconds: None,
    }
}

pub fn state_value(s: &TagState) -> DataValue {
    data_value(s.value.as_ref(), s.quality, s.source_time, s.server_time)
}

/// A tag's value from the table's states, with the timestamps the client asked for.
pub fn tag_value(states: &[TagState], tag: TagId, ttr: TimestampsToReturn) -> DataValue {
    match states.get(tag.index()) {
        Some(s) => apply_timestamps(state_value(s), ttr),
        None => status_only(StatusCode::BadNodeIdUnknown),
    }
}

/// A value-less answer: the status says why.
pub fn status_only(code: StatusCode) -> DataValue {
    DataValue {
        status: Some(code),
        ..Default::default()
    }
}

/// Drops the timestamps a client did not ask for.
pub fn apply_timestamps(mut dv: DataValue, ttr: TimestampsToReturn) -> DataValue {
    if matches!(
        ttr,
        TimestampsToReturn::Neither | TimestampsToReturn::Server
    ) {
        dv.source_timestamp = None;
        dv.source_picoseconds = None;
    }
    if matches!(
        ttr,
        TimestampsToReturn::Neither | TimestampsToReturn::Source
    ) {
        dv.server_timestamp = None;
        dv.server_picoseconds = None;
    }
    dv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_clamp() {
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(timestamp(&date_time(t)), t);
        assert_eq!(date_time(Timestamp(i64::MIN)).checked_ticks(), 0);
        assert_eq!(
            date_time(Timestamp(i64::MAX)).checked_ticks(),
            DateTime::endtimes_ticks()
        );
    }

    #[test]
    fn every_type_maps_both_ways() {
        let values = [
            Value::Boolean(true),
            Value::Int8(-8),
            Value::Int16(-16),
            Value::Int32(-32),
            Value::Int64(-64),
            Value::UInt8(8),
            Value::UInt16(16),
            Value::UInt32(32),
            Value::UInt64(u64::MAX),
            Value::Float(1.5),
            Value::Double(2.5),
            Value::String("x".into()),
            Value::DateTime(Timestamp(1_000_000)),
        ];
        for v in values {
            assert_eq!(model_value(&variant(&v)).as_ref(), Some(&v));
        }
    }

    #[test]
    fn bad_values_are_null() {
        let dv = data_value(
            Some(&Value::Int16(1)),
            Quality::Bad(BadReason::NotConnected),
            Timestamp(0),
            Timestamp(0),
        );
        assert_eq!(dv.value, None);
        assert_eq!(dv.status, Some(StatusCode::BadNotConnected));
    }
}
