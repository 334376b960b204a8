//! Plumbing for the chained-uaedge tests (tests/opcua_scale.rs, tests/opcua_resilience.rs):
//! upstream devices full of counters, the downstream that reads them over OPC UA, and a
//! checker of what arrives.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use uaedge::bus::ModelEvent;
use uaedge::model::TagId;
use uaedge::runtime::Runtime;
use uaedge_driver::{Quality, Value};

use crate::common::eventually;

/// Both uaedges' warnings (or what `RUST_LOG` asks for) into the test's output, shown when
/// it fails: a lost value is then explained by the side that lost it.
pub fn log_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The upstream's `opcua:` section. Its counters step every 100 ms, so a client sampling
/// every 100 ms may rightly miss a value: async-opcua keeps one sample per sampling interval,
/// by source timestamp, and two steps that come closer than that on a loaded machine
/// (a late poll, then one on time) make one of them fall out. The chain samples every 10 ms
/// to see every step (the server reports by exception, so that costs nothing more).
pub const UPSTREAM_OPCUA: &str =
    "  endpoints: [none]\n  anonymous: read\n  min_sampling_interval: 10ms";

/// `devices` enip-sim devices of `tags` counters each, stepping every `period`.
pub fn upstream_devices(devices: usize, tags: usize, period: &str) -> String {
    let mut y = String::new();
    for d in 1..=devices {
        let _ = write!(
            y,
            "  - name: sim{d}\n    driver: enip-sim\n    poll_interval: {period}\n    options: {{ seed: {d} }}\n    tags:\n"
        );
        for t in 0..tags {
            let _ = writeln!(
                y,
                "      - {{ name: t{t}, type: uint32, address: \"Tag_{t}\", options: {{ signal: counter }} }}"
            );
        }
    }
    y
}

/// The downstream config: one `opcua-client` device per upstream device, and `diag`
/// reading the upstream's session counts, all through `url`.
pub fn downstream(url: &str, pki: &std::path::Path, devices: usize, tags: usize) -> String {
    let options = format!(
        "{{ endpoint: \"{url}\", pki_dir: \"{}\", publishing_interval: 100ms, sampling_interval: 10ms, request_timeout: 2s, buffer: 1000000 }}",
        pki.display()
    );
    let mut y = String::from("node: { name: down }\ndevices:\n");
    for d in 1..=devices {
        let _ = write!(
            y,
            "  - name: up{d}\n    driver: opcua-client\n    poll_interval: 100ms\n    reconnect: {{ min: 100ms, max: 1s }}\n    options: {options}\n    tags:\n"
        );
        for t in 0..tags {
            let _ = writeln!(
                y,
                "      - {{ name: t{t}, type: uint32, address: \"nsu=urn:uaedge:test;s=sim{d}/t{t}\" }}"
            );
        }
    }
    let _ = write!(
        y,
        "  - name: diag\n    driver: opcua-client\n    poll_interval: 100ms\n    reconnect: {{ min: 100ms, max: 1s }}\n    options: {options}\n    tags:\n      \
         - {{ name: sessions, type: uint32, address: \"i=2277\" }}\n      \
         - {{ name: sessions_created, type: uint32, address: \"i=2278\" }}\n"
    );
    y
}

/// What a uaedge saw of the counters.
#[derive(Default, Debug)]
pub struct Seen {
    /// Each tag's last Good value.
    pub last: Vec<Option<u32>>,
    pub values: u64,
    /// Values that never came, per counter (`<device number>/<tag>`, the same key upstream
    /// and downstream): first and last of each run.
    pub gaps: HashMap<String, Vec<(u32, u32)>>,
    pub repeated: u64,
    pub backwards: u64,
    /// The largest upstream session count seen (downstream only).
    pub max_sessions: u32,
}

impl Seen {
    pub fn missing(&self) -> u64 {
        self.gaps
            .values()
            .flatten()
            .map(|(a, b)| u64::from(b - a) + 1)
            .sum()
    }

    /// Values missing here that `source` did produce: lost on the way, not skipped by a
    /// simulator that fell behind on a loaded machine.
    pub fn lost_from(&self, source: &Seen) -> u64 {
        let mut lost = 0;
        for (key, gaps) in &self.gaps {
            let skipped = source.gaps.get(key).map(Vec::as_slice).unwrap_or_default();
            for &(a, b) in gaps {
                lost += (a..=b)
                    .filter(|v| !skipped.iter().any(|&(x, y)| (x..=y).contains(v)))
                    .count() as u64;
            }
        }
        lost
    }
}

/// Follows a uaedge's model events into `seen`: its counters are the tags of devices named
/// `<prefix><n>`; `diag/sessions` gives the upstream's session count.
pub fn watch(rt: &Runtime, prefix: &str) -> Arc<Mutex<Seen>> {
    let table = rt.handle().table();
    let seen = Arc::new(Mutex::new(Seen {
        last: vec![None; table.tags().len()],
        ..Seen::default()
    }));
    let keys: Vec<Option<String>> = table
        .tags()
        .iter()
        .map(|t| {
            t.path
                .device
                .strip_prefix(prefix)
                .map(|n| format!("{n}/{}", t.path.tag))
        })
        .collect();
    let sessions = table.find("diag/sessions");
    let mut events = rt.handle().subscribe(64);
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ModelEvent::Samples(_, batch) = event else {
                continue;
            };
            let mut s = out.lock();
            for sample in batch.iter() {
                let (Some(Value::UInt32(v)), Quality::Good) = (&sample.value, sample.quality)
                else {
                    continue;
                };
                if Some(sample.tag) == sessions {
                    s.max_sessions = s.max_sessions.max(*v);
                    continue;
                }
                let i = sample.tag.index();
                let Some(Some(key)) = keys.get(i) else {
                    continue;
                };
                s.values += 1;
                match s.last[i] {
                    Some(last) if *v == last.wrapping_add(1) => {}
                    Some(last) if *v == last => s.repeated += 1,
                    Some(last) if *v > last => s
                        .gaps
                        .entry(key.clone())
                        .or_default()
                        .push((last + 1, v - 1)),
                    Some(_) => s.backwards += 1,
                    None => {}
                }
                s.last[i] = Some(*v);
            }
        }
    });
    seen
}

pub fn value(rt: &Runtime, path: &str) -> Option<u32> {
    let table = rt.handle().table();
    let state = table.state(table.find(path)?)?;
    match (state.value, state.quality) {
        (Some(Value::UInt32(v)), Quality::Good) => Some(v),
        _ => None,
    }
}

pub fn reconnects(rt: &Runtime) -> u64 {
    let table = rt.handle().table();
    table
        .devices()
        .iter()
        .filter_map(|d| table.device_state(d.id))
        .map(|s| s.reconnects)
        .sum()
}

/// Waits until every counter of the downstream is Good and has moved at least once.
pub async fn flowing(rt: &Runtime, seen: &Arc<Mutex<Seen>>, limit: Duration) {
    let start: Vec<Option<u32>> = seen.lock().last.clone();
    let table = rt.handle().table();
    let counters: Vec<TagId> = table
        .tags()
        .iter()
        .filter(|t| t.path.device.starts_with("up"))
        .map(|t| t.id)
        .collect();
    eventually(limit, "every counter Good and moving", || async {
        let s = seen.lock();
        let all = counters.iter().all(|t| {
            let i = t.index();
            s.last[i].is_some() && s.last[i] != start[i]
        }) && table.states(|st| {
            counters
                .iter()
                .all(|t| st[t.index()].quality == Quality::Good)
        });
        all.then_some(())
    })
    .await;
}
