//! The way into the running model, and its one writer's side.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use uaedge_driver::{LinkError, Value, WriteError};

use super::event::{queue_depth, ModelEvent, Start};
use super::status::{AlarmCounts, ConnectionStats, SparkplugStatus, Status};
use crate::conditions::{ConditionBook, ConditionCommand, ConditionError, ConditionEvent, ACKED};
use crate::model::TagTable;

/// How long a write may wait for its device (queued behind a slow poll, say).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The model as a [`Handle`] sees it, swapped as one by a reload: the table and the ways
/// to its devices always belong together.
pub struct ModelView {
    pub table: Arc<TagTable>,
    /// Each device's write queue, by [`crate::model::DeviceId`]; `None` while disabled.
    pub writers: Vec<Option<mpsc::Sender<WriteRequest>>>,
    /// The alarm conditions of the table's checks.
    pub conditions: Arc<ConditionBook>,
}

/// A user's command on an alarm condition, on its way to the router.
pub struct ConditionRequest {
    /// The condition's key: its alarm tag's path, `device/tag/Alarms/check`.
    pub key: String,
    pub command: ConditionCommand,
    /// Who asks: logged, and recorded as the condition's ClientUserId.
    pub user: String,
    pub reply: oneshot::Sender<Result<ConditionEvent, ConditionError>>,
}

/// A write on its way to a device's task.
pub struct WriteRequest {
    /// The tag's index within its device.
    pub local: u32,
    /// Already unscaled to the device's raw type.
    pub value: Value,
    pub reply: oneshot::Sender<Result<(), WriteError>>,
}

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<ModelEvent>>>>;

/// A cheap, cloneable way into the running model: read it, write to devices, subscribe.
/// It follows reloads: each call sees the table in force at that moment.
#[derive(Clone)]
pub struct Handle {
    view: Arc<RwLock<Arc<ModelView>>>,
    subscribers: Subscribers,
    status: Arc<Status>,
    probes: mpsc::Sender<oneshot::Sender<()>>,
    commands: mpsc::Sender<ConditionRequest>,
}

/// The router's side of the bus: it alone changes the view and sends events, so both
/// change between the same two events.
pub struct Publisher {
    view: Arc<RwLock<Arc<ModelView>>>,
    subscribers: Subscribers,
}

impl Handle {
    /// A bus over `view`, the handle into it and its publisher. `probes` and `commands`
    /// reach whoever answers [`Handle::probe`] and [`Handle::condition`] (the router).
    pub fn new(
        view: ModelView,
        probes: mpsc::Sender<oneshot::Sender<()>>,
        commands: mpsc::Sender<ConditionRequest>,
    ) -> (Handle, Publisher) {
        let view = Arc::new(RwLock::new(Arc::new(view)));
        let subscribers = Subscribers::default();
        let publisher = Publisher {
            view: view.clone(),
            subscribers: subscribers.clone(),
        };
        let handle = Handle {
            view,
            subscribers,
            status: Arc::default(),
            probes,
            commands,
        };
        (handle, publisher)
    }

    /// The table in force now. Hold the `Arc` for a consistent view across several calls;
    /// a reload replaces it (subscribers learn when from [`ModelEvent::Reloaded`]).
    pub fn table(&self) -> Arc<TagTable> {
        self.view.read().table.clone()
    }

    /// The alarm conditions in force now.
    pub fn conditions(&self) -> Arc<ConditionBook> {
        self.view.read().conditions.clone()
    }

    /// Acknowledges, confirms, comments, enables or disables the condition `key` (its
    /// alarm tag's path) on behalf of `user`; the event that tells of it, once every
    /// subscriber has it. Whether `user` may do so is the caller's to decide.
    pub async fn condition(
        &self,
        key: &str,
        command: ConditionCommand,
        user: &str,
    ) -> Result<ConditionEvent, ConditionError> {
        let (reply, answer) = oneshot::channel();
        let request = ConditionRequest {
            key: key.to_string(),
            command,
            user: user.to_string(),
            reply,
        };
        self.commands
            .send(request)
            .await
            .map_err(|_| ConditionError::Stopped)?;
        answer.await.map_err(|_| ConditionError::Stopped)?
    }

