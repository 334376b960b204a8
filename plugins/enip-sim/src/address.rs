//! EtherNet/IP addressing: CIP paths `@class/instance/attribute[:byte[.bit]]` and Logix
//! symbolic tags `[Program:<name>.]Tag[.Member][[i,j,k]][.bit]`.

use std::fmt;

use serde::Deserialize;
use uaedge_driver::DataType;
use uaedge_sim::parse_number as number;

/// The CIP elementary types a tag may have (`cip_type:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CipType {
    Bool,
    Sint,
    Int,
    Dint,
    Lint,
    Usint,
    Uint,
    Udint,
    Ulint,
    Real,
    Lreal,
    String,
}

impl CipType {
    pub fn name(self) -> &'static str {
        match self {
            CipType::Bool => "BOOL",
            CipType::Sint => "SINT",
            CipType::Int => "INT",
            CipType::Dint => "DINT",
            CipType::Lint => "LINT",
            CipType::Usint => "USINT",
            CipType::Uint => "UINT",
            CipType::Udint => "UDINT",
            CipType::Ulint => "ULINT",
            CipType::Real => "REAL",
            CipType::Lreal => "LREAL",
            CipType::String => "STRING",
        }
    }

    /// The model type holding exactly this CIP type.
    pub fn native(self) -> DataType {
        match self {
            CipType::Bool => DataType::Boolean,
            CipType::Sint => DataType::Int8,
            CipType::Int => DataType::Int16,
            CipType::Dint => DataType::Int32,
            CipType::Lint => DataType::Int64,
            CipType::Usint => DataType::UInt8,
            CipType::Uint => DataType::UInt16,
            CipType::Udint => DataType::UInt32,
            CipType::Ulint => DataType::UInt64,
            CipType::Real => DataType::Float,
            CipType::Lreal => DataType::Double,
            CipType::String => DataType::String,
        }
    }

    /// The CIP type a model type maps to when the user gives none. A datetime is a LINT of
    /// microseconds since 1970, as Logix keeps its wall clock.
    pub fn infer(data_type: DataType) -> CipType {
        match data_type {
            DataType::Boolean => CipType::Bool,
            DataType::Int8 => CipType::Sint,
            DataType::Int16 => CipType::Int,
            DataType::Int32 => CipType::Dint,
            DataType::Int64 | DataType::DateTime => CipType::Lint,
            DataType::UInt8 => CipType::Usint,
            DataType::UInt16 => CipType::Uint,
            DataType::UInt32 => CipType::Udint,
            DataType::UInt64 => CipType::Ulint,
            DataType::Float => CipType::Real,
            DataType::Double => CipType::Lreal,
            DataType::String => CipType::String,
        }
    }

    /// The model types that hold every value of this CIP type without loss.
    pub fn fits(self) -> &'static [DataType] {
        use DataType::*;
        match self {
            CipType::Bool => &[Boolean],
            CipType::Sint => &[Int8, Int16, Int32, Int64, Float, Double],
            CipType::Int => &[Int16, Int32, Int64, Float, Double],
            CipType::Dint => &[Int32, Int64, Double],
            CipType::Lint => &[Int64, DateTime],
            CipType::Usint => &[
                UInt8, UInt16, UInt32, UInt64, Int16, Int32, Int64, Float, Double,
            ],
            CipType::Uint => &[UInt16, UInt32, UInt64, Int32, Int64, Float, Double],
            CipType::Udint => &[UInt32, UInt64, Int64, Double],
            CipType::Ulint => &[UInt64],
            CipType::Real => &[Float, Double],
            CipType::Lreal => &[Double],
            CipType::String => &[String],
        }
    }
}

/// Where a tag lives on the adapter or controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An attribute of a CIP object instance, e.g. assembly data `@4/100/3`, with a byte
    /// offset into it.
    Path {
        class: u16,
        instance: u32,
        attribute: u16,
        offset: u32,
        bit: Option<u8>,
    },
    /// A Logix tag. `base` is the tag without a trailing bit number; `bit` a bit of it.
    Symbol { base: String, bit: Option<u8> },
}

impl Target {
    /// The memory the tag shares with others: one attribute, or one Logix tag. Logix names
    /// are case-insensitive, so the key is lowercased.
    pub fn image_key(&self) -> String {
        match self {
            Target::Path {
                class,
                instance,
                attribute,
                ..
            } => format!("@{class}/{instance}/{attribute}"),
            Target::Symbol { base, .. } => base.to_ascii_lowercase(),
        }
    }

