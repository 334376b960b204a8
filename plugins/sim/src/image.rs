//! Byte images: the memory a real device exposes (PROFINET IO data and records, CIP
//! attribute data, Logix tags). Values are laid into bytes and decoded back, so two tags
//! over the same bytes see the same data, and a bool can be one bit of a word.

use std::collections::BTreeMap;

use uaedge_driver::{DataType, Timestamp, Value};

use crate::TagSample;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// PROFINET (network order).
    Big,
    /// CIP / EtherNet/IP.
    Little,
}

/// How one tag's value sits in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A fixed-size number (bool as one byte, datetime as i64 µs since the epoch).
    Scalar {
        data_type: DataType,
        order: ByteOrder,
    },
    /// One bit (0 = least significant) of the byte at the tag's offset.
    Bit(u8),
    /// A fixed-length text field padded with spaces (PROFINET I&M visible strings).
    Padded { len: u32 },
    /// A Logix STRING: a little-endian DINT length, then `capacity` bytes of data.
    Logix { capacity: u32 },
}

impl Codec {
    /// The number of bytes the value occupies.
    pub fn size(&self) -> usize {
        match self {
            Codec::Scalar { data_type, .. } => scalar_size(*data_type),
            Codec::Bit(_) => 1,
            Codec::Padded { len } => *len as usize,
            Codec::Logix { capacity } => 4 + *capacity as usize,
        }
    }

    /// The type the codec decodes to.
    pub fn data_type(&self) -> DataType {
        match self {
            Codec::Scalar { data_type, .. } => *data_type,
            Codec::Bit(_) => DataType::Boolean,
            Codec::Padded { .. } | Codec::Logix { .. } => DataType::String,
        }
    }
}

/// Bytes of a scalar type; 0 for strings, which need a length.
pub fn scalar_size(data_type: DataType) -> usize {
    match data_type {
        DataType::Boolean | DataType::Int8 | DataType::UInt8 => 1,
        DataType::Int16 | DataType::UInt16 => 2,
        DataType::Int32 | DataType::UInt32 | DataType::Float => 4,
        DataType::Int64 | DataType::UInt64 | DataType::Double | DataType::DateTime => 8,
        DataType::String => 0,
    }
}

macro_rules! put {
    ($v:expr, $order:expr, $buf:expr) => {{
        let bytes = match $order {
            ByteOrder::Big => $v.to_be_bytes(),
            ByteOrder::Little => $v.to_le_bytes(),
        };
        copy(&bytes, $buf)
    }};
}

macro_rules! get {
    ($t:ty, $order:expr, $buf:expr) => {{
        let bytes: [u8; std::mem::size_of::<$t>()] =
            $buf.get(..std::mem::size_of::<$t>())?.try_into().ok()?;
        match $order {
            ByteOrder::Big => <$t>::from_be_bytes(bytes),
            ByteOrder::Little => <$t>::from_le_bytes(bytes),
        }
    }};
}

