//! Values to and from registers: pure functions, one byte-order rule for every width.
//!
//! A value's canonical form is its big-endian byte string `B0 B1 … B2n-1` (B0 most
//! significant). With `n` registers on the wire, `R0` first:
//!
//! | order | `R_i` = (high byte, low byte) | pymodbus `convert_*_registers` |
//! |---|---|---|
//! | ABCD | `(B[2i], B[2i+1])` | `word_order="big"` |
//! | CDAB | `(B[2(n-1-i)], B[2(n-1-i)+1])`: register order fully reversed | `word_order="little"` |
//! | BADC | `(B[2i+1], B[2i])`: bytes swapped in each register | `"big"`, then swap each register's bytes |
//! | DCBA | `(B[2(n-1-i)+1], B[2(n-1-i)])`: the whole byte string reversed (little-endian) | `"little"`, then swap bytes |
//!
//! For 64-bit values CDAB therefore means `[GH, EF, CD, AB]` (all four registers reversed,
//! as pymodbus, Kepware's "first word low" with "first dword low" and node-red-contrib-modbus
//! do), not a swap within each pair. For one-register values ABCD = CDAB and BADC = DCBA
//! (a byte swap). Strings are read first character first: only the byte swap of
//! BADC/DCBA applies to them, never a register reversal. A bit in a register (`hr:100.3`)
//! counts bits of the register as received, whatever the byte order.

use uaedge_driver::Value;

use crate::address::Format;
use crate::options::ByteOrder;

/// Puts wire registers into canonical big-endian byte order. The two swaps are involutions
/// and commute, so the same function converts in both directions.
fn reorder(regs: &[u16], order: ByteOrder, out: &mut [u8]) {
    let n = regs.len();
    for (i, chunk) in out.chunks_exact_mut(2).enumerate() {
        let src = if order.word_swap() { n - 1 - i } else { i };
        let word = regs.get(src).copied().unwrap_or(0);
        let word = if order.byte_swap() {
            word.swap_bytes()
        } else {
            word
        };
        chunk.copy_from_slice(&word.to_be_bytes());
    }
}

