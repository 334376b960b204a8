//! Tag addresses: parsed once at load into a table, an offset and the value's layout.

use std::fmt;

use uaedge_driver::DataType;

use crate::options::{ByteOrder, TagOptions, MAX_REGISTERS};

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

impl Table {
    pub fn prefix(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "di",
            Table::InputRegister => "ir",
            Table::HoldingRegister => "hr",
        }
    }

    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    fn from_prefix(s: &str) -> Option<Table> {
        Some(match s.to_ascii_lowercase().as_str() {
            "coil" | "co" | "c" => Table::Coil,
            "di" | "discrete" | "discrete_input" => Table::DiscreteInput,
            "ir" | "input" | "input_register" => Table::InputRegister,
            "hr" | "holding" | "holding_register" => Table::HoldingRegister,
            _ => return None,
        })
    }

    fn from_classic_digit(d: char) -> Option<Table> {
        Some(match d {
            '0' => Table::Coil,
            '1' => Table::DiscreteInput,
            '3' => Table::InputRegister,
            '4' => Table::HoldingRegister,
            _ => return None,
        })
    }
}

/// How a tag's value sits in its table, derived from the tag's type at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One coil or discrete input.
    Bit,
    /// One bit (0 = least significant) of a register's value.
    RegisterBit(u8),
    /// The low byte of a register.
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    I64,
    U64,
    F64,
    /// A fixed-length ASCII string of this many bytes, two per register.
    Str(u16),
}

impl Format {
    /// How many items (bits for bit tables, registers otherwise) the value occupies.
    pub fn width(self) -> u16 {
        match self {
            Format::Bit | Format::RegisterBit(_) => 1,
            Format::I8 | Format::U8 | Format::I16 | Format::U16 => 1,
            Format::I32 | Format::U32 | Format::F32 => 2,
            Format::I64 | Format::U64 | Format::F64 => 4,
            Format::Str(len) => len.div_ceil(2),
        }
    }

    fn for_registers(data_type: DataType, length: Option<u16>) -> Result<Format, String> {
        Ok(match data_type {
            DataType::Int8 => Format::I8,
            DataType::UInt8 => Format::U8,
            DataType::Int16 => Format::I16,
            DataType::UInt16 => Format::U16,
            DataType::Int32 => Format::I32,
            DataType::UInt32 => Format::U32,
            DataType::Float => Format::F32,
            DataType::Int64 => Format::I64,
            DataType::UInt64 => Format::U64,
            DataType::Double => Format::F64,
            DataType::String => {
                let max = MAX_REGISTERS * 2;
                match length {
                    Some(len) if (1..=max).contains(&len) => Format::Str(len),
                    Some(len) => {
                        return Err(format!(
                            "string `length: {len}` must be between 1 and {max} characters (one read)"
                        ))
                    }
                    None => {
                        return Err(
                            "a `string` tag needs its length in characters: `options: { length: 16 }`"
                                .into(),
                        )
                    }
                }
            }
            DataType::Boolean => {
                return Err(
                    "a bool in a register needs a bit number, e.g. `hr:100.3` (bit 3, 0 = least significant)"
                        .into(),
                )
            }
            DataType::DateTime => {
                return Err(
                    "Modbus has no datetime type; read the raw registers as integers instead"
                        .into(),
                )
            }
        })
    }
}

/// A parsed tag address with everything the tag's options add to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModbusAddress {
    pub table: Table,
    /// 0-based offset of the first register or bit, as sent on the wire.
    pub offset: u16,
    pub format: Format,
    /// The tag's own unit id; `None` takes the device's.
    pub unit_id: Option<u8>,
    /// The tag's own byte order; `None` takes the device's.
    pub byte_order: Option<ByteOrder>,
}

impl ModbusAddress {
    /// The items this tag reads, as a half-open range of offsets (u32: may end at 65536).
    pub fn span(&self) -> (u32, u32) {
        let start = u32::from(self.offset);
        (start, start + u32::from(self.format.width()))
    }
}

impl fmt::Display for ModbusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.table.prefix(), self.offset)?;
        if let Format::RegisterBit(bit) = self.format {
            write!(f, ".{bit}")?;
        }
        if let Some(unit) = self.unit_id {
            write!(f, " unit {unit}")?;
        }
        if let Some(order) = self.byte_order {
            write!(f, " {order}")?;
        }
        Ok(())
    }
}

const SYNTAX: &str = "expected `hr:100`, `ir:0`, `coil:5`, `di:7`, `hr:100.3` (bit 3) with 0-based offsets, or a classic 1-based reference like `400101`/`40101` (holding), `300001` (input), `100001` (discrete), `000001` (coil)";

