//! The driver through the Driver trait, against the Python asyncua server.

mod common;

use std::time::{Duration, Instant};

use common::{driver, options, read_all, UaServer};
use uaedge_driver::{BadReason, DataType, Quality, Timestamp, Value, WriteError};

/// Every model type: (tag name, type, address, value the server starts with).
fn typed() -> Vec<(&'static str, DataType, &'static str, Value)> {
    vec![
        (
            "bool",
            DataType::Boolean,
            "ns=2;s=Line1.Bool",
            Value::Boolean(true),
        ),
        (
            "sbyte",
            DataType::Int8,
            "ns=2;s=Line1.SByte",
            Value::Int8(-8),
        ),
        (
            "byte",
            DataType::UInt8,
            "ns=2;s=Line1.Byte",
            Value::UInt8(200),
        ),
        (
            "int16",
            DataType::Int16,
            "ns=2;s=Line1.Int16",
            Value::Int16(-1600),
        ),
        (
            "uint16",
            DataType::UInt16,
            "ns=2;s=Line1.UInt16",
            Value::UInt16(65000),
        ),
        (
            "int32",
            DataType::Int32,
            "ns=2;s=Line1.Int32",
            Value::Int32(-320_000),
        ),
        (
            "uint32",
            DataType::UInt32,
            "ns=2;s=Line1.UInt32",
            Value::UInt32(4_000_000_000),
        ),
        (
            "int64",
            DataType::Int64,
            "ns=2;s=Line1.Int64",
            Value::Int64(-6_400_000_000),
        ),
        (
            "uint64",
            DataType::UInt64,
            "ns=2;s=Line1.UInt64",
            Value::UInt64(u64::MAX),
        ),
        (
            "float",
            DataType::Float,
            "ns=2;s=Line1.Float",
            Value::Float(1.5),
        ),
        (
            "double",
            DataType::Double,
            "ns=2;s=Line1.Double",
            Value::Double(std::f64::consts::E),
        ),
        (
            "string",
            DataType::String,
            "ns=2;s=Line1.String",
            Value::String("PUMP-07".into()),
        ),
        // 2024-05-06T07:08:09.123456Z
        (
            "datetime",
            DataType::DateTime,
            "ns=2;s=Line1.DateTime",
            Value::DateTime(Timestamp(1_714_979_289_123_456)),
        ),
    ]
}

fn tags() -> Vec<(&'static str, DataType, &'static str)> {
    typed().into_iter().map(|(n, t, a, _)| (n, t, a)).collect()
}

