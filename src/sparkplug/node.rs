//! The edge node task: the link state machine, births and deaths, shutdown.
//! Data (live and drained) is in `data.rs`, incoming commands and STATE in `commands.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{ConnectReturnCode, Event, Incoming, Outgoing, QoS, SubscribeFilter};
use sparkplug_rs::payload::Metric;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uaedge_driver::{DataType, Quality, Timestamp, Value};

use super::codec::{self, MetricSpec};
use super::inflight::{Inflight, Track};
use super::session::{Session, SessionEvent};
use super::topics::Topics;
use super::SparkplugError;
use crate::bus::SparkplugStatus;
use crate::bus::{Handle, ModelEvent, Reloaded};
use crate::config::sparkplug::SparkplugSettings;
use crate::model::{DeviceId, TagState, TagTable};
use crate::store::{Journal, JournalConfig};

/// Meta key of the last bdSeq used.
pub(super) const BD_SEQ_KEY: &str = "sparkplug.bd_seq";
/// Model event batches queued from the router.
pub const MODEL_QUEUE: usize = 256;
/// Payload bytes of data that may wait in front of the MQTT connection (see
/// [`Node::room_for_data`]): about half a second of 1M samples/s.
pub(super) const QUEUED_BYTES: usize = 8 << 20;
/// Longest the node's shutdown takes: in-flight PUBACKs (1 s), NDEATH's PUBACK (2 s),
/// DISCONNECT (1 s), and the final commit.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(6);
/// Housekeeping period: drain, diagnostics, deferred DBIRTHs.
pub(super) const TICK: Duration = Duration::from_millis(50);
/// A device that came back is born with its first samples, or after this at the latest.
const DBIRTH_DEFER: Duration = Duration::from_millis(500);
/// DCMD writes running at once; more are refused with a warning.
pub(super) const MAX_WRITES: usize = 16;
const JOURNAL_RETRY: Duration = Duration::from_secs(5);

/// Metric aliases: node metrics below [`TAG_ALIAS_BASE`], tags at base + TagId (unique per
/// node, stable while the config is).
pub(super) const REBIRTH: &str = "Node Control/Rebirth";
pub(super) const REBIRTH_ALIAS: u64 = 1;
pub(super) const TAG_ALIAS_BASE: u64 = 100;
const DIAGNOSTICS: [(&str, u64); 7] = [
    ("Node Info/Store Backlog Records", 2),
    ("Node Info/Store Backlog Bytes", 3),
    ("Node Info/Store Dropped Records", 4),
    ("Node Info/Devices Online", 5),
    ("Node Info/Samples Published", 6),
    ("Alarms/Active", 7),
    ("Alarms/Transitions", 8),
];
type Diagnostics = [u64; DIAGNOSTICS.len()];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No session; the next one starts at `retry_at`.
    Down { retry_at: Instant },
    /// CONNECT sent.
    Connecting,
    /// SUBSCRIBE sent, waiting for SUBACK.
    Subscribing,
    /// Subscribed; the primary host is offline.
    WaitingHost,
    /// NBIRTH sent.
    Online,
}

/// The running edge node, as the runtime holds it.
pub struct EdgeNode {
    stop: CancellationToken,
    task: JoinHandle<()>,
    status: Arc<SparkplugStatus>,
}

