//! Web console and REST API benchmark (not a test): the `uaedge` binary with 100,000
//! simulated tags each changing once a second (100 enip-sim devices of 1,000 counters,
//! polled every second), its web server on, nothing else.
//!
//! Reports, side by side in one run:
//! - uaedge's CPU (whole process) and RSS with no web client;
//! - the same with 100 clients on the change stream (`GET /api/v1/events`), each following
//!   one device (1,000 changes/s each: a plant's worth of console pages open), and again
//!   with 100 clients on the whole stream (100,000 changes/s each); what the web path adds
//!   is the difference, and the changes/s the clients received;
//! - paging all 100,000 tags through `GET /api/v1/tags?limit=10000`: tags/s;
//! - the console's page weight: its files, raw and gzip -9 (what a browser fetches).
//!
//! The clients run in this process, uaedge in its own, so its CPU figures are its own.
//!
//! Run: `cargo bench --bench web`

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_port, http_response, proc_cpu_seconds, proc_status_kib, spawn_uaedge, KillOnDrop,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEVICES: usize = 100;
const TAGS_PER_DEVICE: usize = 1_000;
const CLIENTS: usize = 100;
const WINDOW: Duration = Duration::from_secs(20);
/// Users the clients log in as: a user may hold 16 streams.
const USERS: usize = 10;

fn config(state: &std::path::Path, port: u16) -> String {
    let mut y = format!(
        "state_dir: {}\nlog: {{ level: warn, values: false }}\nweb: {{ listen: \"127.0.0.1:{port}\" }}\nusers:\n",
        state.display()
    );
    for u in 0..USERS {
        let _ = writeln!(y, "  - {{ name: u{u}, password: bench-pw, role: viewer }}");
    }
    y.push_str(&common::counter_devices(DEVICES, TAGS_PER_DEVICE));
    y
}

