//! The engine: dispatch by tag, Bad samples, ticks, reactions, counters.

use super::*;
use crate::anomaly::spec::{CheckParams, Debounce, FlatSpan};
use crate::anomaly::window::Window;
use uaedge_driver::BadReason;

const S: i64 = 1_000_000;
const BAD: Quality = Quality::Bad(BadReason::CommFailure);

fn spec(tag: u32, name: &str, params: CheckParams, debounce: Debounce) -> CheckSpec {
    CheckSpec {
        tag: TagId(tag),
        name: Arc::from(name),
        params,
        debounce,
        reaction: None,
    }
}

fn hi(limit: f64) -> CheckParams {
    CheckParams::Limits {
        lo: None,
        hi: Some(limit),
        hysteresis: 0.0,
    }
}

fn feed(
    e: &mut AnomalyEngine,
    tag: u32,
    samples: &[(i64, Option<f64>, Quality)],
) -> Vec<AlarmEvent> {
    let mut out = Vec::new();
    for &(t, x, q) in samples {
        e.process(TagId(tag), x, q, Timestamp(t * S), &mut out);
    }
    out
}

fn states(events: &[AlarmEvent]) -> Vec<(&str, AlarmState, i64)> {
    events
        .iter()
        .map(|e| (&*e.check, e.state, e.time.0 / S))
        .collect()
}

#[test]
fn dispatches_by_tag_and_ignores_tags_without_checks() {
    let mut e = AnomalyEngine::new([
        spec(3, "high", hi(10.0), Debounce::default()),
        spec(1, "high", hi(5.0), Debounce::default()),
    ]);
    assert!(e.has_checks(TagId(1)) && e.has_checks(TagId(3)));
    assert!(!e.has_checks(TagId(2)) && !e.has_checks(TagId(99)));
    let good = Quality::Good;
    assert!(feed(&mut e, 2, &[(0, Some(100.0), good)]).is_empty());
    assert!(feed(&mut e, 99, &[(0, Some(100.0), good)]).is_empty());
    let ev = feed(&mut e, 1, &[(0, Some(7.0), good)]);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].tag, ev[0].value, ev[0].threshold),
        (TagId(1), 7.0, 5.0)
    );
    assert_eq!(ev[0].message, "value 7 above the high limit 5");
    let alarms: Vec<_> = e.alarms().collect();
    assert_eq!(
        alarms,
        vec![(TagId(1), "high", true), (TagId(3), "high", false)]
    );
    assert_eq!(e.active_count(), 1);
}

#[test]
fn bad_samples_are_skipped_but_windows_keep_their_values() {
    let mut e = AnomalyEngine::new([spec(
        0,
        "z",
        CheckParams::Zscore {
            threshold: 2.0,
            hysteresis: 0.0,
            min_samples: 3,
            min_spread: 0.0,
            window: Window::Samples(3),
        },
        Debounce::default(),
    )]);
    let g = Quality::Good;
    let ev = feed(
        &mut e,
        0,
        &[
            (0, Some(10.0), g),
            (1, Some(12.0), g),
            (2, None, BAD),
            (3, Some(f64::NAN), g),
            (4, Some(1e6), BAD),
            (5, Some(11.0), g),
            // {10, 12, 11}: mean 11, σ 1 → z(14) = 3: the Bad/NaN ones never joined.
            (6, Some(14.0), g),
        ],
    );
    assert_eq!(states(&ev), vec![("z", AlarmState::Active, 6)]);
    assert!((ev[0].score - 3.0).abs() < 1e-12);
    let s = e.stats();
    assert_eq!(
        (s.samples, s.skipped, s.transitions, s.active),
        (4, 3, 1, 1)
    );
}

