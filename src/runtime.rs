//! The supervisor: one task per device, one router that turns readings into the model, and
//! one cancellation token that stops them all in order.
//!
//! Device tasks own their driver and its reconnect loop; they hand readings to the router
//! over a bounded channel, so a slow router slows the polling rather than growing memory.
//! The router applies scaling and report-by-exception, updates the [`TagTable`] and fans the
//! reported samples out to subscribers (Sparkplug, OPC UA). Anomaly checks judge every
//! reading before report-by-exception; their alarms are tags of the model (see `alarms.rs`).
//!
//! # Reload
//! [`Runtime::reload`] applies a new config in place. Devices are matched by name; one
//! whose link fingerprint (see `config::link_fingerprint`: driver, options, enabled, poll
//! interval, reconnect, tags without their checks) is unchanged keeps its task and its open
//! connection. Removed and changed devices' tasks stop, added and changed ones start fresh.
//! The new [`TagTable`] replaces the old one as a whole, with the kept devices' values,
//! qualities and link state carried over by path; the swap travels the router's own event
//! queue, so every event before it is judged against the old table and every one after it
//! against the new one, and subscribers get [`ModelEvent::Reloaded`] at that same point.
//! Anomaly checks restart with the new config (windows empty, the transition count from
//! zero, alarms normal: an Active one is published as cleared and fires again if its
//! condition holds). Alarm reactions find their target by path, so a reload between an
//! alarm and its write cannot send it to the wrong tag. A changed `sparkplug:`, `opcua:` or `metrics:` section
//! (or `state_dir`) restarts that one component.

mod alarms;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uaedge_driver::{
    BadReason, DeviceInfo, Driver, LinkError, Quality, Reading, Timestamp, Value, WriteError,
};

use crate::config::{Backoff, Config, DeviceSetup, MetricsConfig};
use crate::model::{DeviceId, Sample, TagId, TagTable};
pub use alarms::{AlarmCounts, AlarmStatus};

/// How long shutdown waits for each stage before it logs the laggard and moves on.
const STAGE_DEADLINE: Duration = Duration::from_secs(3);
/// How long a write may wait for its device (queued behind a slow poll, say).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Readings in flight from all devices to the router.
const EVENT_QUEUE: usize = 256;
/// Samples a queue of batches may hold. A batch is one device read, from a handful of tags
/// to tens of thousands, so a depth in batches alone would let a consumer that falls behind
/// (an overloaded broker, a slow disk) queue hundreds of megabytes of big devices' reads.
const SAMPLES_IN_FLIGHT: usize = 65_536;
/// Batches a queue keeps at least, so devices still interleave.
const MIN_QUEUE: usize = 4;
/// Writes queued per device.
const WRITE_QUEUE: usize = 16;
/// How often time-based checks (flatline by duration, `delay`) are judged without samples.
const ALARM_TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("a component did not stop within the shutdown deadline: {0}")]
    ShutdownTimeout(String),
}

/// What subscribers receive, in order.
#[derive(Debug, Clone)]
pub enum ModelEvent {
    /// Samples that passed report-by-exception, as one batch from one device read.
    Samples(Arc<Vec<Sample>>),
    /// A device's link came up (its tags follow as samples).
    DeviceUp(DeviceId),
    /// A device's link went down; its tags are Bad from now on.
    DeviceDown(DeviceId),
    /// A reload replaced the table: TagIds and DeviceIds of every later event refer to the
    /// new one.
    Reloaded(Arc<Reloaded>),
}

/// What a reload changed, as subscribers learn it.
pub struct Reloaded {
    pub table: Arc<TagTable>,
    /// `false` when every tag kept its id, type, units and access (see
    /// [`TagTable::same_tag_set`]): Sparkplug needs no rebirth then.
    pub tag_set_changed: bool,
}

impl std::fmt::Debug for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloaded")
            .field("devices", &self.table.devices().len())
            .field("tags", &self.table.tags().len())
            .field("tag_set_changed", &self.tag_set_changed)
            .finish()
    }
}

enum EventKind {
    Readings(Vec<Reading>, Timestamp),
    Up,
    Down(LinkError),
    /// From [`Runtime::reload`], not from a device.
    Swap(Box<Swap>),
}

/// A device task's events name it by its slot, which stays the same across reloads while
/// its DeviceId (its place in the config) may not.
struct DeviceEvent {
    slot: u64,
    kind: EventKind,
}

/// A new table for the router, and everything that goes with it.
struct Swap {
    shared: Arc<Shared>,
    slots: HashMap<u64, DeviceId>,
    /// Devices whose links keep running: their state carries over.
    kept: HashSet<String>,
    checks: Vec<crate::anomaly::CheckSpec>,
    log_values: bool,
    done: oneshot::Sender<()>,
}

