//! What the simulated drivers' factories and drivers do alike: turn their tags into
//! [`SimTag`]s, check a device at config load, start its [`SimDevice`], box the driver,
//! and read the numbers of an address.

use uaedge_driver::{DataType, DeviceInfo, Driver, Duration, TagSpec, Timestamp};

use crate::device::TagRef;
use crate::{Clock, ConfigErrorDriver, FaultSpec, Signal, SimDevice, SimTag};

/// A driver's parsed tag address, as far as the simulator is concerned.
pub trait SimAddress {
    /// The tag's validated signal.
    fn signal(&self) -> &Signal;
    /// σ of the tag's gaussian noise; 0 for none.
    fn noise(&self) -> f64;
    /// The type the simulated device holds the value in, given the tag's own (`model`).
    fn native_type(&self, model: DataType) -> DataType {
        model
    }
}

/// The simulator's view of a driver's tags, in the same order.
pub fn sim_tags<A: SimAddress>(tags: &[TagSpec<A>]) -> Vec<SimTag> {
    tags.iter()
        .map(|t| SimTag {
            name: t.name.clone(),
            data_type: t.address.native_type(t.data_type),
            writable: t.writable,
            signal: t.address.signal().clone(),
            noise: t.address.noise(),
        })
        .collect()
}

fn tag_refs<A: SimAddress>(tags: &[TagSpec<A>]) -> impl ExactSizeIterator<Item = TagRef<'_>> {
    tags.iter().map(|t| TagRef {
        name: &t.name,
        data_type: t.address.native_type(t.data_type),
        writable: t.writable,
        signal: t.address.signal(),
        noise: t.address.noise(),
    })
}

/// The poll interval [`check_device`] assumes when there is no `sample_period`: the config
/// default, since `DriverFactory::validate` is not told the device's own.
const ASSUMED_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// For `DriverFactory::validate`: refuses, at config load, a device that [`start_device`]
/// would refuse (a sample period below 1ms, a fault that names no tag or lacks a key, …).
///
/// Without `sample_period` the period is the device's poll interval, which `validate` does
/// not see; 1s (the config default) stands in. Only what depends on that period (a poll
/// interval below 1ms, the one-step default `duration` of a `spike` against its `every`)
/// can still fail at build, where [`box_driver`] turns it into a [`ConfigErrorDriver`].
pub fn check_device<A: SimAddress>(
    sample_period: Option<Duration>,
    faults: &[FaultSpec],
    tags: &[TagSpec<A>],
) -> Result<(), String> {
    let period = sample_period
        .map(Duration::get)
        .unwrap_or(ASSUMED_POLL_INTERVAL);
    SimDevice::build("validate", 0, period, Timestamp(0), tag_refs(tags), faults).map(|_| ())
}

/// The simulated device behind a driver: step 0 is now on `clock`, and the sample period is
/// `sample_period`, else the device's poll interval.
pub fn start_device<A: SimAddress>(
    device: &DeviceInfo,
    seed: u64,
    sample_period: Option<Duration>,
    faults: &[FaultSpec],
    tags: &[TagSpec<A>],
    clock: &dyn Clock,
) -> Result<SimDevice, String> {
    let period = sample_period
        .map(Duration::get)
        .unwrap_or(device.poll_interval);
    SimDevice::build(
        device.name.clone(),
        seed,
        period,
        clock.now(),
        tag_refs(tags),
        faults,
    )
    .map(|d| d.read_every(device.poll_interval))
}

/// For `DriverFactory::build`, which cannot fail: the driver, or a [`ConfigErrorDriver`]
/// that keeps the device Bad and says why.
pub fn box_driver<D: Driver + 'static>(
    device: &DeviceInfo,
    built: Result<D, String>,
) -> Box<dyn Driver> {
    match built {
        Ok(driver) => Box::new(driver),
        Err(e) => Box::new(ConfigErrorDriver::new(&device.name, e)),
    }
}

/// A number of an address, decimal or `0x` hex, at most `max`; `what` names it in the error.
pub fn parse_number(text: &str, what: &str, max: u64) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(n) if n <= max => Ok(n),
        Ok(n) => Err(format!("{what} {n} is out of range (0..={max})")),
        Err(_) => Err(format!("{what} `{text}` is not a number")),
    }
}
