use uaedge_driver::{
    BadReason, DataType, LinkErrorKind, Quality, Reading, Timestamp, Value, WriteError,
};

use crate::{FaultSpec, SignalOptions, SimDevice, SimTag};

const S: i64 = 1_000_000;
/// Not aligned to the period on purpose: the device aligns it down.
const BOOT: Timestamp = Timestamp(1_700_000_000 * S + 300_000);
const T0: Timestamp = Timestamp(1_700_000_000 * S);

fn at(k: i64) -> Timestamp {
    Timestamp(T0.0 + k * S)
}

fn opts(yaml: &str) -> SignalOptions {
    crate::sim_tag_options! {
        pub struct TestTagOptions {}
    }
    let o: TestTagOptions = serde_yaml::from_str(yaml).expect("tag options");
    o.signal_options()
}

fn tag(name: &str, t: DataType, yaml: &str) -> SimTag {
    SimTag::new(name, t, false, &opts(yaml)).expect("tag")
}

fn faults(yaml: &str) -> Vec<FaultSpec> {
    serde_yaml::from_str(yaml).expect("faults")
}

fn device(tags: Vec<SimTag>, f: &[FaultSpec]) -> SimDevice {
    let mut d = SimDevice::new("dev", 42, std::time::Duration::from_secs(1), BOOT, tags, f)
        .expect("device");
    d.connect(BOOT).expect("connect");
    d
}

/// Reads at every step up to `last`, returning tag `i`'s values.
fn series(d: &mut SimDevice, i: u32, last: i64) -> Vec<Option<Value>> {
    let mut out = Vec::new();
    for k in 0..=last {
        d.read_due(at(k), &mut out).expect("read");
    }
    out.into_iter()
        .filter(|r| r.tag == i)
        .map(|r| r.value)
        .collect()
}