/// What a [`Handle`] reads, swapped as one by a reload: the table and the ways to its
/// devices always belong together.
struct Shared {
    table: Arc<TagTable>,
    writers: Vec<Option<mpsc::Sender<WriteRequest>>>,
    sparkplug: Option<Arc<crate::sparkplug::SparkplugStatus>>,
}

struct WriteRequest {
    local: u32,
    value: Value,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

/// A cheap, cloneable way into the running model: read it, write to devices, subscribe.
/// It follows reloads: each call sees the table in force at that moment.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<RwLock<Arc<Shared>>>,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<ModelEvent>>>>,
    alarms: Arc<AlarmStatus>,
    probes: mpsc::Sender<oneshot::Sender<()>>,
    /// Outlives OPC UA server restarts, so its counters only grow.
    opcua_connections: Arc<crate::opcua_server::ConnectionStats>,
}

impl Handle {
    /// The table in force now. Hold the `Arc` for a consistent view across several calls;
    /// a reload replaces it (subscribers learn when from [`ModelEvent::Reloaded`]).
    pub fn table(&self) -> Arc<TagTable> {
        self.shared.read().table.clone()
    }

    fn shared(&self) -> Arc<Shared> {
        self.shared.read().clone()
    }

    /// The Sparkplug edge node's live status (MQTT connected, primary host, backlog), when
    /// the config has a `sparkplug:` section.
    pub fn sparkplug_status(&self) -> Option<Arc<crate::sparkplug::SparkplugStatus>> {
        self.shared.read().sparkplug.clone()
    }

    /// Connections to the OPC UA port: accepted, open, failed before a secure channel.
    pub fn opcua_connections(&self) -> &Arc<crate::opcua_server::ConnectionStats> {
        &self.opcua_connections
    }

    /// Anomaly alarms: configured, Active now, transitions since start.
    pub fn alarm_counts(&self) -> AlarmCounts {
        self.alarms.snapshot()
    }

