//! The `exec` driver: a driver as a program of its own (Python, a vendor's tool, anything
//! that reads and writes lines), so that a plant adds a protocol without rebuilding
//! uaedge. uaedge starts the program and speaks the JSON-lines protocol of
//! `PROTOCOL.md` with it over its stdin and stdout; its tags are then like any other
//! driver's.

mod child;
mod driver;
mod inbox;
mod lines;
mod options;
pub mod protocol;

use serde::Deserialize;
use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, TagSpec};

pub use driver::{ExecDriver, PENDING};
pub use options::ExecOptions;

/// The longest address passed on: addresses are the program's business, but a config
/// line is no place for a document.
const MAX_ADDRESS: usize = 1024;

pub struct ExecFactory;

/// Exec tags take no options of their own: the address says it all to the program.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecTagOptions {}

impl DriverFactory for ExecFactory {
    type Options = ExecOptions;
    type TagOptions = ExecTagOptions;
    type Address = String;

    fn parse_address(
        &self,
        address: &str,
        _data_type: DataType,
        _options: &ExecTagOptions,
    ) -> Result<String, String> {
        if address.trim().is_empty() {
            return Err("an empty address; the driver program needs one for each tag".into());
        }
        if address.len() > MAX_ADDRESS {
            return Err(format!("an address longer than {MAX_ADDRESS} bytes"));
        }
        Ok(address.to_string())
    }

    fn validate(&self, options: &ExecOptions, _tags: &[TagSpec<String>]) -> Result<(), String> {
        options.validate()
    }

    fn build(
        &self,
        device: &DeviceInfo,
        options: ExecOptions,
        tags: Vec<TagSpec<String>>,
    ) -> Box<dyn Driver> {
        Box::new(ExecDriver::new(device, options, tags))
    }

    fn describe(&self, address: &String) -> String {
        address.clone()
    }
}