async fn reads_every_type(mode: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &[]);
    let mut tags = tags();
    tags.push(("counter", DataType::Int64, "ns=2;s=Line1.Counter"));
    let mut d = driver(
        &options(&server, dir.path(), &format!("mode: {mode}\n")),
        &tags,
    );
    d.connect().await.expect("connect");
    let readings = read_all(&mut d, tags.len()).await;
    for ((name, _, _, expected), r) in typed().into_iter().zip(&readings) {
        assert_eq!(r.quality, Quality::Good, "{name}");
        assert_eq!(r.value.as_ref(), Some(&expected), "{name}");
    }
    // The counter is an Int32 on the server, declared int64: converted, with the server's
    // source timestamp, which is recent.
    let counter = readings.last().expect("counter");
    assert!(
        matches!(counter.value, Some(Value::Int64(n)) if n > 0),
        "{counter:?}"
    );
    let t = counter.source_time.expect("source time").as_micros();
    assert!((Timestamp::now().as_micros() - t).abs() < 60_000_000, "{t}");
    // Values keep flowing, in order.
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 5 && start.elapsed() < Duration::from_secs(10) {
        let mut out = Vec::new();
        d.read(&mut out).await.expect("read");
        seen.extend(
            out.into_iter()
                .filter(|r| r.tag == 13)
                .filter_map(|r| r.value),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].as_f64() < w[1].as_f64()),
        "{seen:?}"
    );
    d.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_mode_reads_every_type_and_keeps_source_timestamps() {
    reads_every_type("subscription").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_reads_every_type_and_keeps_source_timestamps() {
    reads_every_type("polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_batches_reads_by_the_servers_max_nodes_per_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &["--bulk", "2300"]);
    let addresses: Vec<String> = (0..2300).map(|i| format!("ns=2;s=Bulk.{i}")).collect();
    let names: Vec<String> = (0..2300).map(|i| format!("b{i}")).collect();
    let tags: Vec<_> = names
        .iter()
        .zip(&addresses)
        .map(|(n, a)| (n.as_str(), DataType::UInt32, a.as_str()))
        .collect();
    let mut d = driver(&options(&server, dir.path(), "mode: polling\n"), &tags);
    d.connect().await.expect("connect");
    let before = server.log_lines().len();
    let mut out = Vec::new();
    d.read(&mut out).await.expect("read");
    assert_eq!(out.len(), 2300);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.value, Some(Value::UInt32(i as u32)), "{r:?}");
    }
    let reads: Vec<String> = server.log_lines()[before..]
        .iter()
        // `READ 1` is the session's keep-alive (a read of ServerStatus), which may land
        // in between.
        .filter(|l| l.starts_with("READ ") && l.as_str() != "READ 1")
        .cloned()
        .collect();
    assert_eq!(reads, ["READ 1000", "READ 1000", "READ 300"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_nodes_and_mismatched_types_are_bad_tags_not_link_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &[]);
    for mode in ["subscription", "polling"] {
        let tags = [
            (
                "speed_path",
                DataType::Double,
                "/Objects/2:Plant/2:Line1/2:Speed",
            ),
            ("speed_nsu", DataType::Float, "nsu=urn:uaedge:test;i=1001"),
            ("missing", DataType::Double, "ns=2;s=NoSuchNode"),
            ("missing_path", DataType::Double, "/Objects/2:Plant/2:Nope"),
            ("text_as_int", DataType::Int32, "ns=2;s=Line1.String"),
            ("too_big", DataType::UInt8, "ns=2;s=Line1.UInt16"),
            ("array", DataType::Int32, "ns=2;s=Line1.Array"),
            ("unknown_ns", DataType::Int32, "nsu=urn:nowhere;s=x"),
        ];
        let mut d = driver(
            &options(&server, dir.path(), &format!("mode: {mode}\n")),
            &tags,
        );
        d.connect().await.expect("connect");
        let r = read_all(&mut d, tags.len()).await;
        assert_eq!(r[0].value, Some(Value::Double(12.5)), "{mode}");
        assert_eq!(r[1].value, Some(Value::Float(12.5)), "{mode}");
        for bad in &r[2..] {
            assert_eq!(
                bad.quality,
                Quality::Bad(BadReason::ConfigError),
                "{mode} {}: {bad:?}",
                tags[bad.tag as usize].0
            );
        }
        // The link is fine: later reads still succeed.
        let mut out = Vec::new();
        d.read(&mut out).await.expect("still connected");
        d.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_server_as_the_declared_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &[]);
    let mut tags = tags();
    tags.push(("readonly", DataType::Double, "ns=2;s=Line1.ReadOnly"));
    tags.push(("int16_as_int32", DataType::Int32, "ns=2;s=Line1.Int16"));
    tags.push(("missing", DataType::Double, "ns=2;s=NoSuchNode"));
    let mut d = driver(&options(&server, dir.path(), "mode: polling\n"), &tags);
    d.connect().await.expect("connect");
    let new_values = [
        (Value::Boolean(false), "Boolean False"),
        (Value::Int8(-100), "SByte -100"),
        (Value::UInt8(7), "Byte 7"),
        (Value::Int16(-5), "Int16 -5"),
        (Value::UInt16(6), "UInt16 6"),
        (Value::Int32(-7), "Int32 -7"),
        (Value::UInt32(8), "UInt32 8"),
        (Value::Int64(-9_000_000_000), "Int64 -9000000000"),
        (Value::UInt64(10), "UInt64 10"),
        (Value::Float(0.25), "Float 0.25"),
        (Value::Double(-1.125), "Double -1.125"),
        (Value::String("VALVE-3".into()), "String 'VALVE-3'"),
        (
            Value::DateTime(Timestamp(1_000_000_000_000_000)),
            "DateTime datetime.datetime(2001, 9, 9, 1, 46, 40",
        ),
    ];
    for (i, (value, logged)) in new_values.iter().enumerate() {
        d.write(i as u32, value)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", tags[i].0));
        let node = tags[i].2;
        let lines = server.log_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("WRITE {node} {logged}")) && l.ends_with(" Good")),
            "{node}: {lines:?}"
        );
    }
    let mut out = Vec::new();
    d.read(&mut out).await.expect("read back");
    for (i, (value, _)) in new_values.iter().enumerate() {
        assert_eq!(out[i].value.as_ref(), Some(value), "{}", tags[i].0);
    }
    let n = new_values.len() as u32;
    assert_eq!(
        d.write(n, &Value::Double(2.0)).await,
        Err(WriteError::Rejected("BadUserAccessDenied".into()))
    );
    assert!(matches!(
        d.write(n + 1, &Value::Int32(1)).await,
        Err(WriteError::TypeMismatch(_))
    ));
    assert!(matches!(
        d.write(n + 2, &Value::Double(1.0)).await,
        Err(WriteError::Rejected(_))
    ));
    d.disconnect().await;
    assert!(matches!(
        d.write(0, &Value::Boolean(true)).await,
        Err(WriteError::Link(_))
    ));
}

