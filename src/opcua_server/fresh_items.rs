//! Monitored items async-opcua has not taken in yet, and the changes they would miss.
//!
//! async-opcua asks the node managers for a new item's initial value, and only once every
//! node manager has answered does it put the item into its subscription cache. A change
//! pushed in between reaches nobody: the client keeps the initial value, and a tag that
//! changes once more and then holds still shows a stale value for good. So a new item is
//! known here before its initial value is read; what the notifier pushes for its node
//! meanwhile is kept, and handed to the item once the cache lists it, starting after the
//! change the initial value came from (nothing twice, nothing backwards).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use opcua::server::notify::SubscriptionDataNotifier;
use opcua::server::MonitoredItemHandle;
use opcua::types::{AttributeId, DataValue, NodeId};
use tracing::debug;

/// async-opcua lists an item or has it deleted (the call failed) right after the node
/// managers answer; should an item be neither by then, what it kept is dropped.
const GIVE_UP: Duration = Duration::from_secs(10);

struct Item {
    handle: MonitoredItemHandle,
    since: Instant,
    /// The value the item starts with, once read.
    initial: Option<DataValue>,
    /// What the notifier pushed for the node since the item became known, oldest first.
    kept: VecDeque<DataValue>,
}

pub(super) struct FreshItems {
    by_node: HashMap<NodeId, Vec<Item>>,
    /// Changes kept per item, the oldest dropped beyond: the item's own queue bound.
    limit: usize,
}

impl FreshItems {
    pub fn new(limit: usize) -> FreshItems {
        FreshItems {
            by_node: HashMap::new(),
            limit: limit.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// `handle` on `node` is being created; its initial value is not read yet.
    pub fn add(&mut self, node: &NodeId, handle: MonitoredItemHandle) {
        self.by_node.entry(node.clone()).or_default().push(Item {
            handle,
            since: Instant::now(),
            initial: None,
            kept: VecDeque::new(),
        });
    }

    /// The item starts with `initial` (with both timestamps, whatever the client asked).
    pub fn started(&mut self, node: &NodeId, handle: MonitoredItemHandle, initial: DataValue) {
        if let Some(item) = self.item(node, handle) {
            item.initial = Some(initial);
        }
    }

    pub fn remove(&mut self, node: &NodeId, handle: MonitoredItemHandle) {
        if let Some(items) = self.by_node.get_mut(node) {
            items.retain(|i| i.handle != handle);
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
        for item in items {
            if item.kept.len() >= self.limit {
                item.kept.pop_front();
            }
            item.kept.push_back(value.clone());
        }
    }

    /// Sends the items the cache now lists what they missed, through `notifier` and so
    /// before anything newer sent through it; forgets items given up on.
    pub fn hand_over(&mut self, notifier: &mut SubscriptionDataNotifier<'_>) {
        self.by_node.retain(|node, items| {
            let listed: Vec<MonitoredItemHandle> = notifier
                .notify_for(node, AttributeId::Value)
                .map(|batch| batch.entries().map(|(h, _)| *h).collect())
                .unwrap_or_default();
            items.retain_mut(|item| {
                let Some(initial) = item.initial.as_ref() else {
                    return true;
                };
                if listed.contains(&item.handle) {
                    let missed = after(initial, std::mem::take(&mut item.kept));
                    if let Some(mut batch) = notifier.notify_for(node, AttributeId::Value) {
                        for value in missed {
                            batch.data_value_to_item(value, &item.handle);
                        }
                    }
                    return false;
                }
                if item.since.elapsed() > GIVE_UP {
                    debug!(node = %node, item = item.handle.monitored_item_id,
                        "monitored item never served; its kept changes are dropped");
                    return false;
                }
                true
            });
            !items.is_empty()
        });
    }

    fn item(&mut self, node: &NodeId, handle: MonitoredItemHandle) -> Option<&mut Item> {
        self.by_node
            .get_mut(node)?
            .iter_mut()
            .find(|i| i.handle == handle)
    }
}

/// The changes of `kept` the initial value does not hold yet. The table's states, which the
/// initial value is read from, run ahead of the notifier, so the first changes kept may be
/// ones the initial value already shows, ending with the one it came from: everything
/// after that one. When none is it, the initial value is older than all of them.
fn after(initial: &DataValue, kept: VecDeque<DataValue>) -> impl Iterator<Item = DataValue> {
    let skip = kept
        .iter()
        .rposition(|v| same(v, initial))
        .map_or(0, |i| i + 1);
    kept.into_iter().skip(skip)
}

/// The same change: the server timestamp differs with when it was built.
fn same(a: &DataValue, b: &DataValue) -> bool {
    a.value == b.value && a.status == b.status && a.source_timestamp == b.source_timestamp
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
            server_timestamp: Some(DateTime::now()),
            ..Default::default()
        }
    }

    fn values(initial: u32, kept: &[u32]) -> Vec<u32> {
        after(&v(initial), kept.iter().map(|&n| v(n)).collect())
            .filter_map(|d| match d.value {
                Some(Variant::UInt32(n)) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_what_the_initial_value_does_not_show_is_handed_over() {
        assert_eq!(values(5, &[4, 5, 6, 7]), vec![6, 7], "states ran ahead");
        assert_eq!(values(5, &[5]), Vec::<u32>::new(), "nothing new");
        assert_eq!(values(5, &[6, 7]), vec![6, 7], "initial older than all");
        assert_eq!(values(5, &[]), Vec::<u32>::new());
    }

    #[test]
    fn an_item_keeps_at_most_its_limit_newest_first_to_stay() {
        let node = NodeId::new(2, "a");
        let handle = MonitoredItemHandle {
            subscription_id: 1,
            monitored_item_id: 1,
        };
        let mut fresh = FreshItems::new(2);
        fresh.add(&node, handle);
        for n in 1..=5 {
            fresh.keep(&node, &v(n));
        }
        let kept: Vec<_> = (fresh.by_node[&node][0].kept.iter())
            .map(|d| d.source_timestamp)
            .collect();
        assert_eq!(kept, vec![v(4).source_timestamp, v(5).source_timestamp]);
        fresh.remove(&node, handle);
        assert!(fresh.is_empty());
    }
}
