//! Plumbing for the Sparkplug tests: a real mosquitto per test on a free port, the Python
//! Sparkplug peer (independent encoder/decoder) as a child whose JSON lines are collected,
//! and the `uaedge` binary as a child that can be SIGKILLed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;

pub use crate::common::{free_port, python, wait_for};

/// A mosquitto of our own, stoppable and restartable on the same port.
pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, "allow_anonymous true\n")
    }

    /// A broker with listener settings of the test's own (TLS, passwords) after the port.
    pub fn start_with(dir: &Path, listener: &str) -> Broker {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        // As root, mosquitto would switch to its own user and could not write its
        // persistence file into our temporary folder.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        let user = if is_root { "user root\n" } else { "" };
        std::fs::write(
            &conf,
            // Persistence and queued QoS 0 let the host's session (and what was published
            // while it reconnected) survive a broker stop/start, as a real plant's would.
            format!(
                "listener {port} 127.0.0.1\n{listener}persistence true\npersistence_location {}/\nqueue_qos0_messages true\nmax_queued_messages 0\n{user}",
                dir.display()
            ),
        )
        .expect("write mosquitto.conf");
        let mut b = Broker {
            port,
            conf,
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (run tests/setup.sh)");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), "mosquitto listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// SIGTERM: mosquitto saves its sessions and exits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Eclipse Tahu's sparkplug_b.proto as shipped inside the sparkplug-rs crate.
pub fn proto_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo metadata");
        let meta: Json = serde_json::from_slice(&out.stdout).expect("metadata JSON");
        let manifest = meta["packages"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "sparkplug-rs"))
            .and_then(|p| p["manifest_path"].as_str())
            .expect("sparkplug-rs in cargo metadata");
        Path::new(manifest)
            .parent()
            .expect("crate folder")
            .join("protos/sparkplug_b.proto")
    })
    .clone()
}

/// The Python Sparkplug peer: every message it saw, decoded, in arrival order.
pub struct Host {
    child: Child,
    stdin: ChildStdin,
    pub messages: Arc<Mutex<Vec<Json>>>,
}

impl Host {
    pub fn start(port: u16) -> Host {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sparkplug_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--proto"])
            .arg(proto_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sparkplug_peer.py");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Json>(&line) {
                    sink.lock().expect("lock").push(v);
                }
            }
        });
        let host = Host {
            child,
            stdin,
            messages,
        };
        host.wait(Duration::from_secs(30), "peer subscribed", |m| {
            m["ready"] == true
        });
        host
    }

    /// Messages on Sparkplug topics (not the peer's own notes).
    pub fn sparkplug(&self) -> Vec<Json> {
        self.messages
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m["topic"].is_string())
            .cloned()
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&Json) -> bool) -> usize {
        self.messages
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| pred(m))
            .count()
    }

    /// Waits for a message matching `pred` and returns the first such.
    pub fn wait(&self, limit: Duration, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        wait_for(limit, what, || {
            self.messages
                .lock()
                .expect("lock")
                .iter()
                .find(|m| pred(m))
                .cloned()
        })
    }

    /// Waits for a message matching `pred` after the first `skip` messages.
    pub fn wait_after(
        &self,
        skip: usize,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Json) -> bool,
    ) -> Json {
        wait_for(limit, what, || {
            self.messages
                .lock()
                .expect("lock")
                .iter()
                .skip(skip)
                .find(|m| pred(m))
                .cloned()
        })
    }

    pub fn len(&self) -> usize {
        self.messages.lock().expect("lock").len()
    }

    /// Publishes through the peer and waits for its PUBACK.
    pub fn send(&mut self, cmd: Json) {
        let topic = cmd["publish"].clone();
        let before = self.len();
        writeln!(self.stdin, "{cmd}").expect("write to peer");
        self.stdin.flush().expect("flush peer");
        self.wait_after(before, Duration::from_secs(10), "peer's PUBACK", |m| {
            m["published"] == topic
        });
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `uaedge` binary running a config; SIGKILLed when dropped.
pub struct Uaedge {
    pub child: Child,
}

impl Uaedge {
    pub fn start(config: &Path) -> Uaedge {
        let child = Command::new(env!("CARGO_BIN_EXE_uaedge"))
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start uaedge");
        Uaedge { child }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait uaedge")
    }
}

impl Drop for Uaedge {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Metric lists of a message.
pub fn metrics(m: &Json) -> Vec<Json> {
    m["metrics"].as_array().cloned().unwrap_or_default()
}

pub fn topic(m: &Json) -> &str {
    m["topic"].as_str().unwrap_or("")
}

/// The message type (`NBIRTH`, `DDATA`, …) of a Sparkplug topic.
pub fn kind(m: &Json) -> &str {
    topic(m).split('/').nth(2).unwrap_or("")
}

pub fn bd_seq(m: &Json) -> Option<i64> {
    metrics(m)
        .iter()
        .find(|x| x["name"] == "bdSeq")
        .and_then(|x| x["value"].as_i64())
}

/// One received value of a metric: what the host saw, in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub value: u64,
    /// The metric's own (source) timestamp, ms.
    pub ts: i64,
    pub historical: bool,
    /// From a DBIRTH (the value at birth) rather than a DDATA.
    pub birth: bool,
    /// How many NBIRTHs of the node came before it: 1 in the first session.
    pub session: usize,
}

/// Every integer value of metric `name` of `device` on edge node `group`/`node`, from its
/// DBIRTHs (as live values) and DDATA, aliases resolved through the births seen before each
/// message, in arrival order.
pub fn received(host: &Host, group: &str, node: &str, device: &str, name: &str) -> Vec<Received> {
    let nbirth = format!("spBv1.0/{group}/NBIRTH/{node}");
    let dbirth = format!("spBv1.0/{group}/DBIRTH/{node}/{device}");
    let ddata = format!("spBv1.0/{group}/DDATA/{node}/{device}");
    let mut alias = None;
    let mut session = 0;
    let mut out = Vec::new();
    for m in host.sparkplug() {
        let t = topic(&m);
        if t == nbirth {
            session += 1;
        }
        let birth = t == dbirth;
        if !birth && t != ddata {
            continue;
        }
        for x in metrics(&m) {
            if birth && x["name"] == name {
                alias = x["alias"].as_u64();
            }
            let ours = x["name"] == name || (alias.is_some() && x["alias"].as_u64() == alias);
            if let (true, Some(value), Some(ts)) =
                (ours, x["value"].as_u64(), x["timestamp"].as_i64())
            {
                out.push(Received {
                    value,
                    ts,
                    historical: x["is_historical"] == true,
                    birth,
                    session,
                });
            }
        }
    }
    out
}
