//! OPC UA Alarms & Conditions (Part 9) against asyncua, a stack we did not write: condition
//! events from the Server object with an EventFilter (select and where clauses), the
//! methods and their refusals, ConditionRefresh, and condition state surviving `kill -9`.
//!
//! The simulated line repeats its faults every 4 s (see tests/alarms.rs for the steps), so
//! every condition goes Active and Inactive once a cycle: the pressure spike (spike →
//! ExclusiveDeviationAlarmType, severity 600, acknowledged automatically), the
//! temperature drift over its limit (limits → ExclusiveLimitAlarmType, 700, acknowledged
//! by hand) and the stuck speed (flatline → OffNormalAlarmType, 500).

mod common;
mod opcua_support;

use std::time::{Duration, Instant};

use common::{free_port, spawn_uaedge, wait_for, KillOnDrop};
use opcua_support::{Edge, Scada};
use serde_json::{json, Value as Json};

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
    tags:
      - name: pressure
        type: float32
        address: "Pressure"
        options: { signal: constant, value: 100 }
        checks:
          - { kind: spike, window_samples: 30, threshold: 5, min_spread: 0.5 }
      - name: temperature
        type: float32
        address: "Temp"
        units: "°C"
        options: { signal: constant, value: 50 }
        checks:
          - { kind: limits, name: high, hi: 51.25, hysteresis: 0.5 }
      - name: speed
        type: float32
        address: "Speed"
        options: { signal: ramp, min: 0, max: 100, period: 2s }
        checks:
          - { kind: flatline, epsilon: 0.01, window_samples: 10 }
"#;

/// (type, path) of every field the tests select; an empty path is the ConditionId, sent as
/// a null BrowsePath (as open62541 clients send it).
const FIELDS: [(u32, &str); 23] = [
    (2041, "EventId"),
    (2041, "EventType"),
    (2041, "SourceNode"),
    (2041, "SourceName"),
    (2041, "Time"),
    (2041, "ReceiveTime"),
    (2041, "Message"),
    (2041, "Severity"),
    (2782, ""),
    // No type has it: it reads Null, and the fields after it stay in their places.
    (2782, "NoSuchField"),
    (2782, "ConditionName"),
    (2782, "Retain"),
    (2782, "EnabledState/Id"),
    (2782, "Quality"),
    (2782, "LastSeverity"),
    (2782, "Comment"),
    (2782, "ClientUserId"),
    (2881, "AckedState/Id"),
    (2881, "ConfirmedState/Id"),
    (2915, "ActiveState/Id"),
    (2915, "ActiveState/TransitionTime"),
    (2955, "HighLimit"),
    (9341, "LimitState/CurrentState"),
];

fn fields() -> Json {
    let path = |p: &str| if p.is_empty() { Json::Null } else { json!(p) };
    json!(FIELDS
        .iter()
        .map(|(t, p)| json!([t, path(p)]))
        .collect::<Vec<_>>())
}

/// Events until `until` holds for the list so far or `limit` passes.
fn collect(
    scada: &mut Scada,
    subscription: &Json,
    limit: Duration,
    until: impl Fn(&[Json]) -> bool,
) -> Vec<Json> {
    let end = Instant::now() + limit;
    let mut all = Vec::new();
    while Instant::now() < end && !until(&all) {
        let got = scada.ok(json!({"op": "event_list", "subscription": subscription, "timeout": 1}));
        all.extend(got["events"].as_array().cloned().unwrap_or_default());
    }
    all
}

fn of<'a>(events: &'a [Json], source: &str) -> Vec<&'a Json> {
    events
        .iter()
        .filter(|e| e["SourceName"] == source)
        .collect()
}

fn active(e: &Json) -> bool {
    e["ActiveState/Id"] == true
}

