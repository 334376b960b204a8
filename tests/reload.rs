//! `systemctl reload` (SIGHUP): a config with errors is refused with every error logged and
//! the running config keeps going; a good changed config is applied in place. Untouched
//! devices keep their links, an OPC UA client's session and monitored items, and the
//! Sparkplug session (same bdSeq, re-birth only when the tag set changed); after a reload
//! every DBIRTH says what an OPC UA Read returns, alarm tags the reload added included;
//! `log.level` follows the file.

mod common;
mod opcua_support;
mod sparkplug_support;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use uaedge::bus::ModelEvent;
use uaedge::config::Config;
use uaedge::runtime::Runtime;
use uaedge_driver::{Quality, Value};

use opcua_support::Scada;
use sparkplug_support::{bd_seq, kind, metrics, received, topic, Broker, Host};

fn device(name: &str) -> String {
    format!(
        "  - name: {name}\n    driver: enip-sim\n    poll_interval: 50ms\n    options: {{ seed: 3 }}\n    tags:\n      - {{ name: count, type: uint32, address: \"Count\", options: {{ signal: counter }} }}\n"
    )
}

fn config(devices: &[&str]) -> String {
    let list: String = devices.iter().map(|d| device(d)).collect();
    format!("log: {{ level: info, values: true }}\ndevices:\n{list}")
}

struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Waits for a line containing every needle; panics after `limit`.
    fn until(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needles:?} within {limit:?}"),
            }
        }
    }

    /// Waits for the end of a reload, failing on any debug line before it.
    fn no_debug_until_reloaded(&self, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.0.recv_timeout(left).expect("config reloaded");
            assert!(!line.contains("DEBUG"), "debug line {why}: {line}");
            if line.contains("config reloaded") {
                return;
            }
        }
    }
}

/// SIGTERM, and the child's clean exit.
fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(ok.success());
}

/// A uaedge child on a config with `press` alone, once press's first reading is logged.
/// `rust_log`: the child's RUST_LOG, if any.
fn start_press(rust_log: Option<&str>) -> (tempfile::TempDir, PathBuf, Child, Lines) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&["press"])).expect("write");
    let (child, rx) = common::spawn_uaedge_with(&path, rust_log);
    let lines = Lines(rx);
    lines.until(&["device=press", "tag=count"], Duration::from_secs(20));
    (dir, path, child, lines)
}

#[test]
fn bad_config_is_refused_and_good_config_takes_over() {
    let (_dir, path, child, lines) = start_press(None);

    // Two mistakes: both are logged with their place, and press keeps running.
    std::fs::write(
        &path,
        config(&["press"]).replace("poll_interval: 50ms", "poll_interval: 5")
            + "  - name: x\n    driver: modbuss\n",
    )
    .expect("write");
    hup(child.id());
    lines.until(
        &[
            "reload refused",
            "config.yaml:5:20: devices[0].poll_interval",
        ],
        Duration::from_secs(10),
    );
    lines.until(
        &["reload refused", "devices[1].driver", "unknown driver"],
        Duration::from_secs(10),
    );
    lines.until(&["device=press", "tag=count"], Duration::from_secs(10));

    // The same good file again: nothing to do.
    std::fs::write(&path, config(&["press"])).expect("write");
    hup(child.id());
    lines.until(&["config unchanged"], Duration::from_secs(10));

    // A device added: the new config takes over and both report.
    std::fs::write(&path, config(&["press", "packer"])).expect("write");
    hup(child.id());
    lines.until(&["config reloaded"], Duration::from_secs(20));
    lines.until(&["device=packer", "tag=count"], Duration::from_secs(20));
    lines.until(&["device=press", "tag=count"], Duration::from_secs(20));

    stop(child);
}

/// A counter device; `hi` is the threshold of a limits check on its count.
fn counter(name: &str, seed: u32, hi: u64) -> String {
    format!(
        "  - name: {name}\n    driver: enip-sim\n    poll_interval: 50ms\n    options: {{ seed: {seed} }}\n    tags:\n      - name: count\n        type: uint32\n        address: \"Count\"\n        options: {{ signal: counter }}\n        checks: [{{ kind: limits, name: high, hi: {hi} }}]\n"
    )
}

