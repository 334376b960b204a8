//! The intake and the committer.
//!
//! The intake (a task on the model bus) encodes each sample into its tag's open chunk and
//! appends it to the window's log record; at the end of each commit window it hands the
//! record, the chunks that closed and the checkpoints due to the committer, a thread of its
//! own that writes them in one durable transaction. While a commit is in flight the intake
//! keeps gathering the next window, so a slow fsync never stalls the router; only when a
//! window outgrows [`MAX_PENDING_BYTES`] are samples dropped, counted and logged.
//!
//! What a `kill -9` loses: the window being gathered and the commit in flight, so at most
//! two commit windows plus one fsync.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uaedge_driver::{DataType, Timestamp};

use super::series::{Closed, DirtyQueue, Mems, SeriesMem, CHUNK_BYTES};
use super::stats::HistoryStats;
use super::store::{Batch, ChunkWrite, Recovered, Retention, Store};
use super::wal::{replay, RecordWriter};
use super::{History, PendingEvent};
use crate::bus::{ModelEvent, Start};
use crate::conditions::{ConditionEvent, EventRecord};
use crate::model::TagTable;

/// A window larger than this (log and chunks) while the previous commit is still in flight
/// drops samples: memory stays bounded when the disk cannot keep up.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// The log may hold this much, or as much as the open chunks can grow to (a chunk's bytes a
/// series), before checkpoints bring it down. Checkpoints then rewrite about as many bytes as
/// the log takes in times the open chunks' share of the budget (about half, as they fill
/// and close in turn); a larger budget writes less but makes a restart replay more.
const LOG_BUDGET_MIN: u64 = 8 * 1024 * 1024;
/// Checkpoint bytes per commit, so that no single commit rewrites every open chunk.
const CHECKPOINT_PER_COMMIT: usize = 4 * 1024 * 1024;
/// Even with nothing arriving a commit runs this often, so retention by age still applies.
const IDLE_COMMIT: Duration = Duration::from_secs(60);
/// Longest wait between retries of a failed commit.
const MAX_RETRY: Duration = Duration::from_secs(5);

struct Job {
    batch: Batch,
    /// Where readers find the batch's events until it is durable.
    pending_events: Arc<Mutex<Vec<PendingEvent>>>,
    /// The intake's sample count when it handed this batch off.
    samples_in: u64,
    /// The series each chunk write belongs to, to clear their unsaved lists once durable.
    touched: Vec<u32>,
}

/// What the intake owns.
pub(super) struct Intake {
    history: Arc<History>,
    /// `history.mems`, which only the intake grows.
    mems: Mems,
    by_path: HashMap<Arc<str>, u32>,
    /// The current table's tags → their series id and declared type, `None` for tags not
    /// historized.
    by_tag: Vec<Option<(u32, DataType)>>,
    /// Number of the batch being gathered.
    commit: u64,
    log: RecordWriter,
    closed: Closed,
    new_series: Vec<(Arc<str>, u32)>,
    /// Condition events of the window: (time, seq, record).
    events: Vec<(i64, u64, Vec<u8>)>,
    dirty: DirtyQueue,
    /// Log records written or in flight and not trimmed yet: (commit, bytes).
    log_sizes: VecDeque<(u64, u64)>,
    window_bytes: usize,
    /// Samples received so far (counted as they arrive, dropped or not).
    samples_in: u64,
    /// `samples_in` at the last hand-off.
    handed_samples_in: u64,
    dropped_warned: bool,
    jobs: SyncSender<Job>,
    in_flight: Arc<AtomicBool>,
    idle: Arc<Notify>,
}

impl Intake {
    /// Takes up what the file holds: resumes open chunks and replays the log records that
    /// no chunk holds yet. Returns the intake and the committer thread.
    pub(super) fn start(
        history: Arc<History>,
        recovered: Recovered,
        start: &Start,
        retention: Retention,
    ) -> std::io::Result<(Intake, JoinHandle<()>)> {
        let (jobs, rx) = sync_channel(1);
        let in_flight = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(Notify::new());
        let committer = {
            let store = history.store.clone();
            let stats = history.stats.clone();
            let mems = history.mems.clone();
            let (in_flight, idle) = (in_flight.clone(), idle.clone());
            std::thread::Builder::new()
                .name("uaedge-history".into())
                .spawn(move || {
                    run_committer(&store, rx, &stats, &mems, &in_flight, &idle, retention)
                })?
        };
        let mut intake = Intake {
            mems: history.mems.clone(),
            history,
            by_path: HashMap::new(),
            by_tag: Vec::new(),
            commit: recovered.next_commit,
            log: RecordWriter::default(),
            closed: Vec::new(),
            new_series: Vec::new(),
            events: Vec::new(),
            dirty: DirtyQueue::default(),
            log_sizes: VecDeque::new(),
            window_bytes: 0,
            samples_in: 0,
            handed_samples_in: 0,
            dropped_warned: false,
            jobs,
            in_flight,
            idle,
        };
        intake.recover(recovered);
        intake.map_tags(&start.table);
        Ok((intake, committer))
    }

