//! Rolling median and median absolute deviation (MAD), exact.
//!
//! The window's values sit in one [`OrderStat`] treap (O(log n) insert, remove, select).
//! The median is one or two selects. The MAD — the median of `|x - m|` — is found without
//! a second structure, from this fact: the `k` values nearest to `m` are `k` consecutive
//! ones in sorted order `s`, `s[L..L+k]`, and the k-th smallest distance is
//! `max(m - s[L], s[L+k-1] - m)` for the best `L`. As `L` grows, `m - s[L]` falls and
//! `s[L+k-1] - m` rises, so the predicate `P(L): s[L+k-1] - m >= m - s[L]` is monotone and
//! the best `L` is the first one where it holds, or the one before.
//!
//! That first `L` is found by galloping (exponential, then binary) search starting from
//! the previous sample's `L`. One sample moves the median by at most one rank, so `L`
//! usually moves by 0–2 and the search costs a few O(log n) selects: O(log n) per sample
//! in practice. The worst case (the median jumping between two far-apart clusters, which
//! moves `L` by up to n/2) costs O(log² n): still exact, never linear.
//!
//! Conventions: for an even count the median is the mean of the two middle values and the
//! MAD the mean of the two middle distances (as in numpy/R's `mad(constant = 1)`). The MAD
//! is raw, not scaled by 1.4826.

use super::order_stat::OrderStat;

#[derive(Debug, Clone)]
pub struct MedianMad {
    set: OrderStat,
    /// The best `L` of the last MAD computation: where the next search starts.
    last_l: usize,
}

impl MedianMad {
    pub fn with_capacity(capacity: usize) -> MedianMad {
        MedianMad {
            set: OrderStat::with_capacity(capacity),
            last_l: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn insert(&mut self, x: f64, seq: u64) {
        self.set.insert(x, seq);
    }

    pub fn remove(&mut self, x: f64, seq: u64) -> bool {
        self.set.remove(x, seq)
    }

    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.set.allocated()
    }

    fn s(&self, i: usize) -> f64 {
        // Indices passed here are always < len; NaN would only surface a logic error as
        // "no hit", never as a panic.
        self.set.select(i).unwrap_or(f64::NAN)
    }

    pub fn median(&self) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            None
        } else if n % 2 == 1 {
            Some(self.s(n / 2))
        } else {
            Some((self.s(n / 2 - 1) + self.s(n / 2)) / 2.0)
        }
    }

    /// `(median, MAD)` of the window, or `None` when it is empty.
    pub fn median_mad(&mut self) -> Option<(f64, f64)> {
        let m = self.median()?;
        let n = self.len();
        // k-th smallest distance (1-based); for even n also the (k+1)-th.
        let k = n.div_ceil(2);
        let max_l = n - k;
        let p = |this: &Self, l: usize| this.s(l + k - 1) - m >= m - this.s(l);
        let first = self.first_true(max_l, p);
        // Best window: at `first` (cost = right end) or just before it (cost = left end).
        let at = |this: &Self, l: usize| (m - this.s(l)).abs().max((this.s(l + k - 1) - m).abs());
        let mut best_l = first.min(max_l);
        let mut dk = at(self, best_l);
        if first > 0 {
            let before = at(self, first - 1);
            if before < dk {
                dk = before;
                best_l = first - 1;
            }
        }
        self.last_l = best_l;
        if n % 2 == 1 {
            return Some((m, dk));
        }
        // The next nearest value is just outside the best window, on one side or the other.
        let below = (best_l > 0).then(|| (m - self.s(best_l - 1)).abs());
        let above = (best_l + k < n).then(|| (self.s(best_l + k) - m).abs());
        let next = match (below, above) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => dk,
        };
        Some((m, (dk + next) / 2.0))
    }

    /// The smallest `l` in `0..=max_l` where the monotone `p` holds, or `max_l + 1`.
    /// Gallops from the last answer, so a small move costs a few probes.
    fn first_true(&self, max_l: usize, p: impl Fn(&Self, usize) -> bool) -> usize {
        let start = self.last_l.min(max_l);
        // Invariant for the binary search: p(hi) true (or hi = max_l + 1), p(lo - 1) false
        // (or lo = 0).
        let (mut lo, mut hi);
        if p(self, start) {
            hi = start;
            let mut step = 1;
            loop {
                if hi == 0 {
                    return 0;
                }
                let probe = hi.saturating_sub(step);
                if p(self, probe) {
                    hi = probe;
                    step *= 2;
                } else {
                    lo = probe + 1;
                    break;
                }
            }
        } else {
            lo = start + 1;
            let mut step = 1;
            loop {
                if lo > max_l {
                    return max_l + 1;
                }
                let probe = (lo + step - 1).min(max_l);
                if p(self, probe) {
                    hi = probe;
                    break;
                }
                lo = probe + 1;
                step *= 2;
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if p(self, mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(xs: &[f64]) -> (f64, f64) {
        fn med(v: &mut [f64]) -> f64 {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
        let m = med(&mut xs.to_vec());
        let mut d: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
        (m, med(&mut d))
    }

    #[test]
    fn hand_computed_median_and_mad() {
        let mut mm = MedianMad::with_capacity(8);
        // 1 1 2 2 4 6 9: median 2, distances 1 1 0 0 2 4 7 → sorted 0 0 1 1 2 4 7 → MAD 1.
        for (i, x) in [1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0].into_iter().enumerate() {
            mm.insert(x, i as u64);
        }
        assert_eq!(mm.median_mad(), Some((2.0, 1.0)));
        // Remove the 9: 1 1 2 2 4 6, median 2, distances 0 0 1 1 2 4 → MAD (1+1)/2 = 1.
        assert!(mm.remove(9.0, 6));
        assert_eq!(mm.median_mad(), Some((2.0, 1.0)));
        // Remove a 1: 1 2 2 4 6, median 2, distances 0 0 1 2 4 → MAD 1.
        assert!(mm.remove(1.0, 0));
        assert_eq!(mm.median_mad(), Some((2.0, 1.0)));
        // Add 100: 1 2 2 4 6 100 → median 3, distances 2 1 1 1 3 97 → 1 1 1 2 3 97 → 1.5.
        mm.insert(100.0, 7);
        assert_eq!(mm.median_mad(), Some((3.0, 1.5)));
    }

    #[test]
    fn sliding_matches_brute_force_including_cluster_jumps() {
        for window in [1usize, 2, 3, 10, 33] {
            let mut mm = MedianMad::with_capacity(window);
            let mut ring: std::collections::VecDeque<(f64, u64)> = Default::default();
            let mut x = 7u64;
            for seq in 0..3000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (x >> 33) as f64 / (1u64 << 31) as f64;
                // Two far-apart clusters with heavy ties: the MAD window jumps.
                let v = if (x >> 20).is_multiple_of(2) {
                    (r * 4.0).floor()
                } else {
                    1000.0 + (r * 4.0).floor()
                };
                if ring.len() == window {
                    if let Some((old, s)) = ring.pop_front() {
                        assert!(mm.remove(old, s));
                    }
                }
                ring.push_back((v, seq));
                mm.insert(v, seq);
                let xs: Vec<f64> = ring.iter().map(|p| p.0).collect();
                assert_eq!(
                    mm.median_mad(),
                    Some(brute(&xs)),
                    "window {window} seq {seq}"
                );
            }
        }
    }
}
