//! One tag's samples over a stretch of time, compressed the way time-series stores do it.
//!
//! Layout: a 23-byte header, then a bit stream with one record per sample after the first.
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version (1) |
//! | 1 | data type (index in `DataType::ALL`) |
//! | 1 | first sample's quality code, bit 7 set when it has a value |
//! | 4 | sample count, LE |
//! | 8 | first source time, µs, LE |
//! | 8 | last source time, µs, LE |
//!
//! The first sample's value opens the bit stream. Each later sample is its source time as a
//! delta-of-delta in units of the chunk's time grid (zigzag, adaptive Rice: one bit while
//! the period holds, a few bits for polling jitter or deadband skips; see `Times`),
//! preceded by a marker only when its quality or the presence of a value changes, then its
//! value:
//! - Boolean: one bit.
//! - Integers and DateTime: delta-of-delta as for times (a counter costs one bit).
//! - Float and Double: XOR with the previous value, as Facebook's Gorilla does: `0` for the
//!   same value, `10` and the meaningful bits inside the previous window, `11`, the new
//!   window (leading zeros and length) and its bits.
//! - String: `0` for the same string, else `1`, the length and the bytes.
//!
//! No crate keeps this format for the model's types with µs times and a quality per sample
//! (tsz is f64 with second times only; pco compresses whole columns, so an open chunk would
//! sit uncompressed in memory), hence this one.

use uaedge_driver::{BadReason, DataType, Quality, Timestamp, UncertainReason, Value};

use super::bits::{unzigzag, zigzag, BitReader, BitWriter, Rice, RiceCode};

const VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 23;
pub(super) const HAS_VALUE: u8 = 0x80;

/// One stored sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Source time, µs since the epoch.
    pub time: i64,
    pub value: Option<Value>,
    pub quality: Quality,
}

/// What a chunk's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub data_type: DataType,
    pub count: u32,
    pub first: i64,
    pub last: i64,
}

/// Why a chunk does not decode: a damaged file, never a reason to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("history chunk too short ({0} bytes)")]
    Short(usize),
    #[error("history chunk format version {0} is unknown")]
    Version(u8),
    #[error("history chunk is damaged: {0}")]
    Corrupt(&'static str),
}

/// Why a sample was not added: the chunk holds one type (a reload that changes a tag's type
/// starts a new chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMismatch;

pub(super) fn quality_code(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Uncertain(UncertainReason::LastUsableValue) => 1,
        Quality::Bad(BadReason::NotConnected) => 2,
        Quality::Bad(BadReason::CommFailure) => 3,
        Quality::Bad(BadReason::DeviceFailure) => 4,
        Quality::Bad(BadReason::ConfigError) => 5,
        Quality::Bad(BadReason::OutOfService) => 6,
    }
}

pub(super) fn quality_of(code: u8) -> Result<Quality, ChunkError> {
    Ok(match code {
        0 => Quality::Good,
        1 => Quality::Uncertain(UncertainReason::LastUsableValue),
        2 => Quality::Bad(BadReason::NotConnected),
        3 => Quality::Bad(BadReason::CommFailure),
        4 => Quality::Bad(BadReason::DeviceFailure),
        5 => Quality::Bad(BadReason::ConfigError),
        6 => Quality::Bad(BadReason::OutOfService),
        _ => return Err(ChunkError::Corrupt("unknown quality code")),
    })
}

/// How a type's values are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    F32,
    F64,
    Str,
}

fn kind(t: DataType) -> Kind {
    match t {
        DataType::Boolean => Kind::Bool,
        DataType::Float => Kind::F32,
        DataType::Double => Kind::F64,
        DataType::String => Kind::Str,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::DateTime => Kind::Int,
    }
}

/// The integer an integer-kind value is coded as (UInt64 by its bits).
fn as_int(v: &Value) -> Option<i64> {
    Some(match *v {
        Value::Int8(x) => x.into(),
        Value::Int16(x) => x.into(),
        Value::Int32(x) => x.into(),
        Value::Int64(x) => x,
        Value::UInt8(x) => x.into(),
        Value::UInt16(x) => x.into(),
        Value::UInt32(x) => x.into(),
        Value::UInt64(x) => x as i64,
        Value::DateTime(t) => t.as_micros(),
        _ => return None,
    })
}

