//! Two uaedge instances chained: the upstream one serves a simulated controller over its
//! OPC UA server; the downstream one reads it with the `opcua-client` driver, in both
//! modes, and writes back through it.

mod common;
mod opcua_support;

use std::time::Duration;

use common::eventually;
use opcua_support::Edge;
use uaedge::config::Config;
use uaedge::runtime::Runtime;
use uaedge_driver::{Quality, Timestamp, Value};

const CELL: &str = r#"
  - name: cell
    driver: enip-sim
    poll_interval: 100ms
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
      - { name: line/count, type: uint32, address: "Count", options: { signal: counter } }
      - { name: line/setpoint, type: float32, address: "Setpoint", writable: true, options: { signal: constant, value: 5 } }
"#;

fn expected() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("types/bool", "bool", Value::Boolean(true)),
        ("types/int8", "int8", Value::Int8(-8)),
        ("types/int16", "int16", Value::Int16(-1600)),
        ("types/int32", "int32", Value::Int32(-320_000)),
        ("types/int64", "int64", Value::Int64(-1_234_567_890_123)),
        ("types/uint8", "uint8", Value::UInt8(200)),
        ("types/uint16", "uint16", Value::UInt16(60000)),
        ("types/uint32", "uint32", Value::UInt32(4_000_000_000)),
        (
            "types/uint64",
            "uint64",
            Value::UInt64(1_234_567_890_123_456),
        ),
        ("types/float32", "float32", Value::Float(1.5)),
        (
            "types/float64",
            "float64",
            Value::Double(std::f64::consts::E),
        ),
        ("types/string", "string", Value::String("PUMP-07".into())),
        (
            "types/datetime",
            "datetime",
            Value::DateTime(Timestamp(1_700_000_000_000_000)),
        ),
    ]
}

fn downstream_config(url: &str, pki: &std::path::Path, mode: &str) -> String {
    let mut tags = String::new();
    for (tag, ty, _) in expected() {
        tags.push_str(&format!(
            "      - {{ name: \"{tag}\", type: {ty}, address: \"nsu=urn:uaedge:test;s=cell/{tag}\" }}\n"
        ));
    }
    tags.push_str("      - { name: line/count, type: uint32, address: \"nsu=urn:uaedge:test;s=cell/line/count\" }\n");
    tags.push_str("      - { name: line/setpoint, type: float32, address: \"nsu=urn:uaedge:test;s=cell/line/setpoint\", writable: true }\n");
    format!(
        "devices:\n  - name: upstream\n    driver: opcua-client\n    poll_interval: 100ms\n    reconnect: {{ min: 50ms, max: 500ms }}\n    options: {{ endpoint: \"{url}\", pki_dir: \"{}\", mode: {mode}, publishing_interval: 100ms, request_timeout: 2s }}\n    tags:\n{tags}",
        pki.display()
    )
}

fn state(rt: &Runtime, path: &str) -> (Option<Value>, Quality) {
    let table = rt.handle().table().clone();
    let id = table.find(path).unwrap_or_else(|| panic!("no tag {path}"));
    let s = table.state(id).expect("state");
    (s.value, s.quality)
}

async fn chain(mode: &str) {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: write", CELL).await;
    let pki = tempfile::tempdir().expect("pki");
    let text = downstream_config(&edge.url, pki.path(), mode);
    let down =
        Runtime::start(Config::parse("down.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    eventually(
        Duration::from_secs(30),
        "every chained tag Good",
        || async {
            let table = down.handle().table().clone();
            table
                .states(|s| s.iter().all(|t| t.quality == Quality::Good))
                .then_some(())
        },
    )
    .await;
    for (tag, _, value) in expected() {
        assert_eq!(
            state(&down, &format!("upstream/{tag}")),
            (Some(value), Quality::Good),
            "{mode} {tag}"
        );
    }
    // The counter keeps moving through both instances.
    let first = state(&down, "upstream/line/count").0;
    eventually(Duration::from_secs(10), "the counter moving", || async {
        (state(&down, "upstream/line/count").0 != first).then_some(())
    })
    .await;
    // A write downstream reaches the upstream instance's device and comes back.
    let handle = down.handle();
    handle
        .write("upstream/line/setpoint", &Value::Double(42.5))
        .await
        .expect("chained write");
    eventually(Duration::from_secs(10), "the write upstream", || async {
        let up = edge.runtime.handle().table().clone();
        let id = up.find("cell/line/setpoint")?;
        (up.state(id)?.value == Some(Value::Float(42.5))).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the write back downstream",
        || async {
            (state(&down, "upstream/line/setpoint").0 == Some(Value::Float(42.5))).then_some(())
        },
    )
    .await;
    down.shutdown().await.expect("downstream stops");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uaedge_reads_another_by_subscription() {
    chain("subscription").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uaedge_reads_another_by_polling() {
    chain("polling").await;
}
