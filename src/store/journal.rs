//! The journal itself: write-behind buffer, group commit, bounds, drain, meta.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, RepairSession,
    StorageError,
};
use tracing::{info, warn};

use super::clock::Frames;
use super::pending::Pending;
use super::tables::{now_micros, record_bytes, META, RECORDS, STATE, STATE_NEXT_SEQ};
use super::{CommitStats, JournalConfig, StoreError};

/// redb defaults to a 1 GiB page cache; the journal only appends at the end
/// and reads from the front, so a small cache serves it and suits edge boxes.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Below this file size compaction is not worth a pause.
const COMPACT_MIN_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Compact once the file is this many times the live logical bytes. Well
/// above the B-tree's own overhead, so a steady backlog never triggers it;
/// in practice it fires after a large backlog has drained.
const COMPACT_RATIO: u64 = 8;

/// redb compacts in rounds; a cap keeps one commit from stalling for long.
const COMPACT_MAX_ROUNDS: usize = 32;

/// Seqs start at 1 so that "0" never names a record in logs or on the wire.
const FIRST_SEQ: u64 = 1;

/// Longest wait between commit retries while the disk refuses writes (full
/// filesystem, file size limit): often enough to notice freed space soon,
/// rarely enough that a long failure is a few log lines a minute, not a spin.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Opens the database file; called again after an I/O failure, because redb
/// refuses every later operation on a handle that saw one.
pub(super) type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

/// Outcome of [`Journal::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The record was still in memory and will never be written.
    Cancelled,
    /// The record is on disk and is deleted by the next commit.
    Deleting,
    /// No such unacked record: already acked, dropped by a bound, or never
    /// handed out. Harmless — a broker may PUBACK a retransmission twice.
    Unknown,
}