fn to_registers(bytes: &[u8], order: ByteOrder) -> Vec<u16> {
    let words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect();
    let mut out = vec![0u8; words.len() * 2];
    reorder(&words, order, &mut out);
    out.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn canonical<const N: usize>(regs: &[u16], order: ByteOrder) -> Option<[u8; N]> {
    if regs.len() * 2 != N {
        return None;
    }
    let mut b = [0u8; N];
    reorder(regs, order, &mut b);
    Some(b)
}

/// Decodes a register-table value from exactly `format.width()` registers.
/// `None` when the slice has the wrong length, the format is a coil bit, or a register bit
/// lies outside its 16-bit register (address parsing refuses those; this does not rely on it).
pub fn decode(format: Format, regs: &[u16], order: ByteOrder) -> Option<Value> {
    Some(match format {
        Format::Bit => return None,
        Format::RegisterBit(bit) => {
            let [word] = regs else { return None };
            Value::Boolean(word.checked_shr(u32::from(bit))? & 1 == 1)
        }
        Format::I8 => Value::Int8(i8::from_be_bytes([canonical::<2>(regs, order)?[1]])),
        Format::U8 => Value::UInt8(canonical::<2>(regs, order)?[1]),
        Format::I16 => Value::Int16(i16::from_be_bytes(canonical(regs, order)?)),
        Format::U16 => Value::UInt16(u16::from_be_bytes(canonical(regs, order)?)),
        Format::I32 => Value::Int32(i32::from_be_bytes(canonical(regs, order)?)),
        Format::U32 => Value::UInt32(u32::from_be_bytes(canonical(regs, order)?)),
        Format::F32 => Value::Float(f32::from_be_bytes(canonical(regs, order)?)),
        Format::I64 => Value::Int64(i64::from_be_bytes(canonical(regs, order)?)),
        Format::U64 => Value::UInt64(u64::from_be_bytes(canonical(regs, order)?)),
        Format::F64 => Value::Double(f64::from_be_bytes(canonical(regs, order)?)),
        Format::Str(len) => {
            if regs.len() != usize::from(format.width()) {
                return None;
            }
            let mut bytes = Vec::with_capacity(regs.len() * 2);
            for word in regs {
                let word = if order.byte_swap() {
                    word.swap_bytes()
                } else {
                    *word
                };
                bytes.extend_from_slice(&word.to_be_bytes());
            }
            bytes.truncate(usize::from(len));
            let end = bytes
                .iter()
                .rposition(|b| *b != 0 && *b != b' ')
                .map_or(0, |p| p + 1);
            bytes.truncate(end);
            // A device's garbage byte should show up as a replacement character, not blank
            // the whole tag.
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
    })
}

/// Encodes `value` (already of the tag's type) into the registers to write.
/// Bits in registers are not encoded here: they need the register's current value.
pub fn encode(format: Format, value: &Value, order: ByteOrder) -> Result<Vec<u16>, String> {
    let mismatch = || format!("{} cannot be written as {format:?}", value.data_type());
    let regs = match (format, value) {
        // Sign-extended so that a device that keeps the value as an int16 reads it right.
        (Format::I8, Value::Int8(v)) => to_registers(&i16::from(*v).to_be_bytes(), order),
        (Format::U8, Value::UInt8(v)) => to_registers(&u16::from(*v).to_be_bytes(), order),
        (Format::I16, Value::Int16(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::U16, Value::UInt16(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::I32, Value::Int32(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::U32, Value::UInt32(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::F32, Value::Float(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::I64, Value::Int64(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::U64, Value::UInt64(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::F64, Value::Double(v)) => to_registers(&v.to_be_bytes(), order),
        (Format::Str(len), Value::String(s)) => {
            if !s.is_ascii() {
                return Err(format!("{s:?} is not ASCII"));
            }
            if s.len() > usize::from(len) {
                return Err(format!(
                    "{s:?} is {} characters, longer than the tag's length {len}",
                    s.len()
                ));
            }
            // NUL padding, as pymodbus and most devices do; reads trim it again.
            let mut bytes = s.as_bytes().to_vec();
            bytes.resize(usize::from(format.width()) * 2, 0);
            bytes
                .chunks_exact(2)
                .map(|c| {
                    let word = u16::from_be_bytes([c[0], c[1]]);
                    if order.byte_swap() {
                        word.swap_bytes()
                    } else {
                        word
                    }
                })
                .collect()
        }
        _ => return Err(mismatch()),
    };
    Ok(regs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteOrder::*;

    const ORDERS: [ByteOrder; 4] = [Abcd, Cdab, Badc, Dcba];

    fn check(format: Format, value: Value, expected: [&[u16]; 4]) {
        for (order, regs) in ORDERS.into_iter().zip(expected) {
            assert_eq!(
                encode(format, &value, order).unwrap(),
                regs,
                "encode {value:?} {order}"
            );
            assert_eq!(
                decode(format, regs, order),
                Some(value.clone()),
                "decode {regs:04X?} {order}"
            );
        }
    }

    #[test]
    fn one_register_types() {
        check(
            Format::I16,
            Value::Int16(-2),
            [&[0xFFFE], &[0xFFFE], &[0xFEFF], &[0xFEFF]],
        );
        check(
            Format::U16,
            Value::UInt16(0x1234),
            [&[0x1234], &[0x1234], &[0x3412], &[0x3412]],
        );
        check(
            Format::U8,
            Value::UInt8(0xAB),
            [&[0x00AB], &[0x00AB], &[0xAB00], &[0xAB00]],
        );
        check(
            Format::I8,
            Value::Int8(-3),
            [&[0xFFFD], &[0xFFFD], &[0xFDFF], &[0xFDFF]],
        );
    }

    #[test]
    fn eight_bit_reads_take_the_low_byte_only() {
        assert_eq!(
            decode(Format::U8, &[0x12FE], Abcd),
            Some(Value::UInt8(0xFE))
        );
        assert_eq!(decode(Format::I8, &[0x12FE], Abcd), Some(Value::Int8(-2)));
        assert_eq!(
            decode(Format::U8, &[0x12FE], Badc),
            Some(Value::UInt8(0x12))
        );
    }

    #[test]
    fn two_register_types() {
        // 123.456f32 = 0x42F6E979
        check(
            Format::F32,
            Value::Float(123.456),
            [
                &[0x42F6, 0xE979],
                &[0xE979, 0x42F6],
                &[0xF642, 0x79E9],
                &[0x79E9, 0xF642],
            ],
        );
        check(
            Format::U32,
            Value::UInt32(0x1234_5678),
            [
                &[0x1234, 0x5678],
                &[0x5678, 0x1234],
                &[0x3412, 0x7856],
                &[0x7856, 0x3412],
            ],
        );
        // -2 = 0xFFFFFFFE
        check(
            Format::I32,
            Value::Int32(-2),
            [
                &[0xFFFF, 0xFFFE],
                &[0xFFFE, 0xFFFF],
                &[0xFFFF, 0xFEFF],
                &[0xFEFF, 0xFFFF],
            ],
        );
    }

    #[test]
    fn four_register_types() {
        check(
            Format::U64,
            Value::UInt64(0x0102_0304_0506_0708),
            [
                &[0x0102, 0x0304, 0x0506, 0x0708],
                &[0x0708, 0x0506, 0x0304, 0x0102],
                &[0x0201, 0x0403, 0x0605, 0x0807],
                &[0x0807, 0x0605, 0x0403, 0x0201],
            ],
        );
        // -2 = 0xFFFF_FFFF_FFFF_FFFE
        check(
            Format::I64,
            Value::Int64(-2),
            [
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
                &[0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
                &[0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
            ],
        );
        // 123.456f64 = 0x405E_DD2F_1A9F_BE77
        check(
            Format::F64,
            Value::Double(123.456),
            [
                &[0x405E, 0xDD2F, 0x1A9F, 0xBE77],
                &[0xBE77, 0x1A9F, 0xDD2F, 0x405E],
                &[0x5E40, 0x2FDD, 0x9F1A, 0x77BE],
                &[0x77BE, 0x9F1A, 0x2FDD, 0x5E40],
            ],
        );
    }

    #[test]
    fn strings_pad_with_nul_and_trim_on_read() {
        check(
            Format::Str(5),
            Value::String("AB".into()),
            [
                &[0x4142, 0x0000, 0x0000],
                &[0x4142, 0x0000, 0x0000],
                &[0x4241, 0x0000, 0x0000],
                &[0x4241, 0x0000, 0x0000],
            ],
        );
        check(
            Format::Str(3),
            Value::String("abc".into()),
            [
                &[0x6162, 0x6300],
                &[0x6162, 0x6300],
                &[0x6261, 0x0063],
                &[0x6261, 0x0063],
            ],
        );
        // Space padding and a byte past the length are trimmed away.
        assert_eq!(
            decode(Format::Str(5), &[0x4F4B, 0x2020, 0x2058], Abcd),
            Some(Value::String("OK".into()))
        );
        assert!(encode(Format::Str(2), &Value::String("abc".into()), Abcd).is_err());
        assert!(encode(Format::Str(4), &Value::String("é".into()), Abcd).is_err());
    }

    #[test]
    fn register_bits_ignore_byte_order() {
        for order in ORDERS {
            assert_eq!(
                decode(Format::RegisterBit(3), &[0x0008], order),
                Some(Value::Boolean(true))
            );
            assert_eq!(
                decode(Format::RegisterBit(15), &[0x7FFF], order),
                Some(Value::Boolean(false))
            );
            assert_eq!(decode(Format::RegisterBit(16), &[0xFFFF], order), None);
        }
    }

    #[test]
    fn wrong_sizes_and_types_are_refused() {
        assert_eq!(decode(Format::F32, &[0x42F6], Abcd), None);
        assert_eq!(decode(Format::U16, &[], Abcd), None);
        assert_eq!(decode(Format::Str(4), &[0x4142], Abcd), None);
        assert!(encode(Format::F32, &Value::Double(1.0), Abcd).is_err());
    }
}
