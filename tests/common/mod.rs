//! Shared test plumbing: waiting on conditions with a deadline (never a bare sleep), the
//! Python and Node.js peers, child processes that die with the test.
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The blocking twin of [`eventually`], for tests that drive child processes.
/// Like [`wait_for`], but `None` on timeout, so the caller can say what it saw.
pub fn eventually_sync<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The virtualenv Python that `tests/setup.sh` provisions with the interop peers.
pub fn python() -> PathBuf {
    venv_python("UAEDGE_TEST_PYTHON", ".build/venv")
}

/// A venv's Python: `var` names it, else `venv` in the checkout; it must exist.
fn venv_python(var: &str, venv: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(venv)
            .join("bin/python")
    });
    assert!(
        path.exists(),
        "{} not found: run `bash tests/setup.sh` (or the README's test command) first",
        path.display()
    );
    path
}

/// Node.js for the node-opcua peer: `UAEDGE_TEST_NODE`, else the one `tests/setup.sh`
/// picked (the machine's when new enough, else Node.js 22 from PyPI).
pub fn node() -> PathBuf {
    std::env::var_os("UAEDGE_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".build/node/bin/node"))
}

/// The node_modules folder that `tests/setup.sh` installs from tests/interop/node's lock
/// file, for NODE_PATH.
pub fn node_modules() -> PathBuf {
    let path = std::env::var_os("UAEDGE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".build/node/node_modules")
        });
    assert!(
        path.join("node-opcua-client").exists(),
        "node-opcua not found in {}: run `bash tests/setup.sh` (or the README's test command) first",
        path.display()
    );
    path
}

/// A child process killed when dropped, so a failing test leaves no stray peer behind.
pub struct Peer {
    pub child: Child,
}

impl Peer {
    /// Starts a Python script from tests/interop and waits for its first stdout line, which
    /// the scripts use to report readiness (e.g. the port they bound).
    pub fn python(script: &str, args: &[&str]) -> (Peer, String) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(script);
        let mut child = Command::new(python())
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python peer");
        let stdout = child.stdout.take().expect("peer stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read peer's ready line");
        assert!(!line.is_empty(), "peer {script} exited before it was ready");
        (Peer { child }, line.trim().to_string())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The shipped `config.example.yaml`, written to `dir` with only what a test must change so
/// that tests can run side by side: its own state folder, and free OPC UA and web ports.
pub fn example_config(dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .expect("read config.example.yaml");
    for line in ["listen: 0.0.0.0:4840", "listen: 127.0.0.1:8480"] {
        assert!(text.contains(line), "the example's `{line}` changed");
    }
    let text = format!(
        "state_dir: {}\n{}",
        dir.join("state").display(),
        text.replace(
            "listen: 0.0.0.0:4840",
            &format!("listen: 127.0.0.1:{}", free_port())
        )
        .replace(
            "listen: 127.0.0.1:8480",
            &format!("listen: 127.0.0.1:{}", free_port())
        )
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The venv `tests/setup.sh` makes with the web's test tools (schemathesis,
/// openapi-spec-validator, Playwright).
pub fn web_python() -> PathBuf {
    venv_python("UAEDGE_TEST_WEB_PYTHON", ".build/webtest")
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `uaedge run -c config` as a child process, with its log lines (stderr) on a channel so a
/// test can wait for what it expects to see.
pub fn spawn_uaedge(config: &std::path::Path) -> (Child, std::sync::mpsc::Receiver<String>) {
    spawn_uaedge_with(config, None)
}

/// [`spawn_uaedge`] with `RUST_LOG` set to `rust_log` (`None`: unset, the config decides).
pub fn spawn_uaedge_with(
    config: &std::path::Path,
    rust_log: Option<&str>,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uaedge"));
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .args(["run", "-c"])
        .arg(config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start uaedge");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A runtime for tests that run uaedge in process: two workers, as on the target gateway.
pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A `kB` figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …); `None` once the process
/// is gone.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds (user + system) process `pid` has used, from /proc/<pid>/stat; 0 once it
/// is gone.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux uaedge targets.
    (ticks(11) + ticks(12)) / 100.0
}

/// Sends `request` (a head ending in an empty line, a body may follow) asking the server to
/// close the connection after its answer, and reads the whole answer.
pub async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
    let request = format!("{head}\r\nConnection: close\r\n\r\n{body}");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    // A server that answers before reading the whole body and closes may reset the
    // connection: what arrived before the reset is the answer.
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// [`http`]'s answer split: status code, head (status line and headers, lower-cased) and
/// body.
pub async fn http_response(addr: std::net::SocketAddr, request: &str) -> (u16, String, String) {
    let response = http(addr, request).await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A `devices:` section of `devices` enip-sim devices (`d000`, …) of `tags` uint32
/// counters each (`t0000`, …), read every second: `devices × tags` changes a second, the
/// benchmarks' plant.
pub fn counter_devices(devices: usize, tags: usize) -> String {
    counter_devices_every(devices, tags, "1s")
}

/// [`counter_devices`] read every `poll` (a config duration).
pub fn counter_devices_every(devices: usize, tags: usize, poll: &str) -> String {
    use std::fmt::Write as _;
    let mut y = String::from("devices:\n");
    for d in 0..devices {
        let _ = write!(
            y,
            "  - name: d{d:03}\n    driver: enip-sim\n    poll_interval: {poll}\n    options: {{ seed: {d} }}\n    tags:\n"
        );
        for t in 0..tags {
            let _ = writeln!(
                y,
                "      - {{ name: t{t:04}, type: uint32, address: \"Tag_{t}\", options: {{ signal: counter }} }}"
            );
        }
    }
    y
}

/// Whether process `pid` (as text, as a pid file holds it) runs: a zombie does not.
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}
