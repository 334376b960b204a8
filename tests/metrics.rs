//! The health and metrics endpoint, scraped over a real socket while a simulated device runs.

mod common;

use std::time::Duration;

use common::eventually;
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

async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http() {
    let port = common::free_port();
    let config = CONFIG.replace("PORT", &port.to_string());
    let rt = Runtime::start(Config::parse("metrics.yaml", &config).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The endpoint binds in the background; wait until it answers.
    eventually(
        Duration::from_secs(10),
        "metrics endpoint listening",
        || async { TcpStream::connect(addr).await.ok() },
    )
    .await;

    let labels = r#"{device="line1",driver="enip-sim"}"#;
    let body = eventually(Duration::from_secs(10), "samples counted", || async {
        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let in_total = value(
            &response,
            &format!("uaedge_device_samples_in_total{labels}"),
        )?;
        (in_total >= 10.0).then_some(response)
    })
    .await;
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
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

/// With a `history:` section: what the historian holds, receives, drops and how long its
/// commits take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_series() {
    let port = common::free_port();
    let state = tempfile::tempdir().expect("state dir");
    let config = format!(
        "state_dir: {}\nhistory: {{ commit_window: 50ms }}\n{}",
        state.path().display(),
        CONFIG.replace("PORT", &port.to_string())
    );
    let rt = Runtime::start(Config::parse("metrics.yaml", &config).expect("config"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eventually(
        Duration::from_secs(10),
        "metrics endpoint listening",
        || async { TcpStream::connect(addr).await.ok() },
    )
    .await;
    let body = eventually(Duration::from_secs(20), "samples historized", || async {
        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
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
