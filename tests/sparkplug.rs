//! The Sparkplug B edge node against a real broker (mosquitto) and an independent host
//! (paho-mqtt + protobuf bindings compiled from Eclipse Tahu's sparkplug_b.proto), with
//! simulated PROFINET devices as the data source: a `counter` signal whose value sequence
//! reveals any gap or reordering.

mod common;
mod sparkplug_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sparkplug_support::{bd_seq, kind, metrics, received, topic, wait_for, Broker, Host, Uaedge};
use uaedge::config::Config;
use uaedge::runtime::Runtime;

const T: Duration = Duration::from_secs(20);

/// A node `edge1` in group `plant`: `press` (a counter every 10 ms, a sine with units, a
/// writable setpoint) and `mixer` (offline for 1 s every 6 s, from 3 s on).
fn config(state_dir: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"
node: {{ name: edge1 }}
state_dir: "{dir}"
sparkplug:
  broker: mqtt://127.0.0.1:{port}
  group_id: plant
  keep_alive: 5s
  reconnect: {{ min: 100ms, max: 300ms }}
  diagnostics_period: 1s
{extra}
devices:
  - name: press
    driver: profinet-sim
    poll_interval: 10ms
    options: {{ station: press-1, sample_period: 10ms }}
    tags:
      - {{ name: count, type: uint32, address: "in:1.1:0", options: {{ signal: counter }} }}
      - {{ name: hydraulics/level, type: float32, address: "in:1.1:4", units: m, options: {{ signal: sine, amplitude: 1, period: 2s }} }}
      - {{ name: setpoint, type: float32, address: "out:1.1:0", writable: true }}
  - name: mixer
    driver: profinet-sim
    poll_interval: 50ms
    reconnect: {{ min: 50ms, max: 100ms }}
    options: {{ station: mixer-1, faults: [{{ kind: offline, at: 3s, duration: 1s, every: 6s }}] }}
    tags:
      - {{ name: speed, type: int16, address: "in:1.1:0", options: {{ signal: counter, period: 100ms }} }}
"#,
        dir = state_dir.display()
    )
}

fn of_node(m: &Json) -> bool {
    topic(m).starts_with("spBv1.0/plant/")
}

/// alias → (device, name) from every birth seen so far (the latest birth wins).
fn aliases(host: &Host) -> HashMap<u64, (String, String)> {
    let mut out = HashMap::new();
    for m in host.sparkplug() {
        if kind(&m) == "DBIRTH" || kind(&m) == "NBIRTH" {
            let device = topic(&m).split('/').nth(4).unwrap_or("").to_string();
            for x in metrics(&m) {
                if let (Some(a), Some(n)) = (x["alias"].as_u64(), x["name"].as_str()) {
                    out.insert(a, (device.clone(), n.to_string()));
                }
            }
        }
    }
    out
}

fn alias_of(host: &Host, device: &str, name: &str) -> u64 {
    aliases(host)
        .into_iter()
        .find(|(_, (d, n))| d == device && n == name)
        .map(|(a, _)| a)
        .unwrap_or_else(|| panic!("no alias for {device}/{name}"))
}

/// Every message of the node after the first NBIRTH: seq is consecutive mod 256, except
/// that an NBIRTH starts again at 0; NDEATH carries none.
fn assert_seq_continuity(msgs: &[Json]) -> usize {
    let mut prev: Option<u64> = None;
    let mut wraps = 0;
    let sent_by_node = ["NBIRTH", "DBIRTH", "NDATA", "DDATA", "DDEATH"];
    for m in msgs
        .iter()
        .filter(|m| of_node(m) && sent_by_node.contains(&kind(m)))
    {
        let seq = m["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {m}"));
        assert!(seq < 256, "{m}");
        if kind(m) == "NBIRTH" {
            assert_eq!(seq, 0, "NBIRTH seq");
        } else if let Some(p) = prev {
            assert_eq!(seq, (p + 1) % 256, "seq after {p}: {m}");
            if seq == 0 {
                wraps += 1;
            }
        }
        prev = Some(seq);
    }
    wraps
}

