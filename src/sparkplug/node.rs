//! The edge node task: its state, its loop over the model stream, the MQTT session and
//! the clock, and its shutdown. The MQTT link is in `link.rs`, births and deaths in
//! `births.rs`, data (live and drained) in `data.rs`, incoming commands and STATE in
//! `commands.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::aliases::Diagnostics;
use super::births::DBIRTH_DEFER;
use super::data::Drain;
use super::inflight::Inflight;
use super::link::{next_session_event, Phase};
use super::servers::Servers;
use super::session::Session;
use super::topics::Topics;
use super::SparkplugError;
use crate::bus::{Handle, ModelEvent, SparkplugStatus, Start};
use crate::config::sparkplug::SparkplugSettings;
use crate::model::{Sample, TagState, TagTable};
use crate::store::{Journal, JournalConfig};

/// Model event batches queued from the router.
pub const MODEL_QUEUE: usize = 256;
/// Longest the node's shutdown takes: in-flight PUBACKs (1 s), NDEATH's PUBACK (2 s),
/// DISCONNECT (1 s), and the final commit.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(6);
/// Housekeeping period: drain, diagnostics, deferred DBIRTHs.
pub(super) const TICK: Duration = Duration::from_millis(50);
/// DCMD writes running at once; more are refused with a warning.
pub(super) const MAX_WRITES: usize = 16;
const JOURNAL_RETRY: Duration = Duration::from_secs(5);

/// The running edge node, as the runtime holds it.
pub struct EdgeNode {
    stop: CancellationToken,
    task: JoinHandle<()>,
    status: Arc<SparkplugStatus>,
}

impl EdgeNode {
    /// Starts the node task on `model`, a subscription to the model that begins at `start`
    /// (see [`Handle::subscribe_from`]), reporting into `status`.
    pub fn start(
        settings: SparkplugSettings,
        handle: Handle,
        (model, start): (mpsc::Receiver<ModelEvent>, Start),
        status: Arc<SparkplugStatus>,
    ) -> EdgeNode {
        let no_host = settings.primary_host_id.is_none();
        status.host_online.store(no_host, Ordering::Relaxed);
        status
            .hosts_online
            .store(if no_host { u64::MAX } else { 0 }, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            settings,
            handle,
            (model, start),
            status.clone(),
            stop.clone(),
        ));
        EdgeNode { stop, task, status }
    }

    pub fn status(&self) -> Arc<SparkplugStatus> {
        self.status.clone()
    }

    /// Journals what the router delivered, commits, publishes NDEATH and disconnects. Call
    /// after the router has drained.
    pub async fn shutdown(self, limit: Duration) -> bool {
        self.stop.cancel();
        tokio::time::timeout(limit, self.task).await.is_ok()
    }
}

/// Runs a synchronous journal call without stalling the other tasks of a multi-threaded
/// runtime (commits fsync); on a current-thread runtime there is no one to stall.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

async fn run(
    settings: SparkplugSettings,
    handle: Handle,
    (mut model, mut start): (mpsc::Receiver<ModelEvent>, Start),
    status: Arc<SparkplugStatus>,
    stop: CancellationToken,
) {
    // Without the journal there is no bdSeq and no store: keep trying, and keep reading the
    // model meanwhile so the router never waits on us (what arrives is counted as dropped).
    let mut attempt = 0u32;
    let journal = loop {
        match open_journal(&settings) {
            Ok(j) => break j,
            Err(e) => {
                if attempt.is_multiple_of(12) {
                    error!(path = %settings.store.path.display(), error = %e, "cannot open the Sparkplug journal; no MQTT until it opens");
                }
                attempt = attempt.saturating_add(1);
            }
        }
        let retry = tokio::time::sleep(JOURNAL_RETRY);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut retry => break,
                ev = model.recv() => match ev {
                    Some(ev) => {
                        if let ModelEvent::Samples(_, s) = &ev {
                            status.dropped.fetch_add(1, Ordering::Relaxed);
                            debug!(samples = s.len(), "journal unavailable: batch dropped");
                        }
                        // Unjournaled, but the births to come must still know the model.
                        start.apply(&ev);
                    }
                    None => return,
                },
            }
        }
    };
    let Start {
        table,
        states: seen,
        connected,
    } = start;
    let devices = connected
        .into_iter()
        .map(|up| DeviceLink {
            up,
            ..DeviceLink::default()
        })
        .collect();
    let (backlog, bytes) = journal.backlog();
    if backlog > 0 {
        info!(
            records = backlog,
            bytes, "Sparkplug backlog from the last run will drain after the first birth"
        );
    }
    let servers = Servers::new(settings.brokers.len(), settings.primary_host_id.is_none());
    let node = NodeTask {
        topics: Topics::new(&settings.group_id, &settings.edge_node_id),
        drain: Drain::new(f64::from(settings.store.drain_rate) * TICK.as_secs_f64()),
        settings,
        table,
        handle,
        status,
        journal,
        session: None,
        phase: Phase::Down {
            retry_at: Instant::now(),
        },
        attempt: 0,
        seq: 0,
        devices,
        seen,
        servers,
        host_wait_until: None,
        online_since: None,
        inflight: Inflight::default(),
        next_diag: Instant::now(),
        last_diag: None,
        writes: Arc::new(Semaphore::new(MAX_WRITES)),
        next_flush: Instant::now(),
        commit_job: None,
    };
    node.run(model, stop).await;
}

