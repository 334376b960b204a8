//! Each alarm condition as a node of the address space: an object of its Part 9 type
//! under its tag's variable (HasComponent and HasCondition from the tag), with the
//! condition's state as variables a client browses and reads (EnabledState/Id,
//! ActiveState/Id, AckedState/Id, Comment, Severity, …) and Part 9's methods.
//!
//! A condition is named by its alarm tag (`<tag>/Alarms/<check>`), so the table says which
//! conditions exist; their type and state come from the [`ConditionBook`]. NodeIds:
//! `s=<device>/<tag>//Condition/<check>` and `…/Condition/<check>/<field path>`, e.g.
//! `…//Condition/high/ActiveState/Id`: behind `//`, where no tag path goes.
//!
//! [`ConditionBook`]: crate::conditions::ConditionBook

use opcua::server::address_space::{NodeType, ObjectBuilder, VariableBuilder};
use opcua::types::{
    DataTypeId, LocalizedText, NodeId, QualifiedName, ReferenceTypeId, VariableTypeId,
};

use super::address_space::{Space, Target, UaNode};
use super::condition_event::{type_chain, UaConditionEvent};
use crate::conditions::{ConditionEvent, ACKED};
use crate::model::{DeviceId, TagId};

/// How a field hangs below its parent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A property (PropertyType).
    Property,
    /// A TwoStateVariableType component, with an `Id` property.
    TwoState,
    /// A ConditionVariableType component, with a `SourceTimestamp` property.
    ConditionVariable,
}

struct Field {
    path: &'static str,
    data_type: DataTypeId,
    kind: Kind,
}

const fn field(path: &'static str, data_type: DataTypeId, kind: Kind) -> Field {
    Field {
        path,
        data_type,
        kind,
    }
}

/// The fields of a condition node, parents before their children. `HighLimit` and
/// `LowLimit` only where the type is a limit alarm with that limit.
const FIELDS: [Field; 32] = [
    field("EventId", DataTypeId::ByteString, Kind::Property),
    field("EventType", DataTypeId::NodeId, Kind::Property),
    field("SourceNode", DataTypeId::NodeId, Kind::Property),
    field("SourceName", DataTypeId::String, Kind::Property),
    field("Time", DataTypeId::UtcTime, Kind::Property),
    field("ReceiveTime", DataTypeId::UtcTime, Kind::Property),
    field("Message", DataTypeId::LocalizedText, Kind::Property),
    field("Severity", DataTypeId::UInt16, Kind::Property),
    field("ConditionClassId", DataTypeId::NodeId, Kind::Property),
    field(
        "ConditionClassName",
        DataTypeId::LocalizedText,
        Kind::Property,
    ),
    field("ConditionName", DataTypeId::String, Kind::Property),
    field("BranchId", DataTypeId::NodeId, Kind::Property),
    field("Retain", DataTypeId::Boolean, Kind::Property),
    field("ClientUserId", DataTypeId::String, Kind::Property),
    field("EnabledState", DataTypeId::LocalizedText, Kind::TwoState),
    field("EnabledState/Id", DataTypeId::Boolean, Kind::Property),
    field("Quality", DataTypeId::StatusCode, Kind::ConditionVariable),
    field(
        "Quality/SourceTimestamp",
        DataTypeId::UtcTime,
        Kind::Property,
    ),
    field("LastSeverity", DataTypeId::UInt16, Kind::ConditionVariable),
    field(
        "LastSeverity/SourceTimestamp",
        DataTypeId::UtcTime,
        Kind::Property,
    ),
    field(
        "Comment",
        DataTypeId::LocalizedText,
        Kind::ConditionVariable,
    ),
    field(
        "Comment/SourceTimestamp",
        DataTypeId::UtcTime,
        Kind::Property,
    ),
    field("AckedState", DataTypeId::LocalizedText, Kind::TwoState),
    field("AckedState/Id", DataTypeId::Boolean, Kind::Property),
    field("ConfirmedState", DataTypeId::LocalizedText, Kind::TwoState),
    field("ConfirmedState/Id", DataTypeId::Boolean, Kind::Property),
    field("ActiveState", DataTypeId::LocalizedText, Kind::TwoState),
    field("ActiveState/Id", DataTypeId::Boolean, Kind::Property),
    field(
        "ActiveState/TransitionTime",
        DataTypeId::UtcTime,
        Kind::Property,
    ),
    field("InputNode", DataTypeId::NodeId, Kind::Property),
    field("HighLimit", DataTypeId::Double, Kind::Property),
    field("LowLimit", DataTypeId::Double, Kind::Property),
];

