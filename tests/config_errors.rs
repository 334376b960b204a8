//! `uaedge check` on bad configs: every error is reported at once, each with file:line:column
//! and key path, and the exit code is non-zero.

use std::path::PathBuf;
use std::process::Command;

fn check(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run uaedge check");
    let text = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "F");
    (out.status.code().unwrap_or(-1), text)
}

const BAD: &str = r#"node:
  name: gw1
devices:
  - name: plc1
    driver: modbus
    poll_interval: 200ms
    options:
      transport: tcp
      host: 127.0.0.1
      port: 5020
    tags:
      - name: temp
        type: float32
        address: hr:0
      - name: temp
        type: int16
        address: hr:2
      - name: speed
        type: int16
        address: xx:2
      - name: count
        type: int16
        adress: hr:3
      - name: count2
        type: 12
        address: hr:4
      - name: level
        type: uint16
        address: hr:5
        deadband: { percent: 2 }
  - name: plc2
    driver: modbuss
    poll_interval: 5
"#;

#[test]
fn every_error_is_reported_with_file_line_column_and_key_path() {
    let (code, err) = check(BAD);
    assert_eq!(code, 1, "{err}");
    let expected = [
        "F:15:15: devices[0].tags[1].name: duplicate tag path `plc1/temp` (first defined at line 12)",
        "F:20:18: devices[0].tags[2].address: unknown table `xx`",
        "F:23:9: devices[0].tags[3].adress: unknown field `adress`, expected one of",
        "F:25:15: devices[0].tags[4].type: unknown data type `12`, expected one of: bool,",
        "F:30:19: devices[0].tags[5].deadband: a percent deadband needs an engineering range",
        "F:33:20: devices[1].poll_interval: invalid duration `5`",
    ];
    let lines: Vec<&str> = err.lines().collect();
    for want in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "missing `{want}` in:\n{err}"
        );
    }
    assert!(err.contains("F: 6 error(s)"), "{err}");
}

#[test]
fn unknown_driver_lists_the_known_ones() {
    let (code, err) = check("devices:\n  - name: d\n    driver: modbuss\n    tags: []\n");
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "F:3:13: devices[0].driver: unknown driver `modbuss`; known drivers: modbus, profinet-sim, enip-sim"
        ),
        "{err}"
    );
}

#[test]
fn wrong_type_and_unknown_top_level_key() {
    let (code, err) = check("nodes: {}\ndevices:\n  - name: [1]\n    driver: modbus\n");
    assert_eq!(code, 1);
    assert!(err.contains("F:1:1: nodes: unknown field `nodes`"), "{err}");
    let (_, err) = check("devices:\n  - name: [1]\n    driver: modbus\n");
    assert!(
        err.contains("F:2:11: devices[0].name: expected a string"),
        "{err}"
    );
}

/// Anomaly checks are validated with the rest: a limits check whose `hi` is not above
/// `lo`, and a reaction that writes to a read-only tag of another device, each at its key.
#[test]
fn bad_anomaly_checks_are_located() {
    let yaml = r#"devices:
  - name: press
    driver: profinet-sim
    options: { station: press-1 }
    tags:
      - name: pressure
        type: float32
        address: "in:1.1:0"
        checks:
          - { kind: limits, lo: 10, hi: 5 }
          - kind: spike
            window_samples: 50
            threshold: 6
            reaction: { write: { tag: line/speed, value: 0 } }
  - name: line
    driver: enip-sim
    tags:
      - { name: speed, type: float32, address: "Speed" }
"#;
    let (code, err) = check(yaml);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "F:10:41: devices[0].tags[0].checks[0].hi: hi (5) must be greater than lo (10)"
        ),
        "{err}"
    );
    assert!(
        err.contains("F:14:39: devices[0].tags[0].checks[1].reaction.write.tag: reaction tag `line/speed` is not writable (set `writable: true` on it)"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let (code, err) = check("devices:\n  - name: a\n   driver: x\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("F:3:"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["check", "-c", "/nonexistent/uaedge.yaml"])
        .output()
        .expect("run uaedge check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/uaedge.yaml") && err.contains("cannot read config file"),
        "{err}"
    );
}

/// The shipped default and every example must pass `check`: a config we ship that does not
/// load is the worst first impression.
#[test]
fn shipped_configs_pass_check() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("config.example.yaml")];
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    assert!(files.len() >= 2, "expected example configs in examples/");
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
            .args(["check", "-c"])
            .arg(&file)
            .output()
            .expect("run uaedge check");
        assert!(
            out.status.success(),
            "{} does not pass check:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_alarm_condition_keys_are_located() {
    let yaml = r#"devices:
  - name: press
    driver: enip-sim
    tags:
      - name: pressure
        type: float32
        address: "P"
        checks:
          - { kind: limits, hi: 5, severity: 1200 }
"#;
    let (code, err) = check(yaml);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:9:46: devices[0].tags[0].checks[0].severity: severity 1200 is out of range: OPC UA severities go from 1 (low) to 1000 (high)"),
        "{err}"
    );
    let (code, err) = check(&yaml.replace("severity: 1200", "ack: sometimes"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:9:41: devices[0].tags[0].checks[0].ack: unknown variant `sometimes`, expected `required` or `auto`"),
        "{err}"
    );
}

