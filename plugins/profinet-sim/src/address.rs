//! PROFINET addressing: `in:<slot>.<subslot>:<byte>[.<bit>]`, `out:…` for output data,
//! `rec:<slot>.<subslot>:<index>[:<byte>[.<bit>]]` for acyclic record data.

use std::fmt;

use uaedge_driver::DataType;
use uaedge_sim::image::{ByteOrder, Codec};
use uaedge_sim::parse_number as number;

/// Which memory of a subslot a tag lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    /// Cyclic input data (device → controller).
    Input,
    /// Cyclic output data (controller → device); writable.
    Output,
    /// Acyclic record data by index (read/write record).
    Record(u16),
}

/// Where a tag sits in a PROFINET device, and how its bytes decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PnLocation {
    pub area: Area,
    pub slot: u16,
    pub subslot: u16,
    pub offset: u32,
    pub codec: Codec,
}

impl PnLocation {
    /// One past the last byte the tag occupies.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.codec.size() as u64
    }
}

const SYNTAX: &str = "expected `in:<slot>.<subslot>:<byte>`, `out:<slot>.<subslot>:<byte>`, \
    `in:<slot>.<subslot>:<byte>.<bit>` for a bool, or `rec:<slot>.<subslot>:<index>[:<byte>]` \
    (e.g. `in:1.1:0`, `out:2.1:4`, `in:1.1:2.3`, `rec:1.1:0xAFF0`)";

/// Parses an address. `length` is the tag's `length:` option (bytes of a string).
pub fn parse(
    address: &str,
    data_type: DataType,
    length: Option<u32>,
) -> Result<PnLocation, String> {
    let bad = |why: String| format!("`{address}`: {why}; {SYNTAX}");
    let mut parts = address.trim().split(':');
    let area = parts.next().unwrap_or_default();
    let slots = parts
        .next()
        .ok_or_else(|| bad("missing slot.subslot".into()))?;
    let (slot, subslot) = slots
        .split_once('.')
        .ok_or_else(|| bad(format!("`{slots}` is not <slot>.<subslot>")))?;
    let slot = number(slot, "slot", 0x7FFF).map_err(bad)? as u16;
    let subslot = number(subslot, "subslot", 0xFFFF).map_err(bad)? as u16;
    if subslot == 0 {
        return Err(bad(
            "subslot 0 holds no submodule; subslots start at 1".into()
        ));
    }
    let (area, byte) = match area {
        "in" | "out" => {
            let byte = parts
                .next()
                .ok_or_else(|| bad("missing byte offset".into()))?;
            (
                if area == "in" {
                    Area::Input
                } else {
                    Area::Output
                },
                byte,
            )
        }
        "rec" => {
            let index = parts
                .next()
                .ok_or_else(|| bad("missing record index".into()))?;
            let index = number(index, "record index", 0xFFFF).map_err(bad)? as u16;
            (Area::Record(index), parts.next().unwrap_or("0"))
        }
        other => return Err(bad(format!("unknown area `{other}` (in, out or rec)"))),
    };
    if let Some(extra) = parts.next() {
        return Err(bad(format!("unexpected `:{extra}`")));
    }
    let (byte, bit) = match byte.split_once('.') {
        Some((b, bit)) => (b, Some(number(bit, "bit", 7).map_err(bad)? as u8)),
        None => (byte, None),
    };
    let offset = number(byte, "byte offset", u64::from(u16::MAX)).map_err(bad)? as u32;
    let codec = match (data_type, bit) {
        (DataType::Boolean, Some(bit)) => Codec::Bit(bit),
        (DataType::Boolean, None) => {
            return Err(format!(
                "`{address}`: a bool is one bit of a byte; add the bit, e.g. `{}.0`",
                address.trim()
            ))
        }
        (t, Some(_)) => {
            return Err(format!(
                "`{address}`: only bool tags take a bit (`.<bit>`), this one is {t}"
            ))
        }
        (DataType::String, None) => match length {
            Some(len) if len > 0 => Codec::Padded { len },
            _ => {
                return Err(format!(
                    "`{address}`: a string tag needs `length:` (bytes) in its options"
                ))
            }
        },
        (DataType::DateTime, None) => {
            return Err(format!(
                "`{address}`: PROFINET IO data has no datetime encoding; use uint64 or int64"
            ))
        }
        (t, None) => Codec::Scalar {
            data_type: t,
            order: ByteOrder::Big,
        },
    };
    if data_type != DataType::String && length.is_some() {
        return Err(format!(
            "`{address}`: `length:` applies to string tags only"
        ));
    }
    Ok(PnLocation {
        area,
        slot,
        subslot,
        offset,
        codec,
    })
}

impl fmt::Display for PnLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.area {
            Area::Input => write!(f, "in:{}.{}:{}", self.slot, self.subslot, self.offset)?,
            Area::Output => write!(f, "out:{}.{}:{}", self.slot, self.subslot, self.offset)?,
            Area::Record(i) => write!(
                f,
                "rec:{}.{}:{i:#06X}:{}",
                self.slot, self.subslot, self.offset
            )?,
        }
        if let Codec::Bit(bit) = self.codec {
            write!(f, ".{bit}")?;
        }
        Ok(())
    }
}

/// Checks a NameOfStation: DNS-like labels of lowercase letters, digits and `-`, at most
/// 240 characters, not an IP address and not a port name (IEC 61158-6-10).
pub fn check_station(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("station name `{name}` {why}"));
    if name.is_empty() || name.len() > 240 {
        return bad("must be 1 to 240 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("has an empty label or one longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("may hold only lowercase letters, digits, `-` and `.`");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("has a label starting or ending with `-`");
        }
    }
    if name.split('.').count() == 4 && name.split('.').all(|l| l.parse::<u8>().is_ok()) {
        return bad("must not look like an IP address");
    }
    if name.starts_with("port-")
        && name
            .get(5..8)
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("must not look like a port name (`port-xyz`)");
    }
    Ok(())
}
