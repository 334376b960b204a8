//! Drives the real driver through the `Driver` trait, with a hand-set clock.

#[path = "../../sim/testing/harness.rs"]
mod harness;

use harness::{at_ms, block_on, quality, read, value, T0};
use uaedge_driver::{
    BadReason, DataType, Driver, DriverFactory, LinkErrorKind, Quality, Value, WriteError,
};
use uaedge_enip_sim::{EnipSimDriver, EnipSimFactory};
use uaedge_sim::ManualClock;

fn load(yaml: &str, clock: &ManualClock) -> Result<EnipSimDriver, String> {
    harness::load(&EnipSimFactory, "enip-sim", yaml, clock, EnipSimDriver::new)
}

fn doc_example() -> String {
    harness::doc_example(include_str!("../src/lib.rs"))
}

fn parse_err(address: &str, t: DataType, options: &str) -> String {
    harness::parse_err(&EnipSimFactory, address, t, options)
}

#[test]
fn the_documented_packaging_line_loads_and_reads_typed_values() {
    let clock = ManualClock::new(T0);
    let mut d = load(&doc_example(), &clock).expect("example loads");
    block_on(d.connect()).expect("connect");
    let r = read(&mut d);
    assert_eq!(r.len(), 8);
    assert!(r
        .iter()
        .all(|r| r.quality.is_good() && r.source_time == Some(T0)));
    assert!(matches!(value(&r, 0), Some(Value::Float(v)) if (v - 42.0).abs() < 1.5));
    let Some(Value::Float(current)) = value(&r, 1) else {
        panic!("current")
    };
    assert_eq!(value(&r, 2), Some(Value::Boolean(true)));
    assert_eq!(
        value(&r, 3),
        Some(Value::Double(24.0)),
        "REAL widened to float64"
    );
    assert_eq!(
        value(&r, 4),
        Some(Value::Boolean(true)),
        "jam pulse at the start of its period"
    );
    assert_eq!(value(&r, 5), Some(Value::Int64(0)));
    assert_eq!(value(&r, 6), Some(Value::Float(42.0)));
    assert_eq!(value(&r, 7), Some(Value::String("CEREAL-500G".into())));
    let assembly = d.image("@4/100/3").expect("assembly");
    assert_eq!(assembly[..4], current.to_le_bytes(), "CIP is little-endian");
    assert_eq!(assembly[4], 1);
    assert_eq!(d.image("program:main.status"), Some(&[0b1000, 0, 0, 0][..]));
    clock.advance(std::time::Duration::from_secs(3));
    let r = read(&mut d);
    assert_eq!(r.len(), 8 * 6);
    assert_eq!(value(&r, 5), Some(Value::Int64(2)), "one product per 1.5s");
}

const CELL: &str = r#"
devices:
  - name: cell
    driver: enip-sim
    poll_interval: 1s
    options:
      host: 192.168.1.20
      faults:
        - { kind: dropout, tag: temp, at: 1s, duration: 1s }
        - { kind: device_failure, tag: temp, at: 2s, duration: 1s }
        - { kind: offline, at: 10s, duration: 5s }
    tags:
      - { name: status, type: int32, address: "Drive.Status", options: { signal: constant, value: 264 } }
      - { name: bit3, type: bool, address: "Drive.Status.3" }
      - { name: bit8, type: bool, address: "drive.status.8" }
      - { name: bit9, type: bool, address: "Drive.Status.9" }
      - { name: word, type: uint16, address: "@4/100/3", options: { signal: constant, value: 4660 } }
      - { name: hi, type: uint8, address: "@4/100/3:1" }
      - { name: temp, type: float32, address: "Line1_Temp[3]", options: { signal: constant, value: 21.5 } }
      - { name: count, type: int64, address: "Count", writable: true, options: { cip_type: DINT } }
      - { name: recipe, type: string, address: "Program:Main.Recipe", writable: true }
      - { name: speed_sp, type: float32, address: "Program:Main.SpeedSp", writable: true }
"#;