const OPCUA: &str = "  endpoints: [none, basic256sha256_sign_encrypt]\n  anonymous: read\n  trust_client_certs: true\n  users:\n    - { name: operator, password: op-pw, write: true }\n    - { name: viewer, password: view-pw }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_events_methods_and_refresh_with_asyncua() {
    let edge = Edge::start(OPCUA, LINE).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let all = scada.ok(json!({"op": "events", "fields": fields(), "publishing": 50}));
    assert_eq!(all["status"], "Good", "{all}");
    // A where clause: alarms of severity 650 and above (the temperature's, 700).
    let severe = scada.ok(json!({"op": "events", "fields": fields(), "publishing": 50,
    "where": {"op": "And", "args": [
        {"op": "OfType", "type": 2915},
        {"op": "GreaterThanOrEqual", "field": [2041, "Severity"], "value": ["UInt16", 650]},
    ]}}));
    assert_eq!(severe["status"], "Good", "{severe}");
    // Malformed where clauses: the item is refused with BadEventFilterInvalid (Part 4; the
    // element's own code is in the filter result), and the session goes on.
    for (filter, status) in [
        (
            json!({"op": "GreaterThanOrEqual", "field": [2041, "Severity"], "value": ["String", "x"], "drop_operand": true}),
            "BadEventFilterInvalid",
        ),
        (
            json!({"op": "And", "args": [{"op": "OfType", "type": 2915}]}),
            "BadEventFilterInvalid",
        ),
    ] {
        let bad = scada.ok(json!({"op": "events", "fields": fields(), "where": filter}));
        assert_eq!(bad["status"], status, "{filter}: {bad}");
    }

    // Two cycles of faults: each condition Active, then Inactive, at least once.
    let events = collect(
        &mut scada,
        &all["subscription"],
        Duration::from_secs(20),
        |e| {
            ["line/pressure", "line/temperature", "line/speed"]
                .iter()
                .all(|s| of(e, s).iter().filter(|e| !active(e)).count() >= 2)
        },
    );
    let expect = [
        ("line/pressure", "spike", "i=9764", 600, true),
        ("line/temperature", "high", "i=9341", 700, false),
        ("line/speed", "flatline", "i=10637", 500, true),
    ];
    for (source, check, event_type, severity, auto_ack) in expect {
        let mine = of(&events, source);
        assert!(mine.len() >= 3, "{source}: {mine:?}");
        // Transitions alternate: never two Active events in a row for one condition.
        for pair in mine.windows(2) {
            assert_ne!(active(pair[0]), active(pair[1]), "{source}: {pair:?}");
        }
        for e in &mine {
            assert_eq!(e["EventType"], event_type, "{e}");
            assert_eq!(e["ConditionName"], check, "{e}");
            assert_eq!(e["Severity"], severity, "{e}");
            assert_eq!(e["SourceNode"], json!(edge.node(source)), "{e}");
            assert_eq!(
                e["ConditionId"],
                json!(edge.node(&format!("{source}//Condition/{check}"))),
                "{e}"
            );
            assert_eq!(e["EventId"].as_str().map(str::len), Some(32), "{e}");
            assert_eq!(e["EnabledState/Id"], true, "{e}");
            assert_eq!(e["Quality"], "Good", "{e}");
            assert_eq!(e["ConfirmedState/Id"], true, "{e}");
            assert!(e["NoSuchField"].is_null(), "{e}");
            let message = e["Message"].as_str().unwrap_or_default();
            assert!(message.starts_with(&format!("{source} {check}: ")), "{e}");
            assert!(e["Time"].as_f64() <= e["ReceiveTime"].as_f64(), "{e}");
            assert!(e["ActiveState/TransitionTime"].is_number(), "{e}");
            if active(e) {
                assert_eq!(e["Retain"], true, "{e}");
                assert_eq!(e["AckedState/Id"], json!(auto_ack), "{e}");
            } else {
                // Cleared: retained only while it waits for an acknowledgement.
                assert_eq!(e["Retain"], json!(!auto_ack), "{e}");
            }
        }
    }
    let limit = of(&events, "line/temperature");
    let raised = limit
        .iter()
        .find(|e| active(e))
        .expect("an active limit event");
    assert_eq!(raised["HighLimit"], 51.25, "{raised}");
    assert_eq!(raised["LimitState/CurrentState"], "High", "{raised}");
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["EventId"].as_str())
        .collect();
    assert_eq!(ids.len(), events.len(), "every EventId is new");

    // The where clause kept only the temperature's events.
    let filtered = collect(
        &mut scada,
        &severe["subscription"],
        Duration::from_secs(2),
        |_| false,
    );
    assert!(!filtered.is_empty());
    assert!(
        filtered
            .iter()
            .all(|e| e["SourceName"] == "line/temperature"),
        "{filtered:?}"
    );

    // Right after the temperature clears (unacknowledged), a ConditionRefresh shows it
    // between RefreshStart and RefreshEnd.
    let cleared = collect(
        &mut scada,
        &all["subscription"],
        Duration::from_secs(10),
        |e| {
            e.last()
                .is_some_and(|e| e["SourceName"] == "line/temperature" && !active(e))
        },
    );
    let cleared = cleared.last().cloned().expect("the temperature clears");
    assert_eq!(
        (cleared["Retain"].clone(), cleared["AckedState/Id"].clone()),
        (json!(true), json!(false))
    );
    let refresh = scada.ok(json!({"op": "refresh", "subscription": all["subscription"]}));
    assert_eq!(refresh["status"], "Good", "{refresh}");
    let refreshed = collect(
        &mut scada,
        &all["subscription"],
        Duration::from_secs(5),
        |e| e.iter().any(|e| e["EventType"] == "i=2788"),
    );
    let start = refreshed.iter().position(|e| e["EventType"] == "i=2787");
    let end = refreshed.iter().position(|e| e["EventType"] == "i=2788");
    let (Some(start), Some(end)) = (start, end) else {
        panic!("no RefreshStart/RefreshEnd: {refreshed:?}");
    };
    let between = &refreshed[start + 1..end];
    let temperature: Vec<&Json> = between
        .iter()
        .filter(|e| e["SourceName"] == "line/temperature")
        .collect();
    assert_eq!(temperature.len(), 1, "{between:?}");
    assert_eq!(
        temperature[0]["EventId"], cleared["EventId"],
        "the current event"
    );
    assert!(between.iter().all(|e| e["Retain"] == true), "{between:?}");

    let condition = edge.node("line/temperature//Condition/high");
    let ack = |id: &Json, comment: &str| {
        json!({"op": "call", "object": condition, "method": "i=9111",
               "args": [["ByteString", id], ["LocalizedText", comment]]})
    };
    // Anonymous may read, not acknowledge.
    let denied = scada.ok(ack(&cleared["EventId"], "no"));
    assert_eq!(denied["status"], "BadUserAccessDenied", "{denied}");

    // The operator, over an encrypted channel with a password.
    let mut operator = Scada::start();
    let client_pki = edge.state.path().join("client");
    operator.ok(
        json!({"op": "connect", "url": edge.url, "security": "Basic256Sha256,SignAndEncrypt",
        "pki": client_pki.display().to_string(), "user": "operator", "password": "op-pw"}),
    );
    // Bad input: each refused with Part 9's status code, nothing changes.
    let refusals = [
        (ack(&json!("00".repeat(16)), "x"), "BadEventIdUnknown"),
        (ack(&json!("0102"), "x"), "BadEventIdUnknown"),
        (
            json!({"op": "call", "object": condition, "method": "i=9111", "args": [["UInt32", 7], ["LocalizedText", "x"]]}),
            "BadInvalidArgument",
        ),
        (
            json!({"op": "call", "object": condition, "method": "i=9111", "args": [["ByteString", "00"]]}),
            "BadArgumentsMissing",
        ),
        (
            json!({"op": "call", "object": edge.node("line/temperature//Condition/nope"), "method": "i=9111",
                   "args": [["ByteString", cleared["EventId"]], ["LocalizedText", "x"]]}),
            "BadNodeIdUnknown",
        ),
        (
            json!({"op": "call", "object": "i=2782", "method": "i=9111",
                   "args": [["ByteString", cleared["EventId"]], ["LocalizedText", "x"]]}),
            "BadNodeIdUnknown",
        ),
        (
            json!({"op": "call", "object": condition, "method": "i=9113",
                   "args": [["ByteString", cleared["EventId"]], ["LocalizedText", "x"]]}),
            "BadConditionBranchAlreadyConfirmed",
        ),
        (
            json!({"op": "refresh", "subscription": 999_999}),
            "BadSubscriptionIdInvalid",
        ),
        (
            json!({"op": "call", "object": condition, "method": "i=9027", "args": []}),
            "BadConditionAlreadyEnabled",
        ),
    ];
    for (call, status) in refusals {
        let answer = operator.ok(call.clone());
        assert_eq!(answer["status"], status, "{call} -> {answer}");
    }
    let acked = operator.ok(ack(&cleared["EventId"], "sensor checked"));
    assert_eq!(acked["status"], "Good", "{acked}");
    let again = operator.ok(ack(&cleared["EventId"], "twice"));
    assert_eq!(
        again["status"], "BadEventIdUnknown",
        "the EventId is not the newest"
    );
    let told = collect(
        &mut scada,
        &all["subscription"],
        Duration::from_secs(5),
        |e| {
            e.iter()
                .any(|e| e["AckedState/Id"] == true && e["SourceName"] == "line/temperature")
        },
    );
    let told = told
        .iter()
        .find(|e| e["SourceName"] == "line/temperature")
        .expect("an event of the acknowledgement");
    assert_eq!(told["AckedState/Id"], true, "{told}");
    assert_eq!(told["Comment"], "sensor checked", "{told}");
    assert_eq!(told["ClientUserId"], "operator", "{told}");
    assert_eq!(told["ActiveState/Id"], false, "{told}");
    assert_eq!(
        told["Retain"], false,
        "acknowledged and inactive: no longer retained"
    );
    assert_ne!(told["EventId"], cleared["EventId"]);
    operator.ok(json!({"op": "disconnect"}));

    // The condition is a node: a component of its tag, which HasCondition points at it,
    // with Part 9's methods and its state as variables.
    let refs =
        scada.ok(json!({"op": "references", "node": edge.node("line/temperature"), "max": 0}));
    let has = |refs: &Json, kind: &str, target: &str| {
        refs["references"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["type"] == kind && r["forward"] == true && r["nodeid"] == target)
        })
    };
    assert!(has(&refs, "i=9006", &condition), "HasCondition: {refs}");
    assert!(has(&refs, "i=47", &condition), "HasComponent: {refs}");
    let device_refs = scada.ok(json!({"op": "references", "node": edge.node("line"), "max": 0}));
    assert!(
        has(&device_refs, "i=36", &edge.node("line/temperature")),
        "HasEventSource: {device_refs}"
    );
    let methods = scada.ok(json!({"op": "references", "node": condition, "max": 0}));
    for method in ["i=9111", "i=9029", "i=9027", "i=9028"] {
        assert!(has(&methods, "i=47", method), "{method}: {methods}");
    }
    let state = scada.read(&[
        format!("{condition}/AckedState/Id"),
        format!("{condition}/Severity"),
        format!("{condition}/EnabledState/Id"),
        format!("{condition}/Comment"),
        format!("{condition}/HighLimit"),
    ]);
    let values: Vec<&Json> = state.iter().map(|v| &v["value"]).collect();
    assert_eq!(
        values,
        [
            &json!(true),
            &json!(700),
            &json!(true),
            &json!("sensor checked"),
            &json!(51.25)
        ],
        "{state:?}"
    );

    // A read-only user may not acknowledge either.
    let mut viewer = Scada::start();
    viewer.ok(
        json!({"op": "connect", "url": edge.url, "security": "Basic256Sha256,SignAndEncrypt",
        "pki": client_pki.display().to_string(), "user": "viewer", "password": "view-pw"}),
    );
    let denied = viewer.ok(ack(&told["EventId"], "no"));
    assert_eq!(denied["status"], "BadUserAccessDenied", "{denied}");
    viewer.ok(json!({"op": "disconnect"}));
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