    /// Whether the router answers within `limit`: the liveness the systemd watchdog reports.
    /// It travels the router's own loop, so a wedged pipeline stops the pings.
    pub async fn probe(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        tokio::time::timeout(limit, async {
            self.probes.send(tx).await.is_ok() && rx.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Subscribes to model events. The router waits for a full subscriber (backpressure
    /// reaches the drivers), so a subscriber must keep reading; `capacity` is in batches, and
    /// fewer where the devices' batches are big (see [`queue_depth`]).
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<ModelEvent> {
        let (tx, rx) = mpsc::channel(queue_depth(&self.table(), capacity));
        self.subscribers.lock().push(tx);
        rx
    }

    /// Writes a value to a tag's device. The value may be of any type that converts to the
    /// tag's type; scaling is undone before it reaches the driver.
    pub async fn write(&self, tag: TagId, value: &Value) -> Result<(), WriteError> {
        let shared = self.shared();
        let def = shared
            .table
            .tag(tag)
            .ok_or_else(|| WriteError::Rejected(format!("no tag with id {}", tag.0)))?;
        if !def.writable {
            return Err(WriteError::NotWritable);
        }
        let raw = def
            .to_raw(value)
            .map_err(|e| WriteError::TypeMismatch(e.to_string()))?;
        let sender = shared
            .writers
            .get(def.device.index())
            .and_then(Option::as_ref)
            .ok_or_else(|| WriteError::Link(LinkError::not_connected("device is disabled")))?;
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            local: def.local,
            value: raw,
            reply,
        };
        let sent = tokio::time::timeout(WRITE_TIMEOUT, async {
            sender
                .send(request)
                .await
                .map_err(|_| WriteError::Link(LinkError::not_connected("device task stopped")))?;
            answer
                .await
                .map_err(|_| WriteError::Link(LinkError::not_connected("device task stopped")))?
        })
        .await;
        let result = sent.unwrap_or_else(|_| {
            Err(WriteError::Link(LinkError::timeout(
                "the device did not take the write in time",
            )))
        });
        match &result {
            Ok(()) => info!(tag = %def.path, value = %value, "write done"),
            Err(e) => warn!(tag = %def.path, value = %value, error = %e, "write failed"),
        }
        result
    }
}

/// A running uaedge.
pub struct Runtime {
    handle: Handle,
    cancel: CancellationToken,
    /// Kept for the reload's swaps and for devices started then; dropped at shutdown so
    /// the router drains and ends.
    events: mpsc::Sender<DeviceEvent>,
    next_slot: u64,
    /// In config order.
    devices: Vec<RunningDevice>,
    router: JoinHandle<()>,
    reactions: JoinHandle<()>,
    sparkplug: Option<crate::sparkplug::EdgeNode>,
    opcua: Option<crate::opcua_server::OpcUaServer>,
    metrics: Option<(CancellationToken, JoinHandle<()>)>,
    /// The sections whose change restarts their component.
    sections: Sections,
}

#[derive(PartialEq)]
struct Sections {
    state_dir: PathBuf,
    sparkplug: Option<crate::sparkplug::SparkplugSettings>,
    opcua: Option<crate::opcua_server::OpcUaSettings>,
    metrics: Option<MetricsConfig>,
}

struct RunningDevice {
    name: String,
    fingerprint: u64,
    slot: u64,
    writer: Option<mpsc::Sender<WriteRequest>>,
    cancel: CancellationToken,
    /// `None` for a disabled device, or one not started yet.
    task: Option<JoinHandle<()>>,
}

/// What a reload did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Devices whose links kept running.
    pub kept: Vec<String>,
    /// Devices started, new or changed.
    pub started: Vec<String>,
    /// Devices stopped, removed or changed.
    pub stopped: Vec<String>,
    pub tag_set_changed: bool,
    /// Components restarted because their section changed.
    pub restarted: Vec<&'static str>,
}

impl Runtime {
    /// Starts every enabled device and the router. Must be called inside a tokio runtime.
    pub fn start(mut config: Config) -> Runtime {
        let table = Arc::new(config.take_tag_table());
        let cancel = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::channel(queue_depth(&table, EVENT_QUEUE));
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        // The edge node subscribes before any device starts, so it sees every first event.
        let sparkplug_events = config.sparkplug.as_ref().map(|_| {
            let (tx, rx) = mpsc::channel(queue_depth(&table, crate::sparkplug::MODEL_QUEUE));
            subscribers.lock().push(tx);
            rx
        });
        let sparkplug_status = sparkplug_events
            .as_ref()
            .map(|_| Arc::new(crate::sparkplug::SparkplugStatus::default()));
        let mut runtime_devices = Vec::with_capacity(config.devices.len());
        let mut slots = HashMap::new();
        let mut next_slot = 0;
        for (i, setup) in config.devices.into_iter().enumerate() {
            let id = DeviceId(u16::try_from(i).unwrap_or(u16::MAX));
            next_slot += 1;
            slots.insert(next_slot, id);
            let (mut device, pending) =
                prepare_device(setup, id, next_slot, &table, &events_tx, &cancel);
            device.task = pending.map(PendingTask::spawn);
            runtime_devices.push(device);
        }
        let shared = Arc::new(Shared {
            table: table.clone(),
            writers: runtime_devices.iter().map(|d| d.writer.clone()).collect(),
            sparkplug: sparkplug_status.clone(),
        });
        let shared = Arc::new(RwLock::new(shared));
        let alarm_status = Arc::new(AlarmStatus::default());
        let (reaction_tx, reaction_rx) = mpsc::channel(alarms::REACTION_QUEUE);
        let router = Router {
            table: table.clone(),
            shared: shared.clone(),
            slots,
            subscribers: subscribers.clone(),
            log_values: config.log.values,
            reported: Vec::new(),
            alarms: alarms::Alarms::new(config.checks, alarm_status.clone(), reaction_tx),
        };
        let (probe_tx, probe_rx) = mpsc::channel(1);
        let router = tokio::spawn(router.run(events_rx, probe_rx));
        let handle = Handle {
            shared,
            subscribers,
            probes: probe_tx,
            alarms: alarm_status,
            opcua_connections: Arc::default(),
        };
        let reactions = tokio::spawn(alarms::react(handle.clone(), reaction_rx));
        let sparkplug = match (config.sparkplug.clone(), sparkplug_events, sparkplug_status) {
            (Some(settings), Some(events), Some(status)) => Some(
                crate::sparkplug::EdgeNode::start(settings, handle.clone(), events, status),
            ),
            _ => None,
        };
        let opcua = crate::opcua_server::start_from_config(
            config.opcua.clone(),
            &config.state_dir,
            &handle,
        );
        let metrics = start_metrics(config.metrics, &handle, &cancel);
        Runtime {
            handle,
            cancel,
            events: events_tx,
            next_slot,
            devices: runtime_devices,
            router,
            reactions,
            sparkplug,
            opcua,
            metrics,
            sections: Sections {
                state_dir: config.state_dir,
                sparkplug: config.sparkplug,
                opcua: config.opcua,
                metrics: config.metrics,
            },
        }
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The OPC UA server, when the config enables one and it started.
    pub fn opcua(&self) -> Option<&crate::opcua_server::OpcUaServer> {
        self.opcua.as_ref()
    }

    /// Applies `config` in place (see the module docs): untouched devices keep their links,
    /// the table is swapped with their state carried over, and only a changed section's
    /// component restarts.
    pub async fn reload(&mut self, mut config: Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let old_table = self.handle.table();
        let table = Arc::new(config.take_tag_table());
        summary.tag_set_changed = !old_table.same_tag_set(&table);
        let mut old: HashMap<String, RunningDevice> = std::mem::take(&mut self.devices)
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        // Stop the removed and changed devices first: a device that takes one connection
        // only must be free before its successor connects.
        let keep: HashSet<String> = config
            .devices
            .iter()
            .filter(|s| {
                old.get(&s.name)
                    .is_some_and(|d| d.fingerprint == s.fingerprint)
            })
            .map(|s| s.name.clone())
            .collect();
        let leaving: Vec<String> = old.keys().filter(|n| !keep.contains(*n)).cloned().collect();
        for name in leaving {
            if let Some(device) = old.remove(&name) {
                stop_device(device).await;
                summary.stopped.push(name);
            }
        }
        let mut slots = HashMap::new();
        let mut fresh = Vec::new();
        for (i, setup) in config.devices.into_iter().enumerate() {
            let id = DeviceId(u16::try_from(i).unwrap_or(u16::MAX));
            match old.remove(&setup.name) {
                Some(device) => {
                    slots.insert(device.slot, id);
                    summary.kept.push(device.name.clone());
                    self.devices.push(device);
                }
                None => {
                    self.next_slot += 1;
                    slots.insert(self.next_slot, id);
                    summary.started.push(setup.name.clone());
                    // A placeholder keeps config order; the task starts after the swap.
                    fresh.push((self.devices.len(), id, self.next_slot, setup));
                    self.devices.push(RunningDevice {
                        name: String::new(),
                        fingerprint: 0,
                        slot: 0,
                        writer: None,
                        cancel: CancellationToken::new(),
                        task: None,
                    });
                }
            }
        }
        // Write queues exist before the task runs, so the new table's writers are complete.
        let mut spawns = Vec::new();
        for (at, id, slot, setup) in fresh {
            let (device, pending) =
                prepare_device(setup, id, slot, &table, &self.events, &self.cancel);
            if let Some(d) = self.devices.get_mut(at) {
                *d = device;
            }
            spawns.extend(pending.map(|p| (at, p)));
        }
        let sections = Sections {
            state_dir: config.state_dir,
            sparkplug: config.sparkplug,
            opcua: config.opcua,
            metrics: config.metrics,
        };
        let sparkplug_changed = sections.sparkplug != self.sections.sparkplug
            || sections.state_dir != self.sections.state_dir;
        if sparkplug_changed {
            if let Some(node) = self.sparkplug.take() {
                if !node.shutdown(crate::sparkplug::SHUTDOWN_DEADLINE).await {
                    warn!("Sparkplug edge node did not stop within the shutdown deadline");
                }
            }
            summary.restarted.push("sparkplug");
        }
        let sparkplug_status = if sparkplug_changed {
            sections
                .sparkplug
                .as_ref()
                .map(|_| Arc::new(crate::sparkplug::SparkplugStatus::default()))
        } else {
            self.handle.sparkplug_status()
        };
        let shared = Arc::new(Shared {
            table: table.clone(),
            writers: self.devices.iter().map(|d| d.writer.clone()).collect(),
            sparkplug: sparkplug_status.clone(),
        });
        let (done, swapped) = oneshot::channel();
        let swap = Swap {
            shared,
            slots,
            kept: keep,
            checks: config.checks,
            log_values: config.log.values,
            done,
        };
        let sent = self
            .events
            .send(DeviceEvent {
                slot: 0,
                kind: EventKind::Swap(Box::new(swap)),
            })
            .await;
        if sent.is_err() || swapped.await.is_err() {
            warn!("router gone; the new table was not applied");
        }
        // After the swap: their first events must find their slots.
        for (at, pending) in spawns {
            if let Some(d) = self.devices.get_mut(at) {
                d.task = Some(pending.spawn());
            }
        }
        debug!(
            kept = ?summary.kept,
            started = ?summary.started,
            stopped = ?summary.stopped,
            tag_set_changed = summary.tag_set_changed,
            "reload plan applied"
        );
        if sparkplug_changed {
            if let (Some(settings), Some(status)) = (sections.sparkplug.clone(), sparkplug_status) {
                let events = self.handle.subscribe(crate::sparkplug::MODEL_QUEUE);
                self.sparkplug = Some(crate::sparkplug::EdgeNode::start(
                    settings,
                    self.handle.clone(),
                    events,
                    status,
                ));
            }
        }
        if sections.opcua != self.sections.opcua || sections.state_dir != self.sections.state_dir {
            if let Some(server) = self.opcua.take() {
                if !server.shutdown().await {
                    warn!("OPC UA server did not stop within the shutdown deadline");
                }
            }
            self.opcua = crate::opcua_server::start_from_config(
                sections.opcua.clone(),
                &sections.state_dir,
                &self.handle,
            );
            summary.restarted.push("opcua");
        }
        if sections.metrics != self.sections.metrics {
            if let Some((cancel, task)) = self.metrics.take() {
                cancel.cancel();
                if tokio::time::timeout(STAGE_DEADLINE, task).await.is_err() {
                    warn!("metrics endpoint did not stop within the shutdown deadline");
                }
            }
            self.metrics = start_metrics(sections.metrics, &self.handle, &self.cancel);
            summary.restarted.push("metrics");
        }
        self.sections = sections;
        summary
    }

    /// Stops drivers, then drains the router; each stage within a deadline.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        self.cancel.cancel();
        // The router ends once every sender is gone: the device tasks' and this one.
        drop(self.events);
        let mut late = Vec::new();
        for device in self.devices {
            let Some(task) = device.task else { continue };
            if tokio::time::timeout(STAGE_DEADLINE, task).await.is_err() {
                warn!(device = %device.name, "device did not stop within the shutdown deadline");
                late.push(device.name);
            }
        }
        if tokio::time::timeout(STAGE_DEADLINE, self.router)
            .await
            .is_err()
        {
            warn!("router did not drain within the shutdown deadline");
            late.push("router".to_string());
        }
        // The router was the reactions' only sender; what it queued meets stopped devices
        // and fails at once, so this is short.
        if tokio::time::timeout(STAGE_DEADLINE, self.reactions)
            .await
            .is_err()
        {
            warn!("alarm reactions did not finish within the shutdown deadline");
            late.push("alarm reactions".to_string());
        }
        // After the router drained: the node journals the last samples, commits the store,
        // publishes NDEATH and disconnects.
        if let Some(node) = self.sparkplug {
            if !node.shutdown(crate::sparkplug::SHUTDOWN_DEADLINE).await {
                warn!("Sparkplug edge node did not stop within the shutdown deadline");
                late.push("sparkplug".to_string());
            }
        }
        if let Some((_, task)) = self.metrics {
            if tokio::time::timeout(STAGE_DEADLINE, task).await.is_err() {
                late.push("metrics".to_string());
            }
        }
        // Last: SCADA clients keep seeing values and qualities until everything else stopped.
        if let Some(server) = self.opcua {
            if !server.shutdown().await {
                warn!("OPC UA server did not stop within the shutdown deadline");
                late.push("opcua".to_string());
            }
        }
        if late.is_empty() {
            info!("runtime stopped");
            Ok(())
        } else {
            Err(RuntimeError::ShutdownTimeout(late.join(", ")))
        }
    }
}

/// Runs `config` until `shutdown` resolves, then stops everything in order.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
    let runtime = Runtime::start(config);
    shutdown.await;
    runtime.shutdown().await
}

/// A device's write queue and, when enabled, its task ready to spawn.
fn prepare_device(
    setup: DeviceSetup,
    id: DeviceId,
    slot: u64,
    table: &TagTable,
    events: &mpsc::Sender<DeviceEvent>,
    cancel: &CancellationToken,
) -> (RunningDevice, Option<PendingTask>) {
    let cancel = cancel.child_token();
    let mut device = RunningDevice {
        name: setup.name.clone(),
        fingerprint: setup.fingerprint,
        slot,
        writer: None,
        cancel: cancel.clone(),
        task: None,
    };
    if !setup.enabled {
        info!(device = %setup.name, "device disabled in config");
        mark_out_of_service(table, id);
        return (device, None);
    }
    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
    device.writer = Some(write_tx);
    let task = DeviceTask {
        slot,
        events: events.clone(),
        writes: write_rx,
        cancel,
    };
    (device, Some(PendingTask { task, setup }))
}

struct PendingTask {
    task: DeviceTask,
    setup: DeviceSetup,
}

impl PendingTask {
    fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.task.run(self.setup))
    }
}