fn from_int(t: DataType, x: i64) -> Result<Value, ChunkError> {
    let range = ChunkError::Corrupt("integer out of its type's range");
    Ok(match t {
        DataType::Int8 => Value::Int8(i8::try_from(x).map_err(|_| range)?),
        DataType::Int16 => Value::Int16(i16::try_from(x).map_err(|_| range)?),
        DataType::Int32 => Value::Int32(i32::try_from(x).map_err(|_| range)?),
        DataType::Int64 => Value::Int64(x),
        DataType::UInt8 => Value::UInt8(u8::try_from(x).map_err(|_| range)?),
        DataType::UInt16 => Value::UInt16(u16::try_from(x).map_err(|_| range)?),
        DataType::UInt32 => Value::UInt32(u32::try_from(x).map_err(|_| range)?),
        DataType::UInt64 => Value::UInt64(x as u64),
        DataType::DateTime => Value::DateTime(Timestamp(x)),
        _ => return Err(ChunkError::Corrupt("integer coding for a non-integer type")),
    })
}

/// Delta-of-delta state, for times and integer values alike.
#[derive(Debug, Clone, Default)]
struct Dod {
    last: i64,
    delta: i64,
    rice: Rice,
}

impl Dod {
    fn start(first: i64) -> Dod {
        Dod {
            last: first,
            ..Dod::default()
        }
    }

    fn write(&mut self, out: &mut BitWriter, x: i64) {
        let delta = x.wrapping_sub(self.last);
        self.rice.write(out, zigzag(delta.wrapping_sub(self.delta)));
        self.last = x;
        self.delta = delta;
    }

    fn apply(&mut self, dod: u64) -> i64 {
        self.delta = self.delta.wrapping_add(unzigzag(dod));
        self.last = self.last.wrapping_add(self.delta);
        self.last
    }
}

/// A state byte that no quality takes: after a marker, it says the time that follows is
/// written in full µs because it left the chunk's time grid (see [`Times`]).
const OFF_GRID: u8 = 0x7F;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Off-grid times in a row after which the grid narrows to take them in.
const NARROW_AFTER: u8 = 3;

/// Times: delta-of-delta in units of the chunk's grid, set by its first time delta. A tag
/// read every 500 ms but reported only when it moves past its deadband has deltas of 0.5,
/// 1, 1.5 s…: on the grid, its delta-of-delta is a few units of 500 ms, a few bits, where
/// in µs it would take twenty. A delta off the grid is written in full after a marker; one
/// (a clock correction) costs two such, and the grid stays. Times off it again and again
/// (polling jitter) narrow it to the common divisor, soon 1 µs, after which nothing is off.
#[derive(Debug, Clone, Default)]
struct Times {
    dod: Dod,
    /// 0 until the first non-zero delta.
    grid: u64,
    /// Off-grid times in a row.
    misses: u8,
}

impl Times {
    fn start(first: i64) -> Times {
        Times {
            dod: Dod::start(first),
            grid: 0,
            misses: 0,
        }
    }

    fn last(&self) -> i64 {
        self.dod.last
    }

    fn on_grid(&mut self, delta: i64) {
        self.misses = 0;
        if self.grid == 0 {
            self.grid = delta.unsigned_abs();
        }
    }

    fn off_grid(&mut self, delta: i64) {
        self.misses += 1;
        if self.misses >= NARROW_AFTER {
            self.grid = gcd(self.grid, delta.unsigned_abs());
            self.misses = 0;
        }
    }

    fn write(&mut self, out: &mut BitWriter, t: i64) {
        let delta = t.wrapping_sub(self.dod.last);
        let dod = delta.wrapping_sub(self.dod.delta);
        let unit = self.grid.max(1) as i64;
        // A steady period (the usual case) needs no division.
        if dod == 0 {
            self.dod.rice.write(out, 0);
            self.on_grid(delta);
        } else if self.grid == 0 || dod % unit == 0 {
            self.dod.rice.write(out, zigzag(dod / unit));
            self.on_grid(delta);
        } else {
            self.dod.rice.write_marker(out);
            out.write(u64::from(OFF_GRID), 8);
            out.write_varbits(zigzag(dod));
            self.off_grid(delta);
        }
        self.dod.last = t;
        self.dod.delta = delta;
    }

    /// The next time from its code: `units` of the grid, or (after an `OFF_GRID` marker,
    /// which the caller reads) the full delta-of-delta `raw`.
    fn apply(&mut self, units: Option<u64>, raw: Option<i64>) -> i64 {
        let dod = match (units, raw) {
            (Some(u), _) => unzigzag(u).wrapping_mul(self.grid.max(1) as i64),
            (None, r) => r.unwrap_or(0),
        };
        self.dod.delta = self.dod.delta.wrapping_add(dod);
        self.dod.last = self.dod.last.wrapping_add(self.dod.delta);
        let delta = self.dod.delta;
        if units.is_some() {
            self.on_grid(delta);
        } else {
            self.off_grid(delta);
        }
        self.dod.last
    }
}

