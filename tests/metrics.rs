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
