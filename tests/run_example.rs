//! The first command of the README: `uaedge run -c config.example.yaml` shows changing values
//! from every simulated device, and SIGTERM stops it cleanly within 2 s.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn example_config_runs_logs_every_device_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::example_config(dir.path());
    let (mut child, rx) = common::spawn_uaedge(&config);

    // Two changing values per device: proof that data flows, not just one initial read.
    let mut seen = std::collections::HashMap::<&str, Vec<String>>::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().filter(|v| v.len() >= 2).count() < 2 {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no values from every device within 30 s: {seen:?}"));
        for device in ["press3", "pack1"] {
            if line.contains(&format!("device={device} tag=hydraulics/pressure"))
                || line.contains(&format!("device={device} tag=conveyor/speed"))
            {
                let values = seen.entry(device).or_default();
                let value = line.split("value=").nth(1).unwrap_or_default().to_string();
                if values.last() != Some(&value) {
                    values.push(value);
                }
            }
        }
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let stopped_at = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(2),
            "uaedge did not stop within 2 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received"))
            && rest.iter().any(|l| l.contains("runtime stopped")),
        "{rest:?}"
    );
}