/// Parses `address` for a tag of `data_type` with `options`.
pub fn parse(
    address: &str,
    data_type: DataType,
    options: &TagOptions,
) -> Result<ModbusAddress, String> {
    let text = address.trim();
    let (table, offset, bit) = parse_location(text)?;

    if options.length.is_some() && data_type != DataType::String {
        return Err(format!(
            "`length` applies to string tags only, not {data_type}"
        ));
    }

    let format = if table.is_bits() {
        if bit.is_some() {
            return Err(format!(
                "`{text}`: a {} is a single bit already; drop the `.bit` suffix",
                table_noun(table)
            ));
        }
        if data_type != DataType::Boolean {
            return Err(format!(
                "`{text}`: a {} holds one bit, so the tag must be `bool`, not {data_type}; use `hr:`/`ir:` for numbers",
                table_noun(table)
            ));
        }
        Format::Bit
    } else if let Some(bit) = bit {
        if data_type != DataType::Boolean {
            return Err(format!(
                "`{text}` addresses one bit, so the tag must be `bool`, not {data_type}"
            ));
        }
        Format::RegisterBit(bit)
    } else {
        Format::for_registers(data_type, options.length).map_err(|e| format!("`{text}`: {e}"))?
    };

    if options.byte_order.is_some() && matches!(format, Format::Bit | Format::RegisterBit(_)) {
        return Err("`byte_order` has no effect on a single bit; remove it".into());
    }

    let end = u32::from(offset) + u32::from(format.width());
    if end > 65536 {
        return Err(format!(
            "`{text}`: {data_type} needs {} registers from offset {offset}, past the last one (65535)",
            format.width()
        ));
    }

    Ok(ModbusAddress {
        table,
        offset,
        format,
        unit_id: options.unit_id,
        byte_order: options.byte_order,
    })
}

fn table_noun(table: Table) -> &'static str {
    match table {
        Table::Coil => "coil",
        Table::DiscreteInput => "discrete input",
        Table::InputRegister => "input register",
        Table::HoldingRegister => "holding register",
    }
}

