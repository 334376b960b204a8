//! The router: readings in from the device tasks, the model out to the subscribers. It is
//! the only writer of the [`TagTable`], so the table and the event stream never disagree.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use uaedge_driver::{BadReason, LinkError, Quality, Reading, Timestamp, Value};

use super::router_checks::Alarms;
use crate::anomaly::CheckSpec;
use crate::bus::{ConditionRequest, ModelEvent, ModelView, Publisher, Reloaded, Start};
use crate::conditions::{ConditionBook, ConditionDef, ConditionEvent, ACKED};
use crate::model::{DeviceId, Sample, TagId, TagTable};

/// How often time-based checks (flatline by duration, `delay`) are judged without samples.
const ALARM_TICK: Duration = Duration::from_secs(1);

/// Names a device task. It stays the same across reloads while the device's
/// [`DeviceId`] (its place in the config) may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TaskId(pub u64);

/// What the router's queue carries.
pub(super) enum RouterMsg {
    /// From a device task.
    Device(TaskId, DeviceEvent),
    /// From [`super::Runtime::reload`]: a new table, between two device events.
    Install(Box<Install>),
}

pub(super) enum DeviceEvent {
    Readings(Vec<Reading>, Timestamp),
    Up,
    Down(LinkError),
}

/// A table for the router, and everything that goes with it.
pub(super) struct Install {
    pub table: Arc<TagTable>,
    /// Each device's write queue (see [`ModelView::writers`]).
    pub writers: Vec<Option<mpsc::Sender<crate::bus::WriteRequest>>>,
    /// The new checks' conditions; those of the same key keep their state.
    pub conditions: Vec<ConditionDef>,
    pub tasks: HashMap<TaskId, DeviceId>,
    /// Devices whose links keep running: their state carries over.
    pub kept: HashSet<String>,
    /// Devices not started: their driver tags are Bad OutOfService.
    pub disabled: Vec<DeviceId>,
    pub checks: Vec<CheckSpec>,
    pub log_values: bool,
    /// Answered once the table is in force: whether the tag set changed.
    pub done: oneshot::Sender<bool>,
}

/// A tag's last reported value and quality; `None` until its first report.
type Reported = Option<(Option<Value>, Quality)>;

pub(super) struct Router {
    table: Arc<TagTable>,
    bus: Publisher,
    tasks: HashMap<TaskId, DeviceId>,
    log_values: bool,
    /// Last reported value and quality per tag: the router's own copy, so report-by-exception
    /// needs no lock on the table.
    reported: Vec<Reported>,
    alarms: Alarms,
    /// The conditions of the table's checks (also in the handles' view).
    conditions: Arc<ConditionBook>,
    /// Condition changes waiting for the batch of their alarm tags to go first.
    changed: Vec<ConditionEvent>,
}

impl Router {
    /// A router over the table the bus starts with; `disabled` devices' tags turn Bad
    /// OutOfService before anyone reads them.
    pub fn new(
        table: Arc<TagTable>,
        bus: Publisher,
        tasks: HashMap<TaskId, DeviceId>,
        disabled: &[DeviceId],
        log_values: bool,
        mut alarms: Alarms,
        conditions: Arc<ConditionBook>,
    ) -> Router {
        mark_out_of_service(&table, disabled);
        // No subscriber yet: the table below says what these events would.
        drop(conditions.clear_idle(|t| on_devices(&table, t, disabled)));
        alarms.resume(&conditions);
        // Before anyone reads the table: alarm and Acked tags as the conditions say.
        let now = Timestamp::now();
        let aligned = alarm_tag_samples(&table, &conditions, |_| false, now);
        table.apply(&aligned, now);
        Router {
            conditions,
            changed: Vec::new(),
            reported: vec![None; table.tags().len()],
            table,
            bus,
            tasks,
            log_values,
            alarms,
        }
    }

