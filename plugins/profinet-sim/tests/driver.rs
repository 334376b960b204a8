//! Drives the real driver through the `Driver` trait, with a hand-set clock.

#[path = "../../sim/testing/harness.rs"]
mod harness;

use harness::{at_ms, block_on, read, value, T0};
use uaedge_driver::{
    BadReason, DataType, Driver, DriverFactory, LinkErrorKind, Quality, Value, WriteError,
};
use uaedge_profinet_sim::{Area, ProfinetSimDriver, ProfinetSimFactory};
use uaedge_sim::ManualClock;

fn load(yaml: &str, clock: &ManualClock) -> Result<ProfinetSimDriver, String> {
    harness::load(
        &ProfinetSimFactory,
        "profinet-sim",
        yaml,
        clock,
        ProfinetSimDriver::new,
    )
}

fn doc_example() -> String {
    harness::doc_example(include_str!("../src/lib.rs"))
}

fn parse_err(address: &str, t: DataType, options: &str) -> String {
    harness::parse_err(&ProfinetSimFactory, address, t, options)
}

#[test]
fn the_documented_press_loads_and_reads_typed_values() {
    let clock = ManualClock::new(T0);
    let mut d = load(&doc_example(), &clock).expect("example loads");
    block_on(d.connect()).expect("connect");
    let r = read(&mut d);
    assert_eq!(r.len(), 8, "one step, eight tags");
    assert!(r
        .iter()
        .all(|r| r.source_time == Some(T0) && r.quality.is_good()));
    match value(&r, 0) {
        Some(Value::Float(p)) => assert!((p - 180.0).abs() < 3.0, "{p}"),
        other => panic!("pressure: {other:?}"),
    }
    assert_eq!(value(&r, 3), Some(Value::UInt32(0)));
    assert_eq!(value(&r, 4), Some(Value::Boolean(true)));
    assert_eq!(value(&r, 5), Some(Value::Float(180.0)));
    assert_eq!(value(&r, 6), Some(Value::Boolean(false)));
    assert_eq!(
        value(&r, 7),
        Some(Value::String("6ES7 155-6AU01-0BN0".into()))
    );
    clock.advance(std::time::Duration::from_secs(6));
    let r = read(&mut d);
    assert_eq!(r.len(), 8 * 12, "500ms steps over 6s");
    assert_eq!(value(&r, 3), Some(Value::UInt32(1)), "one stroke per 6s");
    // The pressure is big-endian f32 at byte 0 of the input image of 1.1.
    let image = d.image(Area::Input, 1, 1).expect("image");
    let Some(Value::Float(p)) = value(&r, 0) else {
        panic!()
    };
    assert_eq!(image[..4], p.to_be_bytes());
}

const VIEWS: &str = r#"
devices:
  - name: views
    driver: profinet-sim
    poll_interval: 1s
    options: { station: rig-1 }
    tags:
      - { name: word, type: uint16, address: "in:1.1:0", options: { signal: constant, value: 4660 } }
      - { name: hi, type: uint8, address: "in:1.1:0" }
      - { name: lo, type: uint8, address: "in:1.1:1" }
      - { name: lo_bit2, type: bool, address: "in:1.1:1.2" }
      - { name: real, type: float32, address: "in:1.1:4", options: { signal: constant, value: 1.5 } }
      - { name: real_bits, type: uint32, address: "in:1.1:4" }
      - { name: flag, type: bool, address: "in:1.1:2.7", options: { signal: constant, value: true } }
      - { name: status, type: uint8, address: "in:1.1:2" }
"#;

