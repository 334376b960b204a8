//! Anomaly checks: ns per sample per check, through `AnomalyEngine::process`, for windows
//! of 100, 10,000 and 1,000,000 samples (limits has no window: measured once).
//!
//! The signal is 1e6 plus uniform noise of ±0.5 at 1 kHz, so no alarm fires and the figure
//! is the steady-state cost of one sample (windows full, nothing allocated).
//!
//! Run: `cargo bench --bench anomaly` (add `-- zscore` to pick a group).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uaedge::anomaly::{AnomalyEngine, CheckParams, CheckSpec, Debounce, FlatSpan, Window};
use uaedge::model::TagId;
use uaedge_driver::{Quality, Timestamp};

const WINDOWS: [usize; 3] = [100, 10_000, 1_000_000];

struct Signal(u64, i64);

impl Signal {
    fn next(&mut self) -> (f64, Timestamp) {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.1 += 1000;
        let noise = (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        (1e6 + noise, Timestamp(self.1))
    }
}

fn params(kind: &str, n: usize) -> CheckParams {
    let window = Window::Samples(n);
    match kind {
        "limits" => CheckParams::Limits {
            lo: Some(0.0),
            hi: Some(2e6),
            hysteresis: 1.0,
        },
        "rate_of_change" => CheckParams::RateOfChange {
            max_per_second: 1e6,
            hysteresis: 0.0,
            window,
        },
        "zscore" => CheckParams::Zscore {
            threshold: 6.0,
            hysteresis: 0.0,
            min_samples: 10.min(n),
            min_spread: 0.0,
            window,
        },
        // Never flat: the noise always moves more than ε.
        "flatline" => CheckParams::Flatline {
            epsilon: 1e-12,
            span: FlatSpan::Samples(n),
        },
        _ => CheckParams::Spike {
            threshold: 8.0,
            hysteresis: 0.0,
            min_samples: 10.min(n),
            min_spread: 0.0,
            window,
        },
    }
}

fn bench(c: &mut Criterion) {
    for kind in ["limits", "rate_of_change", "zscore", "flatline", "spike"] {
        let mut group = c.benchmark_group(kind);
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        let windows: &[usize] = if kind == "limits" { &[1] } else { &WINDOWS };
        for &n in windows {
            let mut engine = AnomalyEngine::new([CheckSpec {
                tag: TagId(0),
                name: Arc::from(kind),
                params: params(kind, n),
                debounce: Debounce::default(),
                reaction: None,
            }]);
            let mut signal = Signal(0x9E37_79B9_7F4A_7C15, 0);
            let mut out = Vec::new();
            // Fill the window (twice over for small ones) so the steady state is measured.
            for _ in 0..(2 * n).max(10_000) {
                let (x, t) = signal.next();
                engine.process(TagId(0), Some(x), Quality::Good, t, &mut out);
            }
            assert!(out.is_empty(), "the benchmark signal must not raise alarms");
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    let (x, t) = signal.next();
                    engine.process(TagId(0), Some(x), Quality::Good, t, &mut out);
                })
            });
            assert!(out.is_empty(), "the benchmark signal must not raise alarms");
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
