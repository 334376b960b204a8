//! The five checks: each judges a good sample against its window as a [`Verdict`].
//!
//! Every check sees only good (or Uncertain) finite values, with times that never go
//! backwards (the engine sees to both). Windowed statistics (z-score, spike) judge a sample
//! against the window *before* it joins, so an outlier cannot inflate the spread that is
//! supposed to expose it; rate of change includes the new sample, as it is one end of the
//! slope.

use super::alarm::Verdict;
use super::median_mad::MedianMad;
use super::moments::Moments;
use super::spec::{CheckParams, FlatSpan};
use super::window::{TimedRing, Window};

/// A verdict and the numbers behind it, for the alarm event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// What was compared: the value (limits), the rate per second, the signed z-score or
    /// MAD-score, or the flat run's length (seconds or samples).
    pub score: f64,
    /// What it was compared with: the violated (or nearest) limit, `max_per_second`, the
    /// threshold in σ or MADs, the flatline span.
    pub threshold: f64,
}

impl Evaluation {
    fn neutral(threshold: f64) -> Evaluation {
        Evaluation {
            verdict: Verdict::Neutral,
            score: 0.0,
            threshold,
        }
    }
}

/// Hit above `threshold`, clear at or below `threshold - hysteresis`, neutral between.
fn judge(score: f64, threshold: f64, hysteresis: f64) -> Verdict {
    let a = score.abs();
    if a > threshold {
        Verdict::Hit
    } else if a <= threshold - hysteresis {
        Verdict::Clear
    } else {
        Verdict::Neutral
    }
}