#[test]
fn bits_and_bytes_share_the_memory_of_their_tag_or_attribute() {
    let clock = ManualClock::new(T0);
    let mut d = load(CELL, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    let r = read(&mut d);
    assert_eq!(value(&r, 0), Some(Value::Int32(264)));
    assert_eq!(value(&r, 1), Some(Value::Boolean(true)));
    assert_eq!(
        value(&r, 2),
        Some(Value::Boolean(true)),
        "Logix names are case-insensitive"
    );
    assert_eq!(value(&r, 3), Some(Value::Boolean(false)));
    assert_eq!(value(&r, 4), Some(Value::UInt16(0x1234)));
    assert_eq!(value(&r, 5), Some(Value::UInt8(0x12)));
    assert_eq!(d.image("@4/100/3"), Some(&[0x34, 0x12][..]));
}

#[test]
fn faulted_tags_read_bad_with_a_cip_general_status() {
    let clock = ManualClock::new(T0);
    let mut d = load(CELL, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    let mut statuses = Vec::new();
    let mut qualities = Vec::new();
    for k in 0..4 {
        clock.set(at_ms(k * 1000));
        let r = read(&mut d);
        qualities.push(quality(&r, 6));
        statuses.push(d.general_status(6));
    }
    let good = Quality::Good;
    assert_eq!(
        qualities,
        vec![
            good,
            Quality::Bad(BadReason::CommFailure),
            Quality::Bad(BadReason::DeviceFailure),
            good
        ]
    );
    assert_eq!(statuses, vec![Some(0), Some(0x02), Some(0x10), Some(0)]);
}

#[test]
fn offline_is_a_link_error_then_reads_resume() {
    let clock = ManualClock::new(T0);
    let mut d = load(CELL, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    clock.set(at_ms(9000));
    assert_eq!(read(&mut d).len(), 10 * 10);
    clock.set(at_ms(12_000));
    let err = block_on(d.read(&mut Vec::new())).expect_err("offline");
    assert_eq!(err.kind, LinkErrorKind::NotConnected);
    assert!(block_on(d.connect()).is_err());
    assert!(matches!(
        block_on(d.write(9, &Value::Float(1.0))),
        Err(WriteError::Link(_))
    ));
    clock.set(at_ms(15_000));
    block_on(d.connect()).expect("back");
    let r = read(&mut d);
    assert_eq!(r.len(), 10);
    assert!(r.iter().all(|x| x.source_time == Some(at_ms(15_000))));
}

#[test]
fn writes_read_back_and_out_of_range_writes_are_refused_with_a_cip_status() {
    let clock = ManualClock::new(T0);
    let mut d = load(CELL, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    read(&mut d);
    block_on(d.write(9, &Value::Float(50.5))).expect("setpoint");
    block_on(d.write(7, &Value::Int64(123_456))).expect("count");
    block_on(d.write(8, &Value::String("CEREAL-1KG".into()))).expect("recipe");
    clock.advance(std::time::Duration::from_secs(1));
    let r = read(&mut d);
    assert_eq!(value(&r, 9), Some(Value::Float(50.5)));
    assert_eq!(value(&r, 7), Some(Value::Int64(123_456)));
    assert_eq!(value(&r, 8), Some(Value::String("CEREAL-1KG".into())));
    match block_on(d.write(7, &Value::Int64(1 << 40))) {
        Err(WriteError::Rejected(why)) => assert!(why.contains("0x09"), "{why}"),
        other => panic!("{other:?}"),
    }
    match block_on(d.write(8, &Value::String("x".repeat(83)))) {
        Err(WriteError::Rejected(why)) => assert!(why.contains("0x15"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        block_on(d.write(0, &Value::Int32(1))),
        Err(WriteError::NotWritable)
    );
    assert!(matches!(
        block_on(d.write(9, &Value::Double(1.0))),
        Err(WriteError::TypeMismatch(_))
    ));
}

#[test]
fn address_errors_say_what_is_wrong_and_what_was_expected() {
    let f = DataType::Float;
    let cases = [
        ("@4/100", f, "{}", "a CIP path has three parts, got 2"),
        ("@4/100/x", f, "{}", "attribute `x` is not a number"),
        (
            "@4/100/3:2.9",
            DataType::Boolean,
            "{}",
            "bit 9 is out of range",
        ),
        ("1abc", f, "{}", "`1abc` is not a Logix name"),
        ("Program:Main", f, "{}", "must be followed by `.<tag>`"),
        ("Local:1:I.Data", f, "{}", "`Local:` is not a scope"),
        ("Tag__x", f, "{}", "no double or trailing `_`"),
        ("Arr[1,2,3,4]", f, "{}", "at most 3 dimensions"),
        ("Arr[x]", f, "{}", "array index `x` is not a number"),
        (
            "Speed",
            f,
            "{cip_type: DINT}",
            "`cip_type: DINT` does not fit a float32 tag (DINT fits int32, int64, float64)",
        ),
        (
            "Word.3",
            DataType::Boolean,
            "{cip_type: DINT}",
            "does not fit a bool tag",
        ),
        ("Speed.3", f, "{}", "a bit address is a BOOL, not REAL"),
        (
            "@1/1/7",
            DataType::String,
            "{}",
            "address the string as a Logix tag",
        ),
        (
            "Speed",
            DataType::Int16,
            "{cip_type: SINT, signal: constant, value: 300}",
            "options:",
        ),
        ("", f, "{}", "expected a CIP path"),
    ];
    for (address, t, options, expected) in cases {
        let err = parse_err(address, t, options);
        assert!(err.contains(expected), "{address}: {err}");
    }
    assert!(serde_yaml::from_str::<uaedge_enip_sim::EnipTagOptions>("{cip_type: DWORD}").is_err());
}

#[test]
fn addresses_describe_themselves_with_their_cip_type() {
    let f = EnipSimFactory;
    let d = |a: &str, t, o: &str| {
        f.describe(
            &f.parse_address(a, t, &serde_yaml::from_str(o).expect("o"))
                .expect(a),
        )
    };
    assert_eq!(
        d("Program:Main.ConveyorSpeed", DataType::Float, "{}"),
        "Program:Main.ConveyorSpeed (REAL)"
    );
    assert_eq!(
        d("@4/100/3:8", DataType::Int64, "{cip_type: DINT}"),
        "@4/100/3:8 (DINT)"
    );
    assert_eq!(
        d("@0x4/0x64/3:0.1", DataType::Boolean, "{}"),
        "@4/100/3:0.1 (BOOL)"
    );
    assert_eq!(
        d("Line1_Temp[3]", DataType::DateTime, "{}"),
        "Line1_Temp[3] (LINT)"
    );
}

#[test]
fn device_errors_name_the_tag() {
    let clock = ManualClock::new(T0);
    let with = |tags: &str, options: &str| {
        let yaml = format!("devices:\n  - name: x\n    driver: enip-sim\n    poll_interval: 1s\n    options: {options}\n    tags:\n{tags}");
        load(&yaml, &clock).map(|_| ()).expect_err(tags)
    };
    let two = "      - { name: a, type: int32, address: \"Motor.Speed\" }\n      - { name: b, type: int32, address: \"motor.speed\" }\n";
    let e = with(two, "{}");
    assert!(
        e.contains("tag `b`: `motor.speed` is already the address of tag `a`"),
        "{e}"
    );
    let one = "      - { name: a, type: int32, address: \"Motor.Speed\" }\n";
    let e = with(one, "{ faults: [{kind: spike, tag: a, at: 1s}] }");
    assert!(
        e.contains("faults[0]: a `spike` fault needs `magnitude`"),
        "{e}"
    );
    let bits = "      - { name: a, type: int16, address: \"Word\" }\n      - { name: b, type: bool, address: \"Word.16\" }\n";
    let e = with(bits, "{}");
    assert!(
        e.contains("tag `b`: `Word` has no bit 16 (tag `a` is a INT)"),
        "{e}"
    );
    let e = with(one, "{ host: \"\" }");
    assert!(e.contains("not a host name"), "{e}");
    let e = with(one, "{ slot: 1, rack: 2 }");
    assert!(e.contains("unknown field `rack`"), "{e}");
}

/// A one-tag device block; `options` go inside the device's `options: { … }`.
fn device(poll_interval: &str, options: &str) -> String {
    format!(
        "devices:\n  - name: x\n    driver: enip-sim\n    poll_interval: {poll_interval}\n    options: {{ {options} }}\n    tags:\n      - {{ name: t, type: int32, address: \"Count\", options: {{ signal: counter }} }}\n"
    )
}

#[test]
fn what_the_simulator_cannot_run_is_refused_at_config_load() {
    harness::sim_errors_are_refused_at_config_load(&EnipSimFactory, "enip-sim", device);
}

#[test]
fn what_only_the_poll_interval_shows_leaves_the_built_device_bad() {
    harness::poll_interval_errors_leave_the_built_device_bad(&EnipSimFactory, "enip-sim", device);
}