fn cpu_percent(pid: u32, window: Duration) -> f64 {
    let (c0, t0) = (proc_cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    100.0 * (proc_cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64()
}

/// Logs in as each user: their session cookies.
fn sessions(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Vec<String> {
    rt.block_on(async {
        let mut cookies = Vec::new();
        for u in 0..USERS {
            let body = format!(r#"{{"user":"u{u}","password":"bench-pw"}}"#);
            let (status, head, _) = http_response(
                addr,
                &format!(
                    "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await;
            assert_eq!(status, 200, "login u{u}: {head}");
            let cookie = head
                .lines()
                .find_map(|l| l.strip_prefix("set-cookie: "))
                .and_then(|c| c.split(';').next())
                .expect("a session cookie");
            cookies.push(cookie.to_string());
        }
        cookies
    })
}

/// One change-stream client: reads until told to stop, counting the changes (`"path"` in
/// the `tags` events) it receives; one refused stream counts in `refused`.
async fn follow(
    addr: SocketAddr,
    request: String,
    changes: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    cut: Arc<AtomicU64>,
    stop: Arc<AtomicU64>,
) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    match stream.read(&mut buf).await {
        Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") => {}
        _ => {
            refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let needle = b"\"path\"";
    while stop.load(Ordering::Relaxed) == 0 {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            // Cut off by the server: it fell 16 frames behind.
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Ok(n)) => {
                let seen = buf[..n]
                    .windows(needle.len())
                    .filter(|w| w == needle)
                    .count();
                changes.fetch_add(seen as u64, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
}

/// uaedge's CPU and RSS with `CLIENTS` clients on the stream, each with its query, and
/// the changes/s they received in all.
fn with_clients(
    rt: &tokio::runtime::Runtime,
    pid: u32,
    addr: SocketAddr,
    cookies: &[String],
    query: impl Fn(usize) -> String,
) -> (f64, u64, f64, u64) {
    let changes = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let request = format!(
                "GET /api/v1/events{} HTTP/1.1\r\nHost: localhost\r\nCookie: {}\r\n\r\n",
                query(i),
                cookies[i % cookies.len()]
            );
            rt.spawn(follow(
                addr,
                request,
                changes.clone(),
                refused.clone(),
                cut.clone(),
                stop.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let c0 = changes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu = cpu_percent(pid, WINDOW);
    let rate = (changes.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64();
    let rss = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    stop.store(1, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    let refused = refused.load(Ordering::Relaxed);
    assert_eq!(refused, 0, "{refused} of {CLIENTS} streams refused");
    std::thread::sleep(Duration::from_secs(2));
    (cpu, rss, rate, cut.load(Ordering::Relaxed))
}

/// Pages every tag once; tags/s.
fn page_all(rt: &tokio::runtime::Runtime, addr: SocketAddr, cookie: &str) -> f64 {
    rt.block_on(async {
        let started = Instant::now();
        let mut after = String::new();
        let mut tags = 0;
        loop {
            let (status, _, body) = http_response(
                addr,
                &format!(
                    "GET /api/v1/tags?limit=10000{after} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n"
                ),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let page: serde_json::Value = serde_json::from_str(&body).expect("json");
            tags += page["tags"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(tags, DEVICES * TAGS_PER_DEVICE);
        tags as f64 / started.elapsed().as_secs_f64()
    })
}

fn gzip_len(bytes: &[u8]) -> Option<usize> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(bytes).ok()?;
    Some(child.wait_with_output().ok()?.stdout.len())
}

fn main() {
    let rt = common::tokio_rt();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config(&dir.path().join("state"), port)).expect("write config");
    let (child, _log) = spawn_uaedge(&file);
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    rt.block_on(common::eventually(
        Duration::from_secs(120),
        "the web server",
        || async { tokio::net::TcpStream::connect(addr).await.ok() },
    ));
    // Past start-up: every device read a few times.
    std::thread::sleep(Duration::from_secs(10));

    let idle_cpu = cpu_percent(pid, WINDOW);
    let idle_rss = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let cookies = sessions(&rt, addr);
    let (dev_cpu, dev_rss, dev_rate, dev_cut) = with_clients(&rt, pid, addr, &cookies, |i| {
        format!("?device=d{:03}", i % DEVICES)
    });
    let (all_cpu, all_rss, all_rate, all_cut) =
        with_clients(&rt, pid, addr, &cookies, |_| String::new());
    let mut paging: Vec<f64> = (0..3).map(|_| page_all(&rt, addr, &cookies[0])).collect();
    paging.sort_by(f64::total_cmp);

    let tags = DEVICES * TAGS_PER_DEVICE;
    println!(
        "web benchmark: {tags} tags changing once a second ({DEVICES} enip-sim devices), uaedge {}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  no web client:          uaedge {idle_cpu:.1} % of one core, RSS {:.1} MB",
        idle_rss as f64 / 1024.0
    );
    for (what, cpu, rss, rate, cut) in [
        ("one device each", dev_cpu, dev_rss, dev_rate, dev_cut),
        ("the whole stream each", all_cpu, all_rss, all_rate, all_cut),
    ] {
        println!(
            "  {CLIENTS} stream clients, {what}: uaedge {cpu:.1} % (+{:.1} % for the web path), RSS +{:.1} MB, {rate:.0} changes/s received in all, {cut} cut off for falling behind",
            cpu - idle_cpu,
            (rss as f64 - idle_rss as f64) / 1024.0
        );
    }
    println!(
        "  paging {tags} tags, 10,000 a page: min {:.0}, median {:.0} tags/s",
        paging[0], paging[1]
    );
    let (raw, gz) = uaedge::web::console::ASSETS
        .iter()
        .map(|(_, _, body)| (body.len(), gzip_len(body).unwrap_or(body.len())))
        .fold((0, 0), |(r, g), (a, b)| (r + a, g + b));
    println!(
        "  console page weight: {:.1} KB raw, {:.1} KB gzip -9 ({} files)",
        raw as f64 / 1024.0,
        gz as f64 / 1024.0,
        uaedge::web::console::ASSETS.len()
    );
}
