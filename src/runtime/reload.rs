//! A new config applied in place (see the module docs of [`super`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::components::Sections;
use super::device_task::{self, RunningDevice};
use super::router::{Install, RouterMsg, TaskId};
use super::supervisor::{start_tasks, Runtime};
use crate::config::Config;
use crate::model::DeviceId;

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
    /// Applies `config` in place: untouched devices keep their links, the table is swapped
    /// with their state carried over, and only a changed section's component restarts.
    pub async fn reload(&mut self, mut config: Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let table = Arc::new(config.take_tag_table());
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
                device_task::stop(device).await;
                summary.stopped.push(name);
            }
        }
        let mut tasks = HashMap::new();
        let mut disabled = Vec::new();
        let mut pending = Vec::new();
        for (i, setup) in std::mem::take(&mut config.devices).into_iter().enumerate() {
            let id = DeviceId(u16::try_from(i).unwrap_or(u16::MAX));
            match old.remove(&setup.name) {
                Some(device) => {
                    tasks.insert(device.task_id, id);
                    summary.kept.push(device.name.clone());
                    self.devices.push(device);
                }
                None => {
                    self.last_task = TaskId(self.last_task.0 + 1);
                    tasks.insert(self.last_task, id);
                    summary.started.push(setup.name.clone());
                    // Its write queue exists now, so the new view's writers are complete;
                    // the task starts after the swap.
                    let (device, task) =
                        device_task::prepare(setup, self.last_task, &self.queue, &self.cancel);
                    match task {
                        Some(task) => pending.push((self.devices.len(), task)),
                        None => disabled.push(id),
                    }
                    self.devices.push(device);
                }
            }
        }
        let sections = Sections::take(&mut config);
        let sparkplug_replaced = self
            .components
            .replace_changed_sparkplug(&sections, &self.handle)
            .await;
        let (done, swapped) = oneshot::channel();
        let install = Install {
            table,
            writers: self.devices.iter().map(|d| d.writer.clone()).collect(),
            conditions: std::mem::take(&mut config.conditions),
            tasks,
            kept: keep,
            disabled,
            checks: std::mem::take(&mut config.checks),
            log_values: config.log.values,
            done,
        };
        // A failed send hands the install (and its `done`) back: drop it before waiting, or
        // the wait would never end.
        let sent = self
            .queue
            .send(RouterMsg::Install(Box::new(install)))
            .await
            .is_ok();
        match swapped.await {
            Ok(changed) if sent => {
                summary.tag_set_changed = changed;
                // Only now is it the config in force.
                self.handle.status().update_gateway(|g| {
                    g.node.clone_from(&config.node.name);
                    g.config_file.clone_from(&config.file);
                    g.config_sha256.clone_from(&config.sha256);
                    g.applied = std::time::SystemTime::now();
                });
            }
            _ => warn!("router gone; the new table was not applied"),
        }
        // After the swap: their first events must find their ids.
        start_tasks(&mut self.devices, pending);
        debug!(
            kept = ?summary.kept,
            started = ?summary.started,
            stopped = ?summary.stopped,
            tag_set_changed = summary.tag_set_changed,
            "reload plan applied"
        );
        summary.restarted = self
            .components
            .restart_changed(sections, sparkplug_replaced, &self.handle, &self.cancel)
            .await;
        summary
    }
}
