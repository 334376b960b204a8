//! Sliding windows: a ring buffer of timestamped samples that expires by count or by age.
//!
//! Every windowed check keeps its samples here. The ring never shrinks: a sample-count
//! window is sized once at construction, a duration window grows geometrically until it
//! holds the busiest stretch seen, so after warm-up pushing and expiring allocate nothing.

use uaedge_driver::Timestamp;

/// What a window holds: the last `n` good samples, or the good samples of the last span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` samples (n >= 1).
    Samples(usize),
    /// Samples whose source time is within this many microseconds of the newest one,
    /// inclusive: `[t - span, t]`.
    Duration(i64),
}

impl Window {
    /// Initial ring capacity: exact for a count window; a small start for a duration
    /// window, which learns its size from the traffic.
    fn initial_capacity(self) -> usize {
        match self {
            Window::Samples(n) => n.max(1),
            Window::Duration(_) => 64,
        }
    }
}

/// A FIFO ring over a `Vec` that keeps its capacity.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    buf: Vec<T>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    pub fn with_capacity(capacity: usize) -> Ring<T> {
        Ring {
            buf: vec![T::default(); capacity.max(1)],
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn slot(&self, i: usize) -> usize {
        let j = self.head + i;
        // head < cap and i < cap, so one subtraction replaces a modulo on the hot path.
        if j >= self.buf.len() {
            j - self.buf.len()
        } else {
            j
        }
    }

    /// The `i`-th oldest element.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i < self.len {
            self.buf.get(self.slot(i))
        } else {
            None
        }
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn back(&self) -> Option<&T> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// Appends, doubling the storage when full (a duration window meeting a burst).
    pub fn push_back(&mut self, item: T) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let s = self.slot(self.len);
        if let Some(cell) = self.buf.get_mut(s) {
            *cell = item;
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.buf.get(self.head).copied();
        self.head = self.slot(1);
        self.len -= 1;
        item
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + Clone + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    fn grow(&mut self) {
        let cap = self.buf.len();
        let mut next = vec![T::default(); cap * 2];
        for (i, cell) in next.iter_mut().take(self.len).enumerate() {
            if let Some(v) = self.get(i) {
                *cell = *v;
            }
        }
        self.buf = next;
        self.head = 0;
    }
}

/// A ring of `(time, item)` that applies a [`Window`]'s expiry.
#[derive(Debug, Clone)]
pub struct TimedRing<T> {
    pub window: Window,
    ring: Ring<(i64, T)>,
}

impl<T: Copy + Default> TimedRing<T> {
    pub fn new(window: Window) -> TimedRing<T> {
        TimedRing {
            window,
            ring: Ring::with_capacity(window.initial_capacity()),
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    pub fn front(&self) -> Option<&(i64, T)> {
        self.ring.front()
    }

    pub fn back(&self) -> Option<&(i64, T)> {
        self.ring.back()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(i64, T)> + Clone + '_ {
        self.ring.iter()
    }

    /// Pops the next element that falls out of the window once a sample at `time` joins:
    /// the oldest of a full count window, or one older than `time - span`. Call it until
    /// `None` before [`TimedRing::push`]; the caller removes each popped item from its
    /// running statistics.
    pub fn expire_one(&mut self, time: Timestamp) -> Option<T> {
        let (t0, _) = *self.ring.front()?;
        let out = match self.window {
            Window::Samples(n) => self.ring.len() >= n,
            Window::Duration(span) => t0 < time.0.saturating_sub(span),
        };
        if out {
            self.ring.pop_front().map(|(_, v)| v)
        } else {
            None
        }
    }

    /// The second oldest element.
    pub fn second(&self) -> Option<&(i64, T)> {
        self.ring.get(1)
    }

    /// Drops the oldest element, whatever the window says (for a rate's anchor).
    pub fn pop(&mut self) -> Option<T> {
        self.ring.pop_front().map(|(_, v)| v)
    }

    pub fn push(&mut self, time: Timestamp, item: T) {
        self.ring.push_back((time.0, item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_grows_in_order() {
        let mut r = Ring::<u32>::with_capacity(2);
        r.push_back(1);
        r.push_back(2);
        assert_eq!(r.pop_front(), Some(1));
        r.push_back(3); // wraps
        r.push_back(4); // grows, keeping order
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.capacity(), 4);
        assert_eq!(r.front(), Some(&2));
        assert_eq!(r.back(), Some(&4));
    }

    #[test]
    fn count_window_keeps_last_n_without_growing() {
        let mut w = TimedRing::<f64>::new(Window::Samples(3));
        let mut expired = Vec::new();
        for i in 0..10 {
            let t = Timestamp(i);
            while let Some(v) = w.expire_one(t) {
                expired.push(v);
            }
            w.push(t, i as f64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.capacity(), 3);
        assert_eq!(expired, (0..7).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn duration_window_expires_by_source_time_inclusive() {
        let mut w = TimedRing::<f64>::new(Window::Duration(1_000_000));
        for (t, v) in [(0, 0.0), (500_000, 1.0), (1_000_000, 2.0)] {
            while w.expire_one(Timestamp(t)).is_some() {}
            w.push(Timestamp(t), v);
        }
        // [0, 1 s] is inclusive: all three remain.
        assert_eq!(w.len(), 3);
        let mut gone = Vec::new();
        while let Some(v) = w.expire_one(Timestamp(1_600_000)) {
            gone.push(v);
        }
        assert_eq!(gone, vec![0.0, 1.0]);
        assert_eq!(w.front(), Some(&(1_000_000, 2.0)));
    }
}
