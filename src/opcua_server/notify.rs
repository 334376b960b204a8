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
use crate::model::Sample;
use crate::runtime::ModelEvent;

/// Model event batches queued for the notifier; when full, the router waits (the notifier
/// only does in-memory work, so that is brief).
pub const QUEUE: usize = 64;

pub async fn run(
    mut events: mpsc::Receiver<ModelEvent>,
    subscriptions: Arc<SubscriptionCache>,
    index: Arc<Index>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = events.recv() => e,
        };
        match event {
            Some(ModelEvent::Samples(batch)) => push(&subscriptions, &index, &batch),
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
