//! The journal itself: write-behind buffer, acks, bounds, drain, meta. The
//! commit, split so that its fsyncs can run on another thread, is in
//! `commit.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, RepairSession,
    StorageError,
};
use tracing::{info, warn};

use super::clock::Frames;
use super::commit::InFlight;
use super::pending::Pending;
use super::tables::{now_micros, record_bytes, META, RECORDS, STATE, STATE_NEXT_SEQ};
use super::{JournalConfig, StoreError};

/// redb defaults to a 1 GiB page cache; the journal only appends at the end
/// and reads from the front, so a small cache serves it and suits edge boxes.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Seqs start at 1 so that "0" never names a record in logs or on the wire.
const FIRST_SEQ: u64 = 1;

/// Opens the database file; called again after an I/O failure, because redb
/// refuses every later operation on a handle that saw one.
pub(super) type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>;

/// Outcome of [`Journal::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The record was still in memory and will never be written.
    Cancelled,
    /// The record is on disk, or in the commit in flight, and is deleted by
    /// the next commit (or never written, should the one in flight fail).
    Deleting,
    /// No such unacked record: already acked, dropped by a bound, or never
    /// handed out. Harmless — a broker may PUBACK a retransmission twice.
    Unknown,
}

/// A durable, bounded, ordered journal. See the module docs. The fields are
/// the store module's so that `commit.rs` can run the commit.
pub struct Journal {
    /// `None` after an I/O failure until a reopen succeeds. Shared with the
    /// commit in flight, which writes through it while this side reads.
    pub(super) db: Option<Arc<Database>>,
    /// Shared with a commit that reopens the file on its own thread.
    pub(super) opener: Arc<Opener>,
    pub(super) path: PathBuf,
    pub(super) config: JournalConfig,
    pub(super) next_seq: u64,
    pub(super) pending: Pending,
    /// Acked records that are on disk, deleted by the next commit.
    pub(super) deletes: BTreeSet<u64>,
    /// The commit taken by `begin_commit` and not finished yet.
    pub(super) in_flight: Option<InFlight>,
    pub(super) committed_records: u64,
    pub(super) committed_bytes: u64,
    /// Front of the records table (seq, ts): the age bound's next deadline
    /// and the lower limit below which an ack names nothing.
    pub(super) oldest_committed: Option<(u64, i64)>,
    /// When the first change since the last commit arrived.
    pub(super) dirty_since: Option<Instant>,
    pub(super) dropped_records: u64,
    pub(super) dropped_bytes: u64,
    /// One warning per run of failed commits, not one per dropped append.
    pub(super) pending_overflow_warned: bool,
    /// File length and live bytes right after the last compaction: a file
    /// that will not shrink further is compacted again only once it has
    /// grown or the live data has since halved.
    pub(super) last_compact_len: u64,
    pub(super) last_compact_live: u64,
    /// Commits failed in a row; spaces the retries out.
    pub(super) failed_commits: u32,
    /// While commits fail: when to try again.
    pub(super) retry_at: Option<Instant>,
    /// Pending records dropped by the byte bound and not yet in a
    /// [`CommitStats`](super::CommitStats), so that the caller's drop
    /// counter sees them once the disk takes writes again.
    pub(super) unreported_drops: (u64, u64),
    /// Caller counters read or written by this process; the journal is the
    /// file's only writer, so this is the truth even while the disk is not.
    /// Shared with the commit in flight, which reads the values once its
    /// transaction holds redb's writer lock: a `set_u64` that slipped in
    /// before that transaction cannot then be overwritten with an older value.
    pub(super) meta: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Counters set while the disk refused them, written by the next
    /// commit that succeeds.
    pub(super) meta_unsaved: BTreeSet<String>,
    /// Where the wall clock stood as records were appended, for the age bound.
    pub(super) clock: Frames,
}

/// What the file holds, counted on open and after a reopen.
pub(super) struct Scan {
    pub records: u64,
    pub bytes: u64,
    pub oldest: Option<(u64, i64)>,
    pub next_seq: u64,
}