fn f64s(v: &[Option<Value>]) -> Vec<f64> {
    v.iter()
        .map(|x| x.as_ref().and_then(Value::as_f64).unwrap_or(f64::NAN))
        .collect()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

#[test]
fn start_is_aligned_and_steps_carry_their_time() {
    let mut d = device(
        vec![tag("c", DataType::Double, "{signal: constant, value: 1}")],
        &[],
    );
    assert_eq!(d.start(), T0);
    let mut out = Vec::new();
    d.read_due(Timestamp(at(2).0 + 500_000), &mut out)
        .expect("read");
    let times: Vec<_> = out.iter().map(|r| r.source_time).collect();
    assert_eq!(times, vec![Some(at(0)), Some(at(1)), Some(at(2))]);
    out.clear();
    d.read_due(Timestamp(at(2).0 + 900_000), &mut out)
        .expect("read");
    assert!(out.is_empty(), "no new step is due");
}

#[test]
fn signals_at_hand_computed_steps() {
    let mut d = device(
        vec![
            tag(
                "sine",
                DataType::Double,
                "{signal: sine, amplitude: 10, offset: 100, period: 4s}",
            ),
            tag(
                "ramp",
                DataType::Double,
                "{signal: ramp, min: 0, max: 10, period: 5s}",
            ),
            tag(
                "square",
                DataType::Double,
                "{signal: square, low: 0, high: 5, period: 4s, duty: 0.25}",
            ),
            tag(
                "counter",
                DataType::Int32,
                "{signal: counter, start: 0, increment: 1, max: 3}",
            ),
            tag("const", DataType::Float, "{signal: constant, value: 7.5}"),
            tag(
                "cycle",
                DataType::String,
                "{signal: cycle, values: [idle, run, stop]}",
            ),
            tag("bool", DataType::Boolean, "{signal: square, period: 2s}"),
            tag(
                "phase",
                DataType::Double,
                "{signal: sine, amplitude: 1, period: 4s, phase: 90}",
            ),
            tag("clock", DataType::DateTime, "{signal: clock}"),
            tag(
                "slow",
                DataType::UInt16,
                "{signal: cycle, values: [1, 2], period: 2s}",
            ),
        ],
        &[],
    );
    let mut out = Vec::new();
    d.read_due(at(5), &mut out).expect("read");
    let col = |i: u32| -> Vec<Value> {
        out.iter()
            .filter(|r| r.tag == i)
            .filter_map(|r| r.value.clone())
            .collect()
    };
    let nums = |i: u32| -> Vec<f64> { col(i).iter().filter_map(Value::as_f64).collect() };
    close(&nums(0), &[100.0, 110.0, 100.0, 90.0, 100.0, 110.0]);
    close(&nums(1), &[0.0, 2.0, 4.0, 6.0, 8.0, 0.0]);
    close(&nums(2), &[5.0, 0.0, 0.0, 0.0, 5.0, 0.0]);
    assert_eq!(col(3), [0, 1, 2, 3, 0, 1].map(Value::Int32));
    assert_eq!(col(4), vec![Value::Float(7.5); 6]);
    let words: Vec<Value> = ["idle", "run", "stop", "idle", "run", "stop"]
        .iter()
        .map(|s| Value::String((*s).into()))
        .collect();
    assert_eq!(col(5), words);
    assert_eq!(
        col(6),
        [true, false, true, false, true, false].map(Value::Boolean)
    );
    close(&nums(7), &[1.0, 0.0, -1.0, 0.0, 1.0, 0.0]);
    assert_eq!(col(8)[3], Value::DateTime(at(3)));
    assert_eq!(col(9), [1, 1, 2, 2, 1, 1].map(Value::UInt16));
}

#[test]
fn counter_wraps_at_the_type_max_by_default_and_saturation_holds_bounds() {
    let mut d = device(
        vec![
            tag("c", DataType::UInt8, "{signal: counter, increment: 100}"),
            tag(
                "n",
                DataType::UInt8,
                "{signal: constant, value: 255, noise: 50}",
            ),
        ],
        &[],
    );
    let c = series(&mut d, 0, 3);
    assert_eq!(c, [0u8, 100, 200, 44].map(|v| Some(Value::UInt8(v))));
    let mut d = device(
        vec![tag(
            "n",
            DataType::UInt8,
            "{signal: constant, value: 255, noise: 50}",
        )],
        &[],
    );
    assert!(series(&mut d, 0, 50)
        .iter()
        .all(|v| matches!(v, Some(Value::UInt8(_)))));
}

#[test]
fn random_walk_stays_in_bounds_with_bounded_steps() {
    let mut d = device(
        vec![tag(
            "w",
            DataType::Double,
            "{signal: random_walk, start: 5, step: 1, min: 0, max: 10}",
        )],
        &[],
    );
    let v = f64s(&series(&mut d, 0, 2000));
    assert_eq!(v[0], 5.0);
    assert!(v.iter().all(|x| (0.0..=10.0).contains(x)));
    assert!(v.windows(2).all(|w| (w[1] - w[0]).abs() <= 1.0 + 1e-12));
    assert!(v.windows(2).any(|w| w[1] != w[0]));
}

#[test]
fn noise_has_the_configured_sigma() {
    let mut d = device(
        vec![tag(
            "n",
            DataType::Double,
            "{signal: constant, value: 50, noise: 2}",
        )],
        &[],
    );
    let v = f64s(&series(&mut d, 0, 4999));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    assert!((mean - 50.0).abs() < 0.15, "{mean}");
    assert!((sd - 2.0).abs() < 0.1, "{sd}");
}

fn rich_device(seed: u64) -> SimDevice {
    let tags = vec![
        tag(
            "walk",
            DataType::Double,
            "{signal: random_walk, step: 0.5, min: -10, max: 10, noise: 0.1}",
        ),
        tag(
            "sine",
            DataType::Float,
            "{signal: sine, amplitude: 3, period: 13s, noise: 0.3}",
        ),
        tag("count", DataType::UInt32, "{signal: counter, increment: 2}"),
    ];
    let f = faults(
        "[{kind: stuck, tag: walk, at: 20s, duration: 9s, every: 40s},
          {kind: spike, tag: sine, at: 7s, magnitude: 50, every: 11s},
          {kind: drift, tag: walk, at: 60s, rate: 0.2, duration: 15s},
          {kind: noise_burst, tag: sine, at: 30s, sigma: 5, duration: 4s}]",
    );
    let mut d = SimDevice::new(
        "dev",
        seed,
        std::time::Duration::from_secs(1),
        BOOT,
        tags,
        &f,
    )
    .expect("device");
    d.connect(BOOT).expect("connect");
    d
}