/// `uaedge alarms` on the shipped config: each check with its Part 9 type, severity,
/// acknowledgement rule and NodeIds.
#[test]
fn alarms_lists_each_check_as_an_opcua_condition() {
    let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args(["alarms", "-c"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"))
        .output()
        .expect("run uaedge alarms");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.first().map(Vec::as_slice),
        Some(
            [
                "ALARM",
                "OPC",
                "UA",
                "TYPE",
                "SEVERITY",
                "ACK",
                "CONDITION",
                "SOURCE"
            ]
            .as_slice()
        )
    );
    let row = |alarm: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&alarm))
            .unwrap_or_else(|| panic!("{alarm} missing:\n{text}"))
            .clone()
    };
    let spike = row("press3/hydraulics/pressure/Alarms/spike");
    // The shipped spike asks for an operator (`ack: required`); spikes default to auto.
    assert_eq!(
        spike[1..4],
        ["ExclusiveDeviationAlarmType", "600", "required"]
    );
    assert_eq!(
        spike[4],
        "nsu=urn:uaedge:gateway-01;s=press3/hydraulics/pressure//Condition/spike"
    );
    assert_eq!(
        spike[5],
        "nsu=urn:uaedge:gateway-01;s=press3/hydraulics/pressure"
    );
    let over = row("pack1/motor/current/Alarms/overcurrent");
    assert_eq!(over[1..4], ["ExclusiveLimitAlarmType", "700", "required"]);
    assert_eq!(
        row("pack1/conveyor/speed/Alarms/flatline")[1],
        "OffNormalAlarmType"
    );
    assert_eq!(rows.len(), 5, "{text}");
}

/// The `history:` section and a tag's `history:` key: errors at the key.
#[test]
fn bad_history_keys_are_located() {
    let yaml = r#"history:
  max_bytes: 10KiB
  commit_window: 2m
  retention: 5d
devices:
  - name: press
    driver: enip-sim
    tags:
      - { name: pressure, type: float32, address: "P", history: maybe }
"#;
    let (code, err) = check(yaml);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:4:3: history.retention: unknown field `retention`"),
        "{err}"
    );
    let yaml = yaml.replace("  retention: 5d\n", "");
    let (code, err) = check(&yaml);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "F:2:14: history.max_bytes: max_bytes must be at least 1MiB",
        "F:3:18: history.commit_window: commit_window must be between 10ms and 60s",
        "F:8:65: devices[0].tags[0].history: expected a boolean, found string \"maybe\"",
    ] {
        assert!(err.contains(expected), "{expected} in {err}");
    }
    let (code, err) = check(
        &yaml
            .replace(
                "  max_bytes: 10KiB\n  commit_window: 2m\n",
                "  max_age: 30d\n",
            )
            .replace(", history: maybe", ", history: false"),
    );
    assert_eq!(code, 0, "{err}");
}

