//! The Modbus driver inside the running runtime, against pymodbus: a device simulator we did
//! not write, whose registers are encoded by pymodbus's own converters.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{eventually, Peer};
use uaedge::config::Config;
use uaedge::runtime::Runtime;
use uaedge_driver::{BadReason, Quality, Value};

const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// One tag of the test device: how pymodbus lays it out and what uaedge must read.
struct Entry {
    name: String,
    table: &'static str,
    address: u16,
    /// The model type name, also pymodbus's type name (or `bit`).
    ty: &'static str,
    order: &'static str,
    /// The value as JSON, for pymodbus to encode.
    json: String,
    expected: Value,
    /// Extra per-tag YAML options, e.g. `length: 10`.
    options: String,
}

fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    let mut address = 0u16;
    let mut push =
        |ty: &'static str, order: &'static str, json: String, expected: Value, width: u16| {
            let options = if ty == "string" {
                "length: 10".to_string()
            } else {
                String::new()
            };
            out.push(Entry {
                name: format!("{ty}_{}", order.to_lowercase()),
                table: "hr",
                address,
                ty,
                order,
                json,
                expected,
                options,
            });
            address += width;
            address
        };
    push("int16", "ABCD", "-1234".into(), Value::Int16(-1234), 1);
    push("uint16", "ABCD", "65000".into(), Value::UInt16(65000), 1);
    for order in ORDERS {
        push(
            "int32",
            order,
            "-123456789".into(),
            Value::Int32(-123_456_789),
            2,
        );
        push(
            "uint32",
            order,
            "4000000000".into(),
            Value::UInt32(4_000_000_000),
            2,
        );
        push("float32", order, "123.456".into(), Value::Float(123.456), 2);
        push(
            "int64",
            order,
            "-1234567890123".into(),
            Value::Int64(-1_234_567_890_123),
            4,
        );
        push(
            "uint64",
            order,
            "12345678901234567890".into(),
            Value::UInt64(12_345_678_901_234_567_890),
            4,
        );
        push(
            "float64",
            order,
            "2.718281828459045".into(),
            Value::Double(std::f64::consts::E),
            4,
        );
    }
    push("int8", "ABCD", "-5".into(), Value::Int8(-5), 1);
    push("uint8", "ABCD", "200".into(), Value::UInt8(200), 1);
    let bit_at = push(
        "string",
        "ABCD",
        "\"PUMP-07\"".into(),
        Value::String("PUMP-07".into()),
        5,
    );
    out.push(Entry {
        name: "running".into(),
        table: "hr",
        address: bit_at,
        ty: "bit",
        order: "ABCD",
        json: "true".into(),
        expected: Value::Boolean(true),
        options: String::new(),
    });
    // Writable targets, read back after each write.
    for (i, (name, ty, init, expected, order)) in [
        ("setpoint", "float32", "1.0", Value::Float(1.0), "CDAB"),
        ("batch", "int32", "7", Value::Int32(7), "ABCD"),
        ("recipe", "uint16", "3", Value::UInt16(3), "ABCD"),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(Entry {
            name: name.into(),
            table: "hr",
            address: bit_at + 1 + 2 * i as u16,
            ty,
            order,
            json: init.into(),
            expected,
            options: String::new(),
        });
    }
    out.push(Entry {
        name: "flow".into(),
        table: "ir",
        address: 4,
        ty: "float32",
        order: "ABCD",
        json: "9.81".into(),
        expected: Value::Float(9.81),
        options: String::new(),
    });
    out
}