impl EdgeNode {
    /// Starts the node task on `model`, a subscription to the model made before any device
    /// started (so the node sees every device's first `DeviceUp`), reporting into `status`.
    pub fn start(
        settings: SparkplugSettings,
        handle: Handle,
        model: mpsc::Receiver<ModelEvent>,
        status: Arc<SparkplugStatus>,
    ) -> EdgeNode {
        status
            .host_online
            .store(settings.primary_host_id.is_none(), Ordering::Relaxed);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(settings, handle, model, status.clone(), stop.clone()));
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
    mut model: mpsc::Receiver<ModelEvent>,
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
                    Some(ModelEvent::Samples(_, s)) => {
                        status.dropped.fetch_add(1, Ordering::Relaxed);
                        debug!(samples = s.len(), "journal unavailable: batch dropped");
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    };
    let table = handle.table().clone();
    let devices = table.devices().len();
    // Subscribed before any device started (or, after a restart of this section alone, the
    // closest there is): the table is where the stream starts.
    let seen = table.states(|s| s.to_vec());
    let up = (0..devices)
        .map(|i| {
            table
                .device_state(DeviceId(u16::try_from(i).unwrap_or(u16::MAX)))
                .is_some_and(|s| s.connected)
        })
        .collect();
    let (backlog, bytes) = journal.backlog();
    if backlog > 0 {
        info!(
            records = backlog,
            bytes, "Sparkplug backlog from the last run will drain after the first birth"
        );
    }
    let host_online = settings.primary_host_id.is_none();
    let node = Node {
        topics: Topics::new(&settings.group_id, &settings.edge_node_id),
        tokens: f64::from(settings.store.drain_rate) * TICK.as_secs_f64(),
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
        born: vec![false; devices],
        up,
        birth_due: vec![None; devices],
        seen,
        host_online,
        host_ts: None,
        inflight: Inflight::default(),
        drain_cursor: 0,
        drain_idle: false,
        last_refill: Instant::now(),
        next_diag: Instant::now(),
        last_diag: None,
        writes: Arc::new(Semaphore::new(MAX_WRITES)),
        gathered: vec![Vec::new(); devices],
        next_flush: Instant::now(),
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

pub(super) struct Node {
    pub(super) settings: SparkplugSettings,
    pub(super) topics: Topics,
    pub(super) table: Arc<TagTable>,
    pub(super) handle: Handle,
    pub(super) status: Arc<SparkplugStatus>,
    pub(super) journal: Journal,
    pub(super) session: Option<Session>,
    pub(super) phase: Phase,
    attempt: u32,
    /// Next message seq (0–255).
    pub(super) seq: u8,
    /// Per device: DBIRTH sent since the last NBIRTH and no DDEATH since.
    pub(super) born: Vec<bool>,
    /// Per device: its link is up.
    pub(super) up: Vec<bool>,
    /// Per device: came back up; DBIRTH at its first samples or at this instant.
    pub(super) birth_due: Vec<Option<Instant>>,
    /// Per tag: the state as of the last sample this node took from the model stream. Births
    /// read it, not the TagTable: the router updates the table before the samples reach this
    /// node, so a birth from the table could announce a value that samples still queued here
    /// would then take back.
    pub(super) seen: Vec<TagState>,
    pub(super) host_online: bool,
    /// Timestamp of the newest STATE message seen.
    pub(super) host_ts: Option<u64>,
    pub(super) inflight: Inflight,
    /// Highest journal seq the drain has looked at since the last birth.
    pub(super) drain_cursor: u64,
    /// Nothing to drain past the cursor (cleared by anything that may add some).
    pub(super) drain_idle: bool,
    /// Drain token bucket, in samples.
    pub(super) tokens: f64,
    pub(super) last_refill: Instant,
    next_diag: Instant,
    last_diag: Option<Diagnostics>,
    pub(super) writes: Arc<Semaphore>,
    /// Per device: samples gathered for the next `publish_period` flush.
    pub(super) gathered: Vec<Vec<crate::model::Sample>>,
    next_flush: Instant,
}

impl Node {
    async fn run(mut self, mut model: mpsc::Receiver<ModelEvent>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
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
                _ = sleep_until(commit_at) => self.commit(),
                _ = sleep_until(retry_at) => self.connect(),
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.shutdown(model).await;
    }

    fn connect(&mut self) {
        let last = match blocking(|| self.journal.get_u64(BD_SEQ_KEY)) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot read bdSeq from the journal; retrying");
                self.backoff();
                return;
            }
        };
        // 0 on the very first session, then +1 per CONNECT, wrapping at 256.
        let bd_seq = last.map_or(0, |v| (v + 1) % 256);
        // On disk before the CONNECT that registers it in the Will. A full disk must not stop
        // live data: the journal still hands out the next bdSeq in this process and writes
        // it once it can, so only a restart before then could reuse it.
        if let Err(e) = blocking(|| self.journal.set_u64(BD_SEQ_KEY, bd_seq)) {
            warn!(error = %e, bd_seq, "cannot persist bdSeq; connecting with it anyway");
        }
        debug!(host = %self.settings.host, port = self.settings.port, bd_seq, "connecting to the MQTT broker");
        self.status.bd_seq.store(bd_seq, Ordering::Relaxed);
        self.session = Some(Session::start(&self.settings, &self.topics, bd_seq as u8));
        self.phase = Phase::Connecting;
    }

