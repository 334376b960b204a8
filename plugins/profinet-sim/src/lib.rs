//! `profinet-sim`: a simulated PROFINET IO device. It keeps PROFINET's own model: a
//! station name, modules plugged into slots and subslots, cyclic input and output data as
//! big-endian byte images per subslot, an IO provider status (IOPS) per subslot, and
//! acyclic record data by index. Tag values are laid into those images and decoded back,
//! so two tags over the same bytes agree and a bool can be one bit of a byte.
//!
//! # Addresses
//! - `in:<slot>.<subslot>:<byte>` input data at a byte offset, e.g. `in:1.1:0`
//! - `out:<slot>.<subslot>:<byte>` output data (the only cyclic data a tag may write)
//! - `in:1.1:2.3` bit 3 (0 = least significant) of byte 2: bool tags only, and they must
//!   name a bit
//! - `rec:<slot>.<subslot>:<index>[:<byte>]` record data, index in decimal or `0x` hex,
//!   e.g. `rec:0.1:0xAFF0` (I&M0)
//!
//! Numbers are big-endian, as on the wire. A string tag needs `length:` (bytes, space
//! padded like the I&M strings); datetime has no IO data encoding.
//!
//! # Device options
//! `station` (NameOfStation, required), `seed` (0), `sample_period` (the poll interval),
//! `modules:` (optional; when given, every address must fall inside a declared module)
//! and `faults:` (see `uaedge_sim`). A `device_failure` fault on a tag turns its subslot's
//! IOPS bad: every cyclic tag of that subslot reads Bad(DeviceFailure). A module with
//! `iops: bad` is bad for good (a pulled or failed module).
//!
//! # Tag options
//! The signal keys of `uaedge_sim` (`signal: sine, amplitude: …`) plus `length` for
//! strings. A tag with no `signal:` drives nothing: it reads whatever the bytes hold (what
//! other tags wrote, or zero), and a writable one holds what was written.
//!
//! # Example
//! ```yaml
//! devices:
//!   - name: press3
//!     driver: profinet-sim
//!     poll_interval: 500ms
//!     options:
//!       station: press-3
//!       seed: 3
//!       modules:
//!         - { slot: 0, subslot: 1, ident: 0x0001, name: "DAP" }
//!         - { slot: 1, subslot: 1, ident: 0x0100, name: "AI 4x float", input: 16 }
//!         - { slot: 2, subslot: 1, ident: 0x0200, name: "DIO 8", input: 4, output: 4 }
//!         - { slot: 3, subslot: 1, ident: 0x0300, name: "AO 2x float", output: 8 }
//!       faults:
//!         - { kind: spike, tag: hydraulics/pressure, at: 90s, magnitude: 60, every: 5m }
//!         - { kind: drift, tag: hydraulics/oil_temp, at: 10m, rate: 0.02, duration: 5m, every: 30m }
//!         - { kind: device_failure, tag: ram/position, at: 4m, duration: 10s, every: 15m }
//!         - { kind: offline, at: 20m, duration: 30s, every: 1h }
//!     tags:
//!       - name: hydraulics/pressure
//!         type: float32
//!         address: "in:1.1:0"
//!         units: bar
//!         options: { signal: sine, amplitude: 20, offset: 180, period: 60s, noise: 0.5 }
//!       - name: hydraulics/oil_temp
//!         type: float32
//!         address: "in:1.1:4"
//!         units: °C
//!         options: { signal: random_walk, start: 45, step: 0.05, min: 35, max: 70, noise: 0.1 }
//!       - name: ram/position
//!         type: float32
//!         address: "in:1.1:8"
//!         units: mm
//!         options: { signal: ramp, min: 0, max: 350, period: 6s }
//!       - name: stroke_count
//!         type: uint32
//!         address: "in:2.1:0"
//!         options: { signal: counter, period: 6s }
//!       - name: running
//!         type: bool
//!         address: "in:1.1:12.0"
//!         options: { signal: square, period: 10m, duty: 0.9 }
//!       - name: pressure_setpoint
//!         type: float32
//!         address: "out:3.1:0"
//!         units: bar
//!         writable: true
//!         options: { signal: constant, value: 180 }
//!       - name: pump_enable
//!         type: bool
//!         address: "out:2.1:0.0"
//!         writable: true
//!       - name: im0/order_id
//!         type: string
//!         address: "rec:0.1:0xAFF0:2"
//!         options: { signal: constant, value: "6ES7 155-6AU01-0BN0", length: 20 }
//! ```
//! `tests/driver.rs` loads this very block, so it stays valid.

mod address;
mod driver;

use serde::Deserialize;
use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, Duration, TagSpec};
use uaedge_sim::{FaultSpec, Signal, SimAddress, SystemClock};

pub use address::{check_station, Area, PnLocation};
pub use driver::ProfinetSimDriver;

/// The driver name in config.
pub const DRIVER_NAME: &str = "profinet-sim";

