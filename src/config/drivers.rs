//! The driver registry: the one place that maps a device's `driver:` name to the plugin
//! that implements it.

use uaedge_driver::{DeviceInfo, Driver, DriverFactory, TagSpec};

use super::yaml::Document;
use super::{ConfigError, RawNode, RawTag, Spanned};

/// Every driver name a config may use.
pub const DRIVERS: &[&str] = &["modbus", "profinet-sim", "enip-sim", "opcua-client", "exec"];

type Builder = Box<dyn FnOnce(&DeviceInfo) -> Box<dyn Driver> + Send>;

/// A device whose options and addresses its factory accepted; the driver itself is built
/// when the runtime starts the device.
pub struct Prepared {
    /// Each tag's parsed address, rendered for humans, in tag order.
    pub addresses: Vec<String>,
    build: Builder,
}

impl Prepared {
    pub fn build(self, info: &DeviceInfo) -> Box<dyn Driver> {
        (self.build)(info)
    }
}

/// Validates a device against its driver's factory. Errors go to `errors`, located at the
/// offending key; `None` when there was any.
pub(crate) fn prepare(
    driver: &Spanned<String>,
    options: Option<&RawNode>,
    device: &RawNode,
    tags: &[&RawTag],
    errors: &mut Vec<ConfigError>,
) -> Option<Prepared> {
    match driver.value.as_str() {
        "modbus" => prepare_with(uaedge_modbus::ModbusFactory, options, device, tags, errors),
        "profinet-sim" => prepare_with(
            uaedge_profinet_sim::ProfinetSimFactory,
            options,
            device,
            tags,
            errors,
        ),
        "enip-sim" => prepare_with(
            uaedge_enip_sim::EnipSimFactory,
            options,
            device,
            tags,
            errors,
        ),
        "opcua-client" => prepare_with(
            uaedge_opcua_client::OpcUaClientFactory,
            options,
            device,
            tags,
            errors,
        ),
        "exec" => prepare_with(uaedge_exec::ExecFactory, options, device, tags, errors),
        other => {
            errors.push(driver.error(format!(
                "unknown driver `{other}`; known drivers: {}",
                DRIVERS.join(", ")
            )));
            None
        }
    }
}

fn prepare_with<F: DriverFactory + 'static>(
    factory: F,
    options: Option<&RawNode>,
    device: &RawNode,
    tags: &[&RawTag],
    errors: &mut Vec<ConfigError>,
) -> Option<Prepared> {
    let before = errors.len();
    let options_node = options.filter(|n| !n.is_null());
    let options: Option<F::Options> = match options_node {
        Some(node) => node.deserialize().map_err(|e| errors.push(e)).ok(),
        // No `options:` at all: the driver's defaults, or an error at the device saying which
        // option it needs.
        None => Document::parse("", "{}")
            .and_then(|d| d.root().deserialize())
            .map_err(|e| errors.push(device.error(format!("options: {}", e.message))))
            .ok(),
    };
    let mut specs = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag_options: F::TagOptions = match tag.options.as_ref().filter(|n| !n.is_null()) {
            Some(node) => match node.deserialize() {
                Ok(o) => o,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            None => F::TagOptions::default(),
        };
        match factory.parse_address(&tag.address.value, tag.data_type, &tag_options) {
            Ok(address) => specs.push(TagSpec {
                name: tag.name.value.clone(),
                data_type: tag.data_type,
                writable: tag.writable,
                address,
            }),
            Err(message) => errors.push(tag.address.error(message)),
        }
    }
    let options = options?;
    if errors.len() > before {
        return None;
    }
    if let Err(message) = factory.validate(&options, &specs) {
        // At the `options:` it is about when there is one; the message names the key.
        errors.push(options_node.unwrap_or(device).error(message));
        return None;
    }
    let addresses = specs.iter().map(|s| factory.describe(&s.address)).collect();
    Some(Prepared {
        addresses,
        build: Box::new(move |info| factory.build(info, options, specs)),
    })
}