#[test]
fn births_data_seq_commands_and_device_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let mut host = Host::start(broker.port);
    let rt = common::tokio_rt();
    let runtime = {
        let _enter = rt.enter();
        Runtime::start(
            Config::parse("test.yaml", &config(dir.path(), broker.port, "")).expect("config"),
        )
    };

    // NBIRTH first: seq 0, bdSeq, Rebirth false, diagnostics; QoS 0, not retained.
    let nbirth = host.wait(T, "NBIRTH", |m| kind(m) == "NBIRTH");
    let first = host.sparkplug().into_iter().find(of_node).expect("first");
    assert_eq!(kind(&first), "NBIRTH", "the first message is NBIRTH");
    assert_eq!(topic(&nbirth), "spBv1.0/plant/NBIRTH/edge1");
    assert_eq!(nbirth["seq"], 0);
    assert_eq!(nbirth["qos"], 0);
    assert_eq!(nbirth["retain"], false);
    let b0 = bd_seq(&nbirth).expect("bdSeq in NBIRTH");
    let nm = metrics(&nbirth);
    let rebirth = nm
        .iter()
        .find(|x| x["name"] == "Node Control/Rebirth")
        .expect("Rebirth metric");
    assert_eq!(
        (rebirth["datatype"].as_u64(), &rebirth["value"]),
        (Some(11), &json!(false))
    );
    assert!(nm
        .iter()
        .any(|x| x["name"] == "Node Info/Store Backlog Records"));
    assert!(nm.iter().any(|x| x["name"] == "Node Info/Devices Online"));

    // DBIRTH per device, before any of its DDATA, with every tag.
    for device in ["press", "mixer"] {
        let birth_topic = format!("spBv1.0/plant/DBIRTH/edge1/{device}");
        let data_topic = format!("spBv1.0/plant/DDATA/edge1/{device}");
        host.wait(T, "DBIRTH", |m| topic(m) == birth_topic);
        let all = host.sparkplug();
        let birth_at = all.iter().position(|m| topic(m) == birth_topic);
        let data_at = all.iter().position(|m| topic(m) == data_topic);
        if let (Some(b), Some(d)) = (birth_at, data_at) {
            assert!(b < d, "{device}: DBIRTH after DDATA");
        }
    }
    let press = host.wait(T, "DBIRTH press", |m| {
        kind(m) == "DBIRTH" && topic(m).ends_with("/press")
    });
    let pm = metrics(&press);
    let by_name = |n: &str| {
        pm.iter()
            .find(|x| x["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in DBIRTH"))
    };
    assert_eq!(by_name("count")["datatype"], 7, "UInt32");
    assert_eq!(by_name("hydraulics/level")["datatype"], 9, "Float");
    assert_eq!(by_name("setpoint")["datatype"], 9);
    assert_eq!(by_name("hydraulics/level")["properties"]["engUnit"], "m");
    for x in &pm {
        assert!(x["alias"].is_u64(), "alias: {x}");
        let q = x["properties"]["Quality"]
            .as_u64()
            .expect("Quality property");
        assert!([0, 64, 192].contains(&q), "{x}");
        assert!(x["value"] != Json::Null || x["is_null"] == true, "{x}");
    }

    // Aliases are unique over the node.
    let mut seen = HashSet::new();
    for m in host
        .sparkplug()
        .iter()
        .filter(|m| kind(m) == "NBIRTH" || kind(m) == "DBIRTH")
    {
        for x in metrics(m).iter().filter_map(|x| x["alias"].as_u64()) {
            assert!(seen.insert(x), "alias {x} used twice");
        }
    }

    // DDATA by alias only, QoS 1; enough messages for seq to wrap.
    wait_for(T, "300 messages", || {
        (host.count(of_node) > 300).then_some(())
    });
    let count_alias = alias_of(&host, "press", "count");
    let ddata: Vec<Json> = host
        .sparkplug()
        .into_iter()
        .filter(|m| topic(m) == "spBv1.0/plant/DDATA/edge1/press")
        .collect();
    assert!(ddata.iter().all(|m| m["qos"] == 1 && m["retain"] == false));
    // Live values count on one by one; what came before the birth arrives as history, so
    // together they leave no gap.
    let (mut live, mut all) = (Vec::new(), Vec::new());
    for m in &ddata {
        for x in metrics(m) {
            assert!(x["name"].is_null(), "DDATA carries names: {x}");
            assert!(x["alias"].is_u64());
            if x["alias"] == count_alias {
                let v = x["value"].as_u64().expect("count value");
                all.push(v);
                if x["is_historical"] != true {
                    live.push(v);
                }
            }
        }
    }
    assert!(live.len() > 100);
    assert!(
        live.windows(2).all(|w| w[1] == w[0] + 1),
        "live counter has gaps or repeats: {live:?}"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.first(), Some(&0), "{all:?}");
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "gap: {all:?}");
    assert!(assert_seq_continuity(&host.sparkplug()) >= 1, "seq wrapped");

    // DCMD by name and by alias reaches the device; the new value comes back as DDATA.
    let setpoint = alias_of(&host, "press", "setpoint");
    let dcmd = "spBv1.0/plant/DCMD/edge1/press";
    let value_seen = |host: &Host, v: f64| {
        let skip = 0;
        host.wait_after(skip, T, "written value in DDATA", |m| {
            topic(m) == "spBv1.0/plant/DDATA/edge1/press"
                && metrics(m)
                    .iter()
                    .any(|x| x["alias"] == setpoint && x["value"].as_f64() == Some(v))
        });
    };
    host.send(
        json!({"publish": dcmd, "metrics": [{"name": "setpoint", "datatype": 9, "value": 42.5}]}),
    );
    value_seen(&host, 42.5);
    host.send(
        json!({"publish": dcmd, "metrics": [{"alias": setpoint, "datatype": 9, "value": 7.25}]}),
    );
    value_seen(&host, 7.25);

    // Malformed commands are dropped; the node keeps going.
    let ncmd = "spBv1.0/plant/NCMD/edge1";
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for len in [1usize, 7, 64, 300] {
        let bytes: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:02x}", x as u8)
            })
            .collect();
        host.send(json!({"publish": ncmd, "hex": bytes}));
        host.send(json!({"publish": dcmd, "hex": bytes}));
    }
    for bad in [
        json!([{"name": "setpoint", "datatype": 12, "value": "fast"}]),
        json!([{"name": "setpoint", "datatype": 11, "value": true}]),
        json!([{"alias": 999_999, "datatype": 9, "value": 1.0}]),
        json!([{"name": "count", "datatype": 7, "value": 5}]),
        json!([{"name": "no/such/tag", "datatype": 9, "value": 1.0}]),
    ] {
        host.send(json!({"publish": dcmd, "metrics": bad}));
    }
    host.send(json!({"publish": "spBv1.0/plant/DCMD/edge1/nosuch", "metrics": [{"name": "x", "datatype": 9, "value": 1.0}]}));
    host.send(json!({"publish": ncmd, "metrics": [{"name": "Node Control/Rebirth", "datatype": 3, "value": 1}]}));
    host.send(json!({"publish": ncmd, "metrics": [{"name": "Node Control/Reboot", "datatype": 11, "value": true}]}));
    host.send(
        json!({"publish": dcmd, "metrics": [{"name": "setpoint", "datatype": 9, "value": 1.5}]}),
    );
    value_seen(&host, 1.5);
    // The read-only counter was not written: it still counts on from where it was.

    // Rebirth: a new NBIRTH with the same bdSeq and seq 0, then every DBIRTH again.
    let before = host.len();
    host.send(json!({"publish": ncmd, "metrics": [{"name": "Node Control/Rebirth", "datatype": 11, "value": true}]}));
    let reborn = host.wait_after(before, T, "NBIRTH after Rebirth", |m| kind(m) == "NBIRTH");
    assert_eq!(bd_seq(&reborn), Some(b0));
    assert_eq!(reborn["seq"], 0);
    host.wait_after(before, T, "DBIRTH after Rebirth", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/press"
    });

    // mixer drops at 3 s (and every 6 s): DDEATH, then DBIRTH with current, Good values.
    let death = host.wait(T, "DDEATH mixer", |m| {
        topic(m) == "spBv1.0/plant/DDEATH/edge1/mixer"
    });
    assert!(death["seq"].is_u64());
    let all = host.sparkplug();
    let death_at = all
        .iter()
        .position(|m| topic(m) == "spBv1.0/plant/DDEATH/edge1/mixer")
        .expect("death index");
    let back = host.wait_after(death_at, T, "DBIRTH mixer after DDEATH", |m| {
        topic(m) == "spBv1.0/plant/DBIRTH/edge1/mixer"
    });
    let speed = metrics(&back)
        .into_iter()
        .find(|x| x["name"] == "speed")
        .expect("speed");
    assert_eq!(speed["properties"]["Quality"], 192, "{speed}");
    assert!(speed["value"].is_i64(), "{speed}");
    // No DDATA of mixer between its DDEATH and its DBIRTH.
    let after: Vec<Json> = host.sparkplug().into_iter().skip(death_at + 1).collect();
    let rebirth_at = after
        .iter()
        .position(|m| topic(m) == "spBv1.0/plant/DBIRTH/edge1/mixer")
        .expect("rebirth");
    assert!(!after[..rebirth_at]
        .iter()
        .any(|m| topic(m) == "spBv1.0/plant/DDATA/edge1/mixer"));

    // Clean shutdown: the node publishes NDEATH itself with this session's bdSeq.
    let status = runtime.handle().sparkplug_status().expect("status");
    let snap = status.snapshot();
    assert!(
        snap.mqtt_connected && snap.born && snap.samples_published > 100,
        "{snap:?}"
    );
    rt.block_on(runtime.shutdown()).expect("clean shutdown");
    let ndeath = host.wait(T, "NDEATH", |m| kind(m) == "NDEATH");
    assert_eq!(bd_seq(&ndeath), Some(b0));
    assert_eq!(ndeath["qos"], 1);
    assert!(ndeath["seq"].is_null(), "NDEATH has no seq");
    assert_seq_continuity(&host.sparkplug());
    drop(broker);
}