fn stream(d: &mut SimDevice, reads: impl Iterator<Item = i64>) -> Vec<Reading> {
    let mut out = Vec::new();
    for k in reads {
        d.read_due(Timestamp(at(k).0 + 123), &mut out)
            .expect("read");
    }
    out
}

#[test]
fn same_seed_gives_the_same_stream_whatever_the_read_boundaries() {
    let every_step = stream(&mut rich_device(7), 0..=120);
    let every_seventh = stream(&mut rich_device(7), (0..=120).step_by(7).chain([120]));
    assert_eq!(every_step.len(), 121 * 3);
    assert_eq!(every_step, every_seventh);
    let other_seed = stream(&mut rich_device(8), 0..=120);
    assert_ne!(every_step, other_seed);
}

#[test]
fn spike_drift_and_noise_burst_hit_their_exact_steps() {
    let base = "{signal: constant, value: 10}";
    let f = faults(
        "[{kind: spike, tag: a, at: 2500ms, magnitude: 100, every: 5s},
          {kind: drift, tag: b, at: 2s, rate: 1.0, duration: 3s},
          {kind: noise_burst, tag: c, at: 4s, duration: 2s, sigma: 3}]",
    );
    let mut d = device(
        vec![
            tag("a", DataType::Double, base),
            tag("b", DataType::Double, base),
            tag("c", DataType::Double, base),
        ],
        &f,
    );
    let mut out = Vec::new();
    d.read_due(at(13), &mut out).expect("read");
    let col = |i: u32| {
        f64s(
            &out.iter()
                .filter(|r| r.tag == i)
                .map(|r| r.value.clone())
                .collect::<Vec<_>>(),
        )
    };
    let spikes: Vec<usize> = col(0)
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 10.0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(spikes, vec![3, 8, 13]);
    close(&col(1)[..7], &[10.0, 10.0, 10.0, 11.0, 12.0, 10.0, 10.0]);
    let c = col(2);
    let noisy: Vec<usize> = c
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 10.0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(noisy, vec![4, 5]);
}

#[test]
fn stuck_freezes_the_value_at_its_first_step() {
    let f = faults("[{kind: stuck, tag: r, at: 2s, duration: 3s}]");
    let mut d = device(
        vec![tag(
            "r",
            DataType::Double,
            "{signal: ramp, max: 100, period: 100s}",
        )],
        &f,
    );
    close(
        &f64s(&series(&mut d, 0, 6)),
        &[0.0, 1.0, 2.0, 2.0, 2.0, 5.0, 6.0],
    );
}

#[test]
fn dropout_and_device_failure_give_bad_quality_without_value() {
    let f = faults("[{kind: dropout, tag: a, at: 1s, duration: 2s}, {kind: device_failure, tag: b, at: 2s, duration: 1s}]");
    let base = "{signal: constant, value: 1}";
    let mut d = device(
        vec![
            tag("a", DataType::Int16, base),
            tag("b", DataType::Int16, base),
        ],
        &f,
    );
    let mut out = Vec::new();
    d.read_due(at(3), &mut out).expect("read");
    let q = |i: u32| {
        out.iter()
            .filter(|r| r.tag == i)
            .map(|r| (r.quality, r.value.is_some()))
            .collect::<Vec<_>>()
    };
    let good = (Quality::Good, true);
    let comm = (Quality::Bad(BadReason::CommFailure), false);
    let dev = (Quality::Bad(BadReason::DeviceFailure), false);
    assert_eq!(q(0), vec![good, comm, comm, good]);
    assert_eq!(q(1), vec![good, good, dev, good]);
}

