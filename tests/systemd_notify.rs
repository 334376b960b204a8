//! sd_notify as systemd sees it: a datagram socket stands in for NOTIFY_SOCKET and must
//! receive READY=1 after start, WATCHDOG=1 pings while running, STOPPING=1 on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args([
            "run",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"),
        ])
        .env("NOTIFY_SOCKET", &path)
        // 400 ms watchdog: uaedge pings every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start uaedge");

    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    let pings = |m: &[String]| m.iter().filter(|l| l.contains("WATCHDOG=1")).count();
    while Instant::now() < deadline && pings(&messages) < 3 {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    let first = messages.first().cloned().unwrap_or_default();
    assert!(
        first.contains("READY=1") && first.contains("STATUS=running"),
        "{messages:?}"
    );
    assert!(pings(&messages) >= 3, "{messages:?}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stopping = false;
    while Instant::now() < deadline && !stopping {
        if let Ok(n) = socket.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
        }
    }
    let status = child.wait().expect("wait");
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    assert!(status.success(), "{status:?}");
}