/// Part 9's methods of an alarm condition (namespace 0's method nodes, which clients call
/// with the condition as the object): Enable, Disable, AddComment, Acknowledge, Confirm.
const METHODS: [u32; 5] = [9027, 9028, 9029, 9111, 9113];
const CONFIRM: u32 = 9113;

const SEPARATOR: &str = "Condition/";

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(parent, _)| parent)
}

fn leaf(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, leaf)| leaf)
}

fn index_of(path: &str) -> Option<u8> {
    FIELDS
        .iter()
        .position(|f| f.path == path)
        .and_then(|i| u8::try_from(i).ok())
}

impl Space<'_> {
    /// The condition node named by `rest` (`Condition/<check>[/<field path>]`, after the
    /// `//` behind the tag `owner` of `device`), if it exists.
    pub(super) fn condition_node(
        &self,
        device: DeviceId,
        owner: &str,
        rest: &str,
    ) -> Option<UaNode> {
        let rest = rest.strip_prefix(SEPARATOR)?;
        let (check, path) = match rest.split_once('/') {
            Some((check, path)) => (check, Some(path)),
            None => (rest, None),
        };
        let alarm = self
            .table
            .find_in_device(device, &format!("{owner}/Alarms/{check}"))?;
        let event = self.condition_of(alarm)?;
        match path {
            None => Some(UaNode::Condition(alarm)),
            Some(path) => {
                let f = index_of(path)?;
                shown(&event, f).then_some(UaNode::ConditionField(alarm, f))
            }
        }
    }

    /// The condition whose alarm tag is `alarm`, as it is now.
    pub(super) fn condition_of(&self, alarm: TagId) -> Option<ConditionEvent> {
        let def = self.table.tag(alarm)?;
        self.conditions.get(&def.path.to_string())
    }

    /// The alarm tags of `owner`'s conditions.
    pub(super) fn conditions_under(&self, owner: TagId) -> Vec<TagId> {
        let Some(def) = self.table.tag(owner) else {
            return Vec::new();
        };
        let Some(device) = self.table.device(def.device) else {
            return Vec::new();
        };
        let prefix = format!("{}/Alarms", def.path.tag);
        let depth = prefix.matches('/').count() + 1;
        (self.table.tags_under(def.device, &prefix))
            .filter(|t| device.is_alarm_tag(t.id) && !t.path.tag.ends_with(ACKED))
            .filter(|t| t.path.tag.matches('/').count() == depth)
            .filter(|t| self.conditions.contains(&t.path.to_string()))
            .map(|t| t.id)
            .collect()
    }

    /// The tags of `device` with conditions: its event sources.
    pub(super) fn event_sources(&self, device: DeviceId) -> Vec<TagId> {
        let Some(d) = self.table.device(device) else {
            return Vec::new();
        };
        let mut owners: Vec<TagId> = d
            .tag_ids()
            .filter(|t| d.is_alarm_tag(*t))
            .filter_map(|t| self.table.tag(t))
            .filter_map(|t| {
                let (owner, check) = t.path.tag.rsplit_once("/Alarms/")?;
                (!check.contains('/')).then_some(owner)
            })
            .filter_map(|owner| self.table.find_in_device(device, owner))
            .collect();
        owners.dedup();
        owners
    }

    /// `s=<device>/<tag>//Condition/<check>[/<field path>]`.
    pub(super) fn condition_id_string(&self, alarm: TagId, field: Option<u8>) -> String {
        let Some(def) = self.table.tag(alarm) else {
            return String::new();
        };
        let Some((owner, check)) = def.path.tag.rsplit_once("/Alarms/") else {
            return String::new();
        };
        let base = format!("{}/{owner}//{SEPARATOR}{check}", def.path.device);
        match field.and_then(|f| FIELDS.get(usize::from(f))) {
            Some(f) => format!("{base}/{}", f.path),
            None => base,
        }
    }

    pub(super) fn condition_names(
        &self,
        alarm: TagId,
        field: Option<u8>,
    ) -> (QualifiedName, LocalizedText) {
        match field.and_then(|f| FIELDS.get(usize::from(f))) {
            Some(f) => {
                let name = leaf(f.path);
                (QualifiedName::new(0, name), LocalizedText::from(name))
            }
            None => {
                let check = self
                    .table
                    .tag(alarm)
                    .and_then(|t| {
                        t.path
                            .tag
                            .rsplit_once("/Alarms/")
                            .map(|(_, c)| c.to_string())
                    })
                    .unwrap_or_default();
                (
                    QualifiedName::new(self.ns, check.as_str()),
                    LocalizedText::from(check.as_str()),
                )
            }
        }
    }

    pub(super) fn condition_type(&self, alarm: TagId, field: Option<u8>) -> NodeId {
        match field.and_then(|f| FIELDS.get(usize::from(f))) {
            Some(f) => match f.kind {
                Kind::Property => VariableTypeId::PropertyType.into(),
                Kind::TwoState => VariableTypeId::TwoStateVariableType.into(),
                Kind::ConditionVariable => VariableTypeId::ConditionVariableType.into(),
            },
            None => {
                let class = self.condition_of(alarm).map(|c| c.def.class);
                let id = class
                    .and_then(|c| type_chain(c).first().copied())
                    .unwrap_or(2915);
                NodeId::new(0, id)
            }
        }
    }

    pub(super) fn condition_references(
        &self,
        alarm: TagId,
        field: Option<u8>,
        add: &mut impl FnMut(ReferenceTypeId, bool, Target),
    ) {
        let Some(event) = self.condition_of(alarm) else {
            return;
        };
        let kind_of = |f: &Field| match f.kind {
            Kind::Property => ReferenceTypeId::HasProperty,
            _ => ReferenceTypeId::HasComponent,
        };
        let parent_path = field
            .and_then(|f| FIELDS.get(usize::from(f)))
            .map(|f| f.path);
        match parent_path {
            None => {
                if let Some(owner) = self.owner_of(alarm) {
                    add(
                        ReferenceTypeId::HasComponent,
                        false,
                        Target::Ours(UaNode::Tag(owner)),
                    );
                    add(
                        ReferenceTypeId::HasCondition,
                        false,
                        Target::Ours(UaNode::Tag(owner)),
                    );
                }
                for m in METHODS {
                    if m != CONFIRM || event.def.confirm {
                        add(
                            ReferenceTypeId::HasComponent,
                            true,
                            Target::Core(NodeId::new(0, m)),
                        );
                    }
                }
            }
            Some(path) => {
                let f = FIELDS.iter().find(|f| f.path == path);
                let up = match parent_of(path).and_then(index_of) {
                    Some(p) => UaNode::ConditionField(alarm, p),
                    None => UaNode::Condition(alarm),
                };
                if let Some(f) = f {
                    add(kind_of(f), false, Target::Ours(up));
                }
            }
        }
        // Children: the fields one level below.
        for (i, f) in FIELDS.iter().enumerate() {
            let Ok(i) = u8::try_from(i) else { continue };
            if parent_of(f.path) == parent_path && shown(&event, i) {
                add(
                    kind_of(f),
                    true,
                    Target::Ours(UaNode::ConditionField(alarm, i)),
                );
            }
        }
    }

    /// The tag a condition's alarm tag belongs to.
    pub(super) fn owner_of(&self, alarm: TagId) -> Option<TagId> {
        let def = self.table.tag(alarm)?;
        let (owner, _) = def.path.tag.rsplit_once("/Alarms/")?;
        self.table.find_in_device(def.device, owner)
    }

    pub(super) fn build_condition(
        &self,
        id: &NodeId,
        alarm: TagId,
        field: Option<u8>,
    ) -> Option<NodeType> {
        let (browse, display) = self.condition_names(alarm, field);
        let event = self.condition_of(alarm)?;
        match field.and_then(|f| FIELDS.get(usize::from(f))) {
            None => {
                let b = ObjectBuilder::new(id, browse, display)
                    .description(format!("alarm condition: {}", event.state.message));
                b.is_valid().then(|| NodeType::Object(Box::new(b.build())))
            }
            Some(f) => {
                let names: Vec<QualifiedName> = f
                    .path
                    .split('/')
                    .map(|p| QualifiedName::new(0, p))
                    .collect();
                let value = UaConditionEvent::new(&event, self.ns).field_value(&names);
                let b = VariableBuilder::new(id, browse, display)
                    .data_type(f.data_type)
                    .value_rank(-1)
                    .value(value);
                b.is_valid()
                    .then(|| NodeType::Variable(Box::new(b.build())))
            }
        }
    }
}

/// Whether a condition has the field `f` (the limits only where it has them).
fn shown(event: &ConditionEvent, f: u8) -> bool {
    match FIELDS.get(usize::from(f)).map(|f| f.path) {
        Some("HighLimit") => event.def.class.is_limit() && event.def.high_limit.is_some(),
        Some("LowLimit") => event.def.class.is_limit() && event.def.low_limit.is_some(),
        Some("ConfirmedState" | "ConfirmedState/Id") => event.def.confirm,
        Some(_) => true,
        None => false,
    }
}