#[test]
fn offline_window_fails_reads_and_connects_then_resumes_at_the_current_step() {
    let f = faults("[{kind: offline, at: 3s, duration: 2s}]");
    let mut d = device(vec![tag("c", DataType::UInt32, "{signal: counter}")], &f);
    let mut out = Vec::new();
    d.read_due(at(1), &mut out).expect("read");
    assert_eq!(out.len(), 2);
    let err = d.read_due(at(3), &mut out).expect_err("offline");
    assert_eq!(err.kind, LinkErrorKind::NotConnected);
    assert!(d.connect(at(4)).is_err());
    assert!(!d.is_connected());
    d.connect(at(5)).expect("back");
    out.clear();
    d.read_due(at(6), &mut out).expect("read");
    let got: Vec<_> = out
        .iter()
        .map(|r| (r.source_time, r.value.clone()))
        .collect();
    // Step 2 was due before the window and is still delivered; 3 and 4 never happened.
    assert_eq!(
        got,
        vec![
            (Some(at(2)), Some(Value::UInt32(2))),
            (Some(at(5)), Some(Value::UInt32(5))),
            (Some(at(6)), Some(Value::UInt32(6)))
        ]
    );
}

#[test]
fn repeated_offline_windows_follow_every() {
    let f = faults("[{kind: offline, at: 10s, duration: 2s, every: 30s}]");
    let mut d = device(vec![tag("c", DataType::UInt32, "{signal: counter}")], &f);
    let offline: Vec<i64> = (0..75).filter(|k| d.connect(at(*k)).is_err()).collect();
    assert_eq!(offline, vec![10, 11, 40, 41, 70, 71]);
}

#[test]
fn writes_hold_from_their_step_until_the_next_write() {
    let mut sp = tag("sp", DataType::Float, "{signal: constant, value: 1}");
    sp.writable = true;
    let mut d = device(
        vec![
            sp,
            tag("ro", DataType::Float, "{signal: constant, value: 1}"),
        ],
        &[],
    );
    let mut out = Vec::new();
    d.read_due(at(1), &mut out).expect("read");
    // Step 2 is not read yet: the write takes it.
    d.write(at(2), 0, Value::Float(42.0)).expect("write");
    d.read_due(at(3), &mut out).expect("read");
    // Step 3 is already read: the write takes effect from step 4.
    d.write(Timestamp(at(3).0 + 10), 0, Value::Float(7.0))
        .expect("write");
    d.read_due(at(5), &mut out).expect("read");
    let v: Vec<_> = out
        .iter()
        .filter(|r| r.tag == 0)
        .filter_map(|r| r.value.clone())
        .collect();
    assert_eq!(v, [1.0, 1.0, 42.0, 42.0, 7.0, 7.0].map(Value::Float));
    assert_eq!(
        d.write(at(5), 1, Value::Float(1.0)),
        Err(WriteError::NotWritable)
    );
    assert!(matches!(
        d.write(at(5), 0, Value::Double(1.0)),
        Err(WriteError::TypeMismatch(_))
    ));
    assert!(matches!(
        d.write(at(5), 9, Value::Float(1.0)),
        Err(WriteError::Rejected(_))
    ));
}

#[test]
fn catch_up_of_a_big_device_is_capped_in_samples() {
    let tags = (0..1_000)
        .map(|i| tag(&format!("c{i}"), DataType::UInt64, "{signal: counter}"))
        .collect();
    let mut d = device(tags, &[]);
    let mut out = Vec::new();
    d.read_due(at(25_000), &mut out).expect("read");
    let steps = crate::MAX_CATCH_UP_SAMPLES / 1_000;
    assert_eq!(out.len() as u64, steps * 1_000);
    // The newest steps, each tag counting on from where the skipped steps left it.
    assert_eq!(
        out.first().and_then(|r| r.value.clone()),
        Some(Value::UInt64(25_001 - steps))
    );
    assert_eq!(out.last().and_then(|r| r.source_time), Some(at(25_000)));
}

