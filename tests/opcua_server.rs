//! uaedge's OPC UA server against Python asyncua, a SCADA-side client we did not write:
//! browse, read every data type, subscriptions (with deadbands), writes that reach a
//! pymodbus device, a device that drops and comes back, and security (Basic256Sha256,
//! users, the trusted/rejected certificate folders, anonymous off).

mod common;
mod opcua_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{eventually, Peer};
use opcua_support::{files, Edge, Scada};
use serde_json::{json, Value};

/// A simulated EtherNet/IP controller with one constant tag of every model type, counters
/// that tick every step, and a writable setpoint.
const CELL: &str = r#"
  - name: cell
    driver: enip-sim
    poll_interval: 200ms
    options: { seed: 1 }
    tags:
      - { name: types/bool, type: bool, address: "T_Bool", options: { signal: constant, value: true } }
      - { name: types/int8, type: int8, address: "T_Int8", options: { signal: constant, value: -8 } }
      - { name: types/int16, type: int16, address: "T_Int16", options: { signal: constant, value: -1600 } }
      - { name: types/int32, type: int32, address: "T_Int32", options: { signal: constant, value: -320000 } }
      - { name: types/int64, type: int64, address: "T_Int64", options: { signal: constant, value: -1234567890123 } }
      - { name: types/uint8, type: uint8, address: "T_UInt8", options: { signal: constant, value: 200 } }
      - { name: types/uint16, type: uint16, address: "T_UInt16", options: { signal: constant, value: 60000 } }
      - { name: types/uint32, type: uint32, address: "T_UInt32", options: { signal: constant, value: 4000000000 } }
      - { name: types/uint64, type: uint64, address: "T_UInt64", options: { signal: constant, value: 1234567890123456 } }
      - { name: types/float32, type: float32, address: "T_Float", options: { signal: constant, value: 1.5 } }
      - { name: types/float64, type: float64, address: "T_Double", options: { signal: constant, value: 2.718281828459045 } }
      - { name: types/string, type: string, address: "T_String", options: { signal: constant, value: "PUMP-07" } }
      - { name: types/datetime, type: datetime, address: "T_Time", options: { signal: constant, value: 1700000000000000 } }
      - { name: line/temperature, type: float64, address: "Temp", units: "°C", range: [0, 100], options: { signal: constant, value: 21.5 } }
      - { name: line/count, type: uint32, address: "Count", options: { signal: counter } }
      - { name: line/count2, type: uint32, address: "Count2", options: { signal: counter } }
      - { name: line/level, type: int32, address: "Level", range: [0, 100], options: { signal: counter, increment: 10 } }
      - { name: line/setpoint, type: float32, address: "Setpoint", units: bar, writable: true, options: { signal: constant, value: 5 } }
"#;

const ANONYMOUS_NONE: &str = "  endpoints: [none]\n  anonymous: read";

/// (tag, OPC UA DataType NodeId, asyncua variant name, expected value)
fn every_type() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        ("types/bool", "i=1", "Boolean", json!(true)),
        ("types/int8", "i=2", "SByte", json!(-8)),
        ("types/uint8", "i=3", "Byte", json!(200)),
        ("types/int16", "i=4", "Int16", json!(-1600)),
        ("types/uint16", "i=5", "UInt16", json!(60000)),
        ("types/int32", "i=6", "Int32", json!(-320000)),
        ("types/uint32", "i=7", "UInt32", json!(4_000_000_000u64)),
        ("types/int64", "i=8", "Int64", json!(-1_234_567_890_123i64)),
        (
            "types/uint64",
            "i=9",
            "UInt64",
            json!(1_234_567_890_123_456u64),
        ),
        ("types/float32", "i=10", "Float", json!(1.5)),
        (
            "types/float64",
            "i=11",
            "Double",
            json!(std::f64::consts::E),
        ),
        ("types/string", "i=12", "String", json!("PUMP-07")),
        ("types/datetime", "i=13", "DateTime", json!(1_700_000_000.0)),
    ]
}

