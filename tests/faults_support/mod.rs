//! Plumbing for the fault suite: the `uaedge` binary under a wrapper (a file size limit, a
//! faked wall clock) with its log collected, its resident memory, its /metrics, and the
//! checks on a counter's values that the store-and-forward promise implies.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sparkplug_support::{Received, Uaedge};

/// How long the long-running faults (broker flapping) last: 90 s unless
/// `UAEDGE_FAULT_SECS` says otherwise (e.g. 600 for the soak version).
pub fn fault_secs() -> u64 {
    std::env::var("UAEDGE_FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

/// A small deterministic generator, so a failing run can be repeated with the same pattern
/// of faults (the seed is printed).
pub struct Lcg(pub u64);

impl Lcg {
    /// A value in `lo..hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

/// How the child is started.
#[derive(Default)]
pub struct Launch {
    /// Run under libfaketime, reading its offset from this file on every clock read.
    pub faketime_file: Option<PathBuf>,
    /// Ignore SIGXFSZ, so a file size limit set later (with `prlimit`) makes writes fail with
    /// EFBIG, as a full disk makes them fail with ENOSPC, instead of killing the process.
    pub ignore_sigxfsz: bool,
}

/// A running `uaedge run -c config`, its log lines collected; SIGKILLed when dropped.
pub struct Node {
    pub proc: Uaedge,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// libfaketime's preload library, from the Debian package `libfaketime`.
pub fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.exists());
    found.expect("libfaketime.so.1 not found: run tests/setup.sh (installs `faketime`)")
}

impl Node {
    pub fn start(config: &Path, launch: Launch) -> Node {
        let bin = env!("CARGO_BIN_EXE_uaedge");
        let mut cmd = if launch.ignore_sigxfsz {
            // An ignored signal stays ignored across exec, and exec keeps the pid.
            let mut c = Command::new("bash");
            c.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\"", bin]);
            c
        } else {
            Command::new(bin)
        };
        cmd.args(["run", "-c"]).arg(config).env("RUST_LOG", "info");
        if let Some(file) = &launch.faketime_file {
            cmd.env("LD_PRELOAD", libfaketime())
                .env("FAKETIME_TIMESTAMP_FILE", file)
                .env("FAKETIME_NO_CACHE", "1")
                // Timers and timeouts run on the monotonic clock, which a wall clock jump
                // must not move.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                // The same, as libfaketime before 0.9.8 spelled it.
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start uaedge");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("uaedge: {line}");
                sink.lock().expect("lock").push(line);
            }
        });
        Node {
            proc: Uaedge { child },
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Panics if the process has exited.
    pub fn assert_alive(&mut self) {
        let status = self.proc.child.try_wait().expect("try_wait");
        assert!(status.is_none(), "uaedge exited: {status:?}");
    }

    /// Resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        crate::common::proc_status_kib(self.pid(), "VmRSS").expect("VmRSS in /proc/<pid>/status")
    }

    /// Log lines containing `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

/// Sets the child's file size limit (soft; the hard limit stays unlimited), as `prlimit`
/// from util-linux does to a running process. `None` lifts it.
pub fn set_fsize_limit(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
}

/// The /metrics body of a node's `metrics:` endpoint.
pub fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of one series (`name{labels}`) in a /metrics body.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The values from `from` to `through` that never arrived.
pub fn missing(all: &[Received], from: u64, through: u64) -> Vec<u64> {
    let have: std::collections::HashSet<u64> = all.iter().map(|r| r.value).collect();
    (from..=through).filter(|v| !have.contains(v)).collect()
}

/// The order the promise gives: within one session live DDATA values never go back, and the
/// backlog drains oldest first, so historical values never go back either. A value that
/// arrives again is a redelivery (delivery is at least once, and the broker redelivers to
/// the host what it had not acknowledged when the broker stopped), not a reordering, so only
/// first arrivals count. DBIRTH values are left out: after a device comes back, its DBIRTH
/// carries the newest value while an older reading can still follow as live DDATA (seen
/// here: DBIRTH 21, then DDATA 20), which is the Sparkplug publisher's to fix.
pub fn assert_order_per_session(all: &[Received]) {
    let sessions = all.iter().map(|r| r.session).max().unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    let first: Vec<&Received> = all.iter().filter(|r| seen.insert(r.value)).collect();
    for s in 0..=sessions {
        for historical in [false, true] {
            let vals: Vec<u64> = first
                .iter()
                .filter(|r| r.session == s && r.historical == historical && !r.birth)
                .map(|r| r.value)
                .collect();
            if let Some(w) = vals.windows(2).find(|w| w[1] < w[0]) {
                panic!(
                    "session {s}: {} values out of order: {} then {}",
                    if historical { "historical" } else { "live" },
                    w[0],
                    w[1]
                );
            }
        }
    }
}

/// A short description of what arrived, for failure messages.
pub fn describe(all: &[Received]) -> String {
    let max = all.iter().map(|r| r.value).max().unwrap_or(0);
    let min = all.iter().map(|r| r.value).min().unwrap_or(0);
    let gaps = missing(all, min, max);
    format!(
        "{} values {min}..={max}, {} historical, {} sessions, missing {} e.g. {:?}",
        all.len(),
        all.iter().filter(|r| r.historical).count(),
        all.iter().map(|r| r.session).max().unwrap_or(0),
        gaps.len(),
        &gaps[..gaps.len().min(30)]
    )
}

/// `tests/interop/modbus_counter.py`: a pymodbus device whose listener stops and starts on
/// command, in-process, so a hundred restarts take seconds rather than a hundred
/// interpreter starts. Killed when dropped.
pub struct ModbusCounter {
    pub port: u16,
    peer: crate::common::Peer,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ModbusCounter {
    pub fn start() -> ModbusCounter {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/modbus_counter.py");
        let mut child = Command::new(crate::common::python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start modbus_counter.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.trim().parse().ok())
            .expect("modbus_counter.py's port line");
        ModbusCounter {
            port,
            peer: crate::common::Peer { child },
            stdin,
            lines,
        }
    }

    fn command(&mut self, cmd: &str, answer: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to modbus_counter.py");
        self.stdin.flush().expect("flush");
        let line = self
            .lines
            .next()
            .and_then(Result::ok)
            .expect("modbus_counter.py answered");
        assert!(line.starts_with(answer), "{cmd}: {line}");
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        self.command("stop", "stopped");
    }

    /// Listens again on the same port.
    pub fn start_again(&mut self) {
        self.command("start", "started");
    }
}