#[test]
fn will_is_ndeath_and_bdseq_increments_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let cfg = dir.path().join("uaedge.yaml");
    std::fs::write(&cfg, config(dir.path(), broker.port, "")).expect("config");

    let mut node = Uaedge::start(&cfg);
    let first = host.wait(T, "NBIRTH", |m| kind(m) == "NBIRTH");
    let b0 = bd_seq(&first).expect("bdSeq");
    host.wait(T, "DDATA", |m| kind(m) == "DDATA");
    node.kill9();
    // The broker publishes the Will: NDEATH with the bdSeq of that session.
    let will = host.wait(T, "NDEATH (Will)", |m| kind(m) == "NDEATH");
    assert_eq!(topic(&will), "spBv1.0/plant/NDEATH/edge1");
    assert_eq!(bd_seq(&will), Some(b0));

    let before = host.len();
    let mut node = Uaedge::start(&cfg);
    let second = host.wait_after(before, T, "NBIRTH after restart", |m| kind(m) == "NBIRTH");
    assert_eq!(bd_seq(&second), Some((b0 + 1) % 256));
    // SIGTERM: an explicit NDEATH with the new bdSeq, and a clean exit.
    let before = host.len();
    assert!(node.terminate().success());
    let death = host.wait_after(before, T, "NDEATH on SIGTERM", |m| kind(m) == "NDEATH");
    assert_eq!(bd_seq(&death), Some((b0 + 1) % 256));
}