/// A tank whose level is always over its limit: the alarm is Active from the first
/// sample and stays so.
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
          - { kind: limits, hi: 10, severity: 900 }
"#;

#[test]
fn an_unacknowledged_alarm_survives_kill_9_without_a_second_active_event() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "node: {{ name: tank }}\nstate_dir: {}\nopcua:\n  listen: 127.0.0.1:{port}\n  endpoints: [none]\n  anonymous: write\ndevices:{TANK}",
            dir.path().join("state").display()
        ),
    )
    .expect("write config");
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let fields = json!([
        [2041, "EventId"],
        [2041, "SourceName"],
        [2041, "Severity"],
        [2782, ""],
        [2782, "Retain"],
        [2881, "AckedState/Id"],
        [2915, "ActiveState/Id"],
        [2041, "EventType"]
    ]);
    let connect = |scada: &mut Scada| {
        wait_for(Duration::from_secs(60), "the OPC UA server", || {
            let r = scada.call(json!({"op": "connect", "url": url, "security": "None"}));
            r.get("error").is_none().then_some(())
        });
    };

    let (first, _log) = spawn_uaedge(&config);
    let mut first = KillOnDrop(first);
    let mut scada = Scada::start();
    connect(&mut scada);
    let sub = scada.ok(json!({"op": "events", "fields": fields, "publishing": 50}));
    // Whether the Active event came before the subscription or after, a refresh shows it.
    scada.ok(json!({"op": "refresh", "subscription": sub["subscription"]}));
    let seen = collect(
        &mut scada,
        &sub["subscription"],
        Duration::from_secs(20),
        |e| {
            e.iter()
                .any(|e| e["SourceName"] == "tank/level" && active(e))
        },
    );
    let before = seen
        .iter()
        .find(|e| e["SourceName"] == "tank/level")
        .cloned()
        .expect("the tank's alarm");
    assert_eq!(
        (before["AckedState/Id"].clone(), before["Severity"].clone()),
        (json!(false), json!(900))
    );
    // The state reaches the disk within milliseconds; give it a moment, then pull the plug.
    std::thread::sleep(Duration::from_millis(500));
    first.0.kill().expect("kill -9");
    first.0.wait().ok();
    scada.ok(json!({"op": "disconnect"}));

    let (second, _log) = spawn_uaedge(&config);
    let _second = KillOnDrop(second);
    let mut scada = Scada::start();
    connect(&mut scada);
    let sub = scada.ok(json!({"op": "events", "fields": fields, "publishing": 50}));
    // Samples flow again and the check finds the level still high: the same occurrence,
    // so no Active event.
    let quiet = collect(
        &mut scada,
        &sub["subscription"],
        Duration::from_secs(3),
        |_| false,
    );
    assert!(
        quiet.iter().all(|e| e["SourceName"] != "tank/level"),
        "a second Active event for the same occurrence: {quiet:?}"
    );
    scada.ok(json!({"op": "refresh", "subscription": sub["subscription"]}));
    let refreshed = collect(
        &mut scada,
        &sub["subscription"],
        Duration::from_secs(5),
        |e| e.iter().any(|e| e["EventType"] == "i=2788"),
    );
    let after: Vec<&Json> = refreshed
        .iter()
        .filter(|e| e["SourceName"] == "tank/level")
        .collect();
    assert_eq!(after.len(), 1, "{refreshed:?}");
    assert_eq!(
        after[0]["EventId"], before["EventId"],
        "the same event, restored"
    );
    assert_eq!(after[0]["AckedState/Id"], false);
    assert_eq!(after[0]["ActiveState/Id"], true);
    // The restored EventId is the one to acknowledge.
    let ack = scada.ok(
        json!({"op": "call", "object": after[0]["ConditionId"], "method": "i=9111",
        "args": [["ByteString", before["EventId"]], ["LocalizedText", "seen"]]}),
    );
    assert_eq!(ack["status"], "Good", "{ack}");
    scada.ok(json!({"op": "disconnect"}));
}

