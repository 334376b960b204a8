//! The history file: redb tables, what one commit writes, retention, and what a restart
//! reads back. Synchronous; the committer thread and readers share one [`Store`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{
    ConcurrencyMode, Database, Durability, ReadOnlyDatabase, ReadableDatabase, ReadableTable,
    TableDefinition, TableError,
};

use super::chunk;

/// Path of each historized tag → its series id (ids never change or repeat).
const SERIES: TableDefinition<&str, u32> = TableDefinition::new("history_series");
/// (series, first source time µs, seq) → chunk bytes (see [`super::chunk`]).
const CHUNKS: TableDefinition<(u32, i64, u32), &[u8]> = TableDefinition::new("history_chunks");
/// Sealed chunks by last source time: (last, series, first, seq) → (bytes, samples).
/// Retention takes from the front.
const BY_AGE: TableDefinition<(i64, u32, i64, u32), (u32, u32)> =
    TableDefinition::new("history_by_age");
/// Series → its newest stored chunk: (first, seq, log position of its last sample as
/// commit and count, still open).
const HEADS: TableDefinition<u32, (i64, u32, u64, u32, bool)> =
    TableDefinition::new("history_heads");
/// Commit number → what that commit window received (see [`super::wal`]).
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("history_log");
/// Running totals, so that a restart need not scan the file.
const META: TableDefinition<&str, u64> = TableDefinition::new("history_meta");
/// Alarm condition events: (Time field µs, seq) → `EventRecord` JSON.
const EVENTS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("history_events");

const NEXT_COMMIT: &str = "next_commit";
const CHUNK_BYTES: &str = "chunk_bytes";
const LOG_BYTES: &str = "log_bytes";
const SAMPLES: &str = "samples";
const DROPPED_CHUNKS: &str = "retention_dropped_chunks";
const DROPPED_SAMPLES: &str = "retention_dropped_samples";
const NEXT_EVENT: &str = "next_event";
const EVENT_BYTES: &str = "event_bytes";

/// Chunks are never longer than this, so a read from `t` finds every chunk that holds `t`
/// among those starting after `t - MAX_SPAN`.
pub const MAX_SPAN_US: i64 = 3_600_000_000;

/// redb's default cache is 1 GiB; writes append and reads touch a tag's recent chunks.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history file {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
}

/// A visitor of stored events: (time µs, seq, record bytes); `Break` stops the walk.
pub type EventVisitor<'a> = dyn FnMut(i64, u64, &[u8]) -> std::ops::ControlFlow<()> + 'a;

/// Where a chunk is written, and in which state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub series: u32,
    pub first: i64,
    pub seq: u32,
}

/// A chunk on its way to the file.
#[derive(Debug, Clone)]
pub struct ChunkWrite {
    pub key: ChunkKey,
    pub bytes: Arc<[u8]>,
    /// Sealed chunks are final; open ones are checkpoints that later writes replace.
    pub sealed: bool,
    /// The log position of its last sample (see `SeriesMem::pos`): a restart replays only
    /// what lies after it.
    pub through: (u64, u32),
}

/// Everything one commit writes, in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub commit: u64,
    /// The window's log record; empty when nothing arrived.
    pub log: Vec<u8>,
    pub log_samples: u64,
    pub new_series: Vec<(Arc<str>, u32)>,
    pub chunks: Vec<ChunkWrite>,
    /// Log records below this commit are held by chunks now and go.
    pub trim_log_below: u64,
    /// Condition events: (time µs, seq, record).
    pub events: Vec<(i64, u64, Vec<u8>)>,
}

/// Bounds applied after each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sealed chunks whose last sample is older than this (µs) go.
    pub max_age_us: i64,
    /// Logical bytes (chunks and log) above which the oldest sealed chunks go.
    pub max_bytes: u64,
}

/// Totals after a commit, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub chunk_bytes: u64,
    pub log_bytes: u64,
    pub samples: u64,
    pub dropped_chunks: u64,
    pub dropped_samples: u64,
    /// First source time of the oldest sealed chunk, µs.
    pub oldest: Option<i64>,
    pub event_bytes: u64,
}