/// (value, source time ms, historical) of every `press/count` DDATA sample received, in order.
fn counts(host: &Host) -> Vec<(u64, i64, bool)> {
    received(host, "plant", "edge1", "press", "count")
        .into_iter()
        .filter(|r| !r.birth)
        .map(|r| (r.value, r.ts, r.historical))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The samples of one run of the counter (10 ms steps from 0): each value at its own time,
/// and none missing from 0 to `through`.
fn check_run(run: &[(u64, i64, bool)], through: u64, what: &str) {
    let zero = run
        .iter()
        .find(|s| s.0 == 0)
        .unwrap_or_else(|| panic!("{what}: value 0 never arrived"))
        .1;
    for (v, ts, _) in run {
        assert_eq!(
            ts - zero,
            *v as i64 * 10,
            "{what}: value {v} at the wrong time"
        );
    }
    let have: HashSet<u64> = run.iter().map(|s| s.0).collect();
    let missing: Vec<u64> = (0..=through).filter(|v| !have.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} samples lost: {missing:?}",
        missing.len()
    );
}

/// Where the restarted run's counter starts.
const RUN2: u64 = 1_000_000;

#[test]
fn outage_with_kill_9_loses_nothing_beyond_two_commit_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let cfg = dir.path().join("uaedge.yaml");
    let store = "  store: { commit_window: 100ms, drain_rate: 20000 }";
    std::fs::write(&cfg, config(dir.path(), broker.port, store)).expect("config");

    let mut node = Uaedge::start(&cfg);
    wait_for(T, "live data", || (counts(&host).len() > 50).then_some(()));
    // Under load (a sample every 10 ms, plus the sine and the mixer), the broker goes away…
    let broker_down = now_ms();
    broker.stop();
    std::thread::sleep(Duration::from_millis(1500));
    // …uaedge is killed in the middle of the outage, and started again…
    let killed = now_ms();
    node.kill9();
    // Run 2 counts from RUN2 on, so each sample names its run by value, not by a timestamp
    // that sits close to the kill.
    let restart = config(dir.path(), broker.port, store).replacen(
        "options: { signal: counter } }",
        &format!("options: {{ signal: counter, start: {RUN2} }} }}"),
        1,
    );
    assert_ne!(
        restart,
        config(dir.path(), broker.port, store),
        "counter line changed"
    );
    std::fs::write(&cfg, restart).expect("config");
    let mut node = Uaedge::start(&cfg);
    std::thread::sleep(Duration::from_millis(1500));
    // …and the broker comes back.
    let broker_up = now_ms();
    broker.restart();

    // Everything of run 1 up to two commit windows (the one being gathered and the one in
    // flight) plus scheduling slack before the kill, and everything of run 2, arrives.
    let cutoff = killed - 400;
    let split = |all: &[(u64, i64, bool)]| {
        let run1: Vec<_> = all.iter().copied().filter(|s| s.0 < RUN2).collect();
        let run2: Vec<_> = all
            .iter()
            .filter(|s| s.0 >= RUN2)
            .map(|&(v, ts, hist)| (v - RUN2, ts, hist))
            .collect();
        (run1, run2)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let describe = |all: &[(u64, i64, bool)]| {
        let (run1, run2) = split(all);
        let gaps = |r: &[(u64, i64, bool)]| {
            let have: HashSet<u64> = r.iter().map(|s| s.0).collect();
            let max = r.iter().map(|s| s.0).max().unwrap_or(0);
            let missing: Vec<u64> = (0..=max).filter(|v| !have.contains(v)).collect();
            format!(
                "{} samples, max {max}, {} historical, missing {:?}",
                r.len(),
                r.iter().filter(|s| s.2).count(),
                &missing[..missing.len().min(40)]
            )
        };
        format!("run 1: {}; run 2: {}", gaps(&run1), gaps(&run2))
    };
    let (run1, run2) = wait_for(Duration::from_secs(60), "backlog drained", || {
        if std::time::Instant::now() + Duration::from_millis(100) > deadline {
            panic!("not drained: {}", describe(&counts(&host)));
        }
        let all = counts(&host);
        let (run1, run2) = split(&all);
        let live2 = run2.iter().filter(|s| !s.2 && s.1 > broker_up).count();
        let have1: HashSet<u64> = run1.iter().map(|s| s.0).collect();
        let have2: HashSet<u64> = run2.iter().map(|s| s.0).collect();
        let through1 = run1.iter().filter(|s| s.1 <= cutoff).map(|s| s.0).max()?;
        let through2 = run2.iter().filter(|s| !s.2).map(|s| s.0).min()?;
        let done = live2 > 20
            && (0..=through1).all(|v| have1.contains(&v))
            && (0..through2).all(|v| have2.contains(&v));
        done.then_some((run1, run2))
    });
    let zero1 = run1.iter().find(|s| s.0 == 0).expect("run 1 start").1;
    let through1 = ((cutoff - zero1) / 10) as u64;
    check_run(&run1, through1, "run 1 (killed)");
    let first_live2 = run2
        .iter()
        .filter(|s| !s.2)
        .map(|s| s.0)
        .min()
        .expect("live");
    check_run(&run2, first_live2, "run 2");
    // What was produced while the broker was away arrived flagged historical, oldest
    // first, and with its own timestamps.
    for (v, ts, hist) in run1.iter().chain(&run2) {
        if *ts > broker_down + 50 && *ts < broker_up {
            assert!(
                hist,
                "sample {v} at {ts} (during the outage) not historical"
            );
        }
    }
    let historical: Vec<i64> = counts(&host)
        .into_iter()
        .filter(|s| s.2)
        .map(|s| s.1)
        .collect();
    assert!(historical.len() > 200, "{}", historical.len());
    assert!(
        historical.windows(2).all(|w| w[0] <= w[1]),
        "historical samples out of order"
    );
    // The second run's node was born with a fresh bdSeq.
    let births: Vec<i64> = host
        .sparkplug()
        .iter()
        .filter(|m| kind(m) == "NBIRTH")
        .filter_map(bd_seq)
        .collect();
    assert!(
        births.len() >= 2 && births.windows(2).all(|w| w[1] != w[0]),
        "{births:?}"
    );
    assert!(node.terminate().success());
}

