//! The Sparkplug edge node across several MQTT servers (issue 19): two real mosquittos on
//! free ports, the independent Sparkplug peer (paho-mqtt with Eclipse Tahu's protobuf) on
//! each as the primary host `scada`, and the `uaedge` binary with a counter that steps
//! every 10 ms, so any sample lost or repeated on the way shows by its value.

mod common;
mod opcua_support;
mod sparkplug_support;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sparkplug_support::{
    bd_seq, free_port, kind, metrics, received, wait_for, Broker, Host, Received, Uaedge,
};

const T: Duration = Duration::from_secs(30);
const STATE: &str = "spBv1.0/STATE/scada";

/// Node `edge1` of group `plant` on `brokers` (in order: a URL, or a whole `{ url, … }`
/// entry), its `/metrics` on `web_port`; `press/count` steps every 10 ms.
fn config(state_dir: &Path, brokers: &[String], web_port: u16, extra: &str) -> String {
    config_with(state_dir, brokers, web_port, extra, "")
}

/// [`config`] with top-level sections of its own (`top`, YAML at column 0).
fn config_with(
    state_dir: &Path,
    brokers: &[String],
    web_port: u16,
    extra: &str,
    top: &str,
) -> String {
    let list: String = brokers
        .iter()
        .map(|u| {
            if u.starts_with('{') {
                format!("    - {u}\n")
            } else {
                format!("    - url: {u}\n")
            }
        })
        .collect();
    format!(
        r#"
node: {{ name: edge1 }}
state_dir: "{dir}"
web: {{ listen: "127.0.0.1:{web_port}" }}
{top}
sparkplug:
  group_id: plant
  primary_host_id: scada
  primary_host_timeout: 2s
  keep_alive: 5s
  reconnect: {{ min: 100ms, max: 300ms }}
  store: {{ commit_window: 100ms, drain_rate: 20000 }}
{extra}
  brokers:
{list}
devices:
  - name: press
    driver: profinet-sim
    poll_interval: 10ms
    options: {{ station: press-1, sample_period: 10ms }}
    tags:
      - {{ name: count, type: uint32, address: "in:1.1:0", options: {{ signal: counter }} }}
"#,
        dir = state_dir.display()
    )
}

fn url(b: &Broker) -> String {
    format!("mqtt://127.0.0.1:{}", b.port)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The primary host's STATE on `host`'s server, retained, as Sparkplug 3.0 has it.
fn state(host: &mut Host, online: bool) {
    host.send(json!({"publish": STATE, "json": {"online": online, "timestamp": now_ms()}, "retain": true, "qos": 1}));
}

/// `press/count` DDATA samples a host received.
fn counts(host: &Host) -> Vec<Received> {
    received(host, "plant", "edge1", "press", "count")
        .into_iter()
        .filter(|r| !r.birth)
        .collect()
}

fn births(host: &Host) -> usize {
    host.count(|m| kind(m) == "NBIRTH")
}

/// The body of a GET of `path` on uaedge's web port (empty when it cannot be reached).
fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// `/api/v1/status`'s `sparkplug` object.
fn sparkplug_status(port: u16) -> Json {
    serde_json::from_str::<Json>(&get(port, "/api/v1/status")).unwrap_or_default()["sparkplug"]
        .clone()
}

/// uaedge's `/metrics`, as `name{labels}` → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let text = get(port, "/metrics");
    for line in text.lines().filter(|l| l.starts_with("uaedge_")) {
        if let Some((k, v)) = line.rsplit_once(' ') {
            if let Ok(v) = v.parse() {
                out.insert(k.to_string(), v);
            }
        }
    }
    out
}

/// Every value from 0 through the newest live one arrived across `hosts`, and the node
/// sent none twice to any one server; returns the newest live value and the samples by
/// value. (A message the broker itself delivers again to the peer after a restart, QoS 1
/// with DUP, is the same message: same session, same flags. A repeat by the node would be
/// in a later session, or historical where the first was live.)
fn check_counter(hosts: &[&Host], what: &str) -> (u64, HashMap<u64, Received>) {
    let mut all: HashMap<u64, Received> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        let mut seen: HashMap<u64, Received> = HashMap::new();
        for r in counts(h) {
            if let Some(first) = seen.insert(r.value, r) {
                assert_eq!(
                    (first.session, first.historical, first.ts),
                    (r.session, r.historical, r.ts),
                    "{what}: value {} sent twice to server {i}",
                    r.value
                );
            }
            all.entry(r.value).or_insert(r);
        }
    }
    let through = all
        .values()
        .filter(|r| !r.historical)
        .map(|r| r.value)
        .max()
        .unwrap_or(0);
    let missing: Vec<u64> = (0..=through).filter(|v| !all.contains_key(v)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(40)]
    );
    (through, all)
}