fn parse_location(text: &str) -> Result<(Table, u16, Option<u8>), String> {
    let (main, bit) = match text.split_once('.') {
        Some((main, bit)) => {
            let b: u8 = bit
                .parse()
                .ok()
                .filter(|b| *b < 16)
                .ok_or_else(|| format!("bit `{bit}` in `{text}` must be 0-15"))?;
            (main, Some(b))
        }
        None => (text, None),
    };

    if let Some((prefix, number)) = main.split_once(':') {
        let table = Table::from_prefix(prefix.trim())
            .ok_or_else(|| format!("unknown table `{prefix}` in `{text}`: {SYNTAX}"))?;
        let number = number.trim();
        let offset = if let Some(hex) = number
            .strip_prefix("0x")
            .or_else(|| number.strip_prefix("0X"))
        {
            u16::from_str_radix(hex, 16).ok()
        } else {
            number.parse::<u16>().ok()
        };
        let offset = offset.ok_or_else(|| {
            format!("offset `{number}` in `{text}` must be a number 0-65535 (0-based)")
        })?;
        return Ok((table, offset, bit));
    }

    if !main.is_empty() && main.chars().all(|c| c.is_ascii_digit()) {
        if main.len() != 5 && main.len() != 6 {
            return Err(format!(
                "`{text}`: a classic reference has 5 digits (40001-49999) or 6 digits (400001-465536); quote it in YAML so leading zeros survive. {SYNTAX}"
            ));
        }
        let mut chars = main.chars();
        let table = chars
            .next()
            .and_then(Table::from_classic_digit)
            .ok_or_else(|| {
                format!("`{text}`: the first digit must be 0 (coil), 1 (discrete), 3 (input) or 4 (holding)")
            })?;
        let number: u32 = chars.as_str().parse().map_err(|_| SYNTAX.to_string())?;
        if number == 0 || number > 65536 {
            return Err(format!(
                "`{text}`: classic references are 1-based, so the number after the table digit must be 1-{}",
                if main.len() == 5 { 9999 } else { 65536 }
            ));
        }
        let offset = u16::try_from(number - 1).map_err(|_| SYNTAX.to_string())?;
        return Ok((table, offset, bit));
    }

    Err(format!("cannot read address `{text}`: {SYNTAX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, t: DataType) -> Result<ModbusAddress, String> {
        parse(s, t, &TagOptions::default())
    }

    fn loc(s: &str, t: DataType) -> (Table, u16, Format) {
        let a = p(s, t).unwrap();
        (a.table, a.offset, a.format)
    }

    #[test]
    fn prefixed_offsets_are_zero_based() {
        use DataType::*;
        assert_eq!(
            loc("hr:100", UInt16),
            (Table::HoldingRegister, 100, Format::U16)
        );
        assert_eq!(loc("ir:0", Float), (Table::InputRegister, 0, Format::F32));
        assert_eq!(loc("coil:5", Boolean), (Table::Coil, 5, Format::Bit));
        assert_eq!(
            loc("di:65535", Boolean),
            (Table::DiscreteInput, 65535, Format::Bit)
        );
        assert_eq!(
            loc("HR:0x10", Int64),
            (Table::HoldingRegister, 16, Format::I64)
        );
        assert_eq!(
            loc("hr:100.3", Boolean),
            (Table::HoldingRegister, 100, Format::RegisterBit(3))
        );
        assert_eq!(
            loc(" holding:7 ", Double),
            (Table::HoldingRegister, 7, Format::F64)
        );
    }

    #[test]
    fn classic_references_are_one_based() {
        use DataType::*;
        assert_eq!(
            loc("400101", Int16),
            (Table::HoldingRegister, 100, Format::I16)
        );
        assert_eq!(
            loc("40101", Int16),
            (Table::HoldingRegister, 100, Format::I16)
        );
        assert_eq!(
            loc("40001", Int16),
            (Table::HoldingRegister, 0, Format::I16)
        );
        assert_eq!(
            loc("465536", UInt16),
            (Table::HoldingRegister, 65535, Format::U16)
        );
        assert_eq!(
            loc("300001", UInt32),
            (Table::InputRegister, 0, Format::U32)
        );
        assert_eq!(loc("30001", UInt32), (Table::InputRegister, 0, Format::U32));
        assert_eq!(
            loc("100001", Boolean),
            (Table::DiscreteInput, 0, Format::Bit)
        );
        assert_eq!(
            loc("10010", Boolean),
            (Table::DiscreteInput, 9, Format::Bit)
        );
        assert_eq!(loc("000001", Boolean), (Table::Coil, 0, Format::Bit));
        assert_eq!(loc("00001", Boolean), (Table::Coil, 0, Format::Bit));
        assert_eq!(
            loc("400101.15", Boolean),
            (Table::HoldingRegister, 100, Format::RegisterBit(15))
        );
    }

    #[test]
    fn strings_take_their_length_from_options() {
        let opts = TagOptions {
            length: Some(11),
            ..TagOptions::default()
        };
        let a = parse("hr:10", DataType::String, &opts).unwrap();
        assert_eq!(a.format, Format::Str(11));
        assert_eq!(a.format.width(), 6);
        assert_eq!(a.span(), (10, 16));
    }

    #[test]
    fn mistakes_are_explained() {
        use DataType::*;
        let len = |n| TagOptions {
            length: Some(n),
            ..TagOptions::default()
        };
        let order = TagOptions {
            byte_order: Some(ByteOrder::Cdab),
            ..TagOptions::default()
        };
        let cases: Vec<(Result<ModbusAddress, std::string::String>, &str)> = vec![
            (p("coil:1", Float), "must be `bool`, not float32"),
            (p("di:1", Int16), "must be `bool`"),
            (p("hr:1", Boolean), "needs a bit number"),
            (p("hr:1.16", Boolean), "0-15"),
            (p("hr:1.2", Int16), "must be `bool`"),
            (p("coil:1.2", Boolean), "single bit already"),
            (p("hr:1", String), "needs its length"),
            (parse("hr:1", String, &len(251)), "between 1 and 250"),
            (parse("hr:1", Int16, &len(4)), "string tags only"),
            (parse("coil:1", Boolean, &order), "no effect"),
            (p("hr:65535", Float), "past the last one"),
            (p("hr:70000", Int16), "0-65535"),
            (p("xx:1", Int16), "unknown table"),
            (p("1", Boolean), "quote it"),
            (p("40000", Int16), "1-based"),
            (p("500001", Int16), "first digit"),
            (p("465537", Int16), "1-65536"),
            (p("hr:1", DateTime), "datetime"),
            (p("", Int16), "cannot read address"),
        ];
        for (result, needle) in cases {
            let err = result.unwrap_err();
            assert!(err.contains(needle), "expected `{needle}` in: {err}");
        }
    }

    #[test]
    fn displays_as_the_prefixed_form() {
        let opts = TagOptions {
            unit_id: Some(3),
            byte_order: Some(ByteOrder::Cdab),
            length: None,
        };
        let a = parse("400101", DataType::Float, &opts).unwrap();
        assert_eq!(a.to_string(), "hr:100 unit 3 CDAB");
        assert_eq!(
            p("hr:5.2", DataType::Boolean).unwrap().to_string(),
            "hr:5.2"
        );
    }
}
