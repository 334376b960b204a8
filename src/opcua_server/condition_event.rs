//! A condition's state as an OPC UA Part 9 event: what EventFilter select and where
//! clauses read (async-opcua evaluates them, per monitored item).
//!
//! async-opcua 0.19 ships generated event structs for the Part 9 types, but with some
//! fields of the wrong type (Comment, Quality and LastSeverity as ExtensionObjects where
//! Part 9 has LocalizedText, StatusCode and UInt16, and a TwoStateVariable's `Id` both as
//! an ExtensionObject and a Boolean), which clients would reject or misread. So this
//! implements the `Event` trait itself, over a browse-path lookup, with the types Part 9
//! gives each field.

use opcua::nodes::Event;
use opcua::types::{
    AttributeId, ByteString, DateTime, EventField, LocalizedText, NodeId, NumericRange, ObjectId,
    ObjectTypeId, QualifiedName, StatusCode, UAString, Variant,
};

use super::address_space::tag_node_id;
use super::convert::date_time;
use crate::conditions::{ConditionClass, ConditionDef, ConditionEvent, LimitState};

/// The Part 9 type of a class, then its supertypes up to BaseEventType: a select clause
/// naming any of them reads the field.
pub fn type_chain(class: ConditionClass) -> &'static [u32] {
    const BASE: u32 = 2041;
    const CONDITION: u32 = 2782;
    const ACKABLE: u32 = 2881;
    const ALARM: u32 = 2915;
    const LIMIT: u32 = 2955;
    const EXCLUSIVE_LIMIT: u32 = 9341;
    match class {
        ConditionClass::ExclusiveLimit => {
            &[EXCLUSIVE_LIMIT, LIMIT, ALARM, ACKABLE, CONDITION, BASE]
        }
        ConditionClass::ExclusiveRateOfChange => &[
            9623,
            EXCLUSIVE_LIMIT,
            LIMIT,
            ALARM,
            ACKABLE,
            CONDITION,
            BASE,
        ],
        ConditionClass::ExclusiveDeviation => &[
            9764,
            EXCLUSIVE_LIMIT,
            LIMIT,
            ALARM,
            ACKABLE,
            CONDITION,
            BASE,
        ],
        ConditionClass::OffNormal => &[10637, 10523, ALARM, ACKABLE, CONDITION, BASE],
    }
}

/// One event notification of a condition.
pub struct UaConditionEvent<'a> {
    event: &'a ConditionEvent,
    event_type: NodeId,
    time: DateTime,
    ns: u16,
}