    fn backoff(&mut self) {
        let delay = self.settings.reconnect.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Down {
            retry_at: Instant::now() + delay,
        };
    }

    /// The session is over; its in-flight records stay in the journal.
    pub(super) fn lost(&mut self, reason: &str, retry_now: bool) {
        if self.attempt.is_multiple_of(10) || self.phase == Phase::Online {
            warn!(
                reason,
                attempt = self.attempt,
                "MQTT session lost; data goes to the journal"
            );
        }
        self.session = None;
        self.inflight.clear();
        self.born.iter_mut().for_each(|b| *b = false);
        self.status.connected.store(false, Ordering::Relaxed);
        self.status.born.store(false, Ordering::Relaxed);
        if retry_now {
            self.phase = Phase::Down {
                retry_at: Instant::now(),
            };
        } else {
            self.backoff();
        }
    }

    /// Handles `first` and every event already queued behind it. Events are cheap and a
    /// model batch is not: taking one event per turn of the loop let them pile up under load
    /// until the queue was full and rumqttc's event loop, waiting to hand over the next one,
    /// stopped writing to the connection (2M samples/s offered: 330k delivered, p99 23 s).
    fn on_session_events(&mut self, first: Option<SessionEvent>) {
        self.on_session(first);
        // At most the queue's worth, so a busy connection cannot keep the model waiting.
        for _ in 0..super::session::EVENT_QUEUE {
            let Some(session) = &mut self.session else {
                return;
            };
            match session.events.try_recv() {
                Ok(ev) => self.on_session(Some(ev)),
                Err(_) => return,
            }
        }
    }

