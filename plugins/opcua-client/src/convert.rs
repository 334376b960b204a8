//! Between OPC UA's types and the model's: values, timestamps, status codes.

use opcua::types::{DataTypeId, DateTime, NodeId, StatusCode, UAString, Variant};
use uaedge_driver::{
    BadReason, DataType, LinkError, Quality, Timestamp, UncertainReason, Value, WriteError,
};

/// 100 ns ticks between 1601-01-01 (the OPC UA epoch) and 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

pub(crate) fn timestamp(t: &DateTime) -> Timestamp {
    Timestamp((t.ticks() - UNIX_EPOCH_TICKS).div_euclid(10))
}

pub(crate) fn date_time(t: Timestamp) -> DateTime {
    DateTime::from(t.0.saturating_mul(10).saturating_add(UNIX_EPOCH_TICKS))
}

/// The model value a variant carries, or `None` for an empty variant or a type the model
/// does not have (arrays, LocalizedText, ByteString …).
pub(crate) fn value(v: &Variant) -> Option<Value> {
    Some(match v {
        Variant::Boolean(x) => Value::Boolean(*x),
        Variant::SByte(x) => Value::Int8(*x),
        Variant::Byte(x) => Value::UInt8(*x),
        Variant::Int16(x) => Value::Int16(*x),
        Variant::UInt16(x) => Value::UInt16(*x),
        Variant::Int32(x) => Value::Int32(*x),
        Variant::UInt32(x) => Value::UInt32(*x),
        Variant::Int64(x) => Value::Int64(*x),
        Variant::UInt64(x) => Value::UInt64(*x),
        Variant::Float(x) => Value::Float(*x),
        Variant::Double(x) => Value::Double(*x),
        Variant::String(s) => Value::String(s.as_ref().to_string()),
        Variant::DateTime(t) => Value::DateTime(timestamp(t)),
        _ => return None,
    })
}

/// The variant for a value of the tag's declared type: the server checks the written
/// variant against the node's DataType, so it must be exactly that built-in type.
pub(crate) fn variant(v: &Value) -> Variant {
    match v {
        Value::Boolean(x) => Variant::Boolean(*x),
        Value::Int8(x) => Variant::SByte(*x),
        Value::UInt8(x) => Variant::Byte(*x),
        Value::Int16(x) => Variant::Int16(*x),
        Value::UInt16(x) => Variant::UInt16(*x),
        Value::Int32(x) => Variant::Int32(*x),
        Value::UInt32(x) => Variant::UInt32(*x),
        Value::Int64(x) => Variant::Int64(*x),
        Value::UInt64(x) => Variant::UInt64(*x),
        Value::Float(x) => Variant::Float(*x),
        Value::Double(x) => Variant::Double(*x),
        Value::String(s) => Variant::String(UAString::from(s.as_str())),
        Value::DateTime(t) => Variant::from(date_time(*t)),
    }
}

/// A built-in DataType node to the model type, for discovery.
pub(crate) fn data_type(id: &NodeId) -> Option<DataType> {
    let t = id.as_data_type_id().ok()?;
    Some(match t {
        DataTypeId::Boolean => DataType::Boolean,
        DataTypeId::SByte => DataType::Int8,
        DataTypeId::Byte => DataType::UInt8,
        DataTypeId::Int16 => DataType::Int16,
        DataTypeId::UInt16 => DataType::UInt16,
        DataTypeId::Int32 => DataType::Int32,
        DataTypeId::UInt32 => DataType::UInt32,
        DataTypeId::Int64 => DataType::Int64,
        DataTypeId::UInt64 => DataType::UInt64,
        DataTypeId::Float => DataType::Float,
        DataTypeId::Double => DataType::Double,
        DataTypeId::String => DataType::String,
        DataTypeId::DateTime | DataTypeId::UtcTime => DataType::DateTime,
        _ => return None,
    })
}

/// The quality of a value with this status. Statuses that say the tag itself is wrong
/// (unknown node, not readable) are configuration errors: the link is fine and the other
/// tags keep flowing.
pub(crate) fn quality(status: StatusCode) -> Quality {
    if status.is_good() {
        return Quality::Good;
    }
    if status.is_uncertain() {
        return Quality::Uncertain(UncertainReason::LastUsableValue);
    }
    Quality::Bad(bad_reason(status))
}