/// Waits until the counter is complete across `hosts` through a live value past `after`.
fn wait_complete(hosts: &[&Host], after: u64, what: &str) {
    wait_for(T, what, || {
        let mut have = HashSet::new();
        let mut live_max = 0;
        for h in hosts {
            for r in counts(h) {
                have.insert(r.value);
                if !r.historical {
                    live_max = live_max.max(r.value);
                }
            }
        }
        (live_max > after && (0..=live_max).all(|v| have.contains(&v))).then_some(())
    });
}

fn nbirth_is_valid(m: &Json) {
    let names: Vec<String> = metrics(m)
        .iter()
        .filter_map(|x| x["name"].as_str().map(str::to_string))
        .collect();
    for needed in ["bdSeq", "Node Control/Rebirth", "Node Control/Next Server"] {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} not in NBIRTH {m}"
        );
    }
    assert_eq!(m["seq"], 0, "{m}");
}

/// Two mosquittos, A and B, each with the peer as primary host `scada` whose STATE there
/// is `online`; the folder they and the node keep their files in.
fn two_servers(online: [bool; 2]) -> (tempfile::TempDir, [Broker; 2], [Host; 2]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let brokers = ["a", "b"].map(|d| {
        let path = dir.path().join(d);
        std::fs::create_dir_all(&path).expect("dir");
        Broker::start(&path)
    });
    let mut hosts = [Host::start(brokers[0].port), Host::start(brokers[1].port)];
    for (h, on) in hosts.iter_mut().zip(online) {
        state(h, on);
    }
    (dir, brokers, hosts)
}

/// Writes the node's config for `brokers` and starts it: the node and its web port.
fn start_node(dir: &Path, brokers: &[String]) -> (Uaedge, u16) {
    let web = free_port();
    let cfg = dir.join("uaedge.yaml");
    std::fs::write(&cfg, config(dir, brokers, web, "")).expect("config");
    (Uaedge::start(&cfg), web)
}

#[test]
fn a_dead_server_sends_the_node_to_the_next_and_back_with_nothing_lost_or_repeated() {
    let (dir, [mut a, mut b], [host_a, host_b]) = two_servers([true, true]);
    let (mut node, web) = start_node(dir.path(), &[url(&a), url(&b)]);

    wait_for(T, "live data on A", || {
        (counts(&host_a).len() > 100).then_some(())
    });
    assert_eq!(births(&host_b), 0, "born on B while A works");

    // A dies under load: the node births on B, and what was made meanwhile follows it.
    let a_down = now_ms();
    a.stop();
    let nbirth = host_b.wait(T, "NBIRTH on B", |m| kind(m) == "NBIRTH");
    nbirth_is_valid(&nbirth);
    host_b.wait(T, "DBIRTH of press on B", |m| {
        kind(m) == "DBIRTH" && metrics(m).iter().any(|x| x["name"] == "count")
    });
    let on_b = now_ms();
    // The node's own clock at the birth on B: what it took before then had waited.
    let born_b = nbirth["timestamp"].as_u64().expect("NBIRTH timestamp");
    let switch_ms = on_b - a_down;
    let through_a = counts(&host_a).iter().map(|r| r.value).max().unwrap_or(0);
    wait_complete(
        &[&host_a, &host_b],
        through_a + 200,
        "counter complete across A and B",
    );
    let m = scrape(web);
    assert_eq!(
        m.get(&format!(
            "uaedge_sparkplug_server_current{{server=\"{}\"}}",
            url(&b)
        )),
        Some(&1.0),
        "{m:?}"
    );
    assert!(
        m.get("uaedge_sparkplug_server_switches_total") >= Some(&1.0),
        "{m:?}"
    );
    // No flapping back: A returns (its peer reconnects to its persistent session), the
    // node stays on B.
    a.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(births(&host_a), 1, "flapped back to A");

    // B dies: back on A.
    b.stop();
    wait_for(T, "NBIRTH on A again", || {
        (births(&host_a) == 2).then_some(())
    });
    let through_b = counts(&host_b).iter().map(|r| r.value).max().unwrap_or(0);
    wait_complete(
        &[&host_a, &host_b],
        through_b + 200,
        "counter complete across A, B and A again",
    );
    let (_, all) = check_counter(&[&host_a, &host_b], "two switches");
    // What waited for the next server was sent historical, with its own time.
    let zero = all.get(&0).map(|r| r.ts).unwrap_or_default();
    for r in all.values() {
        let at = r.ts as u64;
        if at > a_down + 100 && at + 100 < born_b {
            assert!(
                r.historical,
                "value {} (made during the first switch) not historical",
                r.value
            );
        }
        assert_eq!(
            r.ts - zero,
            r.value as i64 * 10,
            "value {} at the wrong time",
            r.value
        );
    }
    eprintln!("death of A → NBIRTH and DBIRTH on B: {switch_ms} ms");
    assert!(node.terminate().success());
}

