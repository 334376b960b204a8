//! Alarms & Conditions benchmark (not a test): 10,000 conditions, 1,000 transitions a
//! second, delivered as OPC UA events to 3 asyncua subscribers with EventFilters.
//!
//! Three uaedge processes, one after the other, on the same 10,000 simulated tags (sines
//! of 20 s, phases spread evenly, polled every 100 ms):
//! - A: no checks;
//! - B: a limits check on every tag (`hi: 5` on an amplitude of 10: Active for a third of
//!   each period, so 2 transitions per tag per 20 s, 1,000/s in all), no event subscriber;
//! - B again with 3 event subscribers on the Server object (where clause: OfType
//!   AlarmConditionType and Severity ≥ 100), counting what they receive.
//!
//! Reports uaedge's CPU (whole process) in each, what the event path adds (B with
//! subscribers − B without), the events/s each subscriber received, and the memory a
//! condition costs ((RSS of B − RSS of A) / 10,000: the check's window, its alarm and
//! Acked tags, the condition's state).
//!
//! Run: `bash tests/setup.sh && cargo bench --bench alarms`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/opcua_support/mod.rs"]
mod opcua_support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, proc_cpu_seconds, proc_status_kib, spawn_uaedge, wait_for, KillOnDrop};
use opcua_support::Scada;
use serde_json::json;
use uaedge::conditions::ConditionBook;
use uaedge::config::Config;

const TAGS: usize = 10_000;
/// Event subscribers (`ALARMS_SUBSCRIBERS` overrides).
const SUBSCRIBERS: usize = 3;
const WINDOW: Duration = Duration::from_secs(20);

fn config(dir: &Path, port: u16, checks: bool) -> String {
    let mut yaml = format!(
        "node: {{ name: bench }}\nstate_dir: {}\nopcua:\n  listen: 127.0.0.1:{port}\n  endpoints: [none]\n  anonymous: read\ndevices:\n  - name: bench\n    driver: enip-sim\n    poll_interval: 100ms\n    options: {{ seed: 7 }}\n    tags:\n",
        dir.join("state").display()
    );
    for i in 0..TAGS {
        let phase = 360.0 * i as f64 / TAGS as f64;
        let check = if checks {
            ", checks: [{ kind: limits, hi: 5, ack: auto }]"
        } else {
            ""
        };
        let _ = writeln!(
            yaml,
            "      - {{ name: t{i:05}, type: float32, address: \"Tag_{i}\", options: {{ signal: sine, amplitude: 10, period: 20s, phase: {phase:.3} }}{check} }}"
        );
    }
    yaml
}

fn cpu_percent(pid: u32, window: Duration) -> f64 {
    let (c0, t0) = (proc_cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    100.0 * (proc_cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64()
}

struct Run {
    child: KillOnDrop,
    url: String,
    _dir: tempfile::TempDir,
}

fn start(checks: bool) -> Run {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config(dir.path(), port, checks)).expect("write config");
    let (child, _log) = spawn_uaedge(&file);
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let mut probe = Scada::start();
    wait_for(Duration::from_secs(120), "the OPC UA server", || {
        let r = probe.call(json!({"op": "connect", "url": url, "security": "None"}));
        r.get("error").is_none().then_some(())
    });
    probe.ok(json!({"op": "disconnect"}));
    // Past start-up, with every window full.
    std::thread::sleep(Duration::from_secs(10));
    Run {
        child: KillOnDrop(child),
        url,
        _dir: dir,
    }
}

fn rss_kib(run: &Run) -> u64 {
    proc_status_kib(run.child.0.id(), "VmRSS").unwrap_or(0)
}

/// Counts the bytes live on the heap, to weigh the condition book itself.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the layout is the caller's, passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Heap bytes of a ConditionBook of `TAGS` conditions, their definitions included, per
/// condition: what dropping it frees.
fn book_bytes_per_condition() -> f64 {
    let dir = std::env::temp_dir();
    let mut config =
        Config::parse("bench.yaml", &config(&dir, 4840, true)).unwrap_or_else(|e| panic!("{e}"));
    let defs = std::mem::take(&mut config.conditions);
    drop(config);
    let book = ConditionBook::new(defs, &Default::default(), None);
    let before = live();
    drop(book);
    (before - live()) as f64 / TAGS as f64
}

fn main() {
    let book_growth = book_bytes_per_condition();
    let a = start(false);
    let rss_a = rss_kib(&a);
    let cpu_a = cpu_percent(a.child.0.id(), WINDOW);
    drop(a);

    let b = start(true);
    let rss_b = rss_kib(&b);
    let cpu_b = cpu_percent(b.child.0.id(), WINDOW);
    let fields = json!([
        [2041, "EventId"],
        [2041, "SourceName"],
        [2041, "Severity"],
        [2915, "ActiveState/Id"],
        [2782, "Retain"]
    ]);
    let filter = json!({"op": "And", "args": [
        {"op": "OfType", "type": 2915},
        {"op": "GreaterThanOrEqual", "field": [2041, "Severity"], "value": ["UInt16", 100]},
    ]});
    let count = std::env::var("ALARMS_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SUBSCRIBERS);
    let mut subscribers: Vec<Scada> = (0..count)
        .map(|_| {
            let mut s = Scada::start();
            s.connect_none(&b.url);
            let r = s.ok(json!({"op": "events", "fields": fields, "where": filter,
                "publishing": 100, "count_only": true, "queue": 10000}));
            assert_eq!(r["status"], "Good", "{r}");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    for s in &mut subscribers {
        s.ok(json!({"op": "event_count"}));
    }
    let transitions = |s: &mut Scada| {
        let v = s.read_one("ns=2;s=/uaedge/Runtime/AlarmTransitions");
        v["value"].as_f64().unwrap_or(f64::NAN)
    };
    let before = transitions(&mut subscribers[0]);
    let t0 = Instant::now();
    let cpu_events = cpu_percent(b.child.0.id(), WINDOW);
    let made = (transitions(&mut subscribers[0]) - before) / t0.elapsed().as_secs_f64();
    let rates: Vec<f64> = subscribers
        .iter_mut()
        .map(|s| {
            let n = s.ok(json!({"op": "event_count"}))["count"]
                .as_u64()
                .unwrap_or(0);
            n as f64 / t0.elapsed().as_secs_f64()
        })
        .collect();
    let rss_events = rss_kib(&b);
    for mut s in subscribers {
        s.ok(json!({"op": "disconnect"}));
    }
    drop(b);

    let per_condition = (rss_b.saturating_sub(rss_a)) as f64 * 1024.0 / TAGS as f64;
    println!("alarms benchmark: {TAGS} tags (sines, 100 ms polls), 2 tokio workers, release build");
    println!(
        "  A, no checks:                         CPU {cpu_a:.1} % of one core, RSS {} MiB",
        rss_a / 1024
    );
    println!(
        "  B, {TAGS} conditions, no subscriber:  CPU {cpu_b:.1} %, RSS {} MiB ({per_condition:.0} bytes a condition over A)",
        rss_b / 1024
    );
    println!(
        "  B with {count} event subscribers:       CPU {cpu_events:.1} % (event path {:.1} % of one core), RSS {} MiB",
        cpu_events - cpu_b,
        rss_events / 1024
    );
    println!(
        "  the condition book (definitions and states): {book_growth:.0} bytes of heap a condition"
    );
    let rates: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "  transitions/s made: {made:.0}; events/s received per subscriber: {}",
        rates.join(", ")
    );
}