fn open_journal(settings: &SparkplugSettings) -> Result<Journal, SparkplugError> {
    let path = &settings.store.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SparkplugError::StateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let config = JournalConfig {
        max_bytes: settings.store.max_bytes,
        max_age: settings.store.max_age,
        commit_window: settings.store.commit_window,
    };
    Ok(blocking(|| Journal::open(path, config))?)
}

/// How the node stands with one device.
#[derive(Debug, Default, Clone)]
pub(super) struct DeviceLink {
    /// Its link is up.
    pub up: bool,
    /// DBIRTH sent since the last NBIRTH and no DDEATH since.
    pub born: bool,
    /// Came back up; DBIRTH at its first samples or at this instant.
    pub birth_due: Option<Instant>,
    /// Samples gathered for the next `publish_period` flush.
    pub gathered: Vec<Sample>,
}

/// The edge node task's state. Its methods live in the files of their concern (see the
/// module docs), hence the fields visible to the module.
pub(super) struct NodeTask {
    pub(super) settings: SparkplugSettings,
    pub(super) topics: Topics,
    pub(super) table: Arc<TagTable>,
    pub(super) handle: Handle,
    pub(super) status: Arc<SparkplugStatus>,
    pub(super) journal: Journal,
    pub(super) session: Option<Session>,
    pub(super) phase: Phase,
    pub(super) attempt: u32,
    /// Next message seq (0–255).
    pub(super) seq: u8,
    /// By DeviceId of `table`.
    pub(super) devices: Vec<DeviceLink>,
    /// Per tag: the state as of the last sample this node took from the model stream. Births
    /// read it, not the TagTable: the router updates the table before the samples reach this
    /// node, so a birth from the table could announce a value that samples still queued here
    /// would then take back.
    pub(super) seen: Vec<TagState>,
    /// The configured servers, the one in use, and the primary host's STATE on each.
    pub(super) servers: Servers,
    /// Waiting for the primary host on a server with others to go to: until then.
    pub(super) host_wait_until: Option<Instant>,
    /// When the node was last born (for `return_to_first`).
    pub(super) online_since: Option<Instant>,
    pub(super) inflight: Inflight,
    pub(super) drain: Drain,
    pub(super) next_diag: Instant,
    pub(super) last_diag: Option<Diagnostics>,
    pub(super) writes: Arc<Semaphore>,
    next_flush: Instant,
    /// The journal commit being written on a blocking thread, if any (see `begin_commit`).
    commit_job: Option<JoinHandle<()>>,
}

