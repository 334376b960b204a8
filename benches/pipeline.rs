//! Core pipeline benchmark (not a test): samples per second from simulated drivers through
//! the router (scaling, report-by-exception, the tag table) to a subscriber, in process via
//! `Runtime::start`, for three set-ups:
//! - `router`: the router's own subscribers only;
//! - `sparkplug, no broker`: plus the Sparkplug edge node with nobody at the broker address,
//!   so every sample is encoded and journaled in redb (store-and-forward);
//! - `sparkplug → mosquitto`: plus publishing at QoS 1 to a real mosquitto, samples leaving
//!   the journal on PUBACK.
//!
//! Each set-up is swept over offered loads (10 to 160 enip-sim devices of 2,500 tags, every
//! tag a counter that changes every 100 ms poll, so report-by-exception passes every
//! reading: 250,000 to 4,000,000 samples/s offered). A simulator
//! that falls behind emits every missed step at its next read, so an overloaded pipeline's
//! backlog grows without end; a step stops once delivery falls under 90 % of the offered
//! load (it reports the rate it still reached) or the process passes 3 GB, and the sweep
//! of that set-up ends there. The highest sustained figure is the pipeline's throughput.
//!
//! Run: `bash tests/setup.sh && cargo bench --bench pipeline` (about 3 minutes).
//! To look at one part of the sweep: `PIPELINE_SETUPS=router,journal,mosquitto` picks
//! set-ups and `PIPELINE_DEVICES=40,80` picks steps (each step still stops its set-up's
//! sweep once it saturates). `PIPELINE_WINDOW=30` lengthens the window (seconds) and
//! `PIPELINE_STORE_MAX=64MiB` shrinks the journal's `max_bytes` (1GiB), so that an
//! overloaded step reaches the journal's byte bound and shows its drop-oldest phase.
//! A slow or contended disk (each commit is two fsyncs; the journal commits on a thread of
//! its own while the edge node gathers the next window) is reproduced by delaying fsync,
//! e.g. by 300 ms:
//! `strace -f --seccomp-bpf -o /dev/null -e trace=fsync,fdatasync
//! -e inject=fsync,fdatasync:delay_exit=300000 target/release/deps/pipeline-<hash>`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/sparkplug_support/mod.rs"]
mod sparkplug_support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uaedge::bus::ModelEvent;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

/// Tags per device: steps add devices, because a simulator's config check is quadratic in
/// its own tag count (40,000 tags on one device take minutes to load).
const TAGS_PER_DEVICE: usize = 2_500;
const PERIOD_MS: u64 = 100;
const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(6);
const STORE_MAX: &str = "1GiB";
const RSS_LIMIT: u64 = 3 << 30;

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Router,
    JournalOnly,
    Mosquitto,
}

impl Setup {
    fn key(self) -> &'static str {
        match self {
            Setup::Router => "router",
            Setup::JournalOnly => "journal",
            Setup::Mosquitto => "mosquitto",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Setup::Router => "router",
            Setup::JournalOnly => "sparkplug, no broker (encode + journal)",
            Setup::Mosquitto => "sparkplug → mosquitto (encode + journal + publish)",
        }
    }
}

