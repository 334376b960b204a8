//! Alarms & Conditions on the OPC UA side: condition events to event subscribers, and
//! Part 9's methods (Acknowledge, Confirm, AddComment, Enable, Disable, ConditionRefresh
//! and ConditionRefresh2).
//!
//! Events go out from the Server object and down the notifier hierarchy
//! Server → uaedge → device: a monitored item on any of them receives the conditions
//! below it, filtered by its EventFilter (async-opcua evaluates select and where clauses
//! per item). The device's and the Server's items are notified through async-opcua's
//! subscription cache, the root's through `root_events.rs`.
//!
//! Part 9's methods are the type's methods (`AcknowledgeableConditionType.Acknowledge`,
//! i=9111, and so on), called with the condition's NodeId as the object. Those NodeIds
//! are namespace 0's, so async-opcua routes the calls to its core node manager, which
//! knows no conditions and answers BadNotSupported. [`CoreWithConditions`] wraps that
//! manager: it answers the condition methods itself and hands everything else to it
//! unchanged. (Upstream, a hook on the core manager for method calls on type methods
//! would make the wrapper unnecessary.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use opcua::nodes::{BaseEventType, Event};
use opcua::server::address_space::DefaultTypeTree;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{CoreNodeManagerBuilder, InMemoryNodeManagerBuilder};
use opcua::server::node_manager::{
    AddNodeItem, AddReferenceItem, BrowseNode, BrowsePathItem, DeleteNodeItem, DeleteReferenceItem,
    DynNodeManager, ExternalReferenceRequest, HistoryNode, HistoryUpdateNode, MethodCall,
    MonitoredItemRef, MonitoredItemUpdateRef, NodeManager, NodeManagerBuilder, NodeManagersRef,
    QueryRequest, ReadNode, RegisterNodeItem, RequestContext, ServerContext, WriteNode,
};
use opcua::server::{CreateMonitoredItem, SubscriptionCache};
use opcua::types::{
    AttributeId, ByteString, DateTime, ExpandedNodeId, MonitoringMode, NodeId, ObjectTypeId,
    ReadAnnotationDataDetails, ReadAtTimeDetails, ReadEventDetails, ReadProcessedDetails,
    ReadRawModifiedDetails, StatusCode, TimestampsToReturn, UAString, Variant,
};
use tracing::info;

use super::address_space::{root_node_id, tag_node_id};
use super::auth::Authenticator;
use super::condition_event::{condition_key, server_object, UaConditionEvent};
use super::node_manager::ModelNodeManager;
use crate::bus::Handle;
use crate::conditions::{ConditionCommand, ConditionError, ConditionEvent, EventId};

// Part 9's methods, by their NodeIds in namespace 0.
const ENABLE: u32 = 9027;
const DISABLE: u32 = 9028;
const ADD_COMMENT: u32 = 9029;
const ACKNOWLEDGE: u32 = 9111;
const CONFIRM: u32 = 9113;
const CONDITION_REFRESH: u32 = 3875;
const CONDITION_REFRESH_2: u32 = 12912;

fn condition_method(id: &NodeId) -> Option<u32> {
    let m = id.as_u32()?;
    (id.namespace == 0
        && [
            ENABLE,
            DISABLE,
            ADD_COMMENT,
            ACKNOWLEDGE,
            CONFIRM,
            CONDITION_REFRESH,
            CONDITION_REFRESH_2,
        ]
        .contains(&m))
    .then_some(m)
}

/// Sends `event` to the event monitored items on the condition's device and on the
/// Server object (async-opcua adds the Server's to the device's, once each), and on
/// uaedge's root.
pub fn notify(
    subscriptions: &SubscriptionCache,
    manager: &ModelNodeManager,
    event: &ConditionEvent,
) {
    let ns = manager.namespace_index();
    let ev = UaConditionEvent::new(event, ns);
    let device = tag_node_id(ns, &event.def.device);
    subscriptions.notify_events(std::iter::once((&ev as &dyn Event, &device)));
    manager.root_events().notify(subscriptions, &ev);
}

/// Whether an event monitored item on `notifier` receives the conditions of `device`.
fn reaches(notifier: &NodeId, ns: u16, device: &str) -> bool {
    *notifier == server_object()
        || *notifier == root_node_id(ns)
        || *notifier == tag_node_id(ns, device)
}

/// Builds async-opcua's core node manager inside [`CoreWithConditions`].
pub struct CoreWithConditionsBuilder {
    pub handle: Handle,
    pub auth: Arc<Authenticator>,
    /// `limits.max_queue_size`, for the core's data items (see `limits.rs`).
    pub data_queue_max: usize,
    /// While a historian runs, the Server's history capabilities say so.
    pub history: crate::history::HistorySlot,
}

