//! Modbus client driver for uaedge: Modbus TCP, RTU on a serial line, and RTU framing
//! through a TCP serial gateway (`rtu-over-tcp`), on `tokio-modbus`.
//!
//! # Device
//!
//! ```yaml
//! devices:
//!   - name: press3
//!     driver: modbus
//!     poll_interval: 500ms
//!     options:
//!       transport: tcp          # tcp | rtu-over-tcp | rtu
//!       host: 10.0.0.5          # tcp, rtu-over-tcp: an IP address or a host name
//!       port: 502               # tcp, rtu-over-tcp: default 502; rtu: the serial device
//!       unit_id: 1              # default 1 (slave id; 1-247 on serial framing)
//!       timeout: 500ms          # per request, default 1s
//!       retries: 1              # extra attempts after a timeout, default 1
//!       byte_order: ABCD        # device default for multi-register values: ABCD CDAB BADC DCBA
//!       max_gap: 10             # unused registers/bits bridged to merge two tags into one read
//!       max_registers_per_request: 125   # ≤ 125
//!       max_bits_per_request: 2000       # ≤ 2000
//!     tags:
//!       - { name: hydraulics/pressure, type: float32, address: "hr:100" }
//!       - { name: hydraulics/setpoint, type: float32, address: "400103", writable: true,
//!           options: { byte_order: CDAB } }
//!       - { name: counters/parts, type: uint64, address: "ir:0" }
//!       - { name: status/running, type: bool, address: "hr:10.0" }
//!       - { name: status/fault, type: bool, address: "di:3" }
//!       - { name: motor/start, type: bool, address: "coil:0", writable: true }
//!       - { name: recipe/name, type: string, address: "hr:200", options: { length: 16 } }
//!       - { name: drive2/speed, type: int16, address: "hr:0", options: { unit_id: 2 } }
//! ```
//!
//! A serial line instead: `transport: rtu`, `port: /dev/ttyUSB0`, `baud_rate: 19200`
//! (default 9600), `data_bits: 8` (5-8, default 8), `parity: even` (none|even|odd, default
//! none), `stop_bits: 1` (1|2, default 1). A key that belongs to another transport is an
//! error that says which transport it belongs to.
//!
//! # Addresses
//!
//! `coil:N`, `di:N`, `ir:N`, `hr:N` with 0-based offsets `N` (as sent on the wire; `0x`
//! hex allowed), `hr:N.B` / `ir:N.B` for bit `B` (0 = least significant) of a register, or the
//! classic 1-based references: `400101` or `40101` (holding, offset 100), `300001`/`30001`
//! (input), `100001`/`10001` (discrete), `000001`/`00001` (coil), also with a `.B` suffix.
//! Quote classic references in YAML so that leading zeros survive.
//!
//! Per-tag `options:` are `unit_id` (another unit on the same connection), `byte_order`
//! and `length` (characters of a `string` tag, required there).
//!
//! Types: `bool` (a coil, discrete input, or a register bit), `int8`/`uint8` (the low byte of
//! one register; writes sign- or zero-extend into the whole register), `int16`/`uint16` (1
//! register), `int32`/`uint32`/`float32` (2), `int64`/`uint64`/`float64` (4), `string`
//! (ASCII, `ceil(length/2)` registers, first character in the high byte, NUL padded on write,
//! trailing NULs and spaces trimmed on read). Byte orders are defined in [`codec`]: ABCD
//! and CDAB are pymodbus's `word_order="big"` and `"little"` (for 64-bit values CDAB
//! reverses all four registers).
//!
//! # Reading
//!
//! Tags are grouped by (unit, table) and merged into as few requests as `max_gap` and the
//! per-request maxima allow; the plan is made once, at build. A Modbus exception makes only
//! that request's tags Bad (DeviceFailure) and the link stays up; an IllegalDataAddress on a
//! merged request switches that request to one read per tag for the driver's lifetime, so
//! one missing register does not blank its neighbours. Timeouts (after `retries`) and
//! transport errors are [`LinkError`]s: the runtime reconnects.

mod address;
pub mod codec;
mod driver;
mod options;
// Public for the fuzz target (tests/fuzz) only.
#[doc(hidden)]
pub mod plan;
mod transport;

use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, TagSpec};

pub use address::{Format, ModbusAddress, Table};
pub use options::{ByteOrder, Endpoint, Options, Parity, Serial, TagOptions, Transport};

use driver::{BlockState, ModbusDriver, Tag};
use plan::{Limits, Span};

/// The factory the runtime registers under `driver: modbus`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModbusFactory;

impl DriverFactory for ModbusFactory {
    type Options = Options;
    type TagOptions = TagOptions;
    type Address = ModbusAddress;

    fn parse_address(
        &self,
        address: &str,
        data_type: DataType,
        options: &TagOptions,
    ) -> Result<ModbusAddress, String> {
        address::parse(address, data_type, options)
    }

