//! RTU framing (slave id + PDU + CRC, no MBAP header) through `rtu-over-tcp`, against an
//! in-process RTU-over-TCP device.

mod common;

use std::time::Duration;

use common::{driver, read, tcp_options, values, Framing, Server, TagDef};
use tokio_modbus::{ExceptionCode, Request};
use uaedge_driver::{BadReason, DataType, LinkErrorKind, Quality, Value, WriteError};
use uaedge_modbus::Table;

#[tokio::test]
async fn reads_and_writes_with_rtu_framing() {
    let server = Server::start(Framing::RtuOverTcp).await;
    {
        let mut dev = server.device();
        dev.set_holding(1, 0, &[0x42F6, 0xE979, 0x0102, 0x0304, 0x0506, 0x0708]);
        dev.set_holding(5, 10, &[0x4F4B, 0x2020]);
        dev.input.insert((1, 3), 0xFFFE);
        dev.coils.insert((1, 0), true);
    }
    let tags: [TagDef<'_>; 6] = [
        ("f", DataType::Float, "hr:0", true, ""),
        ("u64", DataType::UInt64, "hr:2", false, ""),
        (
            "s",
            DataType::String,
            "hr:10",
            false,
            "unit_id: 5\nlength: 4",
        ),
        ("i", DataType::Int16, "ir:3", false, ""),
        ("c", DataType::Boolean, "coil:0", true, ""),
        ("bad", DataType::UInt16, "ir:50", false, ""),
    ];
    server.device().exceptions.insert(
        (1, Table::InputRegister, 50),
        ExceptionCode::IllegalDataAddress,
    );
    let mut d = driver(&tcp_options(&server, ""), &tags);
    d.connect().await.unwrap();

    let r = read(&mut d).await;
    assert_eq!(
        values(&r),
        [
            Some(Value::Float(123.456)),
            Some(Value::UInt64(0x0102_0304_0506_0708)),
            Some(Value::String("OK".into())),
            Some(Value::Int16(-2)),
            Some(Value::Boolean(true)),
            None,
        ]
    );
    assert_eq!(r[5].quality, Quality::Bad(BadReason::DeviceFailure));
    let units: Vec<u8> = server.device().requests.iter().map(|(u, _)| *u).collect();
    assert_eq!(units.iter().filter(|u| **u == 5).count(), 1);
    assert!(server
        .device()
        .requests
        .contains(&(1, Request::ReadHoldingRegisters(0, 6))));

    d.write(0, &Value::Float(-1.5)).await.unwrap();
    d.write(4, &Value::Boolean(false)).await.unwrap();
    assert_eq!(server.device().holding(1, 0, 2), [0xBFC0, 0x0000]);
    assert_eq!(server.device().coils.get(&(1, 0)), Some(&false));

    server.device().exceptions.insert(
        (1, Table::HoldingRegister, 0),
        ExceptionCode::IllegalDataValue,
    );
    assert_eq!(
        d.write(0, &Value::Float(1.0)).await,
        Err(WriteError::Rejected("IllegalDataValue".into()))
    );
    // The link survived every exception.
    assert_eq!(read(&mut d).await.len(), 6);
}

#[tokio::test]
async fn a_silent_rtu_device_times_out() {
    let server = Server::start(Framing::RtuOverTcp).await;
    server.device().silent = true;
    let tags: [TagDef<'_>; 1] = [("a", DataType::UInt16, "hr:0", false, "")];
    let mut d = driver(&tcp_options(&server, "timeout: 150ms\nretries: 0\n"), &tags);
    d.connect().await.unwrap();
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    let err = d.read(&mut out).await.unwrap_err();
    assert_eq!(err.kind, LinkErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_millis(600));
}