fn edge_config(dir: &std::path::Path, port: u16, devices: &[String]) -> Config {
    let text = format!(
        "node: {{ name: edge1 }}\nstate_dir: {}\nsparkplug:\n  broker: mqtt://127.0.0.1:{port}\n  group_id: plant\n  reconnect: {{ min: 100ms, max: 300ms }}\nopcua:\n  listen: 127.0.0.1:0\n  endpoints: [none]\n  anonymous: read\ndevices:\n{}",
        dir.display(),
        devices.concat()
    );
    Config::parse("test.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// press/count as the model reported it: (value, quality), in order, across reloads.
type Seen = Arc<Mutex<Vec<(Option<u64>, Quality)>>>;

fn watch_press(runtime: &Runtime) -> Seen {
    let handle = runtime.handle();
    let mut events = handle.subscribe(1024);
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        // Events name tags by the table in force when they were made; a reload says when.
        let mut table = handle.table();
        while let Some(event) = events.recv().await {
            match event {
                ModelEvent::Samples(_, batch) => {
                    for s in batch.iter() {
                        if table
                            .tag(s.tag)
                            .is_some_and(|t| t.path.to_string() == "press/count")
                        {
                            let v = s.value.as_ref().and_then(Value::as_f64).map(|x| x as u64);
                            sink.lock().expect("lock").push((v, s.quality));
                        }
                    }
                }
                ModelEvent::Reloaded(r) => table = r.start.table.clone(),
                _ => {}
            }
        }
    });
    seen
}

fn press_counts(seen: &Seen) -> usize {
    seen.lock().expect("lock").len()
}

async fn more_press_samples(seen: &Seen, after: usize, n: usize) {
    common::eventually(Duration::from_secs(20), "press samples", || async {
        (press_counts(seen) >= after + n).then_some(())
    })
    .await;
}

fn changes_of(scada: &mut Scada, node: &str) -> Vec<Json> {
    scada
        .changes(Duration::from_secs(5))
        .into_iter()
        .filter(|c| c["nodeid"] == node)
        .collect()
}

