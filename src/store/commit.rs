//! The commit, in three steps so that its fsyncs need not stall the caller:
//!
//! 1. [`Journal::begin_commit`] (caller's thread, no I/O) takes what is
//!    pending — records, deletes, unsaved counters — into a [`CommitJob`]
//!    and leaves an empty buffer behind; seqs go on from where they were.
//! 2. [`CommitJob::write`] (any thread) writes it in one durable redb
//!    transaction through a handle shared with the journal, and enforces
//!    the bounds in that same transaction.
//! 3. [`Journal::finish_commit`] (caller's thread) takes the outcome in.
//!
//! Between 1 and 3 appends, acks and reads go on. Reads serve the batch
//! from memory (redb lets a read transaction run beside the write, but the
//! batch may or may not be in the snapshot it sees). An ack of one of the
//! batch's records is remembered: it becomes a delete for the next commit
//! if the write succeeded, and a cancel if it failed, in which case the
//! batch goes back in front of the buffer, so nothing is lost, duplicated
//! or reordered. One commit is in flight at a time; the byte bound applies
//! to the buffer filling meanwhile as it always did.
//!
//! [`Journal::commit`] runs the three steps on the calling thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableTable};
use tracing::{info, warn};

use super::clock::Frames;
use super::journal::{db_err, duration_micros, open_and_scan, Journal, Opener, Scan};
use super::pending::Pending;
use super::tables::{now_micros, record_bytes, META, RECORDS, STATE, STATE_NEXT_SEQ};
use super::{CommitStats, StoreError};

/// Below this file size compaction is not worth a pause.
const COMPACT_MIN_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Compact once the file is this many times the live logical bytes. Well
/// above the B-tree's own overhead, so a steady backlog never triggers it;
/// in practice it fires after a large backlog has drained.
const COMPACT_RATIO: u64 = 8;

/// redb compacts in rounds; a cap keeps one commit from stalling for long.
const COMPACT_MAX_ROUNDS: usize = 32;

/// Longest wait between commit retries while the disk refuses writes (full
/// filesystem, file size limit): often enough to notice freed space soon,
/// rarely enough that a long failure is a few log lines a minute, not a spin.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// What one commit writes. Shared by the job, which writes it, and the
/// journal, whose reads serve its records until the commit is finished.
#[derive(Clone)]
pub(super) struct Batch {
    pub records: Pending,
    /// Committed records acked before the commit began.
    pub deletes: BTreeSet<u64>,
}

/// The journal's side of the commit in flight.
pub(super) struct InFlight {
    pub batch: Arc<Batch>,
    /// Records of the batch acked since it was taken.
    pub acked: BTreeSet<u64>,
    /// The counters it writes: unsaved again should it fail.
    meta_keys: BTreeSet<String>,
    done: Receiver<Written>,
}

/// A commit taken off the journal by [`Journal::begin_commit`], to be
/// written by [`write`](Self::write) on any thread, typically one where a
/// slow fsync stalls nobody (`spawn_blocking`). A job dropped unwritten
/// counts as a failed commit: its records go back to the journal.
///
/// The journal's `finish_commit`, `commit`, `flush`, `close` and drop wait
/// for the job to be written or dropped, so a thread that holds a job must
/// let go of it before it calls them.
pub struct CommitJob {
    handle: Handle,
    work: Work,
    /// Kept apart from the handle so that the handle is dropped first, and
    /// the journal, once it hears of the end, holds the only one (compaction
    /// needs it alone).
    done: SyncSender<Written>,
}

enum Handle {
    Open(Arc<Database>),
    /// An earlier failure closed the file: the job reopens it, off the
    /// caller's thread too, since the reopen scans the whole table.
    Reopen(Arc<Opener>),
}

struct Work {
    batch: Arc<Batch>,
    meta: Arc<Mutex<BTreeMap<String, u64>>>,
    meta_keys: BTreeSet<String>,
    next_seq: u64,
    committed_bytes: u64,
    max_bytes: u64,
    /// Records older than this (µs, on today's clock) are dropped.
    cutoff: i64,
    /// Wall minus monotonic clock when the commit began, and the notes to
    /// read each record's timestamp on that clock (see `clock.rs`).
    offset: i64,
    clock: Frames,
}

/// What the job reports back.
struct Written {
    result: Result<BatchOutcome, redb::Error>,
    /// The handle the job opened, and what the file held then.
    reopened: Option<(Arc<Database>, Scan)>,
}