#[test]
fn the_primary_host_decides_the_server_and_offline_everywhere_stays_put() {
    let (dir, [a, b], [mut host_a, mut host_b]) = two_servers([false, true]);
    // With an OPC UA server, so that SCADA clients on two stacks read where the node is.
    let (web, ua) = (free_port(), free_port());
    let cfg = dir.path().join("uaedge.yaml");
    let opcua = format!(
        "opcua: {{ listen: \"127.0.0.1:{ua}\", endpoints: [none], anonymous: read, namespace_uri: \"urn:uaedge:test\" }}"
    );
    std::fs::write(
        &cfg,
        config_with(dir.path(), &[url(&a), url(&b)], web, "", &opcua),
    )
    .expect("config");
    let mut node = Uaedge::start(&cfg);

    // Offline on A, online on B: born on B, never on A.
    host_b.wait(T, "NBIRTH on B", |m| kind(m) == "NBIRTH");
    wait_for(T, "live data on B", || {
        (counts(&host_b).len() > 50).then_some(())
    });
    assert_eq!(births(&host_a), 0, "born on A where the host is offline");
    runtime_object_agrees(ua, web, &[url(&a), url(&b)], &url(&b), [false, true]);

    // Offline on B too: NDEATH on B, A tried, and the node stays on one server.
    state(&mut host_b, false);
    host_b.wait(T, "NDEATH on B", |m| kind(m) == "NDEATH");
    // Every CONNECT takes a bdSeq: the same one seconds apart means no new sessions.
    std::thread::sleep(Duration::from_secs(6));
    let s1 = sparkplug_status(web);
    std::thread::sleep(Duration::from_secs(4));
    let s2 = sparkplug_status(web);
    assert!(s1["bd_seq"].is_u64(), "{s1}");
    assert_eq!(
        s1["bd_seq"], s2["bd_seq"],
        "still moving between servers: {s1} {s2}"
    );
    assert_eq!(s2["mqtt_connected"], true, "{s2}");
    assert_eq!(s2["born"], false, "{s2}");
    let on: Vec<&Json> = s2["brokers"]
        .as_array()
        .map(|b| b.iter().filter(|b| b["current"] == true).collect())
        .unwrap_or_default();
    assert_eq!(on.len(), 1, "{s2}");
    assert_eq!(on[0]["primary_host_online"], false, "{s2}");
    let m2 = scrape(web);
    assert_eq!(m2.get("uaedge_mqtt_connected"), Some(&1.0), "{m2:?}");
    let current_a = m2
        .get(&format!(
            "uaedge_sparkplug_server_current{{server=\"{}\"}}",
            url(&a)
        ))
        .copied();
    // The host comes back where the node waits: born there, and what waited arrives.
    let (waiting, other) = if current_a == Some(1.0) {
        (&mut host_a, &host_b)
    } else {
        (&mut host_b, &host_a)
    };
    let before = waiting.len();
    state(waiting, true);
    waiting.wait_after(before, T, "NBIRTH where the node waited", |m| {
        kind(m) == "NBIRTH"
    });
    let through = counts(other).iter().map(|r| r.value).max().unwrap_or(0);
    wait_complete(
        &[&host_a, &host_b],
        through + 200,
        "counter complete after the host came back",
    );
    check_counter(&[&host_a, &host_b], "host offline everywhere");
    assert!(node.terminate().success());
}