async fn stop_device(device: RunningDevice) {
    device.cancel.cancel();
    if let Some(task) = device.task {
        if tokio::time::timeout(STAGE_DEADLINE, task).await.is_err() {
            warn!(device = %device.name, "device did not stop within the shutdown deadline");
        }
    }
    info!(device = %device.name, "device stopped by the reload");
}

fn start_metrics(
    config: Option<MetricsConfig>,
    handle: &Handle,
    cancel: &CancellationToken,
) -> Option<(CancellationToken, JoinHandle<()>)> {
    config.map(|m| {
        let (handle, cancel) = (handle.clone(), cancel.child_token());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            match crate::metrics::bind(m.listen).await {
                Ok(listener) => crate::metrics::serve(listener, handle, cancel).await,
                // Metrics are for watching; the plant's data keeps flowing without them.
                Err(e) => warn!(listen = %m.listen, error = %e, "metrics endpoint not started"),
            }
        });
        (stop, task)
    })
}

fn mark_out_of_service(table: &TagTable, id: DeviceId) {
    let now = Timestamp::now();
    // Alarm tags stay Good and false: no check runs on a disabled device.
    let samples: Vec<Sample> = table
        .device(id)
        .map(|d| d.driver_tag_ids())
        .into_iter()
        .flatten()
        .map(|tag| Sample {
            tag,
            value: None,
            quality: Quality::Bad(BadReason::OutOfService),
            time: now,
        })
        .collect();
    table.apply(&samples, now);
}