#[derive(Default)]
struct BatchOutcome {
    written: u64,
    written_bytes: u64,
    deleted: u64,
    deleted_bytes: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    oldest: Option<(u64, i64)>,
}

impl CommitStats {
    fn and(self, later: CommitStats) -> CommitStats {
        CommitStats {
            written: self.written + later.written,
            deleted: self.deleted + later.deleted,
            dropped_records: self.dropped_records + later.dropped_records,
            dropped_bytes: self.dropped_bytes + later.dropped_bytes,
            compacted: self.compacted || later.compacted,
        }
    }
}

impl InFlight {
    /// Whether this commit writes the caller counter `key`.
    pub fn carries(&self, key: &str) -> bool {
        self.meta_keys.contains(key)
    }
}

impl CommitJob {
    /// Writes the batch in one durable transaction. The journal takes the
    /// outcome in at [`Journal::finish_commit`].
    pub fn write(self) {
        // Outlives `handle` and `work` even if the write panics, so that the
        // journal hears of the end only once they are gone.
        let done = self.done;
        let written = write(self.handle, self.work);
        // Err: the journal is gone (leaked); nobody is left to tell.
        let _ = done.send(written);
    }
}

fn write(handle: Handle, work: Work) -> Written {
    match handle {
        Handle::Open(db) => Written {
            result: work.write(&db, work.committed_bytes, work.next_seq),
            reopened: None,
        },
        Handle::Reopen(opener) => match open_and_scan(&opener) {
            // The scan is the truth now: the failed commit may or may not
            // have reached the file.
            Ok((db, scan)) => Written {
                result: work.write(&db, scan.bytes, work.next_seq.max(scan.next_seq)),
                reopened: Some((Arc::new(db), scan)),
            },
            Err(e) => Written {
                result: Err(e),
                reopened: None,
            },
        },
    }
}

impl Work {
    fn write(
        &self,
        db: &Database,
        committed_bytes: u64,
        next_seq: u64,
    ) -> Result<BatchOutcome, redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        // A power cut is the expected way for an edge box to stop; quick
        // repair trades a second fsync per commit for a near-instant reopen
        // instead of a walk over the whole file.
        txn.set_quick_repair(true);
        let mut out = BatchOutcome::default();
        {
            let mut records = txn.open_table(RECORDS)?;
            for (seq, record) in self.batch.records.iter() {
                // Already there when a commit reported as failed reached the
                // file after all (see `open_and_scan`): counted by the rescan.
                if records
                    .insert(seq, (record.ts, record.payload.as_slice()))?
                    .is_none()
                {
                    out.written += 1;
                    out.written_bytes += record_bytes(record.payload.len());
                }
            }
            for &seq in &self.batch.deletes {
                if let Some(old) = records.remove(seq)? {
                    out.deleted += 1;
                    out.deleted_bytes += record_bytes(old.value().1.len());
                }
            }
            let mut live = (committed_bytes + out.written_bytes).saturating_sub(out.deleted_bytes);
            loop {
                let (seq, ts, bytes) = {
                    let Some((k, v)) = records.first()? else {
                        break;
                    };
                    let (ts, payload) = v.value();
                    (k.value(), ts, record_bytes(payload.len()))
                };
                // Only the front is checked for age: timestamps follow seq
                // order closely, and a scan of the whole table per commit
                // would cost more than an out-of-order record living on.
                // Read on today's clock, across any jump since the append.
                let today = ts.saturating_add(self.clock.skew(seq, self.offset));
                if live <= self.max_bytes && today > self.cutoff {
                    out.oldest = Some((seq, ts));
                    break;
                }
                records.remove(seq)?;
                live = live.saturating_sub(bytes);
                out.dropped_records += 1;
                out.dropped_bytes += bytes;
            }
            let mut state = txn.open_table(STATE)?;
            state.insert(STATE_NEXT_SEQ, next_seq)?;
            let mut meta = txn.open_table(META)?;
            // Read only now that this transaction holds redb's writer lock:
            // a `set_u64` that went first has set the newer value here.
            let values: Vec<(String, u64)> = {
                let current = self.meta.lock();
                (self.meta_keys.iter())
                    .filter_map(|k| current.get(k).map(|&v| (k.clone(), v)))
                    .collect()
            };
            for (key, value) in values {
                meta.insert(key.as_str(), value)?;
            }
        }
        txn.commit()?;
        Ok(out)
    }
}

