use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, UTC. The model's one clock type: source timestamps,
/// store records and Sparkplug/OPC UA conversions all start from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        // A clock before 1970 is a broken clock; 0 is the honest answer rather than a panic.
        let us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(us)
    }

    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms.saturating_mul(1000))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

/// The data types of the unified model: the set that maps one-to-one onto OPC UA built-in
/// types and Sparkplug B datatypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float,
    Double,
    String,
    DateTime,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float,
        DataType::Double,
        DataType::String,
        DataType::DateTime,
    ];

    /// The name used in config files and in `uaedge tags`.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Boolean => "bool",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::UInt8 => "uint8",
            DataType::UInt16 => "uint16",
            DataType::UInt32 => "uint32",
            DataType::UInt64 => "uint64",
            DataType::Float => "float32",
            DataType::Double => "float64",
            DataType::String => "string",
            DataType::DateTime => "datetime",
        }
    }

    pub fn is_numeric(self) -> bool {
        !matches!(
            self,
            DataType::Boolean | DataType::String | DataType::DateTime
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float | DataType::Double)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = match s.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => DataType::Boolean,
            "int8" | "sbyte" => DataType::Int8,
            "int16" | "short" => DataType::Int16,
            "int32" | "int" | "dint" => DataType::Int32,
            "int64" | "lint" => DataType::Int64,
            "uint8" | "byte" => DataType::UInt8,
            "uint16" | "word" => DataType::UInt16,
            "uint32" | "dword" => DataType::UInt32,
            "uint64" | "lword" => DataType::UInt64,
            "float32" | "float" | "real" => DataType::Float,
            "float64" | "double" | "lreal" => DataType::Double,
            "string" => DataType::String,
            "datetime" => DataType::DateTime,
            _ => {
                let known: Vec<&str> = DataType::ALL.iter().map(|t| t.name()).collect();
                return Err(format!(
                    "unknown data type `{s}`, expected one of: {}",
                    known.join(", ")
                ));
            }
        };
        Ok(t)
    }
}

impl<'de> serde::Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A typed value of the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float(f32),
    Double(f64),
    String(String),
    DateTime(Timestamp),
}

/// A value that does not fit the type asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("{value} does not fit {to}")]
    OutOfRange { value: String, to: DataType },
    #[error("cannot convert {from} to {to}")]
    TypeMismatch { from: DataType, to: DataType },
}

