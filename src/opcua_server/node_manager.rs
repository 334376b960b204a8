//! The node manager that serves the model. It stores no node: Browse, Read,
//! TranslateBrowsePaths and monitored items are answered from the [`TagTable`] through
//! [`Space`] (see `address_space.rs`), tag values straight from the table, the Status and
//! Runtime variables from the device and Sparkplug state; writes go to the devices.
//!
//! [`TagTable`]: crate::model::TagTable

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use opcua::server::address_space::{
    is_supported_data_encoding, read_node_value, validate_node_read, AccessLevel, EventNotifier,
    ReferenceDirection,
};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::{
    AddReferenceResult, BrowseNode, BrowsePathItem, DynNodeManager, ExternalReference,
    NodeManagerBuilder, ParsedReadValueId, RequestContext, ServerContext, SyncSampler,
    TypeTreeReadContext, WriteNode,
};
use opcua::server::{CreateMonitoredItem, MonitoredItemHandle, SubscriptionCache};
use opcua::types::{
    AttributeId, DataValue, MonitoringMode, NodeId, NumericRange, ReferenceDescription, StatusCode,
    TimestampsToReturn, Variant,
};
use tracing::{debug, info};
use uaedge_driver::{Timestamp, WriteError};

use super::address_space::{self, Space, Target, UaNode};
use super::auth::Authenticator;
use super::convert::{self, apply_timestamps, status_only};
use super::fresh_items::FreshItems;
use super::live_values::{live, LiveSampler};
use super::root_events::RootEvents;
use crate::bus::{Handle, Start};
use crate::conditions::ConditionBook;
use crate::history::HistorySlot;
use crate::model::{Sample, TagId, TagTable};

pub struct ModelManagerBuilder {
    pub namespace_uri: String,
    pub handle: Handle,
    pub auth: Arc<Authenticator>,
    /// `limits.max_queue_size` (see `limits.rs`).
    pub data_queue_max: usize,
    pub history: HistorySlot,
}

impl NodeManagerBuilder for ModelManagerBuilder {
    fn build(self: Box<Self>, context: ServerContext) -> Arc<DynNodeManager> {
        let ns = context
            .type_tree
            .write()
            .namespaces_mut()
            .add_namespace(&self.namespace_uri);
        let table = self.handle.table();
        info!(
            namespace = %self.namespace_uri,
            ns,
            devices = table.devices().len(),
            tags = table.tags().len(),
            "OPC UA address space ready"
        );
        Arc::new(ModelNodeManager {
            namespace: NamespaceMetadata {
                namespace_uri: self.namespace_uri,
                namespace_index: ns,
                ..Default::default()
            },
            table: parking_lot::RwLock::new(table.clone()),
            handle: self.handle,
            auth: self.auth,
            samplers: SyncSampler::new(),
            watched: parking_lot::Mutex::new(Watched {
                nodes: HashMap::new(),
                tags: HashMap::new(),
                items: HashSet::new(),
                fresh: FreshItems::default(),
                view: Start::of(table.clone()),
            }),
            data_queue_max: self.data_queue_max,
            root_events: RootEvents::default(),
            history: self.history,
        })
    }
}

/// The tag nodes someone monitors, so that a sample costs a NodeId only when it will be
/// sent (see [`ModelNodeManager::notify`]).
struct Watched {
    /// Monitored items per tag NodeId. Kept across reloads: a tag that goes and comes back
    /// with a later reload is served again.
    nodes: HashMap<NodeId, u32>,
    /// The monitored tags of the current table.
    tags: HashMap<TagId, NodeId>,
    /// The tag value items fed from model events: only these are counted in `nodes` and
    /// given values on being enabled (an item refused its value is not).
    items: HashSet<MonitoredItemHandle>,
    /// Items being created, until async-opcua serves them.
    fresh: FreshItems,
    /// The states as the notifier has pushed them so far. The table's own run ahead of it
    /// (the router applies a batch before the notifier gets it), so a new item's initial
    /// value is read here: the changes pushed after it are then exactly the ones it lacks.
    view: Start,
}

