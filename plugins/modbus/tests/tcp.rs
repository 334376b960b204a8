//! The driver against an in-process Modbus TCP device on 127.0.0.1, through the `Driver` trait.

mod common;

use std::time::{Duration, Instant};

use common::{driver, read, tcp_options, values, wire, Deadline, Framing, Server, TagDef};
use tokio_modbus::{ExceptionCode, Request};
use uaedge_driver::{BadReason, DataType, LinkErrorKind, Quality, Value, WriteError};
use uaedge_modbus::{ByteOrder, Table};

const ORDERS: [ByteOrder; 4] = [
    ByteOrder::Abcd,
    ByteOrder::Cdab,
    ByteOrder::Badc,
    ByteOrder::Dcba,
];

#[tokio::test]
async fn every_type_in_every_byte_order() {
    let server = Server::start(Framing::Tcp).await;
    let samples: Vec<(DataType, Value, Vec<u8>)> = vec![
        (
            DataType::Int16,
            Value::Int16(-12345),
            (-12345i16).to_be_bytes().to_vec(),
        ),
        (
            DataType::UInt16,
            Value::UInt16(0xBEEF),
            0xBEEFu16.to_be_bytes().to_vec(),
        ),
        (
            DataType::Int32,
            Value::Int32(-123_456_789),
            (-123_456_789i32).to_be_bytes().to_vec(),
        ),
        (
            DataType::UInt32,
            Value::UInt32(0xDEAD_BEEF),
            0xDEAD_BEEFu32.to_be_bytes().to_vec(),
        ),
        (
            DataType::Float,
            Value::Float(123.456),
            123.456f32.to_be_bytes().to_vec(),
        ),
        (
            DataType::Int64,
            Value::Int64(-1_234_567_890_123),
            (-1_234_567_890_123i64).to_be_bytes().to_vec(),
        ),
        (
            DataType::UInt64,
            Value::UInt64(0x0102_0304_0506_0708),
            0x0102_0304_0506_0708u64.to_be_bytes().to_vec(),
        ),
        (
            DataType::Double,
            Value::Double(-9876.54321),
            (-9876.54321f64).to_be_bytes().to_vec(),
        ),
    ];
    let mut defs: Vec<(String, DataType, String, String)> = Vec::new();
    let mut expected = Vec::new();
    let mut at = 0u16;
    for order in ORDERS {
        for (t, v, be) in &samples {
            let regs = wire(be, order);
            server.device().set_holding(1, at, &regs);
            defs.push((
                format!("{t}_{order}"),
                *t,
                format!("hr:{at}"),
                format!("byte_order: {order}"),
            ));
            expected.push(Some(v.clone()));
            at += regs.len() as u16;
        }
    }
    // The float32 vector of the documentation, checked by hand rather than by `wire`.
    assert_eq!(
        wire(&123.456f32.to_be_bytes(), ByteOrder::Cdab),
        [0xE979, 0x42F6]
    );

    // 8-bit values take the low byte; strings trim padding; bits come from coils, discrete
    // inputs and register bits.
    {
        let mut d = server.device();
        d.set_holding(
            1,
            500,
            &[0x12FE, 0x0041, 0x4845, 0x4C4C, 0x4F00, 0x0000, 0x0028],
        );
        d.input.insert((1, 7), 0x8001);
        d.coils.insert((1, 3), true);
        d.discrete.insert((1, 9), true);
    }
    let extra: [(&str, DataType, &str, &str, Value); 9] = [
        ("i8", DataType::Int8, "hr:500", "", Value::Int8(-2)),
        ("u8", DataType::UInt8, "hr:501", "", Value::UInt8(0x41)),
        (
            "str",
            DataType::String,
            "hr:502",
            "length: 8",
            Value::String("HELLO".into()),
        ),
        (
            "bit3",
            DataType::Boolean,
            "hr:506.3",
            "",
            Value::Boolean(true),
        ),
        (
            "bit0",
            DataType::Boolean,
            "hr:506.0",
            "",
            Value::Boolean(false),
        ),
        (
            "ir15",
            DataType::Boolean,
            "300008.15",
            "",
            Value::Boolean(true),
        ),
        (
            "coil",
            DataType::Boolean,
            "000004",
            "",
            Value::Boolean(true),
        ),
        (
            "coil_off",
            DataType::Boolean,
            "coil:4",
            "",
            Value::Boolean(false),
        ),
        ("di", DataType::Boolean, "100010", "", Value::Boolean(true)),
    ];
    for (name, t, address, opts, v) in &extra {
        defs.push((name.to_string(), *t, address.to_string(), opts.to_string()));
        expected.push(Some(v.clone()));
    }

    let tags: Vec<TagDef<'_>> = defs
        .iter()
        .map(|(n, t, a, o)| (n.as_str(), *t, a.as_str(), false, o.as_str()))
        .collect();
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();
    let readings = read(&mut d).await;
    assert_eq!(readings.len(), tags.len());
    assert!(readings
        .iter()
        .enumerate()
        .all(|(i, r)| r.tag == i as u32 && r.quality == Quality::Good));
    assert_eq!(values(&readings), expected);
}

