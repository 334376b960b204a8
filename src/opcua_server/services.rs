//! The OPC UA services the model's node manager answers: async-opcua's [`NodeManager`]
//! trait, each service a pass over its nodes that hands each one to `node_manager.rs`
//! (Browse, Read, Write, monitored items) or to the history modules (HistoryRead).

use std::time::Duration;

use async_trait::async_trait;
use opcua::server::address_space::DefaultTypeTree;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::{
    BrowseNode, BrowsePathItem, ExternalReferenceRequest, HistoryNode, MonitoredItemRef,
    MonitoredItemUpdateRef, NodeManager, ReadNode, RequestContext, ServerContext, WriteNode,
};
use opcua::server::CreateMonitoredItem;
use opcua::types::{
    AttributeId, BrowseDescriptionResultMask, ExpandedNodeId, MonitoringMode, NodeId,
    ReadAtTimeDetails, ReadEventDetails, ReadProcessedDetails, ReadRawModifiedDetails, StatusCode,
    TimestampsToReturn,
};

use super::address_space::UaNode;
use super::convert::{apply_timestamps, tag_value};
use super::node_manager::{Answer, BrowseRest, ModelNodeManager, NewItem};

#[async_trait]
impl NodeManager for ModelNodeManager {
    fn owns_node(&self, id: &NodeId) -> bool {
        id.namespace == self.namespace_index()
    }

    fn name(&self) -> &str {
        "uaedge"
    }

    fn namespaces_for_user(&self, _context: &RequestContext) -> Vec<NamespaceMetadata> {
        vec![self.namespace.clone()]
    }

    async fn init(&self, _type_tree: &mut DefaultTypeTree, context: ServerContext) {
        self.root_events.set_type_tree(context.type_tree.clone());
        let rate = context
            .info
            .config
            .limits
            .subscriptions
            .min_sampling_interval_ms
            .max(10.0);
        self.samplers.run(
            Duration::from_secs_f64(rate / 1000.0),
            context.subscriptions.clone(),
        );
    }

    async fn resolve_external_references(
        &self,
        _context: &RequestContext,
        items: &mut [&mut ExternalReferenceRequest],
    ) {
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        for item in items {
            if let Some(node) = space.node(item.node_id()) {
                let mut meta = space.metadata(&node);
                if !item
                    .result_mask()
                    .contains(BrowseDescriptionResultMask::RESULT_MASK_TYPE_DEFINITION)
                {
                    meta.type_definition = ExpandedNodeId::null();
                }
                item.set(meta);
            }
        }
    }

    async fn browse(
        &self,
        context: &RequestContext,
        nodes_to_browse: &mut [BrowseNode],
    ) -> Result<(), StatusCode> {
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let type_tree = context.get_type_tree_for_user();
        for b in nodes_to_browse.iter_mut() {
            if b.node_id().is_null() {
                continue;
            }
            if let Some(mut rest) = b.take_continuation_point::<BrowseRest>() {
                b.set_status(StatusCode::Good);
                while b.remaining() > 0 {
                    let Some(desc) = rest.references.pop_front() else {
                        break;
                    };
                    // Filtered when the browse began.
                    b.add_unchecked(desc);
                }
                if !rest.references.is_empty() {
                    b.set_next_continuation_point(rest);
                }
            } else {
                self.browse_one(&space, type_tree.as_ref(), b);
            }
        }
        Ok(())
    }

    async fn translate_browse_paths_to_node_ids(
        &self,
        context: &RequestContext,
        nodes: &mut [&mut BrowsePathItem],
    ) -> Result<(), StatusCode> {
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let type_tree = context.get_type_tree_for_user();
        for item in nodes {
            self.translate_one(&space, type_tree.as_ref(), context, item);
        }
        Ok(())
    }

    async fn read(
        &self,
        context: &RequestContext,
        max_age: f64,
        ttr: TimestampsToReturn,
        nodes_to_read: &mut [&mut ReadNode],
    ) -> Result<(), StatusCode> {
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let mut tags = Vec::new();
        for (i, n) in nodes_to_read.iter_mut().enumerate() {
            match self.read_one(context, &space, n.node(), max_age, ttr) {
                Answer::Now(value) => n.set_result(value),
                Answer::TagValue(tag) => tags.push((i, tag)),
            }
        }
        // One lock on the table for all the tag values: a Read of 10,000 tags is one pass.
        if !tags.is_empty() {
            table.states(|states| {
                for (i, tag) in tags {
                    if let Some(n) = nodes_to_read.get_mut(i) {
                        n.set_result(tag_value(states, tag, ttr));
                    }
                }
            });
        }
        Ok(())
    }

