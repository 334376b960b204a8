//! Unit tests of `device.rs` (included with `#[path]`).

use super::*;

#[test]
fn a_tag_keeps_sixteen_bytes_and_shares_its_signal() {
    println!(
        "size_of: TagState {}, TagSample {}, Profile {}, Extra {}",
        std::mem::size_of::<TagState>(),
        std::mem::size_of::<TagSample>(),
        std::mem::size_of::<Profile>(),
        std::mem::size_of::<Extra>()
    );
    assert!(std::mem::size_of::<TagState>() <= 16);
    let counter = SignalOptions {
        signal: Some(crate::SignalKind::Counter),
        ..SignalOptions::default()
    };
    let sine = SignalOptions {
        signal: Some(crate::SignalKind::Sine),
        amplitude: Some(2.0),
        period: Some("10s".parse().expect("period")),
        ..SignalOptions::default()
    };
    let tags = (0..10_000)
        .map(|i| {
            let options = if i % 2 == 0 { &counter } else { &sine };
            let t = if i % 2 == 0 {
                DataType::UInt32
            } else {
                DataType::Float
            };
            SimTag::new(format!("t{i}"), t, false, options).expect("tag")
        })
        .collect();
    let d = SimDevice::new(
        "d",
        0,
        std::time::Duration::from_secs(1),
        Timestamp(0),
        tags,
        &[],
    )
    .expect("device");
    assert_eq!(d.profiles.len(), 2);
    assert!(d.walks.is_empty() && d.extras.is_empty());
    assert_eq!(
        (d.tag_count(), d.tag_name(0), d.tag_name(9_999)),
        (10_000, "t0", "t9999")
    );
    assert_eq!(d.tag_name(10_000), "");
}

#[test]
fn tags_sharing_a_signal_part_when_one_is_written_or_faulted() {
    let counter = SignalOptions {
        signal: Some(crate::SignalKind::Counter),
        ..SignalOptions::default()
    };
    let tags = (0..3)
        .map(|i| SimTag::new(format!("c{i}"), DataType::UInt32, true, &counter))
        .collect::<Result<Vec<_>, _>>()
        .expect("tags");
    let stuck: Vec<FaultSpec> =
        serde_yaml::from_str("[{kind: stuck, tag: c2, at: 2s, duration: 3s}]").expect("fault");
    let s = 1_000_000;
    let mut d = SimDevice::new(
        "d",
        0,
        std::time::Duration::from_secs(1),
        Timestamp(0),
        tags,
        &stuck,
    )
    .expect("device");
    assert_eq!((d.cache.len(), d.extras.len()), (1, 1));
    d.connect(Timestamp(0)).expect("connect");
    let mut out = Vec::new();
    d.read_due(Timestamp(s), &mut out).expect("read");
    d.write(Timestamp(2 * s), 1, Value::UInt32(99))
        .expect("write");
    d.read_due(Timestamp(6 * s), &mut out).expect("read");
    let of = |tag: u32| -> Vec<u32> {
        out.iter()
            .filter(|r| r.tag == tag)
            .filter_map(|r| match r.value {
                Some(Value::UInt32(v)) => Some(v),
                _ => None,
            })
            .collect()
    };
    assert_eq!(of(0), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(of(1), [0, 1, 99, 99, 99, 99, 99]);
    assert_eq!(of(2), [0, 1, 2, 2, 2, 5, 6]);
}