/// The JSON the pymodbus device reads, and the uaedge config that reads it back.
fn device_files(dir: &Path, port: u16, poll: &str) -> (std::path::PathBuf, String) {
    let mut hr = Vec::new();
    let mut ir = Vec::new();
    let mut tags = String::new();
    for e in entries() {
        let (ty, addr, json) = if e.ty == "bit" {
            (
                "bool".to_string(),
                format!("{}:{}.3", e.table, e.address),
                format!(
                    r#"{{"address": {}, "type": "bit", "bit": 3, "value": {}}}"#,
                    e.address, e.json
                ),
            )
        } else {
            let length = if e.ty == "string" {
                r#", "length": 10"#
            } else {
                ""
            };
            (
                e.ty.to_string(),
                format!("{}:{}", e.table, e.address),
                format!(
                    r#"{{"address": {}, "type": "{}", "order": "{}", "value": {}{length}}}"#,
                    e.address, e.ty, e.order, e.json
                ),
            )
        };
        if e.table == "hr" {
            hr.push(json)
        } else {
            ir.push(json)
        }
        let writable = ["setpoint", "batch", "recipe"].contains(&e.name.as_str());
        let multi_register = ["32", "64"].iter().any(|w| e.ty.ends_with(w));
        let mut options = Vec::new();
        if multi_register {
            options.push(format!("byte_order: {}", e.order));
        }
        if !e.options.is_empty() {
            options.push(e.options.clone());
        }
        let _ = writeln!(
            tags,
            "      - {{ name: \"{}\", type: {ty}, address: \"{addr}\", writable: {writable}, options: {{ {} }} }}",
            e.name,
            options.join(", ")
        );
    }
    tags.push_str(
        "      - { name: coils/start, type: bool, address: \"coil:1\", writable: true }\n\
         \x20     - { name: inputs/door, type: bool, address: \"di:2\" }\n\
         \x20     - { name: unit2/speed, type: uint16, address: \"hr:0\", options: { unit_id: 2 } }\n\
         \x20     - { name: missing, type: uint16, address: \"hr:900\" }\n",
    );
    let spec = format!(
        r#"{{"units": {{
  "1": {{"hr_size": 200, "hr": [{}], "ir_size": 10, "ir": [{}], "co_size": 8, "co": [[1, false]], "di_size": 8, "di": [[2, true]]}},
  "2": {{"hr_size": 4, "hr": [{{"address": 0, "type": "uint16", "value": 4242}}]}}
}}}}"#,
        hr.join(", "),
        ir.join(", ")
    );
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec).expect("write spec");
    let config = format!(
        "devices:\n  - name: plc\n    driver: modbus\n    poll_interval: {poll}\n    reconnect: {{ min: 50ms, max: 200ms }}\n    options: {{ transport: tcp, host: 127.0.0.1, port: {port}, timeout: 500ms, retries: 0 }}\n    tags:\n{tags}"
    );
    (spec_path, config)
}

fn start_device(dir: &Path, spec: &Path, port: u16) -> (Peer, u16) {
    let log = dir.join("requests.log");
    let (peer, line) = Peer::python(
        "modbus_device.py",
        &[
            "--spec",
            &spec.display().to_string(),
            "--log",
            &log.display().to_string(),
            "--port",
            &port.to_string(),
        ],
    );
    (peer, line.parse().expect("port from the device"))
}

