//! OPC UA HistoryRead raw (Part 11) of the local historian through node-opcua, a second
//! client stack we did not write (tests/opcua_history.rs does the same and more through
//! asyncua): a counter read back is whole and in order, pages of 50 following continuation
//! points give the same values, and node-opcua's own readHistoryValue helper agrees.
//!
//! The counter counts one per 10 ms sample, so any gap or repeat in history shows as a step
//! other than 1. Times travel in µs; node-opcua's Date keeps ms, the script carries the rest,
//! which a second counter sampled every 10.25 ms (times off the ms grid) checks both ways.

mod common;
mod opcua_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opcua_support::{Edge, Scada};
use serde_json::{json, Value as Json};

const LINE: &str = r#"
  - name: line
    driver: enip-sim
    poll_interval: 50ms
    options:
      seed: 7
      sample_period: 10ms
    tags:
      - name: count
        type: int32
        address: "Count"
        options: { signal: counter, start: 0, increment: 1, max: 2000000000 }
  - name: fine
    driver: enip-sim
    poll_interval: 50ms
    options:
      seed: 8
      sample_period: 10250us
    tags:
      - name: count
        type: int32
        address: "Count"
        options: { signal: counter, start: 0, increment: 1, max: 2000000000 }
"#;

/// The history section goes after the OPC UA body, at the top level of the YAML.
const OPCUA: &str = "  endpoints: [none]\n  anonymous: read\nhistory:\n  commit_window: 100ms";

/// Equal lists, or the first difference.
#[track_caller]
fn same(a: &[Json], b: &[Json]) {
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!("entry {i} differs: {} instead of {}", a[i], b[i]);
    }
    assert_eq!(a.len(), b.len(), "lengths differ");
}

fn values(answer: &Json) -> Vec<Json> {
    answer["values"].as_array().cloned().unwrap_or_default()
}

fn times(values: &[Json]) -> Vec<i64> {
    values
        .iter()
        .map(|v| v["source_us"].as_i64().unwrap_or(i64::MIN))
        .collect()
}

/// Counter values read from history: consecutive, no gap, no repeat, all Good.
fn assert_consecutive(values: &[Json]) {
    assert!(values.iter().all(|v| v["status"] == "Good"), "{values:?}");
    for pair in values.windows(2) {
        let (a, b) = (&pair[0]["value"], &pair[1]["value"]);
        assert_eq!(
            b.as_i64().map(|b| b - a.as_i64().unwrap_or(0)),
            Some(1),
            "counter jumps from {} to {}",
            pair[0],
            pair[1]
        );
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_reads_raw_history_whole_and_paged() {
    let edge = Edge::start(OPCUA, LINE).await;
    let mut scada = Scada::node_opcua();
    scada.connect_none(&edge.url);
    let count = edge.nsu("line/count");
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Everything of the last 10 minutes (4 s and the client's start-up), one request.
    let now = now_us();
    let first = scada.ok(json!({"op": "history_raw", "node": &count,
        "start_us": now - 600_000_000, "end_us": now, "bounds": false}));
    assert_eq!(first["statuses"], json!(["Good"]), "{}", first["statuses"]);
    let first = values(&first);
    assert!(first.len() >= 200, "{} values in 4 s at 10 ms", first.len());
    assert_consecutive(&first);
    let t = times(&first);
    let back = t.windows(2).find(|w| w[0] >= w[1]);
    assert_eq!(back, None, "source times strictly increase");
    let (t_first, t_last) = (t[0], t[t.len() - 1]);
    assert!(
        t_first > now - 60_000_000 && t_last <= now,
        "times of this run: {t_first}..{t_last}, now {now}"
    );

    // The same range again, now closed (the end is exclusive): the same values.
    let all = scada.ok(json!({"op": "history_raw", "node": &count,
        "start_us": t_first, "end_us": t_last + 1}));
    assert_eq!(all["statuses"], json!(["Good"]), "{}", all["statuses"]);
    let all = values(&all);
    same(&all, &first);

    // Pages of 50: the same values, 50 a page, every page Good.
    let paged = scada.ok(json!({"op": "history_raw", "node": &count,
        "start_us": t_first, "end_us": t_last + 1, "num": 50}));
    let pages = paged["pages"].as_array().cloned().unwrap_or_default();
    assert_eq!(pages.len(), all.len().div_ceil(50), "{pages:?}");
    assert!(
        pages[..pages.len() - 1].iter().all(|p| p == 50),
        "{pages:?}"
    );
    assert!(
        paged["statuses"]
            .as_array()
            .is_some_and(|s| s.len() == pages.len() && s.iter().all(|s| s == "Good")),
        "{}",
        paged["statuses"]
    );
    same(&values(&paged), &all);
    // A page limit stops early (the point still held is released).
    let two = scada.ok(json!({"op": "history_raw", "node": &count,
        "start_us": t_first, "end_us": t_last + 1, "num": 50, "max_pages": 2}));
    same(&values(&two), &all[..100]);

    // node-opcua's readHistoryValue (bounds on, both timestamps): the value at the start is
    // its own bound; the end bound is the first value after the end, once stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while values(&scada.ok(json!({"op": "history_raw", "node": &count,
        "start_us": t_last + 1, "end_us": now_us() + 1_000_000, "num": 1, "max_pages": 1})))
    .is_empty()
    {
        assert!(Instant::now() < deadline, "nothing stored after {t_last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api = scada.ok(json!({"op": "history_read_value", "node": &count,
        "start_us": t_first, "end_us": t_last + 1}));
    assert_eq!(api["status"], "Good", "{api}");
    let api = values(&api);
    assert_eq!(api.len(), all.len() + 1, "{:?}", api.last());
    same(&api[..all.len()], &all);
    let after = &api[all.len()];
    assert_eq!(after["status"], "Good", "{after}");
    assert_eq!(
        after["value"].as_i64(),
        all[all.len() - 1]["value"].as_i64().map(|v| v + 1),
        "{after}"
    );
    assert!(after["source_us"].as_i64() > Some(t_last), "{after}");
    // Between samples: the value before the start and the one after the end bound it.
    let api = values(&scada.ok(json!({"op": "history_read_value", "node": &count,
        "start_us": t[10] - 1, "end_us": t[100] + 1})));
    same(&api, &all[9..=101]);

    // µs both ways: source times off the ms grid come back exact, and a range starting or
    // ending 1 µs after a sample leaves it out or takes it in.
    let fine = edge.nsu("fine/count");
    let now = now_us();
    let all = values(&scada.ok(json!({"op": "history_raw", "node": &fine,
        "start_us": now - 600_000_000, "end_us": now})));
    assert!(all.len() >= 200, "{} values in 4 s at 10.25 ms", all.len());
    assert_consecutive(&all);
    let t = times(&all);
    let off = t.windows(2).find(|w| (w[1] - w[0] - 10_250).abs() > 1);
    assert_eq!(off, None, "source times 10.25 ms apart");
    assert!(t.iter().any(|t| t % 1000 != 0), "times off the ms grid");
    let inner = values(&scada.ok(json!({"op": "history_raw", "node": &fine,
        "start_us": t[10] + 1, "end_us": t[100] + 1})));
    same(&inner, &all[11..=100]);
    let api = values(&scada.ok(json!({"op": "history_read_value", "node": &fine,
        "start_us": t[10] + 1, "end_us": t[100] + 1})));
    same(&api, &all[10..=101]);

    drop(scada);
    edge.stop().await;
}
