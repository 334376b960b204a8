//! Modbus responses: arbitrary tags are planned into read requests (`plan::plan`), an
//! arbitrary response PDU is parsed by tokio-modbus (`Response::try_from`, the part of its
//! decoder it makes public; MBAP/RTU framing is private to it), and the registers it yields,
//! or arbitrary ones of any length, are decoded into every tag (`codec::decode`, every
//! format × byte order). Checked: the plan covers each tag once, inside its block and
//! within the request limit; decode gives a value exactly when it has the format's width;
//! a decoded value encodes back to registers that decode to the same value.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tokio_modbus::bytes::Bytes;
use tokio_modbus::Response;
use uaedge_driver::Value;
use uaedge_modbus::codec;
use uaedge_modbus::plan::{plan, Limits, Span};
use uaedge_modbus::{ByteOrder, Format, Table};

/// The options' bounds (options.rs): what a validated device can ask for.
const MAX_REGISTERS: u16 = 125;
const MAX_BITS: u16 = 2000;
const MAX_STRING: u16 = 250;

const ORDERS: [ByteOrder; 4] = [
    ByteOrder::Abcd,
    ByteOrder::Cdab,
    ByteOrder::Badc,
    ByteOrder::Dcba,
];
const TABLES: [Table; 4] = [
    Table::Coil,
    Table::DiscreteInput,
    Table::InputRegister,
    Table::HoldingRegister,
];

fn format(u: &mut Unstructured) -> arbitrary::Result<Format> {
    Ok(match u.int_in_range(0..=12)? {
        0 => Format::Bit,
        // Addresses accept bits 0-15 only (address.rs).
        1 => Format::RegisterBit(u.int_in_range(0..=15)?),
        2 => Format::I8,
        3 => Format::U8,
        4 => Format::I16,
        5 => Format::U16,
        6 => Format::I32,
        7 => Format::U32,
        8 => Format::F32,
        9 => Format::I64,
        10 => Format::U64,
        11 => Format::F64,
        _ => Format::Str(u.int_in_range(1..=MAX_STRING)?),
    })
}

/// A tag as the driver reads it: where, and how to decode it.
struct Tag {
    span: Span,
    format: Format,
    order: ByteOrder,
}

fn tag(u: &mut Unstructured, index: usize) -> arbitrary::Result<Tag> {
    let table = *u.choose(&TABLES)?;
    let format = if table.is_bits() {
        Format::Bit
    } else {
        match format(u)? {
            Format::Bit => Format::U16,
            f => f,
        }
    };
    let len = format.width();
    // Validation keeps every tag inside the 65536 addresses of its table.
    let start = u.int_in_range(0..=u16::MAX - (len - 1))?;
    Ok(Tag {
        span: Span {
            tag: index,
            unit: u.int_in_range(1..=3)?,
            table,
            start,
            len,
        },
        format,
        order: *u.choose(&ORDERS)?,
    })
}

fn same(a: &Value, b: &Value) -> bool {
    // Bitwise for floats, so that NaN payloads count as equal when they survive.
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn check_decode(format: Format, regs: &[u16], order: ByteOrder) {
    let value = codec::decode(format, regs, order);
    let fits = format != Format::Bit && regs.len() == usize::from(format.width());
    assert_eq!(
        value.is_some(),
        fits,
        "{format:?} from {regs:04X?} {order:?}: {value:?}"
    );
    let Some(value) = value else { return };
    if let Format::RegisterBit(_) = format {
        return; // written by read-modify-write in driver.rs, not by encode
    }
    match codec::encode(format, &value, order) {
        Ok(back) => {
            let again = codec::decode(format, &back, order);
            assert!(
                again.as_ref().is_some_and(|v| same(v, &value)),
                "{format:?} {order:?}: {regs:04X?} → {value:?} → {back:04X?} → {again:?}"
            );
        }
        // A device may hold bytes a write may not send (non-ASCII text); nothing else fails.
        Err(e) => assert!(
            matches!(&value, Value::String(s) if !s.is_ascii()),
            "{value:?} decoded as {format:?} but does not encode: {e}"
        ),
    }
}

fn run(mut u: Unstructured) -> arbitrary::Result<()> {
    let u = &mut u;
    // 1. One value from a register slice of any length, in every byte order.
    let f = format(u)?;
    let regs: Vec<u16> = u
        .arbitrary_len::<u16>()
        .and_then(|n| (0..n.min(130)).map(|_| u.arbitrary()).collect())?;
    for order in ORDERS {
        check_decode(f, &regs, order);
    }

    // 2. A device's tags, planned into requests.
    let limits = Limits {
        max_gap: u.arbitrary()?,
        max_registers: u.int_in_range(1..=MAX_REGISTERS)?,
        max_bits: u.int_in_range(1..=MAX_BITS)?,
    };
    let n = u.int_in_range(0..=64)?;
    let tags = (0..n)
        .map(|i| tag(u, i))
        .collect::<arbitrary::Result<Vec<Tag>>>()?;
    let spans: Vec<Span> = tags.iter().map(|t| t.span).collect();
    let blocks = plan(&spans, limits);
    let mut seen = vec![0u32; tags.len()];
    for b in &blocks {
        let max = if b.table.is_bits() {
            limits.max_bits
        } else {
            limits.max_registers
        };
        assert!(
            b.count <= max || b.tags.len() == 1,
            "block {b:?} over the limit {max}"
        );
        for &i in &b.tags {
            seen[i] += 1;
            let s = tags[i].span;
            assert_eq!((s.unit, s.table), (b.unit, b.table), "{s:?} in {b:?}");
            let end = u32::from(b.start) + u32::from(b.count);
            assert!(
                s.start >= b.start && u32::from(s.start) + u32::from(s.len) <= end,
                "{s:?} outside {b:?}"
            );
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "tags planned {seen:?} times");

    // 3. A response PDU as tokio-modbus parses it; its registers (or arbitrary ones when it
    // is not a register read) sliced into the first register block's tags as driver.rs does:
    // `words.get(offset - start ..+ width)`, a missing slice being "answer too short".
    let len = u.len();
    let pdu = Bytes::copy_from_slice(u.bytes(len)?);
    let words = match Response::try_from(pdu) {
        Ok(Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w)) => w,
        _ => regs,
    };
    if let Some(b) = blocks.iter().find(|b| !b.table.is_bits()) {
        for &i in &b.tags {
            let t = &tags[i];
            let at = usize::from(t.span.start - b.start);
            if let Some(slice) = words.get(at..at + usize::from(t.format.width())) {
                check_decode(t.format, slice, t.order);
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
