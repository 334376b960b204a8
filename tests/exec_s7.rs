//! The `exec` driver running the shipped example S7 driver (examples/drivers/s7) against a
//! simulated S7 PLC built on python-snap7's server (tests/interop/s7_plc.py), read and
//! written from an OPC UA client (asyncua): values of every type, one read request per data
//! block and poll, writes that land in the PLC's bytes, bad addresses that turn only their
//! own tag Bad, and a PLC that goes away and comes back.

mod common;
mod opcua_support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port, python};
use opcua_support::{Edge, Scada};
use serde_json::{json, Value};

/// tests/interop/s7_plc.py: DB1 of 64 bytes on 127.0.0.1:`port`, and a JSON-lines pipe to
/// look at and change its bytes.
struct Plc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Plc {
    fn start(port: u16) -> Plc {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/s7_plc.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start s7_plc.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        assert_eq!(line.trim(), "ready", "s7_plc.py did not start");
        Plc {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, cmd: Value) -> Value {
        tokio::task::block_in_place(|| {
            writeln!(self.stdin, "{cmd}").expect("send command");
            self.stdin.flush().expect("flush command");
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("read answer");
            assert!(!line.is_empty(), "s7_plc.py exited on {cmd}");
            let answer: Value = serde_json::from_str(&line).expect("JSON answer");
            assert!(answer.get("error").is_none(), "{cmd}: {answer}");
            answer
        })
    }

    /// DB1's bytes `start..start + size`.
    fn get(&mut self, start: usize, size: usize) -> Vec<u8> {
        let answer = self.call(json!({"op": "get", "start": start, "size": size}));
        hex(answer["hex"].as_str().expect("hex"))
    }

    fn set(&mut self, start: usize, bytes: &[u8]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.call(json!({"op": "set", "start": start, "hex": hex}));
    }

    /// The reads the PLC answered since the last call: [db, start, size] each.
    fn reads(&mut self) -> Vec<Value> {
        let answer = self.call(json!({"op": "reads"}));
        answer["reads"].as_array().cloned().unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Plc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// One tag of the test device: where s7_plc.py keeps it, the bytes it starts with there,
/// and the value an OPC UA client must read.
struct Tag {
    name: &'static str,
    ty: &'static str,
    address: &'static str,
    writable: bool,
    start: usize,
    bytes: Vec<u8>,
    value: Value,
}

fn tag(
    name: &'static str,
    ty: &'static str,
    address: &'static str,
    start: usize,
    bytes: &[u8],
    value: Value,
) -> Tag {
    Tag {
        name,
        ty,
        address,
        writable: false,
        start,
        bytes: bytes.to_vec(),
        value,
    }
}

/// The tags, as s7_plc.py lays out its DB1 (see its docstring).
fn tags() -> Vec<Tag> {
    let mut string = vec![16, 7];
    string.extend_from_slice(b"PUMP-07");
    let writable = |mut t: Tag| {
        t.writable = true;
        t
    };
    vec![
        tag("running", "bool", "DB1.DBX0.0", 0, &[0x09], json!(true)),
        tag("alarm", "bool", "DB1.DBX0.3", 0, &[0x09], json!(true)),
        tag(
            "trend",
            "int8",
            "DB1.DBB1",
            1,
            &(-5i8).to_be_bytes(),
            json!(-5),
        ),
        tag(
            "pressure",
            "int16",
            "DB1.DBW2",
            2,
            &(-1234i16).to_be_bytes(),
            json!(-1234),
        ),
        tag(
            "speed",
            "float32",
            "DB1.DBD4",
            4,
            &1480.5f32.to_be_bytes(),
            json!(1480.5),
        ),
        tag(
            "count",
            "uint32",
            "DB1.DBD8",
            8,
            &4_000_000_000u32.to_be_bytes(),
            json!(4_000_000_000u32),
        ),
        tag(
            "total",
            "float64",
            "DB1.DBL12",
            12,
            &std::f64::consts::E.to_be_bytes(),
            json!(std::f64::consts::E),
        ),
        writable(tag(
            "recipe",
            "string",
            "DB1.DBS20.16",
            20,
            &string,
            json!("PUMP-07"),
        )),
        writable(tag(
            "setpoint",
            "int16",
            "DB1.DBW38",
            38,
            &120i16.to_be_bytes(),
            json!(120),
        )),
        tag(
            "energy",
            "int64",
            "DB1.DBL40",
            40,
            &(-1_234_567_890_123i64).to_be_bytes(),
            json!(-1_234_567_890_123i64),
        ),
        tag(
            "flow",
            "uint16",
            "DB1.DBW48",
            48,
            &65000u16.to_be_bytes(),
            json!(65000),
        ),
        tag(
            "batch",
            "int32",
            "DB1.DBD50",
            50,
            &(-123_456_789i32).to_be_bytes(),
            json!(-123_456_789),
        ),
        tag("mode", "uint8", "DB1.DBB54", 54, &[200], json!(200)),
        writable(tag("valve", "bool", "DB1.DBX55.5", 55, &[0], json!(false))),
        tag(
            "serial",
            "uint64",
            "DB1.DBL56",
            56,
            &12_345_678_901_234_567_890u64.to_be_bytes(),
            json!(12_345_678_901_234_567_890u64),
        ),
    ]
}

/// Tags the driver cannot serve, and the OPC UA status each must have.
const BAD_TAGS: [(&str, &str, &str, &str); 3] = [
    // Not an address the driver knows: refused in its configure answer.
    ("bad_address", "int16", "DB1.DBQ3", "BadConfigurationError"),
    // A float32 does not fit a word: refused in its configure answer as well.
    (
        "wrong_width",
        "float32",
        "DB1.DBW2",
        "BadConfigurationError",
    ),
    // A data block the PLC does not have: refused by the PLC at each read.
    ("missing_db", "uint8", "DB2.DBB0", "BadDeviceFailure"),
];

fn device(port: u16) -> String {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/drivers/s7/s7_driver.py");
    let mut yaml = format!(
        "  - name: press\n    driver: exec\n    poll_interval: 200ms\n    reconnect: {{ min: 100ms, max: 500ms }}\n    options:\n      command: [\"{}\", \"{}\"]\n      env: {{ S7_HOST: 127.0.0.1, S7_PORT: \"{port}\", S7_TIMEOUT: \"1\" }}\n    tags:\n",
        python().display(),
        driver.display()
    );
    for t in tags() {
        yaml.push_str(&format!(
            "      - {{ name: {}, type: {}, address: \"{}\", writable: {} }}\n",
            t.name, t.ty, t.address, t.writable
        ));
    }
    for (name, ty, address, _) in BAD_TAGS {
        yaml.push_str(&format!(
            "      - {{ name: {name}, type: {ty}, address: \"{address}\", writable: true }}\n"
        ));
    }
    yaml
}

const OPCUA: &str = "  endpoints: [none]\n  anonymous: write";

/// Waits until the tag `name` of the device reads `status`; returns its read.
async fn wait_status(scada: &mut Scada, edge: &Edge, name: &str, status: &str) -> Value {
    let node = edge.node(&format!("press/{name}"));
    eventually(Duration::from_secs(15), &format!("{name} {status}"), || {
        let v = scada.read_one(&node);
        async move { (v["status"] == status).then_some(v) }
    })
    .await
}

async fn start() -> (Plc, Edge, Scada) {
    let port = free_port();
    let plc = Plc::start(port);
    let edge = Edge::start(OPCUA, &device(port)).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    (plc, edge, scada)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_type_in_one_request_per_block_and_bad_addresses_stay_alone() {
    let (mut plc, edge, mut scada) = start().await;
    for t in tags() {
        wait_status(&mut scada, &edge, t.name, "Good").await;
    }
    let nodes: Vec<String> = tags()
        .iter()
        .map(|t| edge.node(&format!("press/{}", t.name)))
        .collect();
    let values = scada.read(&nodes);
    for (t, v) in tags().iter().zip(&values) {
        // The PLC holds what the test expects, and the OPC UA client reads just that.
        assert_eq!(
            plc.get(t.start, t.bytes.len()),
            t.bytes,
            "{} in DB1",
            t.name
        );
        assert_eq!(v["status"], "Good", "{}: {v}", t.name);
        assert_eq!(
            v["value"], t.value,
            "{} ({} at {})",
            t.name, t.ty, t.address
        );
    }
    // Each bad address turns its own tag Bad; all the others above are Good.
    for (name, _, _, status) in BAD_TAGS {
        let v = wait_status(&mut scada, &edge, name, status).await;
        assert!(v["value"].is_null(), "{name}: {v}");
    }

    // A value the PLC changes arrives at the next poll.
    plc.set(2, &258i16.to_be_bytes());
    let pressure = edge.node("press/pressure");
    eventually(Duration::from_secs(5), "the new pressure", || {
        let v = scada.read_one(&pressure);
        async move { (v["value"] == 258 && v["status"] == "Good").then_some(()) }
    })
    .await;

    // Every read the PLC answered was DB1's whole span (bytes 0..64) in one request: no
    // read per tag. (DB2's refused reads are not counted by the PLC.)
    let reads = plc.reads();
    assert!(reads.len() >= 2, "{reads:?}");
    assert!(reads.iter().all(|r| *r == json!([1, 0, 64])), "{reads:?}");

    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_opc_ua_land_in_the_plc() {
    let (mut plc, edge, mut scada) = start().await;
    for name in ["setpoint", "recipe", "valve", "speed"] {
        wait_status(&mut scada, &edge, name, "Good").await;
    }
    let node = |name: &str| edge.node(&format!("press/{name}"));

    assert_eq!(scada.write(&node("setpoint"), json!(150), "Int16"), "Good");
    assert_eq!(plc.get(38, 2), 150i16.to_be_bytes());

    assert_eq!(
        scada.write(&node("recipe"), json!("MIXER-1"), "String"),
        "Good"
    );
    let mut string = vec![16, 7];
    string.extend_from_slice(b"MIXER-1");
    assert_eq!(plc.get(20, 9), string);

    // Bit 5 of byte 55 alone, set and cleared again.
    assert_eq!(scada.write(&node("valve"), json!(true), "Boolean"), "Good");
    assert_eq!(plc.get(55, 1), [0x20]);
    plc.set(55, &[0x21]);
    assert_eq!(scada.write(&node("valve"), json!(false), "Boolean"), "Good");
    assert_eq!(plc.get(55, 1), [0x01]);

    // The driver refuses a string longer than the STRING[16]: BadTypeMismatch, and the PLC
    // keeps its bytes. A read-only tag is refused before it reaches the driver.
    assert_eq!(
        scada.write(&node("recipe"), json!("x".repeat(17)), "String"),
        "BadTypeMismatch"
    );
    assert_eq!(plc.get(20, 9), string);
    assert_eq!(
        scada.write(&node("speed"), json!(1.0), "Float"),
        "BadNotWritable"
    );
    assert_eq!(plc.get(4, 4), 1480.5f32.to_be_bytes());
    // The PLC refuses a write to a data block it does not have: the driver answers
    // `rejected`.
    assert_eq!(
        scada.write(&node("missing_db"), json!(1), "Byte"),
        "BadDeviceFailure"
    );

    // The written values read back.
    eventually(
        Duration::from_secs(5),
        "the written values read back",
        || {
            let v = scada.read(&[node("setpoint"), node("recipe"), node("valve")]);
            async move {
                (v[0]["value"] == 150 && v[1]["value"] == "MIXER-1" && v[2]["value"] == false)
                    .then_some(())
            }
        },
    )
    .await;

    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_that_goes_away_turns_tags_bad_and_back_good() {
    let port = free_port();
    let mut plc = Plc::start(port);
    let edge = Edge::start(OPCUA, &device(port)).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    wait_status(&mut scada, &edge, "speed", "Good").await;
    let restarts = || {
        let table = edge.runtime.handle().table().clone();
        table
            .device_state(uaedge::model::DeviceId(0))
            .expect("device")
            .reconnects
    };

    plc.kill();
    // The driver keeps running and answers reads with Bad not_connected readings: the tags
    // turn Bad and uaedge leaves the program alone.
    wait_status(&mut scada, &edge, "speed", "BadNotConnected").await;
    wait_status(&mut scada, &edge, "setpoint", "BadNotConnected").await;
    assert_eq!(restarts(), 0, "the driver was restarted");
    // A write meanwhile fails (the driver answers `not_connected`) and the program is
    // still left alone.
    let status = scada.write(&edge.node("press/setpoint"), json!(1), "Int16");
    assert_eq!(status, "BadDeviceFailure");

    // The PLC is back on the same port: the driver connects again at a later read.
    let _plc = Plc::start(port);
    let v = wait_status(&mut scada, &edge, "speed", "Good").await;
    assert_eq!(v["value"], 1480.5);
    // Tags refused in the configure answer stay so.
    wait_status(&mut scada, &edge, "bad_address", "BadConfigurationError").await;
    assert_eq!(restarts(), 0, "the driver was restarted");

    edge.stop().await;
}

/// A REAL holding NaN, sent as `"NaN"` as uaedge itself writes one (PROTOCOL.md), reads
/// as NaN and Good. (Read from uaedge's tag table: asyncua's answer would carry NaN, which
/// is not JSON.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_holding_nan_reads_as_nan() {
    let (mut plc, edge, mut scada) = start().await;
    wait_status(&mut scada, &edge, "speed", "Good").await;
    plc.set(4, &f32::NAN.to_be_bytes());
    let table = edge.runtime.handle().table().clone();
    let speed = table.find("press/speed").expect("speed");
    eventually(Duration::from_secs(5), "speed NaN and Good", || {
        let s = table.state(speed).expect("state");
        let nan = matches!(s.value, Some(uaedge_driver::Value::Float(f)) if f.is_nan());
        async move { (nan && s.quality == uaedge_driver::Quality::Good).then_some(()) }
    })
    .await;
    edge.stop().await;
}