/// `users:` is one list for OPC UA and the web console, each user with a role; errors
/// point at the user's key, and `opcua.users` (the older place) may not repeat it.
#[test]
fn bad_users_are_located() {
    let devices = "devices:\n  - name: press\n    driver: enip-sim\n    tags:\n      - { name: p, type: float32, address: \"P\" }\n";
    let yaml = format!(
        r#"users:
  - {{ name: ann, password: pw, role: boss }}
  - {{ name: bob, password: pw, role: operator, write: true }}
  - {{ name: cid, password: "$argon2id$nope" }}
  - {{ name: dan }}
  - {{ name: eve, password: pw }}
  - {{ name: eve, password: pw2, role: admin }}
opcua:
  endpoints: [basic256sha256_sign_encrypt]
  anonymous: off
  users:
    - {{ name: old, password: pw, write: true }}
{devices}"#
    );
    let (code, err) = check(&yaml);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "F:2:38: users[0].role: unknown variant `boss`, expected one of `viewer`, `operator`, `admin`",
        "F:3:55: users[1].write: give `role: operator` (or viewer, admin); `write:` is read only under `opcua.users`",
        "F:4:28: users[2].password: not a valid argon2 hash: it has no salt or no hash",
        "F:5:5: users[3]: user `dan` needs `password`",
        "F:7:5: users[5]: duplicate user `eve`",
        "F:12:7: opcua.users[0]: users are listed once, in the top-level `users:`",
    ] {
        assert!(err.contains(expected), "{expected} in {err}");
    }
    assert!(!err.contains("nobody could log in"), "{err}");

    // Top-level users log in to OPC UA on its encrypted endpoints; `write: true` in the
    // older place still reads as an operator.
    let (code, err) = check(&format!(
        "users:\n  - {{ name: ann, password: pw, role: viewer }}\nopcua:\n  endpoints: [basic256sha256_sign_encrypt]\n  anonymous: off\n{devices}"
    ));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&format!(
        "opcua:\n  endpoints: [basic256sha256_sign_encrypt]\n  anonymous: off\n  users:\n    - {{ name: old, password: pw, write: true }}\n{devices}"
    ));
    assert_eq!(code, 0, "{err}");
    // Users for the web console alone do not need an encrypted OPC UA endpoint while
    // anonymous clients may read; with nobody else to log in, they do.
    let none = "opcua:\n  endpoints: [none]\n  anonymous: ANON\n";
    let users = "users:\n  - { name: ann, password: pw }\n";
    let (code, err) = check(&format!("{users}{}{devices}", none.replace("ANON", "read")));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&format!("{users}{}{devices}", none.replace("ANON", "off")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("users log in only on encrypted endpoints"),
        "{err}"
    );
}

#[test]
fn web_section_errors_are_located() {
    // Off loopback: a login and TLS, never clear text.
    let (code, err) = check("web:\n  listen: 0.0.0.0:8480\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:2:11: web.listen: web.listen 0.0.0.0:8480 is off the loopback interface, which needs a login: add `users:`"),
        "{err}"
    );
    let users = "users:\n  - { name: ann, password: pw, role: viewer }\n";
    let (code, err) = check(&format!(
        "{users}web:\n  listen: 0.0.0.0:8480\n  tls: off\n"
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:5:8: web.tls: tls: off is allowed on the loopback interface only"),
        "{err}"
    );
    let (code, err) = check(&format!("{users}web:\n  listen: 0.0.0.0:8480\n"));
    assert_eq!(code, 0, "{err}");
    let (code, err) =
        check("web:\n  tls: { cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem }\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("web.tls: cannot read /nonexistent/c.pem"),
        "{err}"
    );
    assert!(err.contains("cannot read /nonexistent/k.pem"), "{err}");
    let (code, err) = check("web:\n  tls: maybe\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown tls `maybe`"), "{err}");
    let (code, err) =
        check("web: { listen: 127.0.0.1:9000 }\nmetrics: { listen: 127.0.0.1:9000 }\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("web and metrics both listen on 127.0.0.1:9000"),
        "{err}"
    );
    let (code, err) = check("web: { listen: here }\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("F:1:16: web.listen: invalid socket address"),
        "{err}"
    );
    let (code, err) = check("web: { port: 1 }\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown field `port`"), "{err}");
    // An empty section takes the defaults.
    let (code, err) = check("web:\n");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn exec_devices_are_checked_without_starting_anything() {
    let (code, err) = check(
        r#"devices:
  - name: ext
    driver: exec
    options:
      command: [/nonexistent/driver.py, --fast]
    tags:
      - { name: a, type: int16, address: "" }
  - name: ext2
    driver: exec
    options: { comand: [python3] }
    tags: []
  - name: ext3
    driver: exec
    options: { command: [no-such-driver-in-path], env: { UAEDGE_DEVICE: x } }
    tags: []
"#,
    );
    assert_eq!(code, 1, "{err}");
    for want in [
        "F:7:42: devices[0].tags[0].address: an empty address",
        "F:10:16: devices[1].options.comand: unknown field `comand`",
        "F:14:14: devices[2].options: command: `no-such-driver-in-path` is not an executable in PATH",
    ] {
        assert!(err.lines().any(|l| l.starts_with(want)), "missing `{want}` in:\n{err}");
    }
    let (code, err) = check(
        "devices:\n  - name: ext\n    driver: exec\n    options: { command: [/nonexistent/driver.py] }\n    tags: []\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "F:4:14: devices[0].options: command: `/nonexistent/driver.py` cannot be found"
        ),
        "{err}"
    );
}
