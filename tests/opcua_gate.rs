//! The OPC UA port under abuse: 200 connections that are not OPC UA (an HTTP request,
//! random bytes, nothing at all, a valid Hello followed by junk) leave a handful of log
//! lines and a counter in `/metrics`, and a real client still gets its session.

mod common;
mod opcua_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use opcua_support::Scada;
use serde_json::json;

fn hello(url: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [0u32, 65535, 65535, 0, 0] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(url.len() as i32).to_le_bytes());
    body.extend_from_slice(url.as_bytes());
    let mut m = b"HELF".to_vec();
    m.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
    m.extend(body);
    m
}

/// Bytes that look random but are the same on every run.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One connection that never becomes a secure channel; waits until the server hangs up.
fn abuse(addr: SocketAddr, kind: usize, url: &str) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    match kind {
        0 => s
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send"),
        1 => s.write_all(&noise(kind as u64, 300)).expect("send"),
        2 => {
            // Connect and say nothing: the port scanner's way.
            return;
        }
        _ => {
            s.write_all(&hello(url)).expect("hello");
            let mut ack = [0u8; 8];
            s.read_exact(&mut ack).expect("acknowledge");
            assert_eq!(&ack[..4], b"ACKF", "a valid Hello is answered");
            s.write_all(&noise(kind as u64, 64)).expect("junk");
        }
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    body
}

/// A uaedge with an anonymous None endpoint and a metrics port, once both listen and its
/// OPC UA port takes connections: the child, its log lines and the two ports.
///
/// A port `free_port` handed out may be taken again before uaedge binds it (the other
/// test here starts a uaedge at the same time, whose internal OPC UA listener takes an
/// ephemeral port): a scrape would then reach that listener and be reset. Such a start
/// logs "not started" and is tried again on other ports.
fn start(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    u16,
    u16,
) {
    for _ in 0..3 {
        let (opcua, metrics) = (common::free_port(), common::free_port());
        let config = dir.join("gate.yaml");
        std::fs::write(
            &config,
            format!(
                "node: {{ name: gate }}\nstate_dir: {}\nlog: {{ level: info }}\nmetrics: {{ listen: 127.0.0.1:{metrics} }}\n\
                 opcua: {{ listen: 127.0.0.1:{opcua}, endpoints: [none], anonymous: read }}\n\
                 devices:\n  - name: cell\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n      \
                 - {{ name: count, type: uint32, address: Count, options: {{ signal: counter }} }}\n",
                dir.join("state").display()
            ),
        )
        .expect("config");
        let (mut child, lines) = common::spawn_uaedge(&config);
        let (mut server, mut endpoint) = (false, false);
        let started = common::wait_for(
            Duration::from_secs(60),
            "the OPC UA server and the metrics endpoint",
            || {
                for line in lines.try_iter() {
                    server |= line.contains("OPC UA address space ready");
                    endpoint |= line.contains("metrics endpoint listening");
                    if line.contains("not started") {
                        return Some(false);
                    }
                }
                (server && endpoint).then_some(true)
            },
        );
        if !started {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], opcua));
        common::wait_for(Duration::from_secs(10), "the OPC UA port", || {
            TcpStream::connect(addr).ok()
        });
        return (child, lines, opcua, metrics);
    }
    panic!("uaedge could not bind its ports in three tries");
}

#[test]
fn garbage_connections_are_counted_not_logged_one_by_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, lines, opcua, metrics) = start(dir.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], opcua));
    let url = format!("opc.tcp://127.0.0.1:{opcua}/");
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], metrics));
    let failures = || {
        metric(
            &scrape(metrics_addr),
            "uaedge_opcua_handshake_failures_total",
        )
    };
    // The probe above was a connection that said nothing: counted like the rest.
    let before = common::wait_for(Duration::from_secs(10), "the probe counted", || {
        failures().filter(|&n| n >= 1.0)
    });
    // Let start-up lines through before counting; the probe's warning is among them.
    std::thread::sleep(Duration::from_millis(300));
    let early: Vec<String> = lines.try_iter().collect();

    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|kind| {
            let url = url.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    abuse(addr, kind, &url);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("abuse thread");
    }
    let mut seen = None;
    let counted = common::eventually_sync(Duration::from_secs(20), || {
        seen = failures();
        (seen == Some(before + 200.0)).then_some(())
    });
    assert!(
        counted.is_some(),
        "failures counted: {seen:?}, want {before} + 200"
    );
    let logged: Vec<String> = lines.try_iter().collect();
    assert!(
        logged.len() <= 5,
        "{} lines for 200 bad connections in {:?}:\n{}",
        logged.len(),
        started.elapsed(),
        logged.join("\n")
    );
    let warnings = early
        .iter()
        .chain(&logged)
        .filter(|l| l.contains("WARN") && l.contains("before its secure channel opened"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning a minute for the address: {early:?} {logged:?}"
    );

    // A real client is not disturbed.
    let mut scada = Scada::start();
    scada.connect_none(&url);
    let value = scada.read_one("ns=2;s=cell/count");
    assert_eq!(value["status"], json!("Good"), "{value}");
    drop(scada);
    let body = scrape(metrics_addr);
    assert_eq!(
        metric(&body, "uaedge_opcua_handshake_failures_total"),
        Some(before + 200.0),
        "a good session is no failure"
    );
    assert!(metric(&body, "uaedge_opcua_connections_total").is_some_and(|n| n >= 201.0));
    let _ = child.kill();
    let _ = child.wait();
}

