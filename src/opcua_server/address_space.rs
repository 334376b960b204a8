//! The address space: Objects/uaedge/Devices/<device>/<folders…>/<tag>, a Status object
//! per device and a Runtime object.
//!
//! No node is stored. Every node is worked out from its NodeId and the [`TagTable`] when a
//! client asks: its attributes, its references, its value. A stored node with its
//! references cost about 2.2 KB a tag in async-opcua's in-memory address space (218 MB at
//! 100,000 tags); this stores nothing a tag, and a reload has nothing to rebuild. What a
//! request works out lives as long as the request (a Browse of a device of 100,000 tags
//! builds its 100,000 references, as the in-memory one did).
//!
//! NodeIds: a tag is `s=<device>/<tag>`, exactly its TagPath; a device folder is
//! `s=<device>`. Nodes uaedge adds around the model use forms no tag path can take (tag
//! names have no empty segments, device names no `/`): a folder `s=<device>/<folder>/` ends
//! with `/`, Status and properties sit behind `//` (`s=press3//Status/Connected`,
//! `s=press3/hydraulics/pressure//EURange`), and the fixed nodes start with `/`
//! (`s=/uaedge/Runtime`).
//!
//! Folders come from the `/`-separated parts of tag names. A prefix that is itself a tag
//! holds its children as components of that tag's variable (Organizes may only start at
//! an object): an alarm `pressure/Alarms/high` sits in an `Alarms` folder that is a
//! component of the `pressure` variable, never in a folder `pressure` beside it.

use opcua::server::address_space::{
    AccessLevel, EventNotifier, NodeType, ObjectBuilder, ReferenceDirection, VariableBuilder,
};
use opcua::server::node_manager::NodeMetadata;
use opcua::types::{
    DataTypeId, ExpandedNodeId, ExtensionObject, LocalizedText, NodeClass, NodeId, ObjectId,
    ObjectTypeId, QualifiedName, Range, ReferenceTypeId, VariableTypeId,
};

use super::convert;
pub use super::status_vars::{RuntimeField, StatusField};
use super::units;
use crate::conditions::ConditionBook;
use crate::model::{DeviceId, TagDef, TagId, TagTable};

const ROOT: &str = "/uaedge";
const DEVICES: &str = "/uaedge/Devices";
const RUNTIME: &str = "/uaedge/Runtime";
const RUNTIME_PREFIX: &str = "/uaedge/Runtime/";
const STATUS: &str = "Status";

/// A property of a tag variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    EngineeringUnits,
    EURange,
}

impl Property {
    fn name(self) -> &'static str {
        match self {
            Property::EngineeringUnits => "EngineeringUnits",
            Property::EURange => "EURange",
        }
    }
}

/// A node of uaedge's OPC UA namespace, as the address space works it out from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaNode {
    Root,
    Devices,
    Runtime,
    RuntimeVar(RuntimeField),
    Device(DeviceId),
    Status(DeviceId),
    StatusVar(DeviceId, StatusField),
    /// A folder of a device's tags, by the part of their names it stands for.
    Folder(DeviceId, Box<str>),
    Tag(TagId),
    Property(TagId, Property),
    /// An alarm condition, by its alarm tag (see `condition_nodes.rs`).
    Condition(TagId),
    /// A variable of a condition, by its alarm tag and the field's place.
    ConditionField(TagId, u8),
}

/// A reference from a node: its type, direction and the node at the other end, which is
/// ours or (for type definitions and the Objects folder) one of the core namespace's.
#[derive(Debug, Clone)]
pub struct Ref {
    pub kind: ReferenceTypeId,
    pub direction: ReferenceDirection,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub enum Target {
    Ours(UaNode),
    Core(NodeId),
}

/// The NodeId of a tag, for clients and tests: `ns=<ns>;s=<device>/<tag>`.
pub fn tag_node_id(ns: u16, path: &str) -> NodeId {
    NodeId::new(ns, path.to_string())
}

/// The NodeId of uaedge's root object (`Objects/uaedge`).
pub fn root_node_id(ns: u16) -> NodeId {
    NodeId::new(ns, ROOT)
}

/// Reads uaedge's nodes out of a table, for namespace `ns`.
pub struct Space<'a> {
    pub ns: u16,
    pub table: &'a TagTable,
    /// The table's alarm conditions: their types and states.
    pub conditions: &'a ConditionBook,
    /// A historian runs: historized tags say so (Historizing, HistoryRead access).
    pub historizing: bool,
}