    fn recover(&mut self, recovered: Recovered) {
        self.history.stats.set_totals(&recovered.totals);
        let mut series: Vec<(String, u32)> = recovered.series;
        series.sort_by_key(|(_, id)| *id);
        for (path, id) in series {
            if id as usize != self.mems.lock().len() {
                warn!(tag = %path, series = id, "history series ids have a gap; later ids shift");
            }
            self.add_series_with_id(path.into(), id);
        }
        let mut heads: HashMap<u32, (u64, u32)> = HashMap::new();
        let mut mems = self.mems.lock();
        for (id, head) in recovered.heads {
            heads.insert(id, head.through);
            let Some(mem) = mems.get_mut(id as usize) else {
                continue;
            };
            mem.next_seq = head.key.seq.wrapping_add(1);
            mem.pos = head.through;
            if let Some(bytes) = head.open {
                match super::chunk::ChunkEncoder::resume(&bytes) {
                    Ok(enc) => {
                        mem.open = Some(super::series::OpenChunk {
                            key: head.key,
                            stored_len: bytes.len(),
                            enc,
                        });
                        mem.next_seq = head.key.seq.wrapping_add(1);
                    }
                    Err(e) => {
                        warn!(series = id, error = %e, "history open chunk unreadable; its samples are lost")
                    }
                }
            }
        }
        let mut replayed = 0u64;
        for (commit, bytes) in &recovered.log {
            self.log_sizes.push_back((*commit, bytes.len() as u64));
        }
        let (closed, dirty) = (&mut self.closed, &mut self.dirty);
        replay(&recovered.log, &heads, |commit, sample| {
            let Some(mem) = mems.get_mut(sample.series as usize) else {
                return;
            };
            let became_dirty = mem.append(
                sample.series,
                commit,
                sample.time,
                sample.data_type,
                sample.value.as_ref(),
                sample.quality,
                closed,
            );
            if became_dirty {
                dirty.push(commit, sample.series);
            }
            replayed += 1;
        });
        self.commit = self
            .commit
            .max(recovered.log.last().map_or(0, |(c, _)| c + 1));
        for w in &self.closed {
            self.window_bytes += w.bytes.len();
            if let Some(mem) = mems.get_mut(w.key.series as usize) {
                mem.unsaved.push((self.commit, w.clone()));
            }
        }
        let series = mems.len();
        drop(mems);
        info!(
            path = %self.history.store.path().display(),
            series,
            replayed,
            "history opened"
        );
    }

    fn add_series_with_id(&mut self, path: Arc<str>, id: u32) {
        {
            let mut mems = self.mems.lock();
            // A gap (never written by this code) is filled so that ids index `mems`.
            let len = mems.len().max(id as usize + 1);
            mems.resize_with(len, SeriesMem::default);
        }
        self.by_path.insert(path.clone(), id);
        self.history.series.write().insert(path, id);
    }

    /// Points the current table's historized tags at their series, creating new ones.
    fn map_tags(&mut self, table: &TagTable) {
        let mut by_tag = Vec::with_capacity(table.tags().len());
        for def in table.tags() {
            if !def.historized {
                by_tag.push(None);
                continue;
            }
            let path: Arc<str> = def.path.to_string().into();
            let id = match self.by_path.get(&path) {
                Some(&id) => id,
                None => {
                    let id = self.mems.lock().len() as u32;
                    self.new_series.push((path.clone(), id));
                    self.add_series_with_id(path, id);
                    id
                }
            };
            by_tag.push(Some((id, def.data_type)));
        }
        self.by_tag = by_tag;
    }