/// What a commit's retention dropped (also in [`Totals`], as running counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub chunks: u64,
    pub samples: u64,
    pub bytes: u64,
}

/// What a restart finds.
#[derive(Debug, Default)]
pub struct Recovered {
    pub series: Vec<(String, u32)>,
    /// Per series: its newest chunk's key, the commit that wrote it, and its bytes if it
    /// is still open (a checkpoint to continue).
    pub heads: HashMap<u32, Head>,
    /// Log records in commit order.
    pub log: Vec<(u64, Vec<u8>)>,
    pub next_commit: u64,
    pub next_event: u64,
    pub totals: Totals,
}

#[derive(Debug, Clone)]
pub struct Head {
    pub key: ChunkKey,
    pub through: (u64, u32),
    pub open: Option<Vec<u8>>,
}

pub struct Store {
    path: PathBuf,
    /// `None` after an I/O failure until [`Store::reopen`] succeeds.
    db: RwLock<Option<Arc<Database>>>,
}

fn err(path: &Path, e: impl Into<redb::Error>) -> HistoryError {
    HistoryError::Db {
        path: path.display().to_string(),
        source: Box::new(e.into()),
    }
}

/// One writer (the service); `uaedge history` may open the file read-only meanwhile and
/// sees every commit.
const MODE: ConcurrencyMode = ConcurrencyMode::SingleWriter;

fn open_db(path: &Path) -> Result<Database, HistoryError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_concurrency_mode(MODE)
        .create(path)
        .map_err(|e| err(path, e))
}

/// The file opened for reading only, beside a running service; or, when no service has it
/// open and a crash left it to repair, opened to repair it first (as a start would).
pub struct ReadOnlyStore {
    path: PathBuf,
    db: AnyDb,
}

enum AnyDb {
    ReadOnly(ReadOnlyDatabase),
    Repaired(Database),
}

/// Runs `$body` with `$db` bound to whichever handle the store has.
macro_rules! with_db {
    ($store:expr, $db:ident => $body:expr) => {
        match &$store.db {
            AnyDb::ReadOnly($db) => $body,
            AnyDb::Repaired($db) => $body,
        }
    };
}

impl ReadOnlyStore {
    pub fn open(path: &Path) -> Result<ReadOnlyStore, HistoryError> {
        let read_only = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(MODE)
            .open_read_only(path);
        let db = match read_only {
            Ok(db) => AnyDb::ReadOnly(db),
            // A file a crash left behind is repaired only by a writer; with the service
            // running the read-only open would have worked.
            Err(redb::DatabaseError::RepairAborted) => AnyDb::Repaired(
                Database::builder()
                    .set_cache_size(CACHE_BYTES)
                    .set_concurrency_mode(MODE)
                    .open(path)
                    .map_err(|e| err(path, e))?,
            ),
            Err(e) => return Err(err(path, e)),
        };
        Ok(ReadOnlyStore {
            path: path.to_path_buf(),
            db,
        })
    }

    pub fn series(&self) -> Result<Vec<(String, u32)>, HistoryError> {
        with_db!(self, db => read_series(db)).map_err(|e| err(&self.path, e))
    }

    /// What a restart would find: heads and the log, for samples no chunk holds yet.
    pub fn recover(&self) -> Result<Recovered, HistoryError> {
        with_db!(self, db => recover(db)).map_err(|e| err(&self.path, e))
    }

    pub fn visit_chunks(
        &self,
        series: u32,
        from: i64,
        to: i64,
        visit: &mut dyn FnMut(ChunkKey, &[u8]) -> std::ops::ControlFlow<()>,
    ) -> Result<(), HistoryError> {
        with_db!(self, db => visit_chunks(db, series, from, to, false, visit))
            .map_err(|e| err(&self.path, e))
    }
}

