//! `systemctl reload` (SIGHUP): a config with errors is refused with every error logged and
//! the running config keeps going; a good changed config takes over.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn device(name: &str) -> String {
    format!(
        "  - name: {name}\n    driver: enip-sim\n    poll_interval: 50ms\n    options: {{ seed: 3 }}\n    tags:\n      - {{ name: count, type: uint32, address: \"Count\", options: {{ signal: counter }} }}\n"
    )
}

fn config(devices: &[&str]) -> String {
    let list: String = devices.iter().map(|d| device(d)).collect();
    format!("log: {{ level: info, values: true }}\ndevices:\n{list}")
}

struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Waits for a line containing every needle; panics after `limit`.
    fn until(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needles:?} within {limit:?}"),
            }
        }
    }
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(ok.success());
}

#[test]
fn bad_config_is_refused_and_good_config_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&["press"])).expect("write");
    let (mut child, rx) = common::spawn_uaedge(&path);
    let lines = Lines(rx);
    lines.until(&["device=press", "tag=count"], Duration::from_secs(20));

    // Two mistakes: both are logged with their place, and press keeps running.
    std::fs::write(
        &path,
        config(&["press"]).replace("poll_interval: 50ms", "poll_interval: 5")
            + "  - name: x\n    driver: modbuss\n",
    )
    .expect("write");
    hup(child.id());
    lines.until(
        &[
            "reload refused",
            "config.yaml:5:20: devices[0].poll_interval",
        ],
        Duration::from_secs(10),
    );
    lines.until(
        &["reload refused", "devices[1].driver", "unknown driver"],
        Duration::from_secs(10),
    );
    lines.until(&["device=press", "tag=count"], Duration::from_secs(10));

    // The same good file again: nothing to do.
    std::fs::write(&path, config(&["press"])).expect("write");
    hup(child.id());
    lines.until(&["config unchanged"], Duration::from_secs(10));

    // A device added: the new config takes over and both report.
    std::fs::write(&path, config(&["press", "packer"])).expect("write");
    hup(child.id());
    lines.until(&["config reloaded"], Duration::from_secs(20));
    lines.until(&["device=packer", "tag=count"], Duration::from_secs(20));
    lines.until(&["device=press", "tag=count"], Duration::from_secs(20));

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}