impl Space<'_> {
    /// The node `id` names, if it exists.
    pub fn node(&self, id: &NodeId) -> Option<UaNode> {
        if id.namespace != self.ns {
            return None;
        }
        let opcua::types::Identifier::String(s) = &id.identifier else {
            return None;
        };
        let s = s.as_ref();
        match s {
            ROOT => return Some(UaNode::Root),
            DEVICES => return Some(UaNode::Devices),
            RUNTIME => return Some(UaNode::Runtime),
            _ => {}
        }
        if let Some(field) = s.strip_prefix(RUNTIME_PREFIX) {
            return RuntimeField::ALL
                .into_iter()
                .find(|f| f.name() == field)
                .map(UaNode::RuntimeVar);
        }
        let Some((device, rest)) = s.split_once('/') else {
            return self.table.device_id(s).map(UaNode::Device);
        };
        let device = self.table.device_id(device)?;
        if let Some(status) = rest.strip_prefix('/') {
            if status == STATUS {
                return Some(UaNode::Status(device));
            }
            let field = status.strip_prefix(STATUS)?.strip_prefix('/')?;
            return StatusField::ALL
                .into_iter()
                .find(|f| f.name() == field)
                .map(|f| UaNode::StatusVar(device, f));
        }
        if let Some((tag, property)) = rest.split_once("//") {
            if property.starts_with("Condition/") {
                return self.condition_node(device, tag, property);
            }
            let id = self.tag(device, tag)?;
            let def = self.table.tag(id)?;
            return match property {
                "EngineeringUnits" if def.units.is_some() => {
                    Some(UaNode::Property(id, Property::EngineeringUnits))
                }
                "EURange" if def.eng_range().is_some() => {
                    Some(UaNode::Property(id, Property::EURange))
                }
                _ => None,
            };
        }
        if let Some(prefix) = rest.strip_suffix('/') {
            return self
                .is_folder(device, prefix)
                .then(|| UaNode::Folder(device, prefix.into()));
        }
        self.tag(device, rest).map(UaNode::Tag)
    }

    fn tag(&self, device: DeviceId, name: &str) -> Option<TagId> {
        self.table.find_in_device(device, name)
    }

    /// A folder is a part of tag names that is not a tag itself.
    fn is_folder(&self, device: DeviceId, prefix: &str) -> bool {
        !prefix.is_empty()
            && self.tag(device, prefix).is_none()
            && self.table.tags_under(device, prefix).next().is_some()
    }

    /// The NodeId of `node`.
    pub fn node_id(&self, node: &UaNode) -> NodeId {
        let device = |d: &DeviceId| self.table.device(*d).map_or("", |d| d.name.as_str());
        let tag = |t: &TagId| {
            self.table
                .tag(*t)
                .map_or_else(String::new, |t| t.path.to_string())
        };
        let s = match node {
            UaNode::Root => ROOT.to_string(),
            UaNode::Devices => DEVICES.to_string(),
            UaNode::Runtime => RUNTIME.to_string(),
            UaNode::RuntimeVar(f) => format!("{RUNTIME_PREFIX}{}", f.name()),
            UaNode::Device(d) => device(d).to_string(),
            UaNode::Status(d) => format!("{}//{STATUS}", device(d)),
            UaNode::StatusVar(d, f) => format!("{}//{STATUS}/{}", device(d), f.name()),
            UaNode::Folder(d, prefix) => format!("{}/{prefix}/", device(d)),
            UaNode::Tag(t) => tag(t),
            UaNode::Property(t, p) => format!("{}//{}", tag(t), p.name()),
            UaNode::Condition(a) => self.condition_id_string(*a, None),
            UaNode::ConditionField(a, f) => self.condition_id_string(*a, Some(*f)),
        };
        NodeId::new(self.ns, s)
    }

    /// The browse name and display name of `node`. Properties have the standard browse
    /// names of namespace 0, as OPC UA Part 8 defines them.
    pub fn names(&self, node: &UaNode) -> (QualifiedName, LocalizedText) {
        let ours = |s: &str| (QualifiedName::new(self.ns, s), LocalizedText::from(s));
        match node {
            UaNode::Root => ours("uaedge"),
            UaNode::Devices => ours("Devices"),
            UaNode::Runtime => ours("Runtime"),
            UaNode::RuntimeVar(f) => ours(f.name()),
            UaNode::Device(d) => ours(self.table.device(*d).map_or("", |d| d.name.as_str())),
            UaNode::Status(_) => ours(STATUS),
            UaNode::StatusVar(_, f) => ours(f.name()),
            UaNode::Folder(_, prefix) => ours(leaf(prefix)),
            UaNode::Tag(t) => ours(self.table.tag(*t).map_or("", |t| leaf(&t.path.tag))),
            UaNode::Property(_, p) => {
                (QualifiedName::from(p.name()), LocalizedText::from(p.name()))
            }
            UaNode::Condition(a) => self.condition_names(*a, None),
            UaNode::ConditionField(a, f) => self.condition_names(*a, Some(*f)),
        }
    }

    pub fn node_class(node: &UaNode) -> NodeClass {
        match node {
            UaNode::Root
            | UaNode::Devices
            | UaNode::Runtime
            | UaNode::Device(_)
            | UaNode::Status(_)
            | UaNode::Folder(..)
            | UaNode::Condition(_) => NodeClass::Object,
            UaNode::RuntimeVar(_)
            | UaNode::StatusVar(..)
            | UaNode::Tag(_)
            | UaNode::Property(..)
            | UaNode::ConditionField(..) => NodeClass::Variable,
        }
    }

    pub fn type_definition(&self, node: &UaNode) -> NodeId {
        match node {
            UaNode::Root | UaNode::Devices | UaNode::Device(_) | UaNode::Folder(..) => {
                ObjectTypeId::FolderType.into()
            }
            UaNode::Runtime | UaNode::Status(_) => ObjectTypeId::BaseObjectType.into(),
            UaNode::RuntimeVar(_) | UaNode::StatusVar(..) => {
                VariableTypeId::BaseDataVariableType.into()
            }
            UaNode::Tag(t) => {
                if self.table.tag(*t).is_some_and(|t| t.range.is_some()) {
                    VariableTypeId::AnalogItemType.into()
                } else {
                    VariableTypeId::BaseDataVariableType.into()
                }
            }
            UaNode::Property(..) => VariableTypeId::PropertyType.into(),
            UaNode::Condition(a) => self.condition_type(*a, None),
            UaNode::ConditionField(a, f) => self.condition_type(*a, Some(*f)),
        }
    }

    /// Every reference of `node`, both ways.
    pub fn references(&self, node: &UaNode) -> Vec<Ref> {
        let mut refs = vec![Ref {
            kind: ReferenceTypeId::HasTypeDefinition,
            direction: ReferenceDirection::Forward,
            target: Target::Core(self.type_definition(node)),
        }];
        let mut add = |kind, direction, target| {
            refs.push(Ref {
                kind,
                direction,
                target,
            })
        };
        use ReferenceDirection::{Forward, Inverse};
        use ReferenceTypeId::{
            HasComponent, HasCondition, HasEventSource, HasNotifier, HasProperty, Organizes,
        };
        match node {
            UaNode::Root => {
                add(
                    Organizes,
                    Inverse,
                    Target::Core(ObjectId::ObjectsFolder.into()),
                );
                add(Organizes, Forward, Target::Ours(UaNode::Devices));
                add(HasComponent, Forward, Target::Ours(UaNode::Runtime));
                add(HasNotifier, Inverse, Target::Core(ObjectId::Server.into()));
                for d in self.table.devices() {
                    add(HasNotifier, Forward, Target::Ours(UaNode::Device(d.id)));
                }
            }
            UaNode::Devices => {
                add(Organizes, Inverse, Target::Ours(UaNode::Root));
                for d in self.table.devices() {
                    add(Organizes, Forward, Target::Ours(UaNode::Device(d.id)));
                }
            }
            UaNode::Runtime => {
                add(HasComponent, Inverse, Target::Ours(UaNode::Root));
                for f in RuntimeField::ALL {
                    add(HasComponent, Forward, Target::Ours(UaNode::RuntimeVar(f)));
                }
            }
            UaNode::RuntimeVar(_) => add(HasComponent, Inverse, Target::Ours(UaNode::Runtime)),
            UaNode::Device(d) => {
                add(Organizes, Inverse, Target::Ours(UaNode::Devices));
                add(HasNotifier, Inverse, Target::Ours(UaNode::Root));
                add(HasComponent, Forward, Target::Ours(UaNode::Status(*d)));
                for t in self.event_sources(*d) {
                    add(HasEventSource, Forward, Target::Ours(UaNode::Tag(t)));
                }
                for child in self.children(*d, "") {
                    add(Organizes, Forward, Target::Ours(child));
                }
            }
            UaNode::Status(d) => {
                add(HasComponent, Inverse, Target::Ours(UaNode::Device(*d)));
                for f in StatusField::ALL {
                    add(
                        HasComponent,
                        Forward,
                        Target::Ours(UaNode::StatusVar(*d, f)),
                    );
                }
            }
            UaNode::StatusVar(d, _) => add(HasComponent, Inverse, Target::Ours(UaNode::Status(*d))),
            UaNode::Folder(d, prefix) => {
                let (kind, parent) = self.parent(*d, prefix);
                add(kind, Inverse, Target::Ours(parent));
                for child in self.children(*d, prefix) {
                    add(Organizes, Forward, Target::Ours(child));
                }
            }
            UaNode::Tag(t) => {
                if let Some(def) = self.table.tag(*t) {
                    let (kind, parent) = self.parent(def.device, &def.path.tag);
                    add(kind, Inverse, Target::Ours(parent));
                    for p in properties(def) {
                        add(HasProperty, Forward, Target::Ours(UaNode::Property(*t, p)));
                    }
                    for child in self.children(def.device, &def.path.tag) {
                        add(HasComponent, Forward, Target::Ours(child));
                    }
                    let conditions = self.conditions_under(*t);
                    if !conditions.is_empty() {
                        let device = Target::Ours(UaNode::Device(def.device));
                        add(HasEventSource, Inverse, device);
                    }
                    for a in conditions {
                        add(HasComponent, Forward, Target::Ours(UaNode::Condition(a)));
                        add(HasCondition, Forward, Target::Ours(UaNode::Condition(a)));
                    }
                }
            }
            UaNode::Property(t, _) => add(HasProperty, Inverse, Target::Ours(UaNode::Tag(*t))),
            UaNode::Condition(a) | UaNode::ConditionField(a, _) => {
                let field = match node {
                    UaNode::ConditionField(_, f) => Some(*f),
                    _ => None,
                };
                self.condition_references(*a, field, &mut |kind, forward, target| {
                    add(kind, if forward { Forward } else { Inverse }, target)
                });
            }
        }
        refs
    }

    /// The forward references of `node` a TranslateBrowsePaths step may follow to a target
    /// named `name`, found by looking the name up instead of listing every child (a device
    /// may hold 100,000 tags). `None` for nodes with few references: list them.
    pub fn forward_named(&self, node: &UaNode, name: &QualifiedName) -> Option<Vec<Ref>> {
        let (device, prefix, kind) = match node {
            UaNode::Device(d) => (*d, "", ReferenceTypeId::Organizes),
            UaNode::Folder(d, prefix) => (*d, &**prefix, ReferenceTypeId::Organizes),
            UaNode::Tag(t) => {
                let def = self.table.tag(*t)?;
                (def.device, &*def.path.tag, ReferenceTypeId::HasComponent)
            }
            _ => return None,
        };
        let mut refs = vec![Ref {
            kind: ReferenceTypeId::HasTypeDefinition,
            direction: ReferenceDirection::Forward,
            target: Target::Core(self.type_definition(node)),
        }];
        let mut add = |kind, node| {
            refs.push(Ref {
                kind,
                direction: ReferenceDirection::Forward,
                target: Target::Ours(node),
            })
        };
        let segment = name.name.as_ref();
        if name.namespace_index == self.ns && !segment.is_empty() && !segment.contains('/') {
            let path = if prefix.is_empty() {
                segment.to_string()
            } else {
                format!("{prefix}/{segment}")
            };
            if let Some(tag) = self.tag(device, &path) {
                add(kind, UaNode::Tag(tag));
            } else if self.is_folder(device, &path) {
                add(kind, UaNode::Folder(device, path.into()));
            }
            if matches!(node, UaNode::Device(_)) && segment == STATUS {
                add(ReferenceTypeId::HasComponent, UaNode::Status(device));
            }
            if matches!(node, UaNode::Device(_)) {
                // Event sources sit anywhere below the device: few, so looked through.
                for t in self.event_sources(device) {
                    if self.names(&UaNode::Tag(t)).0 == *name {
                        add(ReferenceTypeId::HasEventSource, UaNode::Tag(t));
                    }
                }
            }
        }
        if let UaNode::Tag(t) = node {
            let def = self.table.tag(*t)?;
            for p in properties(def) {
                if name.namespace_index == 0 && segment == p.name() {
                    add(ReferenceTypeId::HasProperty, UaNode::Property(*t, p));
                }
            }
            if name.namespace_index == self.ns {
                for a in self.conditions_under(*t) {
                    if self.condition_names(a, None).0 == *name {
                        add(ReferenceTypeId::HasComponent, UaNode::Condition(a));
                        add(ReferenceTypeId::HasCondition, UaNode::Condition(a));
                    }
                }
            }
        }
        Some(refs)
    }

    /// The references of a node of the core namespace to ours: the Objects folder
    /// organizes uaedge's root, and the Server object is its event notifier. The inverse
    /// of HasTypeDefinition is left out, as OPC UA allows: a type node would otherwise
    /// list every tag.
    pub fn core_references(&self, id: &NodeId) -> Vec<Ref> {
        // The history's aggregates, in the Server's AggregateFunctions folder (Part 11 5.4.2).
        if self.historizing && *id == ObjectId::HistoryServerCapabilities_AggregateFunctions {
            return super::history_capabilities::aggregate_functions()
                .map(|a| Ref {
                    kind: ReferenceTypeId::HasComponent,
                    direction: ReferenceDirection::Forward,
                    target: Target::Core(a),
                })
                .collect();
        }
        let kind = if *id == ObjectId::ObjectsFolder {
            ReferenceTypeId::Organizes
        } else if *id == ObjectId::Server {
            ReferenceTypeId::HasNotifier
        } else {
            return Vec::new();
        };
        vec![Ref {
            kind,
            direction: ReferenceDirection::Forward,
            target: Target::Ours(UaNode::Root),
        }]
    }

    /// What a Browse shows of `node` at the other end of a reference.
    pub fn metadata(&self, node: &UaNode) -> NodeMetadata {
        let (browse_name, display_name) = self.names(node);
        NodeMetadata {
            node_id: ExpandedNodeId::new(self.node_id(node)),
            type_definition: ExpandedNodeId::new(self.type_definition(node)),
            browse_name,
            display_name,
            node_class: Space::node_class(node),
        }
    }

    /// The browse name, display name and node class of the core namespace's nodes our
    /// references point at, so that a Browse of our nodes answers them itself: async-opcua
    /// 0.19 loses a reference into another node manager when a client pages the Browse
    /// (and loops on a node with two).
    pub fn core_metadata(id: &NodeId) -> Option<NodeMetadata> {
        let folder: NodeId = ObjectTypeId::FolderType.into();
        let types: [(NodeId, &'static str, NodeClass); 5] = [
            (folder.clone(), "FolderType", NodeClass::ObjectType),
            (
                ObjectTypeId::BaseObjectType.into(),
                "BaseObjectType",
                NodeClass::ObjectType,
            ),
            (
                VariableTypeId::BaseDataVariableType.into(),
                "BaseDataVariableType",
                NodeClass::VariableType,
            ),
            (
                VariableTypeId::AnalogItemType.into(),
                "AnalogItemType",
                NodeClass::VariableType,
            ),
            (
                VariableTypeId::PropertyType.into(),
                "PropertyType",
                NodeClass::VariableType,
            ),
        ];
        let (name, node_class, type_definition) = if *id == ObjectId::ObjectsFolder {
            ("Objects", NodeClass::Object, ExpandedNodeId::new(folder))
        } else if *id == ObjectId::Server {
            let server: NodeId = ObjectTypeId::ServerType.into();
            ("Server", NodeClass::Object, ExpandedNodeId::new(server))
        } else if let Some(name) = super::history_capabilities::aggregate_name(id) {
            let kind: NodeId = ObjectTypeId::AggregateFunctionType.into();
            (name, NodeClass::Object, ExpandedNodeId::new(kind))
        } else {
            let (_, name, class) = types.into_iter().find(|(t, ..)| t == id)?;
            (name, class, ExpandedNodeId::null())
        };
        Some(NodeMetadata {
            node_id: ExpandedNodeId::new(id.clone()),
            type_definition,
            browse_name: QualifiedName::new(0, name),
            display_name: LocalizedText::from(name),
            node_class,
        })
    }

    /// The node that holds `name` (a tag's name or a folder's part of one) and the type of
    /// its reference to it: a tag holds its children as components, a folder or the device
    /// organizes them.
    fn parent(&self, device: DeviceId, name: &str) -> (ReferenceTypeId, UaNode) {
        match name.rsplit_once('/') {
            None => (ReferenceTypeId::Organizes, UaNode::Device(device)),
            Some((prefix, _)) => match self.tag(device, prefix) {
                Some(tag) => (ReferenceTypeId::HasComponent, UaNode::Tag(tag)),
                None => (
                    ReferenceTypeId::Organizes,
                    UaNode::Folder(device, prefix.into()),
                ),
            },
        }
    }

    /// The tags and folders directly inside `prefix` of `device` (its top level for an
    /// empty prefix), in name order.
    fn children(&self, device: DeviceId, prefix: &str) -> Vec<UaNode> {
        let skip = if prefix.is_empty() {
            0
        } else {
            prefix.len() + 1
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for t in self.table.tags_under(device, prefix) {
            let rest = t.path.tag.get(skip..).unwrap_or_default();
            let segment = rest.split('/').next().unwrap_or_default();
            if !seen.insert(segment) {
                continue;
            }
            let name = t.path.tag.get(..skip + segment.len()).unwrap_or_default();
            out.push(if name.len() == t.path.tag.len() {
                UaNode::Tag(t.id)
            } else {
                match self.tag(device, name) {
                    Some(tag) => UaNode::Tag(tag),
                    None => UaNode::Folder(device, name.into()),
                }
            });
        }
        out
    }

    /// `node` as an async-opcua node, with the attributes a client reads (values of tags,
    /// Status and Runtime variables aside: those come from the model). `None` when the
    /// node cannot be made (never for a node [`Space::node`] found).
    pub fn build(&self, node: &UaNode) -> Option<NodeType> {
        let id = self.node_id(node);
        let (browse, display) = self.names(node);
        // The notifier hierarchy Server → uaedge → device (see `conditions.rs`).
        let notifier = matches!(node, UaNode::Root | UaNode::Device(_));
        let object = |description: Option<String>| {
            let b = ObjectBuilder::new(&id, browse.clone(), display.clone());
            let b = if notifier && self.historizing {
                // Their alarms' events are in the history too.
                b.event_notifier(EventNotifier::SUBSCRIBE_TO_EVENTS | EventNotifier::HISTORY_READ)
            } else if notifier {
                b.event_notifier(EventNotifier::SUBSCRIBE_TO_EVENTS)
            } else {
                b
            };
            let b = match description {
                Some(d) => b.description(d),
                None => b,
            };
            b.is_valid().then(|| NodeType::Object(Box::new(b.build())))
        };
        let variable = |b: VariableBuilder| {
            let b = b.value_rank(-1);
            b.is_valid()
                .then(|| NodeType::Variable(Box::new(b.build())))
        };
        let new_variable = || VariableBuilder::new(&id, browse.clone(), display.clone());
        match node {
            UaNode::Root => object(Some(
                "uaedge edge runtime: devices and their tags, runtime status".into(),
            )),
            UaNode::Devices => object(None),
            UaNode::Runtime => object(Some(
                "State of the runtime: Sparkplug link, store-and-forward, throughput, alarms"
                    .into(),
            )),
            UaNode::RuntimeVar(f) => {
                // Not through `variable`: the per-server arrays have a rank of their own.
                let b = new_variable()
                    .data_type(f.data_type())
                    .value_rank(f.value_rank())
                    .description(f.description());
                b.is_valid()
                    .then(|| NodeType::Variable(Box::new(b.build())))
            }
            UaNode::Device(d) => {
                let d = self.table.device(*d)?;
                object(Some(format!("device `{}` (driver {})", d.name, d.driver)))
            }
            UaNode::Status(_) => object(Some(
                "the device link: connected, last error, driver, counters".into(),
            )),
            UaNode::StatusVar(_, f) => variable(new_variable().data_type(f.data_type())),
            UaNode::Folder(..) => object(None),
            UaNode::Tag(t) => {
                let tag = self.table.tag(*t)?;
                let historized = self.historizing && tag.historized;
                let mut access = access_level(tag);
                if historized {
                    access |= AccessLevel::HISTORY_READ;
                }
                let description = match &tag.description {
                    Some(d) => format!("{d} ({})", tag.address),
                    None => tag.address.to_string(),
                };
                variable(
                    new_variable()
                        .data_type(convert::data_type_id(tag.data_type))
                        .access_level(access)
                        .user_access_level(access)
                        .historizing(historized)
                        .description(description),
                )
            }
            UaNode::Property(t, p) => {
                let tag = self.table.tag(*t)?;
                let b = new_variable();
                variable(match p {
                    Property::EngineeringUnits => {
                        b.data_type(DataTypeId::EUInformation)
                            .value(ExtensionObject::from_message(units::eu_information(
                                tag.units.as_deref().unwrap_or_default(),
                            )))
                    }
                    Property::EURange => {
                        let [low, high] = tag.eng_range()?;
                        b.data_type(DataTypeId::Range)
                            .value(ExtensionObject::from_message(Range { low, high }))
                    }
                })
            }
            UaNode::Condition(a) => self.build_condition(&id, *a, None),
            UaNode::ConditionField(a, f) => self.build_condition(&id, *a, Some(*f)),
        }
    }
}

/// What a client may do with a tag's value (before its user's rights).
pub fn access_level(tag: &TagDef) -> AccessLevel {
    let mut access = AccessLevel::CURRENT_READ;
    if tag.writable {
        access |= AccessLevel::CURRENT_WRITE;
    }
    access
}

fn properties(tag: &TagDef) -> impl Iterator<Item = Property> {
    let units = tag.units.is_some().then_some(Property::EngineeringUnits);
    let range = tag.eng_range().is_some().then_some(Property::EURange);
    units.into_iter().chain(range)
}

/// The last part of a `/`-separated name.
fn leaf(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

#[cfg(test)]
#[path = "address_space_tests.rs"]
mod tests;