fn browse_paths(scada: &mut Scada) -> Vec<String> {
    scada.ok(json!({"op": "browse"}))["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["path"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_in_place_keeps_untouched_devices_sessions_and_the_mqtt_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let limit = Duration::from_secs(30);
    // press's alarm is Active from its sixth read on; `higher` clears it for good.
    let (hi, higher) = (5, 4_100_000_000);
    let mut runtime = Runtime::start(edge_config(
        dir.path(),
        broker.port,
        &[counter("press", 1, hi), counter("old", 2, hi)],
    ));
    let seen = watch_press(&runtime);
    let addr = common::eventually(limit, "the OPC UA server", || async {
        runtime.opcua().and_then(|s| s.local_addr())
    })
    .await;
    let ns = runtime
        .opcua()
        .and_then(|s| s.namespace_index())
        .expect("ns");
    let press_node = format!("ns={ns};s=press/count");
    let mut scada = Scada::start();
    scada.connect_none(&format!("opc.tcp://127.0.0.1:{}/", addr.port()));
    scada.ok(json!({"op": "subscribe", "nodes": [press_node], "sampling": 0}));
    assert!(
        !changes_of(&mut scada, &press_node).is_empty(),
        "no data changes before the reload"
    );
    let nbirth = host.wait(limit, "NBIRTH", |m| kind(m) == "NBIRTH");
    let b0 = bd_seq(&nbirth).expect("bdSeq");
    host.wait(limit, "DBIRTH old", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/old"
    });
    more_press_samples(&seen, 0, 5).await;

    // 1. `old` goes, `packer` comes, `press` is untouched.
    let before_reload = host.len();
    let seen_before = press_counts(&seen);
    let summary = runtime
        .reload(edge_config(
            dir.path(),
            broker.port,
            &[counter("press", 1, hi), counter("packer", 3, hi)],
        ))
        .await;
    assert_eq!(summary.kept, ["press"]);
    assert_eq!(summary.started, ["packer"]);
    assert_eq!(summary.stopped, ["old"]);
    assert!(summary.tag_set_changed);
    assert!(summary.restarted.is_empty(), "{summary:?}");
    more_press_samples(&seen, seen_before, 10).await;
    // The driver was not rebuilt: a fresh one would count from 0 again and start Bad.
    {
        let seen = seen.lock().expect("lock");
        assert!(
            seen.iter().all(|(_, q)| *q == Quality::Good),
            "a Bad sample: {seen:?}"
        );
        let values: Vec<u64> = seen.iter().filter_map(|(v, _)| *v).collect();
        assert!(
            values.windows(2).all(|w| w[1] > w[0]),
            "count went back: {values:?}"
        );
    }
    let table = runtime.handle().table();
    let press = table
        .devices()
        .iter()
        .find(|d| d.name == "press")
        .expect("press")
        .id;
    let state = table.device_state(press).expect("state");
    assert!(
        state.connected && state.reconnects == 0 && state.last_error.is_none(),
        "{state:?}"
    );
    assert!(table.find("old/count").is_none());
    let carried = table
        .state(table.find("press/count").expect("tag"))
        .expect("state");
    assert_eq!(carried.quality, Quality::Good);

    // The OPC UA session and its monitored item live on; the address space follows.
    let after = changes_of(&mut scada, &press_node);
    assert!(!after.is_empty(), "no data changes after the reload");
    assert!(after.iter().all(|c| c["status"] == "Good"), "{after:?}");
    let paths = browse_paths(&mut scada);
    assert!(
        paths.contains(&"uaedge/Devices/packer/count".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"uaedge/Devices/press/count".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("uaedge/Devices/old")),
        "{paths:?}"
    );
    let packer = scada.read_one(&format!("ns={ns};s=packer/count"));
    assert!(
        packer["status"] == "Good" || packer["status"] == "BadNotConnected",
        "{packer}"
    );

    // Sparkplug: the same session re-births on the new tag set.
    let rebirth = host.wait_after(before_reload, limit, "NBIRTH after the reload", |m| {
        kind(m) == "NBIRTH"
    });
    assert_eq!(bd_seq(&rebirth), Some(b0), "a new MQTT session");
    assert_eq!(rebirth["seq"], 0);
    for device in ["press", "packer"] {
        let t = format!("spBv1.0/plant/DBIRTH/edge1/{device}");
        let birth = host.wait_after(before_reload, limit, "DBIRTH", |m| topic(m) == t);
        assert!(
            metrics(&birth).iter().any(|x| x["name"] == "count"),
            "{birth}"
        );
    }
    let press_birth = host.wait_after(before_reload, limit, "DBIRTH press", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/press"
    });
    let count = metrics(&press_birth)
        .into_iter()
        .find(|x| x["name"] == "count")
        .expect("count");
    assert!(
        count["value"].as_u64().is_some(),
        "press born blank: {count}"
    );
    host.wait_after(before_reload, limit, "DDEATH old", |m| {
        topic(m) == "spBv1.0/plant/DDEATH/edge1/old"
    });
    assert_eq!(
        host.count(|m| kind(m) == "NDEATH"),
        0,
        "NDEATH during a reload"
    );

    // 2. Only a check threshold changes: nothing restarts, nothing re-births, and the
    // alarm the old threshold held Active clears.
    let alarm_node = format!("ns={ns};s=press/count/Alarms/high");
    common::wait_for(limit, "press's alarm Active", || {
        (scada.read_one(&alarm_node)["value"] == true).then_some(())
    });
    scada.ok(json!({"op": "subscribe", "nodes": [alarm_node], "sampling": 0}));
    let nbirths = host.count(|m| kind(m) == "NBIRTH");
    let seen_before = press_counts(&seen);
    let summary = runtime
        .reload(edge_config(
            dir.path(),
            broker.port,
            &[counter("press", 1, higher), counter("packer", 3, hi)],
        ))
        .await;
    assert_eq!(summary.kept, ["press", "packer"]);
    assert!(
        summary.started.is_empty() && summary.stopped.is_empty(),
        "{summary:?}"
    );
    assert!(!summary.tag_set_changed);
    more_press_samples(&seen, seen_before, 10).await;
    let marker = host.len();
    host.wait_after(
        marker,
        limit,
        "DDATA press after the threshold change",
        |m| topic(m) == "spBv1.0/plant/DDATA/edge1/press",
    );
    assert_eq!(
        host.count(|m| kind(m) == "NBIRTH"),
        nbirths,
        "re-birth on a threshold change"
    );
    let alarm = scada.read_one(&alarm_node);
    assert_eq!(
        (&alarm["value"], &alarm["status"]),
        (&json!(false), &json!("Good"))
    );
    let alarms = runtime.handle().alarm_counts();
    // packer's alone: its threshold stayed.
    assert_eq!((alarms.checks, alarms.active), (2, 1), "{alarms:?}");
    let packer_alarm = scada.read_one(&format!("ns={ns};s=packer/count/Alarms/high"));
    assert_eq!(packer_alarm["value"], true, "{packer_alarm}");
    // Subscribers are told, not only readers: the clear is pushed as a change.
    let changes = scada.changes(Duration::from_secs(5));
    assert!(changes.iter().any(|c| c["nodeid"] == press_node));
    assert!(
        changes
            .iter()
            .any(|c| c["nodeid"] == alarm_node && c["value"] == false),
        "no cleared alarm pushed: {changes:?}"
    );
    let table = runtime.handle().table();
    for name in ["press", "packer"] {
        let id = table
            .devices()
            .iter()
            .find(|d| d.name == name)
            .expect("device")
            .id;
        let state = table.device_state(id).expect("state");
        assert_eq!(state.reconnects, 0, "{name}: {state:?}");
    }
    {
        let seen = seen.lock().expect("lock");
        assert!(
            seen.iter().all(|(_, q)| *q == Quality::Good),
            "a Bad sample: {seen:?}"
        );
    }

    runtime.shutdown().await.expect("clean shutdown");
    assert_eq!(
        host.count(|m| kind(m) == "NDEATH"),
        1,
        "one NDEATH, at the end"
    );
}