pub struct ModelNodeManager {
    pub(super) namespace: NamespaceMetadata,
    /// The model the address space shows: the table of `Watched::view`, kept here too for
    /// the requests that read it without taking that lock. It changes only in
    /// [`ModelNodeManager::reload`], called once before the notifier runs and then by the
    /// notifier in order with the samples, so a TagId of a sample it pushes is never looked
    /// up in the wrong table.
    table: parking_lot::RwLock<Arc<TagTable>>,
    pub(super) handle: Handle,
    auth: Arc<Authenticator>,
    /// Polls the few Status and Runtime variables someone monitors; tags are pushed from
    /// model events instead (see `notify.rs`).
    pub(super) samplers: SyncSampler,
    watched: parking_lot::Mutex<Watched>,
    pub(super) data_queue_max: usize,
    /// Event items on uaedge's root object (see `root_events.rs`).
    pub(super) root_events: RootEvents,
    /// The historian, while one runs (see `history_read.rs`).
    history: HistorySlot,
}

/// A monitored item on a tag being created (see [`ModelNodeManager::watch`]).
pub(super) struct NewItem<'a> {
    pub node: &'a NodeId,
    pub handle: MonitoredItemHandle,
    /// Created disabled, it takes no change: none is kept for it.
    pub disabled: bool,
    pub queue_size: usize,
}

/// What is left of a Browse when a client asked for fewer references than there are.
pub(super) struct BrowseRest {
    pub(super) references: VecDeque<ReferenceDescription>,
}

impl ModelNodeManager {
    pub fn namespace_index(&self) -> u16 {
        self.namespace.namespace_index
    }

    pub(super) fn handle(&self) -> &Handle {
        &self.handle
    }

    pub(super) fn history(&self) -> &HistorySlot {
        &self.history
    }

    pub fn root_events(&self) -> &RootEvents {
        &self.root_events
    }

    pub fn table(&self) -> Arc<TagTable> {
        self.table.read().clone()
    }

    /// Shows `start`'s table from now on, and follows the stream its states are the start
    /// of: called with the notifier's subscription's start before the notifier runs, then
    /// by the notifier with each reload's.
    /// Nothing is rebuilt: nodes are worked out from the table on each request, so sessions
    /// and monitored items on untouched tags carry on.
    pub fn reload(&self, start: &Start) {
        let mut watched = self.watched.lock();
        watched.view.clone_from(start);
        let table = start.table.clone();
        if Arc::ptr_eq(&self.table.read(), &table) {
            return;
        }
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let tags = watched
            .nodes
            .keys()
            .filter_map(|n| match space.node(n) {
                Some(UaNode::Tag(t)) => Some((t, n.clone())),
                _ => None,
            })
            .collect();
        watched.tags = tags;
        info!(
            devices = table.devices().len(),
            tags = table.tags().len(),
            "OPC UA address space follows the reloaded config"
        );
        *self.table.write() = table;
    }

    /// Hands the changes in `batch` to the monitored items of their tags.
    pub fn notify(&self, subscriptions: &SubscriptionCache, batch: &[Sample]) {
        let mut watched = self.watched.lock();
        let now = Timestamp::now();
        watched.view.apply_samples(batch, now);
        if watched.tags.is_empty() && watched.fresh.is_empty() {
            return;
        }
        let mut notifier = subscriptions.data_notifier();
        let Watched { tags, fresh, .. } = &mut *watched;
        fresh.hand_over(&mut notifier);
        for s in batch {
            let Some(node) = tags.get(&s.tag) else {
                continue;
            };
            let items = notifier.notify_for(node, AttributeId::Value);
            if items.is_none() && fresh.is_empty() {
                continue;
            }
            let value = convert::data_value(s.value.as_ref(), s.quality, s.time, now);
            if !fresh.is_empty() {
                fresh.keep(node, &value);
            }
            if let Some(mut items) = items {
                items.data_value(value);
            }
        }
        // Dropping the notifier hands the values to the subscriptions.
    }