/// A table that a fresh file does not have yet reads as empty.
macro_rules! table_or_empty {
    ($txn:expr, $def:expr, $empty:expr) => {
        match $txn.open_table($def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok($empty),
            Err(e) => return Err(e.into()),
        }
    };
}

impl Store {
    /// Opens (or creates) the file and reads what a restart needs.
    pub fn open(path: &Path) -> Result<(Store, Recovered), HistoryError> {
        let db = open_db(path)?;
        let recovered = recover(&db).map_err(|e| err(path, e))?;
        let store = Store {
            path: path.to_path_buf(),
            db: RwLock::new(Some(Arc::new(db))),
        };
        Ok((store, recovered))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> Result<Arc<Database>, HistoryError> {
        self.db
            .read()
            .clone()
            .ok_or_else(|| err(&self.path, redb::Error::DatabaseClosed))
    }

    /// Writes `batch` and applies `retention` in one transaction, made durable before it
    /// returns. An I/O failure closes the handle (redb refuses it from then on); the next
    /// call opens a fresh one, which reads the file as the last good commit left it.
    pub fn commit(
        &self,
        batch: &Batch,
        retention: Retention,
        now_us: i64,
    ) -> Result<(Totals, Dropped), HistoryError> {
        let db = match self.db() {
            Ok(db) => db,
            Err(_) => self.reopen()?,
        };
        let result = commit(&db, batch, retention, now_us);
        if let Err(redb::Error::Io(_) | redb::Error::PreviousIo) = &result {
            drop(db);
            *self.db.write() = None;
        }
        result.map_err(|e| err(&self.path, e))
    }

    /// redb allows one handle per file, so this fails while a reader still holds the old
    /// one; the committer tries again at its next round.
    fn reopen(&self) -> Result<Arc<Database>, HistoryError> {
        let mut slot = self.db.write();
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let fresh = Arc::new(open_db(&self.path)?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Visits the stored chunks of `series` that may hold samples in `[from, to]`, in key
    /// order (or reversed), until `visit` says stop. Chunks are read one at a time, so a
    /// read that stops early never loads the rest.
    pub fn visit_chunks(
        &self,
        series: u32,
        from: i64,
        to: i64,
        reverse: bool,
        visit: &mut dyn FnMut(ChunkKey, &[u8]) -> std::ops::ControlFlow<()>,
    ) -> Result<(), HistoryError> {
        let db = self.db()?;
        visit_chunks(&*db, series, from, to, reverse, visit).map_err(|e| err(&self.path, e))
    }

    /// Visits the stored events with `from ≤ time ≤ to` in time order (or reversed),
    /// until `visit` says stop.
    pub fn visit_events(
        &self,
        from: i64,
        to: i64,
        reverse: bool,
        visit: &mut EventVisitor<'_>,
    ) -> Result<(), HistoryError> {
        let db = self.db()?;
        visit_events(&*db, from, to, reverse, visit).map_err(|e| err(&self.path, e))
    }

    /// Every series the file knows, by path.
    pub fn series(&self) -> Result<Vec<(String, u32)>, HistoryError> {
        let db = self.db()?;
        read_series(&*db).map_err(|e| err(&self.path, e))
    }
}

fn read_series(db: &impl ReadableDatabase) -> Result<Vec<(String, u32)>, redb::Error> {
    let txn = db.begin_read()?;
    let table = table_or_empty!(txn, SERIES, Vec::new());
    let mut out = Vec::new();
    for row in table.iter()? {
        let (path, id) = row?;
        out.push((path.value().to_string(), id.value()));
    }
    Ok(out)
}

fn visit_chunks(
    db: &impl ReadableDatabase,
    series: u32,
    from: i64,
    to: i64,
    reverse: bool,
    visit: &mut dyn FnMut(ChunkKey, &[u8]) -> std::ops::ControlFlow<()>,
) -> Result<(), redb::Error> {
    let txn = db.begin_read()?;
    let table = table_or_empty!(txn, CHUNKS, ());
    let low = (series, from.saturating_sub(MAX_SPAN_US), 0u32);
    let high = (series, to, u32::MAX);
    if low > high {
        return Ok(());
    }
    let range = table.range(low..=high)?;
    let rows: Box<dyn Iterator<Item = _>> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    for row in rows {
        let (key, bytes) = row?;
        let (series, first, seq) = key.value();
        let bytes = bytes.value();
        // The header says where the chunk ends; one that ends before `from` holds nothing.
        if chunk::peek(bytes).is_ok_and(|m| m.last < from) {
            continue;
        }
        if visit(ChunkKey { series, first, seq }, bytes).is_break() {
            break;
        }
    }
    Ok(())
}

fn visit_events(
    db: &impl ReadableDatabase,
    from: i64,
    to: i64,
    reverse: bool,
    visit: &mut EventVisitor<'_>,
) -> Result<(), redb::Error> {
    if from > to {
        return Ok(());
    }
    let txn = db.begin_read()?;
    let table = table_or_empty!(txn, EVENTS, ());
    let range = table.range((from, 0u64)..=(to, u64::MAX))?;
    let rows: Box<dyn Iterator<Item = _>> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    for row in rows {
        let (key, bytes) = row?;
        let (time, seq) = key.value();
        if visit(time, seq, bytes.value()).is_break() {
            break;
        }
    }
    Ok(())
}

fn meta_get(table: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, redb::Error> {
    Ok(table.get(key)?.map(|v| v.value()).unwrap_or(0))
}

fn recover(db: &impl ReadableDatabase) -> Result<Recovered, redb::Error> {
    let mut out = Recovered {
        series: read_series(db)?,
        ..Recovered::default()
    };
    let txn = db.begin_read()?;
    if let Ok(meta) = txn.open_table(META) {
        out.next_commit = meta_get(&meta, NEXT_COMMIT)?;
        out.next_event = meta_get(&meta, NEXT_EVENT)?;
        out.totals = Totals {
            chunk_bytes: meta_get(&meta, CHUNK_BYTES)?,
            log_bytes: meta_get(&meta, LOG_BYTES)?,
            samples: meta_get(&meta, SAMPLES)?,
            dropped_chunks: meta_get(&meta, DROPPED_CHUNKS)?,
            dropped_samples: meta_get(&meta, DROPPED_SAMPLES)?,
            oldest: None,
            event_bytes: meta_get(&meta, EVENT_BYTES)?,
        };
    }
    if let (Ok(heads), Ok(chunks)) = (txn.open_table(HEADS), txn.open_table(CHUNKS)) {
        for row in heads.iter()? {
            let (series, head) = row?;
            let series = series.value();
            let (first, seq, through_commit, through_count, open) = head.value();
            let through = (through_commit, through_count);
            let key = ChunkKey { series, first, seq };
            let open = if open {
                chunks
                    .get((series, first, seq))?
                    .map(|b| b.value().to_vec())
            } else {
                None
            };
            out.heads.insert(series, Head { key, through, open });
        }
    }
    if let Ok(log) = txn.open_table(LOG) {
        for row in log.iter()? {
            let (commit, bytes) = row?;
            out.log.push((commit.value(), bytes.value().to_vec()));
        }
    }
    if let Ok(by_age) = txn.open_table(BY_AGE) {
        out.totals.oldest = by_age.first()?.map(|(k, _)| k.value().2);
    }
    Ok(out)
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn commit(
    db: &Database,
    batch: &Batch,
    retention: Retention,
    now_us: i64,
) -> Result<(Totals, Dropped), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut dropped = Dropped::default();
    let totals;
    {
        let mut meta = txn.open_table(META)?;
        let mut series = txn.open_table(SERIES)?;
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut by_age = txn.open_table(BY_AGE)?;
        let mut heads = txn.open_table(HEADS)?;
        let mut log = txn.open_table(LOG)?;
        let mut chunk_bytes = meta_get(&meta, CHUNK_BYTES)?;
        let mut log_bytes = meta_get(&meta, LOG_BYTES)?;
        let mut samples = meta_get(&meta, SAMPLES)?;

        for (path, id) in &batch.new_series {
            series.insert(&**path, *id)?;
        }
        let mut events = txn.open_table(EVENTS)?;
        let mut event_bytes = meta_get(&meta, EVENT_BYTES)?;
        let mut next_event = meta_get(&meta, NEXT_EVENT)?;
        for (time, seq, record) in &batch.events {
            events.insert((*time, *seq), record.as_slice())?;
            event_bytes += len_u64(record.len());
            next_event = next_event.max(seq + 1);
        }
        if !batch.log.is_empty() {
            log.insert(batch.commit, batch.log.as_slice())?;
            log_bytes += len_u64(batch.log.len());
            samples += batch.log_samples;
        }
        for w in &batch.chunks {
            let ChunkKey { series, first, seq } = w.key;
            if let Some(old) = chunks.insert((series, first, seq), &*w.bytes)? {
                chunk_bytes = chunk_bytes.saturating_sub(len_u64(old.value().len()));
            }
            chunk_bytes += len_u64(w.bytes.len());
            if w.sealed {
                if let Ok(m) = chunk::peek(&w.bytes) {
                    let size = u32::try_from(w.bytes.len()).unwrap_or(u32::MAX);
                    by_age.insert((m.last, series, first, seq), (size, m.count))?;
                }
            }
            let (through_commit, through_count) = w.through;
            heads.insert(
                series,
                (first, seq, through_commit, through_count, !w.sealed),
            )?;
        }
        // The log's front: records whose samples are all in chunks now.
        loop {
            let Some((commit, len)) = log.first()?.map(|(k, v)| (k.value(), v.value().len()))
            else {
                break;
            };
            if commit >= batch.trim_log_below {
                break;
            }
            log.remove(commit)?;
            log_bytes = log_bytes.saturating_sub(len_u64(len));
        }
        // Retention: by age, then by bytes, oldest sealed chunks first.
        let cutoff = now_us.saturating_sub(retention.max_age_us);
        loop {
            let Some((key, (size, count))) = by_age.first()?.map(|(k, v)| (k.value(), v.value()))
            else {
                break;
            };
            let (last, series, first, seq) = key;
            let too_old = last < cutoff;
            let too_big = chunk_bytes + log_bytes > retention.max_bytes;
            if !too_old && !too_big {
                break;
            }
            by_age.remove(key)?;
            chunks.remove((series, first, seq))?;
            chunk_bytes = chunk_bytes.saturating_sub(u64::from(size));
            samples = samples.saturating_sub(u64::from(count));
            dropped.chunks += 1;
            dropped.samples += u64::from(count);
            dropped.bytes += u64::from(size);
        }
        // Events go by age only: a few a minute at most, next to the samples' bytes.
        loop {
            let Some((key, len)) = events.first()?.map(|(k, v)| (k.value(), v.value().len()))
            else {
                break;
            };
            if key.0 >= cutoff {
                break;
            }
            events.remove(key)?;
            event_bytes = event_bytes.saturating_sub(len_u64(len));
        }
        meta.insert(NEXT_EVENT, next_event)?;
        meta.insert(EVENT_BYTES, event_bytes)?;
        let dropped_chunks = meta_get(&meta, DROPPED_CHUNKS)? + dropped.chunks;
        let dropped_samples = meta_get(&meta, DROPPED_SAMPLES)? + dropped.samples;
        meta.insert(NEXT_COMMIT, batch.commit + 1)?;
        meta.insert(CHUNK_BYTES, chunk_bytes)?;
        meta.insert(LOG_BYTES, log_bytes)?;
        meta.insert(SAMPLES, samples)?;
        meta.insert(DROPPED_CHUNKS, dropped_chunks)?;
        meta.insert(DROPPED_SAMPLES, dropped_samples)?;
        totals = Totals {
            chunk_bytes,
            log_bytes,
            samples,
            dropped_chunks,
            dropped_samples,
            oldest: by_age.first()?.map(|(k, _)| k.value().2),
            event_bytes,
        };
    }
    txn.commit()?;
    Ok((totals, dropped))
}