    fn validate(&self, options: &Options, tags: &[TagSpec<ModbusAddress>]) -> Result<(), String> {
        let mut problems = Vec::new();
        for tag in tags {
            let a = &tag.address;
            if tag.writable && !a.table.is_writable() {
                problems.push(format!(
                    "tag `{}`: `{a}` is read-only ({}); only coils and holding registers can be written",
                    tag.name,
                    if a.table == Table::DiscreteInput {
                        "a discrete input"
                    } else {
                        "an input register"
                    }
                ));
            }
            if let Some(unit) = a.unit_id {
                if let Err(e) = options::check_unit_id(&options.transport, unit) {
                    problems.push(format!("tag `{}`: {e}", tag.name));
                }
            }
            let max = if a.table.is_bits() {
                options.max_bits_per_request
            } else {
                options.max_registers_per_request
            };
            if a.format.width() > max {
                problems.push(format!(
                    "tag `{}`: needs {} registers but `max_registers_per_request` is {max}",
                    tag.name,
                    a.format.width()
                ));
            }
        }
        problems.extend(straddling_tags(options, tags));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn build(
        &self,
        device: &DeviceInfo,
        options: Options,
        tags: Vec<TagSpec<ModbusAddress>>,
    ) -> Box<dyn Driver> {
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|t| Tag {
                unit: t.address.unit_id.unwrap_or(options.unit_id),
                order: t.address.byte_order.unwrap_or(options.byte_order),
                table: t.address.table,
                offset: t.address.offset,
                format: t.address.format,
                name: t.name,
                data_type: t.data_type,
                writable: t.writable,
                fault: None,
            })
            .collect();
        let spans: Vec<Span> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| Span {
                tag: i,
                unit: t.unit,
                table: t.table,
                start: t.offset,
                len: t.format.width(),
            })
            .collect();
        let blocks = plan::plan(
            &spans,
            Limits {
                max_gap: options.max_gap,
                max_registers: options.max_registers_per_request,
                max_bits: options.max_bits_per_request,
            },
        );
        tracing::debug!(device = %device.name, tags = tags.len(), requests = blocks.len(), "read plan");
        Box::new(ModbusDriver {
            device: device.name.clone(),
            transport: options.transport,
            default_unit: options.unit_id,
            timeout: options.timeout.get(),
            retries: options.retries,
            tags,
            blocks: blocks
                .into_iter()
                .map(|block| BlockState {
                    block,
                    split: false,
                    fault: None,
                })
                .collect(),
            ctx: None,
            no_mask_write: Vec::new(),
        })
    }

    fn describe(&self, address: &ModbusAddress) -> String {
        address.to_string()
    }
}

/// Two multi-register values that share some registers but where neither contains the other
/// (a float32 at hr:100 and another at hr:101) are almost always an off-by-one in the
/// config. Reading one register in two ways (a uint32 and a bit of its low word, or the same
/// register as int16 and uint16) is normal and allowed.
fn straddling_tags(options: &Options, tags: &[TagSpec<ModbusAddress>]) -> Vec<String> {
    let mut spans: Vec<(u8, Table, u32, u32, usize)> = tags
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.address.table.is_bits() && t.address.format.width() > 1)
        .map(|(i, t)| {
            let (start, end) = t.address.span();
            let unit = t.address.unit_id.unwrap_or(options.unit_id);
            (unit, t.address.table, start, end, i)
        })
        .collect();
    spans.sort_unstable();
    let mut problems = Vec::new();
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1) {
            if (b.0, b.1) != (a.0, a.1) || b.2 >= a.3 {
                break;
            }
            if b.2 > a.2 && b.3 > a.3 {
                let (ta, tb) = (&tags[a.4], &tags[b.4]);
                problems.push(format!(
                    "tags `{}` ({} at {}) and `{}` ({} at {}) share registers without one containing the other; one address is probably off by one",
                    ta.name, ta.data_type, ta.address, tb.name, tb.data_type, tb.address
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, t: DataType, address: &str, writable: bool) -> TagSpec<ModbusAddress> {
        TagSpec {
            name: name.into(),
            data_type: t,
            writable,
            address: address::parse(address, t, &TagOptions::default()).unwrap(),
        }
    }

    fn options(yaml: &str) -> Options {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn validate_allows_shared_registers_and_refuses_real_mistakes() {
        let f = ModbusFactory;
        let tcp = options("transport: tcp\nhost: 127.0.0.1\n");
        let fine = [
            tag("a", DataType::UInt32, "hr:100", false),
            tag("a_lo", DataType::UInt16, "hr:101", false),
            tag("a_bit", DataType::Boolean, "hr:100.4", false),
            tag("a_again", DataType::Float, "hr:100", true),
            tag("b", DataType::Float, "hr:102", false),
            tag("c", DataType::Float, "ir:101", false),
        ];
        assert_eq!(f.validate(&tcp, &fine), Ok(()));

        let err = f
            .validate(
                &tcp,
                &[
                    tag("x", DataType::Float, "hr:100", false),
                    tag("y", DataType::Float, "hr:101", false),
                ],
            )
            .unwrap_err();
        assert!(
            err.contains("`x`") && err.contains("`y`") && err.contains("off by one"),
            "{err}"
        );

        let err = f
            .validate(&tcp, &[tag("in", DataType::Int16, "ir:1", true)])
            .unwrap_err();
        assert!(err.contains("read-only"), "{err}");
        let err = f
            .validate(&tcp, &[tag("di", DataType::Boolean, "di:1", true)])
            .unwrap_err();
        assert!(err.contains("discrete input"), "{err}");

        let small = options("transport: tcp\nhost: h\nmax_registers_per_request: 2\n");
        let err = f
            .validate(&small, &[tag("d", DataType::Double, "hr:0", false)])
            .unwrap_err();
        assert!(err.contains("max_registers_per_request"), "{err}");

        let rtu = options("transport: rtu-over-tcp\nhost: h\n");
        let mut broadcast = tag("b", DataType::Int16, "hr:0", false);
        broadcast.address.unit_id = Some(0);
        assert!(f.validate(&rtu, &[broadcast.clone()]).is_err());
        assert!(f.validate(&tcp, &[broadcast]).is_ok());
    }
}