#[test]
fn tags_over_the_same_bytes_see_the_same_data() {
    let clock = ManualClock::new(T0);
    let mut d = load(VIEWS, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    let r = read(&mut d);
    assert_eq!(value(&r, 0), Some(Value::UInt16(0x1234)));
    assert_eq!(value(&r, 1), Some(Value::UInt8(0x12)));
    assert_eq!(value(&r, 2), Some(Value::UInt8(0x34)));
    assert_eq!(value(&r, 3), Some(Value::Boolean(true)));
    assert_eq!(value(&r, 5), Some(Value::UInt32(0x3FC0_0000)));
    assert_eq!(value(&r, 7), Some(Value::UInt8(0x80)));
    assert_eq!(
        d.image(Area::Input, 1, 1),
        Some(&[0x12, 0x34, 0x80, 0, 0x3F, 0xC0, 0, 0][..])
    );
}

const RIG: &str = r#"
devices:
  - name: rig
    driver: profinet-sim
    poll_interval: 1s
    options:
      station: rig-2
      modules:
        - { slot: 1, subslot: 1, ident: 0x10, input: 4 }
        - { slot: 2, subslot: 1, ident: 0x20, input: 2, output: 4 }
        - { slot: 3, subslot: 1, ident: 0x30, input: 2, iops: bad }
      faults:
        - { kind: device_failure, tag: a, at: 2s, duration: 2s }
        - { kind: dropout, tag: c, at: 1s, duration: 1s }
        - { kind: offline, at: 5s, duration: 3s }
    tags:
      - { name: a, type: int16, address: "in:1.1:0", options: { signal: counter } }
      - { name: b, type: int16, address: "in:1.1:2", options: { signal: constant, value: 7 } }
      - { name: c, type: int16, address: "in:2.1:0", options: { signal: constant, value: 8 } }
      - { name: out_word, type: uint16, address: "out:2.1:0", writable: true }
      - { name: out_bit0, type: bool, address: "out:2.1:0.0" }
      - { name: out_flag, type: bool, address: "out:2.1:3.1", writable: true }
      - { name: out_byte3, type: uint8, address: "out:2.1:3" }
      - { name: pulled, type: int16, address: "in:3.1:0", options: { signal: constant, value: 1 } }
"#;

#[test]
fn bad_iops_turns_the_whole_subslot_bad_and_dropout_is_comm_failure() {
    let clock = ManualClock::new(T0);
    let mut d = load(RIG, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    clock.set(at_ms(4000));
    let r = read(&mut d);
    let q = |tag: u32| {
        r.iter()
            .filter(|x| x.tag == tag)
            .map(|x| x.quality)
            .collect::<Vec<_>>()
    };
    let good = Quality::Good;
    let dev = Quality::Bad(BadReason::DeviceFailure);
    let comm = Quality::Bad(BadReason::CommFailure);
    assert_eq!(q(0), vec![good, good, dev, dev, good]);
    assert_eq!(
        q(1),
        vec![good, good, dev, dev, good],
        "same subslot, IOPS bad"
    );
    assert_eq!(q(2), vec![good, comm, good, good, good]);
    assert_eq!(q(7), vec![dev; 5], "module declared iops: bad");
    assert!(r
        .iter()
        .filter(|x| x.quality.is_bad())
        .all(|x| x.value.is_none()));
}

#[test]
fn offline_is_a_link_error_then_reads_resume_at_the_current_step() {
    let clock = ManualClock::new(T0);
    let mut d = load(RIG, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    clock.set(at_ms(4000));
    read(&mut d);
    clock.set(at_ms(5200));
    let err = block_on(d.read(&mut Vec::new())).expect_err("offline");
    assert_eq!(err.kind, LinkErrorKind::NotConnected);
    block_on(d.disconnect());
    clock.set(at_ms(7900));
    assert!(block_on(d.connect()).is_err(), "still offline");
    clock.set(at_ms(8100));
    block_on(d.connect()).expect("back online");
    let r = read(&mut d);
    let steps: Vec<_> = r
        .iter()
        .filter(|x| x.tag == 0)
        .map(|x| (x.source_time, x.value.clone()))
        .collect();
    assert_eq!(steps, vec![(Some(at_ms(8000)), Some(Value::Int16(8)))]);
}

#[test]
fn writes_to_outputs_read_back_through_the_image() {
    let clock = ManualClock::new(T0);
    let mut d = load(RIG, &clock).expect("load");
    block_on(d.connect()).expect("connect");
    read(&mut d);
    block_on(d.write(3, &Value::UInt16(0x0100))).expect("write word");
    block_on(d.write(5, &Value::Boolean(true))).expect("write bit");
    clock.advance(std::time::Duration::from_secs(1));
    let r = read(&mut d);
    assert_eq!(value(&r, 3), Some(Value::UInt16(0x0100)));
    assert_eq!(
        value(&r, 4),
        Some(Value::Boolean(true)),
        "bit 0 of the big-endian high byte"
    );
    assert_eq!(value(&r, 5), Some(Value::Boolean(true)));
    assert_eq!(value(&r, 6), Some(Value::UInt8(0b10)));
    assert_eq!(d.image(Area::Output, 2, 1), Some(&[1, 0, 0, 2][..]));
    assert_eq!(
        block_on(d.write(0, &Value::Int16(1))),
        Err(WriteError::NotWritable)
    );
    assert!(matches!(
        block_on(d.write(3, &Value::Int32(1))),
        Err(WriteError::TypeMismatch(_))
    ));
}

#[test]
fn address_errors_say_what_is_wrong_and_what_was_expected() {
    let f = DataType::Float;
    let cases = [
        ("in:1.1", f, "{}", "missing byte offset"),
        ("inp:1.1:0", f, "{}", "unknown area `inp`"),
        ("in:1:0", f, "{}", "is not <slot>.<subslot>"),
        ("in:1.0:0", f, "{}", "subslot 0"),
        ("in:1.1:x", f, "{}", "byte offset `x` is not a number"),
        ("in:1.1:0.3", f, "{}", "only bool tags take a bit"),
        (
            "in:1.1:0",
            DataType::Boolean,
            "{}",
            "add the bit, e.g. `in:1.1:0.0`",
        ),
        (
            "in:1.1:0.8",
            DataType::Boolean,
            "{}",
            "bit 8 is out of range",
        ),
        (
            "rec:1.1:0x1FFFF",
            f,
            "{}",
            "record index 131071 is out of range",
        ),
        ("in:1.1:0:9", f, "{}", "unexpected `:9`"),
        ("in:1.1:0", DataType::String, "{}", "needs `length:`"),
        ("in:1.1:0", DataType::DateTime, "{}", "no datetime encoding"),
        (
            "in:1.1:0",
            f,
            "{signal: sine, amplitude: 1}",
            "options: signal `sine` needs `period`",
        ),
    ];
    for (address, t, options, expected) in cases {
        let err = parse_err(address, t, options);
        assert!(err.contains(expected), "{address}: {err}");
    }
    assert!(parse_err("in", f, "{}").contains("expected `in:<slot>.<subslot>:<byte>`"));
    assert!(
        serde_yaml::from_str::<uaedge_profinet_sim::ProfinetTagOptions>(
            "{signal: sine, colour: red}"
        )
        .is_err()
    );
}

#[test]
fn addresses_describe_themselves_back() {
    let f = ProfinetSimFactory;
    let d = |a: &str, t| f.describe(&f.parse_address(a, t, &Default::default()).expect(a));
    assert_eq!(d("in:1.1:0", DataType::Float), "in:1.1:0");
    assert_eq!(d("out:2.1:3.1", DataType::Boolean), "out:2.1:3.1");
    assert_eq!(d("rec:0.1:0xAFF0", DataType::UInt16), "rec:0.1:0xAFF0:0");
}

#[test]
fn device_errors_name_the_tag_and_the_module() {
    let clock = ManualClock::new(T0);
    let with = |tags: &str, extra: &str| {
        let yaml = format!(
            "devices:\n  - name: x\n    driver: profinet-sim\n    poll_interval: 1s\n    options: {{ station: st-1, modules: [{{slot: 1, subslot: 1, ident: 1, input: 4, output: 2}}] {extra} }}\n    tags:\n{tags}"
        );
        load(&yaml, &clock).map(|_| ()).expect_err(tags)
    };
    let e = with(
        "      - { name: t, type: float32, address: \"in:1.1:2\" }\n",
        "",
    );
    assert!(
        e.contains(
            "tag `t` (in:1.1:2): needs input bytes 2..6, but the module in 1.1 has 4 input bytes"
        ),
        "{e}"
    );
    let e = with(
        "      - { name: t, type: int16, address: \"in:2.1:0\" }\n",
        "",
    );
    assert!(e.contains("no module is declared in slot 2.1"), "{e}");
    let e = with(
        "      - { name: t, type: int16, address: \"in:1.1:0\", writable: true }\n",
        "",
    );
    assert!(
        e.contains("only `out:` and `rec:` tags can be writable"),
        "{e}"
    );
    let e = with(
        "      - { name: t, type: int16, address: \"out:1.1:0\" }\n",
        ", faults: [{kind: stuck, tag: u, at: 1s, duration: 1s}]",
    );
    assert!(e.contains("faults[0]: `tag: u` is not a tag"), "{e}");
    let e = with(
        "      - { name: t, type: int16, address: \"out:1.1:0\" }\n",
        ", seed: 1, colour: red",
    );
    assert!(e.contains("unknown field `colour`"), "{e}");
    for bad in ["Press_3", "-press", "192.168.0.1", "port-001", ""] {
        assert!(uaedge_profinet_sim::check_station(bad).is_err(), "{bad}");
    }
    uaedge_profinet_sim::check_station("press-3.hall-b").expect("valid");
}

/// A one-tag device block; `options` go inside the device's `options: { … }`.
fn device(poll_interval: &str, options: &str) -> String {
    format!(
        "devices:\n  - name: x\n    driver: profinet-sim\n    poll_interval: {poll_interval}\n    options: {{ station: st-1, {options} }}\n    tags:\n      - {{ name: t, type: int16, address: \"in:1.1:0\", options: {{ signal: counter }} }}\n"
    )
}

#[test]
fn what_the_simulator_cannot_run_is_refused_at_config_load() {
    harness::sim_errors_are_refused_at_config_load(&ProfinetSimFactory, "profinet-sim", device);
}

#[test]
fn what_only_the_poll_interval_shows_leaves_the_built_device_bad() {
    harness::poll_interval_errors_leave_the_built_device_bad(
        &ProfinetSimFactory,
        "profinet-sim",
        device,
    );
}
