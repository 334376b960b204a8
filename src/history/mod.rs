//! The local historian: every reported sample of a historized tag, compressed per tag in
//! time-ordered chunks in a redb file of its own (`history.redb` under the state
//! directory), kept by age and size, and read back by OPC UA HistoryRead and
//! `uaedge history`.
//!
//! Separate from the Sparkplug journal, which holds only what the broker has not taken
//! yet and empties as it drains; this file is read by time and kept for weeks.
//!
//! - [`chunk`]: the compressed format of one tag's stretch of samples.
//! - [`wal`]: the intake log, one record per commit window.
//! - [`store`]: the file's tables, commits, retention, and what a restart reads back.
//! - [`series`]: a tag's open chunk in memory and when a chunk closes.
//! - [`writer`]: the intake on the model bus and the committer thread.
//! - [`read`]: raw reads that join the file and memory.
//! - [`export`]: `uaedge history`, read-only beside the running service.
//!
//! Dependencies: the model, the bus (its events) and the config; the OPC UA server and the
//! CLI read through [`History`].

pub mod bits;
pub mod chunk;
pub mod export;
pub mod read;
pub mod series;
pub mod stats;
pub mod store;
pub mod wal;
mod writer;

#[cfg(test)]
mod chunk_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::bus::{ModelEvent, Start};
use crate::config::history::HistorySettings;
pub use read::{EventRead, RawRead};
pub use stats::{HistorySnapshot, HistoryStats};
pub use store::HistoryError;
use store::{Retention, Store};

/// Model events the intake may have queued: it only encodes, so it keeps up; the queue
/// absorbs a burst while a reload remaps the tags.
pub const MODEL_QUEUE: usize = 64;

/// Where readers find the running historian: the runtime replaces what it holds when a
/// reload restarts the historian, so a reader holds the slot, not the historian.
pub type HistorySlot = Arc<RwLock<Option<Arc<History>>>>;

/// The historian as readers see it.
pub struct History {
    settings: HistorySettings,
    store: Arc<Store>,
    /// Every series' id by tag path.
    series: RwLock<HashMap<Arc<str>, u32>>,
    /// Every series' memory, by id.
    mems: series::Mems,
    stats: Arc<HistoryStats>,
    /// Condition events on their way to the file (readers see them here meanwhile).
    pending_events: Arc<parking_lot::Mutex<Vec<PendingEvent>>>,
    /// The next event's number (events are keyed by time and number).
    next_event: std::sync::atomic::AtomicU64,
}

/// A condition event not yet durable.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// The commit that carries it.
    pub commit: u64,
    pub time: i64,
    pub seq: u64,
    pub record: Arc<crate::conditions::EventRecord>,
}

/// A running historian: readers use [`Historian::history`]; stopping commits what is left.
pub struct Historian {
    history: Arc<History>,
    task: JoinHandle<()>,
    committer: std::thread::JoinHandle<()>,
    cancel: CancellationToken,
}

impl History {
    pub fn stats(&self) -> HistorySnapshot {
        self.stats.snapshot()
    }

    pub fn settings(&self) -> &HistorySettings {
        &self.settings
    }

    fn series_of(&self, path: &str) -> Option<u32> {
        self.series.read().get(path).copied()
    }

    /// Bytes the kept samples take, compressed: the chunks in the file and the chunks still
    /// growing in memory (the intake log, a transient copy, is not counted); and how many
    /// samples they hold. For the storage figures of the benchmark.
    pub fn footprint(&self) -> (u64, u64) {
        let stored = self.stats.snapshot();
        let mut bytes = stored.chunk_bytes;
        self.each_open(|open| {
            // Its last checkpoint, if any, is in the file's count already.
            bytes += (open.enc.byte_len() as u64).saturating_sub(open.stored_len as u64);
        });
        (bytes, stored.samples)
    }

    /// Visits every open chunk, holding the series lock for a block of series at a time:
    /// a scrape's scan of 100,000 series never holds up the intake for the whole of it.
    fn each_open(&self, mut f: impl FnMut(&series::OpenChunk)) {
        const BLOCK: usize = 4096;
        let mut from = 0;
        loop {
            let mems = self.mems.lock();
            let block = mems.get(from..).unwrap_or_default();
            if block.is_empty() {
                return;
            }
            block
                .iter()
                .take(BLOCK)
                .filter_map(|s| s.open.as_ref())
                .for_each(&mut f);
            from += BLOCK;
        }
    }

    /// Source time of the oldest sample kept (µs): the oldest stored chunk's, or while
    /// every chunk is still open, the earliest open one's.
    pub fn oldest(&self) -> Option<i64> {
        let mut open: Option<i64> = None;
        self.each_open(|o| open = Some(open.map_or(o.key.first, |m| m.min(o.key.first))));
        match (self.stats.snapshot().oldest, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `path` has a series (samples were or are being kept).
    pub fn knows(&self, path: &str) -> bool {
        self.series.read().contains_key(path)
    }
}

impl Historian {
    /// Opens the file, takes up what it holds and starts the intake on `events`.
    pub fn start(
        settings: HistorySettings,
        (events, start): (mpsc::Receiver<ModelEvent>, Start),
    ) -> Result<Historian, HistoryError> {
        if let Some(dir) = settings.path.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                warn!(path = %dir.display(), error = %e, "cannot create the history directory");
            }
        }
        let (store, recovered) = Store::open(&settings.path)?;
        let retention = Retention {
            max_age_us: i64::try_from(settings.max_age.as_micros()).unwrap_or(i64::MAX),
            max_bytes: settings.max_bytes,
        };
        let history = Arc::new(History {
            settings,
            store: Arc::new(store),
            series: RwLock::default(),
            mems: series::Mems::default(),
            stats: Arc::default(),
            pending_events: Arc::default(),
            next_event: std::sync::atomic::AtomicU64::new(recovered.next_event),
        });
        let (intake, committer) =
            writer::Intake::start(history.clone(), recovered, &start, retention).map_err(|e| {
                HistoryError::Db {
                    path: history.settings.path.display().to_string(),
                    source: Box::new(redb::Error::Io(e)),
                }
            })?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(intake.run(events, cancel.clone()));
        Ok(Historian {
            history,
            task,
            committer,
            cancel,
        })
    }

    /// Stops as a crash would, as far as the file can tell: the window in memory is never
    /// committed (the commit in flight still completes).
    #[cfg(test)]
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
        let committer = self.committer;
        let _ = tokio::task::spawn_blocking(move || committer.join()).await;
    }

    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// Commits what is in memory and stops. Without this (a crash), a restart replays the
    /// log instead.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            warn!(error = %e, "history intake ended abnormally");
        }
        // The intake's end dropped the job channel: the committer finishes its last job.
        let committer = self.committer;
        if tokio::task::spawn_blocking(move || committer.join())
            .await
            .is_err()
        {
            warn!("history committer ended abnormally");
        }
    }
}