    /// Whether items being created wait for [`ModelNodeManager::hand_over`].
    pub fn has_fresh_items(&self) -> bool {
        !self.watched.lock().fresh.is_empty()
    }

    /// Sends new items that async-opcua now serves the changes they missed, when no
    /// sample comes to do it.
    pub fn hand_over(&self, subscriptions: &SubscriptionCache) {
        let mut watched = self.watched.lock();
        if !watched.fresh.is_empty() {
            watched.fresh.hand_over(&mut subscriptions.data_notifier());
        }
    }

    /// Follows SetMonitoringMode on tag items, after async-opcua switched them. Disabled,
    /// an item takes no change: none is kept for it any more. Enabled, it reports its tag's
    /// value at once (Part 4, 5.12.1.3: the first sample as soon as possible); async-opcua
    /// only switches the mode, and a disabled item took no value, so one created disabled
    /// would otherwise stay empty until its tag changes. What a new item kept goes first,
    /// so the value is never older than one it has. An item enabled again gets the value
    /// only if it changed meanwhile (async-opcua drops one equal to its last).
    pub(super) fn mode_set<'a>(
        &self,
        subscriptions: &SubscriptionCache,
        mode: MonitoringMode,
        items: impl Iterator<Item = (&'a NodeId, MonitoredItemHandle)>,
    ) {
        let mut watched = self.watched.lock();
        if mode == MonitoringMode::Disabled {
            for (node, handle) in items {
                watched.fresh.remove(node, handle);
            }
            return;
        }
        let mut notifier = subscriptions.data_notifier();
        watched.fresh.hand_over(&mut notifier);
        let table = watched.view.table.clone();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        for (node, handle) in items {
            if !watched.items.contains(&handle) {
                continue;
            }
            let Some(UaNode::Tag(tag)) = space.node(node) else {
                continue;
            };
            let (Some(state), Some(mut batch)) = (
                watched.view.states.get(tag.index()),
                notifier.notify_for(node, AttributeId::Value),
            ) else {
                continue;
            };
            batch.data_value_to_item(convert::state_value(state), &handle);
        }
    }