/// A durable, bounded, ordered journal. See the module docs.
pub struct Journal {
    /// `None` after an I/O failure until a reopen succeeds.
    db: Option<Database>,
    opener: Opener,
    path: PathBuf,
    config: JournalConfig,
    next_seq: u64,
    pending: Pending,
    /// Acked records that are on disk, deleted by the next commit.
    deletes: BTreeSet<u64>,
    committed_records: u64,
    committed_bytes: u64,
    /// Front of the records table (seq, ts): the age bound's next deadline
    /// and the lower limit below which an ack names nothing.
    oldest_committed: Option<(u64, i64)>,
    /// When the first change since the last commit arrived.
    dirty_since: Option<Instant>,
    dropped_records: u64,
    dropped_bytes: u64,
    /// One warning per run of failed commits, not one per dropped append.
    pending_overflow_warned: bool,
    /// File length and live bytes right after the last compaction: a file
    /// that will not shrink further is compacted again only once it has
    /// grown or the live data has since halved.
    last_compact_len: u64,
    last_compact_live: u64,
    /// Commits failed in a row; spaces the retries out.
    failed_commits: u32,
    /// While commits fail: when to try again.
    retry_at: Option<Instant>,
    /// Pending records dropped by the byte bound and not yet in a
    /// [`CommitStats`], so that the caller's drop counter sees them once the
    /// disk takes writes again.
    unreported_drops: (u64, u64),
    /// Caller counters read or written by this process; the journal is the
    /// file's only writer, so this is the truth even while the disk is not.
    meta: BTreeMap<String, u64>,
    /// Counters set while the disk refused them, written by the next
    /// commit that succeeds.
    meta_unsaved: BTreeSet<String>,
    /// Where the wall clock stood as records were appended, for the age bound.
    clock: Frames,
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

struct Scan {
    records: u64,
    bytes: u64,
    oldest: Option<(u64, i64)>,
    next_seq: u64,
}

fn db_err(path: &Path, source: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

fn open_err(path: &Path, source: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match source {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        DatabaseError::Storage(StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        // redb's only way of saying "no magic number here".
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::InvalidData => {
            StoreError::NotRedb {
                path,
                detail: e.to_string(),
            }
        }
        source => StoreError::Open { path, source },
    }
}

/// Errors after which redb's handle is unusable (it latches the first I/O
/// failure) and only a reopen can tell whether the disk takes writes again.
fn needs_reopen(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Journal {
    /// Opens (creating if missing) the journal at `path`. A file left by a
    /// crash is repaired by redb here; a file that is not a redb database
    /// fails with [`StoreError::Corrupt`] naming the path.
    pub fn open(path: impl AsRef<Path>, config: JournalConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let repairing = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&repairing);
        let file = path.clone();
        let opener: Opener = Box::new(move || {
            let flag = Arc::clone(&flag);
            let log_path = file.clone();
            Builder::new()
                .set_cache_size(CACHE_BYTES)
                .set_repair_callback(move |_: &mut RepairSession| {
                    if !flag.swap(true, Ordering::Relaxed) {
                        warn!(path = %log_path.display(), "journal was not closed cleanly, repairing");
                    }
                })
                .create(&file)
        });
        Self::open_with(path, config, opener, &repairing)
    }

    /// [`open`](Self::open) with the way to (re)open the file given, so
    /// tests can put the journal on storage that fails on demand.
    pub(super) fn open_with(
        path: PathBuf,
        config: JournalConfig,
        opener: Opener,
        repairing: &AtomicBool,
    ) -> Result<Self, StoreError> {
        let db = opener().map_err(|e| open_err(&path, e))?;
        let scan = Self::init_and_scan(&db).map_err(|e| db_err(&path, e))?;
        info!(
            path = %path.display(),
            records = scan.records,
            bytes = scan.bytes,
            next_seq = scan.next_seq,
            repaired = repairing.load(Ordering::Relaxed),
            "journal opened"
        );
        Ok(Self {
            db: Some(db),
            opener,
            path,
            config,
            next_seq: scan.next_seq,
            pending: Pending::new(scan.next_seq),
            deletes: BTreeSet::new(),
            committed_records: scan.records,
            committed_bytes: scan.bytes,
            oldest_committed: scan.oldest,
            dirty_since: None,
            dropped_records: 0,
            dropped_bytes: 0,
            pending_overflow_warned: false,
            last_compact_len: 0,
            last_compact_live: 0,
            failed_commits: 0,
            retry_at: None,
            unreported_drops: (0, 0),
            meta: BTreeMap::new(),
            meta_unsaved: BTreeSet::new(),
            clock: Frames::new(),
        })
    }

    fn db(&self) -> Result<&Database, redb::Error> {
        self.db.as_ref().ok_or(redb::Error::DatabaseClosed)
    }

    /// Drops a handle that saw an I/O failure and tries a fresh one. The
    /// counters are recomputed from what is on disk; records still pending
    /// are rewritten by the next commit whether or not the failed commit
    /// reached the file (an insert of the same seq replaces, a delete of a
    /// missing one is a no-op), so nothing is lost or counted twice.
    fn reopen(&mut self) -> Result<(), redb::Error> {
        // Closing first: redb refuses a second handle on the same file.
        self.db = None;
        let db = (self.opener)().map_err(redb::Error::from)?;
        let scan = Self::init_and_scan(&db)?;
        self.committed_records = scan.records;
        self.committed_bytes = scan.bytes;
        self.oldest_committed = scan.oldest;
        self.next_seq = self.next_seq.max(scan.next_seq);
        self.db = Some(db);
        info!(path = %self.path.display(), records = scan.records, "journal reopened after a write failure");
        Ok(())
    }

    /// Reopens if an earlier failure closed the handle.
    fn ensure_open(&mut self) -> Result<(), redb::Error> {
        if self.db.is_none() {
            self.reopen()?;
        }
        Ok(())
    }

    /// Closes a handle that `e` made unusable, so the next attempt reopens.
    fn after_error(&mut self, e: &redb::Error) {
        if needs_reopen(e) {
            self.db = None;
        }
    }

    /// Creates the tables if missing and recomputes the counters from the
    /// data itself, so no stored counter can drift from the truth.
    fn init_and_scan(db: &Database) -> Result<Scan, redb::Error> {
        let txn = db.begin_write()?;
        let scan = {
            let records = txn.open_table(RECORDS)?;
            txn.open_table(META)?;
            let state = txn.open_table(STATE)?;
            let mut count = 0u64;
            let mut bytes = 0u64;
            for entry in records.iter()? {
                let (_, value) = entry?;
                count += 1;
                bytes = bytes.saturating_add(record_bytes(value.value().1.len()));
            }
            let oldest = records.first()?.map(|(k, v)| (k.value(), v.value().0));
            let after_last = records
                .last()?
                .map_or(FIRST_SEQ, |(k, _)| k.value().saturating_add(1));
            let stored_next = state.get(STATE_NEXT_SEQ)?.map_or(FIRST_SEQ, |v| v.value());
            Scan {
                records: count,
                bytes,
                oldest,
                next_seq: after_last.max(stored_next).max(FIRST_SEQ),
            }
        };
        txn.commit()?;
        Ok(scan)
    }

    /// Buffers a record and returns its seq. Never touches the disk; the
    /// record becomes durable at the next [`commit`](Self::commit).
    pub fn append(&mut self, ts: i64, payload: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.clock.note_append(seq);
        self.pending.push(seq, ts, payload);
        self.mark_dirty();
        self.bound_pending();
        seq
    }

    /// The broker acknowledged `seq`: cancel it if still in memory, else
    /// delete it in the next commit.
    pub fn ack(&mut self, seq: u64) -> Ack {
        if seq >= self.pending.base() {
            return if self.pending.cancel(seq) {
                Ack::Cancelled
            } else {
                Ack::Unknown
            };
        }
        match self.oldest_committed {
            Some((first, _)) if seq >= first => {}
            _ => return Ack::Unknown,
        }
        if self.deletes.insert(seq) {
            self.mark_dirty();
            Ack::Deleting
        } else {
            Ack::Unknown
        }
    }

    /// When the caller should next call [`commit`](Self::commit): one window
    /// after the first uncommitted change, or when the oldest record reaches
    /// `max_age`. `None` when there is nothing to do.
    pub fn next_commit_due(&self) -> Option<Instant> {
        if self.retry_at.is_some() {
            return self.retry_at;
        }
        // checked_add: a window or age of years (or a timestamp far in the
        // future) must mean "not due", not an Instant overflow panic.
        let window = self
            .dirty_since
            .and_then(|t| t.checked_add(self.config.commit_window));
        let offset = self.clock.offset_now();
        let age = self.oldest_committed.and_then(|(seq, ts)| {
            let expires = ts
                .saturating_add(self.clock.skew(seq, offset))
                .saturating_add(duration_micros(self.config.max_age));
            let wait = expires.saturating_sub(now_micros()).max(0);
            Instant::now().checked_add(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
        });
        match (window, age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Commits pending appends and deletes in one durable transaction, then
    /// enforces the bounds in that same transaction. On error nothing is
    /// lost from memory: the next commit retries, one window later.
    pub fn commit(&mut self) -> Result<CommitStats, StoreError> {
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
            // Everything in the window was acked in time: no transaction at
            // all, so a healthy broker means an idle disk. The seqs given
            // out meanwhile may be handed out again after a restart, which
            // is harmless since nothing outside this process saw them.
            self.pending.clear();
            self.dirty_since = None;
            return Ok(CommitStats::default());
        }
        let out = match self
            .ensure_open()
            .and_then(|()| self.write_batch(cutoff, offset))
        {
            Ok(out) => out,
            Err(e) => {
                self.after_error(&e);
                self.commit_failed();
                return Err(db_err(&self.path, e));
            }
        };
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
        self.clock
            .forget_below(out.oldest.map_or(self.next_seq, |(seq, _)| seq));
        self.pending.clear();
        self.deletes.clear();
        self.meta_unsaved.clear();
        self.dirty_since = None;
        self.pending_overflow_warned = false;
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

    /// Commits now, whatever the window (shutdown, tests).
    pub fn flush(&mut self) -> Result<CommitStats, StoreError> {
        self.commit()
    }

    /// Flushes and closes; unlike a plain drop, reports a failed flush.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.commit().map(|_| ())
    }

    fn write_batch(&self, cutoff: i64, offset: i64) -> Result<BatchOutcome, redb::Error> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        // A power cut is the expected way for an edge box to stop; quick
        // repair trades a second fsync per commit for a near-instant reopen
        // instead of a walk over the whole file.
        txn.set_quick_repair(true);
        let mut out = BatchOutcome::default();
        {
            let mut records = txn.open_table(RECORDS)?;
            for (seq, record) in self.pending.iter() {
                // Already there when a commit reported as failed reached the
                // file after all (see `reopen`): counted by the rescan.
                if records
                    .insert(seq, (record.ts, record.payload.as_slice()))?
                    .is_none()
                {
                    out.written += 1;
                    out.written_bytes += record_bytes(record.payload.len());
                }
            }
            for &seq in &self.deletes {
                if let Some(old) = records.remove(seq)? {
                    out.deleted += 1;
                    out.deleted_bytes += record_bytes(old.value().1.len());
                }
            }
            let mut live =
                (self.committed_bytes + out.written_bytes).saturating_sub(out.deleted_bytes);
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
                let today = ts.saturating_add(self.clock.skew(seq, offset));
                if live <= self.config.max_bytes && today > cutoff {
                    out.oldest = Some((seq, ts));
                    break;
                }
                records.remove(seq)?;
                live = live.saturating_sub(bytes);
                out.dropped_records += 1;
                out.dropped_bytes += bytes;
            }
            let mut state = txn.open_table(STATE)?;
            state.insert(STATE_NEXT_SEQ, self.next_seq)?;
            let mut meta = txn.open_table(META)?;
            for key in &self.meta_unsaved {
                if let Some(&value) = self.meta.get(key) {
                    meta.insert(key.as_str(), value)?;
                }
            }
        }
        txn.commit()?;
        Ok(out)
    }

    /// redb reuses freed pages but never returns them to the filesystem, so
    /// after a large backlog drains the file would stay at its peak size.
    /// Compaction failing is not fatal: the data is intact, only the file is
    /// larger than it needs to be.
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
        let Some(db) = self.db.as_mut() else {
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

    /// The oldest unacked records, committed and pending alike, in seq
    /// order: what to republish after an outage.
    pub fn oldest(&self, limit: usize) -> Result<Vec<(u64, i64, Vec<u8>)>, StoreError> {
        self.read_from(0, limit)
    }

    /// Like [`oldest`](Self::oldest) but starting after `seq`, so a drain
    /// with records in flight can page on without re-reading them.
    pub fn oldest_after(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, i64, Vec<u8>)>, StoreError> {
        match seq.checked_add(1) {
            Some(start) => self.read_from(start, limit),
            None => Ok(Vec::new()),
        }
    }

    fn read_from(&self, start: u64, limit: usize) -> Result<Vec<(u64, i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // Every committed seq is below every pending one, so reading the
        // table first and the buffer second is already one seq order.
        if self.committed_records > 0 && start < self.pending.base() {
            let err = |e| db_err(&self.path, e);
            let txn = self
                .db()
                .and_then(|db| Ok(db.begin_read()?))
                .map_err(|e| db_err(&self.path, e))?;
            let table = txn.open_table(RECORDS).map_err(|e| db_err(&self.path, e))?;
            for entry in table.range(start..).map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                let seq = k.value();
                if self.deletes.contains(&seq) {
                    continue;
                }
                let (ts, payload) = v.value();
                out.push((seq, ts, payload.to_vec()));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        let room = limit - out.len();
        out.extend(
            self.pending
                .iter()
                .filter(|(seq, _)| *seq >= start)
                .take(room)
                .map(|(seq, r)| (seq, r.ts, r.payload.clone())),
        );
        Ok(out)
    }

    /// Unacked records and their logical bytes. Acks of committed records
    /// are reflected after the next commit (within one window).
    pub fn backlog(&self) -> (u64, u64) {
        (
            self.committed_records + self.pending.live_records(),
            self.committed_bytes + self.pending.live_bytes(),
        )
    }

    /// Records and logical bytes dropped by the bounds since open.
    pub fn dropped_total(&self) -> (u64, u64) {
        (self.dropped_records, self.dropped_bytes)
    }

    /// Highest seq at or below which everything is durable (or acked, or
    /// dropped); `None` before the first record.
    pub fn committed_through(&self) -> Option<u64> {
        self.pending
            .base()
            .checked_sub(1)
            .filter(|&s| s >= FIRST_SEQ)
    }

    /// The seq the next [`append`](Self::append) will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a durable caller counter (e.g. the Sparkplug bdSeq): the value
    /// last set, even if the disk has not taken it yet (see
    /// [`set_u64`](Self::set_u64)).
    pub fn get_u64(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(&v) = self.meta.get(key) {
            return Ok(Some(v));
        }
        let value = self.read_u64(key)?;
        if let Some(v) = value {
            self.meta.insert(key.to_string(), v);
        }
        Ok(value)
    }

    fn read_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let err = |e| db_err(&self.path, e);
        let txn = self
            .db()
            .and_then(|db| Ok(db.begin_read()?))
            .map_err(|e| db_err(&self.path, e))?;
        let table = txn.open_table(META).map_err(|e| db_err(&self.path, e))?;
        let value = table.get(key).map_err(err)?;
        Ok(value.map(|v| v.value()))
    }

    /// Writes a caller counter durably before returning, independent of the
    /// commit window: a bdSeq must be on disk before the NBIRTH that uses it.
    /// On error the value is still the one [`get_u64`](Self::get_u64)
    /// returns, and the next commit that succeeds writes it, so a caller
    /// that goes on regardless (live data on a full disk) never reuses it
    /// within this process.
    pub fn set_u64(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.meta.insert(key.to_string(), value);
        let write = |db: &Database| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            txn.set_quick_repair(true);
            {
                let mut table = txn.open_table(META)?;
                table.insert(key, value)?;
            }
            txn.commit()?;
            Ok(())
        };
        let result = self.ensure_open().and_then(|()| write(self.db()?));
        match &result {
            Ok(()) => {
                self.meta_unsaved.remove(key);
            }
            Err(e) => {
                self.after_error(e);
                self.meta_unsaved.insert(key.to_string());
                self.mark_dirty();
            }
        }
        result.map_err(|e| db_err(&self.path, e))
    }

    fn mark_dirty(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// While commits fail the buffer is the only copy; it must still respect
    /// the byte bound rather than grow until the process is killed.
    fn bound_pending(&mut self) {
        let mut dropped = 0u64;
        let mut bytes = 0u64;
        while self.pending.live_bytes() > self.config.max_bytes {
            let Some(b) = self.pending.drop_oldest() else {
                break;
            };
            dropped += 1;
            bytes += b;
        }
        if dropped == 0 {
            return;
        }
        self.dropped_records += dropped;
        self.dropped_bytes += bytes;
        self.unreported_drops.0 += dropped;
        self.unreported_drops.1 += bytes;
        if !self.pending_overflow_warned {
            self.pending_overflow_warned = true;
            warn!(
                path = %self.path.display(),
                dropped_records = dropped,
                dropped_bytes = bytes,
                "journal buffer over max_bytes without a commit: dropping oldest pending"
            );
        }
    }
}

impl Drop for Journal {
    /// A safety net for shutdown paths that forget to flush, like
    /// `BufWriter`; [`Journal::close`] is the way to see the error.
    fn drop(&mut self) {
        if self.pending.is_empty() && self.deletes.is_empty() {
            return;
        }
        if let Err(e) = self.commit() {
            warn!(error = %e, "journal flush on drop failed");
        }
    }
}