struct DeviceTask {
    slot: u64,
    events: mpsc::Sender<DeviceEvent>,
    writes: mpsc::Receiver<WriteRequest>,
    cancel: CancellationToken,
}

impl DeviceTask {
    async fn run(mut self, setup: DeviceSetup) {
        let info = DeviceInfo {
            name: setup.name.clone(),
            poll_interval: setup.poll_interval.get(),
        };
        let mut driver = setup.prepared.build(&info);
        let device = setup.name;
        let mut attempt: u32 = 0;
        loop {
            let connected = tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = driver.connect() => r,
            };
            match connected {
                Ok(()) => {
                    info!(device = %device, "connected");
                    attempt = 0;
                    if !self.send(EventKind::Up).await {
                        break;
                    }
                    match self.poll(&mut *driver, &device, info.poll_interval).await {
                        Some(error) => {
                            warn!(device = %device, error = %error, "link lost; reconnecting");
                            driver.disconnect().await;
                            if !self.send(EventKind::Down(error)).await {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                Err(error) => {
                    // Log the first failure and then every tenth, so a device that stays away
                    // does not fill the journal.
                    if attempt.is_multiple_of(10) {
                        warn!(device = %device, error = %error, attempt, "connect failed");
                    }
                    if attempt == 0 && !self.send(EventKind::Down(error)).await {
                        break;
                    }
                }
            }
            let delay = backoff(setup.reconnect, attempt);
            attempt = attempt.saturating_add(1);
            if !self.idle(delay).await {
                break;
            }
        }
        driver.close().await;
        debug!(device = %device, "device task stopped");
    }

    /// Polls until the link fails (returns the error) or shutdown (returns `None`).
    async fn poll(
        &mut self,
        driver: &mut dyn Driver,
        device: &str,
        period: Duration,
    ) -> Option<LinkError> {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                _ = ticker.tick() => {
                    if let Err(e) = self.read(driver).await {
                        return Some(e);
                    }
                }
                Some(request) = self.writes.recv() => {
                    let result = driver.write(request.local, &request.value).await;
                    let link = match &result {
                        Err(WriteError::Link(e)) => Some(e.clone()),
                        _ => None,
                    };
                    let ok = result.is_ok();
                    if request.reply.send(result).is_err() {
                        debug!(device = %device, "writer gave up before the answer");
                    }
                    if let Some(e) = link {
                        return Some(e);
                    }
                    // Read back at once, so the written value reaches clients now rather
                    // than one poll interval later.
                    if ok {
                        if let Err(e) = self.read(driver).await {
                            return Some(e);
                        }
                    }
                }
            }
        }
    }

    async fn read(&mut self, driver: &mut dyn Driver) -> Result<(), LinkError> {
        let mut readings = Vec::new();
        driver.read(&mut readings).await?;
        self.send(EventKind::Readings(readings, Timestamp::now()))
            .await;
        Ok(())
    }

    /// Sleeps between reconnects, refusing writes meanwhile. `false` on shutdown.
    async fn idle(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = &mut sleep => return true,
                Some(request) = self.writes.recv() => {
                    let refused = Err(WriteError::Link(LinkError::not_connected("device is not connected")));
                    // The writer may have timed out already; nothing to tell it then.
                    let _ = request.reply.send(refused);
                }
            }
        }
    }

    async fn send(&self, kind: EventKind) -> bool {
        self.events
            .send(DeviceEvent {
                slot: self.slot,
                kind,
            })
            .await
            .is_ok()
    }
}