impl Journal {
    /// Takes everything pending into a job for [`CommitJob::write`] and
    /// marks it in flight; see the module docs of `commit`. `None` while a
    /// commit is in flight, and when there is nothing to write: a window
    /// whose every append was acked in time costs no transaction at all.
    pub fn begin_commit(&mut self) -> Option<CommitJob> {
        if self.in_flight.is_some() {
            return None;
        }
        let cutoff = now_micros().saturating_sub(duration_micros(self.config.max_age));
        let offset = self.clock.offset_now();
        let age_due = self
            .oldest_committed
            .is_some_and(|(seq, ts)| ts.saturating_add(self.clock.skew(seq, offset)) <= cutoff);
        let over_bytes = self.committed_bytes > self.config.max_bytes;
        let quiet = self.pending.live_records() == 0
            && self.deletes.is_empty()
            && self.meta_unsaved.is_empty()
            && !age_due
            && !over_bytes;
        if quiet && self.db.is_some() {
            // Everything in the window was acked in time, so a healthy
            // broker means an idle disk. The seqs given out meanwhile may be
            // handed out again after a restart, which is harmless since
            // nothing outside this process saw them. Nor is there anything
            // left for a retry to write.
            self.pending.clear();
            self.dirty_since = None;
            self.retry_at = None;
            return None;
        }
        let handle = match &self.db {
            Some(db) => Handle::Open(Arc::clone(db)),
            None => Handle::Reopen(Arc::clone(&self.opener)),
        };
        let records = std::mem::replace(&mut self.pending, Pending::new(self.next_seq));
        let batch = Arc::new(Batch {
            records,
            deletes: std::mem::take(&mut self.deletes),
        });
        let meta_keys = std::mem::take(&mut self.meta_unsaved);
        self.dirty_since = None;
        let (done, done_rx) = sync_channel(1);
        self.in_flight = Some(InFlight {
            batch: Arc::clone(&batch),
            acked: BTreeSet::new(),
            meta_keys: meta_keys.clone(),
            done: done_rx,
        });
        Some(CommitJob {
            handle,
            work: Work {
                batch,
                meta: Arc::clone(&self.meta),
                meta_keys,
                next_seq: self.next_seq,
                committed_bytes: self.committed_bytes,
                max_bytes: self.config.max_bytes,
                cutoff,
                offset,
                clock: self.clock.clone(),
            },
            done,
        })
    }

    /// Whether a commit was begun and not finished yet.
    pub fn commit_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Takes in the outcome of the commit in flight, waiting for its write
    /// if it has not returned yet (call it once it has, on an async task).
    /// On error the batch is back in memory, in front of what came since,
    /// and the next commit retries it, one window later and further apart
    /// each time. Without a commit in flight: nothing to do.
    pub fn finish_commit(&mut self) -> Result<CommitStats, StoreError> {
        let Some(InFlight {
            batch,
            acked,
            meta_keys,
            done,
        }) = self.in_flight.take()
        else {
            return Ok(CommitStats::default());
        };
        let Ok(written) = done.recv() else {
            // Dropped unwritten, or its write panicked. redb rolls back a
            // transaction that is dropped uncommitted, so the file is as it
            // was; a handle that the panic left unusable says so at the next
            // commit, which then reopens.
            self.give_back(batch, acked, meta_keys);
            self.commit_failed();
            return Err(StoreError::CommitLost {
                path: self.path.clone(),
            });
        };
        if let Some((db, scan)) = written.reopened {
            self.apply_scan(&scan);
            self.db = Some(db);
        }
        let out = match written.result {
            Ok(out) => out,
            Err(e) => {
                self.after_error(&e);
                self.give_back(batch, acked, meta_keys);
                self.commit_failed();
                return Err(db_err(&self.path, e));
            }
        };
        drop(batch);
        if self.failed_commits > 0 {
            info!(
                path = %self.path.display(),
                failed_commits = self.failed_commits,
                dropped_records = self.unreported_drops.0,
                "journal writes resumed"
            );
        }
        self.failed_commits = 0;
        self.retry_at = None;
        let (pending_dropped, pending_dropped_bytes) = std::mem::take(&mut self.unreported_drops);
        self.committed_records = (self.committed_records + out.written)
            .saturating_sub(out.deleted + out.dropped_records);
        self.committed_bytes = (self.committed_bytes + out.written_bytes)
            .saturating_sub(out.deleted_bytes + out.dropped_bytes);
        self.oldest_committed = out.oldest;
        // The buffer that filled meanwhile still needs its notes.
        self.clock
            .forget_below(out.oldest.map_or(self.pending.base(), |(seq, _)| seq));
        self.pending_overflow_warned = false;
        // Acked while being written: on disk now, so deleted by the next
        // commit (a no-op for any that the bounds just dropped).
        if !acked.is_empty() {
            self.deletes.extend(acked);
            self.mark_dirty();
        }
        if out.dropped_records > 0 {
            self.dropped_records += out.dropped_records;
            self.dropped_bytes += out.dropped_bytes;
            warn!(
                path = %self.path.display(),
                dropped_records = out.dropped_records,
                dropped_bytes = out.dropped_bytes,
                backlog_records = self.committed_records,
                backlog_bytes = self.committed_bytes,
                "journal full or records too old: dropped oldest"
            );
        }
        let compacted = self.maybe_compact();
        Ok(CommitStats {
            written: out.written,
            deleted: out.deleted,
            dropped_records: out.dropped_records + pending_dropped,
            dropped_bytes: out.dropped_bytes + pending_dropped_bytes,
            compacted,
        })
    }

