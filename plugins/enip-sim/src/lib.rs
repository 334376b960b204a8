//! `enip-sim`: a simulated EtherNet/IP (CIP) adapter or Logix controller.
//!
//! # Addresses
//! - CIP path `@<class>/<instance>/<attribute>[:<byte>[.<bit>]]`, numbers decimal or `0x`
//!   hex: `@4/100/3` is assembly 100's data, `@4/100/3:8` the value at byte 8 of it,
//!   `@4/100/3:4.0` bit 0 of byte 4 (bool tags). Tags over the same attribute share its
//!   little-endian bytes, as CIP lays them.
//! - Logix tag `[Program:<name>.]<tag>[.<member>…][[i[,j[,k]]]][.<bit>]`:
//!   `Program:Main.ConveyorSpeed`, `Line1_Temp[3]`, `Drive.Status.3` (bit 3 of `Drive.Status`;
//!   a bit tag and its whole-word tag share bytes). Names are case-insensitive, as in Logix.
//!
//! # CIP types
//! `cip_type:` (tag option) is one of BOOL, SINT, INT, DINT, LINT, USINT, UINT, UDINT, ULINT,
//! REAL, LREAL, STRING. Without it the type follows the model type (int32 → DINT, float32 →
//! REAL, datetime → LINT µs since 1970, …). With it the model type must hold every value of
//! the CIP type (`cip_type: REAL` on a float64 tag is fine, `DINT` on float32 is not); a
//! write that does not fit the CIP type is refused with general status 0x09. STRING is a
//! Logix STRING (82 characters) and only on symbolic tags.
//!
//! # Faults and status
//! The `faults:` of `uaedge_sim`. A tag in a `dropout` reads Bad(CommFailure) — the
//! controller answers general status 0x02 (resource unavailable) — and one in a
//! `device_failure` Bad(DeviceFailure), status 0x10 (device state conflict).
//!
//! # Example
//! ```yaml
//! devices:
//!   - name: pack1
//!     driver: enip-sim
//!     poll_interval: 500ms
//!     options:
//!       host: 10.20.0.15
//!       slot: 0
//!       seed: 11
//!       faults:
//!         - { kind: stuck, tag: conveyor/speed, at: 3m, duration: 45s, every: 10m }
//!         - { kind: spike, tag: motor/current, at: 7m, magnitude: 12, duration: 2s, every: 10m }
//!         - { kind: dropout, tag: line/temperature, at: 5m, duration: 20s, every: 15m }
//!         - { kind: offline, at: 25m, duration: 20s, every: 1h }
//!     tags:
//!       - name: conveyor/speed
//!         type: float32
//!         address: "Program:Main.ConveyorSpeed"
//!         units: m/min
//!         options: { signal: sine, amplitude: 4, offset: 42, period: 5m, noise: 0.2 }
//!       - name: motor/current
//!         type: float32
//!         address: "@4/100/3:0"
//!         units: A
//!         options: { signal: random_walk, start: 11, step: 0.1, min: 8, max: 16, noise: 0.05 }
//!       - name: motor/running
//!         type: bool
//!         address: "@4/100/3:4.0"
//!         options: { signal: constant, value: true }
//!       - name: line/temperature
//!         type: float64
//!         address: "Line1_Temp[3]"
//!         units: °C
//!         options: { cip_type: REAL, signal: random_walk, start: 24, step: 0.05, min: 18, max: 32 }
//!       - name: jam
//!         type: bool
//!         address: "Program:Main.Status.3"
//!         options: { signal: square, period: 7m, duty: 0.02 }
//!       - name: product_count
//!         type: int64
//!         address: "Program:Main.ProductCount"
//!         options: { cip_type: DINT, signal: counter, period: 1500ms }
//!       - name: conveyor/speed_setpoint
//!         type: float32
//!         address: "Program:Main.SpeedSetpoint"
//!         units: m/min
//!         writable: true
//!         options: { signal: constant, value: 42 }
//!       - name: recipe
//!         type: string
//!         address: "Program:Main.RecipeName"
//!         writable: true
//!         options: { signal: cycle, values: [CEREAL-500G, CEREAL-1KG], period: 30m }
//! ```
//! `tests/driver.rs` loads this very block, so it stays valid.

mod address;
mod driver;

use std::collections::HashMap;

use serde::Deserialize;
use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, Duration, TagSpec};
use uaedge_sim::image::{ByteOrder, Codec};
use uaedge_sim::{FaultSpec, Signal, SimAddress, SystemClock};

pub use address::{CipType, Target};
pub use driver::EnipSimDriver;

/// The driver name in config.
pub const DRIVER_NAME: &str = "enip-sim";

/// Characters of a Logix STRING.
pub const LOGIX_STRING_CAPACITY: usize = 82;

/// A device's `options:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnipSimOptions {
    /// Where the real adapter would be (informational, shown in logs).
    #[serde(default)]
    pub host: Option<String>,
    /// The controller's slot in its chassis (informational).
    #[serde(default)]
    pub slot: u8,
    #[serde(default)]
    pub seed: u64,
    /// Virtual time step; defaults to the device's poll interval.
    #[serde(default)]
    pub sample_period: Option<Duration>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

