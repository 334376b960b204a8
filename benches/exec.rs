//! The exec driver's boundary, measured (not a test): the `uaedge` binary with one device
//! of 2,500 uint32 counters read every 10 ms (250,000 samples/s asked for), once through
//! `driver: exec` and a Python program answering each read with one batched `readings`
//! line (benches/exec_bench_driver.py), once through the in-process `enip-sim` driver on
//! the same tags and poll. Each run: 5 s to settle, then a 20 s window.
//!
//! Reports for each: the samples/s uaedge took in (`uaedge_device_samples_in_total`),
//! uaedge's own CPU (its process, not the program's) and RSS, and the CPU per sample;
//! then the exec boundary's cost per sample against the in-process driver's.
//!
//! Run: `cargo bench --bench exec` (after `bash tests/setup.sh`: it runs the test venv's
//! Python)

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    free_port, http_response, proc_cpu_seconds, proc_status_kib, spawn_uaedge, KillOnDrop,
};

const TAGS: usize = 2_500;
const POLL_MS: u64 = 10;
const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);

fn config(state: &std::path::Path, port: u16, exec: bool) -> String {
    let mut y = format!(
        "state_dir: {}\nlog: {{ level: warn, values: false }}\nweb: {{ listen: \"127.0.0.1:{port}\" }}\n",
        state.display()
    );
    if !exec {
        y.push_str(&common::counter_devices_every(
            1,
            TAGS,
            &format!("{POLL_MS}ms"),
        ));
        return y;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/exec_bench_driver.py");
    let _ = writeln!(
        y,
        "devices:\n  - name: d\n    poll_interval: {POLL_MS}ms\n    driver: exec\n    options: {{ command: [\"{}\", \"{script}\"] }}\n    tags:",
        common::python().display()
    );
    for t in 0..TAGS {
        let _ = writeln!(
            y,
            "      - {{ name: t{t:04}, type: uint32, address: \"c{t}\" }}"
        );
    }
    y
}

fn samples_in(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> f64 {
    let (_, _, body) = rt.block_on(http_response(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ));
    body.lines()
        .find(|l| l.starts_with("uaedge_device_samples_in_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

struct Run {
    rate: f64,
    cpu: f64,
    rss_mb: f64,
}

fn run(rt: &tokio::runtime::Runtime, exec: bool) -> Run {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config(&dir.path().join("state"), port, exec)).expect("config");
    let (child, _log) = spawn_uaedge(&file);
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    rt.block_on(common::eventually(
        Duration::from_secs(60),
        "the web server",
        || async { tokio::net::TcpStream::connect(addr).await.ok() },
    ));
    std::thread::sleep(SETTLE);
    let (n0, c0, t0) = (samples_in(rt, addr), proc_cpu_seconds(pid), Instant::now());
    std::thread::sleep(WINDOW);
    let (n1, c1) = (samples_in(rt, addr), proc_cpu_seconds(pid));
    let secs = t0.elapsed().as_secs_f64();
    Run {
        rate: (n1 - n0) / secs,
        cpu: 100.0 * (c1 - c0) / secs,
        rss_mb: proc_status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0,
    }
}

fn main() {
    let rt = common::tokio_rt();
    let exec = run(&rt, true);
    let sim = run(&rt, false);
    let per_sample = |r: &Run| r.cpu / 100.0 / r.rate.max(1.0) * 1e9;
    println!(
        "exec benchmark: one device, {TAGS} uint32 counters every {POLL_MS} ms ({} samples/s asked), uaedge {}",
        TAGS as u64 * 1000 / POLL_MS,
        env!("CARGO_PKG_VERSION")
    );
    for (what, r) in [
        ("exec (python3, batched)", &exec),
        ("enip-sim (in process)", &sim),
    ] {
        println!(
            "  {what:<24} {:>9.0} samples/s, uaedge {:>5.1} % of one core, RSS {:>5.1} MB, {:>6.0} ns CPU a sample",
            r.rate,
            r.cpu,
            r.rss_mb,
            per_sample(r)
        );
    }
    println!(
        "  the exec boundary: {:.0} ns a sample more than in process ({:.2}x)",
        per_sample(&exec) - per_sample(&sim),
        per_sample(&exec) / per_sample(&sim).max(1e-9)
    );
}
