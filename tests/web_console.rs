//! The web console in a real browser: Playwright (from PyPI) driving Debian's Chromium
//! headless (both installed by tests/setup.sh) against the `uaedge` binary running the
//! shipped config, with a mosquitto for its Sparkplug node, two users, the pressure spike
//! brought forward to 20 s and a 10,000-tag device added. The browser's steps are in
//! tests/web/console_test.py; a write it makes is then read back over OPC UA by asyncua.
//!
//! Screenshots of every page land in `target/console-screenshots/` (the README's pictures
//! come from there).

mod common;
mod opcua_support;
mod sparkplug_support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{example_config, spawn_uaedge, wait_for, web_python, KillOnDrop};
use opcua_support::Scada;
use serde_json::json;
use sparkplug_support::Broker;

const BULK_TAGS: usize = 10_000;

/// The shipped config with what the browser test needs, and its OPC UA and web ports.
fn config(dir: &std::path::Path, broker: u16) -> (PathBuf, u16, u16) {
    let path = example_config(dir);
    let text = std::fs::read_to_string(&path).expect("read config");
    let spike = "- { kind: spike, tag: hydraulics/pressure, at: 90s, magnitude: 60, every: 5m }";
    for line in [spike, "broker: mqtt://127.0.0.1:1883", "\ndevices:\n"] {
        assert!(text.contains(line), "the example's `{line}` changed");
    }
    let mut bulk = String::from(
        "devices:\n  - name: bulk\n    driver: enip-sim\n    poll_interval: 1s\n    tags:\n",
    );
    for t in 0..BULK_TAGS {
        let _ = writeln!(
            bulk,
            "      - {{ name: t{t}, type: uint32, address: \"Tag_{t}\", history: false, options: {{ signal: constant, value: {t} }} }}"
        );
    }
    let (opcua, web) = (listen_port(&text, "opcua"), listen_port(&text, "web"));
    let text = text
        .replace(spike, &spike.replace("at: 90s", "at: 20s"))
        .replace(
            "broker: mqtt://127.0.0.1:1883",
            &format!("broker: mqtt://127.0.0.1:{broker}"),
        )
        .replace("\ndevices:\n", &format!("\n{bulk}"))
        + "users:\n  - { name: ann, password: s3cret-op, role: operator }\n  - { name: vic, password: v1ewer, role: viewer }\n  - { name: ada, password: adm1n, role: admin }\n";
    std::fs::write(&path, text).expect("write config");
    (path, opcua, web)
}

/// The port of the first `listen:` in the top-level `section`.
fn listen_port(text: &str, section: &str) -> u16 {
    let at = text
        .find(&format!("\n{section}:\n"))
        .unwrap_or_else(|| panic!("no `{section}:` section"));
    text[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen: 127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no loopback listen in `{section}:`"))
}

#[test]
fn the_console_in_chromium_logs_in_shows_live_values_writes_and_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(dir.path());
    let (path, opcua, web) = config(dir.path(), broker.port);
    let (child, lines) = spawn_uaedge(&path);
    let _child = KillOnDrop(child);
    wait_for(Duration::from_secs(60), "the web server", || {
        lines
            .try_iter()
            .find(|l| l.contains("web server listening"))
            .map(|_| ())
    });

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web/console_test.py");
    let write_value = "175.5";
    let out = Command::new(web_python())
        .arg(script)
        .args(["--url", &format!("http://127.0.0.1:{web}")])
        .arg("--artifacts")
        .arg(&artifacts)
        .args(["--operator", "ann:s3cret-op", "--viewer", "vic:v1ewer"])
        .args(["--admin", "ada:adm1n"])
        .args(["--write-tag", "press3/pressure_setpoint"])
        .args(["--write-value", write_value])
        .args(["--live-tag", "press3/ram/position"])
        .args([
            "--bulk-device",
            "bulk",
            "--bulk-tags",
            &BULK_TAGS.to_string(),
        ])
        .args(["--alarm", "press3/hydraulics/pressure/Alarms/spike"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the browser test");
    let log: Vec<String> = lines.try_iter().collect();
    assert!(
        out.status.success(),
        "{}{}\nuaedge said:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.join("\n")
    );
    for page in ["dashboard", "tag", "write", "device", "alarms", "config"] {
        assert!(
            artifacts.join(format!("{page}.png")).exists(),
            "no screenshot of the {page} page"
        );
    }

    // The value written in the browser, as an independent OPC UA client reads it.
    let mut scada = Scada::start();
    scada.connect_none(&format!("opc.tcp://127.0.0.1:{opcua}/"));
    let value = scada.read_one("ns=2;s=press3/pressure_setpoint");
    assert_eq!(
        (value["status"].clone(), value["value"].as_f64()),
        (json!("Good"), Some(175.5)),
        "{value}"
    );
}