impl<'a> UaConditionEvent<'a> {
    pub fn new(event: &'a ConditionEvent, ns: u16) -> UaConditionEvent<'a> {
        let chain = type_chain(event.def.class);
        UaConditionEvent {
            event,
            event_type: NodeId::new(0, chain.first().copied().unwrap_or(2041)),
            time: date_time(uaedge_driver::Timestamp(event.state.time)),
            ns,
        }
    }

    /// The value of the field at `path` (one or two browse names, namespace 0).
    pub fn field_value(&self, path: &[QualifiedName]) -> Variant {
        let e = self.event;
        let s = &e.state;
        let at = |us: i64| Variant::from(date_time(uaedge_driver::Timestamp(us)));
        let text = |t: &str| Variant::from(LocalizedText::new("en", t));
        let names: Vec<&str> = path.iter().map(|q| q.name.as_ref()).collect();
        let source = || tag_node_id(self.ns, &format!("{}/{}", e.def.device, e.def.tag));
        let two_state = |rest: &[&str], id: bool, yes: &str, no: &str, since: i64| match rest {
            [] => text(if id { yes } else { no }),
            ["Id"] => Variant::from(id),
            ["TransitionTime"] => at(since),
            ["TrueState"] => text(yes),
            ["FalseState"] => text(no),
            _ => Variant::Empty,
        };
        match names.as_slice() {
            ["EventId"] => Variant::from(ByteString::from(s.event_id.to_vec())),
            ["EventType"] => Variant::from(self.event_type.clone()),
            ["SourceNode"] | ["InputNode"] => Variant::from(source()),
            ["SourceName"] => {
                Variant::from(UAString::from(format!("{}/{}", e.def.device, e.def.tag)))
            }
            ["Time"] => Variant::from(self.time),
            ["ReceiveTime"] => Variant::from(date_time(e.receive_time)),
            ["Message"] => text(&s.message),
            ["Severity"] => Variant::from(s.severity),
            ["ConditionClassId"] => {
                Variant::from(NodeId::from(ObjectTypeId::ProcessConditionClassType))
            }
            ["ConditionClassName"] => text("Process"),
            ["ConditionName"] => Variant::from(UAString::from(e.def.check.as_ref())),
            ["BranchId"] => Variant::from(NodeId::null()),
            ["Retain"] => Variant::from(s.retain()),
            ["SupportsFilteredRetain"] | ["SuppressedOrShelved"] => Variant::from(false),
            ["Quality"] => Variant::from(StatusCode::Good),
            ["Quality", "SourceTimestamp"] => Variant::from(self.time),
            ["LastSeverity"] => Variant::from(s.last_severity),
            ["LastSeverity", "SourceTimestamp"] => Variant::from(self.time),
            ["Comment"] => text(&s.comment),
            ["Comment", "SourceTimestamp"] => at(s.comment_time),
            ["ClientUserId"] => Variant::from(UAString::from(s.client_user_id.as_str())),
            ["EnabledState", rest @ ..] => {
                two_state(rest, s.enabled, "Enabled", "Disabled", s.enabled_time)
            }
            ["AckedState", rest @ ..] => two_state(
                rest,
                s.acked,
                "Acknowledged",
                "Unacknowledged",
                s.acked_time,
            ),
            ["ConfirmedState", rest @ ..] => two_state(
                rest,
                s.confirmed,
                "Confirmed",
                "Unconfirmed",
                s.confirmed_time,
            ),
            ["ActiveState", "EffectiveDisplayName"] => text(match (s.active, s.limit_state) {
                (false, _) => "Inactive",
                (true, Some(LimitState::High)) => "High active",
                (true, Some(LimitState::Low)) => "Low active",
                (true, None) => "Active",
            }),
            ["ActiveState", rest @ ..] => {
                two_state(rest, s.active, "Active", "Inactive", s.active_time)
            }
            ["HighLimit"] if e.def.class.is_limit() => {
                e.def.high_limit.map_or(Variant::Empty, Variant::from)
            }
            ["LowLimit"] if e.def.class.is_limit() => {
                e.def.low_limit.map_or(Variant::Empty, Variant::from)
            }
            ["LimitState", "CurrentState", rest @ ..] if e.def.class.is_limit() => {
                // ExclusiveLimitStateMachineType's High (i=9329) and Low (i=9335) states.
                let (name, id) = match s.limit_state {
                    Some(LimitState::High) => ("High", 9329),
                    Some(LimitState::Low) => ("Low", 9335),
                    None => return Variant::Empty,
                };
                match rest {
                    [] => text(name),
                    ["Id"] => Variant::from(NodeId::new(0, id)),
                    _ => Variant::Empty,
                }
            }
            _ => Variant::Empty,
        }
    }
}

impl EventField for UaConditionEvent<'_> {
    fn get_value(
        &self,
        attribute_id: AttributeId,
        _index_range: &NumericRange,
        remaining_path: &[QualifiedName],
    ) -> Variant {
        if attribute_id != AttributeId::Value
            || remaining_path.iter().any(|q| q.namespace_index != 0)
        {
            return Variant::Empty;
        }
        self.field_value(remaining_path)
    }
}

impl Event for UaConditionEvent<'_> {
    fn get_field(
        &self,
        type_definition_id: &NodeId,
        attribute_id: AttributeId,
        index_range: &NumericRange,
        browse_path: &[QualifiedName],
    ) -> Variant {
        let known = type_definition_id.namespace == 0
            && type_chain(self.event.def.class)
                .iter()
                .any(|t| *type_definition_id == NodeId::new(0, *t));
        if !known {
            return Variant::Empty;
        }
        // Part 9's ConditionId: the condition's own NodeId, selected with an empty path.
        if browse_path.is_empty() {
            return if attribute_id == AttributeId::NodeId {
                Variant::from(condition_node_id(self.ns, &self.event.def))
            } else {
                Variant::Empty
            };
        }
        self.get_value(attribute_id, index_range, browse_path)
    }

    fn time(&self) -> &DateTime {
        &self.time
    }

    fn event_type_id(&self) -> &NodeId {
        &self.event_type
    }
}

/// Between a condition's source tag and its check's name in its NodeId: no tag path has
/// an empty segment, so no tag can have this NodeId (see `address_space.rs`).
const CONDITION: &str = "//Condition/";

/// A condition's NodeId (its ConditionId): `s=<device>/<tag>//Condition/<check>`.
pub fn condition_node_id(ns: u16, def: &ConditionDef) -> NodeId {
    NodeId::new(ns, condition_path(def))
}

/// The string part of a condition's NodeId.
pub fn condition_path(def: &ConditionDef) -> String {
    format!("{}/{}{CONDITION}{}", def.device, def.tag, def.check)
}

/// The key of the condition a NodeId names (`device/tag/Alarms/check`), if it names one.
pub fn condition_key(ns: u16, id: &NodeId) -> Option<String> {
    if id.namespace != ns {
        return None;
    }
    let opcua::types::Identifier::String(s) = &id.identifier else {
        return None;
    };
    let (source, check) = s.as_ref().rsplit_once(CONDITION)?;
    if source.is_empty() || check.is_empty() || check.contains('/') {
        return None;
    }
    Some(format!("{source}/Alarms/{check}"))
}

/// The Server object, where every event is reported.
pub fn server_object() -> NodeId {
    ObjectId::Server.into()
}
