//! Sparkplug failover benchmark (not a test): the `uaedge` binary with 100,000 simulated
//! counters changing once a second (100 enip-sim devices of 1,000), publishing to two
//! mosquittos A and B listed in `brokers:`. Twenty times, the broker the node is on is
//! stopped (SIGTERM: it closes its connections and exits); an MQTT client of this process
//! on the other broker notes when the NBIRTH arrives, then counts the historical samples
//! (what waited in the journal during the switch) as they drain. The stopped broker comes
//! back before the next round, so the node alternates A → B → A …
//!
//! Reports the death → NBIRTH time (min, p50, p99, max over the switches) and the drain:
//! historical samples per switch and the rate at which they arrived.
//!
//! Run: `cargo bench --bench sparkplug_failover`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/sparkplug_support/mod.rs"]
mod sparkplug_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use sparkplug_support::{Broker, Uaedge};

const DEVICES: usize = 100;
const TAGS_PER_DEVICE: usize = 1_000;
const SWITCHES: usize = 20;
/// Historical samples/s the node may drain at (the store's `drain_rate`): well above what
/// a switch leaves behind, so that the rate measured is the node's and the broker's.
const DRAIN_RATE: u32 = 1_000_000;

fn config(state: &std::path::Path, a: u16, b: u16) -> String {
    format!(
        "state_dir: {}\nlog: {{ level: warn, values: false }}\nsparkplug:\n  group_id: bench\n  reconnect: {{ min: 100ms, max: 1s }}\n  store: {{ drain_rate: {DRAIN_RATE} }}\n  brokers:\n    - url: mqtt://127.0.0.1:{a}\n    - url: mqtt://127.0.0.1:{b}\n{}",
        state.display(),
        common::counter_devices(DEVICES, TAGS_PER_DEVICE)
    )
}

/// What a watcher on one broker saw: when the first NBIRTH arrived, and the historical
/// samples (with the arrival of the first and the last).
#[derive(Default)]
struct Seen {
    nbirth: Option<Instant>,
    historical: u64,
    first_hist: Option<Instant>,
    last_hist: Option<Instant>,
}

/// Subscribes to the node's NBIRTH and DDATA on the broker at `port` until `stop` is set;
/// returns once the subscription is in.
async fn watch(port: u16, round: usize, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicU64>) {
    let mut opts = MqttOptions::new(format!("bench-watch-{round}"), "127.0.0.1", port);
    opts.set_max_packet_size(64 << 20, 64 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 64);
    let _ = client
        .subscribe("spBv1.0/bench/NBIRTH/#", QoS::AtMostOnce)
        .await;
    let _ = client
        .subscribe("spBv1.0/bench/DDATA/#", QoS::AtMostOnce)
        .await;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut subacks = 0;
        while stop.load(Ordering::Relaxed) == 0 {
            match tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
                Ok(Ok(Event::Incoming(Incoming::SubAck(_)))) => {
                    subacks += 1;
                    if subacks == 2 {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                    let now = Instant::now();
                    let mut s = seen.lock().expect("lock");
                    if p.topic.contains("/NBIRTH/") {
                        s.nbirth.get_or_insert(now);
                    } else if let Ok(payload) = uaedge::sparkplug::codec::decode(&p.payload) {
                        let n = payload
                            .metrics
                            .iter()
                            .filter(|m| m.is_historical == Some(true))
                            .count() as u64;
                        if n > 0 {
                            s.historical += n;
                            s.first_hist.get_or_insert(now);
                            s.last_hist = Some(now);
                        }
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let _ = client.disconnect().await;
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() {
    let rt = common::tokio_rt();
    let dir = tempfile::tempdir().expect("dir");
    let mut brokers = ["a", "b"].map(|d| {
        let path = dir.path().join(d);
        std::fs::create_dir_all(&path).expect("dir");
        Broker::start(&path)
    });
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        config(&dir.path().join("state"), brokers[0].port, brokers[1].port),
    )
    .expect("write config");
    // Watching A before the node starts: NBIRTH is not retained.
    let first = Arc::new(Mutex::new(Seen::default()));
    let stop_first = Arc::new(AtomicU64::new(0));
    rt.block_on(watch(brokers[0].port, 0, first.clone(), stop_first.clone()));
    let _node = Uaedge::start(&file);
    // Born on A, every device read a few times.
    let started = Instant::now();
    while first.lock().expect("lock").nbirth.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no NBIRTH on A"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_first.store(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(10));

    let mut on = 0;
    let mut switch_ms = Vec::new();
    let mut drained = Vec::new();
    for round in 1..=SWITCHES {
        let next = 1 - on;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicU64::new(0));
        rt.block_on(watch(brokers[next].port, round, seen.clone(), stop.clone()));
        let death = Instant::now();
        brokers[on].stop();
        let born = loop {
            if let Some(t) = seen.lock().expect("lock").nbirth {
                break t;
            }
            assert!(
                death.elapsed() < Duration::from_secs(60),
                "round {round}: no NBIRTH on the next broker"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        switch_ms.push(born.duration_since(death).as_secs_f64() * 1e3);
        // The backlog drains; done once no historical sample came for a second.
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let s = seen.lock().expect("lock");
            let quiet = s
                .last_hist
                .is_none_or(|t| t.elapsed() > Duration::from_secs(1));
            if quiet && born.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        {
            let s = seen.lock().expect("lock");
            let span = match (s.first_hist, s.last_hist) {
                (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
                _ => 0.0,
            };
            drained.push((s.historical, span));
        }
        stop.store(1, Ordering::Relaxed);
        brokers[on].restart();
        std::thread::sleep(Duration::from_secs(3));
        on = next;
    }

    let mut sorted = switch_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let samples: u64 = drained.iter().map(|d| d.0).sum();
    let span: f64 = drained.iter().map(|d| d.1).sum();
    let per_switch: Vec<u64> = drained.iter().map(|d| d.0).collect();
    println!(
        "sparkplug failover benchmark: {} samples/s ({DEVICES} enip-sim devices of {TAGS_PER_DEVICE} counters), two mosquittos, {SWITCHES} switches, uaedge {}",
        DEVICES * TAGS_PER_DEVICE,
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  broker death → NBIRTH on the other: min {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        sorted[0],
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1]
    );
    println!(
        "  drained after each switch (historical samples): {per_switch:?}; {samples} in all over {span:.2} s of draining: {:.0} samples/s",
        samples as f64 / span.max(1e-9)
    );
}
