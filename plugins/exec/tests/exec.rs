//! The exec driver against real child processes (tests/test_driver.py, run by python3):
//! a working conversation, and every way a program can misbehave: hang, garbage, half a
//! line, a 100 MB line, floods of logs and of data, a program that will not stop. (The
//! crash loop and the environment have test binaries of their own: they look at the
//! whole process.)

mod support;

use std::time::{Duration as StdDuration, Instant};

use support::{driver, group_members, options, read, rss_kib, tag};
use uaedge_driver::{
    BadReason, DataType, Driver, Duration, LinkErrorKind, Quality, Value, WriteError,
};

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
    // The program writes 200,000 log lines before it answers its first read.
    let mut o = options("flood");
    o.request_timeout = Duration::from_secs(20);
    let mut d = driver(o, vec![tag("n", DataType::Int32, "counter", false)]);
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
    let members = || group_members(group);
    assert!(members().len() >= 2, "{:?}", members());
    let start = Instant::now();
    d.close().await;
    let took = start.elapsed();
    // Stdin closed, a second; SIGTERM, a second; SIGKILL: inside the runtime's three
    // seconds a shutdown stage.
    assert!(took < StdDuration::from_secs(3), "{took:?}");
    // A killed process leaves /proc a moment after its pipes close.
    let gone = Instant::now();
    while !members().is_empty() {
        assert!(
            gone.elapsed() < StdDuration::from_secs(5),
            "left behind: {:?}",
            members()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
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
async fn pushed_readings_past_the_bound_drop_the_oldest() {
    // One data line of 70,000 readings (values 0..70,000), more than a poll keeps.
    let mut o = options("pushbig");
    o.max_line = uaedge_driver::ByteSize(16 << 20);
    let mut d = driver(o, vec![tag("n", DataType::Int32, "counter", false)]);
    d.connect().await.expect("connect");
    // The line may still be on its way when the first poll comes.
    let mut kept = Vec::new();
    let start = Instant::now();
    while kept.is_empty() {
        assert!(
            start.elapsed() < StdDuration::from_secs(20),
            "no pushed readings"
        );
        let r = read(&mut d).await.expect("read");
        kept = r.into_iter().filter(|x| x.source_time.is_some()).collect();
    }
    let pending = uaedge_exec::PENDING;
    assert_eq!(kept.len(), pending);
    assert_eq!(
        kept.first().and_then(|r| r.value.clone()),
        Some(Value::Int32(70_000 - pending as i32))
    );
    assert_eq!(
        kept.last().and_then(|r| r.value.clone()),
        Some(Value::Int32(69_999))
    );
    d.close().await;
}
