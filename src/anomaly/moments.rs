//! Running mean and variance over a sliding window, O(1) per sample and numerically stable.
//!
//! Welford's update keeps the mean and `M2 = Σ(x - mean)²` rather than `Σx` and `Σx²`, so a
//! signal of `1e6 ± 0.01` does not lose its variance to cancellation (with raw sums, `Σx²`
//! is ~1e12·n and the variance ~1e-4 sits below its rounding). Sliding removes a sample
//! with the inverse update, and a full count window replaces the oldest with the newest in
//! one step. Removal is the less stable half: its rounding errors add up as a random walk.
//! So the statistics are recomputed exactly (corrected two-pass) from the window after as
//! many updates as the window holds (at least [`RECOMPUTE_EVERY_MIN`]): O(1) amortised,
//! and the error can never grow past what one window's worth of updates makes.

/// Fewest updates between exact recomputations, so tiny windows do not recompute often.
pub const RECOMPUTE_EVERY_MIN: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct Moments {
    n: usize,
    mean: f64,
    m2: f64,
    updates: usize,
}

impl Moments {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (divides by n - 1); 0 below two samples.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }

    /// Sample standard deviation.
    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }

    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.updates += 1;
    }

    pub fn remove(&mut self, y: f64) {
        match self.n {
            0 => return,
            1 => {
                *self = Moments::default();
                return;
            }
            _ => {}
        }
        self.n -= 1;
        let d = y - self.mean;
        self.mean -= d / self.n as f64;
        self.m2 -= d * (y - self.mean);
        if self.n == 1 {
            // One sample has no spread; do not keep the rounding residue.
            self.m2 = 0.0;
        }
        self.m2 = self.m2.max(0.0);
        self.updates += 1;
    }

    /// Removes `old` and adds `new` in one step (a full count window sliding by one).
    pub fn replace(&mut self, old: f64, new: f64) {
        if self.n == 0 {
            self.add(new);
            return;
        }
        let old_mean = self.mean;
        let d = new - old;
        self.mean += d / self.n as f64;
        self.m2 += d * ((new - self.mean) + (old - old_mean));
        self.m2 = self.m2.max(0.0);
        self.updates += 1;
    }

    /// Whether enough updates went by that an exact recomputation is due.
    pub fn recompute_due(&self) -> bool {
        self.updates >= self.n.max(RECOMPUTE_EVERY_MIN)
    }

    /// Recomputes from the window's values exactly: mean, then `Σ(x - mean)²` with the
    /// first-order correction for the mean's own rounding.
    pub fn recompute(&mut self, values: impl Iterator<Item = f64> + Clone) {
        let (n, sum) = values
            .clone()
            .fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
        if n == 0 {
            *self = Moments::default();
            return;
        }
        let mean = sum / n as f64;
        let (sq, comp) = values.fold((0.0, 0.0), |(sq, c), x| {
            let d = x - mean;
            (sq + d * d, c + d)
        });
        self.n = n;
        self.mean = mean + comp / n as f64;
        self.m2 = (sq - comp * comp / n as f64).max(0.0);
        self.updates = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn hand_computed_mean_and_sample_variance() {
        let mut m = Moments::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            m.add(x);
        }
        assert_eq!(m.mean(), 5.0);
        // Σ(x-5)² = 32, n-1 = 7.
        assert!((m.variance() - 32.0 / 7.0).abs() < 1e-12);
        m.remove(2.0);
        m.remove(4.0);
        // Left: 4 4 5 5 7 9: mean 34/6, Σ(x-mean)² = 21.333…, /5.
        let (mean, var) = exact(&[4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m.mean() - mean).abs() < 1e-12);
        assert!((m.variance() - var).abs() < 1e-12);
        m.replace(4.0, 1.0);
        let (mean, var) = exact(&[4.0, 5.0, 5.0, 7.0, 9.0, 1.0]);
        assert!((m.mean() - mean).abs() < 1e-12);
        assert!((m.variance() - var).abs() < 1e-12);
    }

    #[test]
    fn removing_down_to_empty_resets() {
        let mut m = Moments::default();
        m.add(1e6 + 0.1);
        m.add(1e6 + 0.3);
        m.remove(1e6 + 0.1);
        assert_eq!(m.variance(), 0.0);
        assert!((m.mean() - (1e6 + 0.3)).abs() < 1e-9);
        m.remove(1e6 + 0.3);
        assert_eq!(m.len(), 0);
        assert_eq!(m.mean(), 0.0);
    }
}