    /// Counts new monitored items on tag nodes and gives their initial values (with both
    /// timestamps), read from the notifier's view; the changes pushed after that are kept
    /// for the items that will send them until async-opcua serves them (see
    /// `fresh_items.rs`). TagIds are looked up under the lock, in the table of the moment,
    /// so a reload in between cannot leave a stale one; a node that is no tag by then
    /// starts with BadNodeIdUnknown.
    pub(super) fn watch<'a>(&self, items: impl Iterator<Item = NewItem<'a>>) -> Vec<DataValue> {
        let mut watched = self.watched.lock();
        let table = watched.view.table.clone();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let mut initial = Vec::new();
        for item in items {
            let node = item.node;
            *watched.nodes.entry(node.clone()).or_default() += 1;
            watched.items.insert(item.handle);
            let tag = match space.node(node) {
                Some(UaNode::Tag(t)) => t,
                _ => {
                    initial.push(status_only(StatusCode::BadNodeIdUnknown));
                    continue;
                }
            };
            watched.tags.insert(tag, node.clone());
            initial.push(match watched.view.states.get(tag.index()) {
                Some(state) => convert::state_value(state),
                None => status_only(StatusCode::BadNodeIdUnknown),
            });
            if !item.disabled {
                watched.fresh.add(node, item.handle, item.queue_size);
            }
        }
        initial
    }

    /// Forgets a deleted Value item; one not fed from model events (a Status variable's, a
    /// tag's refused its value) changes nothing.
    pub(super) fn unwatch(&self, node: &NodeId, handle: MonitoredItemHandle) {
        let mut watched = self.watched.lock();
        watched.fresh.remove(node, handle);
        if !watched.items.remove(&handle) {
            return;
        }
        let Some(count) = watched.nodes.get_mut(node) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count > 0 {
            return;
        }
        watched.nodes.remove(node);
        let table = watched.view.table.clone();
        let conditions = self.handle.conditions();
        if let Some(UaNode::Tag(t)) = self.space(&table, &conditions).node(node) {
            if watched.tags.get(&t) == Some(node) {
                watched.tags.remove(&t);
            }
        }
    }

    pub(super) fn space<'a>(
        &self,
        table: &'a TagTable,
        conditions: &'a ConditionBook,
    ) -> Space<'a> {
        Space {
            ns: self.namespace_index(),
            table,
            conditions,
            historizing: self.history.read().is_some(),
        }
    }

    /// Reads one attribute of one of our nodes, except a tag's value, which it only checks
    /// and leaves to [`tag_value`] so that a Read of many tags takes the table's state lock
    /// once, and nothing else is done under it.
    pub(super) fn read_one(
        &self,
        context: &RequestContext,
        space: &Space,
        n: &ParsedReadValueId,
        max_age: f64,
        ttr: TimestampsToReturn,
    ) -> Answer {
        let Some(node) = space.node(&n.node_id) else {
            return Answer::Now(status_only(StatusCode::BadNodeIdUnknown));
        };
        if let (AttributeId::Value, UaNode::Tag(tag)) = (n.attribute_id, &node) {
            // The hot path (a SCADA poll of thousands of tags) builds no node.
            let Some(def) = space.table.tag(*tag) else {
                return Answer::Now(status_only(StatusCode::BadNodeIdUnknown));
            };
            let access = context.authenticator.effective_user_access_level(
                &context.token,
                address_space::access_level(def),
                &n.node_id,
            );
            let refused = if !access.contains(AccessLevel::CURRENT_READ) {
                Some(StatusCode::BadUserAccessDenied)
            } else if !is_supported_data_encoding(&n.data_encoding) {
                Some(StatusCode::BadDataEncodingInvalid)
            } else if n.index_range != NumericRange::None {
                Some(StatusCode::BadIndexRangeNoData)
            } else {
                None
            };
            return match refused {
                Some(code) => Answer::Now(status_only(code)),
                None => Answer::TagValue(*tag),
            };
        }
        let Some(built) = space.build(&node) else {
            return Answer::Now(status_only(StatusCode::BadNodeIdUnknown));
        };
        if let Err(e) = validate_node_read(&built, context, n) {
            return Answer::Now(status_only(e));
        }
        Answer::Now(match node {
            UaNode::StatusVar(..) | UaNode::RuntimeVar(_)
                if n.attribute_id == AttributeId::Value =>
            {
                if n.index_range == NumericRange::None {
                    apply_timestamps(live(&self.handle, space.table, &node), ttr)
                } else {
                    status_only(StatusCode::BadIndexRangeNoData)
                }
            }
            _ => read_node_value(&built, context, n, max_age, ttr),
        })
    }

    pub(super) fn browse_one(
        &self,
        space: &Space,
        type_tree: &dyn TypeTreeReadContext,
        b: &mut BrowseNode,
    ) {
        let type_tree = type_tree.get();
        let refs = match space.node(b.node_id()) {
            Some(node) => {
                b.set_status(StatusCode::Good);
                space.references(&node)
            }
            None => space.core_references(b.node_id()),
        };
        let mut rest = VecDeque::new();
        for r in refs {
            let wanted = match r.direction {
                ReferenceDirection::Forward => b.allows_forward(),
                ReferenceDirection::Inverse => b.allows_inverse(),
            };
            if !wanted || !b.allows_reference_type(&r.kind.into(), type_tree) {
                continue;
            }
            let meta = match r.target {
                Target::Ours(target) => space.metadata(&target),
                Target::Core(id) => match Space::core_metadata(&id) {
                    Some(meta) => meta,
                    // The core namespace's node manager names it.
                    None => {
                        let external =
                            ExternalReference::new(id.into(), r.kind.into(), r.direction);
                        b.push_external_reference(external);
                        continue;
                    }
                },
            };
            let desc = meta.into_ref_desc(r.direction == ReferenceDirection::Forward, r.kind);
            if let AddReferenceResult::Full(d) = b.add(type_tree, desc) {
                rest.push_back(d);
            }
        }
        if !rest.is_empty() {
            b.set_next_continuation_point(Box::new(BrowseRest { references: rest }));
        }
    }

    /// Follows a relative path as far as our nodes go; a step that leaves them (to the
    /// core namespace) is handed back unmatched, for the node manager that owns it.
    pub(super) fn translate_one(
        &self,
        space: &Space,
        type_tree: &dyn TypeTreeReadContext,
        context: &RequestContext,
        item: &mut BrowsePathItem,
    ) {
        let type_tree = type_tree.get();
        if let Some(name) = item.unmatched_browse_name() {
            let matched = space
                .node(item.node_id())
                .is_some_and(|n| name.is_null() || space.names(&n).0 == *name);
            if !matched {
                return;
            }
            item.set_browse_name_matched(context.current_node_manager_index);
        }
        let start = item.node_id().clone();
        let mut current: Vec<NodeId> = vec![start];
        let mut found = Vec::new();
        for (depth, element) in item.path().iter().enumerate() {
            let depth = depth + 1;
            let mut next = Vec::new();
            let mut seen = HashSet::new();
            for id in &current {
                let refs = match space.node(id) {
                    Some(node) if !element.is_inverse && !element.target_name.is_null() => space
                        .forward_named(&node, &element.target_name)
                        .unwrap_or_else(|| space.references(&node)),
                    Some(node) => space.references(&node),
                    None => space.core_references(id),
                };
                for r in refs {
                    let forward = r.direction == ReferenceDirection::Forward;
                    if forward == element.is_inverse {
                        continue;
                    }
                    let kind: NodeId = r.kind.into();
                    let wanted = &element.reference_type_id;
                    let kind_matches = wanted.is_null()
                        || kind == *wanted
                        || element.include_subtypes && type_tree.is_subtype_of(&kind, wanted);
                    if !kind_matches {
                        continue;
                    }
                    match &r.target {
                        Target::Ours(node) => {
                            if !element.target_name.is_null()
                                && space.names(node).0 != element.target_name
                            {
                                continue;
                            }
                            let id = space.node_id(node);
                            if seen.insert(id.clone()) {
                                found.push((id.clone(), depth, None));
                                next.push(id);
                            }
                        }
                        Target::Core(id) => {
                            found.push((id.clone(), depth, Some(element.target_name.clone())))
                        }
                    }
                }
            }
            current = next;
        }
        for (id, depth, unmatched) in found {
            item.add_element(id, depth, unmatched);
        }
    }

    pub(super) async fn write_one(&self, context: &RequestContext, write: &mut WriteNode) {
        let (tag, value) = match self.check_write(context, write) {
            Ok(ok) => ok,
            Err(code) => {
                write.set_status(code);
                return;
            }
        };
        let user = super::auth::Authenticator::user_name(&context.token);
        let code = match self.handle.write_as(&tag, &value, &user).await {
            Ok(()) => StatusCode::Good,
            Err(WriteError::NotWritable) => StatusCode::BadNotWritable,
            Err(WriteError::TypeMismatch(_)) => StatusCode::BadTypeMismatch,
            // The device answered and said no (e.g. a Modbus exception).
            Err(WriteError::Rejected(_)) => StatusCode::BadDeviceFailure,
            Err(WriteError::Link(_)) => StatusCode::BadCommunicationError,
        };
        write.set_status(code);
    }

    fn check_write(
        &self,
        context: &RequestContext,
        write: &WriteNode,
    ) -> Result<(String, uaedge_driver::Value), StatusCode> {
        let w = write.value();
        let table = self.table();
        let conditions = self.handle.conditions();
        let space = self.space(&table, &conditions);
        let tag = match space.node(&w.node_id) {
            Some(UaNode::Tag(tag)) => tag,
            Some(_) => return Err(StatusCode::BadNotWritable),
            None => return Err(StatusCode::BadNodeIdUnknown),
        };
        if w.attribute_id != AttributeId::Value {
            return Err(StatusCode::BadNotWritable);
        }
        let def = table.tag(tag).ok_or(StatusCode::BadNodeIdUnknown)?;
        if !def.writable {
            debug!(tag = %def.path, "write refused: tag is read-only");
            return Err(StatusCode::BadNotWritable);
        }
        if !self.auth.may_write(&context.token) {
            info!(tag = %def.path, user = %context.token.0, "write refused: user may not write");
            return Err(StatusCode::BadUserAccessDenied);
        }
        if w.index_range != NumericRange::None {
            return Err(StatusCode::BadWriteNotSupported);
        }
        let value = w
            .value
            .value
            .as_ref()
            .and_then(convert::model_value)
            .ok_or(StatusCode::BadTypeMismatch)?;
        Ok((def.path.to_string(), value))
    }

    /// Sets up one monitored item on one of our nodes, with the status codes async-opcua's
    /// in-memory node manager gives: the initial value, then who feeds it. A tag's value
    /// item is left to the caller (`true`), which starts them all in one go (see
    /// [`ModelNodeManager::watch`]).
    pub(super) fn create_one(
        &self,
        context: &RequestContext,
        space: &Space,
        item: &mut CreateMonitoredItem,
    ) -> bool {
        let target = item.item_to_monitor().clone();
        let Some(node) = space.node(&target.node_id) else {
            item.set_status(StatusCode::BadNodeIdUnknown);
            return false;
        };
        if target.attribute_id != AttributeId::Value {
            // A client that may not read the attribute, or asks for it in a way it cannot
            // be read, gets the reason as the item's status.
            let Some(built) = space.build(&node) else {
                item.set_status(StatusCode::BadNodeIdUnknown);
                return false;
            };
            if let Err(e) = validate_node_read(&built, context, &target) {
                item.set_status(e);
                return false;
            }
        }
        let value = match self.read_one(context, space, &target, 0.0, item.timestamps_to_return()) {
            Answer::Now(value) => value,
            Answer::TagValue(_) => return true,
        };
        if target.attribute_id == AttributeId::EventNotifier {
            // uaedge raises no events on its nodes.
            let notifier = match value.value {
                Some(Variant::Byte(b)) => EventNotifier::from_bits_truncate(b),
                _ => EventNotifier::empty(),
            };
            item.set_status(if notifier.contains(EventNotifier::SUBSCRIBE_TO_EVENTS) {
                StatusCode::Good
            } else {
                StatusCode::BadAttributeIdInvalid
            });
            return false;
        }
        if value.status() != StatusCode::BadAttributeIdInvalid {
            item.set_initial_value(value);
        }
        item.set_status(StatusCode::Good);
        // Other attributes do not change while the table stands; a tag refused its value
        // (a user without read access) has nothing to be fed.
        if let (AttributeId::Value, UaNode::StatusVar(..) | UaNode::RuntimeVar(_)) =
            (target.attribute_id, &node)
        {
            let sampler = LiveSampler {
                handle: self.handle.clone(),
                ns: self.namespace_index(),
                node: target.node_id.clone(),
            };
            let interval = Duration::from_secs_f64(item.sampling_interval().max(0.0) / 1000.0);
            self.samplers.add_sampler(
                target.node_id,
                AttributeId::Value,
                move || Some(sampler.sample()),
                item.monitoring_mode(),
                item.handle(),
                interval,
            );
        }
        false
    }
}

/// What [`ModelNodeManager::read_one`] found.
pub(super) enum Answer {
    Now(DataValue),
    /// A tag's value, checked and ready to be read from the table's states.
    TagValue(TagId),
}
