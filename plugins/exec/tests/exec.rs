//! The exec driver against real child processes (tests/test_driver.py, run by python3):
//! a working conversation, and every way a program can misbehave: crash, hang, garbage,
//! half a line, a 100 MB line, a flood of logs, a program that will not stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration as StdDuration, Instant};

use uaedge_driver::{
    Backoff, BadReason, ByteSize, DataType, DeviceInfo, Driver, Duration, LinkErrorKind, Quality,
    Reading, TagSpec, Value, WriteError,
};
use uaedge_exec::{ExecDriver, ExecOptions};

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/test_driver.py")
        .display()
        .to_string()
}

/// python3 itself, not a wrapper in PATH (pyenv's shim is a shell script that sets
/// variables of its own in the program's environment, and costs a start-up each time).
fn python() -> String {
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

fn options(mode: &str) -> ExecOptions {
    let mut env = BTreeMap::new();
    env.insert("MODE".to_string(), mode.to_string());
    ExecOptions {
        command: vec![python(), script()],
        env,
        cwd: None,
        startup_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_millis(1500),
        restart: Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
        },
        max_line: ByteSize(1 << 20),
    }
}

fn tag(name: &str, data_type: DataType, address: &str, writable: bool) -> TagSpec<String> {
    TagSpec {
        name: name.into(),
        data_type,
        writable,
        address: address.into(),
    }
}

fn driver(options: ExecOptions, tags: Vec<TagSpec<String>>) -> ExecDriver {
    let info = DeviceInfo {
        name: "dev".into(),
        poll_interval: StdDuration::from_millis(100),
    };
    ExecDriver::new(&info, options, tags)
}

async fn read(d: &mut ExecDriver) -> Result<Vec<Reading>, uaedge_driver::LinkError> {
    let mut out = Vec::new();
    d.read(&mut out).await.map(|()| out)
}

#[tokio::test]
async fn every_type_is_read_and_writes_get_the_programs_answer() {
    let tags = vec![
        tag("b", DataType::Boolean, "const:true", false),
        tag("i8", DataType::Int8, "const:-8", false),
        tag("i16", DataType::Int16, "const:-1600", false),
        tag("i32", DataType::Int32, "const:-320000", false),
        tag("i64", DataType::Int64, "const:-9223372036854775808", false),
        tag("u8", DataType::UInt8, "const:255", false),
        tag("u16", DataType::UInt16, "const:65535", false),
        tag("u32", DataType::UInt32, "const:4294967295", false),
        tag("u64", DataType::UInt64, "const:18446744073709551615", false),
        tag("f32", DataType::Float, "const:1.5", false),
        tag("f64", DataType::Double, "const:-2.25e100", false),
        tag("s", DataType::String, "const:\"x \\\"y\\\"\"", false),
        tag(
            "t",
            DataType::DateTime,
            "const:\"2026-12-07T10:00:00.5Z\"",
            false,
        ),
        tag("set", DataType::Int16, "const:7", true),
        tag("refused", DataType::Int16, "refuse", true),
        tag("wide", DataType::UInt8, "const:300", false),
        tag("unknown", DataType::Int32, "bad:DB9", false),
        tag("away", DataType::Double, "down", false),
    ];
    let mut d = driver(options("normal"), tags);
    d.connect().await.expect("connect");
    let r = read(&mut d).await.expect("read");
    let value = |i: u32| r.iter().find(|x| x.tag == i).and_then(|x| x.value.clone());
    let quality = |i: u32| r.iter().find(|x| x.tag == i).map(|x| x.quality);
    assert_eq!(value(0), Some(Value::Boolean(true)));
    assert_eq!(value(1), Some(Value::Int8(-8)));
    assert_eq!(value(2), Some(Value::Int16(-1600)));
    assert_eq!(value(3), Some(Value::Int32(-320_000)));
    assert_eq!(value(4), Some(Value::Int64(i64::MIN)));
    assert_eq!(value(5), Some(Value::UInt8(255)));
    assert_eq!(value(6), Some(Value::UInt16(65535)));
    assert_eq!(value(7), Some(Value::UInt32(u32::MAX)));
    assert_eq!(value(8), Some(Value::UInt64(u64::MAX)));
    assert_eq!(value(9), Some(Value::Float(1.5)));
    assert_eq!(value(10), Some(Value::Double(-2.25e100)));
    assert_eq!(value(11), Some(Value::String("x \"y\"".into())));
    assert_eq!(
        value(12),
        Some(Value::DateTime(uaedge_driver::Timestamp(
            1_796_637_600_500_000
        )))
    );
    // 300 does not fit uint8: that tag alone is Bad (ConfigError).
    assert_eq!(quality(15), Some(Quality::Bad(BadReason::ConfigError)));
    // The program refused the address at configure.
    assert_eq!(quality(16), Some(Quality::Bad(BadReason::ConfigError)));
    assert_eq!(quality(17), Some(Quality::Bad(BadReason::NotConnected)));
    assert!(r.iter().filter(|x| x.tag < 15).all(|x| x.quality.is_good()));

    // A write reaches the program, and its answer is the write's status.
    d.write(13, &Value::Int16(-42)).await.expect("write");
    let r = read(&mut d).await.expect("read back");
    assert_eq!(
        r.iter().find(|x| x.tag == 13).and_then(|x| x.value.clone()),
        Some(Value::Int16(-42))
    );
    assert_eq!(
        d.write(14, &Value::Int16(1)).await,
        Err(WriteError::Rejected("refused by test".into()))
    );
    d.close().await;
}