pub(super) fn db_err(path: &Path, source: impl Into<redb::Error>) -> StoreError {
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
pub(super) fn needs_reopen(e: &redb::Error) -> bool {
    matches!(
        e,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

pub(super) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Opens the file and counts what it holds. The caller has closed any
/// earlier handle: redb refuses a second one on the same file. Records still
/// pending are rewritten by the next commit whether or not the failed commit
/// reached the file (an insert of the same seq replaces, a delete of a
/// missing one is a no-op), and the counters come from this scan, so nothing
/// is lost or counted twice.
pub(super) fn open_and_scan(opener: &Opener) -> Result<(Database, Scan), redb::Error> {
    let db = opener().map_err(redb::Error::from)?;
    let scan = init_and_scan(&db)?;
    Ok((db, scan))
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
        let scan = init_and_scan(&db).map_err(|e| db_err(&path, e))?;
        info!(
            path = %path.display(),
            records = scan.records,
            bytes = scan.bytes,
            next_seq = scan.next_seq,
            repaired = repairing.load(Ordering::Relaxed),
            "journal opened"
        );
        Ok(Self {
            db: Some(Arc::new(db)),
            opener: Arc::new(opener),
            path,
            config,
            next_seq: scan.next_seq,
            pending: Pending::new(scan.next_seq),
            deletes: BTreeSet::new(),
            in_flight: None,
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
            meta: Arc::default(),
            meta_unsaved: BTreeSet::new(),
            clock: Frames::new(),
        })
    }

    fn db(&self) -> Result<&Database, redb::Error> {
        self.db.as_deref().ok_or(redb::Error::DatabaseClosed)
    }

    /// Takes the counters from a scan of the file made by a reopen.
    pub(super) fn apply_scan(&mut self, scan: &Scan) {
        self.committed_records = scan.records;
        self.committed_bytes = scan.bytes;
        self.oldest_committed = scan.oldest;
        self.next_seq = self.next_seq.max(scan.next_seq);
        info!(path = %self.path.display(), records = scan.records, "journal reopened after a write failure");
    }

    /// Reopens if an earlier failure closed the handle, for a write of this
    /// thread's own (`set_u64`); a commit reopens on its own thread. Not
    /// while a commit is in flight: it may be reopening the file itself.
    fn ensure_open(&mut self) -> Result<(), redb::Error> {
        if self.db.is_some() {
            return Ok(());
        }
        if self.in_flight.is_some() {
            return Err(redb::Error::DatabaseClosed);
        }
        let (db, scan) = open_and_scan(&self.opener)?;
        self.apply_scan(&scan);
        self.db = Some(Arc::new(db));
        Ok(())
    }

    /// Closes a handle that `e` made unusable, so the next attempt reopens.
    /// (A commit in flight may hold it a little longer; redb closes the file
    /// when the last holder lets go.)
    pub(super) fn after_error(&mut self, e: &redb::Error) {
        if needs_reopen(e) {
            self.db = None;
        }
    }

    /// Buffers a record and returns its seq. Never touches the disk; the
    /// record becomes durable at the next [`commit`](Self::commit), or the
    /// next after the one in flight.
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
    /// delete it in the next commit. A record of the commit in flight is
    /// deleted by the next commit if that one succeeds, and never written if
    /// it fails (see `finish_commit`).
    pub fn ack(&mut self, seq: u64) -> Ack {
        if seq >= self.pending.base() {
            return if self.pending.cancel(seq) {
                Ack::Cancelled
            } else {
                Ack::Unknown
            };
        }
        if let Some(flight) = &mut self.in_flight {
            let batch = &flight.batch;
            if seq >= batch.records.base() {
                return if batch.records.get(seq).is_some() && flight.acked.insert(seq) {
                    Ack::Deleting
                } else {
                    Ack::Unknown
                };
            }
            if batch.deletes.contains(&seq) {
                // Acked before; the commit in flight deletes it.
                return Ack::Unknown;
            }
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

    /// When the caller should next call [`commit`](Self::commit) (or
    /// [`begin_commit`](Self::begin_commit)): one window after the first
    /// uncommitted change, or when the oldest record reaches `max_age`.
    /// `None` when there is nothing to do, and while a commit is in flight:
    /// finishing it tells anew.
    pub fn next_commit_due(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
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

    /// The oldest unacked records, committed, in flight and pending alike,
    /// in seq order: what to republish after an outage.
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
        let flight = self.in_flight.as_ref();
        // Every committed seq is below every seq in flight, and those below
        // every pending one, so table, batch in flight and buffer in turn are
        // already one seq order. The table is read only below the batch: a
        // commit in flight may land while this reads, and its records are
        // served from memory until it is finished either way.
        let committed_end = flight.map_or(self.pending.base(), |f| f.batch.records.base());
        if self.committed_records > 0 && start < committed_end {
            let err = |e| db_err(&self.path, e);
            let txn = self
                .db()
                .and_then(|db| Ok(db.begin_read()?))
                .map_err(|e| db_err(&self.path, e))?;
            let table = txn.open_table(RECORDS).map_err(|e| db_err(&self.path, e))?;
            for entry in table.range(start..committed_end).map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                let seq = k.value();
                if self.deletes.contains(&seq)
                    || flight.is_some_and(|f| f.batch.deletes.contains(&seq))
                {
                    continue;
                }
                let (ts, payload) = v.value();
                out.push((seq, ts, payload.to_vec()));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        if let Some(f) = flight {
            let room = limit - out.len();
            out.extend(
                (f.batch.records.iter())
                    .filter(|(seq, _)| *seq >= start && !f.acked.contains(seq))
                    .take(room)
                    .map(|(seq, r)| (seq, r.ts, r.payload.clone())),
            );
            if out.len() >= limit {
                return Ok(out);
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

    /// Unacked records and their logical bytes. Acks of records committed or
    /// in flight are reflected after the next commit (within one window).
    pub fn backlog(&self) -> (u64, u64) {
        let (flight_records, flight_bytes) = self.in_flight.as_ref().map_or((0, 0), |f| {
            (f.batch.records.live_records(), f.batch.records.live_bytes())
        });
        (
            self.committed_records + flight_records + self.pending.live_records(),
            self.committed_bytes + flight_bytes + self.pending.live_bytes(),
        )
    }

    /// Records and logical bytes dropped by the bounds since open.
    pub fn dropped_total(&self) -> (u64, u64) {
        (self.dropped_records, self.dropped_bytes)
    }

    /// Highest seq at or below which everything is durable (or acked, or
    /// dropped); `None` before the first record. The commit in flight does
    /// not count until it is finished.
    pub fn committed_through(&self) -> Option<u64> {
        let front = match &self.in_flight {
            Some(f) => f.batch.records.base(),
            None => self.pending.base(),
        };
        front.checked_sub(1).filter(|&s| s >= FIRST_SEQ)
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
        if let Some(&v) = self.meta.lock().get(key) {
            return Ok(Some(v));
        }
        let value = self.read_u64(key)?;
        if let Some(v) = value {
            self.meta.lock().insert(key.to_string(), v);
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
    ///
    /// May run while a commit is in flight: redb runs one write transaction
    /// at a time, so this waits for that commit's fsync at most, and the
    /// value is set in `meta` first, so a commit carrying an older value of
    /// the key writes this one instead, whichever transaction goes first.
    pub fn set_u64(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.meta.lock().insert(key.to_string(), value);
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

    /// Sets a caller counter for the next commit to write, without a
    /// transaction of its own: a caller that must have it durable before
    /// acting (a bdSeq before CONNECT) begins a commit and waits for
    /// [`u64_saved`](Self::u64_saved), on a thread of its choice, instead
    /// of [`set_u64`](Self::set_u64) waiting (behind the commit in flight,
    /// since redb runs one write transaction at a time) on the caller's.
    pub fn stage_u64(&mut self, key: &str, value: u64) {
        self.meta.lock().insert(key.to_string(), value);
        self.meta_unsaved.insert(key.to_string());
        self.mark_dirty();
    }

    /// Whether the value [`get_u64`](Self::get_u64) returns for `key` is on
    /// disk: no commit still has to write it.
    pub fn u64_saved(&self, key: &str) -> bool {
        !self.meta_unsaved.contains(key)
            && !(self.in_flight.as_ref()).is_some_and(|f| f.carries(key))
    }

    pub(super) fn mark_dirty(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// While commits fail (or one is slow to land) the buffer is the only
    /// copy; it must still respect the byte bound rather than grow until the
    /// process is killed. A batch in flight is not counted: it cannot be
    /// dropped from under its write, and once back after a failure it is.
    pub(super) fn bound_pending(&mut self) {
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
    /// `BufWriter`; [`Journal::close`] is the way to see the error. With a
    /// commit in flight this waits for it (see [`Journal::finish_commit`]).
    fn drop(&mut self) {
        if self.in_flight.is_none() && self.pending.is_empty() && self.deletes.is_empty() {
            return;
        }
        if let Err(e) = self.flush() {
            warn!(error = %e, "journal flush on drop failed");
        }
    }
}
