//! Device and tag options as written in config, checked and turned into typed values at load.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;
use uaedge_driver::Duration;

/// The Modbus protocol limit for one read of holding/input registers (function 3/4).
pub const MAX_REGISTERS: u16 = 125;
/// The Modbus protocol limit for one read of coils/discrete inputs (function 1/2).
pub const MAX_BITS: u16 = 2000;

/// How the 16-bit registers of a value map onto its bytes. Letters name the bytes of the
/// value in big-endian order (A most significant) as they appear on the wire, register by
/// register. See the crate documentation for the full definition and the pymodbus mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// Modbus standard: most significant register first, high byte first in each register.
    #[default]
    Abcd,
    /// Register order reversed (least significant register first), bytes big-endian.
    Cdab,
    /// Registers most significant first, bytes swapped inside each register.
    Badc,
    /// Fully little-endian: register order reversed and bytes swapped.
    Dcba,
}

impl ByteOrder {
    /// True when the order of registers is reversed (least significant register first).
    pub fn word_swap(self) -> bool {
        matches!(self, ByteOrder::Cdab | ByteOrder::Dcba)
    }

    /// True when the two bytes inside each register are swapped.
    pub fn byte_swap(self) -> bool {
        matches!(self, ByteOrder::Badc | ByteOrder::Dcba)
    }