    pub(super) async fn run(
        mut self,
        mut events: mpsc::Receiver<ModelEvent>,
        cancel: CancellationToken,
    ) {
        let window = self.history.settings.commit_window;
        let mut deadline = Instant::now() + window;
        let mut last_commit = Instant::now();
        loop {
            // While a commit is in flight past the deadline, the committer's wake-up is
            // what to wait for, not a timer that has already run out.
            let wake = if self.in_flight.load(Ordering::Acquire) && Instant::now() >= deadline {
                Instant::now() + IDLE_COMMIT
            } else {
                deadline
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    // Stopping after the router drained: what is queued is the last of it.
                    while let Ok(event) = events.try_recv() {
                        self.on_event(&event);
                    }
                    break;
                }
                event = events.recv() => match event {
                    Some(event) => self.on_event(&event),
                    None => break,
                },
                () = sleep_until(wake.into()) => {}
                () = self.idle.notified() => {}
            }
            let now = Instant::now();
            let due = now >= deadline
                && (self.has_work() || now.duration_since(last_commit) >= IDLE_COMMIT);
            if due && !self.in_flight.load(Ordering::Acquire) {
                self.hand_off();
                last_commit = now;
                deadline = now + window;
            } else if now >= deadline && !self.has_work() {
                deadline = now + window;
            }
        }
        self.finish().await;
    }

    fn has_work(&self) -> bool {
        !self.log.is_empty()
            || !self.events.is_empty()
            || !self.closed.is_empty()
            || !self.new_series.is_empty()
            || self.samples_in != self.handed_samples_in
    }

    fn on_event(&mut self, event: &ModelEvent) {
        match event {
            ModelEvent::Samples(_, batch) => {
                self.samples_in = self.history.stats.add_samples_in(batch.len() as u64);
                let over = self.window_bytes + self.log.byte_len() >= MAX_PENDING_BYTES;
                if over && self.in_flight.load(Ordering::Acquire) {
                    let n = batch
                        .iter()
                        .filter(|s| self.series_of(s.tag.index()).is_some())
                        .count();
                    self.history.stats.add_dropped(n as u64);
                    if !self.dropped_warned {
                        self.dropped_warned = true;
                        warn!(
                            pending_bytes = MAX_PENDING_BYTES,
                            "history commits fall behind the samples; samples are dropped until the disk catches up"
                        );
                    }
                    return;
                }
                let closed_before = self.closed.len();
                let mut mems = self.mems.lock();
                for s in batch.iter() {
                    let Some(&Some((series, data_type))) = self.by_tag.get(s.tag.index()) else {
                        continue;
                    };
                    let Some(mem) = mems.get_mut(series as usize) else {
                        continue;
                    };
                    let time = s.time.as_micros();
                    self.log
                        .push(series, time, data_type, s.value.as_ref(), s.quality);
                    let dirty = mem.append(
                        series,
                        self.commit,
                        time,
                        data_type,
                        s.value.as_ref(),
                        s.quality,
                        &mut self.closed,
                    );
                    if dirty {
                        self.dirty.push(self.commit, series);
                    }
                }
                for w in &self.closed[closed_before..] {
                    self.window_bytes += w.bytes.len();
                    if let Some(mem) = mems.get_mut(w.key.series as usize) {
                        mem.unsaved.push((self.commit, w.clone()));
                    }
                }
            }
            ModelEvent::Reloaded(r) => self.map_tags(&r.start.table),
            ModelEvent::Condition(event) => self.on_condition(event),
            ModelEvent::DeviceUp(_) | ModelEvent::DeviceDown(_) => {}
        }
    }

    /// Alarm transitions and operators' actions, historized as events per source.
    fn on_condition(&mut self, event: &ConditionEvent) {
        let record = Arc::new(EventRecord::of(event));
        let bytes = record.encode();
        let seq = self.history.next_event.fetch_add(1, Ordering::Relaxed);
        let time = event.state.time;
        self.window_bytes += bytes.len();
        self.events.push((time, seq, bytes));
        self.history.pending_events.lock().push(PendingEvent {
            commit: self.commit,
            time,
            seq,
            record,
        });
    }

    fn series_of(&self, tag: usize) -> Option<u32> {
        self.by_tag.get(tag).copied().flatten().map(|(s, _)| s)
    }

    /// Whether `series` is still dirty since `commit` (its queue entry is live).
    fn live(mems: &[SeriesMem], series: u32, commit: u64) -> bool {
        mems.get(series as usize)
            .is_some_and(|s| s.dirty_since == Some(commit))
    }

    /// Checkpoints the series that hold the log's oldest records, while the log is over its
    /// budget and this commit's checkpoint allowance lasts. Returns the log's new front.
    fn checkpoint(&mut self) -> u64 {
        let mut mems = self.mems.lock();
        let budget = LOG_BUDGET_MIN.max((mems.len() * CHUNK_BYTES) as u64);
        let mut written = 0usize;
        let mut log_total: u64 =
            self.log_sizes.iter().map(|(_, b)| b).sum::<u64>() + self.log.byte_len() as u64;
        loop {
            let front = self.dirty.front(|s, c| Self::live(&mems, s, c));
            let Some((commit, series)) = front else {
                return self.commit + 1;
            };
            // Records below the front are covered once this batch commits.
            let freed: u64 = self
                .log_sizes
                .iter()
                .take_while(|(c, _)| *c < commit)
                .map(|(_, b)| b)
                .sum();
            if log_total - freed <= budget || written >= CHECKPOINT_PER_COMMIT {
                return commit;
            }
            log_total -= freed;
            while self.log_sizes.front().is_some_and(|(c, _)| *c < commit) {
                self.log_sizes.pop_front();
            }
            self.dirty.pop();
            let Some(mem) = mems.get_mut(series as usize) else {
                continue;
            };
            if let Some(w) = mem.checkpoint() {
                written += w.bytes.len();
                mem.unsaved.push((self.commit, w.clone()));
                self.closed.push(w);
            }
        }
    }

    fn hand_off(&mut self) {
        let trim_log_below = self.checkpoint();
        // Stale entries pile up where series close chunks often; keep the queue to the
        // series that are dirty.
        {
            let mems = self.mems.lock();
            if self.dirty.len() > 2 * mems.len() + 1024 {
                self.dirty.retain(|&(c, s)| Self::live(&mems, s, c));
            }
        }
        let log_samples = self.log.samples();
        let log = self.log.take();
        if !log.is_empty() {
            self.log_sizes.push_back((self.commit, log.len() as u64));
        }
        while self
            .log_sizes
            .front()
            .is_some_and(|(c, _)| *c < trim_log_below)
        {
            self.log_sizes.pop_front();
        }
        let chunks: Vec<ChunkWrite> = std::mem::take(&mut self.closed);
        let touched = chunks.iter().map(|w| w.key.series).collect();
        let batch = Batch {
            commit: self.commit,
            log,
            log_samples,
            new_series: std::mem::take(&mut self.new_series),
            chunks,
            trim_log_below,
            events: std::mem::take(&mut self.events),
        };
        self.in_flight.store(true, Ordering::Release);
        let job = Job {
            batch,
            pending_events: self.history.pending_events.clone(),
            samples_in: self.samples_in,
            touched,
        };
        self.handed_samples_in = self.samples_in;
        if self.jobs.send(job).is_err() {
            warn!("history committer stopped; samples are no longer stored");
        }
        self.commit += 1;
        self.window_bytes = 0;
        self.dropped_warned = false;
    }

    /// Commits what is left and waits for the committer.
    async fn finish(mut self) {
        while self.in_flight.load(Ordering::Acquire) {
            self.idle.notified().await;
        }
        if self.has_work() {
            self.hand_off();
            while self.in_flight.load(Ordering::Acquire) {
                self.idle.notified().await;
            }
        }
    }
}