#[tokio::test]
async fn adjacent_tags_are_read_in_one_request() {
    let server = Server::start(Framing::Tcp).await;
    server
        .device()
        .set_holding(1, 100, &(0..10).collect::<Vec<u16>>());
    let names: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let addresses: Vec<String> = (0..10).map(|i| format!("hr:{}", 100 + i)).collect();
    let mut tags: Vec<TagDef<'_>> = (0..10)
        .map(|i| {
            (
                names[i].as_str(),
                DataType::UInt16,
                addresses[i].as_str(),
                false,
                "",
            )
        })
        .collect();
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();
    let readings = read(&mut d).await;
    assert_eq!(
        values(&readings),
        (0..10).map(|i| Some(Value::UInt16(i))).collect::<Vec<_>>()
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(
        server.device().requests[0],
        (1, Request::ReadHoldingRegisters(100, 10))
    );

    // A gap wider than max_gap, another table and a size limit each start a new request.
    tags.push(("far", DataType::UInt16, "hr:200", false, ""));
    tags.push(("coil", DataType::Boolean, "coil:0", false, ""));
    let mut d = driver(
        &tcp_options(&server, "max_registers_per_request: 5\n"),
        &tags,
    );
    d.connect().await.unwrap();
    server.clear_requests();
    assert_eq!(read(&mut d).await.len(), 12);
    let requests: Vec<Request<'static>> = server
        .device()
        .requests
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(
        requests,
        [
            Request::ReadCoils(0, 1),
            Request::ReadHoldingRegisters(100, 5),
            Request::ReadHoldingRegisters(105, 5),
            Request::ReadHoldingRegisters(200, 1),
        ]
    );
    // Polling again sends the same requests: the plan is fixed.
    server.clear_requests();
    read(&mut d).await;
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn an_exception_turns_only_its_request_bad() {
    let server = Server::start(Framing::Tcp).await;
    server.device().set_holding(1, 0, &[1, 2]);
    server.device().set_holding(1, 100, &[3]);
    server.device().exceptions.insert(
        (1, Table::HoldingRegister, 100),
        ExceptionCode::ServerDeviceFailure,
    );
    let tags: [TagDef<'_>; 3] = [
        ("a", DataType::UInt16, "hr:0", false, ""),
        ("b", DataType::UInt16, "hr:1", false, ""),
        ("c", DataType::UInt16, "hr:100", false, ""),
    ];
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();
    for _ in 0..2 {
        let r = read(&mut d).await;
        assert_eq!(
            values(&r),
            [Some(Value::UInt16(1)), Some(Value::UInt16(2)), None]
        );
        assert_eq!(r[2].quality, Quality::Bad(BadReason::DeviceFailure));
        assert!(r[0].quality.is_good() && r[1].quality.is_good());
    }
    server.device().exceptions.clear();
    let r = read(&mut d).await;
    assert_eq!(r[2].value, Some(Value::UInt16(3)));
}

#[tokio::test]
async fn illegal_data_address_in_a_merged_read_falls_back_to_single_reads() {
    let server = Server::start(Framing::Tcp).await;
    server.device().set_holding(1, 0, &[10, 11, 12]);
    server.device().exceptions.insert(
        (1, Table::HoldingRegister, 1),
        ExceptionCode::IllegalDataAddress,
    );
    let tags: [TagDef<'_>; 3] = [
        ("a", DataType::UInt16, "hr:0", false, ""),
        ("gone", DataType::UInt16, "hr:1", false, ""),
        ("c", DataType::UInt16, "hr:2", false, ""),
    ];
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();
    let r = read(&mut d).await;
    assert_eq!(
        values(&r),
        [Some(Value::UInt16(10)), None, Some(Value::UInt16(12))]
    );
    assert_eq!(r[1].quality, Quality::Bad(BadReason::DeviceFailure));
    assert_eq!(server.requests(), 4, "the merged read, then one per tag");

    server.clear_requests();
    let r = read(&mut d).await;
    assert_eq!(
        values(&r),
        [Some(Value::UInt16(10)), None, Some(Value::UInt16(12))]
    );
    assert_eq!(server.requests(), 3, "the merged read is not tried again");
}

#[tokio::test]
async fn a_stopped_device_is_a_link_error_and_reconnect_works() {
    let mut server = Server::start(Framing::Tcp).await;
    server.device().set_holding(1, 0, &[42]);
    let tags: [TagDef<'_>; 1] = [("a", DataType::UInt16, "hr:0", false, "")];
    let mut d = driver(&tcp_options(&server, "timeout: 300ms\n"), &tags);

    let mut out = Vec::new();
    let err = d.read(&mut out).await.unwrap_err();
    assert_eq!(err.kind, LinkErrorKind::NotConnected, "read before connect");

    d.connect().await.unwrap();
    assert_eq!(values(&read(&mut d).await), [Some(Value::UInt16(42))]);

    server.stop().await;
    let deadline = Deadline::after(Duration::from_secs(5));
    let err = loop {
        let mut out = Vec::new();
        if let Err(e) = d.read(&mut out).await {
            break e;
        }
        deadline.tick("the read to fail").await;
    };
    assert!(
        matches!(
            err.kind,
            LinkErrorKind::NotConnected | LinkErrorKind::Protocol
        ),
        "{err:?}"
    );
    let err = d.connect().await.unwrap_err();
    assert_eq!(err.kind, LinkErrorKind::NotConnected, "{err:?}");
    let err = d.write(0, &Value::UInt16(1)).await.unwrap_err();
    assert!(matches!(err, WriteError::NotWritable), "{err:?}");

    server.restart();
    server.device().set_holding(1, 0, &[43]);
    d.connect().await.unwrap();
    assert_eq!(values(&read(&mut d).await), [Some(Value::UInt16(43))]);
    assert_eq!(server.device().connections, 2);
}

#[tokio::test]
async fn writes_reach_the_device() {
    let mut server = Server::start(Framing::Tcp).await;
    server.device().set_holding(1, 20, &[0x00F0]);
    let tags: [TagDef<'_>; 9] = [
        ("u16", DataType::UInt16, "hr:0", true, ""),
        ("f32", DataType::Float, "hr:2", true, "byte_order: CDAB"),
        ("u64", DataType::UInt64, "hr:4", true, ""),
        ("coil", DataType::Boolean, "coil:7", true, ""),
        ("bit", DataType::Boolean, "hr:20.0", true, ""),
        ("name", DataType::String, "hr:10", true, "length: 5"),
        ("i8", DataType::Int8, "hr:30", true, ""),
        ("ro", DataType::UInt16, "hr:40", false, ""),
        ("other_unit", DataType::Int16, "hr:0", true, "unit_id: 9"),
    ];
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();

    d.write(0, &Value::UInt16(0xABCD)).await.unwrap();
    d.write(1, &Value::Float(123.456)).await.unwrap();
    d.write(2, &Value::UInt64(0x0102_0304_0506_0708))
        .await
        .unwrap();
    d.write(3, &Value::Boolean(true)).await.unwrap();
    d.write(4, &Value::Boolean(true)).await.unwrap();
    d.write(5, &Value::String("AB".into())).await.unwrap();
    d.write(6, &Value::Int8(-1)).await.unwrap();
    d.write(8, &Value::Int16(-5)).await.unwrap();
    {
        let dev = server.device();
        assert_eq!(dev.holding(1, 0, 1), [0xABCD]);
        assert_eq!(dev.holding(1, 2, 2), [0xE979, 0x42F6]);
        assert_eq!(dev.holding(1, 4, 4), [0x0102, 0x0304, 0x0506, 0x0708]);
        assert_eq!(dev.coils.get(&(1, 7)), Some(&true));
        assert_eq!(dev.holding(1, 20, 1), [0x00F1]);
        assert_eq!(dev.holding(1, 10, 3), [0x4142, 0, 0]);
        assert_eq!(dev.holding(1, 30, 1), [0xFFFF]);
        assert_eq!(dev.holding(9, 0, 1), [0xFFFB]);
        let kinds: Vec<&str> = dev
            .requests
            .iter()
            .map(|(_, r)| match r {
                Request::WriteSingleRegister(..) => "single",
                Request::WriteMultipleRegisters(..) => "multiple",
                Request::WriteSingleCoil(..) => "coil",
                Request::MaskWriteRegister(..) => "mask",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["single", "multiple", "multiple", "coil", "mask", "multiple", "single", "single"]
        );
    }
    // Written values read back through the driver.
    let r = read(&mut d).await;
    assert_eq!(r[1].value, Some(Value::Float(123.456)));
    assert_eq!(r[5].value, Some(Value::String("AB".into())));
    assert_eq!(r[6].value, Some(Value::Int8(-1)));

    // A device without mask write: the bit goes through read-modify-write, once detected.
    server.device().no_mask_write = true;
    server.clear_requests();
    d.write(4, &Value::Boolean(false)).await.unwrap();
    d.write(4, &Value::Boolean(true)).await.unwrap();
    d.write(4, &Value::Boolean(false)).await.unwrap();
    assert_eq!(server.device().holding(1, 20, 1), [0x00F0]);
    assert_eq!(
        server.requests(),
        1 + 2 * 3,
        "one refused mask write, then read+write each"
    );

    // Refusals, wrong values, read-only tags, and a dead link.
    server.device().exceptions.insert(
        (1, Table::HoldingRegister, 0),
        ExceptionCode::IllegalDataValue,
    );
    let err = d.write(0, &Value::UInt16(1)).await.unwrap_err();
    assert_eq!(err, WriteError::Rejected("IllegalDataValue".into()));
    assert_eq!(
        d.write(7, &Value::UInt16(1)).await,
        Err(WriteError::NotWritable)
    );
    assert_eq!(
        d.write(99, &Value::UInt16(1)).await,
        Err(WriteError::NotWritable)
    );
    assert!(matches!(
        d.write(5, &Value::String("too long".into())).await,
        Err(WriteError::TypeMismatch(_))
    ));
    assert!(matches!(
        d.write(6, &Value::Int32(300)).await,
        Err(WriteError::TypeMismatch(_))
    ));
    // Values of another numeric type are converted when they fit.
    d.write(6, &Value::Int32(5)).await.unwrap();
    assert_eq!(server.device().holding(1, 30, 1), [5]);

    server.stop().await;
    let deadline = Deadline::after(Duration::from_secs(5));
    let err = loop {
        if let Err(e) = d.write(6, &Value::Int8(1)).await {
            break e;
        }
        deadline.tick("the write to fail").await;
    };
    assert!(matches!(err, WriteError::Link(_)), "{err:?}");
}

#[tokio::test]
async fn several_units_share_one_connection() {
    let server = Server::start(Framing::Tcp).await;
    for unit in 1..=3u8 {
        server
            .device()
            .set_holding(unit, 0, &[u16::from(unit) * 100, 7]);
    }
    let tags: [TagDef<'_>; 4] = [
        ("u1", DataType::UInt16, "hr:0", false, ""),
        ("u2", DataType::UInt16, "hr:0", false, "unit_id: 2"),
        ("u3", DataType::UInt16, "hr:0", false, "unit_id: 3"),
        ("u2b", DataType::UInt16, "hr:1", false, "unit_id: 2"),
    ];
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();
    let r = read(&mut d).await;
    assert_eq!(
        values(&r),
        [
            Some(Value::UInt16(100)),
            Some(Value::UInt16(200)),
            Some(Value::UInt16(300)),
            Some(Value::UInt16(7)),
        ]
    );
    let dev = server.device();
    assert_eq!(dev.connections, 1);
    let mut units: Vec<u8> = dev.requests.iter().map(|(u, _)| *u).collect();
    units.sort();
    assert_eq!(units, [1, 2, 3], "one request per unit");
}

#[tokio::test]
async fn a_silent_device_times_out_within_the_configured_timeout() {
    let server = Server::start(Framing::Tcp).await;
    server.device().silent = true;
    let tags: [TagDef<'_>; 1] = [("a", DataType::UInt16, "hr:0", false, "")];

    let mut d = driver(&tcp_options(&server, "timeout: 200ms\nretries: 0\n"), &tags);
    d.connect().await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let err = d.read(&mut out).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, LinkErrorKind::Timeout, "{err:?}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(700),
        "{took:?}"
    );
    assert!(out.is_empty());

    // With one retry the request goes out twice, and the whole read still ends in time.
    server.clear_requests();
    let mut d = driver(&tcp_options(&server, "timeout: 200ms\nretries: 1\n"), &tags);
    d.connect().await.unwrap();
    let started = Instant::now();
    let err = d.read(&mut out).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, LinkErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(900),
        "{took:?}"
    );
    assert_eq!(server.requests(), 2);

    // The timed-out connection is dropped: the runtime's reconnect starts clean.
    let err = d.read(&mut out).await.unwrap_err();
    assert_eq!(err.kind, LinkErrorKind::NotConnected);
    server.device().silent = false;
    d.connect().await.unwrap();
    assert_eq!(values(&read(&mut d).await), [Some(Value::UInt16(0))]);
}
