//! HistoryRead of events (ReadEventDetails, Part 11 6.5.2): the alarm condition events the
//! historian kept, read from the Server object and uaedge's root (all of them), a device
//! (its tags' conditions), a tag (its own) or a condition, through the client's
//! EventFilter as a subscription would apply it.

use opcua::nodes::ParsedEventFilter;
use opcua::server::address_space::TypeTree;
use opcua::server::node_manager::{HistoryNode, RequestContext};
use opcua::server::ContinuationPoint;
use opcua::types::{
    HistoryEvent, HistoryEventFieldList, NodeId, ObjectId, ReadEventDetails, StatusCode,
    TimestampsToReturn,
};

use super::address_space::UaNode;
use super::condition_event::UaConditionEvent;
use super::history_capabilities::MAX_EVENTS_PER_NODE;
use super::history_read::micros;
use super::node_manager::ModelNodeManager;
use crate::conditions::EventRecord;

/// Which events a node's history holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    All,
    Device(String),
    /// `device/tag`.
    Tag(String, String),
    /// A condition's key.
    Condition(String),
}

impl Source {
    fn keeps(&self, r: &EventRecord) -> bool {
        match self {
            Source::All => true,
            Source::Device(d) => r.device == *d,
            Source::Tag(d, t) => r.device == *d && r.tag == *t,
            Source::Condition(k) => r.key == *k,
        }
    }
}

/// The walk an event read asks for (the same rules as a raw read: Part 11 6.5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventPlan {
    from: i64,
    to: i64,
    reverse: bool,
    page: usize,
    /// One-ended reads stop after one page.
    one_ended: bool,
}

fn plan(d: &ReadEventDetails) -> Result<EventPlan, StatusCode> {
    let n = d.num_values_per_node as usize;
    let page = if n == 0 {
        MAX_EVENTS_PER_NODE
    } else {
        n.min(MAX_EVENTS_PER_NODE)
    };
    let (start, end) = (micros(&d.start_time), micros(&d.end_time));
    let (from, to, reverse, one_ended) = match (start, end) {
        (None, None) => return Err(StatusCode::BadInvalidTimestampArgument),
        (Some(_), None) | (None, Some(_)) if n == 0 => {
            return Err(StatusCode::BadInvalidTimestampArgument)
        }
        (Some(s), None) => (s, i64::MAX, false, true),
        (None, Some(e)) => (i64::MIN, e, true, true),
        (Some(s), Some(e)) if s == e => (s, s, false, false),
        // The end is left out, as in raw reads.
        (Some(s), Some(e)) if s < e => (s, e - 1, false, false),
        (Some(s), Some(e)) => (e + 1, s, true, false),
    };
    Ok(EventPlan {
        from,
        to,
        reverse,
        page,
        one_ended,
    })
}

#[derive(Debug, Clone)]
struct EventContinuation {
    node: NodeId,
    plan: EventPlan,
    after: (i64, u64),
}

impl ModelNodeManager {
    /// Which events `id` has: the Server object and the root all, a device, a tag or a
    /// condition its own; `None` for nodes that notify no events.
    fn event_source(&self, id: &NodeId) -> Option<Source> {
        if id.as_object_id().is_ok_and(|o| o == ObjectId::Server) {
            return Some(Source::All);
        }
        let table = self.table();
        let conditions = self.handle().conditions();
        let space = self.space(&table, &conditions);
        match space.node(id)? {
            UaNode::Root => Some(Source::All),
            UaNode::Device(d) => Some(Source::Device(table.device(d)?.name.clone())),
            UaNode::Tag(t) => {
                let def = table.tag(t)?;
                Some(Source::Tag(
                    def.path.device.to_string(),
                    def.path.tag.to_string(),
                ))
            }
            // A condition's key is its alarm tag's path.
            UaNode::Condition(alarm) => Some(Source::Condition(table.tag(alarm)?.path.to_string())),
            _ => None,
        }
    }

    pub(super) async fn history_events(
        &self,
        context: &RequestContext,
        details: &ReadEventDetails,
        nodes: &mut [&mut HistoryNode],
        _ttr: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let plan = plan(details)?;
        if details
            .filter
            .select_clauses
            .as_ref()
            .is_none_or(|s| s.is_empty())
        {
            return Err(StatusCode::BadEventFilterInvalid);
        }
        // ReadEventDetails carries its EventFilter as a plain field, which the hardened
        // decoders of `event_filter.rs` never see: a null BrowsePath is made empty here.
        let mut raw_filter = details.filter.clone();
        for clause in raw_filter.select_clauses.iter_mut().flatten() {
            super::event_filter::empty_path(clause);
        }
        super::event_filter::exact_event_types(&mut raw_filter.where_clause);
        let filter = {
            let type_tree = context.get_type_tree_for_user();
            ParsedEventFilter::new(raw_filter, type_tree.get()).1?
        };
        let ns = self.namespace_index();
        for node in nodes.iter_mut() {
            let Some(history) = self.history().read().clone() else {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            };
            let Some(source) = self.event_source(node.node_id()) else {
                node.set_status(if self.owns_known(node.node_id()) {
                    StatusCode::BadHistoryOperationUnsupported
                } else {
                    StatusCode::BadNodeIdUnknown
                });
                continue;
            };
            let after = match node.continuation_point() {
                None => None,
                Some(cp) => match cp.get::<EventContinuation>() {
                    Some(c) if &c.node == node.node_id() && c.plan == plan => Some(c.after),
                    _ => {
                        node.set_status(StatusCode::BadContinuationPointInvalid);
                        continue;
                    }
                },
            };
            let read = tokio::task::spawn_blocking(move || {
                history.read_events(plan.from, plan.to, plan.reverse, plan.page, after, &|r| {
                    source.keeps(r)
                })
            })
            .await;
            let read = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "event history read failed");
                    node.set_status(StatusCode::BadHistoryOperationInvalid);
                    continue;
                }
                Err(_) => {
                    node.set_status(StatusCode::BadInternalError);
                    continue;
                }
            };
            // The type tree is a lock: held for the evaluation only, never across an await.
            let events: Vec<HistoryEventFieldList> = {
                let type_tree = context.get_type_tree_for_user();
                let tree: &dyn TypeTree = type_tree.get();
                read.events
                    .iter()
                    .filter_map(|(_, _, record)| {
                        let event = record.event();
                        let fields =
                            filter.evaluate(&UaConditionEvent::new(&event, ns), 0, tree)?;
                        Some(HistoryEventFieldList {
                            event_fields: fields.event_fields,
                        })
                    })
                    .collect()
            };
            if read.more && !plan.one_ended {
                if let Some(&(time, seq, _)) = read.events.last() {
                    let cont = EventContinuation {
                        node: node.node_id().clone(),
                        plan,
                        after: (time, seq),
                    };
                    node.set_next_continuation_point(Some(ContinuationPoint::new(Box::new(cont))));
                }
            }
            let status = if events.is_empty() && !read.more {
                StatusCode::GoodNoData
            } else {
                StatusCode::Good
            };
            node.set_result(HistoryEvent {
                events: Some(events),
            });
            node.set_status(status);
        }
        Ok(())
    }

    /// Whether `id` names a node of this address space (or the Server object).
    fn owns_known(&self, id: &NodeId) -> bool {
        let table = self.table();
        let conditions = self.handle().conditions();
        self.space(&table, &conditions).node(id).is_some()
    }
}