fn run_committer(
    store: &Store,
    jobs: Receiver<Job>,
    stats: &HistoryStats,
    mems: &Mutex<Vec<SeriesMem>>,
    in_flight: &AtomicBool,
    idle: &Notify,
    retention: Retention,
) {
    while let Ok(job) = jobs.recv() {
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match store.commit(&job.batch, retention, Timestamp::now().as_micros()) {
                Ok((totals, dropped)) => {
                    stats.committed(&totals, started.elapsed(), job.samples_in);
                    if dropped.chunks > 0 {
                        info!(
                            chunks = dropped.chunks,
                            samples = dropped.samples,
                            bytes = dropped.bytes,
                            "history retention dropped the oldest chunks"
                        );
                    }
                    if failures > 0 {
                        info!(attempts = failures + 1, "history commit succeeded again");
                    }
                    break;
                }
                Err(e) => {
                    failures += 1;
                    stats.commit_failed();
                    if failures == 1 || failures.is_power_of_two() {
                        warn!(error = %e, attempts = failures, "history commit failed; retrying");
                    }
                    let wait = Duration::from_millis(100 << failures.min(6)).min(MAX_RETRY);
                    std::thread::sleep(wait);
                }
            }
        }
        {
            let mut mems = mems.lock();
            for &series in &job.touched {
                if let Some(mem) = mems.get_mut(series as usize) {
                    mem.unsaved.retain(|(c, _)| *c != job.batch.commit);
                }
            }
        }
        if !job.batch.events.is_empty() {
            (job.pending_events.lock()).retain(|e| e.commit != job.batch.commit);
        }
        in_flight.store(false, Ordering::Release);
        idle.notify_one();
    }
}
