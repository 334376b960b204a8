//! One task per enabled device: it owns the driver, connects with backoff, polls, takes
//! writes between polls, and tells the router what it read and how its link is.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uaedge_driver::{DeviceInfo, Driver, LinkError, Timestamp, WriteError};

use super::router::{DeviceEvent, RouterMsg, TaskId};
use super::STAGE_DEADLINE;
use crate::bus::WriteRequest;
use crate::config::DeviceSetup;

/// Writes queued per device.
const WRITE_QUEUE: usize = 16;

/// A device as the supervisor keeps it, running or not.
pub(super) struct RunningDevice {
    pub name: String,
    pub fingerprint: u64,
    pub task_id: TaskId,
    pub writer: Option<mpsc::Sender<WriteRequest>>,
    pub cancel: CancellationToken,
    /// `None` for a disabled device, or one not started yet.
    pub task: Option<JoinHandle<()>>,
}

/// A device's task, ready to spawn once the router knows its [`TaskId`].
pub(super) struct PendingTask {
    task: DeviceTask,
    setup: DeviceSetup,
}

impl PendingTask {
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.task.run(self.setup))
    }
}

/// A device's write queue and, when enabled, its task ready to spawn (`None`: the device
/// is disabled).
pub(super) fn prepare(
    setup: DeviceSetup,
    task_id: TaskId,
    queue: &mpsc::Sender<RouterMsg>,
    cancel: &CancellationToken,
) -> (RunningDevice, Option<PendingTask>) {
    let cancel = cancel.child_token();
    let mut device = RunningDevice {
        name: setup.name.clone(),
        fingerprint: setup.fingerprint,
        task_id,
        writer: None,
        cancel: cancel.clone(),
        task: None,
    };
    if !setup.enabled {
        return (device, None);
    }
    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
    device.writer = Some(write_tx);
    let task = DeviceTask {
        id: task_id,
        queue: queue.clone(),
        writes: write_rx,
        cancel,
        delivered: false,
    };
    (device, Some(PendingTask { task, setup }))
}

/// Stops a device's task, within [`STAGE_DEADLINE`].
pub(super) async fn stop(device: RunningDevice) {
    device.cancel.cancel();
    if let Some(task) = device.task {
        if tokio::time::timeout(STAGE_DEADLINE, task).await.is_err() {
            warn!(device = %device.name, "device did not stop within the shutdown deadline");
        }
    }
    info!(device = %device.name, "device stopped by the reload");
}

struct DeviceTask {
    id: TaskId,
    queue: mpsc::Sender<RouterMsg>,
    writes: mpsc::Receiver<WriteRequest>,
    cancel: CancellationToken,
    /// Whether a read succeeded since the link last came up.
    delivered: bool,
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
        // Links in a row that failed before a single read came through: a device (or an
        // exec driver's program) that accepts and then drops at once backs off as one
        // that refuses does, instead of being hammered every `reconnect.min`. A link that
        // delivered anything starts the backoff afresh, however short it was.
        let mut short_links: u32 = 0;
        // Whether the router has heard that the device is down: a lost link always tells
        // it, a failed connect only the first time (a device away from the start).
        let mut told_down = false;
        loop {
            let connected = tokio::select! {
                _ = self.cancel.cancelled() => break,
                r = driver.connect() => r,
            };
            match connected {
                Ok(()) => {
                    info!(device = %device, "connected");
                    if !self.send(DeviceEvent::Up).await {
                        break;
                    }
                    self.delivered = false;
                    let lost = self.poll(&mut *driver, &device, info.poll_interval).await;
                    if self.delivered {
                        short_links = 0;
                    } else {
                        short_links = short_links.saturating_add(1);
                    }
                    attempt = short_links.saturating_sub(1);
                    match lost {
                        Some(error) => {
                            warn!(device = %device, error = %error, "link lost; reconnecting");
                            driver.disconnect().await;
                            told_down = true;
                            if !self.send(DeviceEvent::Down(error)).await {
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
                    if !told_down {
                        told_down = true;
                        if !self.send(DeviceEvent::Down(error)).await {
                            break;
                        }
                    }
                }
            }
            let delay = setup.reconnect.delay(attempt);
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
                    // A read may wait its driver's whole request timeout: shutdown does not.
                    let cancel = self.cancel.clone();
                    let read = tokio::select! {
                        _ = cancel.cancelled() => return None,
                        r = self.read(driver) => r,
                    };
                    if let Err(e) = read {
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
        self.delivered = true;
        self.send(DeviceEvent::Readings(readings, Timestamp::now()))
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

    async fn send(&self, event: DeviceEvent) -> bool {
        self.queue
            .send(RouterMsg::Device(self.id, event))
            .await
            .is_ok()
    }
}
