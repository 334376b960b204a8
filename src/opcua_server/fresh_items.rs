//! Monitored items async-opcua has not taken in yet, and the changes they would miss.
//!
//! async-opcua asks the node managers for a new item's initial value, and only once every
//! node manager has answered does it put the item into its subscription cache. A change
//! pushed in between reaches nobody: the client keeps the initial value, and a tag that
//! changes once more and then holds still shows a stale value for good. So a new item is
//! known here from the moment its initial value is read (from the notifier's own view of
//! the states, under the lock the notifier pushes under: see `node_manager.rs`). What the
//! notifier pushes for its node from then on is kept, and handed to the item, in order,
//! once the cache lists it: exactly the changes after its initial value.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use opcua::server::notify::SubscriptionDataNotifier;
use opcua::server::MonitoredItemHandle;
use opcua::types::{AttributeId, DataValue, NodeId};
use tracing::warn;

/// async-opcua lists an item, or has it deleted (the call failed), right after the node
/// managers answer; should an item be neither by then, what it kept is dropped.
const GIVE_UP: Duration = Duration::from_secs(10);

struct Item {
    since: Instant,
    /// The item's own queue size: more than that would not reach the client at once
    /// either; the oldest are dropped here.
    limit: usize,
    /// What the notifier pushed for the node since the item's initial value, oldest first.
    kept: VecDeque<DataValue>,
}

#[derive(Default)]
pub(super) struct FreshItems {
    by_node: HashMap<NodeId, HashMap<MonitoredItemHandle, Item>>,
}

impl FreshItems {
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// `handle` on `node` starts with the value of the notifier's view at this moment.
    pub fn add(&mut self, node: &NodeId, handle: MonitoredItemHandle, queue_size: usize) {
        self.by_node.entry(node.clone()).or_default().insert(
            handle,
            Item {
                since: Instant::now(),
                limit: queue_size.max(1),
                kept: VecDeque::new(),
            },
        );
    }

    pub fn remove(&mut self, node: &NodeId, handle: MonitoredItemHandle) {
        if let Some(items) = self.by_node.get_mut(node) {
            items.remove(&handle);
            if items.is_empty() {
                self.by_node.remove(node);
            }
        }
    }

    /// Keeps a change of `node` for its items. Called after [`FreshItems::hand_over`] with
    /// the same notifier, so none of them is in the cache: its read lock keeps it so.
    pub fn keep(&mut self, node: &NodeId, value: &DataValue) {
        let Some(items) = self.by_node.get_mut(node) else {
            return;
        };
        for item in items.values_mut() {
            if item.kept.len() >= item.limit {
                item.kept.pop_front();
            }
            item.kept.push_back(value.clone());
        }
    }

    /// Sends the items the cache now lists what they missed, through `notifier` and so
    /// before anything newer sent through it; forgets items given up on.
    pub fn hand_over(&mut self, notifier: &mut SubscriptionDataNotifier<'_>) {
        if self.by_node.is_empty() {
            return;
        }
        self.by_node.retain(|node, items| {
            let Some(mut batch) = notifier.notify_for(node, AttributeId::Value) else {
                give_up_stale(node, items);
                return !items.is_empty();
            };
            let listed: HashSet<MonitoredItemHandle> = batch.entries().map(|(h, _)| *h).collect();
            items.retain(|handle, item| {
                if !listed.contains(handle) {
                    return true;
                }
                for value in item.kept.drain(..) {
                    batch.data_value_to_item(value, handle);
                }
                false
            });
            give_up_stale(node, items);
            !items.is_empty()
        });
        if self.by_node.is_empty() {
            // A burst of many new items leaves a large, empty table; every batch would
            // walk it.
            self.by_node = HashMap::new();
        }
    }
}

fn give_up_stale(node: &NodeId, items: &mut HashMap<MonitoredItemHandle, Item>) {
    items.retain(|handle, item| {
        let stale = item.since.elapsed() > GIVE_UP;
        if stale {
            // Also an item disabled before it was ever served: the cache lists only enabled
            // ones, and a disabled item takes no data anyway.
            warn!(node = %node, subscription = handle.subscription_id, item = handle.monitored_item_id,
                kept = item.kept.len(), "a new monitored item was never served (or was disabled at once); the changes kept for it are dropped");
        }
        !stale
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{DateTime, StatusCode, Variant};

    fn v(n: u32) -> DataValue {
        DataValue {
            value: Some(Variant::UInt32(n)),
            status: Some(StatusCode::Good),
            source_timestamp: Some(DateTime::from(i64::from(n) * 10_000)),
            ..Default::default()
        }
    }

    #[test]
    fn an_item_keeps_at_most_its_queue_size_the_newest() {
        let node = NodeId::new(2, "a");
        let handle = |id| MonitoredItemHandle {
            subscription_id: 1,
            monitored_item_id: id,
        };
        let mut fresh = FreshItems::default();
        fresh.add(&node, handle(1), 2);
        fresh.add(&node, handle(2), 10);
        for n in 1..=5 {
            fresh.keep(&node, &v(n));
        }
        let kept = |id| -> Vec<DataValue> {
            fresh.by_node[&node][&handle(id)]
                .kept
                .iter()
                .cloned()
                .collect()
        };
        assert_eq!(kept(1), vec![v(4), v(5)]);
        assert_eq!(kept(2), (1..=5).map(v).collect::<Vec<_>>());
        fresh.remove(&node, handle(1));
        fresh.remove(&node, handle(2));
        assert!(fresh.is_empty());
    }
}
