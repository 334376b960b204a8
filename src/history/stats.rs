//! What the historian reports: `/metrics` and the log read these.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::store::Totals;

/// Counters and gauges, written by the intake and the committer.
#[derive(Debug, Default)]
pub struct HistoryStats {
    samples_in: AtomicU64,
    durable_samples_in: AtomicU64,
    dropped: AtomicU64,
    samples: AtomicU64,
    chunk_bytes: AtomicU64,
    log_bytes: AtomicU64,
    /// µs; `i64::MIN` while nothing is stored.
    oldest: AtomicI64,
    retention_dropped_chunks: AtomicU64,
    retention_dropped_samples: AtomicU64,
    commits: AtomicU64,
    failed_commits: AtomicU64,
    last_commit_us: AtomicU64,
    max_commit_us: AtomicU64,
}

/// A copy of [`HistoryStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistorySnapshot {
    /// Samples of historized tags received since start.
    pub samples_in: u64,
    /// How many of `samples_in` a commit has made durable (or dropped).
    pub durable_samples_in: u64,
    /// Samples not stored because commits fell behind (see `writer::MAX_PENDING_BYTES`).
    pub dropped: u64,
    /// Samples the file holds.
    pub samples: u64,
    /// Logical bytes of chunks and of the intake log.
    pub chunk_bytes: u64,
    pub log_bytes: u64,
    /// First source time of the oldest stored chunk, µs.
    pub oldest: Option<i64>,
    pub retention_dropped_chunks: u64,
    pub retention_dropped_samples: u64,
    pub commits: u64,
    pub failed_commits: u64,
    pub last_commit: Duration,
    pub max_commit: Duration,
}

impl HistoryStats {
    pub(super) fn set_totals(&self, t: &Totals) {
        self.samples.store(t.samples, Relaxed);
        self.chunk_bytes.store(t.chunk_bytes, Relaxed);
        self.log_bytes.store(t.log_bytes, Relaxed);
        self.oldest.store(t.oldest.unwrap_or(i64::MIN), Relaxed);
        self.retention_dropped_chunks
            .store(t.dropped_chunks, Relaxed);
        self.retention_dropped_samples
            .store(t.dropped_samples, Relaxed);
    }

    pub(super) fn committed(&self, t: &Totals, took: Duration, samples_in: u64) {
        self.set_totals(t);
        self.durable_samples_in.fetch_max(samples_in, Relaxed);
        self.commits.fetch_add(1, Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_commit_us.store(us, Relaxed);
        self.max_commit_us.fetch_max(us, Relaxed);
    }

    pub(super) fn commit_failed(&self) {
        self.failed_commits.fetch_add(1, Relaxed);
    }

    /// The running count, including these.
    pub(super) fn add_samples_in(&self, n: u64) -> u64 {
        self.samples_in.fetch_add(n, Relaxed) + n
    }

    pub(super) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> HistorySnapshot {
        let oldest = self.oldest.load(Relaxed);
        HistorySnapshot {
            samples_in: self.samples_in.load(Relaxed),
            durable_samples_in: self.durable_samples_in.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            samples: self.samples.load(Relaxed),
            chunk_bytes: self.chunk_bytes.load(Relaxed),
            log_bytes: self.log_bytes.load(Relaxed),
            oldest: (oldest != i64::MIN).then_some(oldest),
            retention_dropped_chunks: self.retention_dropped_chunks.load(Relaxed),
            retention_dropped_samples: self.retention_dropped_samples.load(Relaxed),
            commits: self.commits.load(Relaxed),
            failed_commits: self.failed_commits.load(Relaxed),
            last_commit: Duration::from_micros(self.last_commit_us.load(Relaxed)),
            max_commit: Duration::from_micros(self.max_commit_us.load(Relaxed)),
        }
    }
}
