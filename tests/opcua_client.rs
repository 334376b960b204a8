//! The OPC UA client driver inside the running runtime, against Python asyncua (a server we
//! did not write): restarts under load, writes, and `uaedge discover` output fed to
//! `uaedge check`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, Peer};
use uaedge::config::Config;
use uaedge::model::DeviceId;
use uaedge::runtime::Runtime;
use uaedge_driver::{Quality, Value};

fn start_server(dir: &Path, port: u16, generation: u32) -> (Peer, u16) {
    let log = dir.join("ua.log");
    let (peer, line) = Peer::python(
        "opcua_server.py",
        &[
            "--port",
            &port.to_string(),
            "--generation",
            &generation.to_string(),
            "--log",
            &log.display().to_string(),
        ],
    );
    (peer, line.parse().expect("port from the server"))
}

fn config(port: u16, pki: &Path, mode: &str) -> String {
    format!(
        r#"devices:
  - name: upstream
    driver: opcua-client
    poll_interval: 100ms
    reconnect: {{ min: 50ms, max: 500ms }}
    options:
      endpoint: "opc.tcp://127.0.0.1:{port}/uaedge/"
      pki_dir: "{}"
      mode: {mode}
      request_timeout: 1s
      keep_alive_interval: 500ms
      publishing_interval: 100ms
    tags:
      - {{ name: line1/generation, type: uint32, address: "ns=2;s=Line1.Generation" }}
      - {{ name: line1/counter, type: int32, address: "ns=2;s=Line1.Counter" }}
      - {{ name: line1/speed, type: float64, address: "/Objects/2:Plant/2:Line1/2:Speed", writable: true }}
"#,
        pki.display()
    )
}

fn state(rt: &Runtime, path: &str) -> (Option<Value>, Quality) {
    let table = rt.handle().table().clone();
    let id = table.find(path).unwrap_or_else(|| panic!("no tag {path}"));
    let s = table.state(id).expect("state");
    (s.value, s.quality)
}

/// Waits until the generation tag shows `generation` and the counter moved twice: values
/// are flowing from this very server process.
async fn flowing(rt: &Runtime, generation: u32) {
    eventually(
        Duration::from_secs(30),
        "values from the new server",
        || async {
            (state(rt, "upstream/line1/generation")
                == (Some(Value::UInt32(generation)), Quality::Good))
                .then_some(())
        },
    )
    .await;
    let first = state(rt, "upstream/line1/counter").0;
    let mut changes = 0;
    let mut last = first;
    eventually(Duration::from_secs(10), "the counter moving", || {
        let now = state(rt, "upstream/line1/counter");
        if now.1 == Quality::Good && now.0 != last {
            changes += 1;
            last = now.0;
        }
        async move { (changes >= 2).then_some(()) }
    })
    .await;
}

async fn restarts(mode: &str, rounds: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut peer, port) = start_server(dir.path(), 0, 0);
    let rt = Runtime::start(
        Config::parse("test.yaml", &config(port, dir.path(), mode)).expect("config"),
    );
    flowing(&rt, 0).await;
    let started = Instant::now();
    for generation in 1..=rounds {
        peer.kill();
        eventually(
            Duration::from_secs(15),
            "tags bad after the server died",
            || async {
                let (v, q) = state(&rt, "upstream/line1/generation");
                // The last value stays, flagged Bad.
                (q.is_bad() && v.is_some()).then_some(())
            },
        )
        .await;
        let (p, _) = start_server(dir.path(), port, generation);
        peer = p;
        flowing(&rt, generation).await;
        let s = rt
            .handle()
            .table()
            .device_state(DeviceId(0))
            .expect("device");
        assert!(s.connected);
        assert_eq!(s.reconnects, generation as u64, "{mode}");
    }
    eprintln!("{mode}: {rounds} restarts in {:?}", started.elapsed());
    // Writes still go through on the last session (a browse-path tag, resolved anew).
    let handle = rt.handle();
    handle
        .write("upstream/line1/speed", &Value::Double(77.5))
        .await
        .expect("write");
    let log = std::fs::read_to_string(dir.path().join("ua.log")).unwrap_or_default();
    assert!(log.contains("WRITE ns=2;i=1001 Double 77.5 Good"), "{log}");
    eventually(Duration::from_secs(5), "the write read back", || async {
        (state(&rt, "upstream/line1/speed").0 == Some(Value::Double(77.5))).then_some(())
    })
    .await;
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_survives_ten_server_restarts_on_the_same_port() {
    restarts("subscription", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_survives_server_restarts_on_the_same_port() {
    restarts("polling", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_prints_tags_that_uaedge_check_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_peer, port) = start_server(dir.path(), 0, 7);
    let endpoint = format!("opc.tcp://127.0.0.1:{port}/uaedge/");
    let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["discover", "opcua", &endpoint, "--root", "/Objects/2:Plant"])
        .output()
        .expect("run uaedge discover");
    let tags = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        out.status.success(),
        "{tags}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tags.contains(
            "name: \"Line1/Speed\", type: float64, address: \"ns=2;i=1001\", writable: true"
        ),
        "{tags}"
    );
    assert!(tags.contains("# skipped Line1/Array"), "{tags}");
    // Pasted under a device, as a user would.
    let indented: String = tags.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "devices:\n  - name: upstream\n    driver: opcua-client\n    poll_interval: 200ms\n    options: {{ endpoint: \"{endpoint}\", pki_dir: \"{}\", mode: polling }}\n{indented}",
        dir.path().display()
    );
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &yaml).expect("write config");
    let check = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .expect("run uaedge check");
    assert!(
        check.status.success(),
        "{yaml}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // And the discovered tags read: every one Good, with the server's values. That took 5
    // to 18 s over five runs of a debug build here (the client makes its RSA key pair
    // first), and CI once passed 20 s: the wait allows a minute.
    let rt = Runtime::start(Config::parse("config.yaml", &yaml).expect("config"));
    eventually(Duration::from_secs(60), "discovered tags good", || async {
        let table = rt.handle().table().clone();
        table
            .states(|s| s.iter().all(|t| t.quality == Quality::Good))
            .then_some(())
    })
    .await;
    assert_eq!(
        state(&rt, "upstream/Line1/Generation").0,
        Some(Value::UInt32(7))
    );
    assert_eq!(
        state(&rt, "upstream/Line1/String").0,
        Some(Value::String("PUMP-07".into()))
    );
    rt.shutdown().await.expect("clean shutdown");
}
