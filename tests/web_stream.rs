//! The change stream (`GET /api/v1/events`) over a real socket: filtered changes arrive
//! within a poll or two, and a client that stops reading is cut off while the others go
//! on.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

fn config(port: u16) -> String {
    let mut text = format!(
        "web: {{ listen: \"127.0.0.1:{port}\" }}\ndevices:\n  - name: line1\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n      - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n      - {{ name: still, type: int32, address: Still, options: {{ signal: constant, value: 5 }} }}\n  - name: big\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n"
    );
    for i in 0..2_000 {
        text.push_str(&format!(
            "      - {{ name: t{i}, type: int32, address: T{i}, options: {{ signal: counter }} }}\n"
        ));
    }
    text
}

/// Opens the stream at `query` and returns the connection after the response head.
async fn open(addr: std::net::SocketAddr, query: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET /api/v1/events{query} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    (s, String::from_utf8_lossy(&got).into_owned())
}

/// Reads until `text` has arrived (or panics after `limit`); what was read.
async fn read_until(s: &mut TcpStream, text: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut got = String::new();
    let mut buf = vec![0u8; 65536];
    while !got.contains(text) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("`{text}` not seen in {limit:?}; got: {got}"))
            .expect("read");
        assert!(n > 0, "stream closed before `{text}`; got: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_changes_arrive_and_a_stalled_client_is_cut_off() {
    let port = common::free_port();
    let rt = Runtime::start(Config::parse("stream.yaml", &config(port)).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eventually(Duration::from_secs(10), "web server listening", || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;

    let (mut line1, head) = open(addr, "?prefix=line1/count").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    // A stalled client: asks for everything and never reads.
    let (stalled, _) = open(addr, "").await;

    let got = read_until(
        &mut line1,
        "\"path\":\"line1/count\"",
        Duration::from_secs(5),
    )
    .await;
    assert!(got.contains("event: tags"), "{got}");
    assert!(
        !got.contains("big/"),
        "the filter lets only line1/count through: {got}"
    );
    assert!(!got.contains("line1/still"), "{got}");
    // Values keep coming, each change once it is read.
    read_until(&mut line1, "\"quality\":\"Good\"", Duration::from_secs(5)).await;

    // The stalled client is cut off once its queue stayed full; line1's stream goes on.
    let mut stalled = stalled;
    // Let its queue fill while it reads nothing, then drain what the kernel buffered: the
    // stream must have ended (a zero read, a reset, or the chunked body's last chunk).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never cut off"
        );
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) if buf[..n].ends_with(b"0\r\n\r\n") => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the stalled stream is still open and silent"),
        }
    }
    // line1's stream goes on.
    read_until(
        &mut line1,
        "\"path\":\"line1/count\"",
        Duration::from_secs(5),
    )
    .await;

    let answer = http(
        addr,
        "GET /api/v1/events?device=nope HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    rt.shutdown().await.expect("clean shutdown");
}