#[test]
fn primary_host_state_gates_births_and_its_outage_is_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let mut host = Host::start(broker.port);
    let rt = common::tokio_rt();
    let extra = "  primary_host_id: scada\n  store: { drain_rate: 20000 }";
    let runtime = {
        let _enter = rt.enter();
        Runtime::start(
            Config::parse("test.yaml", &config(dir.path(), broker.port, extra)).expect("config"),
        )
    };
    let status = runtime.handle().sparkplug_status().expect("status");
    // Connected and subscribed, but no birth while the host has not said it is online.
    wait_for(T, "MQTT connected", || {
        let s = status.snapshot();
        (s.mqtt_connected && !s.primary_host_online).then_some(())
    });
    wait_for(T, "samples journaled", || {
        (status.snapshot().backlog_records > 10).then_some(())
    });
    assert_eq!(host.count(|m| kind(m) == "NBIRTH"), 0);

    let state = "spBv1.0/STATE/scada";
    host.send(
        json!({"publish": state, "json": {"online": true, "timestamp": 1000}, "retain": true}),
    );
    let nbirth = host.wait(T, "NBIRTH once the host is online", |m| kind(m) == "NBIRTH");
    let b0 = bd_seq(&nbirth).expect("bdSeq");
    // An older STATE is ignored: the node stays born (a DCMD round trip proves it went on).
    host.send(
        json!({"publish": state, "json": {"online": false, "timestamp": 500}, "retain": true}),
    );
    let setpoint = alias_of(&host, "press", "setpoint");
    host.send(json!({"publish": "spBv1.0/plant/DCMD/edge1/press", "metrics": [{"name": "setpoint", "datatype": 9, "value": 3.0}]}));
    host.wait(T, "DDATA of the write", |m| {
        metrics(m)
            .iter()
            .any(|x| x["alias"] == setpoint && x["value"].as_f64() == Some(3.0))
    });
    assert_eq!(host.count(|m| kind(m) == "NDEATH"), 0, "old STATE acted on");
    // Malformed STATE is dropped too.
    host.send(json!({"publish": state, "hex": "7b6e6f74206a736f6e"}));

    // The host goes offline: NDEATH, and data goes to the journal.
    host.send(
        json!({"publish": state, "json": {"online": false, "timestamp": 2000}, "retain": true}),
    );
    let death = host.wait(T, "NDEATH when the host goes offline", |m| {
        kind(m) == "NDEATH"
    });
    assert_eq!(bd_seq(&death), Some(b0));
    let offline_at = now_ms();
    wait_for(T, "offline samples journaled", || {
        let s = status.snapshot();
        (!s.born && s.mqtt_connected && s.backlog_records > 50).then_some(())
    });
    let before = host.len();
    host.send(
        json!({"publish": state, "json": {"online": true, "timestamp": 3000}, "retain": true}),
    );
    let reborn = host.wait_after(before, T, "NBIRTH when the host is back", |m| {
        kind(m) == "NBIRTH"
    });
    assert_eq!(bd_seq(&reborn), Some((b0 + 1) % 256));
    // The samples of the host outage drain as history: no gap in the counter.
    let all = wait_for(T, "outage drained", || {
        let c = counts(&host);
        let last_live = c.iter().filter(|s| !s.2).map(|s| s.0).max()?;
        let have: HashSet<u64> = c.iter().map(|s| s.0).collect();
        let outage_hist = c.iter().filter(|s| s.2 && s.1 > offline_at).count();
        (outage_hist > 20 && (0..=last_live).all(|v| have.contains(&v))).then_some(c)
    });
    check_run(&all, 0, "state test");
    rt.block_on(runtime.shutdown()).expect("clean shutdown");
}