impl Value {
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Boolean(_) => DataType::Boolean,
            Value::Int8(_) => DataType::Int8,
            Value::Int16(_) => DataType::Int16,
            Value::Int32(_) => DataType::Int32,
            Value::Int64(_) => DataType::Int64,
            Value::UInt8(_) => DataType::UInt8,
            Value::UInt16(_) => DataType::UInt16,
            Value::UInt32(_) => DataType::UInt32,
            Value::UInt64(_) => DataType::UInt64,
            Value::Float(_) => DataType::Float,
            Value::Double(_) => DataType::Double,
            Value::String(_) => DataType::String,
            Value::DateTime(_) => DataType::DateTime,
        }
    }

    /// The value as a number, for scaling, deadband and anomaly checks. Booleans count as
    /// 0/1 so that a flatline or limit check on a digital input works; strings have none.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match self {
            Value::Boolean(b) => f64::from(u8::from(*b)),
            Value::Int8(v) => f64::from(*v),
            Value::Int16(v) => f64::from(*v),
            Value::Int32(v) => f64::from(*v),
            Value::Int64(v) => *v as f64,
            Value::UInt8(v) => f64::from(*v),
            Value::UInt16(v) => f64::from(*v),
            Value::UInt32(v) => f64::from(*v),
            Value::UInt64(v) => *v as f64,
            Value::Float(v) => f64::from(*v),
            Value::Double(v) => *v,
            Value::String(_) => return None,
            Value::DateTime(t) => t.0 as f64,
        })
    }

    /// Builds a value of `to` from a number. Integers are rounded to the nearest and must
    /// fit; this is how scaled writes and numeric commands reach a device's raw type.
    pub fn from_f64(x: f64, to: DataType) -> Result<Value, ValueError> {
        let out_of_range = || ValueError::OutOfRange {
            value: x.to_string(),
            to,
        };
        let int = |lo: f64, hi: f64| -> Result<f64, ValueError> {
            let r = x.round();
            if r.is_finite() && r >= lo && r <= hi {
                Ok(r)
            } else {
                Err(out_of_range())
            }
        };
        Ok(match to {
            DataType::Boolean => Value::Boolean(x != 0.0),
            DataType::Int8 => Value::Int8(int(i8::MIN.into(), i8::MAX.into())? as i8),
            DataType::Int16 => Value::Int16(int(i16::MIN.into(), i16::MAX.into())? as i16),
            DataType::Int32 => Value::Int32(int(i32::MIN.into(), i32::MAX.into())? as i32),
            DataType::Int64 => Value::Int64(int(i64::MIN as f64, i64::MAX as f64)? as i64),
            DataType::UInt8 => Value::UInt8(int(0.0, u8::MAX.into())? as u8),
            DataType::UInt16 => Value::UInt16(int(0.0, u16::MAX.into())? as u16),
            DataType::UInt32 => Value::UInt32(int(0.0, u32::MAX.into())? as u32),
            DataType::UInt64 => Value::UInt64(int(0.0, u64::MAX as f64)? as u64),
            DataType::Float => {
                if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                    return Err(out_of_range());
                }
                Value::Float(x as f32)
            }
            DataType::Double => Value::Double(x),
            DataType::DateTime => {
                Value::DateTime(Timestamp(int(i64::MIN as f64, i64::MAX as f64)? as i64))
            }
            DataType::String => Value::String(x.to_string()),
        })
    }

    /// Converts to another model type. Integer to integer conversions are exact (no
    /// rounding through f64, so u64/i64 keep every bit); anything numeric to a float is
    /// allowed; strings only convert to and from strings.
    pub fn convert(&self, to: DataType) -> Result<Value, ValueError> {
        if self.data_type() == to {
            return Ok(self.clone());
        }
        let mismatch = || ValueError::TypeMismatch {
            from: self.data_type(),
            to,
        };
        if let Some(i) = self.as_i128() {
            let out_of_range = || ValueError::OutOfRange {
                value: i.to_string(),
                to,
            };
            macro_rules! fit {
                ($variant:ident, $t:ty) => {
                    Value::$variant(<$t>::try_from(i).map_err(|_| out_of_range())?)
                };
            }
            return Ok(match to {
                DataType::Boolean => Value::Boolean(i != 0),
                DataType::Int8 => fit!(Int8, i8),
                DataType::Int16 => fit!(Int16, i16),
                DataType::Int32 => fit!(Int32, i32),
                DataType::Int64 => fit!(Int64, i64),
                DataType::UInt8 => fit!(UInt8, u8),
                DataType::UInt16 => fit!(UInt16, u16),
                DataType::UInt32 => fit!(UInt32, u32),
                DataType::UInt64 => fit!(UInt64, u64),
                DataType::Float => Value::Float(i as f32),
                DataType::Double => Value::Double(i as f64),
                DataType::DateTime => {
                    Value::DateTime(Timestamp(i64::try_from(i).map_err(|_| out_of_range())?))
                }
                DataType::String => return Err(mismatch()),
            });
        }
        match (self, to) {
            (Value::Float(_) | Value::Double(_), _) if to != DataType::String => {
                let x = self.as_f64().ok_or_else(mismatch)?;
                Value::from_f64(x, to)
            }
            _ => Err(mismatch()),
        }
    }

    fn as_i128(&self) -> Option<i128> {
        Some(match self {
            Value::Boolean(b) => i128::from(*b),
            Value::Int8(v) => i128::from(*v),
            Value::Int16(v) => i128::from(*v),
            Value::Int32(v) => i128::from(*v),
            Value::Int64(v) => i128::from(*v),
            Value::UInt8(v) => i128::from(*v),
            Value::UInt16(v) => i128::from(*v),
            Value::UInt32(v) => i128::from(*v),
            Value::UInt64(v) => i128::from(*v),
            Value::DateTime(t) => i128::from(t.0),
            _ => return None,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(v) => write!(f, "{v}"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) => write!(f, "{v}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::UInt8(v) => write!(f, "{v}"),
            Value::UInt16(v) => write!(f, "{v}"),
            Value::UInt32(v) => write!(f, "{v}"),
            Value::UInt64(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::DateTime(t) => write!(f, "{}us", t.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_conversions_are_exact_and_range_checked() {
        assert_eq!(
            Value::UInt64(u64::MAX).convert(DataType::UInt64),
            Ok(Value::UInt64(u64::MAX))
        );
        assert_eq!(
            Value::Int64(i64::MAX - 1).convert(DataType::UInt64),
            Ok(Value::UInt64((i64::MAX - 1) as u64))
        );
        assert!(matches!(
            Value::Int32(70000).convert(DataType::UInt16),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(matches!(
            Value::Int8(-1).convert(DataType::UInt8),
            Err(ValueError::OutOfRange { .. })
        ));
        assert_eq!(
            Value::Int16(5).convert(DataType::Boolean),
            Ok(Value::Boolean(true))
        );
    }

    #[test]
    fn floats_round_into_integers() {
        assert_eq!(
            Value::Double(41.6).convert(DataType::Int16),
            Ok(Value::Int16(42))
        );
        assert!(Value::Double(f64::NAN).convert(DataType::Int16).is_err());
        assert!(Value::Double(1e40).convert(DataType::Float).is_err());
    }

    #[test]
    fn strings_only_convert_to_strings() {
        assert!(matches!(
            Value::String("x".into()).convert(DataType::Int16),
            Err(ValueError::TypeMismatch { .. })
        ));
        assert!(Value::Int16(1).convert(DataType::String).is_err());
    }

    #[test]
    fn type_names_round_trip_and_unknown_lists_known() {
        for t in DataType::ALL {
            assert_eq!(t.name().parse::<DataType>(), Ok(t));
        }
        let err = "flaot".parse::<DataType>().unwrap_err();
        assert!(err.contains("float32"), "{err}");
    }
}
