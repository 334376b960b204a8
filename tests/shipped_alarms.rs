//! The shipped `config.example.yaml` as an OPC UA Alarms & Conditions source, watched by
//! asyncua for seven minutes: its scheduled faults (the pressure spike at 1.5 min and
//! again at 6.5, the stuck conveyor at 3 min, the motor over-current at 7 min) raise
//! exactly their Active and then Inactive events, in that order, and a where clause on
//! Severity keeps only the over-current's.
//!
//! Long by nature (the faults are minutes apart, as a plant's would be), so it runs on its
//! own; everything else about conditions is tested in opcua_alarms.rs in seconds.

mod common;
mod opcua_support;

use std::time::{Duration, Instant};

use common::{example_config, spawn_uaedge, wait_for, KillOnDrop};
use opcua_support::Scada;
use serde_json::{json, Value as Json};

/// Past the over-current (7:00, 2 s) and before the oil temperature's drift (10 min on).
const WATCH: Duration = Duration::from_secs(7 * 60 + 25);

#[test]
fn the_shipped_configs_faults_raise_exactly_their_condition_events() {
    let dir = tempfile::tempdir().expect("dir");
    let config = example_config(dir.path());
    let text = std::fs::read_to_string(&config).expect("config");
    let port = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen: 127.0.0.1:"))
        .and_then(|p| p.trim().parse::<u16>().ok())
        .expect("the OPC UA port");
    let started = Instant::now();
    let (uaedge, _log) = spawn_uaedge(&config);
    let uaedge = KillOnDrop(uaedge);
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let mut scada = Scada::start();
    wait_for(Duration::from_secs(60), "the OPC UA server", || {
        let r = scada.call(json!({"op": "connect", "url": url, "security": "None"}));
        r.get("error").is_none().then_some(())
    });
    let fields = json!([
        [2041, "EventId"],
        [2041, "SourceName"],
        [2041, "Severity"],
        [2041, "Message"],
        [2782, "ConditionName"],
        [2782, "Retain"],
        [2881, "AckedState/Id"],
        [2915, "ActiveState/Id"],
        [2041, "EventType"]
    ]);
    let all = scada.ok(json!({"op": "events", "fields": fields, "publishing": 200}));
    assert_eq!(all["status"], "Good", "{all}");
    let severe = scada.ok(json!({"op": "events", "fields": fields, "publishing": 200,
        "where": {"op": "GreaterThanOrEqual", "field": [2041, "Severity"], "value": ["UInt16", 650]}}));
    assert_eq!(severe["status"], "Good", "{severe}");
    // Nothing fires in the first minute; a refresh shows nothing retained either.
    let refresh = scada.ok(json!({"op": "refresh", "subscription": all["subscription"]}));
    assert_eq!(refresh["status"], "Good", "{refresh}");

    let mut events: Vec<Json> = Vec::new();
    let mut filtered: Vec<Json> = Vec::new();
    while started.elapsed() < WATCH {
        for (sub, into) in [(&all, &mut events), (&severe, &mut filtered)] {
            let got = scada
                .ok(json!({"op": "event_list", "subscription": sub["subscription"], "timeout": 2}));
            into.extend(got["events"].as_array().cloned().unwrap_or_default());
        }
    }
    drop(uaedge);

    let conditions: Vec<(String, String, bool)> = events
        .iter()
        .filter(|e| e["EventType"] != "i=2787" && e["EventType"] != "i=2788")
        .map(|e| {
            (
                e["SourceName"].as_str().unwrap_or_default().to_string(),
                e["ConditionName"].as_str().unwrap_or_default().to_string(),
                e["ActiveState/Id"] == true,
            )
        })
        .collect();
    let expected = [
        ("press3/hydraulics/pressure", "spike", true),
        ("press3/hydraulics/pressure", "spike", false),
        ("pack1/conveyor/speed", "flatline", true),
        ("pack1/conveyor/speed", "flatline", false),
        ("press3/hydraulics/pressure", "spike", true),
        ("press3/hydraulics/pressure", "spike", false),
        ("pack1/motor/current", "overcurrent", true),
        ("pack1/motor/current", "overcurrent", false),
    ]
    .map(|(s, c, a)| (s.to_string(), c.to_string(), a));
    assert_eq!(conditions, expected, "{events:#?}");
    let overcurrent: Vec<&Json> = events
        .iter()
        .filter(|e| e["ConditionName"] == "overcurrent")
        .collect();
    // A limit alarm waits for an operator: still retained once cleared.
    assert_eq!(overcurrent[1]["Retain"], true, "{:?}", overcurrent[1]);
    assert_eq!(overcurrent[1]["AckedState/Id"], false);
    assert_eq!(overcurrent[0]["Severity"], 700);
    assert!(
        overcurrent[0]["Message"]
            .as_str()
            .is_some_and(|m| m.starts_with("pack1/motor/current overcurrent: value ")),
        "{:?}",
        overcurrent[0]
    );
    let spike = &events
        .iter()
        .find(|e| e["ConditionName"] == "spike")
        .expect("spike");
    assert_eq!(spike["Retain"], true, "active");
    // The where clause kept the over-current's two events only.
    let kept: Vec<(&Json, &Json)> = filtered
        .iter()
        .filter(|e| e["EventType"] != "i=2787" && e["EventType"] != "i=2788")
        .map(|e| (&e["ConditionName"], &e["ActiveState/Id"]))
        .collect();
    assert_eq!(
        kept,
        [
            (&json!("overcurrent"), &json!(true)),
            (&json!("overcurrent"), &json!(false))
        ],
        "{filtered:#?}"
    );
}