/// Gorilla's XOR state for floats of `width` bits (32 or 64).
#[derive(Debug, Clone)]
struct Xor {
    width: u32,
    last: u64,
    leading: u32,
    trailing: u32,
}

impl Xor {
    fn new(width: u32, first: u64) -> Xor {
        Xor {
            width,
            last: first,
            // No window yet: the first change opens one.
            leading: u32::MAX,
            trailing: 0,
        }
    }

    /// Bits of the leading-zero count and of the window length (minus one).
    fn field_bits(&self) -> u32 {
        if self.width == 32 {
            5
        } else {
            6
        }
    }

    fn write(&mut self, out: &mut BitWriter, bits: u64) {
        let x = bits ^ self.last;
        self.last = bits;
        if x == 0 {
            out.write_bit(false);
            return;
        }
        let pad = 64 - self.width;
        let leading = (x.leading_zeros() - pad).min((1 << self.field_bits()) - 1);
        let trailing = x.trailing_zeros();
        if self.leading != u32::MAX && leading >= self.leading && trailing >= self.trailing {
            out.write(0b10, 2);
            let len = self.width - self.leading - self.trailing;
            out.write(x >> self.trailing, len);
        } else {
            let len = self.width - leading - trailing;
            out.write(0b11, 2);
            out.write(u64::from(leading), self.field_bits());
            out.write(u64::from(len - 1), self.field_bits());
            out.write(x >> trailing, len);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    fn read(&mut self, input: &mut BitReader<'_>) -> Result<u64, ChunkError> {
        let short = ChunkError::Corrupt("float value cut short");
        if !input.read_bit().ok_or(short.clone())? {
            return Ok(self.last);
        }
        if input.read_bit().ok_or(short.clone())? {
            let fb = self.field_bits();
            let leading = input.read(fb).ok_or(short.clone())? as u32;
            let len = input.read(fb).ok_or(short.clone())? as u32 + 1;
            if leading + len > self.width {
                return Err(ChunkError::Corrupt("float window past the value's width"));
            }
            self.leading = leading;
            self.trailing = self.width - leading - len;
        } else if self.leading == u32::MAX {
            return Err(ChunkError::Corrupt(
                "float window reused before one was set",
            ));
        }
        let len = self.width - self.leading - self.trailing;
        let x = input.read(len).ok_or(short)? << self.trailing;
        self.last ^= x;
        Ok(self.last)
    }
}

/// The value coder of one chunk.
#[derive(Debug, Clone)]
enum Values {
    Bool,
    Int(Dod),
    Float(Xor),
    Str(Option<String>),
}

impl Values {
    fn start(t: DataType) -> Values {
        match kind(t) {
            Kind::Bool => Values::Bool,
            Kind::Int => Values::Int(Dod::default()),
            Kind::F32 => Values::Float(Xor::new(32, 0)),
            Kind::F64 => Values::Float(Xor::new(64, 0)),
            Kind::Str => Values::Str(None),
        }
    }

    fn write(&mut self, out: &mut BitWriter, v: &Value) -> Result<(), TypeMismatch> {
        match (self, v) {
            (Values::Bool, Value::Boolean(b)) => out.write_bit(*b),
            (Values::Int(dod), v) => dod.write(out, as_int(v).ok_or(TypeMismatch)?),
            (Values::Float(xor), Value::Float(f)) if xor.width == 32 => {
                xor.write(out, u64::from(f.to_bits()))
            }
            (Values::Float(xor), Value::Double(f)) if xor.width == 64 => {
                xor.write(out, f.to_bits())
            }
            (Values::Str(last), Value::String(s)) => {
                if last.as_deref() == Some(s.as_str()) {
                    out.write_bit(false);
                } else {
                    out.write_bit(true);
                    out.write_varbits(s.len() as u64);
                    for b in s.bytes() {
                        out.write(u64::from(b), 8);
                    }
                    *last = Some(s.clone());
                }
            }
            _ => return Err(TypeMismatch),
        }
        Ok(())
    }

    fn read(&mut self, t: DataType, input: &mut BitReader<'_>) -> Result<Value, ChunkError> {
        let short = ChunkError::Corrupt("value cut short");
        Ok(match self {
            Values::Bool => Value::Boolean(input.read_bit().ok_or(short)?),
            Values::Int(dod) => match dod.rice.read(input).ok_or(short)? {
                RiceCode::Value(x) => from_int(t, dod.apply(x))?,
                RiceCode::Marker => return Err(ChunkError::Corrupt("marker in an integer")),
            },
            Values::Float(xor) => {
                let bits = xor.read(input)?;
                if xor.width == 32 {
                    Value::Float(f32::from_bits(bits as u32))
                } else {
                    Value::Double(f64::from_bits(bits))
                }
            }
            Values::Str(last) => {
                if input.read_bit().ok_or(short.clone())? {
                    let len = input.read_varbits().ok_or(short.clone())?;
                    if len.saturating_mul(8) > input.remaining() as u64 {
                        return Err(short);
                    }
                    let bytes = (0..len)
                        .map(|_| input.read(8).map(|b| b as u8))
                        .collect::<Option<Vec<u8>>>()
                        .ok_or(short)?;
                    let s = String::from_utf8(bytes)
                        .map_err(|_| ChunkError::Corrupt("string is not UTF-8"))?;
                    *last = Some(s);
                }
                Value::String(
                    last.clone()
                        .ok_or(ChunkError::Corrupt("string repeated before one was set"))?,
                )
            }
        })
    }
}

/// Builds one chunk sample by sample; [`ChunkEncoder::to_bytes`] at any point gives the
/// chunk so far, so an open chunk can be read and checkpointed while it grows.
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    data_type: DataType,
    count: u32,
    first: i64,
    first_state: u8,
    /// Quality and value presence of the last sample.
    state: u8,
    times: Times,
    values: Values,
    /// Whether `values` has seen a value yet (the first one is written in full).
    valued: bool,
    bits: BitWriter,
}

fn state_of(quality: Quality, has_value: bool) -> u8 {
    quality_code(quality) | if has_value { HAS_VALUE } else { 0 }
}

impl ChunkEncoder {
    /// A chunk of `data_type` starting with this sample.
    pub fn new(
        data_type: DataType,
        time: i64,
        value: Option<&Value>,
        quality: Quality,
    ) -> Result<ChunkEncoder, TypeMismatch> {
        let state = state_of(quality, value.is_some());
        let mut enc = ChunkEncoder {
            data_type,
            count: 1,
            first: time,
            first_state: state,
            state,
            times: Times::start(time),
            values: Values::start(data_type),
            valued: false,
            bits: BitWriter::default(),
        };
        if let Some(v) = value {
            enc.write_value(v)?;
        }
        Ok(enc)
    }