#[test]
fn a_device_read_less_often_than_it_steps_keeps_every_step() {
    // 1,000 tags stepping every second, read every 100 s: 100 steps of 1,000 samples a read,
    // above the samples cap, and all of them due in the normal course.
    let tags = (0..1_000)
        .map(|i| tag(&format!("c{i}"), DataType::UInt64, "{signal: counter}"))
        .collect();
    let mut d = device(tags, &[]).read_every(std::time::Duration::from_secs(100));
    let mut out = Vec::new();
    d.read_due(at(100), &mut out).expect("read");
    d.read_due(at(200), &mut out).expect("read");
    assert_eq!(out.len(), 201 * 1_000, "every step from 0 to 200");
    // Fallen far behind, it skips down to the cap again, keeping one poll's worth.
    out.clear();
    d.read_due(at(20_000), &mut out).expect("read");
    assert_eq!(out.len(), 101 * 1_000);
}

#[test]
fn catch_up_is_capped() {
    let mut d = device(vec![tag("c", DataType::UInt64, "{signal: counter}")], &[]);
    let mut out = Vec::new();
    d.read_due(at(25_000), &mut out).expect("read");
    assert_eq!(out.len() as u64, crate::MAX_CATCH_UP);
    assert_eq!(
        out.first().and_then(|r| r.value.clone()),
        Some(Value::UInt64(15_001))
    );
    assert_eq!(out.last().and_then(|r| r.source_time), Some(at(25_000)));
}

#[test]
fn reading_before_connect_is_a_link_error() {
    let mut d = SimDevice::new(
        "dev",
        1,
        std::time::Duration::from_secs(1),
        BOOT,
        vec![],
        &[],
    )
    .expect("device");
    assert!(d.read_due(at(1), &mut Vec::new()).is_err());
}

#[test]
fn signal_option_errors_name_the_key() {
    let err = |t: DataType, y: &str| opts(y).build(t).expect_err(y);
    assert!(err(
        DataType::Double,
        "{signal: ramp, max: 1, period: 1s, amplitude: 3}"
    )
    .contains("`amplitude` does not apply to signal `ramp`"));
    assert!(err(DataType::Double, "{signal: sine, amplitude: 1}").contains("needs `period`"));
    assert!(
        err(DataType::String, "{signal: sine, amplitude: 1, period: 1s}")
            .contains("does not fit a string tag")
    );
    assert!(err(
        DataType::Int8,
        "{signal: sine, amplitude: 100, offset: 100, period: 1s}"
    )
    .contains("does not fit int8"));
    assert!(err(DataType::Double, "{amplitude: 3}").contains("needs a `signal:`"));
    assert!(err(DataType::Int16, "{signal: constant, value: hello}").contains("not a int16"));
    assert!(err(
        DataType::Boolean,
        "{signal: constant, value: true, noise: 1}"
    )
    .contains("numeric"));
    assert!(serde_yaml::from_str::<FaultSpec>(
        "{kind: spike, tag: a, at: 1s, magnitude: 1, colour: red}"
    )
    .is_err());
}

#[test]
fn fault_errors_name_the_problem() {
    let tags = || {
        vec![
            tag("a", DataType::Double, "{signal: constant, value: 1}"),
            tag("s", DataType::String, "{signal: constant, value: x}"),
        ]
    };
    let err = |y: &str| {
        SimDevice::new(
            "d",
            0,
            std::time::Duration::from_secs(1),
            BOOT,
            tags(),
            &faults(y),
        )
        .expect_err(y)
    };
    assert!(err("[{kind: spike, tag: nope, at: 1s, magnitude: 1}]")
        .contains("`tag: nope` is not a tag of this device"));
    assert!(err("[{kind: spike, tag: s, at: 1s, magnitude: 1}]").contains("numeric"));
    assert!(err("[{kind: offline, tag: a, at: 1s, duration: 1s}]").contains("whole device"));
    assert!(err("[{kind: stuck, tag: a, at: 1s}]").contains("needs `duration`"));
    assert!(err("[{kind: dropout, tag: a, at: 1s, duration: 5s, every: 5s}]").contains("overlap"));
    assert!(err("[{kind: spike, tag: a, at: 1s}]").starts_with("faults[0]: "));
}
