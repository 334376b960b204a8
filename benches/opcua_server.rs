//! OPC UA server benchmark (not a test): uaedge in-process with 10,000 simulated tags
//! polled every 100 ms, against the asyncua client of the interop tests.
//!
//! Reports:
//! - one Read of 10,000 nodes: round trip as the client sees it (includes asyncua's own
//!   Python encoding and decoding) and the CPU time uaedge spent on it;
//! - uaedge's CPU (whole process: simulated device, router, server) with no client, and
//!   with 10,000 monitored items at a 100 ms sampling interval, each tag changing once a
//!   second (10,000 notifications/s), plus the notifications the client received.
//!
//! Run: `bash tests/setup.sh && cargo bench --bench opcua_server`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/opcua_support/mod.rs"]
mod opcua_support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use opcua_support::{Edge, Scada};
use serde_json::json;

const TAGS: usize = 10_000;

fn devices() -> String {
    let mut yaml = String::from(
        "  - name: bench\n    driver: enip-sim\n    poll_interval: 100ms\n    options: { seed: 7 }\n    tags:\n",
    );
    for i in 0..TAGS {
        let _ = writeln!(
            yaml,
            "      - {{ name: t{i:05}, type: uint32, address: \"Tag_{i}\", options: {{ signal: counter, period: 1s, start: {i} }} }}"
        );
    }
    yaml
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    common::proc_cpu_seconds(std::process::id())
}

async fn cpu_percent_over(window: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(window).await;
    100.0 * (cpu_seconds() - c0) / t0.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return;
        }
    };
    runtime.block_on(bench());
}

async fn bench() {
    let edge = Edge::start("  endpoints: [none]\n  anonymous: read", &devices()).await;
    let mut scada = Scada::start();
    scada.connect_none(&edge.url);
    let nodes: Vec<String> = (0..TAGS)
        .map(|i| edge.node(&format!("bench/t{i:05}")))
        .collect();
    common::eventually(Duration::from_secs(60), "every tag Good", || {
        let good = scada.read(&nodes).iter().all(|v| v["status"] == "Good");
        async move { good.then_some(()) }
    })
    .await;

    let idle = cpu_percent_over(Duration::from_secs(10)).await;

    let mut round_trips = Vec::new();
    let mut server_cpu = Vec::new();
    for _ in 0..10 {
        let c0 = cpu_seconds();
        let answer = scada.ok(json!({"op": "read", "nodes": nodes}));
        server_cpu.push((cpu_seconds() - c0) * 1000.0);
        let values = answer["values"].as_array().map_or(0, Vec::len);
        assert_eq!(values, TAGS);
        round_trips.push(answer["seconds"].as_f64().unwrap_or(f64::NAN) * 1000.0);
    }
    round_trips.sort_by(f64::total_cmp);
    server_cpu.sort_by(f64::total_cmp);

    let started = Instant::now();
    let r = scada.ok(json!({"op": "subscribe", "nodes": nodes, "publishing": 100,
        "sampling": 100, "count_only": true}));
    let created = r["results"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|x| x.is_u64()).count());
    let create_ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_secs(3)).await;
    scada.ok(json!({"op": "count"}));
    let window = Duration::from_secs(20);
    let t0 = Instant::now();
    let subscribed = cpu_percent_over(window).await;
    let received = scada.ok(json!({"op": "count"}))["count"]
        .as_u64()
        .unwrap_or(0);
    let rate = received as f64 / t0.elapsed().as_secs_f64();

    println!("opcua_server benchmark: {TAGS} tags, enip-sim polled every 100 ms, 2 tokio workers");
    println!(
        "  Read of {TAGS} nodes, client round trip (asyncua): min {:.1} ms, median {:.1} ms",
        round_trips[0],
        round_trips[round_trips.len() / 2]
    );
    println!(
        "  Read of {TAGS} nodes, uaedge CPU time: min {:.1} ms, median {:.1} ms",
        server_cpu[0],
        server_cpu[server_cpu.len() / 2]
    );
    println!("  CreateMonitoredItems: {created} items in {create_ms:.0} ms");
    println!("  uaedge CPU, no client: {idle:.1} % of one core");
    println!(
        "  uaedge CPU, {created} monitored items at 100 ms: {subscribed:.1} % of one core ({rate:.0} notifications/s received)"
    );
    scada.ok(json!({"op": "disconnect"}));
    edge.stop().await;
}
