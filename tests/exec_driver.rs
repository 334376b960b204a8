//! The exec driver inside the `uaedge` binary (issue 20): a real child program
//! (plugins/exec/tests/test_driver.py) feeding tags of every type; asyncua reads them over
//! OPC UA and the independent Sparkplug peer (Eclipse Tahu's protobuf) sees them in DBIRTH;
//! writes from the OPC UA client reach the program and come back with its answer; SIGTERM
//! to uaedge stops the program and what it started.

mod common;
mod opcua_support;
mod sparkplug_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value as Json};
use sparkplug_support::{free_port, kind, metrics, wait_for, Broker, Host, Uaedge};

const T: Duration = Duration::from_secs(30);

/// (tag, config type, address, asyncua variant, value as asyncua reads it, Sparkplug datatype)
fn every_type() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Json,
    u64,
)> {
    vec![
        ("b", "bool", "const:true", "Boolean", json!(true), 11),
        ("i8", "int8", "const:-8", "SByte", json!(-8), 1),
        ("i16", "int16", "const:-1600", "Int16", json!(-1600), 2),
        ("i32", "int32", "const:-320000", "Int32", json!(-320000), 3),
        (
            "i64",
            "int64",
            "const:-9007199254740993",
            "Int64",
            json!(-9007199254740993i64),
            4,
        ),
        ("u8", "uint8", "const:255", "Byte", json!(255), 5),
        ("u16", "uint16", "const:65535", "UInt16", json!(65535), 6),
        (
            "u32",
            "uint32",
            "const:4294967295",
            "UInt32",
            json!(4294967295u64),
            7,
        ),
        (
            "u64",
            "uint64",
            "const:18446744073709551615",
            "UInt64",
            json!(u64::MAX),
            8,
        ),
        ("f32", "float32", "const:1.5", "Float", json!(1.5), 9),
        (
            "f64",
            "float64",
            "const:-2.25e100",
            "Double",
            json!(-2.25e100),
            10,
        ),
        (
            "s",
            "string",
            "const:\\\"line \\\\\\\"one\\\\\\\"\\\"",
            "String",
            json!("line \"one\""),
            12,
        ),
        (
            "t",
            "datetime",
            "const:\\\"2026-12-07T10:00:00.5Z\\\"",
            "DateTime",
            json!(1_796_637_600.5),
            13,
        ),
    ]
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/exec/tests/test_driver.py")
}

fn config(dir: &Path, ua: u16, mqtt: u16) -> String {
    let mut tags: String = every_type()
        .iter()
        .map(|(name, ty, address, ..)| {
            format!("      - {{ name: {name}, type: {ty}, address: \"{address}\" }}\n")
        })
        .collect();
    tags.push_str("      - { name: set, type: int16, address: \"const:7\", writable: true }\n");
    tags.push_str("      - { name: refused, type: int16, address: refuse, writable: true }\n");
    format!(
        r#"
node: {{ name: edge1 }}
state_dir: "{dir}"
opcua: {{ listen: "127.0.0.1:{ua}", endpoints: [none], anonymous: write, namespace_uri: "urn:uaedge:test" }}
sparkplug:
  group_id: plant
  broker: mqtt://127.0.0.1:{mqtt}
devices:
  - name: ext
    driver: exec
    poll_interval: 100ms
    options:
      command: ["{python}", "{script}"]
      env: {{ MODE: normal, GRANDCHILD: "1", PIDFILE: "{dir}/driver.pid" }}
    tags:
{tags}"#,
        dir = dir.display(),
        script = script().display(),
        python = common::python().display(),
    )
}

#[test]
fn a_child_program_feeds_opcua_and_sparkplug_takes_writes_and_stops_with_uaedge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let ua = free_port();
    let cfg = dir.path().join("uaedge.yaml");
    std::fs::write(&cfg, config(dir.path(), ua, broker.port)).expect("config");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("uaedge check");
    assert!(check.status.success(), "{check:?}");
    let mut node = Uaedge::start(&cfg);

    // Sparkplug: every type in DBIRTH, with its datatype and value.
    let dbirth = host.wait(T, "DBIRTH of ext", |m| {
        kind(m) == "DBIRTH"
            && metrics(m)
                .iter()
                .any(|x| x["name"] == "s" && !x["value"].is_null())
    });
    let birth = metrics(&dbirth);
    for (name, _, _, _, value, datatype) in every_type() {
        let m = birth
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in DBIRTH: {birth:?}"));
        assert_eq!(m["datatype"], datatype, "{name}: {m}");
        // Sparkplug times are milliseconds since the epoch.
        let value = match datatype {
            13 => json!(1_796_637_600_500u64),
            _ => value,
        };
        assert_eq!(m["value"], value, "{name}: {m}");
    }

    // OPC UA, through asyncua: the same values, Good, in their types.
    let mut scada = opcua_support::Scada::start();
    scada.connect_none_when_ready(&format!("opc.tcp://127.0.0.1:{ua}/"));
    let ns = scada.ok(json!({"op": "namespace", "uri": "urn:uaedge:test"}))["index"].clone();
    let node_id = |tag: &str| format!("ns={ns};s=ext/{tag}");
    let nodes: Vec<String> = every_type().iter().map(|t| node_id(t.0)).collect();
    let values = scada.read(&nodes);
    for ((name, _, _, variant, value, _), got) in every_type().into_iter().zip(&values) {
        assert_eq!(got["status"], "Good", "{name}: {got}");
        assert_eq!(got["variant"], variant, "{name}: {got}");
        assert_eq!(got["value"], value, "{name}: {got}");
    }

    // Writes reach the program; its answer is the write's status.
    assert_eq!(scada.write(&node_id("set"), json!(-42), "Int16"), "Good");
    wait_for(T, "the written value read back", || {
        (scada.read_one(&node_id("set"))["value"] == -42).then_some(())
    });
    assert_eq!(
        scada.write(&node_id("refused"), json!(1), "Int16"),
        "BadDeviceFailure"
    );

    // SIGTERM: uaedge stops the program and its own child, and exits cleanly.
    let pids = std::fs::read_to_string(dir.path().join("driver.pid")).expect("pid file");
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.iter().all(|p| common::alive(p)), "{pids:?}");
    drop(scada);
    assert!(node.terminate().success());
    wait_for(
        Duration::from_secs(5),
        "the driver and its child to go",
        || pids.iter().all(|p| !common::alive(p)).then_some(()),
    );
}