    fn write_value(&mut self, v: &Value) -> Result<(), TypeMismatch> {
        if v.data_type() != self.data_type {
            return Err(TypeMismatch);
        }
        if !self.valued {
            // The first value in full: it seeds the coder.
            self.valued = true;
            match (&mut self.values, v) {
                (Values::Int(dod), v) => {
                    let x = as_int(v).ok_or(TypeMismatch)?;
                    self.bits.write(x as u64, 64);
                    *dod = Dod::start(x);
                    return Ok(());
                }
                (Values::Float(xor), Value::Float(f)) => {
                    self.bits.write(u64::from(f.to_bits()), 32);
                    *xor = Xor::new(32, u64::from(f.to_bits()));
                    return Ok(());
                }
                (Values::Float(xor), Value::Double(f)) => {
                    self.bits.write(f.to_bits(), 64);
                    *xor = Xor::new(64, f.to_bits());
                    return Ok(());
                }
                _ => {}
            }
        }
        self.values.write(&mut self.bits, v)
    }

    /// Adds a sample. Times may repeat or go back (the chunk's `last` is the last pushed).
    pub fn push(
        &mut self,
        time: i64,
        value: Option<&Value>,
        quality: Quality,
    ) -> Result<(), TypeMismatch> {
        if value.is_some_and(|v| v.data_type() != self.data_type) {
            return Err(TypeMismatch);
        }
        let state = state_of(quality, value.is_some());
        if state != self.state {
            self.times.dod.rice.write_marker(&mut self.bits);
            self.bits.write(u64::from(state), 8);
            self.state = state;
        }
        self.times.write(&mut self.bits, time);
        if let Some(v) = value {
            self.write_value(v)?;
        }
        self.count += 1;
        Ok(())
    }

    pub fn data_type(&self) -> DataType {
        self.data_type
    }

    pub fn meta(&self) -> ChunkMeta {
        ChunkMeta {
            data_type: self.data_type,
            count: self.count,
            first: self.first,
            last: self.times.last(),
        }
    }

    /// Size of [`ChunkEncoder::to_bytes`].
    pub fn byte_len(&self) -> usize {
        HEADER_BYTES + self.bits.bit_len().div_ceil(8)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.push(VERSION);
        out.push(type_index(self.data_type));
        out.push(self.first_state);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.times.last().to_le_bytes());
        self.bits.append_to(&mut out);
        out
    }

