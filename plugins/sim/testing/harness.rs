//! Test plumbing shared by the integration tests of the simulated drivers
//! (`plugins/profinet-sim/tests/driver.rs`, `plugins/enip-sim/tests/driver.rs`), which
//! include this file with `#[path]`: load a device block the way the runtime does, poll a
//! driver without a runtime, and pick readings apart. It needs `serde` and `serde_yaml`.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use serde::Deserialize;
use uaedge_driver::{
    DataType, DeviceInfo, Driver, DriverFactory, Duration, LinkErrorKind, Quality, Reading,
    TagSpec, Timestamp, Value,
};
use uaedge_sim::{Clock, ManualClock};

/// The simulator never waits, so one poll finishes every call.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the simulator never waits"),
    }
}

#[derive(Deserialize)]
struct Config {
    devices: Vec<DeviceYaml>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct DeviceYaml {
    name: String,
    driver: String,
    poll_interval: Duration,
    options: serde_yaml::Value,
    tags: Vec<TagYaml>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct TagYaml {
    name: String,
    #[serde(rename = "type")]
    data_type: DataType,
    address: String,
    units: Option<String>,
    #[serde(default)]
    writable: bool,
    #[serde(default)]
    options: serde_yaml::Value,
}

pub const T0: Timestamp = Timestamp(1_800_000_000_000_000);

pub fn at_ms(ms: i64) -> Timestamp {
    Timestamp(T0.0 + ms * 1000)
}

/// A device block parsed and validated the way the runtime does it (options, tag options,
/// addresses, `validate`), ready to build.
pub struct Loaded<F: DriverFactory> {
    pub info: DeviceInfo,
    pub options: F::Options,
    pub tags: Vec<TagSpec<F::Address>>,
}

/// Parses and validates the first device of `yaml`, which must use `driver`: everything
/// `uaedge check` does for it.
pub fn check<F: DriverFactory>(f: &F, driver: &str, yaml: &str) -> Result<Loaded<F>, String> {
    let config: Config = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let dev = config.devices.into_iter().next().ok_or("no device")?;
    assert_eq!(dev.driver, driver);
    let options = serde_yaml::from_value(dev.options).map_err(|e| format!("options: {e}"))?;
    let mut tags = Vec::new();
    for t in dev.tags {
        let topts = if t.options.is_null() {
            Default::default()
        } else {
            serde_yaml::from_value(t.options).map_err(|e| format!("tag {}: {e}", t.name))?
        };
        let address = f.parse_address(&t.address, t.data_type, &topts)?;
        tags.push(TagSpec {
            name: t.name,
            data_type: t.data_type,
            writable: t.writable,
            address,
        });
    }
    f.validate(&options, &tags)?;
    let info = DeviceInfo {
        name: dev.name,
        poll_interval: dev.poll_interval.get(),
    };
    Ok(Loaded {
        info,
        options,
        tags,
    })
}

/// Loads a device block the way the runtime does: options, tag options, addresses,
/// validation, then `new` (the driver's constructor) with `clock`.
pub fn load<F: DriverFactory, D>(
    f: &F,
    driver: &str,
    yaml: &str,
    clock: &ManualClock,
    new: impl FnOnce(
        &DeviceInfo,
        F::Options,
        Vec<TagSpec<F::Address>>,
        Arc<dyn Clock>,
    ) -> Result<D, String>,
) -> Result<D, String> {
    let loaded = check(f, driver, yaml)?;
    new(
        &loaded.info,
        loaded.options,
        loaded.tags,
        Arc::new(clock.clone()),
    )
}

/// The YAML example in the `//!` docs of a crate's `lib.rs` (pass its text).
pub fn doc_example(lib: &str) -> String {
    let start = lib.find("//! ```yaml").expect("example start");
    lib[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn read(d: &mut impl Driver) -> Vec<Reading> {
    let mut out = Vec::new();
    block_on(d.read(&mut out)).expect("read");
    out
}

/// The last value of `tag` in `r`.
pub fn value(r: &[Reading], tag: u32) -> Option<Value> {
    r.iter()
        .rfind(|r| r.tag == tag)
        .and_then(|r| r.value.clone())
}

/// The last quality of `tag` in `r`.
pub fn quality(r: &[Reading], tag: u32) -> Quality {
    r.iter()
        .rfind(|r| r.tag == tag)
        .map(|r| r.quality)
        .expect("a reading")
}

/// The error of parsing `address` as a `t` tag with the tag options `options` (YAML).
pub fn parse_err<F: DriverFactory>(f: &F, address: &str, t: DataType, options: &str) -> String {
    let o = serde_yaml::from_str(options).expect("options");
    f.parse_address(address, t, &o).expect_err(address)
}

/// `device(poll_interval, options)` is a one-tag device block of `driver`, `options` going
/// inside its `options: { … }`. What the simulator cannot run is refused by `validate`,
/// so by `uaedge check`, not only when the driver is built.
pub fn sim_errors_are_refused_at_config_load<F: DriverFactory>(
    f: &F,
    driver: &str,
    device: impl Fn(&str, &str) -> String,
) {
    let refused = |yaml: String| check(f, driver, &yaml).err().expect("refused");
    let e = refused(device("1s", "sample_period: 500us"));
    assert!(e.contains("below the 1ms minimum"), "{e}");
    let e = refused(device(
        "1s",
        "faults: [{kind: spike, tag: nope, at: 1s, magnitude: 1}]",
    ));
    assert!(e.contains("faults[0]: `tag: nope` is not a tag"), "{e}");
    check(f, driver, &device("1s", "sample_period: 1ms")).expect("valid");
}

/// `device` as for [`sim_errors_are_refused_at_config_load`]. `validate` is not told the
/// poll interval, the sample period when there is none, so a poll interval below 1ms passes
/// it and the built driver stays Bad, saying why.
pub fn poll_interval_errors_leave_the_built_device_bad<F: DriverFactory>(
    f: &F,
    driver: &str,
    device: impl Fn(&str, &str) -> String,
) {
    let loaded = check(f, driver, &device("500us", "")).expect("validate passes");
    let mut d = f.build(&loaded.info, loaded.options, loaded.tags);
    let err = block_on(d.connect()).expect_err("configuration error");
    assert_eq!(err.kind, LinkErrorKind::Protocol);
    assert!(
        err.message
            .contains("configuration error: sample period 500µs is below the 1ms minimum"),
        "{}",
        err.message
    );
    assert!(block_on(d.read(&mut Vec::new())).is_err());
}