    pub fn name(self) -> &'static str {
        match self {
            ByteOrder::Abcd => "ABCD",
            ByteOrder::Cdab => "CDAB",
            ByteOrder::Badc => "BADC",
            ByteOrder::Dcba => "DCBA",
        }
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ByteOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "ABCD" => Ok(ByteOrder::Abcd),
            "CDAB" => Ok(ByteOrder::Cdab),
            "BADC" => Ok(ByteOrder::Badc),
            "DCBA" => Ok(ByteOrder::Dcba),
            _ => Err(format!(
                "unknown byte order `{s}`, expected one of ABCD, CDAB, BADC, DCBA"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ByteOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a TCP peer lives. An IP literal becomes a socket address at load; a host name is
/// kept and resolved at each connect, because plants do re-point DNS names at spare devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            Endpoint::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Endpoint {
    fn parse(host: &str, port: u16) -> Result<Endpoint, String> {
        let host = host.trim();
        if host.is_empty() {
            return Err("`host` is empty".into());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Endpoint::Addr(SocketAddr::new(ip, port)));
        }
        if host.contains(':') {
            return Err(format!(
                "`host: {host}` is not an IP address or host name; put the port in `port:`"
            ));
        }
        let valid = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        });
        if !valid || host.len() > 253 {
            return Err(format!("`host: {host}` is not an IP address or host name"));
        }
        Ok(Endpoint::Name {
            host: host.to_string(),
            port,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// A serial line's settings for RTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial {
    pub path: String,
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp(Endpoint),
    /// RTU frames (with CRC, no MBAP header) through a TCP serial gateway.
    RtuOverTcp(Endpoint),
    Rtu(Serial),
}

impl Transport {
    pub fn is_serial_framing(&self) -> bool {
        matches!(self, Transport::Rtu(_) | Transport::RtuOverTcp(_))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tcp(e) => write!(f, "tcp://{e}"),
            Transport::RtuOverTcp(e) => write!(f, "rtu-over-tcp://{e}"),
            Transport::Rtu(s) => write!(f, "rtu://{}@{}", s.path, s.baud_rate),
        }
    }
}

/// A device's `options:`. See the crate documentation for the YAML shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawOptions")]
pub struct Options {
    pub transport: Transport,
    pub unit_id: u8,
    pub timeout: Duration,
    pub retries: u32,
    pub max_gap: u16,
    pub max_registers_per_request: u16,
    pub max_bits_per_request: u16,
    pub byte_order: ByteOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TransportKind {
    Tcp,
    Rtu,
    #[serde(alias = "rtu_over_tcp")]
    RtuOverTcp,
}

/// `port:` is a TCP port for the network transports and a device path for serial RTU; one
/// key keeps the YAML what an engineer would write for either.
#[derive(Debug, Clone)]
enum PortField {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for PortField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TCP port number or a serial device path")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortField, E> {
                Ok(PortField::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortField, E> {
                Ok(PortField::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortField, E> {
                Ok(PortField::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The flat shape as written; every transport-specific key is optional here so that a key
/// given to the wrong transport gets a message naming the transport it belongs to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    transport: TransportKind,
    host: Option<String>,
    port: Option<PortField>,
    baud_rate: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<Parity>,
    stop_bits: Option<u8>,
    unit_id: Option<u8>,
    timeout: Option<Duration>,
    retries: Option<u32>,
    max_gap: Option<u16>,
    max_registers_per_request: Option<u16>,
    max_bits_per_request: Option<u16>,
    byte_order: Option<ByteOrder>,
}

impl TryFrom<RawOptions> for Options {
    type Error = String;

    fn try_from(raw: RawOptions) -> Result<Self, Self::Error> {
        let transport = match raw.transport {
            TransportKind::Tcp | TransportKind::RtuOverTcp => {
                let name = if raw.transport == TransportKind::Tcp {
                    "tcp"
                } else {
                    "rtu-over-tcp"
                };
                for (key, given) in [
                    ("baud_rate", raw.baud_rate.is_some()),
                    ("data_bits", raw.data_bits.is_some()),
                    ("parity", raw.parity.is_some()),
                    ("stop_bits", raw.stop_bits.is_some()),
                ] {
                    if given {
                        return Err(format!(
                            "`{key}` applies to `transport: rtu` (a serial line), not `{name}`"
                        ));
                    }
                }
                let host = raw
                    .host
                    .ok_or_else(|| format!("`transport: {name}` needs `host:`"))?;
                let port = match raw.port {
                    None => Some(502),
                    Some(PortField::Number(p)) => u16::try_from(p).ok(),
                    Some(PortField::Text(ref t)) => t.trim().parse::<u16>().ok(),
                }
                .filter(|p| *p != 0)
                .ok_or_else(|| match &raw.port {
                    Some(PortField::Number(p)) => {
                        format!("`port: {p}` is not a TCP port (1-65535)")
                    }
                    Some(PortField::Text(t)) => format!("`port: {t}` is not a TCP port (1-65535)"),
                    None => String::new(),
                })?;
                let endpoint = Endpoint::parse(&host, port)?;
                if raw.transport == TransportKind::Tcp {
                    Transport::Tcp(endpoint)
                } else {
                    Transport::RtuOverTcp(endpoint)
                }
            }
            TransportKind::Rtu => {
                if raw.host.is_some() {
                    return Err(
                        "`host` applies to `transport: tcp` or `rtu-over-tcp`; a serial line takes `port: /dev/ttyUSB0`"
                            .into(),
                    );
                }
                let path = match raw.port {
                    Some(PortField::Text(t)) if !t.trim().is_empty() => t.trim().to_string(),
                    _ => {
                        return Err(
                            "`transport: rtu` needs the serial device in `port:`, e.g. `port: /dev/ttyUSB0`"
                                .into(),
                        )
                    }
                };
                let baud_rate = raw.baud_rate.unwrap_or(9600);
                if baud_rate == 0 {
                    return Err("`baud_rate` must be positive, e.g. 9600 or 19200".into());
                }
                let data_bits = raw.data_bits.unwrap_or(8);
                if !(5..=8).contains(&data_bits) {
                    return Err(format!("`data_bits: {data_bits}` must be 5, 6, 7 or 8"));
                }
                let stop_bits = raw.stop_bits.unwrap_or(1);
                if !(1..=2).contains(&stop_bits) {
                    return Err(format!("`stop_bits: {stop_bits}` must be 1 or 2"));
                }
                Transport::Rtu(Serial {
                    path,
                    baud_rate,
                    data_bits,
                    parity: raw.parity.unwrap_or(Parity::None),
                    stop_bits,
                })
            }
        };
        let unit_id = raw.unit_id.unwrap_or(1);
        check_unit_id(&transport, unit_id)?;
        let timeout = raw.timeout.unwrap_or(Duration::from_secs(1));
        if timeout.get().is_zero() {
            return Err("`timeout` must be longer than zero, e.g. `timeout: 500ms`".into());
        }
        let max_registers_per_request = raw.max_registers_per_request.unwrap_or(MAX_REGISTERS);
        if !(1..=MAX_REGISTERS).contains(&max_registers_per_request) {
            return Err(format!(
                "`max_registers_per_request: {max_registers_per_request}` must be between 1 and {MAX_REGISTERS} (the Modbus limit)"
            ));
        }
        let max_bits_per_request = raw.max_bits_per_request.unwrap_or(MAX_BITS);
        if !(1..=MAX_BITS).contains(&max_bits_per_request) {
            return Err(format!(
                "`max_bits_per_request: {max_bits_per_request}` must be between 1 and {MAX_BITS} (the Modbus limit)"
            ));
        }
        Ok(Options {
            transport,
            unit_id,
            timeout,
            retries: raw.retries.unwrap_or(1),
            max_gap: raw.max_gap.unwrap_or(10),
            max_registers_per_request,
            max_bits_per_request,
            byte_order: raw.byte_order.unwrap_or_default(),
        })
    }
}

/// Unit 0 is broadcast on a serial line (no device answers a read) and ids above 247 are
/// reserved there; through a TCP gateway 0 and 255 are common ways to address "the device".
pub fn check_unit_id(transport: &Transport, unit_id: u8) -> Result<(), String> {
    if transport.is_serial_framing() && !(1..=247).contains(&unit_id) {
        return Err(format!(
            "`unit_id: {unit_id}` cannot be read on a serial line: use 1-247 (0 is broadcast)"
        ));
    }
    Ok(())
}

/// A tag's `options:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagOptions {
    /// Overrides the device's `unit_id` (several units behind one gateway connection).
    pub unit_id: Option<u8>,
    /// Overrides the device's `byte_order` for this multi-register value.
    pub byte_order: Option<ByteOrder>,
    /// Length in characters (bytes) of a `string` tag.
    pub length: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Options, String> {
        serde_yaml::from_str::<Options>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn tcp_defaults() {
        let o = parse("transport: tcp\nhost: 10.0.0.5\n").unwrap();
        assert_eq!(
            o.transport,
            Transport::Tcp(Endpoint::Addr("10.0.0.5:502".parse().unwrap()))
        );
        assert_eq!(o.unit_id, 1);
        assert_eq!(o.timeout, Duration::from_secs(1));
        assert_eq!(o.retries, 1);
        assert_eq!(o.max_gap, 10);
        assert_eq!(o.max_registers_per_request, 125);
        assert_eq!(o.max_bits_per_request, 2000);
        assert_eq!(o.byte_order, ByteOrder::Abcd);
    }

    #[test]
    fn tcp_with_name_and_everything() {
        let o = parse(
            "transport: rtu-over-tcp\nhost: gw-3.plant.local\nport: 4001\nunit_id: 7\ntimeout: 250ms\nretries: 0\nmax_gap: 0\nmax_registers_per_request: 60\nmax_bits_per_request: 800\nbyte_order: cdab\n",
        )
        .unwrap();
        assert_eq!(
            o.transport,
            Transport::RtuOverTcp(Endpoint::Name {
                host: "gw-3.plant.local".into(),
                port: 4001
            })
        );
        assert_eq!(o.byte_order, ByteOrder::Cdab);
        assert_eq!(o.max_registers_per_request, 60);
        assert_eq!(o.timeout, Duration::from_millis(250));
    }

    #[test]
    fn rtu_serial() {
        let o =
            parse("transport: rtu\nport: /dev/ttyUSB0\nbaud_rate: 19200\nparity: even\n").unwrap();
        assert_eq!(
            o.transport,
            Transport::Rtu(Serial {
                path: "/dev/ttyUSB0".into(),
                baud_rate: 19200,
                data_bits: 8,
                parity: Parity::Even,
                stop_bits: 1
            })
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("transport: tcp\n", "needs `host:`"),
            (
                "transport: tcp\nhost: 10.0.0.5\nbaud_rate: 9600\n",
                "baud_rate",
            ),
            (
                "transport: tcp\nhost: 10.0.0.5:502\n",
                "put the port in `port:`",
            ),
            (
                "transport: tcp\nhost: 10.0.0.5\nport: 70000\n",
                "`port: 70000` is not a TCP port",
            ),
            (
                "transport: tcp\nhost: 10.0.0.5\nport: /dev/ttyS0\n",
                "is not a TCP port",
            ),
            ("transport: rtu\nport: 502\n", "port: /dev/ttyUSB0"),
            ("transport: tcp\nhost: 10.0.0.5\nbogus: 1\n", "bogus"),
            ("transport: rtu\n", "port: /dev/ttyUSB0"),
            (
                "transport: rtu\nport: /dev/ttyS0\nunit_id: 0\n",
                "broadcast",
            ),
            (
                "transport: rtu\nport: /dev/ttyS0\nstop_bits: 3\n",
                "stop_bits",
            ),
            (
                "transport: tcp\nhost: h\nmax_registers_per_request: 200\n",
                "125",
            ),
            (
                "transport: tcp\nhost: h\nmax_bits_per_request: 2001\n",
                "2000",
            ),
            ("transport: tcp\nhost: h\ntimeout: 5\n", "duration"),
            ("transport: tcp\nhost: h\nbyte_order: XYZW\n", "ABCD"),
            ("transport: udp\nhost: h\n", "udp"),
        ];
        for (yaml, needle) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn tag_options_refuse_unknown_keys() {
        let t: TagOptions = serde_yaml::from_str("unit_id: 3\nbyte_order: DCBA\n").unwrap();
        assert_eq!(t.unit_id, Some(3));
        assert_eq!(t.byte_order, Some(ByteOrder::Dcba));
        assert!(serde_yaml::from_str::<TagOptions>("lenght: 3\n").is_err());
    }
}
