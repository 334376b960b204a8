//! The health and metrics endpoint, scraped over a real socket while a simulated device runs.

mod common;

use std::time::Duration;

use common::{eventually, http as get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uaedge::config::Config;
use uaedge::runtime::Runtime;

const CONFIG: &str = r#"
metrics: { listen: "127.0.0.1:PORT" }
devices:
  - name: line1
    driver: enip-sim
    poll_interval: 50ms
    options: { seed: 7 }
    tags:
      - { name: count, type: uint32, address: "Count", options: { signal: counter } }
      - { name: temp, type: float32, address: "Temp", options: { signal: sine, amplitude: 5, offset: 20, period: 2s } }
"#;

fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Starts uaedge on `CONFIG` with `sections` in front, once its endpoint answers.
async fn start(sections: &str) -> (Runtime, std::net::SocketAddr) {
    let port = common::free_port();
    let config = format!("{sections}{}", CONFIG.replace("PORT", &port.to_string()));
    let rt = Runtime::start(Config::parse("metrics.yaml", &config).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The endpoint binds in the background; wait until it answers.
    eventually(
        Duration::from_secs(10),
        "metrics endpoint listening",
        || async { TcpStream::connect(addr).await.ok() },
    )
    .await;
    (rt, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http() {
    let (rt, addr) = start("").await;

    let labels = r#"{device="line1",driver="enip-sim"}"#;
    let body = eventually(Duration::from_secs(10), "samples counted", || async {
        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        let in_total = value(
            &response,
            &format!("uaedge_device_samples_in_total{labels}"),
        )?;
        (in_total >= 10.0).then_some(response)
    })
    .await;
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        (body.to_ascii_lowercase()).contains("content-type: text/plain; version=0.0.4"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE uaedge_device_samples_in_total counter"),
        "{body}"
    );
    assert_eq!(
        value(&body, &format!("uaedge_device_connected{labels}")),
        Some(1.0)
    );
    assert_eq!(
        value(&body, r#"uaedge_device_tags_bad{device="line1"}"#),
        Some(0.0)
    );
    let reported = value(
        &body,
        &format!("uaedge_device_samples_reported_total{labels}"),
    );
    assert!(reported.is_some_and(|r| r >= 10.0), "{body}");
    // No Sparkplug section: no MQTT series rather than misleading zeros.
    assert!(!body.contains("uaedge_mqtt_connected"), "{body}");
    // No history section: no history series either.
    assert!(!body.contains("uaedge_history_"), "{body}");

    let health = get(addr, "GET /health HTTP/1.1\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 200 OK") && health.ends_with("ok\n"),
        "{health}"
    );
    let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");

    rt.shutdown().await.expect("clean shutdown");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "endpoint still open after shutdown"
    );
}

/// Reads one HTTP/1.1 response with a Content-Length body off a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection closed mid-response: {bytes:?}");
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = (text[..end].lines())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        if bytes.len() >= end + 4 + length {
            return text;
        }
    }
}

/// Connections stay open between requests (a scraper reuses one), a client that never
/// finishes its request head is closed after the header timeout, and neither it nor a
/// crowd of idle connections keeps others from being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_slow_and_idle_clients() {
    let (rt, addr) = start("").await;

    let mut kept = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..3 {
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("send");
        let response = read_response(&mut kept).await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    }

    let opened = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .await
        .expect("send");
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.expect("idle connection"));
    }
    let health = get(addr, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");

    // Both are closed by the 10 s header timeout (hyper's own default is 30 s, so the
    // upper bound tells them apart while leaving room for a loaded machine).
    for (name, stream) in [("silent", &mut silent), ("slow", &mut slow)] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(40), stream.read(&mut buf)).await;
        let after = opened.elapsed();
        match read {
            Ok(Ok(n)) => assert!(
                n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "{name} client got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Ok(Err(_)) => {} // reset: closed as well
            Err(_) => panic!("a {name} client was not closed"),
        }
        assert!(
            after >= Duration::from_secs(9) && after < Duration::from_secs(25),
            "{name} client closed after {after:?}, not by the 10 s header timeout"
        );
    }
    rt.shutdown().await.expect("clean shutdown");
}

/// With a `history:` section: what the historian holds, receives, drops and how long its
/// commits take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_series() {
    let state = tempfile::tempdir().expect("state dir");
    let sections = format!(
        "state_dir: {}\nhistory: {{ commit_window: 50ms }}\n",
        state.path().display()
    );
    let (rt, addr) = start(&sections).await;
    let body = eventually(Duration::from_secs(20), "samples historized", || async {
        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        (value(&response, "uaedge_history_samples")? >= 20.0).then_some(response)
    })
    .await;
    for series in [
        "uaedge_history_bytes",
        "uaedge_history_samples_received_total",
        "uaedge_history_commits_total",
        "uaedge_history_commit_seconds",
        "uaedge_history_oldest_timestamp_seconds",
    ] {
        assert!(
            value(&body, series).is_some_and(|v| v > 0.0),
            "{series}: {body}"
        );
    }
    for series in [
        "uaedge_history_dropped_samples_total",
        "uaedge_history_retention_dropped_samples_total",
        "uaedge_history_commit_failures_total",
    ] {
        assert_eq!(value(&body, series), Some(0.0), "{series}: {body}");
    }
    rt.shutdown().await.expect("clean shutdown");
}

#[path = "sparkplug_support/mod.rs"]
mod sparkplug_support;

/// With a broker: MQTT state, samples the broker acknowledged and the publish latency
/// (publish → PUBACK) show up as series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_series_with_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = sparkplug_support::Broker::start(dir.path());
    let port = common::free_port();
    let config = format!(
        "state_dir: \"{}\"\nsparkplug:\n  broker: mqtt://127.0.0.1:{}\n  group_id: plant\n{}",
        dir.path().join("state").display(),
        broker.port,
        CONFIG.replace("PORT", &port.to_string())
    );
    let rt = Runtime::start(Config::parse("metrics.yaml", &config).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = eventually(Duration::from_secs(20), "published samples", || async {
        let response = match TcpStream::connect(addr).await {
            Ok(_) => get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await,
            Err(_) => return None,
        };
        let published = value(&response, "uaedge_samples_published_total")?;
        let measured = value(&response, "uaedge_publish_latency_seconds_count")?;
        (published >= 10.0 && measured >= 1.0).then_some(response)
    })
    .await;
    assert_eq!(value(&body, "uaedge_mqtt_connected"), Some(1.0), "{body}");
    let sum = value(&body, "uaedge_publish_latency_seconds_sum").expect("latency sum");
    assert!(sum > 0.0 && sum < 60.0, "{body}");
    rt.shutdown().await.expect("clean shutdown");
}