/// Descriptors open in this process: a leak of pipes or tasks shows here first.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// As the runtime drives a driver: connect, read until an error, disconnect, again.
async fn cycle(d: &mut ExecDriver) -> uaedge_driver::LinkError {
    d.connect().await.expect("connect");
    let e = loop {
        if let Err(e) = read(d).await {
            break e;
        }
    };
    d.disconnect().await;
    e
}

#[tokio::test]
async fn a_program_that_crashes_100_times_is_restarted_every_time_without_leaks() {
    let mut o = options("crash");
    o.env.insert("CRASH_AFTER".into(), "2".into());
    let mut d = driver(o, vec![tag("n", DataType::Int32, "counter", false)]);
    for _ in 0..10 {
        cycle(&mut d).await;
    }
    let (fds, rss) = (open_fds(), rss_kib());
    let start = Instant::now();
    for i in 0..100 {
        let e = cycle(&mut d).await;
        assert_eq!(e.kind, LinkErrorKind::NotConnected, "{i}: {e}");
        assert!(e.message.contains("exited"), "{i}: {e}");
    }
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    eprintln!(
        "100 crashes in {:?}: fds {fds} -> {fds_after}, RSS {rss} -> {rss_after} KiB",
        start.elapsed()
    );
    assert!(
        fds_after <= fds + 2,
        "descriptors leak: {fds} -> {fds_after}"
    );
    assert!(
        rss_after < rss + 8 * 1024,
        "RSS grew: {rss} -> {rss_after} KiB"
    );
    // Each crash counted towards the backoff, and the restarts stayed within it.
    d.close().await;
}