pub(crate) fn bad_reason(status: StatusCode) -> BadReason {
    use opcua::types::SubStatusCode as S;
    match status.sub_code() {
        S::BadNodeIdUnknown
        | S::BadNodeIdInvalid
        | S::BadAttributeIdInvalid
        | S::BadNotReadable
        | S::BadUserAccessDenied
        | S::BadTypeMismatch
        | S::BadIndexRangeInvalid
        | S::BadDataEncodingInvalid
        | S::BadDataEncodingUnsupported
        | S::BadMonitoredItemFilterUnsupported
        | S::BadMonitoredItemFilterInvalid
        | S::BadFilterNotAllowed
        | S::BadDeadbandFilterInvalid
        | S::BadConfigurationError
        | S::BadNoMatch
        | S::BadBrowseNameInvalid
        | S::BadTooManyMatches => BadReason::ConfigError,
        S::BadOutOfService => BadReason::OutOfService,
        S::BadNotConnected | S::BadNoCommunication | S::BadWaitingForInitialData => {
            BadReason::NotConnected
        }
        S::BadCommunicationError | S::BadTimeout => BadReason::CommFailure,
        _ => BadReason::DeviceFailure,
    }
}

/// A Write result to the driver API's answer.
pub(crate) fn write_result(status: StatusCode) -> Result<(), WriteError> {
    use opcua::types::SubStatusCode as S;
    if status.is_good() {
        return Ok(());
    }
    Err(match status.sub_code() {
        S::BadNotWritable => WriteError::NotWritable,
        S::BadUserAccessDenied => WriteError::Rejected("BadUserAccessDenied".into()),
        S::BadTypeMismatch => WriteError::TypeMismatch("BadTypeMismatch".into()),
        S::BadNotConnected | S::BadSessionIdInvalid | S::BadSessionClosed => {
            WriteError::Link(LinkError::not_connected(status.sub_code().name()))
        }
        other => WriteError::Rejected(other.name().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_opc_ua_ticks() {
        let t = Timestamp(1_700_000_000_123_456);
        assert_eq!(timestamp(&date_time(t)), t);
        assert_eq!(
            timestamp(&DateTime::ymd_hms(1970, 1, 1, 0, 0, 1)),
            Timestamp(1_000_000)
        );
    }

    #[test]
    fn every_model_type_round_trips_through_its_variant() {
        let values = [
            Value::Boolean(true),
            Value::Int8(-8),
            Value::UInt8(200),
            Value::Int16(-16),
            Value::UInt16(65000),
            Value::Int32(-32),
            Value::UInt32(4_000_000_000),
            Value::Int64(-64),
            Value::UInt64(u64::MAX),
            Value::Float(1.5),
            Value::Double(2.25),
            Value::String("x".into()),
            Value::DateTime(Timestamp(1_700_000_000_000_000)),
        ];
        for v in values {
            assert_eq!(value(&variant(&v)), Some(v.clone()), "{v:?}");
        }
        assert_eq!(value(&Variant::Empty), None);
    }

    #[test]
    fn statuses_map_to_quality_and_write_errors() {
        assert_eq!(quality(StatusCode::Good), Quality::Good);
        assert_eq!(
            quality(StatusCode::BadNodeIdUnknown),
            Quality::Bad(BadReason::ConfigError)
        );
        assert_eq!(
            quality(StatusCode::UncertainLastUsableValue),
            Quality::Uncertain(UncertainReason::LastUsableValue)
        );
        assert_eq!(
            quality(StatusCode::BadOutOfService),
            Quality::Bad(BadReason::OutOfService)
        );
        assert_eq!(
            write_result(StatusCode::BadNotWritable),
            Err(WriteError::NotWritable)
        );
        assert!(matches!(
            write_result(StatusCode::BadTypeMismatch),
            Err(WriteError::TypeMismatch(_))
        ));
        assert_eq!(
            write_result(StatusCode::BadOutOfRange),
            Err(WriteError::Rejected("BadOutOfRange".into()))
        );
        assert_eq!(write_result(StatusCode::Good), Ok(()));
    }
}