/// An Argument ExtensionObject whose ValueRank asks for 2,147,483,647 array dimensions
/// and gives none: async-opcua 0.19's own decoder pads them, 8 GiB of zeros.
fn hostile_argument() -> Vec<u8> {
    use opcua::types::{BinaryEncodable, ContextOwned, LocalizedText, NodeId, ObjectId, UAString};
    let owned = ContextOwned::default();
    let ctx = owned.context();
    let mut body = Vec::new();
    UAString::from("a").encode(&mut body, &ctx).expect("name");
    NodeId::null().encode(&mut body, &ctx).expect("data type");
    i32::MAX.encode(&mut body, &ctx).expect("value rank");
    Some(Vec::<u32>::new())
        .encode(&mut body, &ctx)
        .expect("dimensions");
    LocalizedText::null()
        .encode(&mut body, &ctx)
        .expect("description");
    let mut out = Vec::new();
    NodeId::new(0, ObjectId::Argument_Encoding_DefaultBinary as u32)
        .encode(&mut out, &ctx)
        .expect("type id");
    out.push(1);
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.extend(body);
    out
}

/// A client's first OpenSecureChannel over None, carrying `additional` as its request
/// header's AdditionalHeader.
fn open_with_header(additional: &[u8]) -> Vec<u8> {
    use opcua::types::{
        BinaryEncodable, ByteString, ContextOwned, DateTime, NodeId, ObjectId, UAString,
    };
    let owned = ContextOwned::default();
    let ctx = owned.context();
    let mut m = Vec::new();
    let request = ObjectId::OpenSecureChannelRequest_Encoding_DefaultBinary as u32;
    NodeId::new(0, request).encode(&mut m, &ctx).expect("type");
    NodeId::null().encode(&mut m, &ctx).expect("token");
    DateTime::now().encode(&mut m, &ctx).expect("timestamp");
    for v in [1u32, 0] {
        v.encode(&mut m, &ctx).expect("handle, diagnostics");
    }
    UAString::null().encode(&mut m, &ctx).expect("audit entry");
    10_000u32.encode(&mut m, &ctx).expect("timeout hint");
    m.extend_from_slice(additional);
    // Protocol version, Issue, security mode None, no nonce, a minute's lifetime.
    for v in [0u32, 0, 1] {
        v.encode(&mut m, &ctx).expect("open");
    }
    ByteString::null().encode(&mut m, &ctx).expect("nonce");
    60_000u32.encode(&mut m, &ctx).expect("lifetime");
    let mut chunk = Vec::new();
    0u32.encode(&mut chunk, &ctx).expect("channel");
    UAString::from("http://opcfoundation.org/UA/SecurityPolicy#None")
        .encode(&mut chunk, &ctx)
        .expect("policy");
    ByteString::null()
        .encode(&mut chunk, &ctx)
        .expect("certificate");
    ByteString::null()
        .encode(&mut chunk, &ctx)
        .expect("thumbprint");
    for v in [1u32, 1] {
        v.encode(&mut chunk, &ctx).expect("sequence, request id");
    }
    chunk.extend(m);
    let mut out = b"OPNF".to_vec();
    out.extend_from_slice(&((8 + chunk.len()) as u32).to_le_bytes());
    out.extend(chunk);
    out
}

/// One whole message (all of its chunk) from the server.
fn message(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).expect("a message header");
    let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut m = head.to_vec();
    m.resize(size.max(8), 0);
    s.read_exact(&mut m[8..]).expect("a message body");
    m
}

#[test]
fn an_extension_object_built_to_exhaust_memory_costs_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _lines, opcua, _) = start(dir.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], opcua));
    let url = format!("opc.tcp://127.0.0.1:{opcua}/");
    let before = common::proc_status_kib(child.id(), "VmHWM").expect("uaedge is running");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&hello(&url)).expect("hello");
    assert!(message(&mut s).starts_with(b"ACKF"));
    s.write_all(&open_with_header(&hostile_argument()))
        .expect("open");
    // Answered at once, the header decoded with the dimensions it was sent with (without
    // the fix: 40 s of writing zeros in a debug build, past this read's timeout).
    let answer = message(&mut s);
    assert!(
        [&b"OPNF"[..], b"MSGF", b"ERRF"].contains(&&answer[..4]),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(64)])
    );
    drop(s);
    let after = common::proc_status_kib(child.id(), "VmHWM").expect("uaedge is running");
    assert!(
        after < before + 100_000,
        "the peak RSS went from {before} kB to {after} kB"
    );
    // The same request with an ordinary (empty) header opens a channel, and a real client
    // still gets its session.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&hello(&url)).expect("hello");
    assert!(message(&mut s).starts_with(b"ACKF"));
    s.write_all(&open_with_header(&[0, 0, 0])).expect("open");
    let answer = message(&mut s);
    assert_eq!(
        &answer[..4],
        b"OPNF",
        "an ordinary OpenSecureChannel is answered"
    );
    drop(s);
    let mut scada = Scada::start();
    scada.connect_none(&url);
    let value = scada.read_one("ns=2;s=cell/count");
    assert_eq!(value["status"], json!("Good"), "{value}");
    let _ = child.kill();
    let _ = child.wait();
}