    async fn history_read_raw_modified(
        &self,
        context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.history_raw(context, details, nodes, timestamps_to_return)
            .await
    }

    /// The Server object's event history is the alarm conditions', all of which are here.
    fn owns_server_events(&self) -> bool {
        true
    }

    async fn history_read_events(
        &self,
        context: &RequestContext,
        details: &ReadEventDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.history_events(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_processed(
        &self,
        context: &RequestContext,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.history_processed(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_at_time(
        &self,
        context: &RequestContext,
        details: &ReadAtTimeDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.history_at_time(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn write(
        &self,
        context: &RequestContext,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        for write in nodes_to_write.iter_mut() {
            self.write_one(context, write).await;
        }
        Ok(())
    }

    async fn create_monitored_items(
        &self,
        context: &RequestContext,
        items: &mut [&mut CreateMonitoredItem],
    ) -> Result<(), StatusCode> {
        super::limits::lower_data_queues(items, self.data_queue_max);
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let mut tags = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            if self.create_one(context, &space, item) {
                tags.push(i);
            }
            let target = item.item_to_monitor();
            let on_root = target.attribute_id == AttributeId::EventNotifier
                && matches!(space.node(&target.node_id), Some(UaNode::Root));
            if on_root && item.status_code().is_good() {
                let h = item.handle();
                (self.root_events).add(context.session_id, h.subscription_id, h.monitored_item_id);
            }
        }
        if tags.is_empty() {
            return Ok(());
        }
        // Model events push their changes (see `notify`), from just after the values the
        // items start with (see `fresh_items.rs`).
        let initial = self.watch(
            tags.iter()
                .filter_map(|i| items.get(*i))
                .map(|item| NewItem {
                    node: &item.item_to_monitor().node_id,
                    handle: item.handle(),
                    disabled: item.monitoring_mode() == MonitoringMode::Disabled,
                    queue_size: item.queue_size(),
                }),
        );
        // One value for each item given, in order (every index in `tags` is in `items`).
        for (i, value) in tags.iter().zip(initial) {
            if let Some(item) = items.get_mut(*i) {
                let ttr = item.timestamps_to_return();
                item.set_initial_value(apply_timestamps(value, ttr));
                item.set_status(StatusCode::Good);
            }
        }
        Ok(())
    }

    async fn modify_monitored_items(
        &self,
        _context: &RequestContext,
        items: &[&MonitoredItemUpdateRef],
    ) {
        for it in items {
            if it.attribute() != AttributeId::Value {
                continue;
            }
            self.samplers.update_sampler(
                it.node_id(),
                it.attribute(),
                it.handle(),
                Duration::from_secs_f64(it.update().revised_sampling_interval.max(0.0) / 1000.0),
            );
        }
    }

    async fn set_monitoring_mode(
        &self,
        context: &RequestContext,
        mode: MonitoringMode,
        items: &[&MonitoredItemRef],
    ) {
        for it in items {
            if it.attribute() == AttributeId::Value {
                self.samplers
                    .set_sampler_mode(it.node_id(), it.attribute(), it.handle(), mode);
            }
        }
        // async-opcua has switched the items already: it calls us after.
        let values = items
            .iter()
            .filter(|it| it.attribute() == AttributeId::Value);
        self.mode_set(
            &context.subscriptions,
            mode,
            values.map(|it| (it.node_id(), it.handle())),
        );
    }

    async fn delete_monitored_items(&self, _context: &RequestContext, items: &[&MonitoredItemRef]) {
        for it in items {
            if it.attribute() == AttributeId::EventNotifier {
                let h = it.handle();
                self.root_events
                    .remove(h.subscription_id, h.monitored_item_id);
            }
            if it.attribute() != AttributeId::Value {
                continue;
            }
            self.samplers
                .remove_sampler(it.node_id(), it.attribute(), it.handle());
            self.unwatch(it.node_id(), it.handle());
        }
    }
}
