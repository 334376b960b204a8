//! Pushes tag changes to subscriptions as the model reports them.
//!
//! The router already did report-by-exception, so every sample here is a change. Only
//! tags with a monitored item cost more than one hash lookup: the DataValue is built when
//! the subscription cache says someone listens. Deadband filters and sampling intervals are
//! then applied per monitored item by async-opcua.

use std::sync::Arc;
use std::time::Duration;

use opcua::server::SubscriptionCache;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::conditions;
use super::node_manager::ModelNodeManager;
use crate::bus::ModelEvent;

/// Model event batches queued for the notifier; when full, the router waits (the notifier
/// only does in-memory work, so that is brief).
pub const QUEUE: usize = 64;

/// How soon a new monitored item gets the changes it missed while async-opcua took it in,
/// when no sample of its tag comes first (see `fresh_items.rs`).
const HAND_OVER: Duration = Duration::from_millis(10);

/// Also the one that applies reloads to the address space: it learns of them in order with
/// the samples, so it never looks a TagId up in the wrong table.
pub async fn run(
    mut events: mpsc::Receiver<ModelEvent>,
    subscriptions: Arc<SubscriptionCache>,
    manager: Arc<ModelNodeManager>,
    cancel: CancellationToken,
) {
    loop {
        let waiting = manager.has_fresh_items();
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = events.recv() => e,
            _ = tokio::time::sleep(HAND_OVER), if waiting => {
                manager.hand_over(&subscriptions);
                continue;
            }
        };
        match event {
            Some(ModelEvent::Samples(_, batch)) => manager.notify(&subscriptions, &batch),
            Some(ModelEvent::Reloaded(r)) => manager.reload(&r.start),
            Some(ModelEvent::Condition(c)) => conditions::notify(&subscriptions, &manager, &c),
            // Status variables are sampled; their tags' samples follow as their own batch.
            Some(ModelEvent::DeviceUp(_) | ModelEvent::DeviceDown(_)) => {}
            None => break,
        }
    }
    debug!("OPC UA notifier stopped");
}
