//! Each check against hand-computed expectations.

use super::*;
use crate::anomaly::alarm::Verdict::{self, Clear, Hit, Neutral};

const S: i64 = 1_000_000;

fn run(d: &mut Detector, samples: &[(i64, f64)]) -> Vec<Evaluation> {
    samples.iter().map(|&(t, x)| d.observe(x, t * S)).collect()
}

fn verdicts(evals: &[Evaluation]) -> Vec<Verdict> {
    evals.iter().map(|e| e.verdict).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn limits_with_hysteresis_band() {
    let mut d = Detector::new(&CheckParams::Limits {
        lo: Some(10.0),
        hi: Some(20.0),
        hysteresis: 1.0,
    });
    let e = run(
        &mut d,
        &[
            (0, 15.0),
            (1, 21.0),
            (2, 19.5),
            (3, 19.0),
            (4, 9.0),
            (5, 10.5),
            (6, 11.0),
            (7, 20.0),
        ],
    );
    assert_eq!(
        verdicts(&e),
        vec![Clear, Hit, Neutral, Clear, Hit, Neutral, Clear, Neutral]
    );
    assert_eq!((e[1].score, e[1].threshold), (21.0, 20.0));
    assert_eq!((e[4].score, e[4].threshold), (9.0, 10.0));

    let mut hi_only = Detector::new(&CheckParams::Limits {
        lo: None,
        hi: Some(5.0),
        hysteresis: 0.0,
    });
    assert_eq!(
        verdicts(&run(&mut hi_only, &[(0, -1e9), (1, 5.0), (2, 5.0001)])),
        vec![Clear, Clear, Hit]
    );
}

#[test]
fn rate_of_change_consecutive_and_windowed() {
    let mut d = Detector::new(&CheckParams::RateOfChange {
        max_per_second: 1.0,
        hysteresis: 0.2,
        window: Window::Samples(2),
    });
    let e = run(
        &mut d,
        &[(0, 0.0), (1, 0.5), (2, 2.0), (3, 2.9), (4, 3.6), (5, 2.0)],
    );
    // Rates: -, 0.5, 1.5, 0.9, 0.7, -1.6.
    assert_eq!(verdicts(&e), vec![Neutral, Clear, Hit, Neutral, Clear, Hit]);
    assert!(close(e[2].score, 1.5));
    assert!(close(e[5].score, -1.6));
    // Over 3 samples the slope is from the oldest: (3.6 - 2.0) / 2 s at t = 4.
    let mut three = Detector::new(&CheckParams::RateOfChange {
        max_per_second: 1.0,
        hysteresis: 0.0,
        window: Window::Samples(3),
    });
    let e = run(
        &mut three,
        &[(0, 0.0), (1, 0.5), (2, 2.0), (3, 2.9), (4, 3.6)],
    );
    assert_eq!(verdicts(&e), vec![Neutral, Neutral, Clear, Hit, Clear]);
    assert!(close(e[4].score, 0.8));

    // A Bad gap leaves the anchor before it: the slope spans the gap.
    let mut gap = Detector::new(&CheckParams::RateOfChange {
        max_per_second: 1.0,
        hysteresis: 0.0,
        window: Window::Duration(2 * S),
    });
    let e = run(&mut gap, &[(0, 0.0), (1, 0.0), (10, 5.0), (11, 20.0)]);
    assert_eq!(verdicts(&e), vec![Neutral, Neutral, Clear, Hit]);
    assert!(close(e[2].score, 5.0 / 9.0));
    // At 11 s the anchor is still 1 s, the newest sample at or before 11 - 2.
    assert!(close(e[3].score, 2.0));

    // A 2 s window: nothing until it spans 2 s; at t = 2 it spans 0..2, at t = 3 1..3.
    let mut w = Detector::new(&CheckParams::RateOfChange {
        max_per_second: 1.0,
        hysteresis: 0.0,
        window: Window::Duration(2 * S),
    });
    let e = run(&mut w, &[(0, 0.0), (1, 1.0), (2, 2.0), (3, 5.0)]);
    assert_eq!(verdicts(&e), vec![Neutral, Neutral, Clear, Hit]);
    assert!(close(e[2].score, 1.0));
    assert!(close(e[3].score, 2.0)); // (5 - 1) / 2
}

#[test]
fn zscore_against_the_window_before_the_sample() {
    let mut d = Detector::new(&CheckParams::Zscore {
        threshold: 2.0,
        hysteresis: 0.5,
        min_samples: 3,
        min_spread: 0.0,
        window: Window::Samples(4),
    });
    let e = run(
        &mut d,
        &[
            (0, 10.0),
            (1, 12.0),
            (2, 11.0),
            (3, 14.0),
            (4, 12.0),
            (5, 11.0),
        ],
    );
    assert_eq!(
        verdicts(&e),
        vec![Neutral, Neutral, Neutral, Hit, Clear, Clear]
    );
    // {10, 12, 11}: mean 11, sample σ 1 → z(14) = 3.
    assert!(close(e[3].score, 3.0));
    // {10, 12, 11, 14}: mean 11.75, σ² = 8.75 / 3.
    assert!(close(e[4].score, 0.25 / (8.75f64 / 3.0).sqrt()));
    // 10 expired: {12, 11, 14, 12}: mean 12.25, σ² = 4.75 / 3.
    assert!(close(e[5].score, -1.25 / (4.75f64 / 3.0).sqrt()));
}

#[test]
fn zscore_zero_spread_and_its_floor() {
    let params = |min_spread| CheckParams::Zscore {
        threshold: 2.0,
        hysteresis: 0.0,
        min_samples: 3,
        min_spread,
        window: Window::Samples(3),
    };
    let mut d = Detector::new(&params(0.0));
    let e = run(&mut d, &[(0, 5.0), (1, 5.0), (2, 5.0), (3, 5.0), (4, 6.0)]);
    assert_eq!(verdicts(&e), vec![Neutral, Neutral, Neutral, Clear, Hit]);
    assert_eq!(e[4].score, f64::INFINITY);
    let mut floored = Detector::new(&params(0.5));
    let e = run(
        &mut floored,
        &[(0, 5.0), (1, 5.0), (2, 5.0), (3, 6.0), (4, 6.01)],
    );
    // 1 / 0.5 = 2σ: not above 2. Then {5, 5, 6}: σ = 0.577 → z(6.01) = 1.75.
    assert_eq!(verdicts(&e)[3..], [Clear, Clear]);
    assert!(close(e[3].score, 2.0));
}

#[test]
fn zscore_duration_window_expires_across_a_gap() {
    let mut d = Detector::new(&CheckParams::Zscore {
        threshold: 2.0,
        hysteresis: 0.0,
        min_samples: 2,
        min_spread: 0.0,
        window: Window::Duration(10 * S),
    });
    let e = run(
        &mut d,
        &[(0, 0.0), (1, 2.0), (2, 100.0), (20, 100.0), (21, 0.0)],
    );
    // At 2: {0, 2} mean 1, σ √2 → z ≈ 70. At 20 everything expired: too few samples.
    // At 21 the window is {100}: still too few.
    assert_eq!(verdicts(&e), vec![Neutral, Neutral, Hit, Neutral, Neutral]);
    if let Detector::Zscore(z) = &d {
        assert_eq!(z.ring.len(), 2);
        assert_eq!(z.moments().len(), 2);
    }
}

#[test]
fn flatline_by_duration_and_by_samples() {
    let mut d = Detector::new(&CheckParams::Flatline {
        epsilon: 0.1,
        span: FlatSpan::Duration(5 * S),
    });
    let e = run(
        &mut d,
        &[(0, 1.0), (2, 1.05), (5, 0.95), (6, 1.2), (7, 1.25)],
    );
    assert_eq!(verdicts(&e), vec![Clear, Clear, Hit, Clear, Clear]);
    assert!(close(e[2].score, 5.0));
    // Without samples, time alone completes the run that started at 6 s.
    assert_eq!(d.at(10 * S).map(|e| e.verdict), Some(Clear));
    let at = d.at(11 * S);
    assert_eq!(at.map(|e| e.verdict), Some(Hit));
    assert!(at.is_some_and(|e| close(e.score, 5.0)));

    let mut n = Detector::new(&CheckParams::Flatline {
        epsilon: 0.0,
        span: FlatSpan::Samples(3),
    });
    let e = run(&mut n, &[(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0)]);
    assert_eq!(verdicts(&e), vec![Clear, Clear, Hit, Hit, Clear]);
    assert_eq!(n.at(100 * S), None);
}

#[test]
fn spike_in_mads_from_the_rolling_median() {
    let mut d = Detector::new(&CheckParams::Spike {
        threshold: 3.0,
        hysteresis: 0.0,
        min_samples: 5,
        min_spread: 0.0,
        window: Window::Samples(5),
    });
    let e = run(
        &mut d,
        &[
            (0, 10.0),
            (1, 11.0),
            (2, 9.0),
            (3, 10.0),
            (4, 12.0),
            (5, 20.0),
            (6, 13.0),
        ],
    );
    assert_eq!(
        verdicts(&e),
        vec![Neutral, Neutral, Neutral, Neutral, Neutral, Hit, Clear]
    );
    // {10, 11, 9, 10, 12}: median 10, |d| = 0 1 1 0 2 → MAD 1 → score 10.
    assert!(close(e[5].score, 10.0));
    // {11, 9, 10, 12, 20}: median 11, |d| = 0 2 1 1 9 → MAD 1 → score 2.
    assert!(close(e[6].score, 2.0));
}

#[test]
fn count_windows_never_grow_after_warm_up() {
    let window = Window::Samples(100);
    let mut z = Detector::new(&CheckParams::Zscore {
        threshold: 3.0,
        hysteresis: 0.0,
        min_samples: 10,
        min_spread: 0.0,
        window,
    });
    let mut s = Detector::new(&CheckParams::Spike {
        threshold: 3.0,
        hysteresis: 0.0,
        min_samples: 10,
        min_spread: 0.0,
        window,
    });
    for i in 0..10_000i64 {
        let x = (i % 37) as f64;
        z.observe(x, i);
        s.observe(x, i);
    }
    if let (Detector::Zscore(z), Detector::Spike(s)) = (&z, &s) {
        assert_eq!(z.ring.capacity(), 100);
        assert_eq!(s.ring.capacity(), 100);
        assert_eq!(s.stats.allocated(), 100);
    } else {
        panic!("wrong detectors");
    }
}