impl NodeManagerBuilder for CoreWithConditionsBuilder {
    fn build(self: Box<Self>, context: ServerContext) -> Arc<DynNodeManager> {
        let node_managers = context.node_managers.clone();
        let core: Box<dyn NodeManagerBuilder> =
            Box::new(InMemoryNodeManagerBuilder::new(CoreNodeManagerBuilder));
        Arc::new(CoreWithConditions {
            core: core.build(context),
            handle: self.handle,
            auth: self.auth,
            node_managers,
            data_queue_max: self.data_queue_max,
            history: self.history,
        })
    }
}

/// async-opcua's core node manager, with Part 9's condition methods answered; see the
/// module docs.
pub struct CoreWithConditions {
    core: Arc<DynNodeManager>,
    handle: Handle,
    auth: Arc<Authenticator>,
    node_managers: NodeManagersRef,
    data_queue_max: usize,
    history: crate::history::HistorySlot,
}

impl CoreWithConditions {
    /// uaedge's namespace index, once its node manager is there.
    fn ns(&self) -> Option<u16> {
        self.node_managers
            .get_of_type::<ModelNodeManager>()
            .map(|m| m.namespace_index())
    }

    async fn call_one(&self, context: &RequestContext, method: u32, call: &mut MethodCall) {
        let Some(ns) = self.ns() else {
            call.set_status(StatusCode::BadInternalError);
            return;
        };
        let status = match method {
            CONDITION_REFRESH | CONDITION_REFRESH_2 => {
                refresh(context, ns, &self.handle, method, call.arguments())
            }
            _ => self.command(context, ns, method, call).await,
        };
        call.set_status(status);
    }

    async fn command(
        &self,
        context: &RequestContext,
        ns: u16,
        method: u32,
        call: &mut MethodCall,
    ) -> StatusCode {
        let Some(key) = condition_key(ns, call.object_id()) else {
            // Part 9: not a condition, or the ConditionType itself.
            return StatusCode::BadNodeIdUnknown;
        };
        let command = match method {
            ENABLE | DISABLE => {
                if !call.arguments().is_empty() {
                    return StatusCode::BadTooManyArguments;
                }
                if method == ENABLE {
                    ConditionCommand::Enable
                } else {
                    ConditionCommand::Disable
                }
            }
            _ => {
                let (event_id, comment) = match event_and_comment(call) {
                    Ok(args) => args,
                    Err(status) => return status,
                };
                match method {
                    ACKNOWLEDGE => ConditionCommand::Acknowledge { event_id, comment },
                    CONFIRM => ConditionCommand::Confirm { event_id, comment },
                    _ => ConditionCommand::AddComment { event_id, comment },
                }
            }
        };
        let user = Authenticator::user_name(&context.token);
        if !self.auth.may_write(&context.token) {
            info!(alarm = %key, user = %user, command = command.name(), "condition method refused: user may not write");
            return StatusCode::BadUserAccessDenied;
        }
        match self.handle.condition(&key, command, &user).await {
            Ok(_) => StatusCode::Good,
            Err(e) => status_of(&e),
        }
    }
}

/// The EventId and Comment arguments of Acknowledge, Confirm and AddComment. An EventId
/// of another length than uaedge's cannot be one of its events.
fn event_and_comment(
    call: &mut MethodCall,
) -> Result<(Option<EventId>, Option<String>), StatusCode> {
    let args = call.arguments();
    if args.len() < 2 {
        return Err(StatusCode::BadArgumentsMissing);
    }
    if args.len() > 2 {
        return Err(StatusCode::BadTooManyArguments);
    }
    let event_id = match &args[0] {
        Variant::ByteString(b) => Ok(b.value.as_deref().map(|v| EventId::try_from(v).ok())),
        _ => Err(()),
    };
    let comment = match &args[1] {
        Variant::LocalizedText(t) => Ok(t.text.value().clone()),
        Variant::Empty => Ok(None),
        _ => Err(()),
    };
    let bad = |r: bool| {
        if r {
            StatusCode::Good
        } else {
            StatusCode::BadTypeMismatch
        }
    };
    match (event_id, comment) {
        (Ok(Some(Some(id))), Ok(comment)) => Ok((Some(id), comment)),
        (Ok(_), Ok(_)) => Err(StatusCode::BadEventIdUnknown),
        (e, c) => {
            call.set_argument_error(vec![bad(e.is_ok()), bad(c.is_ok())]);
            Err(StatusCode::BadInvalidArgument)
        }
    }
}