    fn on_session(&mut self, ev: Option<SessionEvent>) {
        let ev = match ev {
            Some(SessionEvent::Mqtt(ev)) => ev,
            Some(SessionEvent::Closed(reason)) => return self.lost(&reason, false),
            None => return self.lost("event loop ended", false),
        };
        match ev {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    return self.lost(&format!("broker refused: {:?}", ack.code), false);
                }
                self.status.connected.store(true, Ordering::Relaxed);
                self.subscribe();
            }
            Event::Incoming(Incoming::SubAck(ack)) if self.phase == Phase::Subscribing => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    return self.lost("broker refused a subscription (NCMD/DCMD/STATE)", false);
                }
                info!(
                    bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq),
                    "MQTT connected and subscribed"
                );
                if self.host_online {
                    self.birth();
                } else {
                    info!(host = ?self.settings.primary_host_id, "waiting for the primary host to be online");
                    self.phase = Phase::WaitingHost;
                }
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_message(&p.topic, &p.payload),
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some((track, latency)) = self.inflight.acked(ack.pkid) {
                    self.status.record_latency(latency);
                    self.done(track);
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(track) = self.inflight.written(pkid) {
                    self.done(track);
                }
            }
            _ => {}
        }
    }

    /// A publish is complete: its record leaves the journal.
    fn done(&mut self, track: Track) {
        if let Track::Record { seq, samples } = track {
            self.journal.ack(seq);
            self.status
                .published
                .fetch_add(u64::from(samples), Ordering::Relaxed);
        }
    }

    fn subscribe(&mut self) {
        let Some(session) = &self.session else { return };
        let mut filters = vec![
            SubscribeFilter::new(self.topics.ncmd(), QoS::AtLeastOnce),
            SubscribeFilter::new(self.topics.dcmd_filter(), QoS::AtLeastOnce),
        ];
        if let Some(host) = &self.settings.primary_host_id {
            filters.push(SubscribeFilter::new(Topics::state(host), QoS::AtLeastOnce));
        }
        match session.client.try_subscribe_many(filters) {
            Ok(()) => self.phase = Phase::Subscribing,
            Err(e) => self.lost(&format!("cannot subscribe: {e}"), false),
        }
    }

    /// Publishes with the current seq (advanced only when the request was taken).
    pub(super) fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        track: Track,
        build: impl FnOnce(u8) -> sparkplug_rs::Payload,
    ) -> bool {
        self.publish_bytes(topic, qos, track, |seq| codec::encode(&build(seq)))
    }

    /// [`publish`](Self::publish) of a payload already encoded but for its `seq`.
    pub(super) fn publish_bytes(
        &mut self,
        topic: String,
        qos: QoS,
        track: Track,
        build: impl FnOnce(u8) -> Vec<u8>,
    ) -> bool {
        let Some(session) = &self.session else {
            return false;
        };
        if matches!(track, Track::Record { .. }) && !self.room_for_data() {
            return false;
        }
        let bytes = build(self.seq);
        let size = bytes.len();
        match session.client.try_publish(topic, qos, false, bytes) {
            Ok(()) => {
                self.seq = self.seq.wrapping_add(1);
                self.inflight.queued(track, size);
                true
            }
            Err(e) => {
                debug!(error = %e, "MQTT request queue full");
                false
            }
        }
    }

    /// Whether a data record may go to rumqttc now. Past [`QUEUED_BYTES`] waiting to be
    /// written, the broker or the link is not keeping up: records stay in the journal, and
    /// the drain sends them (historical) once it does, so memory and the latency of what is
    /// sent live stay bounded instead of queueing without end in front of the connection.
    pub(super) fn room_for_data(&self) -> bool {
        self.inflight.queued_bytes() < QUEUED_BYTES
    }

    pub(super) fn data_qos(&self) -> QoS {
        if self.settings.data_qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    /// NBIRTH (seq 0) and a DBIRTH for every device that is up; then data and drain flow.
    pub(super) fn birth(&mut self) {
        let bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq);
        self.seq = 0;
        self.born.iter_mut().for_each(|b| *b = false);
        let mut metrics = vec![codec::bd_seq_metric(bd_seq, None)];
        metrics.push(codec::metric(&MetricSpec {
            name: Some(REBIRTH),
            alias: Some(REBIRTH_ALIAS),
            data_type: DataType::Boolean,
            value: Some(&Value::Boolean(false)),
            quality: None,
            units: None,
            time: Timestamp::now(),
        }));
        let diag = self.diagnostics();
        metrics.extend(diagnostic_metrics(&diag, None, true));
        let topic = self.topics.nbirth();
        if !self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            return self.lost("request queue full at NBIRTH", false);
        }
        self.last_diag = Some(diag);
        self.next_diag = Instant::now() + self.settings.diagnostics_period;
        self.phase = Phase::Online;
        self.attempt = 0;
        self.status.born.store(true, Ordering::Relaxed);
        for d in 0..self.up.len() {
            if self.up[d] {
                self.dbirth(d);
            }
        }
        self.drain_cursor = 0;
        self.drain_idle = false;
        info!(
            bd_seq,
            devices = self.born.iter().filter(|b| **b).count(),
            "Sparkplug NBIRTH published"
        );
    }

    /// DBIRTH with every tag's current value from the TagTable.
    pub(super) fn dbirth(&mut self, d: usize) {
        let Some(def) = self.table.devices().get(d) else {
            return;
        };
        let id = def.id;
        let name = def.name.clone();
        let states = &self.seen;
        let metrics: Vec<Metric> = self
            .table
            .device_tags(id)
            .iter()
            .map(|t| {
                let st = states.get(t.id.index());
                let time = st
                    .map(|s| s.source_time)
                    .filter(|t| t.0 > 0)
                    .unwrap_or_else(Timestamp::now);
                let quality = st.map_or(Quality::default(), |s| s.quality);
                codec::metric(&MetricSpec {
                    name: Some(&t.path.tag),
                    alias: Some(TAG_ALIAS_BASE + u64::from(t.id.0)),
                    data_type: t.data_type,
                    value: st.and_then(|s| s.value.as_ref()),
                    quality: Some(quality.sparkplug_code()),
                    units: t.units.as_deref(),
                    time,
                })
            })
            .collect();
        let topic = self.topics.dbirth(&name);
        if self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            self.born[d] = true;
            self.birth_due[d] = None;
            // Records held while the device was down can go now.
            self.drain_cursor = 0;
            self.drain_idle = false;
            debug!(device = %name, "DBIRTH published");
        } else {
            warn!(device = %name, "MQTT request queue full: DBIRTH deferred");
            self.birth_due[d] = Some(Instant::now() + DBIRTH_DEFER);
        }
    }

    pub(super) fn ddeath(&mut self, d: usize) {
        let Some(name) = self.table.devices().get(d).map(|x| x.name.clone()) else {
            return;
        };
        self.publish_ddeath(&name);
        self.born[d] = false;
    }

    fn publish_ddeath(&mut self, name: &str) {
        let topic = self.topics.ddeath(name);
        if !self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), Vec::new())
        }) {
            warn!(device = %name, "MQTT request queue full: DDEATH not sent");
        }
        debug!(device = %name, "DDEATH published");
    }

    /// A reload swapped the table. The MQTT session stays (same bdSeq, no NDEATH); when
    /// the tag set changed (names, types, units, aliases), removed devices get their DDEATH
    /// and everything is re-born on the new set: NBIRTH with seq 0 and every DBIRTH.
    fn on_reload(&mut self, reloaded: &Reloaded) {
        if Arc::ptr_eq(&self.table, &reloaded.table) {
            return;
        }
        // What was gathered names tags by the old table's ids.
        self.flush_all();
        let old = std::mem::replace(&mut self.table, reloaded.table.clone());
        // The router's states at the swap: what a later birth reports is what the table
        // held at this point of the stream, new tags (alarms `false`, disabled devices Bad)
        // included.
        self.seen.clone_from(&reloaded.states);
        if !reloaded.tag_set_changed {
            debug!("reload kept the tag set: no rebirth");
            return;
        }
        if self.phase == Phase::Online {
            let gone: Vec<String> = old
                .devices()
                .iter()
                .filter(|d| self.born.get(d.id.index()).copied().unwrap_or(false))
                .filter(|d| !self.table.devices().iter().any(|n| n.name == d.name))
                .map(|d| d.name.clone())
                .collect();
            for name in gone {
                self.publish_ddeath(&name);
            }
        }
        let devices = self.table.devices().len();
        self.up.clone_from(&reloaded.connected);
        self.born = vec![false; devices];
        self.birth_due = vec![None; devices];
        self.gathered = vec![Vec::new(); devices];
        if self.phase == Phase::Online {
            info!(devices, "tag set changed by a reload: re-birth");
            self.birth();
        }
    }

    fn on_model(&mut self, ev: ModelEvent) {
        match ev {
            ModelEvent::Reloaded(r) => self.on_reload(&r),
            ModelEvent::Samples(device, batch) => self.on_samples(device, &batch),
            ModelEvent::DeviceUp(id) => {
                let d = id.index();
                if let Some(u) = self.up.get_mut(d) {
                    *u = true;
                }
                if self.phase == Phase::Online && !self.born.get(d).copied().unwrap_or(true) {
                    if let Some(due) = self.birth_due.get_mut(d) {
                        *due = Some(Instant::now() + DBIRTH_DEFER);
                    }
                }
            }
            ModelEvent::DeviceDown(id) => {
                let d = id.index();
                // Its gathered samples go before its death.
                self.flush_device(d);
                if let Some(u) = self.up.get_mut(d) {
                    *u = false;
                }
                if let Some(due) = self.birth_due.get_mut(d) {
                    *due = None;
                }
                if self.phase == Phase::Online && self.born.get(d).copied().unwrap_or(false) {
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
        if self.phase == Phase::Online {
            let now = Instant::now();
            for d in 0..self.birth_due.len() {
                if self.birth_due[d].is_some_and(|t| t <= now) && self.up[d] && !self.born[d] {
                    self.dbirth(d);
                }
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

    pub(super) fn commit(&mut self) {
        match blocking(|| self.journal.commit()) {
            Ok(stats) => {
                if stats.dropped_records > 0 {
                    // The journal logged the details.
                    self.status
                        .dropped
                        .fetch_add(stats.dropped_records, Ordering::Relaxed);
                }
            }
            Err(e) => warn!(error = %e, "journal commit failed; retrying in one window"),
        }
    }

    fn diagnostics(&self) -> Diagnostics {
        let (records, bytes) = self.journal.backlog();
        let alarms = self.handle.alarm_counts();
        [
            records,
            bytes,
            self.status.dropped.load(Ordering::Relaxed),
            self.up.iter().filter(|u| **u).count() as u64,
            self.status.published.load(Ordering::Relaxed),
            alarms.active,
            alarms.transitions,
        ]
    }

    fn publish_diagnostics(&mut self) {
        let now = self.diagnostics();
        let metrics = diagnostic_metrics(&now, self.last_diag.as_ref(), false);
        if metrics.is_empty() {
            return;
        }
        let topic = self.topics.ndata();
        let qos = self.data_qos();
        if self.publish(topic, qos, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            self.last_diag = Some(now);
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
        if let Err(e) = blocking(|| self.journal.flush()) {
            error!(error = %e, "final journal commit failed");
        }
        let connected = matches!(
            self.phase,
            Phase::Subscribing | Phase::WaitingHost | Phase::Online
        );
        if connected {
            self.publish_ndeath().await;
        }
        if let Some(session) = self.session.take() {
            session.disconnect(Duration::from_secs(1)).await;
        }
        let (records, _) = self.journal.backlog();
        info!(backlog = records, "Sparkplug edge node stopped");
    }

    /// The explicit NDEATH of a clean stop or a host going offline: QoS 1, awaited up to
    /// 2 s, with the bdSeq of this session.
    pub(super) async fn publish_ndeath(&mut self) {
        let bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq);
        let Some(session) = &self.session else { return };
        let bytes = codec::encode(&codec::payload(
            None,
            vec![codec::bd_seq_metric(bd_seq, None)],
        ));
        if session
            .client
            .try_publish(self.topics.ndeath(), QoS::AtLeastOnce, false, bytes)
            .is_err()
        {
            warn!("MQTT request queue full: NDEATH not sent (the broker's Will covers it)");
            return;
        }
        self.inflight.queued(Track::Death, 0);
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let ev =
                match tokio::time::timeout_at(until, next_session_event(&mut self.session)).await {
                    Ok(Some(ev)) => ev,
                    _ => break,
                };
            match ev {
                SessionEvent::Mqtt(Event::Incoming(Incoming::PubAck(ack))) => {
                    match self.inflight.acked(ack.pkid) {
                        Some((Track::Death, _)) => {
                            info!(bd_seq, "NDEATH published");
                            break;
                        }
                        Some((track, latency)) => {
                            self.status.record_latency(latency);
                            self.done(track)
                        }
                        None => {}
                    }
                }
                SessionEvent::Mqtt(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(track) = self.inflight.written(pkid) {
                        self.done(track);
                    }
                }
                SessionEvent::Mqtt(_) => {}
                SessionEvent::Closed(_) => break,
            }
        }
        self.status.born.store(false, Ordering::Relaxed);
    }
}

/// Node diagnostics as metrics: all of them for NBIRTH (`full`), else those that changed.
fn diagnostic_metrics(now: &Diagnostics, last: Option<&Diagnostics>, full: bool) -> Vec<Metric> {
    DIAGNOSTICS
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(i, _)| full || last.is_none_or(|l| l[*i] != now[*i]))
        .map(|(_, ((name, alias), v))| {
            codec::metric(&MetricSpec {
                name: full.then_some(*name),
                alias: Some(*alias),
                data_type: DataType::UInt64,
                value: Some(&Value::UInt64(*v)),
                quality: None,
                units: None,
                time: Timestamp::now(),
            })
        })
        .collect()
}

async fn next_session_event(session: &mut Option<Session>) -> Option<SessionEvent> {
    match session {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