/// A device `ext` whose program exits at its `crash_after`-th read, polled every 20 ms
/// with `reconnect` as its backoff (YAML list items).
fn crashing_device(crash_after: u32, reconnect: &str) -> String {
    format!(
        r#"  - name: ext
    driver: exec
    poll_interval: 20ms
    reconnect: {reconnect}
    options:
      command: ["{}", "{}"]
      env: {{ MODE: crash, CRASH_AFTER: "{crash_after}" }}
    tags:
      - {{ name: n, type: int32, address: counter }}
"#,
        common::python().display(),
        script().display()
    )
}

/// Restarts of the first device so far.
fn reconnects(table: &uaedge::model::TagTable) -> u64 {
    table
        .device_state(uaedge::model::DeviceId(0))
        .map(|s| s.reconnects)
        .unwrap_or(0)
}

/// A program that exits after every few reads, inside the runtime: each exit turns the
/// tag Bad, each restart is counted as a reconnect, the values come back every time, and
/// the device beside it goes on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_program_is_restarted_and_counted_by_the_runtime() {
    let devices = crashing_device(10, "{ min: 10ms, max: 20ms }")
        + r#"  - name: other
    driver: enip-sim
    poll_interval: 20ms
    tags:
      - { name: c, type: uint32, address: "Tag_0", options: { signal: counter } }
"#;
    let edge = opcua_support::Edge::start("  endpoints: [none]\n  anonymous: read", &devices).await;
    let table = edge.runtime.handle().table().clone();
    let n = table.find("ext/n").expect("tag");
    let restarts = || reconnects(&table);
    // Good (a value read) and Bad (the program gone) in turn, again and again.
    let (mut good, mut bad, mut last) = (0, 0, None);
    let (start, base) = (std::time::Instant::now(), restarts());
    while restarts() < base + 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} restarts",
            restarts()
        );
        if let Some(s) = table.state(n) {
            let q = s.quality.is_good();
            if last != Some(q) {
                if q {
                    good += 1
                } else {
                    bad += 1
                }
                last = Some(q);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(good >= 5 && bad >= 5, "good {good} times, bad {bad} times");
    // The device beside it never noticed.
    let other = table.find("other/c").expect("other tag");
    let seen = table.state(other).expect("state");
    assert!(seen.quality.is_good(), "{seen:?}");
    common::eventually(
        Duration::from_secs(5),
        "the other device still counting",
        || {
            let now = table.state(other).map(|s| s.value);
            let moved = now != Some(seen.value.clone());
            async move { moved.then_some(()) }
        },
    )
    .await;
    edge.stop().await;
}

/// A program that dies at its first read, inside the runtime: it never delivers, so each
/// restart waits twice as long as the last (100 ms, 200 ms, … up to `reconnect.max`)
/// rather than hammering at `reconnect.min`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_never_answers_a_read_backs_off() {
    let devices = crashing_device(1, "{ min: 100ms, max: 1600ms }");
    let edge = opcua_support::Edge::start("  endpoints: [none]\n  anonymous: read", &devices).await;
    let table = edge.runtime.handle().table().clone();
    let restarts = || reconnects(&table);
    let at = |n: u64| {
        common::eventually(Duration::from_secs(60), "restarts", move || {
            let done = restarts() >= n;
            async move { done.then_some(std::time::Instant::now()) }
        })
    };
    // By the fifth failure in a row the wait is at its cap: after that, two restarts take
    // two waits of 1.6 s (hammering at `reconnect.min` would take 0.2 s and two starts).
    // A lower bound, which a slow machine only lengthens.
    at(5).await;
    let r = restarts();
    let a = at(r + 1).await;
    let b = at(r + 3).await;
    let took = b - a;
    assert!(took >= Duration::from_millis(3_000), "{took:?}");
    edge.stop().await;
}