/// Part 9's status code for each refusal.
fn status_of(e: &ConditionError) -> StatusCode {
    match e {
        ConditionError::Unknown => StatusCode::BadNodeIdUnknown,
        ConditionError::EventIdUnknown => StatusCode::BadEventIdUnknown,
        ConditionError::Disabled => StatusCode::BadConditionDisabled,
        ConditionError::AlreadyAcked => StatusCode::BadConditionBranchAlreadyAcked,
        ConditionError::AlreadyConfirmed => StatusCode::BadConditionBranchAlreadyConfirmed,
        ConditionError::AlreadyEnabled => StatusCode::BadConditionAlreadyEnabled,
        ConditionError::AlreadyDisabled => StatusCode::BadConditionAlreadyDisabled,
        ConditionError::Stopped => StatusCode::BadServerHalted,
    }
}

/// ConditionRefresh(SubscriptionId) and ConditionRefresh2(SubscriptionId,
/// MonitoredItemId): RefreshStartEvent, every retained condition, RefreshEndEvent, to the
/// event items of one subscription of the caller's session (or the one item).
fn refresh(
    context: &RequestContext,
    ns: u16,
    handle: &Handle,
    method: u32,
    args: &[Variant],
) -> StatusCode {
    let wanted = if method == CONDITION_REFRESH { 1 } else { 2 };
    if args.len() < wanted {
        return StatusCode::BadArgumentsMissing;
    }
    if args.len() > wanted {
        return StatusCode::BadTooManyArguments;
    }
    let id = |v: &Variant| match v {
        Variant::UInt32(n) => Some(*n),
        _ => None,
    };
    let Some(subscription) = id(&args[0]) else {
        return StatusCode::BadTypeMismatch;
    };
    let item = match args.get(1).map(id) {
        Some(None) => return StatusCode::BadTypeMismatch,
        Some(Some(n)) => Some(n),
        None => None,
    };
    let Some(subs) = context
        .subscriptions
        .get_session_subscriptions(context.session_id)
    else {
        return StatusCode::BadSubscriptionIdInvalid;
    };
    let mut subs = subs.lock();
    let Some(sub) = subs.get_mut(subscription) else {
        return StatusCode::BadSubscriptionIdInvalid;
    };
    let items: Vec<(u32, NodeId)> = sub
        .items()
        .filter(|i| i.item_to_monitor().attribute_id == AttributeId::EventNotifier)
        .filter(|i| item.is_none_or(|n| n == i.id()))
        .map(|i| (i.id(), i.item_to_monitor().node_id.clone()))
        .collect();
    if item.is_some() && items.is_empty() {
        return StatusCode::BadMonitoredItemIdInvalid;
    }
    let conditions = handle.conditions().retained();
    let type_tree = context.type_tree.read();
    for (id, notifier) in items {
        sub.notify_event(
            &id,
            &refresh_event(ObjectTypeId::RefreshStartEventType),
            &*type_tree,
        );
        for c in conditions
            .iter()
            .filter(|c| reaches(&notifier, ns, &c.def.device))
        {
            sub.notify_event(&id, &UaConditionEvent::new(c, ns), &*type_tree);
        }
        sub.notify_event(
            &id,
            &refresh_event(ObjectTypeId::RefreshEndEventType),
            &*type_tree,
        );
    }
    StatusCode::Good
}

fn refresh_event(kind: ObjectTypeId) -> BaseEventType {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut id = vec![0xFF; 8];
    id.extend_from_slice(&seq.to_be_bytes());
    let message = if kind == ObjectTypeId::RefreshStartEventType {
        "ConditionRefresh begins"
    } else {
        "ConditionRefresh ends"
    };
    let mut event = BaseEventType::new(kind, ByteString::from(id), message, DateTime::now())
        .set_source_node(server_object())
        .set_source_name(UAString::from("Server"));
    event.severity = 1;
    event
}

#[async_trait]
impl NodeManager for CoreWithConditions {
    fn owns_node(&self, id: &NodeId) -> bool {
        self.core.owns_node(id)
    }

    fn name(&self) -> &str {
        self.core.name()
    }

    fn owns_server_events(&self) -> bool {
        self.core.owns_server_events()
    }

    fn handle_new_node(&self, parent_id: &ExpandedNodeId) -> bool {
        self.core.handle_new_node(parent_id)
    }

    fn namespaces_for_user(&self, context: &RequestContext) -> Vec<NamespaceMetadata> {
        self.core.namespaces_for_user(context)
    }

    async fn init(&self, type_tree: &mut DefaultTypeTree, context: ServerContext) {
        self.core.init(type_tree, context).await
    }

    async fn resolve_external_references(
        &self,
        context: &RequestContext,
        items: &mut [&mut ExternalReferenceRequest],
    ) {
        self.core.resolve_external_references(context, items).await
    }