#[test]
fn log_level_follows_the_config_on_reload() {
    let (_dir, path, child, lines) = start_press(None);

    std::fs::write(
        &path,
        config(&["press"]).replace("level: info", "level: debug"),
    )
    .expect("write");
    hup(child.id());
    // The plan of the reload is a debug line: the new level is in force before it.
    lines.until(&["DEBUG", "reload plan applied"], Duration::from_secs(20));
    lines.until(&["config reloaded"], Duration::from_secs(20));

    // Back to info: from the reload on, no debug line, up to the next reload's end.
    std::fs::write(
        &path,
        config(&["press"]).replace("values: true", "values: false"),
    )
    .expect("write");
    hup(child.id());
    lines.until(&["log level applied", "info"], Duration::from_secs(20));
    let done = lines.until(&["config reloaded"], Duration::from_secs(20));
    assert!(!done.contains("DEBUG"));
    std::fs::write(
        &path,
        config(&["press"]).replace("values: true", "values: false") + "\n",
    )
    .expect("write");
    hup(child.id());
    lines.no_debug_until_reloaded("at level info");
    stop(child);
}

#[test]
fn rust_log_wins_over_the_config_on_reload() {
    let (_dir, path, child, lines) = start_press(Some("info"));
    std::fs::write(
        &path,
        config(&["press"]).replace("level: info", "level: debug"),
    )
    .expect("write");
    hup(child.id());
    lines.until(&["RUST_LOG is set"], Duration::from_secs(20));
    lines.no_debug_until_reloaded("under RUST_LOG=info");
    stop(child);
}

/// A device of constant values, so that what a birth announced is still what a later Read
/// returns. `checks` go on `level` (42.5).
fn steady(name: &str, checks: &str) -> String {
    format!(
        "  - name: {name}\n    driver: enip-sim\n    poll_interval: 50ms\n    tags:\n      - {{ name: level, type: float64, address: Level, units: m, options: {{ signal: constant, value: 42.5 }}{checks} }}\n      - {{ name: temp, type: int16, address: Temp, scale: {{ gain: 0.1 }}, options: {{ signal: constant, value: 217 }} }}\n      - {{ name: state/text, type: string, address: Text, options: {{ signal: constant, value: run }} }}\n"
    )
}