/// `wanted` batches, but no more than [`SAMPLES_IN_FLIGHT`] samples of the largest device's
/// batches (at least [`MIN_QUEUE`]). Sized when the queue is made: a reload that adds a
/// bigger device keeps the depths it finds.
fn queue_depth(table: &TagTable, wanted: usize) -> usize {
    let largest = table
        .devices()
        .iter()
        .map(|d| d.tag_count as usize)
        .max()
        .unwrap_or(1)
        .max(1);
    wanted
        .min((SAMPLES_IN_FLIGHT / largest).max(MIN_QUEUE))
        .max(1)
}

/// `min * 2^attempt`, capped at `max`.
fn backoff(b: Backoff, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    b.min.get().saturating_mul(factor).min(b.max.get())
}

struct Router {
    table: Arc<TagTable>,
    /// The handles' view, swapped here so that it changes exactly between two events.
    shared: Arc<RwLock<Arc<Shared>>>,
    /// Device task slot → its DeviceId in `table`.
    slots: HashMap<u64, DeviceId>,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<ModelEvent>>>>,
    log_values: bool,
    /// Last reported value and quality per tag: the router's own copy, so report-by-exception
    /// needs no lock on the table.
    reported: Vec<Option<(Option<Value>, Quality)>>,
    alarms: alarms::Alarms,
}