    async fn read(
        &self,
        context: &RequestContext,
        max_age: f64,
        timestamps_to_return: TimestampsToReturn,
        nodes_to_read: &mut [&mut ReadNode],
    ) -> Result<(), StatusCode> {
        self.core
            .read(context, max_age, timestamps_to_return, nodes_to_read)
            .await?;
        if self.history.read().is_some() {
            for node in nodes_to_read.iter_mut() {
                if let Some(value) = super::history_capabilities::answer(node.node()) {
                    node.set_result(value);
                }
            }
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
        self.core
            .history_read_raw_modified(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_processed(
        &self,
        context: &RequestContext,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.core
            .history_read_processed(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_at_time(
        &self,
        context: &RequestContext,
        details: &ReadAtTimeDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.core
            .history_read_at_time(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_events(
        &self,
        context: &RequestContext,
        details: &ReadEventDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.core
            .history_read_events(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn history_read_annotations(
        &self,
        context: &RequestContext,
        details: &ReadAnnotationDataDetails,
        nodes: &mut [&mut HistoryNode],
        timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        self.core
            .history_read_annotations(context, details, nodes, timestamps_to_return)
            .await
    }

    async fn write(
        &self,
        context: &RequestContext,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        self.core.write(context, nodes_to_write).await
    }

    async fn history_update(
        &self,
        context: &RequestContext,
        nodes: &mut [&mut HistoryUpdateNode],
    ) -> Result<(), StatusCode> {
        self.core.history_update(context, nodes).await
    }

    async fn browse(
        &self,
        context: &RequestContext,
        nodes_to_browse: &mut [BrowseNode],
    ) -> Result<(), StatusCode> {
        self.core.browse(context, nodes_to_browse).await
    }

    async fn translate_browse_paths_to_node_ids(
        &self,
        context: &RequestContext,
        nodes: &mut [&mut BrowsePathItem],
    ) -> Result<(), StatusCode> {
        self.core
            .translate_browse_paths_to_node_ids(context, nodes)
            .await
    }

    async fn register_nodes(
        &self,
        context: &RequestContext,
        nodes: &mut [&mut RegisterNodeItem],
    ) -> Result<(), StatusCode> {
        self.core.register_nodes(context, nodes).await
    }

    async fn unregister_nodes(
        &self,
        context: &RequestContext,
        nodes: &[&NodeId],
    ) -> Result<(), StatusCode> {
        self.core.unregister_nodes(context, nodes).await
    }

    async fn create_monitored_items(
        &self,
        context: &RequestContext,
        items: &mut [&mut CreateMonitoredItem],
    ) -> Result<(), StatusCode> {
        super::limits::lower_data_queues(items, self.data_queue_max);
        self.core.create_monitored_items(context, items).await
    }

    async fn modify_monitored_items(
        &self,
        context: &RequestContext,
        items: &[&MonitoredItemUpdateRef],
    ) {
        self.core.modify_monitored_items(context, items).await
    }

    async fn set_monitoring_mode(
        &self,
        context: &RequestContext,
        mode: MonitoringMode,
        items: &[&MonitoredItemRef],
    ) {
        self.core.set_monitoring_mode(context, mode, items).await
    }

    async fn delete_monitored_items(&self, context: &RequestContext, items: &[&MonitoredItemRef]) {
        self.core.delete_monitored_items(context, items).await
    }

    async fn query(
        &self,
        context: &RequestContext,
        request: &mut QueryRequest,
    ) -> Result<(), StatusCode> {
        self.core.query(context, request).await
    }

    async fn call(
        &self,
        context: &RequestContext,
        methods_to_call: &mut [&mut MethodCall],
    ) -> Result<(), StatusCode> {
        let mut others: Vec<&mut MethodCall> = Vec::new();
        for call in methods_to_call.iter_mut() {
            match condition_method(call.method_id()) {
                Some(method) => self.call_one(context, method, call).await,
                None => others.push(call),
            }
        }
        if others.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.core.call(context, &mut others).await {
            for call in others {
                call.set_status(e);
            }
        }
        Ok(())
    }

    async fn add_nodes(
        &self,
        context: &RequestContext,
        nodes_to_add: &mut [&mut AddNodeItem],
    ) -> Result<(), StatusCode> {
        self.core.add_nodes(context, nodes_to_add).await
    }

    async fn add_references(
        &self,
        context: &RequestContext,
        references_to_add: &mut [&mut AddReferenceItem],
    ) -> Result<(), StatusCode> {
        self.core.add_references(context, references_to_add).await
    }

    async fn delete_nodes(
        &self,
        context: &RequestContext,
        nodes_to_delete: &mut [&mut DeleteNodeItem],
    ) -> Result<(), StatusCode> {
        self.core.delete_nodes(context, nodes_to_delete).await
    }

    async fn delete_node_references(
        &self,
        context: &RequestContext,
        to_delete: &[&DeleteNodeItem],
    ) {
        self.core.delete_node_references(context, to_delete).await
    }

    async fn delete_references(
        &self,
        context: &RequestContext,
        references_to_delete: &mut [&mut DeleteReferenceItem],
    ) -> Result<(), StatusCode> {
        self.core
            .delete_references(context, references_to_delete)
            .await
    }
}
