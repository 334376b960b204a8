//! The intake log: what one commit window received, as one record, so that a crash loses at
//! most the window in memory and the commit in flight. Chunks are written only when they
//! fill (or at a checkpoint); until then their samples are safe here, and a restart replays
//! the records its chunks do not hold yet.
//!
//! A record is a format byte ([`LOG_VERSION`]), then a run of samples, each: a head byte
//! (quality code in bits 0–2, [`TYPE_FOLLOWS`], [`NEXT_SERIES`], [`SAME_TIME`],
//! [`HAS_VALUE`]), the series id (LEB128) unless it is the previous sample's plus one, the
//! time as a zigzag LEB128 delta to the previous sample's unless equal, the value's type
//! (index in `DataType::ALL`) if it differs from the previous sample's, and the value: a byte
//! for Boolean, zigzag LEB128 for integers and DateTime (UInt64 plain LEB128), 4 or 8 bytes
//! LE for Float and Double, length and UTF-8 for String. A device's read comes as a run of
//! consecutive series with one time and one type, so most samples cost the head byte and
//! their value: the log is most of what a commit writes.

use std::collections::HashMap;

use tracing::warn;
use uaedge_driver::{DataType, Quality, Timestamp, Value};

use super::bits::{unzigzag, zigzag};
use super::chunk::{quality_code, quality_of, ChunkError, HAS_VALUE};

/// The first byte of every record.
pub const LOG_VERSION: u8 = 2;
/// Head bits: the type byte follows; the series is the previous sample's plus one; the time
/// is the previous sample's. Bit 7 is [`HAS_VALUE`], bits 0–2 the quality code.
const TYPE_FOLLOWS: u8 = 0x08;
const NEXT_SERIES: u8 = 0x10;
const SAME_TIME: u8 = 0x20;
const QUALITY_BITS: u8 = 0x07;

/// One sample as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSample {
    pub series: u32,
    pub time: i64,
    /// The tag's type, also where no value is known.
    pub data_type: DataType,
    pub value: Option<Value>,
    pub quality: Quality,
}

/// Appends samples to one record.
#[derive(Debug, Default)]
pub struct RecordWriter {
    bytes: Vec<u8>,
    samples: u64,
    prev: Prev,
}

/// What a sample is written relative to: the record's previous sample.
#[derive(Debug, Clone, Copy)]
struct Prev {
    series: u32,
    time: i64,
    /// Index in `DataType::ALL`; none before the first sample.
    data_type: u8,
}