impl Router {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<DeviceEvent>,
        mut probes: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        self.reported = vec![None; self.table.tags().len()];
        let mut alarm_tick = tokio::time::interval(ALARM_TICK);
        alarm_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Only the device events decide when the router ends: handles keep the probe
            // channel open for as long as they live.
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                Some(probe) = probes.recv() => {
                    // The prober may have given up already; nothing to tell it then.
                    let _ = probe.send(());
                    continue;
                }
                _ = alarm_tick.tick() => {
                    self.tick_alarms().await;
                    continue;
                }
            };
            let kind = match event.kind {
                EventKind::Swap(swap) => {
                    self.swap(*swap).await;
                    continue;
                }
                kind => kind,
            };
            // A task stopped by a reload may have sent a last event; its device is gone.
            let Some(&device) = self.slots.get(&event.slot) else {
                continue;
            };
            match kind {
                EventKind::Swap(_) => {}
                EventKind::Readings(readings, read_time) => {
                    let samples = self.process(device, &readings, read_time);
                    if !samples.is_empty() {
                        self.publish(ModelEvent::Samples(Arc::new(samples))).await;
                    }
                }
                EventKind::Up => {
                    self.table.update_device(device, |s| {
                        if s.last_error.is_some() {
                            s.reconnects += 1;
                        }
                        s.connected = true;
                    });
                    self.publish(ModelEvent::DeviceUp(device)).await;
                }
                EventKind::Down(error) => {
                    self.table.update_device(device, |s| {
                        s.connected = false;
                        s.last_error = Some(error.to_string());
                    });
                    let quality = error.quality();
                    let now = Timestamp::now();
                    // The driver's tags only: alarm tags keep their state (the checks hold
                    // them while samples are Bad).
                    let readings: Vec<Reading> =
                        (0..self.table.device(device).map_or(0, |d| d.driver_tags))
                            .map(|local| Reading {
                                tag: local,
                                value: None,
                                quality,
                                source_time: Some(now),
                            })
                            .collect();
                    let samples = self.process(device, &readings, now);
                    self.publish(ModelEvent::DeviceDown(device)).await;
                    if !samples.is_empty() {
                        self.publish(ModelEvent::Samples(Arc::new(samples))).await;
                    }
                }
            }
        }
        debug!("router stopped");
    }

    /// Takes over a reload's table: the kept devices' state by path, the new checks, and
    /// the handles' view, then tells the subscribers.
    async fn swap(&mut self, swap: Swap) {
        let table = swap.shared.table.clone();
        table.carry_over(&self.table, &swap.kept);
        let mut reported = vec![None; table.tags().len()];
        for device in table
            .devices()
            .iter()
            .filter(|d| swap.kept.contains(&d.name))
        {
            for id in device.driver_tag_ids() {
                let old = table
                    .tag(id)
                    .and_then(|t| self.table.find_path(&t.path))
                    .and_then(|o| self.reported.get(o.index()).cloned().flatten());
                if let Some(slot) = reported.get_mut(id.index()) {
                    *slot = old;
                }
            }
        }
        // The checks start afresh, so their alarms start normal; an alarm that was Active
        // is told to clear, or clients would hold it Active with nothing left to end it.
        let now = Timestamp::now();
        let mut cleared = Vec::new();
        for device in table.devices() {
            for id in device.tag_ids().filter(|t| device.is_alarm_tag(*t)) {
                let was_active = table
                    .tag(id)
                    .and_then(|t| self.table.find_path(&t.path))
                    .and_then(|o| self.table.state(o))
                    .is_some_and(|s| s.value == Some(Value::Boolean(true)));
                if was_active {
                    cleared.push(Sample {
                        tag: id,
                        value: Some(Value::Boolean(false)),
                        quality: Quality::Good,
                        time: now,
                    });
                }
            }
        }
        for s in &cleared {
            if let Some(slot) = reported.get_mut(s.tag.index()) {
                *slot = Some((s.value.clone(), s.quality));
            }
        }
        self.reported = reported;
        self.alarms.replace(swap.checks);
        self.log_values = swap.log_values;
        self.slots = swap.slots;
        let old = std::mem::replace(&mut self.table, table.clone());
        *self.shared.write() = swap.shared;
        let tag_set_changed = !old.same_tag_set(&table);
        // The reload waits for this, not for the subscribers.
        let _ = swap.done.send(());
        self.publish(ModelEvent::Reloaded(Arc::new(Reloaded {
            table: table.clone(),
            tag_set_changed,
        })))
        .await;
        if !cleared.is_empty() {
            info!(
                alarms = cleared.len(),
                "alarms cleared: the reload restarted their checks"
            );
            table.apply(&cleared, now);
            self.publish(ModelEvent::Samples(Arc::new(cleared))).await;
        }
    }

    fn process(
        &mut self,
        device: DeviceId,
        readings: &[Reading],
        read_time: Timestamp,
    ) -> Vec<Sample> {
        let Some(def) = self.table.device(device) else {
            return Vec::new();
        };
        let (first, count) = (def.first_tag, def.driver_tags);
        let mut samples = Vec::with_capacity(readings.len());
        for r in readings {
            if r.tag >= count {
                warn!(device = %def.name, tag = r.tag, "driver reported a tag it does not have");
                continue;
            }
            let id = TagId(first + r.tag);
            let Some(tag) = self.table.tag(id) else {
                continue;
            };
            let (value, quality) = match &r.value {
                Some(raw) => match tag.from_raw(raw) {
                    Ok(v) => (Some(v), r.quality),
                    Err(e) => {
                        debug!(tag = %tag.path, error = %e, "value does not fit the tag");
                        (None, Quality::Bad(BadReason::ConfigError))
                    }
                },
                None => (None, r.quality),
            };
            let time = r.source_time.unwrap_or(read_time);
            // Before report-by-exception: a flatline must see the unchanged values too.
            if self.alarms.has_checks(id) {
                self.alarms.observe(id, value.as_ref(), quality, time);
            }
            let Some(slot) = self.reported.get_mut(id.index()) else {
                continue;
            };
            let report = match slot {
                None => true,
                Some((old_value, old_quality)) => {
                    *old_quality != quality
                        || match (old_value.as_ref(), value.as_ref()) {
                            (Some(a), Some(b)) => tag.exceeds_deadband(a, b),
                            (None, Some(_)) => true,
                            _ => false,
                        }
                }
            };
            if !report {
                continue;
            }
            let kept = value
                .clone()
                .or_else(|| slot.as_ref().and_then(|s| s.0.clone()));
            *slot = Some((kept, quality));
            if self.log_values {
                match &value {
                    Some(v) => {
                        info!(target: "uaedge::values", device = %def.name, tag = %tag.path.tag, value = %v, units = tag.units.as_deref().unwrap_or(""), quality = %quality, "value")
                    }
                    None => {
                        info!(target: "uaedge::values", device = %def.name, tag = %tag.path.tag, quality = %quality, "no value")
                    }
                }
            }
            samples.push(Sample {
                tag: id,
                value,
                quality,
                time,
            });
        }
        let reported = samples.len() as u64;
        self.table.update_device(device, |s| {
            s.samples_in += readings.len() as u64;
            s.samples_out += reported;
        });
        // Alarm transitions travel in the same batch as the reading that caused them.
        self.alarms
            .drain(&self.table, &mut samples, &mut self.reported);
        self.table.apply(&samples, read_time);
        samples
    }

    /// Time-based alarm transitions, published as a batch of their own.
    async fn tick_alarms(&mut self) {
        let now = Timestamp::now();
        self.alarms.tick(now);
        let mut samples = Vec::new();
        self.alarms
            .drain(&self.table, &mut samples, &mut self.reported);
        if !samples.is_empty() {
            self.table.apply(&samples, now);
            self.publish(ModelEvent::Samples(Arc::new(samples))).await;
        }
    }

    async fn publish(&self, event: ModelEvent) {
        let subscribers: Vec<_> = self.subscribers.lock().clone();
        let mut gone = false;
        for s in &subscribers {
            gone |= s.send(event.clone()).await.is_err();
        }
        if gone {
            self.subscribers.lock().retain(|s| !s.is_closed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            min: uaedge_driver::Duration::from_millis(100),
            max: uaedge_driver::Duration::from_secs(2),
        };
        assert_eq!(backoff(b, 0), Duration::from_millis(100));
        assert_eq!(backoff(b, 3), Duration::from_millis(800));
        assert_eq!(backoff(b, 5), Duration::from_secs(2));
        assert_eq!(backoff(b, 1000), Duration::from_secs(2));
    }
}
