//! Plumbing for the OPC UA server tests: SCADA-side clients on stacks we did not write
//! (asyncua, open62541 through o6, node-opcua) driven over JSON lines, and uaedge started
//! in-process with its own state folder and a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use uaedge::config::Config;
use uaedge::runtime::Runtime;

use crate::common::{eventually, node, node_modules, python};

/// An OPC UA client process answering one JSON command per line: `start` is asyncua
/// (tests/interop/opcua_scada.py), `o6` open62541 (opcua_o6.py), `node_opcua` node-opcua
/// (opcua_nodeopcua.js). The three share the commands connect, read, write, subscribe,
/// changes and disconnect; see each script for the rest and for its NodeId syntax.
pub struct Scada {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn interop(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script)
}

impl Scada {
    /// The asyncua client.
    pub fn start() -> Scada {
        let mut command = Command::new(python());
        command.arg(interop("opcua_scada.py"));
        Scada::spawn("asyncua", command)
    }

    /// The open62541 client (o6). NodeIds outside namespace 0 as `nsu=<uri>;s=...`.
    pub fn o6() -> Scada {
        let mut command = Command::new(python());
        command.arg(interop("opcua_o6.py"));
        Scada::spawn("o6", command)
    }

    /// The node-opcua client. NodeIds outside namespace 0 as `nsu=<uri>;s=...`.
    pub fn node_opcua() -> Scada {
        let mut command = Command::new(node());
        command
            .arg(interop("opcua_nodeopcua.js"))
            .env("NODE_PATH", node_modules());
        Scada::spawn("node-opcua", command)
    }

    fn spawn(name: &'static str, mut command: Command) -> Scada {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} client: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        assert_eq!(line.trim(), "ready", "the {name} client did not start");
        Scada {
            name,
            child,
            stdin,
            stdout,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sends one command and waits for its answer. Runs the blocking pipe I/O in place, so
    /// the server's tasks keep running on the other workers meanwhile.
    pub fn call(&mut self, cmd: Value) -> Value {
        tokio::task::block_in_place(|| {
            writeln!(self.stdin, "{cmd}").expect("send command");
            self.stdin.flush().expect("flush command");
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("read answer");
            assert!(!line.is_empty(), "the {} client exited on {cmd}", self.name);
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad answer {line:?}: {e}"))
        })
    }

    /// Like `call`, but panics on an error answer.
    pub fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.call(cmd.clone());
        assert!(
            answer.get("error").is_none(),
            "{}: {cmd} failed: {answer}",
            self.name
        );
        answer
    }

    pub fn connect_none(&mut self, url: &str) {
        self.ok(json!({"op": "connect", "url": url}));
    }

    /// [`Scada::connect_none`] to a server that may still be starting: the `uaedge` binary
    /// makes its certificate before it answers, seconds in a debug build on a busy
    /// machine, while its port already takes connections.
    pub fn connect_none_when_ready(&mut self, url: &str) {
        let start = std::time::Instant::now();
        loop {
            let answer = self.call(json!({"op": "connect", "url": url}));
            if answer.get("error").is_none() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{}: cannot connect to {url}: {answer}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn read(&mut self, nodes: &[String]) -> Vec<Value> {
        let answer = self.ok(json!({"op": "read", "nodes": nodes}));
        answer["values"].as_array().cloned().unwrap_or_default()
    }

    pub fn read_one(&mut self, node: &str) -> Value {
        self.read(&[node.to_string()]).remove(0)
    }

    pub fn write(&mut self, node: &str, value: Value, variant: &str) -> String {
        let answer =
            self.ok(json!({"op": "write", "node": node, "value": value, "variant": variant}));
        answer["status"].as_str().unwrap_or_default().to_string()
    }

    /// Waits up to `timeout` for notifications; all queued ones are returned.
    pub fn changes(&mut self, timeout: Duration) -> Vec<Value> {
        let answer = self.ok(json!({"op": "changes", "timeout": timeout.as_secs_f64()}));
        answer["changes"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Scada {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// uaedge running in-process with an OPC UA server on a free port.
pub struct Edge {
    pub runtime: Runtime,
    pub url: String,
    pub ns: u16,
    /// The namespace of uaedge's nodes (`urn:uaedge:test` unless the test sets another).
    pub namespace_uri: String,
    pub state: tempfile::TempDir,
}

impl Edge {
    /// Starts `devices` (YAML list items) with `opcua` (YAML mapping body, indented two
    /// spaces) on 127.0.0.1, port 0.
    pub async fn start(opcua: &str, devices: &str) -> Edge {
        let state = tempfile::tempdir().expect("state dir");
        Edge::start_in(state, opcua, devices).await
    }

    pub async fn start_in(state: tempfile::TempDir, opcua: &str, devices: &str) -> Edge {
        let text = format!(
            "node: {{ name: test }}\nstate_dir: {}\nopcua:\n  listen: 127.0.0.1:0\n{opcua}\ndevices:\n{devices}",
            state.path().display()
        );
        Edge::serve(state, &text).await
    }

    /// The shipped `config.example.yaml` as it is, but for what lets tests run side by side:
    /// its own state folder, free OPC UA and web ports, and a broker address where none
    /// listens.
    pub async fn shipped() -> Edge {
        let state = tempfile::tempdir().expect("state dir");
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
                .expect("read config.example.yaml");
        for line in [
            "listen: 0.0.0.0:4840",
            "listen: 127.0.0.1:8480",
            "broker: mqtt://127.0.0.1:1883",
        ] {
            assert!(text.contains(line), "the example's `{line}` changed");
        }
        let text = format!(
            "state_dir: {}\n{}",
            state.path().display(),
            text.replace("listen: 0.0.0.0:4840", "listen: 127.0.0.1:0")
                .replace("listen: 127.0.0.1:8480", "listen: 127.0.0.1:0")
                .replace(
                    "broker: mqtt://127.0.0.1:1883",
                    &format!("broker: mqtt://127.0.0.1:{}", crate::common::free_port()),
                )
        );
        Edge::serve(state, &text).await
    }

    async fn serve(state: tempfile::TempDir, text: &str) -> Edge {
        let config = Config::parse("test.yaml", text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let namespace_uri = config
            .opcua
            .as_ref()
            .map(|o| o.namespace_uri.clone())
            .unwrap_or_default();
        let runtime = Runtime::start(config);
        let addr = eventually(
            Duration::from_secs(60),
            "the OPC UA server to serve",
            || async { runtime.opcua().and_then(|s| s.local_addr()) },
        )
        .await;
        let ns = runtime
            .opcua()
            .and_then(|s| s.namespace_index())
            .unwrap_or_default();
        Edge {
            runtime,
            url: format!("opc.tcp://127.0.0.1:{}/", addr.port()),
            ns,
            namespace_uri,
            state,
        }
    }

    /// `ns=<uaedge>;s=<path>`, as asyncua prints NodeIds.
    pub fn node(&self, path: &str) -> String {
        format!("ns={};s={path}", self.ns)
    }

    /// `nsu=<namespace URI>;s=<path>`, the NodeId form the o6 and node-opcua clients take.
    pub fn nsu(&self, path: &str) -> String {
        format!("nsu={};s={path}", self.namespace_uri)
    }

    pub fn pki(&self) -> PathBuf {
        self.state.path().join("pki")
    }

    pub async fn stop(self) {
        self.runtime.shutdown().await.expect("clean shutdown");
    }
}

/// Files in a folder (for the PKI's trusted/rejected folders).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}
