//! The historian across `kill -9` and restarts, as a plant would meet them: uaedge as a
//! child process, the history read with `uaedge history` (beside the running service, and
//! with none running), a counter whose every step must be there.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{spawn_uaedge, wait_for, KillOnDrop};
use serde_json::Value as Json;

fn config(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"node: {{ name: crash }}
state_dir: {}
history:
  commit_window: 200ms
devices:
  - name: line
    driver: enip-sim
    poll_interval: 100ms
    options:
      seed: 3
      sample_period: 10ms
    tags:
      - name: count
        type: int32
        address: "Count"
        options: {{ signal: counter, start: 0, increment: 1, max: 2000000000 }}
"#,
        dir.display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `uaedge history --format json` of the counter: (time µs, value) per sample.
fn export(config: &Path) -> Result<Vec<(i64, i64)>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_uaedge"))
        .args([
            "history",
            "--tag",
            "line/count",
            "--from",
            "-1h",
            "--format",
            "json",
            "-c",
        ])
        .arg(config)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Json = serde_json::from_str(l).map_err(|e| format!("{e}: {l}"))?;
            Ok((
                v["time_us"].as_i64().ok_or("time_us")?,
                v["value"].as_i64().ok_or("value")?,
            ))
        })
        .collect()
}

/// Steps of 1 within each run of the service; a restart starts the counter again at 0.
fn runs(samples: &[(i64, i64)]) -> Vec<std::ops::RangeInclusive<i64>> {
    let mut runs: Vec<std::ops::RangeInclusive<i64>> = Vec::new();
    for pair in samples.windows(2) {
        let ((t0, a), (t1, b)) = (pair[0], pair[1]);
        assert!(t1 > t0, "times increase: {pair:?}");
        if b != 0 {
            assert_eq!(b, a + 1, "no gap and no repeat within a run: {pair:?}");
        }
    }
    let mut start = samples.first().map(|s| s.1);
    for (i, s) in samples.iter().enumerate() {
        let next_is_restart = samples.get(i + 1).is_none_or(|n| n.1 == 0);
        if next_is_restart {
            if let Some(a) = start.take() {
                runs.push(a..=s.1);
            }
            start = samples.get(i + 1).map(|n| n.1);
        }
    }
    runs
}

#[test]
fn history_survives_kill_9_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());

    // First run: wait until the export (committed samples only) holds 200 steps.
    let (child, _log) = spawn_uaedge(&config);
    let mut child = KillOnDrop(child);
    let committed = wait_for(Duration::from_secs(60), "200 committed samples", || {
        export(&config).ok().filter(|s| s.len() >= 200)
    });
    // What the export saw was committed: a kill -9 cannot take it back.
    child.0.kill().expect("kill -9");
    let _ = child.0.wait();
    let after_crash = export(&config).expect("export with no service running");
    assert!(
        after_crash.len() >= committed.len() && after_crash[..committed.len()] == committed[..],
        "everything committed before the kill is there"
    );
    assert_eq!(runs(&after_crash).len(), 1);

    // Second run: the log of the first is taken up, new samples follow.
    let (child, _log) = spawn_uaedge(&config);
    let mut child = KillOnDrop(child);
    let both = wait_for(Duration::from_secs(60), "the second run's samples", || {
        export(&config)
            .ok()
            .filter(|s| runs(s).len() == 2 && runs(s)[1].end() >= &100)
    });
    assert_eq!(
        both[..after_crash.len()],
        after_crash[..],
        "the first run is intact"
    );
    // A clean stop commits everything the intake has.
    let pid = rustix::process::Pid::from_child(&child.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "{status}");
    let stopped = export(&config).expect("export after a clean stop");
    assert_eq!(stopped[..both.len()], both[..]);
    assert_eq!(runs(&stopped).len(), 2);
}