    /// A failed batch goes back in front of the buffer. Its records acked
    /// meanwhile are cancelled, and deleted too in case the failed commit
    /// reached the file after all (a delete of a missing record is a no-op).
    fn give_back(&mut self, batch: Arc<Batch>, acked: BTreeSet<u64>, meta_keys: BTreeSet<String>) {
        // The job let go of its share before it reported.
        let Batch {
            mut records,
            deletes,
        } = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        for &seq in &acked {
            records.cancel(seq);
        }
        records.append(std::mem::replace(&mut self.pending, Pending::new(0)));
        self.pending = records;
        self.deletes.extend(deletes);
        self.deletes.extend(acked);
        self.meta_unsaved.extend(meta_keys);
        self.mark_dirty();
        self.bound_pending();
    }

    /// Commits now on this thread, whatever the window: a commit in flight
    /// is waited for and finished first, then the rest is begun, written and
    /// finished here. Returns both commits' figures. On error nothing is lost
    /// from memory: the next commit retries, one window later.
    pub fn commit(&mut self) -> Result<CommitStats, StoreError> {
        let earlier = self.finish_commit()?;
        let Some(job) = self.begin_commit() else {
            return Ok(earlier);
        };
        job.write();
        Ok(earlier.and(self.finish_commit()?))
    }

    /// Spaces retries out (one window, doubling up to [`MAX_RETRY`]) so a
    /// full disk costs neither a spin nor a log line per window.
    fn commit_failed(&mut self) {
        if self.failed_commits == 0 {
            warn!(
                path = %self.path.display(),
                max_bytes = self.config.max_bytes,
                "journal cannot write; keeping new records in memory up to max_bytes and retrying"
            );
        }
        let factor = 1u32
            .checked_shl(self.failed_commits.min(16))
            .unwrap_or(u32::MAX);
        let wait = self
            .config
            .commit_window
            .max(Duration::from_millis(1))
            .saturating_mul(factor)
            .min(MAX_RETRY);
        self.failed_commits = self.failed_commits.saturating_add(1);
        self.retry_at = Instant::now().checked_add(wait);
    }

    /// Commits now, whatever the window, after the commit in flight if any
    /// (shutdown, tests).
    pub fn flush(&mut self) -> Result<CommitStats, StoreError> {
        self.commit()
    }

    /// Flushes and closes; unlike a plain drop, reports a failed flush.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.commit().map(|_| ())
    }

    /// redb reuses freed pages but never returns them to the filesystem, so
    /// after a large backlog drains the file would stay at its peak size.
    /// Compaction needs the only handle, which the journal has between
    /// commits (reads hold none for longer than a call). It failing is not
    /// fatal: the data is intact, only the file is larger than it needs to be.
    fn maybe_compact(&mut self) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let before = meta.len();
        let changed = before > self.last_compact_len
            || self.committed_bytes.saturating_mul(2) < self.last_compact_live;
        if before < COMPACT_MIN_FILE_BYTES
            || !changed
            || before / COMPACT_RATIO < self.committed_bytes
        {
            return false;
        }
        let Some(db) = self.db.as_mut().and_then(Arc::get_mut) else {
            return false;
        };
        let mut result = Ok(());
        for _ in 0..COMPACT_MAX_ROUNDS {
            match db.compact() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let after = std::fs::metadata(&self.path).map_or(before, |m| m.len());
        self.last_compact_len = after;
        self.last_compact_live = self.committed_bytes;
        match result {
            Ok(()) => info!(path = %self.path.display(), before, after, "journal compacted"),
            Err(e) => warn!(path = %self.path.display(), error = %e, "journal compaction failed"),
        }
        true
    }
}