    /// Byte offset and bit within the image.
    pub fn position(&self) -> (usize, Option<u8>) {
        match self {
            Target::Path { offset, bit, .. } => (*offset as usize, *bit),
            // Little-endian: bit n of a DINT is bit n % 8 of byte n / 8.
            Target::Symbol { bit: Some(b), .. } => (usize::from(b / 8), Some(b % 8)),
            Target::Symbol { bit: None, .. } => (0, None),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Path {
                class,
                instance,
                attribute,
                offset,
                bit,
            } => {
                write!(f, "@{class}/{instance}/{attribute}")?;
                if *offset != 0 || bit.is_some() {
                    write!(f, ":{offset}")?;
                }
                if let Some(b) = bit {
                    write!(f, ".{b}")?;
                }
                Ok(())
            }
            Target::Symbol { base, bit: Some(b) } => write!(f, "{base}.{b}"),
            Target::Symbol { base, bit: None } => f.write_str(base),
        }
    }
}

const SYNTAX: &str = "expected a CIP path `@<class>/<instance>/<attribute>[:<byte>[.<bit>]]` \
    (e.g. `@4/100/3:8`) or a Logix tag `[Program:<name>.]<tag>[.<member>][[<index>]][.<bit>]` \
    (e.g. `Program:Main.ConveyorSpeed`, `Line1_Temp[3]`)";

pub fn parse(address: &str) -> Result<Target, String> {
    let text = address.trim();
    let bad = |why: String| format!("`{address}`: {why}; {SYNTAX}");
    if let Some(path) = text.strip_prefix('@') {
        let (path, pos) = match path.split_once(':') {
            Some((p, pos)) => (p, Some(pos)),
            None => (path, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [class, instance, attribute] = parts.as_slice() else {
            return Err(bad(format!(
                "a CIP path has three parts, got {}",
                parts.len()
            )));
        };
        let class = number(class, "class", 0xFFFF).map_err(bad)? as u16;
        let instance = number(instance, "instance", u64::from(u32::MAX)).map_err(bad)? as u32;
        let attribute = number(attribute, "attribute", 0xFFFF).map_err(bad)? as u16;
        let (offset, bit) = match pos {
            None => (0, None),
            Some(pos) => match pos.split_once('.') {
                Some((byte, bit)) => (
                    number(byte, "byte offset", 0xFFFF).map_err(bad)? as u32,
                    Some(number(bit, "bit", 7).map_err(bad)? as u8),
                ),
                None => (
                    number(pos, "byte offset", 0xFFFF).map_err(bad)? as u32,
                    None,
                ),
            },
        };
        return Ok(Target::Path {
            class,
            instance,
            attribute,
            offset,
            bit,
        });
    }
    if text.is_empty() {
        return Err(bad("empty address".into()));
    }
    let (program, rest) = match text.split_once(':') {
        Some((p, rest)) if p.eq_ignore_ascii_case("program") => {
            let (name, rest) = rest
                .split_once('.')
                .ok_or_else(|| bad("`Program:<name>` must be followed by `.<tag>`".into()))?;
            identifier(name).map_err(bad)?;
            (Some(name), rest)
        }
        Some((p, _)) => return Err(bad(format!("`{p}:` is not a scope; only `Program:` is"))),
        None => (None, text),
    };
    let mut members: Vec<&str> = split_members(rest);
    let bit = match members.last() {
        Some(last) if members.len() > 1 && last.bytes().all(|b| b.is_ascii_digit()) => {
            let b = number(last, "bit", 63).map_err(bad)? as u8;
            members.pop();
            Some(b)
        }
        _ => None,
    };
    for m in &members {
        member(m).map_err(bad)?;
    }
    let mut base = members.join(".");
    if let Some(p) = program {
        base = format!("Program:{p}.{base}");
    }
    Ok(Target::Symbol { base, bit })
}

/// Splits on dots outside brackets.
fn split_members(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut from) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(s.get(from..i).unwrap_or_default());
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(from..).unwrap_or_default());
    out
}

fn member(m: &str) -> Result<(), String> {
    let Some(open) = m.find('[') else {
        return identifier(m);
    };
    identifier(m.get(..open).unwrap_or_default())?;
    let inner = m
        .get(open + 1..)
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| {
            format!("`{m}`: an index is `[<n>]` or `[<n>,<m>]` at the end of a member")
        })?;
    let dims: Vec<&str> = inner.split(',').collect();
    if dims.len() > 3 {
        return Err(format!("`{m}`: Logix arrays have at most 3 dimensions"));
    }
    for d in dims {
        number(d.trim(), "array index", u64::from(u32::MAX))?;
    }
    Ok(())
}

/// Logix tag name rules: a letter or `_` first, then letters, digits and single `_`, at
/// most 40 characters, not ending in `_`.
fn identifier(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a Logix name (a letter or `_`, then letters, digits, `_`)"
        ));
    }
    if name.len() > 40 {
        return Err(format!(
            "`{name}` is longer than the 40 characters Logix allows"
        ));
    }
    if name.contains("__") || name.ends_with('_') {
        return Err(format!(
            "`{name}`: Logix names have no double or trailing `_`"
        ));
    }
    Ok(())
}
