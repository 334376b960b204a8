//! Anomaly checks end to end: a simulated EtherNet/IP device with scheduled faults (spike,
//! drift, stuck, dropout) raises exactly the expected alarms at the expected steps, seen by
//! a Sparkplug host (the Python peer, real mosquitto) and an OPC UA client (asyncua); and
//! an alarm's reaction writes to an output of the device.
//!
//! The simulator is deterministic: step `k` is at `start + k·50 ms` and its values are a
//! pure function of `k`, so every alarm transition happens at a known step. The faults
//! repeat every 4 s (80 steps), so whichever cycle a consumer sees in full must show the
//! same transitions at the same offsets. `step` counts the steps (its value is `k`), which
//! gives `start` from any of its samples.

mod common;
mod opcua_support;
mod sparkplug_support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use common::eventually;
use opcua_support::{Edge, Scada};
use serde_json::{json, Value as Json};
use sparkplug_support::{kind, metrics, topic, wait_for, Broker, Host};
use uaedge::config::Config;
use uaedge::runtime::Runtime;
use uaedge_driver::Value;

const PERIOD_MS: i64 = 50;
const CYCLE: i64 = 80;
const T: Duration = Duration::from_secs(30);

/// Per 80-step cycle, with the sim's faults below:
/// - `pressure` (constant 100) spikes by 50 for steps 20..27: the spike check (median 100,
///   MAD 0 floored at 0.5) is Active at 20 and clears at 28, where the window still holds
///   100 as its median;
/// - `temperature` (constant 50) drifts by 2/s = 0.1 per step from step 30 to 49: 51.3 at
///   step 43 is the first value above 51.25; back to 50 at step 50 clears it;
/// - `speed` (a sawtooth, 2.5 per step) is stuck at its step-40 value for steps 40..59: the
///   10th equal sample (step 49) completes the flatline; step 60 moves again;
/// - `level` (constant 5) drops out (Bad) for steps 64..71: its limits and spike checks
///   skip Bad samples and stay Normal.
const LINE: &str = r#"
  - name: line
    driver: enip-sim
    poll_interval: 50ms
    options:
      seed: 5
      sample_period: 50ms
      faults:
        - { kind: spike, tag: pressure, at: 1s, magnitude: 50, duration: 400ms, every: 4s }
        - { kind: drift, tag: temperature, at: 1500ms, rate: 2, duration: 1s, every: 4s }
        - { kind: stuck, tag: speed, at: 2s, duration: 1s, every: 4s }
        - { kind: dropout, tag: level, at: 3200ms, duration: 400ms, every: 4s }
    tags:
      - { name: step, type: uint32, address: "Step", options: { signal: counter } }
      - name: pressure
        type: float32
        address: "Pressure"
        options: { signal: constant, value: 100 }
        checks:
          - { kind: spike, window_samples: 30, threshold: 5, min_spread: 0.5,
              reaction: { write: { tag: pump, value: false } } }
      - name: temperature
        type: float32
        address: "Temp"
        options: { signal: constant, value: 50 }
        checks:
          - { kind: limits, name: high, hi: 51.25, hysteresis: 0.5 }
      - name: speed
        type: float32
        address: "Speed"
        options: { signal: ramp, min: 0, max: 100, period: 2s }
        checks:
          - { kind: flatline, epsilon: 0.01, window_samples: 10 }
      - name: level
        type: float32
        address: "Level"
        options: { signal: constant, value: 5 }
        checks:
          - { kind: limits, lo: 1, hi: 9 }
          - { kind: spike, window_samples: 20, threshold: 5, min_spread: 0.5 }
      - { name: pump, type: bool, address: "Pump", writable: true, options: { signal: constant, value: true } }
"#;

const ALARMS: [&str; 5] = [
    "pressure/Alarms/spike",
    "temperature/Alarms/high",
    "speed/Alarms/flatline",
    "level/Alarms/limits",
    "level/Alarms/spike",
];

/// (step, alarm, active) in one cycle, by offset.
const CYCLE_TRANSITIONS: [(i64, &str, bool); 6] = [
    (20, "pressure/Alarms/spike", true),
    (28, "pressure/Alarms/spike", false),
    (43, "temperature/Alarms/high", true),
    (49, "speed/Alarms/flatline", true),
    (50, "temperature/Alarms/high", false),
    (60, "speed/Alarms/flatline", false),
];

type Transition = (i64, String, bool);

/// Every transition at steps `from..=to`.
fn expected(from: i64, to: i64) -> BTreeSet<Transition> {
    let mut out = BTreeSet::new();
    let mut base = from - from.rem_euclid(CYCLE);
    while base <= to {
        for (offset, alarm, active) in CYCLE_TRANSITIONS {
            let step = base + offset;
            if (from..=to).contains(&step) {
                out.insert((step, alarm.to_string(), active));
            }
        }
        base += CYCLE;
    }
    out
}