fn requests(dir: &Path) -> Vec<Vec<u64>> {
    std::fs::read_to_string(dir.join("requests.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').filter_map(|w| w.parse().ok()).collect())
        .collect()
}

fn value(rt: &Runtime, path: &str) -> (Option<Value>, Quality) {
    let table = rt.handle().table().clone();
    let id = table.find(path).unwrap_or_else(|| panic!("no tag {path}"));
    let s = table.state(id).expect("state");
    (s.value, s.quality)
}

async fn all_settled(rt: &Runtime) -> bool {
    let table = rt.handle().table().clone();
    table.states(|s| {
        s.iter()
            .all(|t| t.quality != Quality::Bad(BadReason::NotConnected))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_type_and_byte_order_in_coalesced_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, _) = device_files(dir.path(), 0, "1h");
    let (_peer, port) = start_device(dir.path(), &spec, 0);
    let (_, config) = device_files(dir.path(), port, "1h");
    let rt = Runtime::start(Config::parse("test.yaml", &config).expect("config"));
    eventually(Duration::from_secs(20), "first poll", || async {
        all_settled(&rt).await.then_some(())
    })
    .await;
    for e in entries() {
        let (v, q) = value(&rt, &format!("plc/{}", e.name));
        assert_eq!(q, Quality::Good, "{}", e.name);
        assert_eq!(
            v.as_ref(),
            Some(&e.expected),
            "{} ({} {})",
            e.name,
            e.ty,
            e.order
        );
    }
    assert_eq!(value(&rt, "plc/coils/start").0, Some(Value::Boolean(false)));
    assert_eq!(value(&rt, "plc/inputs/door").0, Some(Value::Boolean(true)));
    assert_eq!(value(&rt, "plc/unit2/speed").0, Some(Value::UInt16(4242)));
    // The address pymodbus does not have is refused by the device: only that tag is Bad.
    assert_eq!(
        value(&rt, "plc/missing").1,
        Quality::Bad(BadReason::DeviceFailure)
    );
    // One poll: the holding registers of unit 1 that pymodbus served (0..~90, within 125)
    // took one request, not one per tag (refused requests never reach pymodbus's log).
    let reads: Vec<_> = requests(dir.path())
        .into_iter()
        .filter(|r| r.first() == Some(&1) && r.get(1) == Some(&3))
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "holding-register reads of unit 1: {reads:?}"
    );
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_device_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, _) = device_files(dir.path(), 0, "1h");
    let (_peer, port) = start_device(dir.path(), &spec, 0);
    let (_, config) = device_files(dir.path(), port, "1h");
    let rt = Runtime::start(Config::parse("test.yaml", &config).expect("config"));
    let handle = rt.handle();
    eventually(Duration::from_secs(20), "first poll", || async {
        all_settled(&rt).await.then_some(())
    })
    .await;
    let entry = |name: &str| {
        entries()
            .into_iter()
            .find(|e| e.name == name)
            .expect("entry")
    };
    let (setpoint, batch) = (entry("setpoint"), entry("batch"));

    handle
        .write("plc/setpoint", &Value::Double(42.5))
        .await
        .expect("write setpoint");
    handle
        .write("plc/batch", &Value::Int64(-9))
        .await
        .expect("write batch");
    handle
        .write("plc/coils/start", &Value::Boolean(true))
        .await
        .expect("write coil");

    // pymodbus saw the registers in the configured byte orders: 42.5f32 = 0x422A0000, CDAB.
    let log = requests(dir.path());
    assert!(
        log.contains(&vec![1, 16, u64::from(setpoint.address), 2, 0x0000, 0x422A]),
        "{log:?}"
    );
    // -9i32, ABCD = 0xFFFF 0xFFF7.
    assert!(
        log.contains(&vec![1, 16, u64::from(batch.address), 2, 0xFFFF, 0xFFF7]),
        "{log:?}"
    );
    // Coil 1 switched on with function 5.
    assert!(
        log.iter()
            .any(|r| r.starts_with(&[1, 5, 1]) && r.last() == Some(&1)),
        "{log:?}"
    );
    // Each write is read back at once, not a poll interval (1h) later.
    eventually(Duration::from_secs(5), "read back", || async {
        (value(&rt, "plc/setpoint").0 == Some(Value::Float(42.5))
            && value(&rt, "plc/batch").0 == Some(Value::Int32(-9))
            && value(&rt, "plc/coils/start").0 == Some(Value::Boolean(true)))
        .then_some(())
    })
    .await;
    // Read-only tags and values that do not fit are refused before reaching the device.
    assert_eq!(
        handle.write("plc/flow", &Value::Float(1.0)).await,
        Err(uaedge_driver::WriteError::NotWritable)
    );
    assert!(matches!(
        handle.write("plc/recipe", &Value::Int32(70000)).await,
        Err(uaedge_driver::WriteError::TypeMismatch(_))
    ));
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_restart_turns_tags_bad_then_good_without_restarting_uaedge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spec, _) = device_files(dir.path(), 0, "100ms");
    let (mut peer, port) = start_device(dir.path(), &spec, 0);
    let (_, config) = device_files(dir.path(), port, "100ms");
    let rt = Runtime::start(Config::parse("test.yaml", &config).expect("config"));
    let good = || async {
        (value(&rt, "plc/float32_abcd") == (Some(Value::Float(123.456)), Quality::Good))
            .then_some(())
    };
    eventually(Duration::from_secs(20), "tags good", good).await;
    for round in 0..3 {
        peer.kill();
        eventually(
            Duration::from_secs(10),
            "tags bad after the device stopped",
            || async {
                let (v, q) = value(&rt, "plc/float32_abcd");
                // The last value stays, flagged Bad, as SCADA clients expect.
                (q.is_bad() && v == Some(Value::Float(123.456))).then_some(())
            },
        )
        .await;
        let table = rt.handle().table().clone();
        assert!(
            !table
                .device_state(uaedge::model::DeviceId(0))
                .expect("device")
                .connected
        );
        let (p, _) = start_device(dir.path(), &spec, port);
        peer = p;
        eventually(Duration::from_secs(20), "tags good again", good).await;
        let state = table
            .device_state(uaedge::model::DeviceId(0))
            .expect("device");
        assert!(state.connected);
        assert_eq!(state.reconnects, round + 1);
    }
    rt.shutdown().await.expect("clean shutdown");
}