#[tokio::test]
async fn a_hung_program_times_out_and_is_restarted() {
    let mut d = driver(
        options("hang"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    let start = Instant::now();
    let e = read(&mut d).await.expect_err("hangs");
    assert_eq!(e.kind, LinkErrorKind::Timeout, "{e}");
    assert!(e.message.contains("request_timeout"), "{e}");
    assert!(start.elapsed() < StdDuration::from_secs(5));
    d.disconnect().await;
    // A new program, the same conversation.
    d.connect().await.expect("restarted");
    d.close().await;
}

#[tokio::test]
async fn garbage_half_lines_and_huge_lines_are_protocol_errors() {
    for (mode, want) in [
        ("garbage", "stdout line 3: not a protocol message"),
        ("huge", "a line longer than 1048576 bytes"),
    ] {
        let mut d = driver(
            options(mode),
            vec![tag("n", DataType::Int32, "counter", false)],
        );
        let rss = rss_kib();
        d.connect().await.expect("connect");
        let e = read(&mut d).await.expect_err(mode);
        assert_eq!(e.kind, LinkErrorKind::Protocol, "{mode}: {e}");
        assert!(e.message.contains(want), "{mode}: {e}");
        assert_eq!(e.quality(), Quality::Bad(BadReason::CommFailure));
        assert!(
            rss_kib() < rss + 16 * 1024,
            "{mode}: RSS {rss} -> {} KiB",
            rss_kib()
        );
        d.close().await;
    }
    // Half a line and then silence: the request times out.
    let mut d = driver(
        options("partial"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    let e = read(&mut d).await.expect_err("partial");
    assert_eq!(e.kind, LinkErrorKind::Timeout, "{e}");
    d.close().await;
}

#[tokio::test]
async fn a_flood_of_logs_does_not_stop_the_conversation() {
    let mut d = driver(
        options("flood"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    for i in 1..=5 {
        let r = read(&mut d).await.expect("read through the flood");
        assert_eq!(r[0].value, Some(Value::Int32(i)));
    }
    d.close().await;
}

#[tokio::test]
async fn pushed_data_arrives_with_its_time() {
    let mut d = driver(
        options("push"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    let r = read(&mut d).await.expect("read");
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].value, Some(Value::Int32(100)));
    assert_eq!(
        r[0].source_time,
        Some(uaedge_driver::Timestamp(1_796_637_600_000_000))
    );
    assert_eq!(r[1].value, Some(Value::Int32(1)));
    d.close().await;
}

#[tokio::test]
async fn wrong_protocol_and_missing_programs_are_clear_errors() {
    let mut o = options("normal");
    o.env.insert("PROTO".into(), "2".into());
    let mut d = driver(o, vec![]);
    let e = d.connect().await.expect_err("protocol 2");
    assert!(e.message.contains("speaks protocol 2"), "{e}");
    d.close().await;
    let mut o = options("normal");
    o.command = vec!["/nonexistent/driver".into()];
    let mut d = driver(o, vec![]);
    let e = d.connect().await.expect_err("missing");
    assert!(
        e.message.contains("cannot start `/nonexistent/driver`"),
        "{e}"
    );
}

fn alive(pid: i32) -> bool {
    // A zombie is as good as gone: nobody is left to reap it but init.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test]
async fn a_program_that_ignores_stdin_and_sigterm_is_killed_with_its_children() {
    let mut d = driver(
        options("stubborn"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    read(&mut d).await.expect("read");
    // The program's group: itself and the `sleep` it started.
    let group = d.pid().expect("pid");
    let members = || -> Vec<i32> {
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
    };
    assert!(members().len() >= 2, "{:?}", members());
    let start = Instant::now();
    d.close().await;
    let took = start.elapsed();
    assert!(members().is_empty(), "left behind: {:?}", members());
    // Stdin closed, a second; SIGTERM, a second; SIGKILL.
    assert!(took < StdDuration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_program_pushing_without_pause_is_bounded_and_still_read() {
    let mut d = driver(
        options("pushflood"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    let rss = rss_kib();
    let mut answered = 0;
    for _ in 0..20 {
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        let r = read(&mut d).await.expect("read through the flood");
        // At most what the poll keeps, and the read's own answer (the pushed readings
        // carry a time, the answer does not) among it.
        assert!(r.len() <= 65_536 + 1, "{}", r.len());
        answered += usize::from(r.iter().any(|x| x.source_time.is_none()));
    }
    assert_eq!(answered, 20, "a read went unanswered");
    assert!(
        rss_kib() < rss + 64 * 1024,
        "RSS {rss} -> {} KiB",
        rss_kib()
    );
    d.close().await;
}

#[tokio::test]
async fn data_from_a_program_that_did_not_say_push_is_a_protocol_error() {
    let mut d = driver(
        options("unasked"),
        vec![tag("n", DataType::Int32, "counter", false)],
    );
    d.connect().await.expect("connect");
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let e = read(&mut d).await.expect_err("unasked data");
    assert_eq!(e.kind, LinkErrorKind::Protocol, "{e}");
    assert!(e.message.contains("did not say `push: true`"), "{e}");
    d.close().await;
}

#[tokio::test]
async fn the_program_gets_only_its_own_environment_and_no_new_privileges() {
    // A secret in uaedge's environment (a token, a password given to the service).
    // SAFETY: this test binary sets no other variable and reads this one nowhere else.
    unsafe { std::env::set_var("UAEDGE_TEST_SECRET", "hunter2") };
    let mut o = options("normal");
    o.env.insert("S7_HOST".into(), "10.0.0.7".into());
    let mut d = driver(
        o,
        vec![
            tag("env", DataType::String, "env", false),
            tag("nnp", DataType::UInt8, "nnp", false),
        ],
    );
    d.connect().await.expect("connect");
    let r = read(&mut d).await.expect("read");
    let Some(Value::String(names)) = r[0].value.clone() else {
        panic!("{r:?}");
    };
    let mut names: Vec<&str> = names.split(',').filter(|n| *n != "LANG").collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "MODE",
            "PATH",
            "S7_HOST",
            "UAEDGE_DEVICE",
            "UAEDGE_PROTOCOL"
        ],
        "the program saw more than it was given"
    );
    assert_eq!(r[1].value, Some(Value::UInt8(1)), "NoNewPrivs is not set");
    d.close().await;
}