impl Default for Prev {
    fn default() -> Prev {
        Prev {
            series: u32::MAX,
            time: 0,
            data_type: u8::MAX,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn type_index(t: DataType) -> u8 {
    DataType::ALL.iter().position(|&x| x == t).unwrap_or(0) as u8
}

impl RecordWriter {
    pub fn push(
        &mut self,
        series: u32,
        time: i64,
        data_type: DataType,
        value: Option<&Value>,
        quality: Quality,
    ) {
        let out = &mut self.bytes;
        if out.is_empty() {
            out.push(LOG_VERSION);
        }
        let prev = self.prev;
        let type_index = type_index(value.map_or(data_type, Value::data_type));
        let mut head = quality_code(quality);
        if value.is_some() {
            head |= HAS_VALUE;
        }
        if type_index != prev.data_type {
            head |= TYPE_FOLLOWS;
        }
        if series == prev.series.wrapping_add(1) {
            head |= NEXT_SERIES;
        }
        if time == prev.time {
            head |= SAME_TIME;
        }
        out.push(head);
        if head & NEXT_SERIES == 0 {
            put_varint(out, u64::from(series));
        }
        if head & SAME_TIME == 0 {
            put_varint(out, zigzag(time.wrapping_sub(prev.time)));
        }
        if head & TYPE_FOLLOWS != 0 {
            out.push(type_index);
        }
        self.prev = Prev {
            series,
            time,
            data_type: type_index,
        };
        self.samples += 1;
        let Some(v) = value else { return };
        match v {
            Value::Boolean(b) => out.push(u8::from(*b)),
            Value::Int8(x) => put_varint(out, zigzag((*x).into())),
            Value::Int16(x) => put_varint(out, zigzag((*x).into())),
            Value::Int32(x) => put_varint(out, zigzag((*x).into())),
            Value::Int64(x) => put_varint(out, zigzag(*x)),
            Value::UInt8(x) => put_varint(out, (*x).into()),
            Value::UInt16(x) => put_varint(out, (*x).into()),
            Value::UInt32(x) => put_varint(out, (*x).into()),
            Value::UInt64(x) => put_varint(out, *x),
            Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::Double(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::String(s) => {
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::DateTime(t) => put_varint(out, zigzag(t.as_micros())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The record, leaving the writer empty for the next window.
    pub fn take(&mut self) -> Vec<u8> {
        self.prev = Prev::default();
        self.samples = 0;
        std::mem::take(&mut self.bytes)
    }
}

/// Reads a record back, sample by sample; a damaged record ends in an error.
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    prev: Prev,
    /// Whether the format byte was read (and was ours).
    started: bool,
}

impl<'a> RecordReader<'a> {
    pub fn new(bytes: &'a [u8]) -> RecordReader<'a> {
        RecordReader {
            bytes,
            prev: Prev::default(),
            started: false,
        }
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or(ChunkError::Corrupt("log record cut short"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            x |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(ChunkError::Corrupt("log varint too long"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ChunkError> {
        if self.bytes.len() < N {
            return Err(ChunkError::Corrupt("log record cut short"));
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn value(&mut self, t: DataType) -> Result<Value, ChunkError> {
        let range = ChunkError::Corrupt("log integer out of its type's range");
        let int = |x: u64| unzigzag(x);
        Ok(match t {
            DataType::Boolean => Value::Boolean(self.byte()? != 0),
            DataType::Int8 => Value::Int8(i8::try_from(int(self.varint()?)).map_err(|_| range)?),
            DataType::Int16 => Value::Int16(i16::try_from(int(self.varint()?)).map_err(|_| range)?),
            DataType::Int32 => Value::Int32(i32::try_from(int(self.varint()?)).map_err(|_| range)?),
            DataType::Int64 => Value::Int64(int(self.varint()?)),
            DataType::UInt8 => Value::UInt8(u8::try_from(self.varint()?).map_err(|_| range)?),
            DataType::UInt16 => Value::UInt16(u16::try_from(self.varint()?).map_err(|_| range)?),
            DataType::UInt32 => Value::UInt32(u32::try_from(self.varint()?).map_err(|_| range)?),
            DataType::UInt64 => Value::UInt64(self.varint()?),
            DataType::Float => Value::Float(f32::from_le_bytes(self.array()?)),
            DataType::Double => Value::Double(f64::from_le_bytes(self.array()?)),
            DataType::String => {
                let len = usize::try_from(self.varint()?)
                    .ok()
                    .filter(|&n| n <= self.bytes.len())
                    .ok_or(ChunkError::Corrupt("log string longer than the record"))?;
                let (s, rest) = self.bytes.split_at(len);
                self.bytes = rest;
                Value::String(
                    String::from_utf8(s.to_vec())
                        .map_err(|_| ChunkError::Corrupt("log string is not UTF-8"))?,
                )
            }
            DataType::DateTime => Value::DateTime(Timestamp(int(self.varint()?))),
        })
    }

    fn sample(&mut self) -> Result<LogSample, ChunkError> {
        let head = self.byte()?;
        let quality = quality_of(head & QUALITY_BITS)?;
        let series = if head & NEXT_SERIES != 0 {
            self.prev.series.wrapping_add(1)
        } else {
            u32::try_from(self.varint()?)
                .map_err(|_| ChunkError::Corrupt("log series id too large"))?
        };
        let time = if head & SAME_TIME != 0 {
            self.prev.time
        } else {
            self.prev.time.wrapping_add(unzigzag(self.varint()?))
        };
        let type_index = if head & TYPE_FOLLOWS != 0 {
            self.byte()?
        } else {
            self.prev.data_type
        };
        let data_type = *DataType::ALL
            .get(usize::from(type_index))
            .ok_or(ChunkError::Corrupt("unknown data type in log"))?;
        self.prev = Prev {
            series,
            time,
            data_type: type_index,
        };
        let value = if head & HAS_VALUE != 0 {
            Some(self.value(data_type)?)
        } else {
            None
        };
        Ok(LogSample {
            series,
            time,
            data_type,
            value,
            quality,
        })
    }
}

impl Iterator for RecordReader<'_> {
    type Item = Result<LogSample, ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            match self.bytes.split_first() {
                Some((&LOG_VERSION, rest)) => self.bytes = rest,
                Some(_) => {
                    self.bytes = &[];
                    return Some(Err(ChunkError::Corrupt("log record of an unknown format")));
                }
                None => return None,
            }
        }
        if self.bytes.is_empty() {
            return None;
        }
        let item = self.sample();
        if item.is_err() {
            // Nothing after a damaged sample can be trusted to start where it seems to.
            self.bytes = &[];
        }
        Some(item)
    }
}

/// Calls `each` with every logged sample that no stored chunk holds: in log order, those
/// past their series' head position (`through`: commit and count within it, as
/// `SeriesMem::pos` counts). A damaged record is logged and the rest of it skipped.
pub fn replay(
    log: &[(u64, Vec<u8>)],
    through: &HashMap<u32, (u64, u32)>,
    mut each: impl FnMut(u64, LogSample),
) {
    for (commit, bytes) in log {
        // Each series' samples in this record, counted as the intake counted them.
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for sample in RecordReader::new(bytes) {
            let sample = match sample {
                Ok(s) => s,
                Err(e) => {
                    warn!(commit, error = %e, "history log record damaged; the rest of it is skipped");
                    break;
                }
            };
            let n = counts.entry(sample.series).or_default();
            *n += 1;
            if through
                .get(&sample.series)
                .is_some_and(|&t| (*commit, *n) <= t)
            {
                continue;
            }
            each(*commit, sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use uaedge_driver::BadReason;

    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let samples = vec![
            LogSample {
                series: 0,
                time: 1_700_000_000_000_000,
                data_type: DataType::Double,
                value: Some(Value::Double(1.5)),
                quality: Quality::Good,
            },
            LogSample {
                series: 100_000,
                time: 1_699_999_999_000_000,
                data_type: DataType::Float,
                value: None,
                quality: Quality::Bad(BadReason::CommFailure),
            },
            LogSample {
                series: u32::MAX,
                time: i64::MIN,
                data_type: DataType::String,
                value: Some(Value::String("päck ✓".into())),
                quality: Quality::Good,
            },
            LogSample {
                series: 7,
                time: i64::MAX,
                data_type: DataType::UInt64,
                value: Some(Value::UInt64(u64::MAX)),
                quality: Quality::Good,
            },
            LogSample {
                series: 8,
                time: 0,
                data_type: DataType::Int8,
                value: Some(Value::Int8(-128)),
                quality: Quality::Good,
            },
        ];
        let mut w = RecordWriter::default();
        for s in &samples {
            w.push(s.series, s.time, s.data_type, s.value.as_ref(), s.quality);
        }
        assert_eq!(w.samples(), 5);
        let bytes = w.take();
        assert!(w.is_empty());
        let back: Vec<LogSample> = RecordReader::new(&bytes)
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(back, samples);
        for cut in 0..bytes.len() {
            let read: Vec<_> = RecordReader::new(&bytes[..cut]).collect();
            assert!(read.len() <= samples.len());
        }
        let mut other = bytes.clone();
        other[0] = LOG_VERSION + 1;
        assert!(matches!(
            RecordReader::new(&other).collect::<Vec<_>>().as_slice(),
            [Err(ChunkError::Corrupt(_))]
        ));
    }

    /// A device read (consecutive series, one time, one type) costs a head byte and the
    /// value a sample; a tag left out of the run (not historized) costs its series id.
    #[test]
    fn a_device_read_costs_its_values_and_a_byte_each() {
        let mut w = RecordWriter::default();
        let mut samples = Vec::new();
        for round in 0..3i64 {
            for series in (1000..1100).filter(|s| s % 10 != 3) {
                let value = Value::UInt16((series + round as u32) as u16 % 100);
                samples.push(LogSample {
                    series,
                    time: 1_700_000_000_000_000 + round * 500_000,
                    data_type: DataType::UInt16,
                    value: Some(value),
                    quality: Quality::Good,
                });
            }
        }
        for s in &samples {
            w.push(s.series, s.time, s.data_type, s.value.as_ref(), s.quality);
        }
        let bytes = w.take();
        // 270 samples: a head and a one-byte value each, plus per round a series id and a
        // time, per gap a series id (2 bytes), and the type once.
        assert!(
            bytes.len() <= 270 * 2 + 3 * 12 + 30 * 2 + 2,
            "{}",
            bytes.len()
        );
        let back: Vec<LogSample> = RecordReader::new(&bytes)
            .collect::<Result<_, _>>()
            .expect("decodes");
        assert_eq!(back, samples);
    }
}