    /// Where components report how they are doing.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// The Sparkplug edge node's live status (MQTT connected, primary host, backlog), when
    /// the config has a `sparkplug:` section.
    pub fn sparkplug_status(&self) -> Option<Arc<SparkplugStatus>> {
        self.status.sparkplug()
    }

    /// Connections to the OPC UA port: accepted, open, failed before a secure channel.
    pub fn opcua_connections(&self) -> &Arc<ConnectionStats> {
        &self.status.opcua_connections
    }

    /// Anomaly alarms: configured, Active now, transitions since start.
    pub fn alarm_counts(&self) -> AlarmCounts {
        self.status.alarms.snapshot()
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

    /// Subscribes like [`Handle::subscribe`] and says where the stream starts. Made in
    /// this order, an event published in between is both in the states and in the stream,
    /// which applying it again leaves as it was; the other order would lose it. A reload
    /// that swaps the table in between would leave events of the old table queued ahead of
    /// its `Reloaded`, to be applied to the new one: then it subscribes again (the queue
    /// let go is forgotten at the next event).
    pub fn subscribe_from(&self, capacity: usize) -> (mpsc::Receiver<ModelEvent>, Start) {
        loop {
            let before = self.table();
            let events = self.subscribe(capacity);
            let start = Start::of(self.table());
            if Arc::ptr_eq(&before, &start.table) {
                return (events, start);
            }
        }
    }

    /// Writes a value to the tag at `path` (`device/tag`). The value may be of any type that
    /// converts to the tag's type; scaling is undone before it reaches the driver.
    ///
    /// By path, not by TagId: an id belongs to one table, and a caller's table may trail
    /// the one in force (a reload between looking the tag up and writing would otherwise
    /// send the value to whatever tag the id names now). The path is resolved here, in the
    /// same view as the device's write queue.
    pub async fn write(&self, path: &str, value: &Value) -> Result<(), WriteError> {
        self.write_as(path, value, "uaedge").await
    }

    /// [`Handle::write`] on behalf of `user`, who is recorded where the write is an
    /// alarm's acknowledgement: `true` written to an alarm's `…/Acked` tag acknowledges it
    /// (as the Acknowledge method does, without an EventId); `false` is refused.
    pub async fn write_as(&self, path: &str, value: &Value, user: &str) -> Result<(), WriteError> {
        let view = self.view.read().clone();
        let def = view
            .table
            .find(path)
            .and_then(|id| view.table.tag(id))
            .ok_or_else(|| WriteError::Rejected(format!("no tag {path}")))?;
        if !def.writable {
            return Err(WriteError::NotWritable);
        }
        let raw = def
            .to_raw(value)
            .map_err(|e| WriteError::TypeMismatch(e.to_string()))?;
        let is_alarm_tag = view
            .table
            .device(def.device)
            .is_some_and(|d| d.is_alarm_tag(def.id));
        if let (true, Some(key)) = (is_alarm_tag, path.strip_suffix(ACKED)) {
            return self.acknowledge_by_write(key, &raw, user).await;
        }
        let sender = view
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

impl Handle {
    async fn acknowledge_by_write(
        &self,
        key: &str,
        value: &Value,
        user: &str,
    ) -> Result<(), WriteError> {
        if *value != Value::Boolean(true) {
            return Err(WriteError::Rejected(
                "write true to acknowledge; an acknowledgement cannot be taken back".into(),
            ));
        }
        let command = ConditionCommand::Acknowledge {
            event_id: None,
            comment: None,
        };
        match self.condition(key, command, user).await {
            // What the writer asked for holds.
            Ok(_) | Err(ConditionError::AlreadyAcked) => Ok(()),
            Err(ConditionError::Stopped) => Err(WriteError::Link(LinkError::not_connected(
                "the runtime is stopping",
            ))),
            Err(e) => Err(WriteError::Rejected(e.to_string())),
        }
    }
}

impl Publisher {
    /// Replaces what handles see, between two events.
    pub fn install(&self, view: Arc<ModelView>) {
        *self.view.write() = view;
    }

    /// Sends `event` to every subscriber, waiting for the full ones; forgets the gone.
    pub async fn publish(&self, event: ModelEvent) {
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
