//! What the address space says of the historian (Part 11 5.4): the Server's
//! HistoryServerCapabilities, its AggregateFunctions folder, and the HistoryRead bit of
//! the Server object's EventNotifier. async-opcua 0.19 keeps these in a `ServerInfo` that
//! no builder call sets (its `capabilities` field is always the default), so they are
//! answered here, over the core node manager's own values, while a historian runs.
//!
//! Upstream, `ServerBuilder` should take the `ServerCapabilities` it already models.

use opcua::server::address_space::EventNotifier;
use opcua::server::node_manager::ParsedReadValueId;
use opcua::types::{AttributeId, DataValue, NodeId, ObjectId, VariableId, Variant};

use super::aggregates::Aggregate;
use super::history_read::MAX_VALUES_PER_NODE;

/// Events a HistoryRead returns per node and page.
pub const MAX_EVENTS_PER_NODE: usize = 10_000;

/// The value a read of `node` gets while a historian runs, where it differs from the
/// core's.
pub fn answer(node: &ParsedReadValueId) -> Option<DataValue> {
    let value = |v: Variant| Some(DataValue::new_now(v));
    if node.attribute_id == AttributeId::EventNotifier {
        let server = node
            .node_id
            .as_object_id()
            .is_ok_and(|o| o == ObjectId::Server);
        let bits = EventNotifier::SUBSCRIBE_TO_EVENTS | EventNotifier::HISTORY_READ;
        return server.then(|| DataValue::new_now(Variant::Byte(bits.bits())));
    }
    if node.attribute_id != AttributeId::Value {
        return None;
    }
    let id = node.node_id.as_variable_id().ok()?;
    match id {
        VariableId::HistoryServerCapabilities_AccessHistoryDataCapability
        | VariableId::HistoryServerCapabilities_AccessHistoryEventsCapability => {
            value(Variant::Boolean(true))
        }
        VariableId::HistoryServerCapabilities_MaxReturnDataValues => {
            value(Variant::UInt32(MAX_VALUES_PER_NODE as u32))
        }
        VariableId::HistoryServerCapabilities_MaxReturnEventValues => {
            value(Variant::UInt32(MAX_EVENTS_PER_NODE as u32))
        }
        // Source times only: the server's are not kept.
        VariableId::HistoryServerCapabilities_ServerTimestampSupported => {
            value(Variant::Boolean(false))
        }
        _ => None,
    }
}

/// The aggregate function objects the AggregateFunctions folder (i=11201) holds.
pub fn aggregate_functions() -> impl Iterator<Item = NodeId> {
    Aggregate::ALL.into_iter().map(|a| a.object_id().into())
}

/// Browse name of an aggregate function object, for Browse answers.
pub fn aggregate_name(id: &NodeId) -> Option<&'static str> {
    Some(match Aggregate::of(id)? {
        Aggregate::Interpolative => "Interpolative",
        Aggregate::Average => "Average",
        Aggregate::TimeAverage => "TimeAverage",
        Aggregate::Minimum => "Minimum",
        Aggregate::Maximum => "Maximum",
        Aggregate::Count => "Count",
        Aggregate::Start => "Start",
        Aggregate::End => "End",
        Aggregate::Delta => "Delta",
    })
}
