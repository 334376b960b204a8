//! Test plumbing for the OPC UA client driver: the Python asyncua server from
//! tests/interop (an implementation we did not write), deadlines instead of sleeps.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, Reading, TagSpec};
use uaedge_opcua_client::OpcUaClientFactory;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn python() -> PathBuf {
    let path = std::env::var_os("UAEDGE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".build/venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run `bash tests/setup.sh` first",
        path.display()
    );
    path
}

/// The asyncua server, killed when dropped.
pub struct UaServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    pub log: PathBuf,
}

impl UaServer {
    /// Starts the server with `args` on a free port (or `port`), logging to `dir/ua.log`.
    pub fn start(dir: &Path, args: &[&str]) -> UaServer {
        let mut s = UaServer {
            child: None,
            port: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            log: dir.join("ua.log"),
        };
        s.spawn(&[]);
        s
    }

    fn spawn(&mut self, extra: &[String]) {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/interop/opcua_server.py"))
            .args(&self.args)
            .args(extra)
            .arg("--log")
            .arg(&self.log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if self.port != 0 {
            cmd.arg("--port").arg(self.port.to_string());
        }
        let mut child = cmd.spawn().expect("start the asyncua server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("ready line");
        assert!(
            !line.is_empty(),
            "asyncua server exited before it was ready"
        );
        self.port = line.trim().parse().expect("port");
        self.child = Some(child);
    }

    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/uaedge/", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, with extra arguments (e.g. a new `--generation`).
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        self.spawn(&extra);
    }

    /// Freezes or thaws the process: the socket stays open but nothing answers, as when a
    /// network path goes silent.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status()
                .expect("kill")
                .success();
            assert!(ok, "kill -{sig}");
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for UaServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen process would ignore nothing but SIGKILL; thaw it anyway for tidiness.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// Builds a driver from a device's options (YAML) and `(name, type, address)` tags, through
/// the factory as the runtime does.
pub fn driver(options_yaml: &str, tags: &[(&str, DataType, &str)]) -> Box<dyn Driver> {
    let f = OpcUaClientFactory;
    let options: uaedge_opcua_client::Options =
        serde_yaml::from_str(options_yaml).expect("options");
    let specs: Vec<_> = tags
        .iter()
        .map(|(name, t, a)| TagSpec {
            name: name.to_string(),
            data_type: *t,
            writable: true,
            address: f
                .parse_address(a, *t, &Default::default())
                .expect("address"),
        })
        .collect();
    f.validate(&options, &specs).expect("valid");
    f.build(
        &DeviceInfo {
            name: "test".into(),
            poll_interval: Duration::from_millis(100),
        },
        options,
        specs,
    )
}

pub fn options(server: &UaServer, pki: &Path, extra: &str) -> String {
    format!(
        "endpoint: {}\npki_dir: {}\nrequest_timeout: 1s\nkeep_alive_interval: 500ms\npublishing_interval: 100ms\n{extra}",
        server.endpoint(),
        pki.display()
    )
}

/// Polls `check` every 20 ms until it gives `Some`, or panics after `limit`.
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

/// Reads until every tag index in `0..n` has a reading; returns the latest of each.
pub async fn read_all(driver: &mut Box<dyn Driver>, n: usize) -> Vec<Reading> {
    let mut latest: Vec<Option<Reading>> = vec![None; n];
    let start = Instant::now();
    while latest.iter().any(Option::is_none) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reading of tags {:?}",
            latest
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_none())
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        );
        let mut out = Vec::new();
        driver.read(&mut out).await.expect("read");
        for r in out {
            let i = r.tag as usize;
            latest[i] = Some(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latest.into_iter().flatten().collect()
}