/// asyncua and node-opcua, stacks we did not write, read the Runtime object of the node
/// serving OPC UA on `port`: the servers in order, the current one, the primary host's
/// STATE on each, and the switch count the same as `/metrics` would say.
fn runtime_object_agrees(
    port: u16,
    web: u16,
    servers: &[String],
    current: &str,
    online: [bool; 2],
) {
    let switches = scrape(web)
        .get("uaedge_sparkplug_server_switches_total")
        .copied();
    let endpoint = format!("opc.tcp://127.0.0.1:{port}/");
    let path = |v: &str| format!("nsu=urn:uaedge:test;s=/uaedge/Runtime/{v}");
    let vars = [
        "MqttServer",
        "MqttServers",
        "PrimaryHostOnlineByServer",
        "MqttServerSwitches",
    ];
    for mut client in [
        opcua_support::Scada::start(),
        opcua_support::Scada::node_opcua(),
    ] {
        client.connect_none_when_ready(&endpoint);
        let nodes: Vec<String> = if client.name() == "asyncua" {
            let ns =
                client.ok(json!({"op": "namespace", "uri": "urn:uaedge:test"}))["index"].clone();
            vars.iter()
                .map(|v| format!("ns={ns};s=/uaedge/Runtime/{v}"))
                .collect()
        } else {
            vars.iter().map(|v| path(v)).collect()
        };
        let who = client.name();
        let values: Vec<Json> = wait_for(T, "the Runtime object to show the server", || {
            let values = client.read(&nodes);
            (values[0]["value"] == current).then_some(values)
        });
        assert!(
            values.iter().all(|v| v["status"] == "Good"),
            "{who}: {values:?}"
        );
        assert_eq!(values[1]["value"], json!(servers), "{who}: {values:?}");
        assert_eq!(values[2]["value"], json!(online), "{who}: {values:?}");
        assert_eq!(values[3]["value"].as_f64(), switches, "{who}: {values:?}");
    }
}

#[test]
fn next_server_by_ncmd_moves_the_node_with_nothing_lost() {
    let (dir, [a, b], [mut host_a, host_b]) = two_servers([true, true]);
    // Before A: a TLS server that is not there, and one that refuses our password: both
    // are passed over for the others.
    let dead = format!("mqtts://127.0.0.1:{}", free_port());
    let locked_dir = dir.path().join("locked");
    std::fs::create_dir_all(&locked_dir).expect("dir");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b", "passwd", "edge", "s3cret"])
        .current_dir(&locked_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "mosquitto_passwd");
    std::fs::write(dir.path().join("wrong.pass"), "guess\n").expect("pass");
    let locked = Broker::start_with(
        &locked_dir,
        &format!(
            "allow_anonymous false\npassword_file {}/passwd\n",
            locked_dir.display()
        ),
    );
    let wrong = format!(
        "{{ url: \"{}\", username: edge, password_file: \"{}/wrong.pass\" }}",
        url(&locked),
        dir.path().display()
    );
    let list = [dead, wrong, url(&a), url(&b)];
    let (mut node, _) = start_node(dir.path(), &list);
    host_a.wait(T, "NBIRTH on A past the dead and the locked server", |m| {
        kind(m) == "NBIRTH"
    });
    wait_for(T, "live data on A", || {
        (counts(&host_a).len() > 100).then_some(())
    });

    host_a.send(json!({"publish": "spBv1.0/plant/NCMD/edge1", "metrics": [
        {"name": "Node Control/Next Server", "datatype": 11, "value": true}], "qos": 0}));
    let death = host_a.wait(T, "NDEATH on A", |m| kind(m) == "NDEATH");
    assert!(bd_seq(&death).is_some(), "{death}");
    host_b.wait(T, "NBIRTH on B", |m| kind(m) == "NBIRTH");
    let through = counts(&host_a).iter().map(|r| r.value).max().unwrap_or(0);
    wait_complete(
        &[&host_a, &host_b],
        through + 200,
        "counter complete across the move",
    );
    let (_, all) = check_counter(&[&host_a, &host_b], "Next Server");
    // A planned move waits for the PUBACKs first: no value reached both servers.
    let on_a: HashSet<u64> = counts(&host_a).iter().map(|r| r.value).collect();
    let twice: Vec<u64> = counts(&host_b)
        .iter()
        .map(|r| r.value)
        .filter(|v| on_a.contains(v))
        .collect();
    assert!(twice.is_empty(), "sent to both servers: {twice:?}");
    assert!(all.len() > 200);
    assert!(node.terminate().success());
}