    /// The encoder that [`decode`] of its bytes leads back to: an open chunk taken up
    /// again after a restart continues exactly where it stopped.
    pub fn resume(bytes: &[u8]) -> Result<ChunkEncoder, ChunkError> {
        let points = decode(bytes)?;
        let corrupt = ChunkError::Corrupt("chunk has no samples");
        let (first, rest) = points.split_first().ok_or(corrupt)?;
        let meta = peek(bytes)?;
        let mismatch = ChunkError::Corrupt("value of another type");
        let mut enc = ChunkEncoder::new(
            meta.data_type,
            first.time,
            first.value.as_ref(),
            first.quality,
        )
        .map_err(|_| mismatch.clone())?;
        for p in rest {
            enc.push(p.time, p.value.as_ref(), p.quality)
                .map_err(|_| mismatch.clone())?;
        }
        Ok(enc)
    }
}

fn type_index(t: DataType) -> u8 {
    DataType::ALL.iter().position(|&x| x == t).unwrap_or(0) as u8
}

/// The header alone: enough to skip a chunk that lies outside a read's range.
pub fn peek(bytes: &[u8]) -> Result<ChunkMeta, ChunkError> {
    if bytes.len() < HEADER_BYTES {
        return Err(ChunkError::Short(bytes.len()));
    }
    if bytes[0] != VERSION {
        return Err(ChunkError::Version(bytes[0]));
    }
    let data_type = *DataType::ALL
        .get(usize::from(bytes[1]))
        .ok_or(ChunkError::Corrupt("unknown data type"))?;
    let le4 =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let le8 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        i64::from_le_bytes(b)
    };
    let count = le4(3);
    if count == 0 {
        return Err(ChunkError::Corrupt("chunk has no samples"));
    }
    Ok(ChunkMeta {
        data_type,
        count,
        first: le8(7),
        last: le8(15),
    })
}

/// Every sample of a chunk, in the order they were pushed.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, ChunkError> {
    let meta = peek(bytes)?;
    let mut input = BitReader::new(&bytes[HEADER_BYTES..]);
    // Every sample after the first takes a bit at least: a bound on what to allocate.
    if (meta.count as usize - 1) > input.remaining() {
        return Err(ChunkError::Corrupt(
            "more samples than the chunk has bits for",
        ));
    }
    let short = ChunkError::Corrupt("chunk cut short");
    let mut state = bytes[2];
    let mut times = Times::start(meta.first);
    let mut values = Values::start(meta.data_type);
    let mut valued = false;
    let mut out = Vec::with_capacity(meta.count as usize);
    let mut time = meta.first;
    for i in 0..meta.count {
        if i > 0 {
            time = loop {
                match times.dod.rice.read(&mut input).ok_or(short.clone())? {
                    RiceCode::Value(units) => break times.apply(Some(units), None),
                    RiceCode::Marker => match input.read(8).ok_or(short.clone())? as u8 {
                        OFF_GRID => {
                            let raw = unzigzag(input.read_varbits().ok_or(short.clone())?);
                            break times.apply(None, Some(raw));
                        }
                        byte => state = byte,
                    },
                }
            };
        }
        let quality = quality_of(state & !HAS_VALUE)?;
        let value = if state & HAS_VALUE == 0 {
            None
        } else if !valued {
            valued = true;
            Some(first_value(meta.data_type, &mut values, &mut input)?)
        } else {
            Some(values.read(meta.data_type, &mut input)?)
        };
        out.push(Point {
            time,
            value,
            quality,
        });
    }
    if time != meta.last {
        return Err(ChunkError::Corrupt("last time differs from the header's"));
    }
    Ok(out)
}

fn first_value(
    t: DataType,
    values: &mut Values,
    input: &mut BitReader<'_>,
) -> Result<Value, ChunkError> {
    let short = ChunkError::Corrupt("first value cut short");
    match values {
        Values::Int(dod) => {
            let x = input.read(64).ok_or(short)? as i64;
            *dod = Dod::start(x);
            from_int(t, x)
        }
        Values::Float(xor) if xor.width == 32 => {
            let bits = input.read(32).ok_or(short)?;
            *xor = Xor::new(32, bits);
            Ok(Value::Float(f32::from_bits(bits as u32)))
        }
        Values::Float(xor) => {
            let bits = input.read(64).ok_or(short)?;
            *xor = Xor::new(64, bits);
            Ok(Value::Double(f64::from_bits(bits)))
        }
        other => other.read(t, input),
    }
}