fn config(
    devices: usize,
    state: &std::path::Path,
    sparkplug: Option<u16>,
    store_max: &str,
) -> String {
    let mut y = format!(
        "node: {{ name: bench }}\nstate_dir: {}\nlog: {{ level: warn, values: false }}\n",
        state.display()
    );
    if let Some(port) = sparkplug {
        let _ = write!(
            y,
            "sparkplug:\n  broker: mqtt://127.0.0.1:{port}\n  group_id: bench\n  \
             store: {{ path: sparkplug.redb, max_bytes: {store_max}, commit_window: 100ms }}\n"
        );
    }
    y.push_str("devices:\n");
    for d in 0..devices {
        let _ = write!(
            y,
            "  - name: d{d}\n    driver: enip-sim\n    poll_interval: {PERIOD_MS}ms\n    options: {{ seed: {d} }}\n    tags:\n"
        );
        for t in 0..TAGS_PER_DEVICE {
            let _ = writeln!(
                y,
                "      - {{ name: t{t}, type: uint32, address: \"Tag_{t}\", options: {{ signal: counter }} }}"
            );
        }
    }
    y
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of this process in seconds.
fn cpu_seconds() -> f64 {
    common::proc_cpu_seconds(std::process::id())
}

struct Outcome {
    offered: f64,
    delivered: f64,
    cpu_pct: f64,
    rss_mb: f64,
    /// Journal backlog (MB) and records dropped by its bounds, as the node last reported
    /// them (its status is refreshed every tick, so a commit in progress leaves it stale).
    journal: Option<(f64, u64)>,
    stopped: Option<&'static str>,
}

async fn step(
    setup: Setup,
    devices: usize,
    broker_port: Option<u16>,
    window: Duration,
    store_max: &str,
) -> Outcome {
    let state = tempfile::tempdir().expect("state dir");
    let sparkplug = match setup {
        Setup::Router => None,
        // Nobody listens on a port just freed: the node buffers everything in its journal.
        Setup::JournalOnly => Some(common::free_port()),
        Setup::Mosquitto => broker_port,
    };
    let text = config(devices, state.path(), sparkplug, store_max);
    let config = Config::parse("bench.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let runtime = Runtime::start(config);
    let mut events = runtime.handle().subscribe(1024);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let reader = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let ModelEvent::Samples(_, batch) = event {
                counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    });
    let offered = (devices * TAGS_PER_DEVICE) as f64 * 1000.0 / PERIOD_MS as f64;
    tokio::time::sleep(WARMUP).await;
    let (n0, c0, t0) = (count.load(Ordering::Relaxed), cpu_seconds(), Instant::now());
    let mut stopped = None;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if status_kb("VmRSS:") * 1024 > RSS_LIMIT {
            stopped = Some("backlog passed 3 GB");
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let delivered = (count.load(Ordering::Relaxed) - n0) as f64 / secs;
    let cpu_pct = 100.0 * (cpu_seconds() - c0) / secs;
    let rss_mb = status_kb("VmRSS:") as f64 / 1024.0;
    let journal = runtime.handle().sparkplug_status().map(|s| {
        let s = s.snapshot();
        (s.backlog_bytes as f64 / 1e6, s.records_dropped)
    });
    if stopped.is_none() && delivered < 0.9 * offered {
        stopped = Some("saturated");
    }
    if let Err(e) = runtime.shutdown().await {
        eprintln!("  (shutdown: {e})");
    }
    reader.abort();
    Outcome {
        offered,
        delivered,
        cpu_pct,
        rss_mb,
        journal,
        stopped,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(bench());
}

/// A comma-separated environment variable, or `all` when it is unset.
fn pick<T: Copy>(var: &str, all: &[T], parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    match std::env::var(var) {
        Ok(v) => v
            .split(',')
            .map(|x| parse(x.trim()).unwrap_or_else(|| panic!("{var}: unknown value {x:?}")))
            .collect(),
        Err(_) => all.to_vec(),
    }
}

async fn bench() {
    let all = [Setup::Router, Setup::JournalOnly, Setup::Mosquitto];
    let setups = pick("PIPELINE_SETUPS", &all, |x| {
        all.iter().copied().find(|s| s.key() == x)
    });
    let steps = pick("PIPELINE_DEVICES", &[10, 20, 40, 80, 160], |x| {
        x.parse().ok()
    });
    let window = std::env::var("PIPELINE_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(WINDOW, Duration::from_secs);
    let store_max = std::env::var("PIPELINE_STORE_MAX").unwrap_or_else(|_| STORE_MAX.into());
    let broker_dir = tempfile::tempdir().expect("broker dir");
    let broker = sparkplug_support::Broker::start(broker_dir.path());
    println!(
        "pipeline: enip-sim devices of {TAGS_PER_DEVICE} tags, counters changing every {PERIOD_MS} ms poll; \
         {WARMUP:?} warm-up, {window:?} window per step; journal max_bytes {store_max}; \
         CPU is this whole process (2 workers)"
    );
    println!(
        "{:<52} {:>12} {:>14} {:>8} {:>9} {:>11} {:>9}",
        "set-up", "offered/s", "delivered/s", "CPU %", "RSS MB", "journal MB", "dropped"
    );
    for &setup in &setups {
        let mut best: f64 = 0.0;
        for &devices in &steps {
            let o = step(setup, devices, Some(broker.port), window, &store_max).await;
            let (journal_mb, dropped) = match o.journal {
                Some((mb, d)) => (format!("{mb:.0}"), d.to_string()),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<52} {:>12.0} {:>14.0} {:>8.0} {:>9.0} {:>11} {:>9}{}",
                setup.name(),
                o.offered,
                o.delivered,
                o.cpu_pct,
                o.rss_mb,
                journal_mb,
                dropped,
                o.stopped.map(|s| format!("  {s}")).unwrap_or_default()
            );
            if o.stopped.is_some() {
                best = best.max(o.delivered);
                break;
            }
            best = best.max(o.delivered);
        }
        println!(
            "{:<52} highest delivered: {best:.0} samples/s",
            setup.name()
        );
    }
}
