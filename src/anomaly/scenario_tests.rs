//! Whole-module tests: numerical stability over 10^7 samples, and a seeded plant scenario
//! with scheduled faults that must raise exactly the expected alarms.

use std::time::Instant;

use uaedge_driver::{BadReason, DataType, Quality, Timestamp};

use super::checks::Detector;
use super::*;
use crate::config::checks::{validate_checks, CheckConfig};
use crate::config::yaml::Document;
use crate::model::{TagDef, TagId};

/// Deterministic uniform noise in [-0.5, 0.5).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// Exact mean and sample variance, two-pass.
fn exact(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// ~1.2 s per window kind in a debug build, so the full 10^7 runs in `cargo test`.
const STABILITY_SAMPLES: usize = 10_000_000;

fn stability(window: Window, window_len: usize) {
    let mut d = Detector::new(&CheckParams::Zscore {
        threshold: 3.0,
        hysteresis: 0.0,
        min_samples: 2,
        min_spread: 0.0,
        window,
    });
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut last = vec![0.0; window_len];
    let mut worst = (0.0f64, 0.0f64);
    let started = Instant::now();
    for i in 0..STABILITY_SAMPLES {
        // A large offset with small noise: raw Σx² would cancel catastrophically here.
        let x = 1e6 + 0.01 * rng.next();
        d.observe(x, i as i64 * 1000);
        if let Some(slot) = last.get_mut(i % window_len) {
            *slot = x;
        }
        if (i + 1) % 100_003 == 0 {
            let Detector::Zscore(z) = &d else {
                panic!("not a z-score detector")
            };
            let (mean, var) = exact(&last);
            let m = z.moments();
            assert_eq!(m.len(), window_len);
            worst.0 = worst.0.max((m.mean() - mean).abs());
            worst.1 = worst.1.max((m.variance() - var).abs() / var);
        }
    }
    eprintln!(
        "{STABILITY_SAMPLES} samples, window {window:?}: worst |Δmean| {:.2e}, worst relative Δvar {:.2e}, {:?}",
        worst.0,
        worst.1,
        started.elapsed()
    );
    // σ² here is ~8e-6 on values ~1e6: one ulp of 1e6 is 1.2e-10.
    assert!(worst.0 < 1e-8, "mean drifted by {}", worst.0);
    assert!(worst.1 < 1e-6, "variance drifted by {}", worst.1);
}

#[test]
fn zscore_statistics_stay_exact_with_a_count_window() {
    stability(Window::Samples(100), 100);
}

#[test]
fn zscore_statistics_stay_exact_with_a_duration_window() {
    // 1 ms spacing, [t - 99 ms, t]: exactly 100 samples, through add/remove, not replace.
    stability(Window::Duration(99_000), 100);
}

const PLANT: &str = "checks:
  - { kind: limits, name: high, hi: 65, hysteresis: 2,
      reaction: { write: { tag: stop, value: true } } }
  - { kind: rate_of_change, window: 20s, max_per_second: 0.1, hits: 3 }
  - { kind: zscore, window: 120s, threshold: 6, min_samples: 60, min_spread: 0.25, delay: 1s }
  - { kind: flatline, epsilon: 0.000001, duration: 60s }
  - { kind: spike, window_samples: 15, threshold: 8, min_samples: 10, min_spread: 0.25 }
";

fn plant_tags() -> Vec<TagDef> {
    let def = |id: u32, tag: &str, data_type, writable| TagDef {
        writable,
        ..TagDef::plain(id, "plant", tag, data_type)
    };
    vec![
        def(0, "temp", DataType::Double, false),
        def(1, "stop", DataType::Boolean, true),
    ]
}

/// The plant's temperature at second `t`, or `None` during the dropout (Bad).
fn temperature(t: i64, noise: f64, frozen: &mut f64) -> Option<f64> {
    let base = 50.0 + 1.5 * noise;
    match t {
        300 => Some(base + 10.0),                               // spike
        600..700 => Some(base + 0.2 * (t - 600) as f64),        // drift up
        700..800 => Some(base + 20.0),                          // high plateau
        800..900 => Some(base + 20.0 - 0.2 * (t - 800) as f64), // drift down
        1200 => {
            *frozen = base;
            Some(base)
        }
        1201..1500 => Some(*frozen),    // stuck sensor
        1700..1800 => None,             // dropout
        2000..2100 => Some(base + 5.0), // level step
        _ => Some(base),
    }
}

#[test]
fn seeded_plant_scenario_raises_exactly_the_expected_alarms() {
    let doc = Document::parse("plant.yaml", PLANT).unwrap_or_else(|e| panic!("{e}"));
    #[derive(serde::Deserialize)]
    struct Holder {
        checks: Vec<CheckConfig>,
    }
    let holder: Holder = doc.root().deserialize().unwrap_or_else(|e| panic!("{e}"));
    let tags = plant_tags();
    let mut errors = Vec::new();
    let lookup = |p: &str| tags.iter().find(|t| t.path.to_string() == p);
    let specs = validate_checks(&tags[0], &holder.checks, lookup, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let mut engine = AnomalyEngine::new(specs);

    let mut rng = Rng(42);
    let mut frozen = 0.0;
    let mut events = Vec::new();
    for t in 0..2400i64 {
        let noise = rng.next();
        let time = Timestamp(t * 1_000_000);
        match temperature(t, noise, &mut frozen) {
            Some(x) => engine.process(TagId(0), Some(x), Quality::Good, time, &mut events),
            None => engine.process(
                TagId(0),
                None,
                Quality::Bad(BadReason::NotConnected),
                time,
                &mut events,
            ),
        }
        if t % 10 == 5 {
            engine.tick(Timestamp(time.0 + 500_000), &mut events);
        }
    }
    let got: Vec<(&str, bool, i64)> = events
        .iter()
        .map(|e| (&*e.check, e.state.is_active(), e.time.0 / 1000))
        .collect();
    // (check, active, ms). Why each one:
    let expected: Vec<(&str, bool, i64)> = vec![
        // the one-sample spike at 300 s, gone with the next sample
        ("spike", true, 300_000),
        ("spike", false, 301_000),
        // drift up at 0.2/s from 600 s: the 20 s slope passes 0.1/s, 3 hits
        ("rate_of_change", true, 616_000),
        // 50 + 0.2 * 73 + noise passes 65 (the reaction stops the line)
        ("high", true, 673_000),
        // the plateau from 700 s flattens the slope
        ("rate_of_change", false, 713_000),
        // drift down from 800 s
        ("rate_of_change", true, 816_000),
        // below 65 - 2 of hysteresis
        ("high", false, 834_000),
        ("rate_of_change", false, 915_000),
        // stuck from 1200 s: 60 s flat, then moving again at 1500 s
        ("flatline", true, 1_260_000),
        ("flatline", false, 1_500_000),
        // the dropout 1700..1800 s raises nothing; the +5 step at 2000 s does
        ("spike", true, 2_000_000),
        ("zscore", true, 2_001_000), // delay 1 s
        ("rate_of_change", true, 2_002_000),
        ("zscore", false, 2_005_000), // the window's σ caught up, clear for 1 s
        ("spike", false, 2_005_000),  // the median caught up
        ("rate_of_change", false, 2_022_000),
        // and back down at 2100 s (z-score: the mixed window's σ is wide by then)
        ("spike", true, 2_100_000),
        ("rate_of_change", true, 2_102_000),
        ("spike", false, 2_106_000),
        ("rate_of_change", false, 2_122_000),
    ];
    assert_eq!(got, expected);
    let reactions: Vec<_> = events.iter().filter_map(|e| e.reaction.as_ref()).collect();
    assert_eq!(reactions.len(), 1);
    assert_eq!(
        (reactions[0].tag, &*reactions[0].path),
        (TagId(1), "plant/stop")
    );
    assert_eq!(reactions[0].value, uaedge_driver::Value::Boolean(true));
    let stats = engine.stats();
    assert_eq!(
        (stats.active, stats.transitions, stats.reactions),
        (0, 20, 1)
    );
    assert_eq!((stats.samples, stats.skipped), (2300, 100));
}