uaedge_sim::sim_tag_options! {
    /// A tag's `options:`: the signal keys plus `cip_type`.
    pub struct EnipTagOptions {
        pub cip_type: Option<CipType>,
    }
}

/// A parsed tag address with its CIP type and validated signal.
#[derive(Debug, Clone, PartialEq)]
pub struct EnipAddress {
    pub target: Target,
    pub cip_type: CipType,
    /// The model type the simulated device holds the value in (the CIP type's own).
    pub native: DataType,
    pub codec: Codec,
    pub signal: Signal,
    pub noise: f64,
}

impl SimAddress for EnipAddress {
    fn signal(&self) -> &Signal {
        &self.signal
    }

    fn noise(&self) -> f64 {
        self.noise
    }

    fn native_type(&self, _model: DataType) -> DataType {
        self.native
    }
}

pub struct EnipSimFactory;

impl DriverFactory for EnipSimFactory {
    type Options = EnipSimOptions;
    type TagOptions = EnipTagOptions;
    type Address = EnipAddress;

    fn parse_address(
        &self,
        address: &str,
        data_type: DataType,
        options: &EnipTagOptions,
    ) -> Result<EnipAddress, String> {
        let target = address::parse(address)?;
        let cip_type = options.cip_type.unwrap_or(CipType::infer(data_type));
        if !cip_type.fits().contains(&data_type) {
            let fits: Vec<&str> = cip_type.fits().iter().map(|t| t.name()).collect();
            return Err(format!(
                "`cip_type: {}` does not fit a {data_type} tag ({} fits {})",
                cip_type.name(),
                cip_type.name(),
                fits.join(", ")
            ));
        }
        let native = if data_type == DataType::DateTime {
            DataType::DateTime
        } else {
            cip_type.native()
        };
        let (_, bit) = target.position();
        let codec = match (bit, cip_type, &target) {
            (Some(b), CipType::Bool, _) => Codec::Bit(b),
            (Some(_), t, _) => {
                return Err(format!("`{address}`: a bit address is a BOOL, not {}", t.name()))
            }
            (None, CipType::String, Target::Path { .. }) => {
                return Err(format!(
                    "`{address}`: STRING inside CIP attribute data is not simulated; address the string as a Logix tag"
                ))
            }
            (None, CipType::String, Target::Symbol { .. }) => Codec::Logix { capacity: LOGIX_STRING_CAPACITY as u32 },
            (None, _, _) => Codec::Scalar { data_type: native, order: ByteOrder::Little },
        };
        let (signal, noise) = options
            .signal_options()
            .build(native)
            .map_err(|e| format!("options: {e}"))?;
        Ok(EnipAddress {
            target,
            cip_type,
            native,
            codec,
            signal,
            noise,
        })
    }

    fn validate(
        &self,
        options: &EnipSimOptions,
        tags: &[TagSpec<EnipAddress>],
    ) -> Result<(), String> {
        if let Some(host) = &options.host {
            if host.trim().is_empty() || host.contains(char::is_whitespace) {
                return Err(format!("`host: {host:?}` is not a host name or address"));
            }
        }
        // Symbols are case-insensitive. Indexed once, so a controller of 100,000 tags is
        // checked in linear time.
        let mut whole: HashMap<String, &TagSpec<EnipAddress>> = HashMap::new();
        for o in tags {
            if let Target::Symbol { base, bit: None } = &o.address.target {
                whole.entry(base.to_ascii_lowercase()).or_insert(o);
            }
        }
        let mut addresses: HashMap<String, &TagSpec<EnipAddress>> = HashMap::new();
        for tag in tags {
            if let Target::Symbol {
                base,
                bit: Some(bit),
            } = &tag.address.target
            {
                if let Some(parent) = whole.get(&base.to_ascii_lowercase()) {
                    let width = parent.address.codec.size() * 8;
                    if !parent.address.cip_type.native().is_numeric()
                        || parent.address.cip_type.native().is_float()
                        || usize::from(*bit) >= width
                    {
                        return Err(format!(
                            "tag `{}`: `{}` has no bit {bit} (tag `{}` is a {})",
                            tag.name,
                            base,
                            parent.name,
                            parent.address.cip_type.name()
                        ));
                    }
                }
            }
            if let Target::Symbol { .. } = tag.address.target {
                let key = tag.address.target.to_string().to_ascii_lowercase();
                if let Some(other) = addresses.get(&key) {
                    return Err(format!(
                        "tag `{}`: `{}` is already the address of tag `{}`",
                        tag.name, tag.address.target, other.name
                    ));
                }
                addresses.insert(key, tag);
            }
        }
        uaedge_sim::check_device(options.sample_period, &options.faults, tags)
    }

    fn build(
        &self,
        device: &DeviceInfo,
        options: EnipSimOptions,
        tags: Vec<TagSpec<EnipAddress>>,
    ) -> Box<dyn Driver> {
        let driver = EnipSimDriver::new(device, options, tags, std::sync::Arc::new(SystemClock));
        uaedge_sim::box_driver(device, driver)
    }

    fn describe(&self, address: &EnipAddress) -> String {
        format!("{} ({})", address.target, address.cip_type.name())
    }
}