/// A frozen server (socket open, no answers) is noticed through the keep-alive, the
/// driver reports it as a link error, and a new session starts once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_a_link_error_and_the_session_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &[]);
    let tags = [("counter", DataType::Int32, "ns=2;s=Line1.Counter")];
    let mut d = driver(&options(&server, dir.path(), ""), &tags);
    d.connect().await.expect("connect");
    read_all(&mut d, 1).await;
    server.signal("STOP");
    let start = Instant::now();
    let error = loop {
        let mut out = Vec::new();
        match d.read(&mut out).await {
            Err(e) => break e,
            Ok(()) => {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "no link error while frozen"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    eprintln!("frozen server noticed after {:?}: {error}", start.elapsed());
    d.disconnect().await;
    server.signal("CONT");
    let mut connected = false;
    for _ in 0..40 {
        if d.connect().await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(connected, "no new session after the server thawed");
    let r = read_all(&mut d, 1).await;
    assert_eq!(r[0].quality, Quality::Good);
}

/// Restarts the server a few times under one driver: each time the loss is reported,
/// `connect` builds everything anew, values flow, and no task is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restarts_recreate_the_subscription_without_leaking_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = UaServer::start(dir.path(), &["--generation", "0"]);
    let tags = [
        ("generation", DataType::UInt32, "ns=2;s=Line1.Generation"),
        ("counter", DataType::Int32, "ns=2;s=Line1.Counter"),
    ];
    let mut d = driver(&options(&server, dir.path(), ""), &tags);
    d.connect().await.expect("connect");
    read_all(&mut d, 2).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for generation in 1..=3u32 {
        server.restart(&["--generation", &generation.to_string()]);
        let start = Instant::now();
        loop {
            let mut out = Vec::new();
            if d.read(&mut out).await.is_err() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "restart went unnoticed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.disconnect().await;
        let start = Instant::now();
        while d.connect().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "no reconnect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = read_all(&mut d, 2).await;
        assert_eq!(r[0].value, Some(Value::UInt32(generation)));
        assert_eq!(
            metrics.num_alive_tasks(),
            baseline,
            "tasks after restart {generation}"
        );
    }
    d.disconnect().await;
}

/// Basic256Sha256 with SignAndEncrypt and a user name: asyncua makes its own certificate,
/// the driver makes its self-signed one under the temporary PKI folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_sign_and_encrypt_with_username() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_pki = dir.path().join("server-pki");
    let server = UaServer::start(
        dir.path(),
        &[
            "--secure",
            "--pki",
            &server_pki.display().to_string(),
            "--user",
            "operator",
            "--password",
            "s3cret",
        ],
    );
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").expect("password file");
    let secure = format!(
        "security_policy: Basic256Sha256\nsecurity_mode: SignAndEncrypt\ntrust_server_certificate: true\nusername: operator\npassword_file: {}\n",
        password.display()
    );
    let tags = [("speed", DataType::Double, "ns=2;i=1001")];
    let mut d = driver(&options(&server, &dir.path().join("pki"), &secure), &tags);
    d.connect().await.expect("connect with SignAndEncrypt");
    let r = read_all(&mut d, 1).await;
    assert_eq!(r[0].value, Some(Value::Double(12.5)));
    d.write(0, &Value::Double(3.5))
        .await
        .expect("encrypted write");
    assert!(server
        .log_lines()
        .iter()
        .any(|l| l == "WRITE ns=2;i=1001 Double 3.5 Good"));
    d.disconnect().await;
    assert!(
        dir.path().join("pki/own/cert.der").exists(),
        "self-signed client certificate"
    );

    // A wrong password is refused by the server.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope").expect("password file");
    let mut d = driver(
        &options(
            &server,
            &dir.path().join("pki"),
            &secure.replace(
                &password.display().to_string(),
                &wrong.display().to_string(),
            ),
        ),
        &tags,
    );
    assert!(d.connect().await.is_err(), "a wrong password was accepted");

    // Without trusting the server (and its certificate not in pki/trusted), no session.
    let untrusted = secure.replace(
        "trust_server_certificate: true",
        "trust_server_certificate: false",
    );
    let mut d = driver(
        &options(&server, &dir.path().join("pki2"), &untrusted),
        &tags,
    );
    assert!(
        d.connect().await.is_err(),
        "an untrusted server was accepted"
    );
}

/// A server with room for two sessions (as many PLCs have few), read by five devices that
/// name the same endpoint: they share one session, each with its own subscription, all
/// five deliver, and the session goes away with the last of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_devices_share_one_session_on_a_server_that_allows_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = UaServer::start(dir.path(), &["--max-sessions", "2"]);
    let tags = [
        ("counter", DataType::Int32, "ns=2;s=Line1.Counter"),
        ("sessions", DataType::UInt32, "ns=2;s=Line1.Sessions"),
    ];
    let opts = options(&server, dir.path(), "");
    let mut devices: Vec<_> = (0..5).map(|_| driver(&opts, &tags)).collect();
    let connected =
        futures::future::join_all(devices.iter_mut().map(|d| async move { d.connect().await }))
            .await;
    for (i, c) in connected.into_iter().enumerate() {
        c.unwrap_or_else(|e| panic!("device {i}: {e}"));
    }
    let mut latest = Vec::new();
    for d in devices.iter_mut() {
        let mut seen = read_all(d, 2).await;
        assert_eq!(seen[0].quality, Quality::Good);
        // The counter keeps coming on every device's own subscription.
        let start = seen[0].value.clone();
        let moved = until(d, &mut seen, |r| {
            r[0].value.is_some() && r[0].value != start
        })
        .await;
        assert!(moved, "the counter did not move");
        latest.push(seen);
    }
    let one = until(&mut devices[0], &mut latest[0], |r| {
        r[1].value == Some(Value::UInt32(1))
    })
    .await;
    assert!(one, "five devices, one session: {:?}", latest[0][1]);
    for d in devices.iter_mut() {
        d.close().await;
    }
    // The session was closed, not left to time out: a new device gets a slot and is alone.
    let mut d = driver(&options(&server, dir.path(), ""), &tags);
    d.connect().await.expect("a slot is free");
    let mut seen = read_all(&mut d, 2).await;
    let alone = until(&mut d, &mut seen, |r| r[1].value == Some(Value::UInt32(1))).await;
    assert!(alone, "the first session was not closed");
    d.close().await;
}

/// Reads into `latest` (each tag's latest reading) until `check` holds, for up to 10 s.
async fn until(
    d: &mut Box<dyn uaedge_driver::Driver>,
    latest: &mut [uaedge_driver::Reading],
    check: impl Fn(&[uaedge_driver::Reading]) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if check(latest) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut out = Vec::new();
        d.read(&mut out).await.expect("read");
        for r in out {
            let i = r.tag as usize;
            latest[i] = r;
        }
    }
    false
}