async fn wait_good(scada: &mut Scada, node: &str) -> Value {
    eventually(Duration::from_secs(20), &format!("{node} Good"), || {
        let v = scada.read_one(node);
        async move { (v["status"] == "Good").then_some(v) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_read_every_type_translate_and_properties() {
    let edge = Edge::start(ANONYMOUS_NONE, CELL).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let ns = scada.ok(json!({"op": "namespace", "uri": "urn:uaedge:test"}))["index"].clone();
    assert_eq!(ns, json!(edge.ns));

    let tree = scada.ok(json!({"op": "browse"}));
    let nodes: HashMap<String, Value> = tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["path"].as_str().unwrap_or_default().to_string(),
                n.clone(),
            )
        })
        .collect();
    for (tag, data_type, _, _) in every_type() {
        let n = &nodes[&format!("uaedge/Devices/cell/{tag}")];
        assert_eq!(
            n["nodeid"],
            json!(edge.node(&format!("cell/{tag}"))),
            "{tag}"
        );
        assert_eq!(n["class"], "Variable");
        assert_eq!(n["data_type"], data_type, "{tag}");
        assert_eq!(n["access"], 1, "{tag} is read-only");
    }
    // Folders from the `/` in tag names, Status per device, Runtime, properties.
    assert_eq!(nodes["uaedge/Devices/cell/types"]["class"], "Object");
    assert_eq!(
        nodes["uaedge/Devices/cell/types"]["type_definition"],
        "i=61"
    );
    for path in [
        "uaedge/Devices/cell/Status/Connected",
        "uaedge/Devices/cell/Status/LastError",
        "uaedge/Devices/cell/Status/Driver",
        "uaedge/Runtime/MqttConnected",
        "uaedge/Runtime/PrimaryHostOnline",
        "uaedge/Runtime/StoreBacklog",
        "uaedge/Runtime/SamplesIn",
        "uaedge/Runtime/SamplesOut",
        "uaedge/Devices/cell/line/temperature/EURange",
        "uaedge/Devices/cell/line/temperature/EngineeringUnits",
        "uaedge/Devices/cell/line/setpoint/EngineeringUnits",
    ] {
        assert!(
            nodes.contains_key(path),
            "{path} missing from the browsed tree"
        );
    }
    // AnalogItemType where there is a range.
    assert_eq!(
        nodes["uaedge/Devices/cell/line/temperature"]["type_definition"],
        "i=2368"
    );
    // The setpoint is writable, but not for anonymous readers.
    let setpoint = &nodes["uaedge/Devices/cell/line/setpoint"];
    assert_eq!(
        (setpoint["access"].clone(), setpoint["user_access"].clone()),
        (json!(3), json!(1))
    );

    let translated = scada.ok(json!({"op": "translate", "path": [
        format!("{}:uaedge", edge.ns), format!("{}:Devices", edge.ns), format!("{}:cell", edge.ns),
        format!("{}:types", edge.ns), format!("{}:int16", edge.ns),
    ]}));
    assert_eq!(translated["nodeid"], json!(edge.node("cell/types/int16")));

    // A client that pages its Browse gets every reference once, the type definitions in the
    // core namespace included, and BrowseNext ends.
    for node in [
        edge.node("/uaedge"),
        edge.node("cell"),
        edge.node("cell/types/"),
        edge.node("cell/line/temperature"),
        edge.node("cell//Status"),
    ] {
        let sorted = |answer: &Value| {
            let mut refs: Vec<String> = answer["references"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(Value::to_string)
                .collect();
            refs.sort();
            refs
        };
        let whole = scada.ok(json!({"op": "references", "node": node, "max": 0}));
        let paged = scada.ok(json!({"op": "references", "node": node, "max": 3}));
        assert!(
            paged["statuses"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s == "Good")),
            "{node}: {paged}"
        );
        assert!(
            paged["pages"].as_array().is_some_and(|p| p.len() < 100),
            "{node}: BrowseNext never ends"
        );
        assert_eq!(sorted(&paged), sorted(&whole), "{node}");
        assert!(
            sorted(&whole).iter().any(|r| r.contains("\"i=40\"")),
            "{node} has its HasTypeDefinition: {whole}"
        );
    }

    // Every data type, once the first poll is in.
    let ids: Vec<String> = every_type()
        .iter()
        .map(|t| edge.node(&format!("cell/{}", t.0)))
        .collect();
    wait_good(&mut scada, &ids[0]).await;
    let values = scada.read(&ids);
    for ((tag, _, variant, expected), v) in every_type().into_iter().zip(&values) {
        assert_eq!(v["status"], "Good", "{tag}: {v}");
        assert_eq!(v["variant"], variant, "{tag}: {v}");
        match expected.as_f64() {
            Some(x) if tag.contains("float") || tag.contains("time") => {
                let got = v["value"].as_f64().unwrap_or(f64::NAN);
                assert!((got - x).abs() < 1e-6, "{tag}: {v}");
            }
            _ => assert_eq!(v["value"], expected, "{tag}: {v}"),
        }
        assert!(
            v["source"].as_f64().is_some() && v["server"].as_f64().is_some(),
            "{tag}: {v}"
        );
    }

    let eu = scada.ok(json!({"op": "read_attr", "attr": "Value",
        "node": edge.node("cell/line/temperature//EngineeringUnits")}));
    assert_eq!(eu["value"]["display_name"], "°C");
    assert_eq!(eu["value"]["unit_id"], 0x43454C); // UNECE CEL
    let range = scada.ok(json!({"op": "read_attr", "attr": "Value",
        "node": edge.node("cell/line/temperature//EURange")}));
    assert_eq!(range["value"], json!({"low": 0.0, "high": 100.0}));

    let status = scada.read(&[
        edge.node("cell//Status/Connected"),
        edge.node("cell//Status/Driver"),
        edge.node("/uaedge/Runtime/SamplesIn"),
        edge.node("/uaedge/Runtime/MqttConnected"),
    ]);
    assert_eq!(status[0]["value"], true);
    assert_eq!(status[1]["value"], "enip-sim");
    assert!(
        status[2]["value"].as_u64().unwrap_or(0) > 0,
        "{}",
        status[2]
    );
    // No `sparkplug:` section: there is no MQTT link to describe.
    assert_eq!(status[3]["status"], "BadOutOfService");
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_get_every_change_in_time_and_deadbands_filter() {
    let edge = Edge::start(ANONYMOUS_NONE, CELL).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let (count, count2, level) = (
        edge.node("cell/line/count"),
        edge.node("cell/line/count2"),
        edge.node("cell/line/level"),
    );
    wait_good(&mut scada, &count).await;
    // Sampling at the device's poll interval (200 ms): every step must arrive.
    let r =
        scada.ok(json!({"op": "subscribe", "nodes": [count], "publishing": 100, "sampling": 200}));
    assert_eq!(r["results"].as_array().map(Vec::len), Some(1), "{r}");
    let r = scada.ok(
        json!({"op": "subscribe", "nodes": [count2], "publishing": 100, "sampling": 200,
        "deadband": {"type": "absolute", "value": 2.5}}),
    );
    assert!(r["results"][0].is_u64(), "absolute deadband refused: {r}");
    let r = scada.ok(
        json!({"op": "subscribe", "nodes": [level], "publishing": 100, "sampling": 200,
        "deadband": {"type": "percent", "value": 25}}),
    );
    assert!(r["results"][0].is_u64(), "percent deadband refused: {r}");

    let mut by_node: HashMap<String, Vec<Value>> = HashMap::new();
    eventually(Duration::from_secs(30), "enough notifications", || {
        for c in scada.changes(Duration::from_millis(500)) {
            by_node
                .entry(c["nodeid"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(c);
        }
        let done = by_node.get(&count).map_or(0, Vec::len) >= 12
            && by_node.get(&count2).map_or(0, Vec::len) >= 4
            && by_node.get(&level).map_or(0, Vec::len) >= 4;
        async move { done.then_some(()) }
    })
    .await;

    let values = |node: &str| -> Vec<i64> {
        by_node[node]
            .iter()
            .filter_map(|c| c["value"].as_i64())
            .collect()
    };
    // No filter: every counter step, none skipped, none twice.
    let steps = values(&count);
    assert!(steps.windows(2).all(|w| w[1] == w[0] + 1), "{steps:?}");
    // Each change reached the client within one sampling interval of the server taking it.
    let mut delays: Vec<f64> = by_node[&count]
        .iter()
        .skip(1)
        .filter_map(|c| Some(c["received"].as_f64()? - c["server"].as_f64()?))
        .collect();
    delays.sort_by(f64::total_cmp);
    let median = delays[delays.len() / 2];
    assert!(median < 0.2, "median delay {median:.3}s: {delays:?}");
    // Absolute deadband 2.5 on a counter stepping by 1: only changes of 3 or more.
    let filtered = values(&count2);
    assert!(
        filtered.windows(2).all(|w| w[1] - w[0] >= 3),
        "{filtered:?}"
    );
    // 25 % of the EURange 0..100 on a counter stepping by 10: only changes of 30 or more.
    let filtered = values(&level);
    assert!(
        filtered.windows(2).all(|w| w[1] - w[0] >= 30),
        "{filtered:?}"
    );
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

/// pymodbus holding registers: a float32 setpoint, a uint16 recipe (both writable) and a
/// read-only int16 level.
fn modbus_device(dir: &Path, port: u16) -> (Peer, u16) {
    let spec = dir.join("spec.json");
    std::fs::write(
        &spec,
        r#"{"units": {"1": {"hr_size": 10, "hr": [
            {"address": 0, "type": "float32", "order": "ABCD", "value": 1.0},
            {"address": 2, "type": "uint16", "value": 7},
            {"address": 3, "type": "int16", "value": -5}]}}}"#,
    )
    .expect("write spec");
    let (peer, line) = Peer::python(
        "modbus_device.py",
        &[
            "--spec",
            &spec.display().to_string(),
            "--log",
            &dir.join("requests.log").display().to_string(),
            "--port",
            &port.to_string(),
        ],
    );
    (peer, line.parse().expect("port from the device"))
}

fn modbus_config(port: u16) -> String {
    format!(
        r#"
  - name: plc
    driver: modbus
    poll_interval: 100ms
    reconnect: {{ min: 50ms, max: 200ms }}
    options: {{ transport: tcp, host: 127.0.0.1, port: {port}, timeout: 500ms, retries: 0 }}
    tags:
      - {{ name: setpoint, type: float32, address: "hr:0", writable: true, options: {{ byte_order: ABCD }} }}
      - {{ name: recipe, type: uint16, address: "hr:2", writable: true }}
      - {{ name: level, type: int16, address: "hr:3" }}
"#
    )
}

fn modbus_writes(dir: &Path) -> Vec<Vec<u64>> {
    std::fs::read_to_string(dir.join("requests.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|w| w.parse().ok())
                .collect::<Vec<u64>>()
        })
        .filter(|r| matches!(r.get(1), Some(6 | 16)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_modbus_device_and_a_dropped_device_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut device, port) = modbus_device(dir.path(), 0);
    let edge = Edge::start(
        "  endpoints: [none]\n  anonymous: write",
        &modbus_config(port),
    )
    .await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let (setpoint, recipe, level) = (
        edge.node("plc/setpoint"),
        edge.node("plc/recipe"),
        edge.node("plc/level"),
    );
    assert_eq!(wait_good(&mut scada, &level).await["value"], -5);

    // A Double written to a float32 tag: converted by the model, registers 0x422A 0x0000.
    assert_eq!(scada.write(&setpoint, json!(42.5), "Double"), "Good");
    let writes = modbus_writes(dir.path());
    assert!(
        writes.contains(&vec![1, 16, 0, 2, 0x422A, 0x0000]),
        "{writes:?}"
    );
    eventually(Duration::from_secs(5), "setpoint read back", || {
        let v = scada.read_one(&setpoint);
        async move { (v["value"] == 42.5).then_some(()) }
    })
    .await;
    assert_eq!(scada.write(&recipe, json!(12), "UInt16"), "Good");
    assert!(modbus_writes(dir.path())
        .iter()
        .any(|w| w[..3] == [1, 6, 2] && w.last() == Some(&12)));
    // Refusals: read-only tag, wrong type, out of range; none reaches the device.
    let before = modbus_writes(dir.path()).len();
    assert_eq!(scada.write(&level, json!(1), "Int16"), "BadNotWritable");
    assert_eq!(
        scada.write(&recipe, json!("x"), "String"),
        "BadTypeMismatch"
    );
    assert_eq!(
        scada.write(&recipe, json!(70000), "Int32"),
        "BadTypeMismatch"
    );
    assert_eq!(
        scada.write(&edge.node("plc//Status/Connected"), json!(false), "Boolean"),
        "BadNotWritable"
    );
    assert_eq!(modbus_writes(dir.path()).len(), before);

    // The device drops: its tags turn Bad (with no value, as OPC UA wants) for readers and
    // subscribers, Connected goes false with the error; then it comes back.
    scada.ok(json!({"op": "subscribe", "nodes": [level], "publishing": 100, "sampling": 100}));
    device.kill();
    let bad = eventually(Duration::from_secs(10), "a Bad notification", || {
        let bad = scada
            .changes(Duration::from_millis(300))
            .into_iter()
            .find(|c| c["status"].as_str().is_some_and(|s| s.starts_with("Bad")));
        async move { bad }
    })
    .await;
    assert!(bad["value"].is_null(), "{bad}");
    let v = scada.read_one(&level);
    assert!(
        ["BadNotConnected", "BadCommunicationError"].contains(&v["status"].as_str().unwrap_or("")),
        "{v}"
    );
    let status = scada.read(&[
        edge.node("plc//Status/Connected"),
        edge.node("plc//Status/LastError"),
    ]);
    assert_eq!(status[0]["value"], false);
    assert!(
        !status[1]["value"].as_str().unwrap_or("").is_empty(),
        "{}",
        status[1]
    );

    let (_device, _) = modbus_device(dir.path(), port);
    assert_eq!(wait_good(&mut scada, &level).await["value"], -5);
    eventually(Duration::from_secs(10), "a Good notification again", || {
        let good = scada
            .changes(Duration::from_millis(300))
            .into_iter()
            .any(|c| c["status"] == "Good");
        async move { good.then_some(()) }
    })
    .await;
    assert_eq!(
        scada.read_one(&edge.node("plc//Status/Connected"))["value"],
        true
    );
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_users_certificate_folders_and_anonymous_off() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let state = tempfile::tempdir().expect("state dir");
    let salt = SaltString::encode_b64(b"uaedge-test-salt").expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"viewer-pw", &salt)
        .expect("hash")
        .to_string();
    std::fs::write(state.path().join("viewer.password"), format!("{hash}\n"))
        .expect("password file");
    let opcua = format!(
        // The top-level `users:`, shared with the web console, follows the section.
        "  endpoints: [basic256sha256_sign, basic256sha256_sign_encrypt]\n  anonymous: off\nusers:\n  - {{ name: operator, password: op-pw, role: operator }}\n  - {{ name: viewer, password_file: {}/viewer.password }}",
        state.path().display()
    );
    let edge = Edge::start_in(state, &opcua, CELL).await;
    assert!(
        edge.pki().join("own/cert.der").exists(),
        "application certificate made on first start"
    );
    assert!(edge.pki().join("private/private.pem").exists());
    let client_pki = edge.state.path().join("client");
    let connect = |user: Option<(&str, &str)>| {
        let mut cmd = json!({"op": "connect", "url": edge.url, "security": "Basic256Sha256,SignAndEncrypt",
            "pki": client_pki.display().to_string()});
        if let Some((u, p)) = user {
            cmd["user"] = json!(u);
            cmd["password"] = json!(p);
        }
        cmd
    };

    // The client's certificate is unknown: refused, and filed under pki/rejected.
    let mut scada = Scada::start();
    let refused = scada.call(connect(Some(("operator", "op-pw"))));
    assert!(
        refused.get("error").is_some(),
        "untrusted client accepted: {refused}"
    );
    let rejected = files(&edge.pki().join("rejected"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // The operator trusts it by moving it to pki/trusted.
    let trusted = edge
        .pki()
        .join("trusted")
        .join(rejected[0].file_name().expect("name"));
    std::fs::rename(&rejected[0], trusted).expect("trust the client");

    let mut scada = Scada::start();
    scada.ok(connect(Some(("operator", "op-pw"))));
    let setpoint = edge.node("cell/line/setpoint");
    wait_good(&mut scada, &setpoint).await;
    assert_eq!(scada.write(&setpoint, json!(7.25), "Float"), "Good");
    eventually(Duration::from_secs(5), "the written setpoint", || {
        let v = scada.read_one(&setpoint);
        async move { (v["value"] == 7.25).then_some(()) }
    })
    .await;
    scada.ok(json!({"op": "disconnect"}));

    // A viewer (the default role; argon2-hashed password from a file) reads but may not write.
    let mut scada = Scada::start();
    scada.ok(connect(Some(("viewer", "viewer-pw"))));
    assert_eq!(scada.read_one(&setpoint)["status"], "Good");
    assert_eq!(
        scada.write(&setpoint, json!(1.0), "Float"),
        "BadUserAccessDenied"
    );
    scada.ok(json!({"op": "disconnect"}));

    // Wrong password, unknown user, anonymous: refused.
    for user in [Some(("operator", "wrong")), Some(("nobody", "op-pw")), None] {
        let mut scada = Scada::start();
        let answer = scada.call(connect(user));
        assert!(answer.get("error").is_some(), "{user:?} got in: {answer}");
    }
    // Sign only works too; no None endpoint is offered at all.
    let mut scada = Scada::start();
    let mut sign = connect(Some(("operator", "op-pw")));
    sign["security"] = json!("Basic256Sha256,Sign");
    scada.ok(sign);
    scada.ok(json!({"op": "disconnect"}));
    let mut scada = Scada::start();
    let answer = scada.call(json!({"op": "connect", "url": edge.url}));
    assert!(
        answer.get("error").is_some(),
        "None endpoint answered: {answer}"
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_limits_are_advertised_as_configured() {
    let edge = Edge::start(
        &format!("{ANONYMOUS_NONE}\n  limits: {{ max_nodes_per_read: 5000, max_monitored_items_per_call: 2000, max_string_length: 4096 }}"),
        CELL,
    )
    .await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    // Server/ServerCapabilities: MaxArrayLength, MaxStringLength; OperationLimits:
    // MaxNodesPerRead, MaxNodesPerWrite, MaxNodesPerBrowse, MaxMonitoredItemsPerCall.
    let ids = [11702, 11703, 11705, 11707, 11710, 11714].map(|i| format!("i={i}"));
    let values: Vec<Value> = scada
        .read(&ids)
        .iter()
        .map(|v| v["value"].clone())
        .collect();
    assert_eq!(
        values,
        [100_000, 4096, 5000, 100_000, 100_000, 2000].map(|n| json!(n)),
        "{values:?}"
    );
    edge.stop().await;
}