/// node-opcua, a second stack: the same events as asyncua (same EventIds), its own
/// EventFilter (ConditionId with no browse path at all), and an acknowledgement both
/// stacks then see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_receives_the_same_events_and_acknowledges() {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: write", LINE).await;
    let mut asyncua = Scada::start();
    asyncua.connect_none(&edge.url);
    let sub = asyncua.ok(json!({"op": "events", "fields": fields(), "publishing": 50}));
    let mut node = Scada::node_opcua();
    node.ok(json!({"op": "connect", "url": edge.url, "security": "None"}));
    let names = [
        "EventId",
        "SourceName",
        "ConditionId",
        "ActiveState/Id",
        "AckedState/Id",
        "Retain",
        "Comment",
        "ClientUserId",
        "Severity",
        "Message",
    ];
    let watched = node.ok(json!({"op": "events", "fields": names, "publishing": 50}));
    assert_eq!(watched["status"], "Good", "{watched}");

    // node-opcua's view of the temperature clearing, unacknowledged.
    let seen = collect(&mut node, &json!(null), Duration::from_secs(15), |e| {
        e.last()
            .is_some_and(|e| e["SourceName"] == "line/temperature" && !active(e))
    });
    let cleared = seen
        .last()
        .cloned()
        .expect("node-opcua saw the temperature clear");
    assert_eq!(cleared["AckedState/Id"], false, "{cleared}");
    assert_eq!(cleared["Retain"], true, "{cleared}");
    assert_eq!(cleared["Severity"], 700, "{cleared}");
    assert_eq!(
        cleared["ConditionId"],
        json!(edge.nsu("line/temperature//Condition/high")),
        "{cleared}"
    );
    // Every field in its place: the ConditionId select did not shift the others.
    assert!(
        cleared["Message"]
            .as_str()
            .is_some_and(|m| m.starts_with("line/temperature high: ")),
        "{cleared}"
    );
    // asyncua got the very same events.
    let mirrored = collect(
        &mut asyncua,
        &sub["subscription"],
        Duration::from_secs(5),
        |e| e.iter().any(|e| e["EventId"] == cleared["EventId"]),
    );
    assert!(
        mirrored.iter().any(|e| e["EventId"] == cleared["EventId"]),
        "asyncua did not see {cleared}"
    );
    for e in seen
        .iter()
        .filter(|e| e["SourceName"] == "line/temperature")
    {
        let twin = mirrored.iter().find(|m| m["EventId"] == e["EventId"]);
        if let Some(twin) = twin {
            assert_eq!(twin["ActiveState/Id"], e["ActiveState/Id"]);
            assert_eq!(twin["Message"], e["Message"]);
        }
    }

    let acked = node.ok(
        json!({"op": "call", "object": cleared["ConditionId"], "method": "i=9111",
        "args": [["ByteString", cleared["EventId"]], ["LocalizedText", "by node-opcua"]]}),
    );
    assert_eq!(acked["status"], "Good", "{acked}");
    for (stack, scada, sub) in [
        ("asyncua", &mut asyncua, sub["subscription"].clone()),
        ("node-opcua", &mut node, json!(null)),
    ] {
        let told = collect(scada, &sub, Duration::from_secs(5), |e| {
            e.iter().any(|e| e["Comment"] == "by node-opcua")
        });
        let told = told
            .iter()
            .find(|e| e["Comment"] == "by node-opcua")
            .unwrap_or_else(|| panic!("{stack} saw no acknowledgement: {told:?}"));
        assert_eq!(told["AckedState/Id"], true, "{stack}: {told}");
        assert_eq!(told["ClientUserId"], "anonymous", "{stack}: {told}");
        assert_eq!(told["Retain"], false, "{stack}: {told}");
    }
    node.ok(json!({"op": "disconnect"}));
    asyncua.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}