fn copy(bytes: &[u8], buf: &mut [u8]) -> bool {
    match buf.get_mut(..bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Lays `value` at the start of `buf`. Returns false (and leaves `buf` alone) when the value
/// does not match the codec or does not fit; addresses are checked at load so this is a
/// guard, not a path users hit.
pub fn encode(codec: Codec, value: &Value, buf: &mut [u8]) -> bool {
    match (codec, value) {
        (Codec::Bit(bit), Value::Boolean(b)) => match buf.first_mut() {
            Some(byte) if bit < 8 => {
                let mask = 1u8 << bit;
                *byte = if *b { *byte | mask } else { *byte & !mask };
                true
            }
            _ => false,
        },
        (Codec::Padded { len }, Value::String(s)) => match buf.get_mut(..len as usize) {
            Some(dst) => {
                dst.fill(b' ');
                let src = truncate(s, len as usize);
                copy(src, dst)
            }
            None => false,
        },
        (Codec::Logix { capacity }, Value::String(s)) => match buf.get_mut(..4 + capacity as usize)
        {
            Some(dst) => {
                dst.fill(0);
                let src = truncate(s, capacity as usize);
                let len = i32::try_from(src.len()).unwrap_or(0);
                copy(&len.to_le_bytes(), dst) && dst.get_mut(4..).is_some_and(|d| copy(src, d))
            }
            None => false,
        },
        (Codec::Scalar { data_type, order }, v) if v.data_type() == data_type => match v {
            Value::Boolean(b) => copy(&[u8::from(*b)], buf),
            Value::Int8(x) => put!(x, order, buf),
            Value::Int16(x) => put!(x, order, buf),
            Value::Int32(x) => put!(x, order, buf),
            Value::Int64(x) => put!(x, order, buf),
            Value::UInt8(x) => put!(x, order, buf),
            Value::UInt16(x) => put!(x, order, buf),
            Value::UInt32(x) => put!(x, order, buf),
            Value::UInt64(x) => put!(x, order, buf),
            Value::Float(x) => put!(x, order, buf),
            Value::Double(x) => put!(x, order, buf),
            Value::DateTime(t) => put!(t.0, order, buf),
            Value::String(_) => false,
        },
        _ => false,
    }
}

/// Reads a value from the start of `buf`; `None` if `buf` is too short.
pub fn decode(codec: Codec, buf: &[u8]) -> Option<Value> {
    Some(match codec {
        Codec::Bit(bit) => Value::Boolean(buf.first()? & (1u8.checked_shl(u32::from(bit))?) != 0),
        Codec::Padded { len } => {
            let raw = buf.get(..len as usize)?;
            let text = String::from_utf8_lossy(raw);
            Value::String(text.trim_end_matches([' ', '\0']).to_string())
        }
        Codec::Logix { capacity } => {
            let len = usize::try_from(get!(i32, ByteOrder::Little, buf))
                .unwrap_or(0)
                .min(capacity as usize);
            let raw = buf.get(4..4 + len)?;
            Value::String(String::from_utf8_lossy(raw).into_owned())
        }
        Codec::Scalar { data_type, order } => match data_type {
            DataType::Boolean => Value::Boolean(*buf.first()? != 0),
            DataType::Int8 => Value::Int8(get!(i8, order, buf)),
            DataType::Int16 => Value::Int16(get!(i16, order, buf)),
            DataType::Int32 => Value::Int32(get!(i32, order, buf)),
            DataType::Int64 => Value::Int64(get!(i64, order, buf)),
            DataType::UInt8 => Value::UInt8(get!(u8, order, buf)),
            DataType::UInt16 => Value::UInt16(get!(u16, order, buf)),
            DataType::UInt32 => Value::UInt32(get!(u32, order, buf)),
            DataType::UInt64 => Value::UInt64(get!(u64, order, buf)),
            DataType::Float => Value::Float(get!(f32, order, buf)),
            DataType::Double => Value::Double(get!(f64, order, buf)),
            DataType::DateTime => Value::DateTime(Timestamp(get!(i64, order, buf))),
            DataType::String => return None,
        },
    })
}

/// The longest prefix of `s` that fits `len` bytes without splitting a character.
fn truncate(s: &str, len: usize) -> &[u8] {
    let mut end = s.len().min(len);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.as_bytes().get(..end).unwrap_or_default()
}

/// A device's byte images, one per key (a PROFINET subslot's input, output or record data;
/// a CIP attribute or a Logix tag), and where each tag's value sits in them.
///
/// A controller may have 100,000 tags each in its own small image, so the images lie end
/// to end in one buffer and a tag's place is 16 bytes: no allocation per image or tag.
/// Images add up to at most 4 GiB; a tag placed past that never encodes nor decodes.
#[derive(Debug)]
pub struct Images<K> {
    keys: Vec<K>,
    /// Image `i` is `data[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    data: Vec<u8>,
    places: Vec<Place>,
}

#[derive(Debug, Clone, Copy)]
struct Place {
    /// Where the value starts in `data`.
    at: u32,
    /// Where its image ends in `data`, so a value never reaches into the next image.
    end: u32,
    codec: Codec,
}

impl<K: Ord + Clone> Images<K> {
    /// `tags` gives each tag's image, byte offset and codec, in tag order. An image is as
    /// long as its entry in `sizes` (a declared size, or a least one) or as far as its tags
    /// reach, whichever is more; every byte starts at zero.
    pub fn new(mut sizes: BTreeMap<K, usize>, tags: Vec<(K, usize, Codec)>) -> Images<K> {
        for (key, offset, codec) in &tags {
            let size = sizes.entry(key.clone()).or_insert(0);
            *size = (*size).max(offset.saturating_add(codec.size()));
        }
        let mut keys = Vec::with_capacity(sizes.len());
        let mut starts = Vec::with_capacity(sizes.len() + 1);
        let mut total = 0usize;
        for (key, size) in sizes {
            keys.push(key);
            starts.push(u32::try_from(total).unwrap_or(u32::MAX));
            total = total.saturating_add(size);
        }
        starts.push(u32::try_from(total).unwrap_or(u32::MAX));
        let data = vec![0u8; total.min(u32::MAX as usize)];
        // Collected afresh, not in place: a vector reused from `tags` would keep the
        // larger elements' capacity.
        let mut places = Vec::with_capacity(tags.len());
        for (key, offset, codec) in tags {
            let image = keys.binary_search(&key).unwrap_or(0);
            let begin = starts.get(image).copied().unwrap_or(u32::MAX);
            let end = starts.get(image + 1).copied().unwrap_or(u32::MAX);
            let at = u32::try_from(offset)
                .ok()
                .and_then(|o| begin.checked_add(o))
                .unwrap_or(u32::MAX);
            places.push(Place { at, end, codec });
        }
        Images {
            keys,
            starts,
            data,
            places,
        }
    }

    /// The bytes of one image.
    pub fn image(&self, key: &K) -> Option<&[u8]> {
        let i = self.keys.binary_search(key).ok()?;
        let begin = *self.starts.get(i)? as usize;
        let end = *self.starts.get(i + 1)? as usize;
        self.data.get(begin..end)
    }

    /// Lays the driven values of one step (indexed like the tags) into the images. Lay every
    /// step, emitted or not, so bytes nobody drives any more hold exactly what they would
    /// have held had every step been read.
    pub fn lay(&mut self, samples: &[TagSample]) {
        for (p, sample) in self.places.iter().zip(samples) {
            if let TagSample::Driven(v) = sample {
                if let Some(buf) = self.data.get_mut(p.at as usize..p.end as usize) {
                    encode(p.codec, v, buf);
                }
            }
        }
    }

    /// The value the bytes of tag `tag` hold; `None` if they do not decode.
    pub fn value(&self, tag: usize) -> Option<Value> {
        let p = self.places.get(tag)?;
        decode(p.codec, self.data.get(p.at as usize..p.end as usize)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_and_little_endian_round_trip() {
        let mut buf = [0u8; 8];
        let be = Codec::Scalar {
            data_type: DataType::Int16,
            order: ByteOrder::Big,
        };
        assert!(encode(be, &Value::Int16(0x0102), &mut buf));
        assert_eq!(buf[..2], [1, 2]);
        assert_eq!(decode(be, &buf), Some(Value::Int16(0x0102)));
        let le = Codec::Scalar {
            data_type: DataType::Float,
            order: ByteOrder::Little,
        };
        assert!(encode(le, &Value::Float(1.5), &mut buf));
        assert_eq!(buf[..4], 1.5f32.to_le_bytes());
        assert_eq!(decode(le, &buf), Some(Value::Float(1.5)));
    }

    #[test]
    fn bits_touch_only_their_bit() {
        let mut buf = [0b1000_0001u8];
        assert!(encode(Codec::Bit(3), &Value::Boolean(true), &mut buf));
        assert_eq!(buf[0], 0b1000_1001);
        assert_eq!(decode(Codec::Bit(3), &buf), Some(Value::Boolean(true)));
        assert!(encode(Codec::Bit(0), &Value::Boolean(false), &mut buf));
        assert_eq!(buf[0], 0b1000_1000);
    }

    #[test]
    fn strings_pad_and_truncate() {
        let mut buf = [0u8; 6];
        assert!(encode(
            Codec::Padded { len: 6 },
            &Value::String("ab".into()),
            &mut buf
        ));
        assert_eq!(&buf, b"ab    ");
        assert_eq!(
            decode(Codec::Padded { len: 6 }, &buf),
            Some(Value::String("ab".into()))
        );
        let mut logix = [0u8; 8];
        assert!(encode(
            Codec::Logix { capacity: 4 },
            &Value::String("héllo".into()),
            &mut logix
        ));
        assert_eq!(
            decode(Codec::Logix { capacity: 4 }, &logix),
            Some(Value::String("hél".into()))
        );
    }

    #[test]
    fn images_lie_end_to_end_and_a_place_is_sixteen_bytes() {
        assert!(std::mem::size_of::<Place>() <= 16);
        let word = Codec::Scalar {
            data_type: DataType::UInt16,
            order: ByteOrder::Little,
        };
        let mut images = Images::new(
            BTreeMap::from([("b", 3)]),
            vec![("b", 0, word), ("a", 0, Codec::Bit(1)), ("b", 1, word)],
        );
        images.lay(&[
            TagSample::Driven(Value::UInt16(0x0201)),
            TagSample::Driven(Value::Boolean(true)),
            TagSample::Idle,
        ]);
        assert_eq!(images.image(&"a"), Some(&[0b10][..]));
        assert_eq!(images.image(&"b"), Some(&[1, 2, 0][..]));
        assert_eq!(images.value(2), Some(Value::UInt16(0x0002)));
        assert_eq!(images.image(&"c"), None);
    }

    #[test]
    fn short_buffers_are_refused() {
        let c = Codec::Scalar {
            data_type: DataType::UInt32,
            order: ByteOrder::Big,
        };
        assert!(!encode(c, &Value::UInt32(1), &mut [0u8; 3]));
        assert_eq!(decode(c, &[0u8; 3]), None);
        assert!(!encode(c, &Value::Int32(1), &mut [0u8; 4]));
    }
}
