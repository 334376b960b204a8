//! DCMD payload bytes → `codec::device_command`, the function `on_dcmd` runs: protobuf
//! decode, name/alias lookup and value conversion against a real TagTable built from a
//! config. Every write it returns must go to a writable tag of the addressed device, and
//! every metric must end up either written or refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uaedge::config::Config;
use uaedge::model::TagTable;
use uaedge::sparkplug::codec;

/// One device with a writable tag of every type a command can carry and a read-only one;
/// a second device so that an alias of another device's tag is tried too.
const CONFIG: &str = r#"
node: { name: fuzz }
devices:
  - name: press
    driver: modbus
    options: { transport: tcp, host: 127.0.0.1, port: 502 }
    tags:
      - { name: motor/start, type: bool, address: "coil:0", writable: true }
      - { name: i8, type: int8, address: "hr:0", writable: true }
      - { name: u8, type: uint8, address: "hr:1", writable: true }
      - { name: i16, type: int16, address: "hr:2", writable: true }
      - { name: u16, type: uint16, address: "hr:3", writable: true }
      - { name: i32, type: int32, address: "hr:4", writable: true }
      - { name: u32, type: uint32, address: "hr:6", writable: true }
      - { name: setpoint, type: float32, address: "hr:8", writable: true }
      - { name: i64, type: int64, address: "hr:10", writable: true }
      - { name: u64, type: uint64, address: "hr:14", writable: true }
      - { name: f64, type: float64, address: "hr:18", writable: true }
      - { name: recipe, type: string, address: "hr:22", writable: true, options: { length: 8 } }
      - { name: pressure, type: float32, address: "ir:0" }
  - name: mixer
    driver: modbus
    options: { transport: tcp, host: 127.0.0.1, port: 503 }
    tags:
      - { name: speed, type: int16, address: "hr:0", writable: true }
"#;

fn table() -> &'static TagTable {
    static TABLE: OnceLock<TagTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = match Config::parse("fuzz.yaml", CONFIG) {
            Ok(c) => c,
            Err(e) => panic!("the fuzz target's config is invalid: {e:?}"),
        };
        TagTable::new(config.device_defs, config.tag_defs)
    })
}

fuzz_target!(|data: &[u8]| {
    let table = table();
    for device in ["press", "mixer"] {
        let dev = table
            .devices()
            .iter()
            .find(|d| d.name == device)
            .map(|d| d.id);
        match codec::device_command(table, device, data) {
            Ok(command) => {
                let metrics = codec::decode(data).map(|p| p.metrics.len());
                assert_eq!(
                    Ok(command.writes.len() + command.refused.len()),
                    metrics,
                    "a metric was neither written nor refused"
                );
                for (id, _value) in &command.writes {
                    let tag = table
                        .tag(*id)
                        .expect("a write to a tag that does not exist");
                    assert_eq!(
                        Some(tag.device),
                        dev,
                        "write to {} from a DCMD for {device}",
                        tag.path
                    );
                    assert!(tag.writable, "write to the read-only {}", tag.path);
                }
            }
            Err(codec::DeviceCommandError::Malformed(_)) => {
                assert!(
                    codec::decode(data).is_err(),
                    "refused a payload that decodes"
                );
            }
            Err(codec::DeviceCommandError::UnknownDevice) => panic!("{device} is configured"),
        }
    }
    assert_eq!(
        codec::device_command(table, "nosuch", data),
        Err(codec::DeviceCommandError::UnknownDevice)
    );
});