#[test]
fn delay_completes_on_a_tick_and_bad_holds_it() {
    let mut e = AnomalyEngine::new([spec(0, "high", hi(10.0), Debounce::Delay(2 * S))]);
    let g = Quality::Good;
    assert!(feed(&mut e, 0, &[(100, Some(11.0), g)]).is_empty());
    let mut out = Vec::new();
    e.tick(Timestamp(101 * S), &mut out);
    assert!(out.is_empty());
    e.tick(Timestamp(102 * S), &mut out);
    assert_eq!(states(&out), vec![("high", AlarmState::Active, 102)]);
    // Back to normal needs the clear to hold for the delay too; a Bad sample restarts it.
    out.clear();
    assert!(feed(&mut e, 0, &[(103, Some(5.0), g), (104, None, BAD)]).is_empty());
    e.tick(Timestamp(110 * S), &mut out);
    assert!(out.is_empty(), "ticks leave a Bad tag alone");
    let ev = feed(
        &mut e,
        0,
        &[
            (111, Some(5.0), g),
            (112, Some(5.0), g),
            (113, Some(5.0), g),
        ],
    );
    assert_eq!(states(&ev), vec![("high", AlarmState::Normal, 113)]);
    // A tick earlier than the tag's last sample does nothing.
    e.tick(Timestamp(50 * S), &mut out);
    assert!(out.is_empty());
}

#[test]
fn flatline_fires_on_ticks_when_samples_stop() {
    let mut e = AnomalyEngine::new([spec(
        0,
        "stuck",
        CheckParams::Flatline {
            epsilon: 0.0,
            span: FlatSpan::Duration(60 * S),
        },
        Debounce::default(),
    )]);
    assert!(feed(&mut e, 0, &[(0, Some(4.0), Quality::Good)]).is_empty());
    let mut out = Vec::new();
    for t in (10..=120).step_by(10) {
        e.tick(Timestamp(t * S), &mut out);
    }
    assert_eq!(states(&out), vec![("stuck", AlarmState::Active, 60)]);
    assert_eq!(
        out[0].message,
        "value stuck at 4 for 60 (flatline after 60)"
    );
    let ev = feed(&mut e, 0, &[(121, Some(4.5), Quality::Good)]);
    assert_eq!(states(&ev), vec![("stuck", AlarmState::Normal, 121)]);
}

#[test]
fn reaction_only_on_the_active_transition() {
    let mut s = spec(0, "high", hi(10.0), Debounce::Hits(2));
    s.reaction = Some(Reaction {
        tag: TagId(7),
        path: Arc::from("line/stop"),
        value: Value::Boolean(true),
    });
    let mut e = AnomalyEngine::new([s]);
    let g = Quality::Good;
    let ev = feed(
        &mut e,
        0,
        &[
            (0, Some(11.0), g),
            (1, Some(12.0), g),
            (2, Some(13.0), g),
            (3, Some(1.0), g),
            (4, Some(1.0), g),
        ],
    );
    assert_eq!(
        states(&ev),
        vec![
            ("high", AlarmState::Active, 1),
            ("high", AlarmState::Normal, 4)
        ]
    );
    let want = ReactionRequest {
        tag: TagId(7),
        path: Arc::from("line/stop"),
        value: Value::Boolean(true),
    };
    assert_eq!(ev[0].reaction.as_ref(), Some(&want));
    assert_eq!(ev[1].reaction, None);
    assert_eq!(e.stats().reactions, 1);
}

#[test]
fn time_running_backwards_is_held_at_the_latest() {
    let mut e = AnomalyEngine::new([spec(
        0,
        "rate",
        CheckParams::RateOfChange {
            max_per_second: 1.0,
            hysteresis: 0.0,
            window: Window::Samples(2),
        },
        Debounce::default(),
    )]);
    let g = Quality::Good;
    // The second sample claims an earlier time: same instant as the first, so no rate.
    let ev = feed(
        &mut e,
        0,
        &[
            (10, Some(0.0), g),
            (5, Some(100.0), g),
            (12, Some(101.0), g),
        ],
    );
    assert!(ev.is_empty(), "{ev:?}");
}