impl NodeTask {
    async fn run(mut self, mut model: mpsc::Receiver<ModelEvent>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // None while a commit is in flight: its end is the next thing to wait for.
            let commit_at = self.journal.next_commit_due().map(Instant::from_std);
            let retry_at = match self.phase {
                Phase::Down { retry_at } => Some(retry_at),
                _ => None,
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = model.recv() => match ev {
                    Some(ev) => self.on_model(ev),
                    // The runtime is gone without a shutdown; nothing more will come.
                    None => break,
                },
                ev = next_session_event(&mut self.session) => self.on_session_events(ev),
                _ = sleep_until(commit_at) => self.begin_commit(),
                _ = written(&mut self.commit_job) => {
                    let failed = !self.finish_commit();
                    self.after_commit(failed);
                }
                _ = sleep_until(retry_at) => self.connect(),
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.shutdown(model).await;
    }

    fn on_model(&mut self, ev: ModelEvent) {
        match ev {
            ModelEvent::Reloaded(r) => self.on_reload(&r),
            ModelEvent::Samples(device, batch) => self.on_samples(device, &batch),
            // The alarm tags' samples carry what Sparkplug shows of alarms.
            ModelEvent::Condition(_) => {}
            ModelEvent::DeviceUp(id) => {
                let online = self.phase == Phase::Online;
                if let Some(device) = self.devices.get_mut(id.index()) {
                    device.up = true;
                    if online && !device.born {
                        device.birth_due = Some(Instant::now() + DBIRTH_DEFER);
                    }
                }
            }
            ModelEvent::DeviceDown(id) => {
                let d = id.index();
                // Its gathered samples go before its death.
                self.flush_device(d);
                let Some(device) = self.devices.get_mut(d) else {
                    return;
                };
                device.up = false;
                device.birth_due = None;
                if self.phase == Phase::Online && device.born {
                    self.ddeath(d);
                }
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(period) = self.settings.publish_period {
            let now = Instant::now();
            if now >= self.next_flush {
                self.next_flush = now + period;
                self.flush_all();
            }
        }
        self.on_server_clock(Instant::now());
        if self.phase == Phase::Online {
            let now = Instant::now();
            let due: Vec<usize> = (self.devices.iter().enumerate())
                .filter(|(_, x)| x.birth_due.is_some_and(|t| t <= now) && x.up && !x.born)
                .map(|(d, _)| d)
                .collect();
            for d in due {
                self.dbirth(d);
            }
            self.drain();
            if now >= self.next_diag {
                self.next_diag = now + self.settings.diagnostics_period;
                self.publish_diagnostics();
            }
        }
        let (records, bytes) = self.journal.backlog();
        self.status
            .backlog_records
            .store(records, Ordering::Relaxed);
        self.status.backlog_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Hands the journal's pending records (and a bdSeq waiting to be written, see
    /// `connect`) to a blocking thread that writes them, so that the fsyncs (two or more per
    /// commit, 300 ms each on a slow card) do not stop this task from taking samples:
    /// appends, acks and drain reads go on meanwhile. One commit at a time: while one is in
    /// flight this does nothing, and the journal says no commit is due.
    pub(super) fn begin_commit(&mut self) {
        if let Some(job) = self.journal.begin_commit() {
            self.commit_job = Some(tokio::task::spawn_blocking(move || job.write()));
        }
    }

    /// The commit in flight has been written (or failed): the journal takes the outcome in.
    /// Returns whether it succeeded.
    fn finish_commit(&mut self) -> bool {
        self.commit_job = None;
        // Blocking: it may compact the file after a large backlog drained.
        match blocking(|| self.journal.finish_commit()) {
            Ok(stats) => {
                if stats.dropped_records > 0 {
                    // The journal logged the details.
                    self.status
                        .dropped
                        .fetch_add(stats.dropped_records, Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "journal commit failed; retrying in one window");
                false
            }
        }
    }

    async fn shutdown(mut self, mut model: mpsc::Receiver<ModelEvent>) {
        // The runtime drained the router into our queue before stopping us.
        while let Ok(ev) = model.try_recv() {
            self.on_model(ev);
        }
        self.flush_all();
        // Give in-flight data a moment to be acknowledged, so fewer records replay (as
        // duplicates) after the next start.
        let until = Instant::now() + Duration::from_secs(1);
        while self.inflight.records() > 0 && self.session.is_some() && Instant::now() < until {
            let ev = tokio::time::timeout_at(until, next_session_event(&mut self.session)).await;
            match ev {
                Ok(ev) => self.on_session(ev),
                Err(_) => break,
            }
        }
        // The commit in flight first, then what is left, on this thread.
        if let Some(job) = self.commit_job.take() {
            if let Err(e) = job.await {
                error!(error = %e, "journal commit task failed");
            }
            self.finish_commit();
        }
        if let Err(e) = blocking(|| self.journal.flush()) {
            error!(error = %e, "final journal commit failed");
        }
        // NDEATH ends a born session; an unborn one just disconnects (which drops its Will).
        let born = matches!(
            self.phase,
            Phase::Online | Phase::Leaving { born: true, .. }
        );
        if born {
            self.publish_ndeath().await;
        }
        if let Some(session) = self.session.take() {
            session.disconnect(Duration::from_secs(1)).await;
        }
        // Readers that still hold this status must not see a link that is gone.
        self.status.connected.store(false, Ordering::Relaxed);
        self.status.born.store(false, Ordering::Relaxed);
        let (records, _) = self.journal.backlog();
        info!(backlog = records, "Sparkplug edge node stopped");
    }
}

/// The commit job's end; never, without one.
async fn written(job: &mut Option<JoinHandle<()>>) {
    match job {
        Some(handle) => {
            if let Err(e) = handle.await {
                // The journal takes the commit as failed and keeps its records.
                error!(error = %e, "journal commit task failed");
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