/// Where the restarted node's counter starts, so each sample names its run by value.
const RUN2: u64 = 1_000_000;

#[test]
fn kill_9_during_a_move_loses_nothing_committed() {
    let (dir, [a, b], [mut host_a, mut host_b]) = two_servers([true, true]);
    let (mut node, web) = start_node(dir.path(), &[url(&a), url(&b)]);
    wait_for(T, "live data on A", || {
        (counts(&host_a).len() > 100).then_some(())
    });
    // No STATE on B (the retained one cleared), so a move there stops half way for
    // primary_host_timeout: connected, waiting, not born.
    host_b.send(json!({"publish": STATE, "hex": "", "retain": true, "qos": 1}));
    host_a.send(json!({"publish": "spBv1.0/plant/NCMD/edge1", "metrics": [
        {"name": "Node Control/Next Server", "datatype": 11, "value": true}], "qos": 0}));
    host_a.wait(T, "NDEATH on A", |m| kind(m) == "NDEATH");
    let on_b = wait_for(T, "connected to B", || {
        let s = sparkplug_status(web);
        (s["mqtt_connected"] == true && s["broker"] == url(&b).as_str()).then_some(s)
    });
    assert_eq!(on_b["born"], false, "{on_b}");
    assert_eq!(births(&host_b), 0, "born on B where the host has no STATE");
    let killed = now_ms();
    node.kill9();

    let cfg = dir.path().join("uaedge.yaml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let restart = text.replacen(
        "options: { signal: counter } }",
        &format!("options: {{ signal: counter, start: {RUN2} }} }}"),
        1,
    );
    assert_ne!(restart, text, "counter line changed");
    std::fs::write(&cfg, restart).expect("config");
    let mut node = Uaedge::start(&cfg);

    // Run 1 through two commit windows (and slack) before the kill arrives, across both
    // servers; run 2 goes on live.
    let run1 =
        |h: &Host| -> Vec<Received> { counts(h).into_iter().filter(|r| r.value < RUN2).collect() };
    let zero = wait_for(T, "run 1's first value", || {
        run1(&host_a).iter().find(|r| r.value == 0).map(|r| r.ts)
    });
    let through = ((killed as i64 - 400 - zero) / 10) as u64;
    wait_for(
        Duration::from_secs(60),
        "run 1 complete after the restart",
        || {
            let have: HashSet<u64> = run1(&host_a)
                .iter()
                .chain(&run1(&host_b))
                .map(|r| r.value)
                .collect();
            let live2 = counts(&host_a)
                .iter()
                .chain(&counts(&host_b))
                .filter(|r| r.value >= RUN2 && !r.historical)
                .count();
            ((0..=through).all(|v| have.contains(&v)) && live2 > 50).then_some(())
        },
    );
    // Across a crash delivery is at least once: what was acknowledged but not yet
    // committed as such comes again, historical, in a later session; never otherwise.
    for (i, h) in [&host_a, &host_b].iter().enumerate() {
        let mut seen: HashMap<u64, Received> = HashMap::new();
        for r in run1(h) {
            if let Some(first) = seen.insert(r.value, r) {
                let replay = r.historical && r.session > first.session && r.ts == first.ts;
                let redelivered = (first.session, first.historical) == (r.session, r.historical);
                assert!(
                    replay || redelivered,
                    "value {} of run 1 twice at server {i}: {first:?}, then {r:?}",
                    r.value
                );
            }
        }
    }
    assert!(node.terminate().success());
}
