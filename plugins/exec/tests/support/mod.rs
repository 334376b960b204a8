//! What the exec driver's tests share: the test driver program (test_driver.py, run by
//! python3) in a given mode, driven as the runtime drives a driver.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use uaedge_driver::{
    ByteSize, DataType, DeviceInfo, Driver, Duration, LinkError, Reading, TagSpec,
};
use uaedge_exec::{ExecDriver, ExecOptions};

pub fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/test_driver.py")
        .display()
        .to_string()
}

/// python3 itself, not a wrapper in PATH (pyenv's shim is a shell script that sets
/// variables of its own in the program's environment, and costs a start-up each time).
pub fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

pub fn options(mode: &str) -> ExecOptions {
    let mut env = BTreeMap::new();
    env.insert("MODE".to_string(), mode.to_string());
    ExecOptions {
        command: vec![python(), script()],
        env,
        cwd: None,
        startup_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_millis(1500),
        max_line: ByteSize(1 << 20),
    }
}

pub fn tag(name: &str, data_type: DataType, address: &str, writable: bool) -> TagSpec<String> {
    TagSpec {
        name: name.into(),
        data_type,
        writable,
        address: address.into(),
    }
}

pub fn driver(options: ExecOptions, tags: Vec<TagSpec<String>>) -> ExecDriver {
    let info = DeviceInfo {
        name: "dev".into(),
        poll_interval: StdDuration::from_millis(100),
    };
    ExecDriver::new(&info, options, tags)
}

pub async fn read(d: &mut ExecDriver) -> Result<Vec<Reading>, LinkError> {
    let mut out = Vec::new();
    d.read(&mut out).await.map(|()| out)
}

/// Descriptors open in this process: a leak of pipes or tasks shows here first.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// As the runtime drives a driver: connect, read until an error, disconnect, again.
pub async fn cycle(d: &mut ExecDriver) -> LinkError {
    d.connect().await.expect("connect");
    let e = loop {
        if let Err(e) = read(d).await {
            break e;
        }
    };
    d.disconnect().await;
    e
}

pub fn alive(pid: i32) -> bool {
    // A zombie is as good as gone: nobody is left to reap it but init.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// The processes of group `group` that are not zombies.
pub fn group_members(group: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .ok()
                        .and_then(|s| {
                            let rest = &s[s.rfind(')')? + 2..];
                            rest.split(' ').nth(2)?.parse::<i32>().ok()
                        })
                        == Some(group)
                })
                .filter(|p| alive(*p))
                .collect()
        })
        .unwrap_or_default()
}
