//! Pushes tag changes to subscriptions as the model reports them.
//!
//! The router already did report-by-exception, so every sample here is a change. Only
//! tags with a monitored item cost more than one hash lookup: the DataValue is built when
//! the subscription cache says someone listens. Deadband filters and sampling intervals are
//! then applied per monitored item by async-opcua.

use std::sync::Arc;

use opcua::server::SubscriptionCache;
use opcua::types::AttributeId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use uaedge_driver::Timestamp;

use super::address_space::Index;
use super::convert;
use super::node_manager::ModelNodeManager;
use crate::model::Sample;
use crate::runtime::{Handle, ModelEvent};

/// Model event batches queued for the notifier; when full, the router waits (the notifier
/// only does in-memory work, so that is brief).
pub const QUEUE: usize = 64;

/// Also the one that applies reloads to the address space: it learns of them in order with
/// the samples, so it never looks a TagId up in the wrong table.
pub async fn run(
    mut events: mpsc::Receiver<ModelEvent>,
    subscriptions: Arc<SubscriptionCache>,
    manager: Arc<ModelNodeManager>,
    handle: Handle,
    cancel: CancellationToken,
) {
    // A reload between building the address space and subscribing came before our
    // subscription; catch up with it (applying the same table twice is a no-op).
    manager
        .inner()
        .reload(manager.address_space(), handle.table());
    let mut index = manager.inner().view().index.clone();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = events.recv() => e,
        };
        match event {
            Some(ModelEvent::Samples(batch)) => push(&subscriptions, &index, &batch),
            Some(ModelEvent::Reloaded(r)) => {
                manager
                    .inner()
                    .reload(manager.address_space(), r.table.clone());
                index = manager.inner().view().index.clone();
            }
            // Status variables are sampled; their tags' samples follow as their own batch.
            Some(ModelEvent::DeviceUp(_) | ModelEvent::DeviceDown(_)) => {}
            None => break,
        }
    }
    debug!("OPC UA notifier stopped");
}

fn push(subscriptions: &SubscriptionCache, index: &Index, batch: &[Sample]) {
    let now = Timestamp::now();
    let mut notifier = subscriptions.data_notifier();
    for s in batch {
        let Some(node) = index.tag_nodes.get(s.tag.index()) else {
            continue;
        };
        if let Some(mut items) = notifier.notify_for(node, AttributeId::Value) {
            items.data_value(convert::data_value(
                s.value.as_ref(),
                s.quality,
                s.time,
                now,
            ));
        }
    }
    // Dropping the notifier hands the values to the subscriptions.
}