#[test]
fn publish_period_gathers_reads_into_fewer_messages_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let host = Host::start(broker.port);
    let rt = common::tokio_rt();
    let runtime = {
        let _enter = rt.enter();
        Runtime::start(
            Config::parse(
                "test.yaml",
                &config(dir.path(), broker.port, "  publish_period: 500ms"),
            )
            .expect("config"),
        )
    };
    let data = |host: &Host| {
        host.sparkplug()
            .into_iter()
            .filter(|m| topic(m) == "spBv1.0/plant/DDATA/edge1/press")
            .collect::<Vec<_>>()
    };
    wait_for(T, "four gathered DDATA", || {
        (data(&host).len() >= 4).then_some(())
    });
    let alias = alias_of(&host, "press", "count");
    // Past the first (which may be short), each message carries ~50 reads of the counter.
    let per_message: Vec<usize> = data(&host)
        .iter()
        .map(|m| metrics(m).iter().filter(|x| x["alias"] == alias).count())
        .collect();
    assert!(per_message[1..].iter().all(|n| *n >= 25), "{per_message:?}");
    let all = counts(&host);
    let max = all.iter().map(|s| s.0).max().expect("values");
    check_run(&all, max, "gathered");
    rt.block_on(runtime.shutdown()).expect("clean shutdown");
}