    pub async fn run(
        mut self,
        mut queue: mpsc::Receiver<RouterMsg>,
        mut probes: mpsc::Receiver<oneshot::Sender<()>>,
        mut commands: mpsc::Receiver<ConditionRequest>,
    ) {
        let mut alarm_tick = tokio::time::interval(ALARM_TICK);
        alarm_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Only the queue decides when the router ends: handles keep the probe channel
            // open for as long as they live.
            tokio::select! {
                msg = queue.recv() => match msg {
                    Some(RouterMsg::Device(task, event)) => self.on_device(task, event).await,
                    Some(RouterMsg::Install(install)) => self.install(*install).await,
                    None => break,
                },
                Some(request) = commands.recv() => self.on_command(request).await,
                Some(probe) = probes.recv() => {
                    // The prober may have given up already; nothing to tell it then.
                    let _ = probe.send(());
                }
                _ = alarm_tick.tick() => self.tick_alarms().await,
            }
        }
        debug!("router stopped");
    }

    async fn on_device(&mut self, task: TaskId, event: DeviceEvent) {
        // A task stopped by a reload may have sent a last event; its device is gone.
        let Some(&device) = self.tasks.get(&task) else {
            return;
        };
        match event {
            DeviceEvent::Readings(readings, read_time) => {
                let samples = self.take_readings(device, &readings, read_time);
                self.publish_samples(device, samples).await;
                self.publish_conditions().await;
            }
            DeviceEvent::Up => {
                self.table.update_device(device, |s| {
                    if s.last_error.is_some() {
                        s.reconnects += 1;
                    }
                    s.connected = true;
                });
                self.bus.publish(ModelEvent::DeviceUp(device)).await;
            }
            DeviceEvent::Down(error) => {
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
                let samples = self.take_readings(device, &readings, now);
                self.bus.publish(ModelEvent::DeviceDown(device)).await;
                self.publish_samples(device, samples).await;
            }
        }
    }

    /// Takes over a reload's table: the kept devices' state by path, the new checks, and
    /// the handles' view, then tells the subscribers with the states of this moment.
    async fn install(&mut self, install: Install) {
        let table = install.table;
        table.carry_over(&self.table, &install.kept);
        mark_out_of_service(&table, &install.disabled);
        let conditions = Arc::new(self.conditions.successor(install.conditions));
        let mut removed = self.conditions.removed_in(&conditions);
        removed.extend(conditions.clear_idle(|t| on_devices(&table, t, &install.disabled)));
        let now = Timestamp::now();
        let mut reported = self.carried_reports(&table, &install.kept);
        // What clients saw otherwise is told after the swap; what only the new table has
        // otherwise (a restarted device's tags start `false`, a new alarm's Acked `true`) is
        // set before it, so births and reads agree from the start.
        let (cleared, quiet): (Vec<Sample>, Vec<Sample>) = self
            .alarms_to_align(&table, &conditions, now)
            .into_iter()
            .partition(|s| {
                self.saw(&table, s.tag)
                    .is_some_and(|saw| s.value != Some(Value::Boolean(saw)))
            });
        table.apply(&quiet, now);
        for s in cleared.iter().chain(&quiet) {
            if let Some(last) = reported.get_mut(s.tag.index()) {
                *last = Some((s.value.clone(), s.quality));
            }
        }
        let replaced = self.start_replaced_over(&table, &install.kept, now);
        self.reported = reported;
        self.alarms.replace(install.checks);
        self.alarms.resume(&conditions);
        self.log_values = install.log_values;
        self.tasks = install.tasks;
        let old = std::mem::replace(&mut self.table, table.clone());
        self.conditions = conditions.clone();
        self.bus.install(Arc::new(ModelView {
            table: table.clone(),
            writers: install.writers,
            conditions,
        }));
        let tag_set_changed = !old.same_tag_set(&table);
        // The reload waits for this, not for the subscribers.
        let _ = install.done.send(tag_set_changed);
        let reloaded = Reloaded {
            start: Start::of(table),
            tag_set_changed,
        };
        self.bus
            .publish(ModelEvent::Reloaded(Arc::new(reloaded)))
            .await;
        // Conditions the reload took away leave clients' alarm lists; those of disabled
        // devices clear.
        self.changed.extend(removed);
        self.publish_conditions().await;
        // Said as a link loss says it, for subscribers that carry state across the swap
        // (born Sparkplug devices, OPC UA monitored items): the link went down, and the
        // tags are what the new table holds (Bad, OutOfService where disabled).
        for (device, connected, samples) in replaced {
            if connected {
                self.bus.publish(ModelEvent::DeviceDown(device)).await;
            }
            self.publish_samples(device, samples).await;
        }
        if !cleared.is_empty() {
            info!(
                alarms = cleared.len(),
                "alarm tags set to what their conditions say after the reload"
            );
            self.publish_mixed(cleared, now).await;
        }
    }

    /// Report-by-exception's memory for `table`: the kept devices' driver tags carry theirs
    /// over by path, everything else reports its next reading.
    fn carried_reports(&self, table: &TagTable, kept: &HashSet<String>) -> Vec<Reported> {
        let mut reported = vec![None; table.tags().len()];
        for device in table.devices().iter().filter(|d| kept.contains(&d.name)) {
            for id in device.driver_tag_ids() {
                let old = table
                    .tag(id)
                    .and_then(|t| self.table.find_path(&t.path))
                    .and_then(|o| self.reported.get(o.index()).cloned().flatten());
                if let Some(last) = reported.get_mut(id.index()) {
                    *last = old;
                }
            }
        }
        reported
    }

    /// The checks start afresh, Active where their condition carried over Active and
    /// enabled, else normal. Each alarm tag (and Acked tag) is set to what its condition
    /// says where clients saw otherwise (an alarm that was Active and is no more is told
    /// to clear, or clients would hold it Active with nothing left to end it) or where the
    /// new table says otherwise (a restarted device's alarm tags start `false`).
    fn alarms_to_align(
        &self,
        table: &TagTable,
        conditions: &ConditionBook,
        now: Timestamp,
    ) -> Vec<Sample> {
        let was = |path: &crate::model::TagPath| {
            is_true(self.table.find_path(path).and_then(|o| self.table.state(o)))
        };
        alarm_tag_samples(table, conditions, was, now)
    }

    /// Whether clients saw the tag `id` of `table` (a new table) true, by its path in the
    /// table in force; `None` for a tag new to them.
    fn saw(&self, table: &TagTable, id: TagId) -> Option<bool> {
        let old = table.tag(id).and_then(|t| self.table.find_path(&t.path))?;
        Some(is_true(self.table.state(old)))
    }

    /// A sample setting the alarm or Acked tag at `path` to `want`, if the table says
    /// otherwise; report-by-exception's memory follows.
    fn tag_sample(&mut self, path: &str, want: bool, time: Timestamp) -> Option<Sample> {
        let id = self.table.find(path)?;
        let value = Value::Boolean(want);
        let holds = self
            .table
            .state(id)
            .is_some_and(|s| s.value.as_ref() == Some(&value));
        if holds {
            return None;
        }
        if let Some(slot) = self.reported.get_mut(id.index()) {
            *slot = Some((Some(value.clone()), Quality::Good));
        }
        Some(Sample {
            tag: id,
            value: Some(value),
            quality: Quality::Good,
            time,
        })
    }

    /// The Acked tags of the conditions that changed since `from` in `self.changed`.
    fn acked_samples(&mut self, from: usize, time: Timestamp, out: &mut Vec<Sample>) {
        let acked: Vec<(String, bool)> = (self.changed.get(from..).unwrap_or_default().iter())
            .map(|e| (format!("{}{ACKED}", e.def.key), e.state.acked))
            .collect();
        for (path, want) in acked {
            out.extend(self.tag_sample(&path, want, time));
        }
    }

    /// A user's command on a condition: applied, told to every subscriber, answered. The
    /// alarm and Acked tags follow what the condition now shows.
    async fn on_command(&mut self, request: ConditionRequest) {
        let ConditionRequest {
            key,
            command,
            user,
            reply,
        } = request;
        let result = self.conditions.command(&key, &command, &user);
        match &result {
            Ok(event) => {
                info!(alarm = %key, user = %user, command = command.name(), comment = %event.state.comment, "alarm condition changed by a user");
                let now = Timestamp::now();
                let shows = event.state.enabled && event.state.active;
                let samples: Vec<Sample> = [
                    self.tag_sample(&key, shows, now),
                    self.tag_sample(&format!("{key}{ACKED}"), event.state.acked, now),
                ]
                .into_iter()
                .flatten()
                .collect();
                self.publish_mixed(samples, now).await;
                self.changed.push(event.clone());
                self.publish_conditions().await;
            }
            Err(e) => {
                info!(alarm = %key, user = %user, command = command.name(), error = %e, "alarm condition command refused")
            }
        }
        // The caller may have given up; the change stands either way.
        let _ = reply.send(result);
    }

    async fn publish_conditions(&mut self) {
        for event in std::mem::take(&mut self.changed) {
            self.bus
                .publish(ModelEvent::Condition(Arc::new(event)))
                .await;
        }
    }

    /// Devices the reload stopped and started anew (changed, or now disabled): their old
    /// links ended with their old tasks, and their tags start over in `table`. Returns, for
    /// each, whether its old link was up and samples of its driver tags as `table` holds
    /// them, stamped with the time of this swap (and applied, so the table agrees).
    fn start_replaced_over(
        &self,
        table: &TagTable,
        kept: &HashSet<String>,
        now: Timestamp,
    ) -> Vec<(DeviceId, bool, Vec<Sample>)> {
        let replaced = table.devices().iter().filter(|d| !kept.contains(&d.name));
        replaced
            .filter_map(|d| {
                let was = self.table.device_id(&d.name)?;
                let connected = self.table.device_state(was).is_some_and(|s| s.connected);
                let samples: Vec<Sample> = d
                    .driver_tag_ids()
                    .filter_map(|tag| {
                        let quality = table.state(tag)?.quality;
                        Some(Sample {
                            tag,
                            value: None,
                            quality,
                            time: now,
                        })
                    })
                    .collect();
                table.apply(&samples, now);
                Some((d.id, connected, samples))
            })
            .collect()
    }

    /// Scaling, checks and report-by-exception over one device's readings; what is to be
    /// reported (with the alarm transitions they caused) is applied to the table and
    /// returned.
    fn take_readings(
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
            let Some(last) = self.reported.get_mut(id.index()) else {
                continue;
            };
            let report = match last {
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
                .or_else(|| last.as_ref().and_then(|s| s.0.clone()));
            *last = Some((kept, quality));
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
        // Alarm transitions travel in the same batch as the reading that caused them; an
        // alarm tag belongs to the device of the tag its check watches.
        self.drain_alarms(&mut samples, read_time);
        self.table.apply(&samples, read_time);
        samples
    }

    /// The checks' transitions since the last call: alarm tag samples into `samples`,
    /// condition changes into `self.changed` (published after the samples).
    fn drain_alarms(&mut self, samples: &mut Vec<Sample>, time: Timestamp) {
        let from = self.changed.len();
        self.alarms.drain(
            &self.table,
            &self.conditions,
            samples,
            &mut self.reported,
            &mut self.changed,
        );
        self.acked_samples(from, time, samples);
    }

    /// Time-based alarm transitions, published as batches of their own.
    async fn tick_alarms(&mut self) {
        let now = Timestamp::now();
        self.alarms.tick(now);
        let mut samples = Vec::new();
        self.drain_alarms(&mut samples, now);
        self.publish_mixed(samples, now).await;
        self.publish_conditions().await;
    }

    /// Applies and publishes samples of any devices, one batch per device in the order
    /// each device first appears.
    async fn publish_mixed(&mut self, samples: Vec<Sample>, now: Timestamp) {
        if samples.is_empty() {
            return;
        }
        self.table.apply(&samples, now);
        let mut batches: Vec<(DeviceId, Vec<Sample>)> = Vec::new();
        for s in samples {
            let Some(device) = self.table.tag(s.tag).map(|t| t.device) else {
                continue;
            };
            match batches.iter_mut().find(|(d, _)| *d == device) {
                Some((_, batch)) => batch.push(s),
                None => batches.push((device, vec![s])),
            }
        }
        for (device, batch) in batches {
            self.publish_samples(device, batch).await;
        }
    }

    async fn publish_samples(&self, device: DeviceId, samples: Vec<Sample>) {
        if !samples.is_empty() {
            self.bus
                .publish(ModelEvent::Samples(device, Arc::new(samples)))
                .await;
        }
    }
}