/// `(x - center) / spread`, with a spread that is zero up to rounding treated as zero: then
/// any real deviation scores infinite, and none scores 0.
fn score(x: f64, center: f64, spread: f64) -> f64 {
    // Rounding of a center around 1e6 is ~1e-10; this keeps it from reading as a spread.
    let tol = 64.0 * f64::EPSILON * center.abs().max(x.abs());
    let dev = x - center;
    if spread > tol {
        dev / spread
    } else if dev.abs() > tol {
        f64::INFINITY.copysign(dev)
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    lo: Option<f64>,
    hi: Option<f64>,
    hysteresis: f64,
}

impl Limits {
    fn observe(&self, x: f64) -> Evaluation {
        let above = self.hi.is_some_and(|hi| x > hi);
        let below = self.lo.is_some_and(|lo| x < lo);
        let inside = self.hi.is_none_or(|hi| x <= hi - self.hysteresis)
            && self.lo.is_none_or(|lo| x >= lo + self.hysteresis);
        // Report the limit on the value's side of the band's middle.
        let upper = match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => x >= (lo + hi) / 2.0,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let limit = if upper { self.hi } else { self.lo };
        Evaluation {
            verdict: if above || below {
                Verdict::Hit
            } else if inside {
                Verdict::Clear
            } else {
                Verdict::Neutral
            },
            score: x,
            threshold: limit.unwrap_or(f64::NAN),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateOfChange {
    max_per_second: f64,
    hysteresis: f64,
    ring: TimedRing<f64>,
}

impl RateOfChange {
    /// The slope is judged only over a full window: `n` samples, or at least the span (the
    /// newest sample at or before `t - span` stays as the anchor). A half-empty window at
    /// start-up or after a gap would divide noise by a short time and cry wolf.
    fn observe(&mut self, x: f64, t: i64) -> Evaluation {
        let time = uaedge_driver::Timestamp(t);
        let full = match self.ring.window {
            Window::Samples(n) => {
                while self.ring.expire_one(time).is_some() {}
                self.ring.push(time, x);
                self.ring.len() >= n
            }
            Window::Duration(span) => {
                let start = t.saturating_sub(span);
                while self.ring.second().is_some_and(|&(t1, _)| t1 <= start) {
                    self.ring.pop();
                }
                self.ring.push(time, x);
                self.ring.front().is_some_and(|&(t0, _)| t0 <= start)
            }
        };
        let (Some(&(t0, x0)), Some(&(t1, x1))) = (self.ring.front(), self.ring.back()) else {
            return Evaluation::neutral(self.max_per_second);
        };
        if !full || t1 <= t0 {
            return Evaluation::neutral(self.max_per_second);
        }
        let rate = (x1 - x0) / ((t1 - t0) as f64 * 1e-6);
        Evaluation {
            verdict: judge(rate, self.max_per_second, self.hysteresis),
            score: rate,
            threshold: self.max_per_second,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Zscore {
    threshold: f64,
    hysteresis: f64,
    min_samples: usize,
    min_spread: f64,
    ring: TimedRing<f64>,
    moments: Moments,
}

impl Zscore {
    fn observe(&mut self, x: f64, t: i64) -> Evaluation {
        let time = uaedge_driver::Timestamp(t);
        if let Window::Duration(_) = self.ring.window {
            while let Some(old) = self.ring.expire_one(time) {
                self.moments.remove(old);
            }
        }
        let eval = if self.moments.len() < self.min_samples {
            Evaluation::neutral(self.threshold)
        } else {
            let sigma = self.moments.std_dev().max(self.min_spread);
            let z = score(x, self.moments.mean(), sigma);
            Evaluation {
                verdict: judge(z, self.threshold, self.hysteresis),
                score: z,
                threshold: self.threshold,
            }
        };
        // A full count window slides in one step; a duration window expired above.
        match self.ring.expire_one(time) {
            Some(old) => self.moments.replace(old, x),
            None => self.moments.add(x),
        }
        self.ring.push(time, x);
        if self.moments.recompute_due() {
            self.moments.recompute(self.ring.iter().map(|&(_, v)| v));
        }
        eval
    }

    #[cfg(test)]
    pub(crate) fn moments(&self) -> &Moments {
        &self.moments
    }
}

#[derive(Debug, Clone)]
pub struct Flatline {
    epsilon: f64,
    span: FlatSpan,
    /// The value that started the current run, its time and how many samples it has.
    reference: Option<(f64, i64, usize)>,
}

impl Flatline {
    fn evaluate(&self, now: i64) -> Option<Evaluation> {
        let (_, start, count) = self.reference?;
        let (score, threshold, flat) = match self.span {
            FlatSpan::Duration(d) => {
                let len = now.saturating_sub(start);
                (len as f64 * 1e-6, d as f64 * 1e-6, len >= d)
            }
            FlatSpan::Samples(n) => (count as f64, n as f64, count >= n),
        };
        Some(Evaluation {
            verdict: if flat { Verdict::Hit } else { Verdict::Clear },
            score,
            threshold,
        })
    }

    fn observe(&mut self, x: f64, t: i64) -> Evaluation {
        match &mut self.reference {
            Some((r, _, count)) if (x - *r).abs() <= self.epsilon => *count += 1,
            other => *other = Some((x, t, 1)),
        }
        self.evaluate(t)
            .unwrap_or_else(|| Evaluation::neutral(f64::NAN))
    }
}

#[derive(Debug, Clone)]
pub struct Spike {
    threshold: f64,
    hysteresis: f64,
    min_samples: usize,
    min_spread: f64,
    ring: TimedRing<(f64, u64)>,
    stats: MedianMad,
    seq: u64,
}

impl Spike {
    fn observe(&mut self, x: f64, t: i64) -> Evaluation {
        let time = uaedge_driver::Timestamp(t);
        if let Window::Duration(_) = self.ring.window {
            while let Some((old, s)) = self.ring.expire_one(time) {
                self.stats.remove(old, s);
            }
        }
        let eval = match self.stats.median_mad() {
            Some((median, mad)) if self.stats.len() >= self.min_samples => {
                let k = score(x, median, mad.max(self.min_spread));
                Evaluation {
                    verdict: judge(k, self.threshold, self.hysteresis),
                    score: k,
                    threshold: self.threshold,
                }
            }
            _ => Evaluation::neutral(self.threshold),
        };
        if let Some((old, s)) = self.ring.expire_one(time) {
            self.stats.remove(old, s);
        }
        self.seq = self.seq.wrapping_add(1);
        self.stats.insert(x, self.seq);
        self.ring.push(time, (x, self.seq));
        eval
    }
}

/// One check's live state.
#[derive(Debug, Clone)]
pub enum Detector {
    Limits(Limits),
    RateOfChange(RateOfChange),
    Zscore(Zscore),
    Flatline(Flatline),
    Spike(Spike),
}

impl Detector {
    /// Allocates the check's window up front (a count window at its full size).
    pub fn new(params: &CheckParams) -> Detector {
        match *params {
            CheckParams::Limits { lo, hi, hysteresis } => {
                Detector::Limits(Limits { lo, hi, hysteresis })
            }
            CheckParams::RateOfChange {
                max_per_second,
                hysteresis,
                window,
            } => Detector::RateOfChange(RateOfChange {
                max_per_second,
                hysteresis,
                ring: TimedRing::new(window),
            }),
            CheckParams::Zscore {
                threshold,
                hysteresis,
                min_samples,
                min_spread,
                window,
            } => Detector::Zscore(Zscore {
                threshold,
                hysteresis,
                min_samples,
                min_spread,
                ring: TimedRing::new(window),
                moments: Moments::default(),
            }),
            CheckParams::Flatline { epsilon, span } => Detector::Flatline(Flatline {
                epsilon,
                span,
                reference: None,
            }),
            CheckParams::Spike {
                threshold,
                hysteresis,
                min_samples,
                min_spread,
                window,
            } => Detector::Spike(Spike {
                threshold,
                hysteresis,
                min_samples,
                min_spread,
                stats: MedianMad::with_capacity(match window {
                    Window::Samples(n) => n,
                    Window::Duration(_) => 64,
                }),
                ring: TimedRing::new(window),
                seq: 0,
            }),
        }
    }

    /// Judges a good sample `x` at `t` (microseconds) and adds it to the window.
    #[inline]
    pub fn observe(&mut self, x: f64, t: i64) -> Evaluation {
        match self {
            Detector::Limits(c) => c.observe(x),
            Detector::RateOfChange(c) => c.observe(x, t),
            Detector::Zscore(c) => c.observe(x, t),
            Detector::Flatline(c) => c.observe(x, t),
            Detector::Spike(c) => c.observe(x, t),
        }
    }

    /// Re-judges at `now` without a sample, where time alone can change the verdict (a
    /// flatline by duration); `None` means the last verdict stands.
    pub fn at(&self, now: i64) -> Option<Evaluation> {
        match self {
            Detector::Flatline(f) if matches!(f.span, FlatSpan::Duration(_)) => f.evaluate(now),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
