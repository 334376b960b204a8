//! Start and shutdown: the bus, the router, the device tasks and the components, stopped
//! in order, each stage within a deadline.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::components::{Components, Sections};
use super::device_task::{self, PendingTask, RunningDevice};
use super::router::{Router, RouterMsg, TaskId};
use super::router_checks::{self, Alarms};
use super::STAGE_DEADLINE;
use crate::bus::{queue_depth, Handle, ModelView};
use crate::conditions::{self, ConditionBook, Persister};
use crate::config::Config;
use crate::model::DeviceId;

/// Users' condition commands waiting for the router (operators acknowledge by hand).
const COMMAND_QUEUE: usize = 64;

/// Readings in flight from all devices to the router.
const ROUTER_QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("a component did not stop within the shutdown deadline: {0}")]
    ShutdownTimeout(String),
}

/// A running uaedge.
pub struct Runtime {
    pub(super) handle: Handle,
    pub(super) cancel: CancellationToken,
    /// Kept for the reload's tables and for devices started then; dropped at shutdown so
    /// the router drains and ends.
    pub(super) queue: mpsc::Sender<RouterMsg>,
    pub(super) last_task: TaskId,
    /// In config order.
    pub(super) devices: Vec<RunningDevice>,
    router: JoinHandle<()>,
    reactions: JoinHandle<()>,
    pub(super) components: Components,
    /// Writes condition states to the state directory; closed after the router.
    persister: Option<Arc<Persister>>,
}

impl Runtime {
    /// Starts the router, the components and every enabled device. Must be called inside a
    /// tokio runtime.
    pub fn start(mut config: Config) -> Runtime {
        let table = Arc::new(config.take_tag_table());
        let cancel = CancellationToken::new();
        let (queue, queue_rx) = mpsc::channel(queue_depth(&table, ROUTER_QUEUE));
        let mut devices = Vec::with_capacity(config.devices.len());
        let mut pending = Vec::new();
        let mut tasks = HashMap::new();
        let mut disabled = Vec::new();
        let mut last_task = TaskId(0);
        for (i, setup) in std::mem::take(&mut config.devices).into_iter().enumerate() {
            let id = DeviceId(u16::try_from(i).unwrap_or(u16::MAX));
            last_task = TaskId(last_task.0 + 1);
            tasks.insert(last_task, id);
            let (device, task) = device_task::prepare(setup, last_task, &queue, &cancel);
            match task {
                Some(task) => pending.push((devices.len(), task)),
                None => disabled.push(id),
            }
            devices.push(device);
        }
        let (persister, restored) = open_conditions(&config.state_dir);
        let book = Arc::new(ConditionBook::new(
            std::mem::take(&mut config.conditions),
            &restored,
            persister.clone(),
        ));
        let view = ModelView {
            table: table.clone(),
            writers: devices.iter().map(|d| d.writer.clone()).collect(),
            conditions: book.clone(),
        };
        let (probe_tx, probe_rx) = mpsc::channel(1);
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (handle, publisher) = Handle::new(view, probe_tx, command_tx);
        // Before the web server starts, which shows it.
        handle.status().update_gateway(|g| {
            g.node.clone_from(&config.node.name);
            g.config_file.clone_from(&config.file);
            g.config_sha256.clone_from(&config.sha256);
        });
        let (reaction_tx, reaction_rx) = mpsc::channel(router_checks::REACTION_QUEUE);
        let alarms = Alarms::new(
            std::mem::take(&mut config.checks),
            handle.status().alarms.clone(),
            reaction_tx,
        );
        let router = Router::new(
            table,
            publisher,
            tasks,
            &disabled,
            config.log.values,
            alarms,
            book,
        );
        let router = tokio::spawn(router.run(queue_rx, probe_rx, command_rx));
        let reactions = tokio::spawn(router_checks::react(handle.clone(), reaction_rx));
        // Before the devices: the components' subscriptions see every first event.
        let components = Components::start(Sections::take(&mut config), &handle, &cancel);
        start_tasks(&mut devices, pending);
        Runtime {
            handle,
            cancel,
            queue,
            last_task,
            devices,
            router,
            reactions,
            components,
            persister,
        }
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The OPC UA server, when the config enables one and it started.
    pub fn opcua(&self) -> Option<&crate::opcua_server::OpcUaServer> {
        self.components.opcua()
    }

    /// Stops drivers, then drains the router, then the components; each stage within a
    /// deadline.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        self.cancel.cancel();
        // The router ends once every sender is gone: the device tasks' and this one.
        drop(self.queue);
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
        self.components.shutdown(&mut late).await;
        if let Some(p) = self.persister {
            // The router is gone: no more changes; what it queued is written now.
            if tokio::task::spawn_blocking(move || p.close())
                .await
                .is_err()
            {
                late.push("condition states".to_string());
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

/// The condition states kept in `state_dir`, and the writer that keeps them. Without a
/// usable state directory, conditions still work but start afresh at every start.
fn open_conditions(
    state_dir: &std::path::Path,
) -> (
    Option<Arc<Persister>>,
    HashMap<String, conditions::ConditionState>,
) {
    let file = state_dir.join(conditions::STATE_FILE);
    if let Err(e) = std::fs::create_dir_all(state_dir) {
        warn!(dir = %state_dir.display(), error = %e, "no state directory: alarm conditions will not survive a restart");
        return (None, HashMap::new());
    }
    match conditions::open_store(&file) {
        Ok((p, states)) => {
            info!(file = %file.display(), conditions = states.len(), "alarm condition states loaded");
            (Some(p), states)
        }
        Err(e) => {
            warn!(error = %e, "alarm conditions will not survive a restart");
            (None, HashMap::new())
        }
    }
}

/// Spawns the tasks prepared for `devices[at]`, once the router knows their ids.
pub(super) fn start_tasks(devices: &mut [RunningDevice], pending: Vec<(usize, PendingTask)>) {
    for (at, task) in pending {
        if let Some(d) = devices.get_mut(at) {
            d.task = Some(task.spawn());
        }
    }
}