/// The notifier hierarchy Server → uaedge → device: an event item on each level receives
/// every condition's events once, and a refresh on the middle level works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_level_of_the_notifier_hierarchy_receives_each_event_once() {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: read", LINE).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let fields = json!([[2041, "EventId"], [2041, "SourceName"], [2041, "EventType"]]);
    let mut subs = Vec::new();
    for node in [
        "i=2253".to_string(),
        edge.node("/uaedge"),
        edge.node("line"),
    ] {
        let sub =
            scada.ok(json!({"op": "events", "node": node, "fields": fields, "publishing": 50}));
        assert_eq!(sub["status"], "Good", "{node}: {sub}");
        subs.push((node, sub["subscription"].clone()));
    }
    // A whole cycle of faults, then what each level got.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut seen = Vec::new();
    for (node, sub) in &subs {
        let events = collect(&mut scada, sub, Duration::from_secs(2), |_| false);
        let mut ids: Vec<String> = events
            .iter()
            .filter_map(|e| e["EventId"].as_str().map(String::from))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{node}: an event twice");
        assert!(n >= 6, "{node}: {n} events in a cycle");
        seen.push((node.clone(), ids));
    }
    // The same events at every level, give or take the edges of the window.
    let common = seen[0]
        .1
        .iter()
        .filter(|id| seen.iter().all(|(_, ids)| ids.contains(id)))
        .count();
    assert!(common + 4 >= seen[0].1.len(), "{seen:?}");
    // A refresh on the root's subscription.
    let refresh = scada.ok(json!({"op": "refresh", "subscription": subs[1].1}));
    assert_eq!(refresh["status"], "Good", "{refresh}");
    let refreshed = collect(&mut scada, &subs[1].1, Duration::from_secs(5), |e| {
        e.iter().any(|e| e["EventType"] == "i=2788")
    });
    assert!(
        refreshed.iter().any(|e| e["EventType"] == "i=2787"),
        "{refreshed:?}"
    );
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}
