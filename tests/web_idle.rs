//! A thousand clients that connect to the web server and say nothing: each costs little,
//! the server still answers others and the devices are still read, connections past the
//! cap are told 503 at once, and the idle ones are closed by the server within its
//! header timeout.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, http_response, proc_status_kib};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use uaedge::config::Config;
use uaedge::runtime::Runtime;
use uaedge::web::cap::MAX_CONNECTIONS;
use uaedge::web::HEADER_READ_TIMEOUT;

const IDLE: usize = 1000;

fn samples_in(rt: &Runtime) -> u64 {
    let table = rt.handle().table();
    table
        .devices()
        .iter()
        .filter_map(|d| table.device_state(d.id))
        .map(|s| s.samples_in)
        .sum()
}

/// What the server sends on `stream` within `limit` (until it closes), as text; `None`
/// when it neither sent nor closed.
async fn answer(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_cost_little_and_leave_by_themselves() {
    let port = common::free_port();
    let mut text = format!(
        "web: {{ listen: \"127.0.0.1:{port}\" }}\ndevices:\n  - name: line\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n"
    );
    for i in 0..100 {
        text.push_str(&format!(
            "      - {{ name: t{i}, type: uint32, address: T{i}, options: {{ signal: counter }} }}\n"
        ));
    }
    let rt = Runtime::start(Config::parse("idle.yaml", &text).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let status = "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    eventually(Duration::from_secs(10), "the web server", || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;
    // One request first, so the server's own first-use allocations are not counted.
    assert_eq!(http_response(addr, status).await.0, 200);
    let rss_before = proc_status_kib(std::process::id(), "VmRSS").expect("rss");

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Accepted and held by the server, not just queued by the kernel.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Past the cap, a connection is told so at once. Twenty more than the slots left: the
    // last twenty are past it whatever finished meanwhile.
    let spare = MAX_CONNECTIONS - IDLE;
    let mut extra = Vec::new();
    for _ in 0..spare + 40 {
        extra.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut busy = 0;
    for stream in extra.iter_mut().rev().take(20) {
        if let Some(a) = answer(stream, Duration::from_secs(2)).await {
            if a.starts_with("HTTP/1.1 503") && a.contains("\"error\":\"busy\"") {
                busy += 1;
            }
        }
    }
    assert_eq!(busy, 20, "the 20 connections past the cap are answered 503");
    drop(extra);

    let rss_idle = proc_status_kib(std::process::id(), "VmRSS").expect("rss");
    let grown_kib = rss_idle.saturating_sub(rss_before);
    eprintln!("{IDLE} idle connections: {grown_kib} KiB more (both ends, one process)");
    assert!(
        grown_kib < 64 * 1024,
        "{IDLE} idle connections took {grown_kib} KiB"
    );

    // The server answers others, and the device is still read.
    let before = samples_in(&rt);
    // Once the extra connections' slots are back (the server notices their close).
    eventually(
        Duration::from_secs(5),
        "an answer beside the idle clients",
        || async { (http_response(addr, status).await.0 == 200).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "samples while idle clients wait",
        || async { (samples_in(&rt) >= before + 500).then_some(()) },
    )
    .await;

    // The idle ones are closed by the server: none outlives the header timeout by much.
    let mut closed = 0;
    for stream in &mut idle {
        let left = (HEADER_READ_TIMEOUT + Duration::from_secs(5)).saturating_sub(opened.elapsed());
        if answer(stream, left).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, IDLE, "every idle connection closed by the server");
    assert_eq!(http_response(addr, status).await.0, 200);
    rt.shutdown().await.expect("clean shutdown");
}