/// A device's `options:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfinetSimOptions {
    /// The NameOfStation, e.g. `press-3`.
    pub station: String,
    #[serde(default)]
    pub seed: u64,
    /// Virtual time step; defaults to the device's poll interval.
    #[serde(default)]
    pub sample_period: Option<Duration>,
    #[serde(default)]
    pub modules: Vec<ModuleSpec>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// A module (more precisely its submodule) plugged into a slot/subslot.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    pub slot: u16,
    #[serde(default = "first_subslot")]
    pub subslot: u16,
    /// Module ident number, as in the GSDML.
    pub ident: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// Input data length in bytes.
    #[serde(default)]
    pub input: u32,
    /// Output data length in bytes.
    #[serde(default)]
    pub output: u32,
    #[serde(default)]
    pub iops: Iops,
}

fn first_subslot() -> u16 {
    1
}

/// IO provider status of a subslot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Iops {
    #[default]
    Good,
    Bad,
}

uaedge_sim::sim_tag_options! {
    /// A tag's `options:`: the signal keys plus `length` for strings.
    pub struct ProfinetTagOptions {
        /// Bytes of a string tag (space padded).
        pub length: Option<u32>,
    }
}

/// A parsed tag address, with the tag's validated signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfinetAddress {
    pub location: PnLocation,
    pub signal: Signal,
    pub noise: f64,
}

impl SimAddress for ProfinetAddress {
    fn signal(&self) -> &Signal {
        &self.signal
    }

    fn noise(&self) -> f64 {
        self.noise
    }
}

pub struct ProfinetSimFactory;

impl DriverFactory for ProfinetSimFactory {
    type Options = ProfinetSimOptions;
    type TagOptions = ProfinetTagOptions;
    type Address = ProfinetAddress;

    fn parse_address(
        &self,
        address: &str,
        data_type: DataType,
        options: &ProfinetTagOptions,
    ) -> Result<ProfinetAddress, String> {
        let location = address::parse(address, data_type, options.length)?;
        let (signal, noise) = options
            .signal_options()
            .build(data_type)
            .map_err(|e| format!("options: {e}"))?;
        Ok(ProfinetAddress {
            location,
            signal,
            noise,
        })
    }

    fn validate(
        &self,
        options: &ProfinetSimOptions,
        tags: &[TagSpec<ProfinetAddress>],
    ) -> Result<(), String> {
        check_station(&options.station)?;
        check_modules(&options.modules)?;
        for tag in tags {
            let loc = &tag.address.location;
            let at = |why: String| format!("tag `{}` ({loc}): {why}", tag.name);
            if tag.writable && loc.area == Area::Input {
                return Err(at("input data is produced by the device; only `out:` and `rec:` tags can be writable".into()));
            }
            if loc.end() > u64::from(u16::MAX) + 1 {
                return Err(at("runs past the 64 KiB a subslot can hold".into()));
            }
            if options.modules.is_empty() {
                continue;
            }
            let module = options
                .modules
                .iter()
                .find(|m| m.slot == loc.slot && m.subslot == loc.subslot)
                .ok_or_else(|| {
                    at(format!(
                        "no module is declared in slot {}.{}",
                        loc.slot, loc.subslot
                    ))
                })?;
            let (size, what) = match loc.area {
                Area::Input => (module.input, "input"),
                Area::Output => (module.output, "output"),
                Area::Record(_) => continue,
            };
            if loc.end() > u64::from(size) {
                return Err(at(format!(
                    "needs {what} bytes {}..{}, but the module in {}.{} has {size} {what} bytes",
                    loc.offset,
                    loc.end(),
                    loc.slot,
                    loc.subslot
                )));
            }
        }
        uaedge_sim::check_device(options.sample_period, &options.faults, tags)
    }

    fn build(
        &self,
        device: &DeviceInfo,
        options: ProfinetSimOptions,
        tags: Vec<TagSpec<ProfinetAddress>>,
    ) -> Box<dyn Driver> {
        let driver =
            ProfinetSimDriver::new(device, options, tags, std::sync::Arc::new(SystemClock));
        uaedge_sim::box_driver(device, driver)
    }

    fn describe(&self, address: &ProfinetAddress) -> String {
        address.location.to_string()
    }
}

fn check_modules(modules: &[ModuleSpec]) -> Result<(), String> {
    for (i, m) in modules.iter().enumerate() {
        if m.subslot == 0 {
            return Err(format!(
                "modules[{i}]: subslot 0 holds no submodule; subslots start at 1"
            ));
        }
        if m.input > u32::from(u16::MAX) || m.output > u32::from(u16::MAX) {
            return Err(format!("modules[{i}]: IO data longer than 65535 bytes"));
        }
        if let Some(j) = modules
            .iter()
            .take(i)
            .position(|o| o.slot == m.slot && o.subslot == m.subslot)
        {
            return Err(format!(
                "modules[{i}]: slot {}.{} is already taken by modules[{j}]",
                m.slot, m.subslot
            ));
        }
    }
    Ok(())
}
