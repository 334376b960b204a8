//! The journal record: one batch of one device's samples, named so that it survives a
//! restart with a changed config.
//!
//! Layout: a version byte (`1`), the device name (u16 little-endian length + UTF-8), then a
//! Sparkplug `Payload` (the Tahu protobuf, reused rather than inventing a format) whose
//! metrics carry the tag path inside the device as `name`, the model datatype, the value or
//! `is_null`, the `Quality` property when not Good, and the source time in **µs** in
//! `timestamp` (internal only; the wire gets ms). Tags are named, never numbered: a `TagId`
//! is an index into this run's config and means nothing to the next run.

use uaedge_driver::{Timestamp, Value};

use super::codec::{self, CodecError, MetricSpec, QUALITY_PROPERTY};
use super::wire;
use crate::model::{Sample, TagTable};

const VERSION: u8 = 1;

/// One stored sample.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSample {
    /// The tag's path inside its device.
    pub tag: String,
    pub time: Timestamp,
    pub value: Option<Value>,
    /// Sparkplug quality code: 192, 64 or 0.
    pub quality: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub device: String,
    pub samples: Vec<RecordSample>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record too short or of unknown version")]
    Header,
    #[error("record device name is not UTF-8")]
    Name,
    #[error("record body: {0}")]
    Body(#[from] CodecError),
}

/// Encodes samples of one device. Returns the record and its newest sample time.
pub fn encode(table: &TagTable, device: &str, samples: &[Sample]) -> (Vec<u8>, Timestamp) {
    let mut newest = Timestamp(i64::MIN);
    let name = device.as_bytes();
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    // Sized up front: a metric is its name and about 30 bytes more (keys, µs time, type,
    // value), so a batch is one allocation unless it holds long strings.
    let names: usize = samples
        .iter()
        .filter_map(|s| table.tag(s.tag))
        .map(|t| t.path.tag.len())
        .sum();
    let mut out = Vec::with_capacity(3 + name.len() + names + samples.len() * 32);
    out.push(VERSION);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&name[..usize::from(len)]);
    let mut scratch = Vec::new();
    for s in samples {
        let Some(def) = table.tag(s.tag) else {
            continue;
        };
        newest = newest.max(s.time);
        let spec = MetricSpec {
            name: Some(&def.path.tag),
            alias: None,
            data_type: def.data_type,
            value: s.value.as_ref(),
            quality: codec::data_quality(s.quality),
            units: None,
            time: s.time,
        };
        // µs, not the wire's ms: the journal keeps the source time exactly. The body is a
        // Payload of metrics alone, without timestamp or seq.
        wire::metric(&mut out, &mut scratch, &spec, s.time.as_micros() as u64);
    }
    if newest.0 == i64::MIN {
        newest = Timestamp::now();
    }
    (out, newest)
}

/// Decodes a record. Samples whose value does not decode are reported in the second list
/// (tag name, error) so the caller can log them; the rest are returned.
pub fn decode(bytes: &[u8]) -> Result<(Record, Vec<(String, CodecError)>), RecordError> {
    let (&version, rest) = bytes.split_first().ok_or(RecordError::Header)?;
    if version != VERSION || rest.len() < 2 {
        return Err(RecordError::Header);
    }
    let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    let name = rest.get(..len).ok_or(RecordError::Header)?;
    let device = std::str::from_utf8(name).map_err(|_| RecordError::Name)?;
    let payload = codec::decode(&rest[len..])?;
    let mut samples = Vec::with_capacity(payload.metrics.len());
    let mut bad = Vec::new();
    for m in payload.metrics {
        let tag = m.name.clone().unwrap_or_default();
        let quality = m
            .properties
            .as_ref()
            .and_then(|p| {
                p.keys
                    .iter()
                    .position(|k| k == QUALITY_PROPERTY)
                    .and_then(|i| p.values.get(i))
            })
            .and_then(|v| match v.value {
                Some(sparkplug_rs::payload::property_value::Value::IntValue(q)) => Some(q as i32),
                _ => None,
            })
            .unwrap_or(192);
        let value = if m.is_null == Some(true) {
            None
        } else {
            let t = m
                .datatype
                .and_then(codec::model_type)
                .ok_or(CodecError::UnsupportedType(m.datatype.unwrap_or(0)));
            match t.and_then(|t| codec::command_value(&m, t)) {
                Ok(v) => Some(v),
                Err(e) => {
                    bad.push((tag, e));
                    continue;
                }
            }
        };
        samples.push(RecordSample {
            tag,
            time: Timestamp(m.timestamp.unwrap_or(0) as i64),
            value,
            quality,
        });
    }
    Ok((
        Record {
            device: device.to_string(),
            samples,
        },
        bad,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TagId;
    use uaedge_driver::{BadReason, DataType, Quality};

    fn table() -> TagTable {
        let tags = [
            ("hydraulics/pressure", DataType::Double),
            ("count", DataType::UInt32),
        ];
        TagTable::one_device("press3", &tags, |_| {})
    }

    #[test]
    fn round_trips_names_values_quality_and_microseconds() {
        let t = table();
        let samples = [
            Sample {
                tag: TagId(0),
                value: Some(Value::Double(1.25)),
                quality: Quality::Good,
                time: Timestamp(1_700_000_000_123_456),
            },
            Sample {
                tag: TagId(1),
                value: None,
                quality: Quality::Bad(BadReason::NotConnected),
                time: Timestamp(1_700_000_000_123_457),
            },
        ];
        let (bytes, newest) = encode(&t, "press3", &samples);
        assert_eq!(newest, Timestamp(1_700_000_000_123_457));
        let (record, bad) = decode(&bytes).expect("decode");
        assert!(bad.is_empty());
        assert_eq!(record.device, "press3");
        assert_eq!(
            record.samples,
            vec![
                RecordSample {
                    tag: "hydraulics/pressure".into(),
                    time: Timestamp(1_700_000_000_123_456),
                    value: Some(Value::Double(1.25)),
                    quality: 192,
                },
                RecordSample {
                    tag: "count".into(),
                    time: Timestamp(1_700_000_000_123_457),
                    value: None,
                    quality: 0,
                },
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[1]).is_err());
        assert!(decode(&[1, 200, 0, b'a']).is_err());
        assert!(decode(&[2, 0, 0]).is_err());
        assert!(decode(&[1, 0, 0, 0xff, 0xff, 0xff]).is_err());
    }
}