/// The step of a time on the sim's grid (ms), checking that it is on the grid.
fn step_of(start_ms: i64, t_ms: i64) -> i64 {
    let since = t_ms - start_ms;
    assert_eq!(
        since.rem_euclid(PERIOD_MS),
        0,
        "{t_ms} ms is not on the step grid from {start_ms}"
    );
    since / PERIOD_MS
}

fn sparkplug_config(state_dir: &Path, port: u16) -> String {
    format!(
        "node: {{ name: edge1 }}\nstate_dir: \"{}\"\nsparkplug:\n  broker: mqtt://127.0.0.1:{port}\n  group_id: plant\n  reconnect: {{ min: 100ms, max: 300ms }}\n  diagnostics_period: 1s\ndevices:{LINE}",
        state_dir.display()
    )
}

#[test]
fn alarms_are_sparkplug_metrics_in_dbirth_and_ddata_at_the_expected_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let rt = common::tokio_rt();
    let text = sparkplug_config(dir.path(), broker.port);
    let runtime = {
        let _enter = rt.enter();
        Runtime::start(Config::parse("test.yaml", &text).unwrap_or_else(|e| panic!("{e}")))
    };

    // The node's diagnostics count alarms.
    let nbirth = host.wait(T, "NBIRTH", |m| kind(m) == "NBIRTH");
    for name in ["Alarms/Active", "Alarms/Transitions"] {
        let m = metrics(&nbirth)
            .into_iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} in NBIRTH: {nbirth}"));
        assert_eq!(m["datatype"], 8, "UInt64: {m}");
    }

    // Each alarm is a Boolean metric of the device, named by its path, Good from the start.
    let dbirth = host.wait(T, "DBIRTH line", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/line"
    });
    let by_name: HashMap<String, Json> = metrics(&dbirth)
        .into_iter()
        .filter_map(|x| Some((x["name"].as_str()?.to_string(), x.clone())))
        .collect();
    for alarm in ALARMS {
        let m = by_name
            .get(alarm)
            .unwrap_or_else(|| panic!("{alarm} in DBIRTH: {dbirth}"));
        assert_eq!(m["datatype"], 11, "Boolean: {m}");
        assert!(m["value"].is_boolean(), "{m}");
        assert_eq!(m["properties"]["Quality"], 192, "{m}");
    }
    let alias = |name: &str| by_name[name]["alias"].as_u64().expect("alias");
    let step_alias = alias("step");
    let level_alias = alias("level");
    let alarm_of: HashMap<u64, &str> = ALARMS.iter().map(|a| (alias(a), *a)).collect();

    // Everything of `line`, live and historical (the store forwards what came before the
    // birth), deduplicated: delivery is at least once.
    let ddata = |host: &Host| -> Vec<Json> {
        host.sparkplug()
            .into_iter()
            .filter(|m| topic(m) == "spBv1.0/plant/DDATA/edge1/line")
            .flat_map(|m| metrics(&m))
            .collect()
    };
    // Steps 0..=n all arrived: every transition up to n has too (it travels in the batch of
    // its step). Two cycles and a bit.
    let through = CYCLE * 2 + 10;
    let (start_ms, n) = wait_for(T, "steps 0..=170 in DDATA", || {
        let mut steps = BTreeSet::new();
        let mut start = None;
        for x in ddata(&host).iter().filter(|x| x["alias"] == step_alias) {
            let (Some(v), Some(t)) = (x["value"].as_i64(), x["timestamp"].as_i64()) else {
                continue;
            };
            let s = t - v * PERIOD_MS;
            assert!(
                start.is_none_or(|s0| s0 == s),
                "step times off the grid: {x}"
            );
            start = Some(s);
            steps.insert(v);
        }
        let n = steps
            .iter()
            .enumerate()
            .take_while(|(i, v)| **v == *i as i64)
            .count() as i64
            - 1;
        (n >= through).then(|| (start.expect("start"), n))
    });

    let seen: BTreeSet<Transition> = ddata(&host)
        .iter()
        .filter_map(|x| {
            let alarm = alarm_of.get(&x["alias"].as_u64()?)?;
            let step = step_of(start_ms, x["timestamp"].as_i64()?);
            Some((step, alarm.to_string(), x["value"].as_bool()?))
        })
        .filter(|(step, _, _)| *step <= n)
        .collect();
    assert_eq!(seen, expected(0, n), "alarm transitions by step");

    // The dropout did happen (level went Bad) and raised nothing.
    assert!(
        ddata(&host)
            .iter()
            .any(|x| x["alias"] == level_alias && x["properties"]["Quality"] == 0),
        "level never went Bad"
    );
    let counts = runtime.handle().alarm_counts();
    assert_eq!(counts.checks, 5);
    assert!(counts.transitions >= 6, "{counts:?}");
    rt.block_on(runtime.shutdown()).expect("clean shutdown");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_are_opcua_variables_under_their_tag_with_the_expected_changes() {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: read", LINE).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);

    // Objects/uaedge/Devices/line/pressure (the variable) → Alarms → spike.
    let tree = scada.ok(json!({"op": "browse"}));
    let nodes = tree["nodes"].as_array().expect("nodes");
    let at = |path: &str| -> Vec<&Json> { nodes.iter().filter(|n| n["path"] == path).collect() };
    let tag = at("uaedge/Devices/line/pressure");
    assert_eq!(tag.len(), 1, "one node named pressure: {tag:?}");
    assert_eq!(tag[0]["class"], "Variable");
    let folder = at("uaedge/Devices/line/pressure/Alarms");
    assert_eq!(folder.len(), 1, "{folder:?}");
    assert_eq!(folder[0]["class"], "Object");
    for alarm in ALARMS {
        let found = at(&format!("uaedge/Devices/line/{alarm}"));
        assert_eq!(found.len(), 1, "{alarm}: {found:?}");
        let n = found[0];
        assert_eq!(n["nodeid"], json!(edge.node(&format!("line/{alarm}"))));
        assert_eq!(n["class"], "Variable");
        assert_eq!(n["data_type"], "i=1", "Boolean: {n}");
        assert_eq!(n["access"], 1, "read-only: {n}");
    }
    let ns = edge.ns;
    let translated = scada.ok(json!({"op": "translate", "path": [
        format!("{ns}:uaedge"), format!("{ns}:Devices"), format!("{ns}:line"),
        format!("{ns}:pressure"), format!("{ns}:Alarms"), format!("{ns}:spike"),
    ]}));
    assert_eq!(
        translated["nodeid"],
        json!(edge.node("line/pressure/Alarms/spike"))
    );

    // Readable, Good and Boolean from the start; the Runtime object counts them.
    let ids: Vec<String> = ALARMS
        .iter()
        .map(|a| edge.node(&format!("line/{a}")))
        .collect();
    for v in scada.read(&ids) {
        assert_eq!(
            (v["status"].as_str(), v["variant"].as_str()),
            (Some("Good"), Some("Boolean")),
            "{v}"
        );
    }
    let runtime = scada.read(&[
        edge.node("/uaedge/Runtime/AlarmsActive"),
        edge.node("/uaedge/Runtime/AlarmTransitions"),
    ]);
    for v in &runtime {
        assert_eq!(v["status"], "Good", "{v}");
        assert_eq!(v["variant"], "UInt64", "{v}");
    }

    scada.ok(json!({"op": "subscribe", "nodes": ids, "publishing": 100, "sampling": 100}));
    let step_node = edge.node("line/step");
    let step_now = |scada: &mut Scada| -> (i64, f64) {
        let v = scada.read_one(&step_node);
        (
            v["value"].as_i64().unwrap_or(-1),
            v["source"].as_f64().unwrap_or(0.0),
        )
    };
    // The first cycle that starts after the subscription, seen in full.
    let (subscribed_at, source) = step_now(&mut scada);
    let start_ms = (source * 1000.0).round() as i64 - subscribed_at * PERIOD_MS;
    let first = (subscribed_at / CYCLE + 1) * CYCLE;
    let last = first + CYCLE - 1;
    eventually(T, "a full alarm cycle after subscribing", || {
        let (step, _) = step_now(&mut scada);
        async move { (step > last + 10).then_some(()) }
    })
    .await;
    let mut changes = Vec::new();
    loop {
        let more = scada.changes(Duration::from_millis(500));
        if more.is_empty() {
            break;
        }
        changes.extend(more);
    }
    let name_of: HashMap<String, &str> = ALARMS
        .iter()
        .map(|a| (edge.node(&format!("line/{a}")), *a))
        .collect();
    let mut seen = BTreeSet::new();
    for c in &changes {
        let alarm = name_of[c["nodeid"].as_str().unwrap_or_default()];
        assert_eq!(c["status"], "Good", "{c}");
        // The dropout raises nothing: level's alarms only ever show their initial false.
        assert!(
            !(alarm.starts_with("level/") && c["value"] == true),
            "the dropout raised an alarm: {c}"
        );
        let source_ms = (c["source"].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
        // The initial values carry the time of the table's start or of an older change.
        if source_ms < start_ms + first * PERIOD_MS {
            continue;
        }
        let step = step_of(start_ms, source_ms);
        if step <= last {
            seen.insert((step, alarm.to_string(), c["value"] == true));
        }
    }
    assert_eq!(seen, expected(first, last), "alarm changes by step");
    let transitions = scada.read_one(&edge.node("/uaedge/Runtime/AlarmTransitions"));
    assert!(
        transitions["value"].as_u64().unwrap_or(0) >= 6,
        "{transitions}"
    );
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reaction_writes_its_value_to_the_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("state_dir: \"{}\"\ndevices:{LINE}", dir.path().display());
    let runtime =
        Runtime::start(Config::parse("test.yaml", &text).unwrap_or_else(|e| panic!("{e}")));
    let handle = runtime.handle();
    let table = handle.table().clone();
    let id = |path: &str| table.find(path).unwrap_or_else(|| panic!("{path}"));
    let pump = id("line/pump");

    // The output holds its own value until the spike alarm (step 20) writes false to it.
    let on = eventually(T, "pump on", || {
        let s = table.state(pump);
        async move { s.filter(|s| s.value == Some(Value::Boolean(true))) }
    })
    .await;
    let off = eventually(T, "the reaction's write", || {
        let s = table.state(pump);
        async move { s.filter(|s| s.value == Some(Value::Boolean(false))) }
    })
    .await;
    assert!(off.quality.is_good(), "{off:?}");
    // On the step grid: the write lands at or after the alarm's step 20.
    let step = table.state(id("line/step")).expect("step state");
    let Some(Value::UInt32(k)) = step.value else {
        panic!("step: {step:?}")
    };
    let start = step.source_time.0 - i64::from(k) * PERIOD_MS * 1000;
    let step_of = |t: uaedge_driver::Timestamp| (t.0 - start) / (PERIOD_MS * 1000);
    assert!(step_of(off.source_time) >= 20, "{off:?} before the alarm");
    assert!(step_of(on.source_time) < step_of(off.source_time));
    assert!(handle.alarm_counts().transitions >= 1);
    runtime.shutdown().await.expect("clean shutdown");
}

/// A tank whose level is always over its limit: its alarm is Active and waits for an
/// acknowledgement.
const TANK: &str = r#"
  - name: tank
    driver: enip-sim
    poll_interval: 100ms
    tags:
      - name: level
        type: float32
        address: "Level"
        options: { signal: constant, value: 50 }
        checks:
          - { kind: limits, hi: 10 }
"#;

#[test]
fn acked_is_a_sparkplug_metric_and_a_dcmd_of_true_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let mut host = Host::start(broker.port);
    let rt = common::tokio_rt();
    let text = sparkplug_config(dir.path(), broker.port).replace(LINE, TANK);
    let runtime = {
        let _enter = rt.enter();
        Runtime::start(Config::parse("test.yaml", &text).unwrap_or_else(|e| panic!("{e}")))
    };
    let dbirth = host.wait(T, "DBIRTH tank", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/tank"
    });
    let acked = "level/Alarms/limits/Acked";
    let metric = metrics(&dbirth)
        .into_iter()
        .find(|m| m["name"] == acked)
        .unwrap_or_else(|| panic!("{acked} in DBIRTH: {dbirth}"));
    assert_eq!(metric["datatype"], 11, "Boolean: {metric}");
    let alias = metric["alias"].clone();
    // Acked, in the birth or in a DDATA after it, goes false: the alarm waits. `since`
    // skips the messages before a point: the birth may carry Acked true from before the
    // alarm fired, which must not pass for the acknowledgement.
    let said = |host: &Host, since: usize, value: bool| {
        host.sparkplug().iter().skip(since).any(|m| {
            metrics(m)
                .iter()
                .any(|x| (x["name"] == acked || x["alias"] == alias) && x["value"] == json!(value))
        })
    };
    wait_for(T, "Acked false", || said(&host, 0, false).then_some(()));
    let key = "tank/level/Alarms/limits";
    let waiting = runtime.handle().conditions().get(key).expect("condition");
    assert!(waiting.state.active && !waiting.state.acked);

    let before_dcmd = host.sparkplug().len();
    let dcmd = "spBv1.0/plant/DCMD/edge1/tank";
    // False cannot take an acknowledgement back; it is refused and changes nothing.
    host.send(
        json!({"publish": dcmd, "metrics": [{"name": acked, "datatype": 11, "value": false}]}),
    );
    host.send(
        json!({"publish": dcmd, "metrics": [{"name": acked, "datatype": 11, "value": true}]}),
    );
    wait_for(T, "Acked true in DDATA", || {
        said(&host, before_dcmd, true).then_some(())
    });
    let done = runtime.handle().conditions().get(key).expect("condition");
    assert!(done.state.acked && done.state.active, "{:?}", done.state);
    assert_eq!(done.state.client_user_id, "sparkplug host");
    rt.block_on(runtime.shutdown()).expect("clean shutdown");
    drop(broker);
}
