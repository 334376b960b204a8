//! The `limits:` section (parsed in `config::opcua_limits`) as async-opcua takes it.

use crate::config::opcua::Limits;

/// Notification messages a subscription may hold for Publish requests yet to come. After
/// a break, the first Publish drains every monitored item's queue at once; this bound must
/// hold that (items × queued values / notifications per message), or the oldest messages
/// are dropped.
const MAX_QUEUED_MESSAGES: usize = 1_000;

/// Lowers the queues of `items` that monitor values (not events) to `max`: async-opcua
/// bounds data and event queues alike, by the larger of the two limits.
pub(super) fn lower_data_queues(items: &mut [&mut opcua::server::CreateMonitoredItem], max: usize) {
    for item in items.iter_mut() {
        if item.item_to_monitor().attribute_id != opcua::types::AttributeId::EventNotifier {
            item.revise_queue_size(max);
        }
    }
}

/// Carries the configured limits into async-opcua's server configuration.
pub(super) fn apply(limits: &Limits, to: &mut opcua::server::Limits) {
    to.max_message_size = limits.max_message_size;
    to.max_chunk_count = limits.max_chunk_count;
    to.max_array_length = limits.max_array_length;
    to.max_string_length = limits.max_string_length;
    to.max_byte_string_length = limits.max_string_length;
    let s = &mut to.subscriptions;
    s.max_notifications_per_publish = limits.max_notifications_per_publish as u64;
    s.max_subscriptions_per_session = limits.max_subscriptions_per_session;
    s.max_monitored_items_per_sub = limits.max_monitored_items_per_subscription;
    // async-opcua has one bound for every item; the larger one is set here, and the node
    // managers lower data items to `max_queue_size` (see `lower_data_queues`).
    s.max_monitored_item_queue_size = limits.max_queue_size.max(limits.max_event_queue_size);
    s.max_queued_notifications = MAX_QUEUED_MESSAGES;
    let op = &mut to.operational;
    op.max_nodes_per_read = limits.max_nodes_per_read;
    op.max_nodes_per_write = limits.max_nodes_per_write;
    op.max_nodes_per_browse = limits.max_nodes_per_browse;
    op.max_references_per_browse_node = limits.max_nodes_per_browse;
    op.max_monitored_items_per_call = limits.max_monitored_items_per_call;
    op.max_nodes_per_translate_browse_paths_to_node_ids = limits.max_nodes_per_browse;
    op.max_nodes_per_register_nodes = limits.max_nodes_per_read;
}