/// `device`'s DBIRTH metrics as (name, value, quality code); a null metric's value is null.
fn birth_values(birth: &Json) -> Vec<(String, Json, i64)> {
    metrics(birth)
        .iter()
        .map(|m| {
            let value = if m["is_null"] == true {
                Json::Null
            } else {
                m["value"].clone()
            };
            let quality = m["properties"]["Quality"].as_i64().unwrap_or(-1);
            (m["name"].as_str().unwrap_or("").to_string(), value, quality)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reload_that_adds_alarms_every_dbirth_says_what_an_opcua_read_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let limit = Duration::from_secs(30);
    let mut runtime = Runtime::start(edge_config(dir.path(), broker.port, &[steady("press", "")]));
    let addr = common::eventually(limit, "the OPC UA server", || async {
        runtime.opcua().and_then(|s| s.local_addr())
    })
    .await;
    host.wait(limit, "DBIRTH press", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/press"
    });

    // press (kept: checks do not touch its link) gains an alarm that stays normal; mixer
    // comes with one that is Active from its first read and one that never fires.
    let before = host.len();
    let summary = runtime
        .reload(edge_config(
            dir.path(),
            broker.port,
            &[
                steady("press", ", checks: [{ kind: limits, name: high, hi: 100 }]"),
                steady(
                    "mixer",
                    ", checks: [{ kind: limits, name: high, hi: 40 }, { kind: limits, name: low, lo: 10 }]",
                ),
            ],
        ))
        .await;
    assert_eq!(summary.kept, ["press"]);
    assert_eq!(summary.started, ["mixer"]);
    assert!(summary.tag_set_changed);
    let ns = runtime
        .opcua()
        .and_then(|s| s.namespace_index())
        .expect("ns");
    let mut scada = Scada::start();
    scada.connect_none(&format!("opc.tcp://127.0.0.1:{}/", addr.port()));
    for device in ["press", "mixer"] {
        let t = format!("spBv1.0/plant/DBIRTH/edge1/{device}");
        let birth = host.wait_after(before, limit, "DBIRTH after the reload", |m| topic(m) == t);
        let born = birth_values(&birth);
        let names: Vec<&str> = born.iter().map(|(n, _, _)| n.as_str()).collect();
        // Each alarm with its Acked state.
        let alarms: &[&str] = if device == "press" {
            &["level/Alarms/high", "level/Alarms/high/Acked"]
        } else {
            &[
                "level/Alarms/high",
                "level/Alarms/high/Acked",
                "level/Alarms/low",
                "level/Alarms/low/Acked",
            ]
        };
        for tag in ["level", "temp", "state/text"].iter().chain(alarms) {
            assert!(names.contains(tag), "{device}/{tag} not born: {birth}");
        }
        assert_eq!(names.len(), 3 + alarms.len(), "{birth}");
        let nodes: Vec<String> = names
            .iter()
            .map(|n| format!("ns={ns};s={device}/{n}"))
            .collect();
        let read = scada.read(&nodes);
        for ((name, value, quality), dv) in born.iter().zip(&read) {
            let good = dv["status"] == "Good";
            assert_eq!(
                (value, *quality == 192),
                (&dv["value"], good),
                "{device}/{name}: DBIRTH {value} (quality {quality}) but OPC UA reads {dv}"
            );
        }
        let value_of = |n: &str| born.iter().find(|b| b.0 == n).map(|b| b.1.clone());
        // The decimal a plant engineer expects, on both sides.
        assert_eq!(value_of("temp"), Some(json!(21.7)));
        assert_eq!(
            value_of("level/Alarms/high"),
            Some(json!(device == "mixer"))
        );
    }
    runtime.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_sparkplug_section_restarts_the_node_and_loses_no_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let limit = Duration::from_secs(30);
    let devices = [counter("press", 1, 4_100_000_000)];
    let mut runtime = Runtime::start(edge_config(dir.path(), broker.port, &devices));
    let nbirth = host.wait(limit, "NBIRTH", |m| kind(m) == "NBIRTH");
    let b0 = bd_seq(&nbirth).expect("bdSeq");
    let press = "spBv1.0/plant/DDATA/edge1/press";
    host.wait(limit, "DDATA press", |m| topic(m) == press);

    // Another reconnect backoff: the node restarts on the same journal, with the press
    // counting on all along.
    let mut next = edge_config(dir.path(), broker.port, &devices);
    if let Some(s) = next.sparkplug.as_mut() {
        s.reconnect.max = uaedge_driver::Duration::from_millis(400);
    }
    let before = host.len();
    let summary = runtime.reload(next).await;
    assert_eq!(summary.restarted, ["sparkplug"], "{summary:?}");
    assert_eq!(summary.kept, ["press"]);
    let rebirth = host.wait_after(before, limit, "NBIRTH of the new node", |m| {
        kind(m) == "NBIRTH"
    });
    assert_ne!(bd_seq(&rebirth), Some(b0), "the same MQTT session");
    let marker = host.len();
    host.wait_after(marker, limit, "DDATA after the restart", |m| {
        topic(m) == press
    });
    let status = runtime.handle().sparkplug_status().expect("status");
    common::eventually(limit, "the backlog sent", || async {
        (status.snapshot().backlog_records == 0).then_some(())
    })
    .await;

    // Every count from the first to the last reached the host: nothing fell between the
    // node that stopped and the one that took over (some may come twice).
    let mut values: Vec<u64> = received(&host, "plant", "edge1", "press", "count")
        .iter()
        .map(|r| r.value)
        .collect();
    values.sort_unstable();
    values.dedup();
    let (first, last) = (values[0], values[values.len() - 1]);
    let missing: Vec<u64> = (first..=last)
        .filter(|v| values.binary_search(v).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "counts {first}..={last}, missing {missing:?}"
    );
    runtime.shutdown().await.expect("shutdown");
}
