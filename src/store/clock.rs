//! Wall clock jumps. A record's timestamp is wall-clock time, and the age
//! bound compares it with the wall clock; a clock that jumps forward (an NTP
//! sync on a box without a battery-backed clock, an operator's fix) would
//! make records kept for seconds look hours old and drop them. So the journal
//! notes, per run of appended seqs, how far the wall clock stood from the
//! monotonic one, and reads each record's timestamp on today's clock by
//! adding how far the wall clock has moved since, beyond real time.
//! Records of an earlier run have no such note and are taken as stamped.

use std::collections::VecDeque;
use std::time::Instant;

use super::tables::now_micros;

/// Drift below this is NTP slewing or measurement noise, not a jump.
const JUMP_MICROS: i64 = 1_000_000;

/// A clock that jumps this often has bigger problems; past this the oldest
/// notes go and their records are taken as stamped.
const MAX_FRAMES: usize = 1024;

#[derive(Clone)]
pub(super) struct Frames {
    epoch: Instant,
    /// (first seq appended under it, wall − monotonic µs), ascending seq.
    frames: VecDeque<(u64, i64)>,
}

impl Frames {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            frames: VecDeque::new(),
        }
    }

    /// Wall clock minus monotonic clock, µs.
    pub fn offset_now(&self) -> i64 {
        let mono = i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX);
        now_micros().saturating_sub(mono)
    }

    /// Called for each appended seq, in order.
    pub fn note_append(&mut self, seq: u64) {
        let now = self.offset_now();
        let jumped = self
            .frames
            .back()
            .is_none_or(|&(_, off)| now.saturating_sub(off).abs() > JUMP_MICROS);
        if jumped {
            self.frames.push_back((seq, now));
            if self.frames.len() > MAX_FRAMES {
                self.frames.pop_front();
            }
        }
    }

    /// What to add to the timestamp of `seq` to read it on the clock whose
    /// offset is `offset_now`: 0 for records this run did not append.
    pub fn skew(&self, seq: u64, offset_now: i64) -> i64 {
        let i = self.frames.partition_point(|&(first, _)| first <= seq);
        match i.checked_sub(1).and_then(|i| self.frames.get(i)) {
            Some(&(_, off)) => offset_now.saturating_sub(off),
            None => 0,
        }
    }

    /// Forgets the notes that only records below `seq` used.
    pub fn forget_below(&mut self, seq: u64) {
        while self.frames.get(1).is_some_and(|&(first, _)| first <= seq) {
            self.frames.pop_front();
        }
    }
}