/// Samples setting each alarm and Acked tag of `table` to what `conditions` says, where
/// `was` (what clients saw, by path) or the table itself says otherwise.
fn alarm_tag_samples(
    table: &TagTable,
    conditions: &ConditionBook,
    was: impl Fn(&crate::model::TagPath) -> bool,
    now: Timestamp,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    for device in table.devices() {
        for id in device.tag_ids().filter(|t| device.is_alarm_tag(*t)) {
            let Some(def) = table.tag(id) else { continue };
            let want = conditions
                .tag_value(&def.path.to_string(), ACKED)
                .unwrap_or(false);
            if was(&def.path) != want || is_true(table.state(id)) != want {
                samples.push(Sample {
                    tag: id,
                    value: Some(Value::Boolean(want)),
                    quality: Quality::Good,
                    time: now,
                });
            }
        }
    }
    samples
}

/// Whether tag `t` of `table` belongs to one of `devices`.
fn on_devices(table: &TagTable, t: TagId, devices: &[DeviceId]) -> bool {
    table.tag(t).is_some_and(|d| devices.contains(&d.device))
}

fn is_true(state: Option<crate::model::TagState>) -> bool {
    state.is_some_and(|s| s.value == Some(Value::Boolean(true)))
}

/// Disabled devices' driver tags turn Bad OutOfService. Their alarm tags stay Good, and
/// their conditions are cleared (see `ConditionBook::clear_idle`): no check runs on a
/// disabled device.
fn mark_out_of_service(table: &TagTable, devices: &[DeviceId]) {
    let now = Timestamp::now();
    for &id in devices {
        info!(device = %table.device(id).map_or("?", |d| d.name.as_str()), "device disabled in config");
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
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
