//! The address space: Objects/uaedge/Devices/<device>/<folders…>/<tag>, a Status object
//! per device and a Runtime object.
//!
//! Only structure lives here (nodes, references, static properties such as EURange); the
//! values of tags, Status and Runtime variables are read from the model when asked, so the
//! server holds no second copy of them.
//!
//! NodeIds: a tag is `s=<device>/<tag>`, exactly its TagPath; a device folder is
//! `s=<device>`. Nodes uaedge adds around the model use forms no tag path can take (tag
//! names have no empty segments, device names no `/`): a folder `s=<device>/<folder>/` ends
//! with `/`, Status and properties sit behind `//` (`s=press3//Status/Connected`,
//! `s=press3/hydraulics/pressure//EURange`), and the fixed nodes start with `/`
//! (`s=/uaedge/Runtime`).

use std::collections::HashMap;

use opcua::server::address_space::{AccessLevel, AddressSpace, ObjectBuilder, VariableBuilder};
use opcua::types::{
    DataTypeId, ExtensionObject, NodeId, ObjectId, ObjectTypeId, QualifiedName, Range,
    VariableTypeId,
};
use tracing::warn;

use super::convert;
use super::units;
use crate::model::{DeviceId, TagId, TagTable};

/// A live variable of the Status object of each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusField {
    Connected,
    LastError,
    Driver,
    Reconnects,
    SamplesIn,
}

impl StatusField {
    const ALL: [StatusField; 5] = [
        StatusField::Connected,
        StatusField::LastError,
        StatusField::Driver,
        StatusField::Reconnects,
        StatusField::SamplesIn,
    ];

    fn name(self) -> &'static str {
        match self {
            StatusField::Connected => "Connected",
            StatusField::LastError => "LastError",
            StatusField::Driver => "Driver",
            StatusField::Reconnects => "Reconnects",
            StatusField::SamplesIn => "SamplesIn",
        }
    }

    fn data_type(self) -> DataTypeId {
        match self {
            StatusField::Connected => DataTypeId::Boolean,
            StatusField::LastError | StatusField::Driver => DataTypeId::String,
            StatusField::Reconnects | StatusField::SamplesIn => DataTypeId::UInt64,
        }
    }
}

/// A live variable of the Runtime object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeField {
    MqttConnected,
    PrimaryHostOnline,
    StoreBacklog,
    SamplesIn,
    SamplesOut,
    AlarmsActive,
    AlarmTransitions,
}

impl RuntimeField {
    const ALL: [RuntimeField; 7] = [
        RuntimeField::MqttConnected,
        RuntimeField::PrimaryHostOnline,
        RuntimeField::StoreBacklog,
        RuntimeField::SamplesIn,
        RuntimeField::SamplesOut,
        RuntimeField::AlarmsActive,
        RuntimeField::AlarmTransitions,
    ];

    fn name(self) -> &'static str {
        match self {
            RuntimeField::MqttConnected => "MqttConnected",
            RuntimeField::PrimaryHostOnline => "PrimaryHostOnline",
            RuntimeField::StoreBacklog => "StoreBacklog",
            RuntimeField::SamplesIn => "SamplesIn",
            RuntimeField::SamplesOut => "SamplesOut",
            RuntimeField::AlarmsActive => "AlarmsActive",
            RuntimeField::AlarmTransitions => "AlarmTransitions",
        }
    }

    fn data_type(self) -> DataTypeId {
        match self {
            RuntimeField::MqttConnected | RuntimeField::PrimaryHostOnline => DataTypeId::Boolean,
            _ => DataTypeId::UInt64,
        }
    }

    fn description(self) -> &'static str {
        match self {
            RuntimeField::MqttConnected => "The Sparkplug edge node's MQTT connection is up",
            RuntimeField::PrimaryHostOnline => {
                "The Sparkplug primary host is online (true without a primary host)"
            }
            RuntimeField::StoreBacklog => {
                "Store-and-forward records waiting for the broker's acknowledgement"
            }
            RuntimeField::SamplesIn => "Readings taken from all devices since start",
            RuntimeField::SamplesOut => "Samples acknowledged by the MQTT broker since start",
            RuntimeField::AlarmsActive => "Anomaly alarms Active now (tags' Alarms/<check>)",
            RuntimeField::AlarmTransitions => "Anomaly alarm transitions (either way) since start",
        }
    }
}

/// What a variable node of ours stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Tag(TagId),
    Status(DeviceId, StatusField),
    Runtime(RuntimeField),
}

/// The way from NodeIds to the model and back.
pub struct Index {
    pub by_node: HashMap<NodeId, Target>,
    /// Each tag's NodeId, by TagId.
    pub tag_nodes: Vec<NodeId>,
    /// Every node made for a device, by device name: what a reload deletes when the device
    /// goes or changes.
    pub device_nodes: HashMap<String, Vec<NodeId>>,
}

impl Index {
    pub fn target(&self, node: &NodeId) -> Option<Target> {
        self.by_node.get(node).copied()
    }
}

/// The Status or Runtime variable `node` names in `table`, from its NodeId alone (so a
/// sampler made before a reload finds its device's new DeviceId).
pub fn target_in(table: &TagTable, node: &NodeId) -> Option<Target> {
    let opcua::types::Identifier::String(s) = &node.identifier else {
        return None;
    };
    let s = s.as_ref();
    if let Some(field) = s.strip_prefix("/uaedge/Runtime/") {
        return RuntimeField::ALL
            .into_iter()
            .find(|f| f.name() == field)
            .map(Target::Runtime);
    }
    let (device, field) = s.split_once("//Status/")?;
    let id = table.devices().iter().find(|d| d.name == device)?.id;
    StatusField::ALL
        .into_iter()
        .find(|f| f.name() == field)
        .map(|f| Target::Status(id, f))
}

/// The NodeId of a tag, for clients and tests: `ns=<ns>;s=<device>/<tag>`.
pub fn tag_node_id(ns: u16, path: &str) -> NodeId {
    NodeId::new(ns, path.to_string())
}

/// Builds every node of the model into `space`, whose namespace `ns` must be registered.
pub fn build(space: &mut AddressSpace, ns: u16, table: &TagTable) -> Index {
    let id = |s: String| NodeId::new(ns, s);
    let name = |s: &str| QualifiedName::new(ns, s);
    let mut index = index_of(ns, table);
    let mut fixed = Vec::new();
    let nodes = &mut fixed;

    let root = id("/uaedge".into());
    insert_object(
        space,
        nodes,
        ObjectBuilder::new(&root, name("uaedge"), "uaedge")
            .is_folder()
            .description("uaedge edge runtime: devices and their tags, runtime status")
            .organized_by(ObjectId::ObjectsFolder),
    );
    let devices = id("/uaedge/Devices".into());
    insert_object(
        space,
        nodes,
        ObjectBuilder::new(&devices, name("Devices"), "Devices")
            .is_folder()
            .organized_by(root.clone()),
    );
    let runtime = id("/uaedge/Runtime".into());
    insert_object(
        space,
        nodes,
        ObjectBuilder::new(&runtime, name("Runtime"), "Runtime")
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .description(
                "State of the runtime: Sparkplug link, store-and-forward, throughput, alarms",
            )
            .component_of(root),
    );
    for field in RuntimeField::ALL {
        let node = id(format!("/uaedge/Runtime/{}", field.name()));
        insert_variable(
            space,
            nodes,
            VariableBuilder::new(&node, name(field.name()), field.name())
                .data_type(field.data_type())
                .value_rank(-1)
                .description(field.description())
                .has_type_definition(VariableTypeId::BaseDataVariableType)
                .component_of(runtime.clone()),
        );
    }

    for device in table.devices() {
        let made = insert_device(space, ns, table, device);
        index.device_nodes.insert(device.name.clone(), made);
    }
    index
}

/// The NodeIds of `table`'s tags, Status and Runtime variables, without touching a space.
fn index_of(ns: u16, table: &TagTable) -> Index {
    let id = |s: String| NodeId::new(ns, s);
    let mut by_node = HashMap::with_capacity(table.tags().len() + 8 * table.devices().len() + 8);
    for field in RuntimeField::ALL {
        by_node.insert(
            id(format!("/uaedge/Runtime/{}", field.name())),
            Target::Runtime(field),
        );
    }
    for device in table.devices() {
        for field in StatusField::ALL {
            by_node.insert(
                id(format!("{}//Status/{}", device.name, field.name())),
                Target::Status(device.id, field),
            );
        }
    }
    let tag_nodes: Vec<NodeId> = table
        .tags()
        .iter()
        .map(|t| id(t.path.to_string()))
        .collect();
    for (t, node) in table.tags().iter().zip(&tag_nodes) {
        by_node.insert(node.clone(), Target::Tag(t.id));
    }
    Index {
        by_node,
        tag_nodes,
        device_nodes: HashMap::new(),
    }
}

/// Brings `space` from `old_table` to `table`: the nodes of devices removed or changed in
/// shape (see [`TagTable::same_device_shape`]) go, those of added or changed ones come,
/// and the rest stay as they are, so monitored items on them keep delivering. Returns the
/// new index and how many devices were rebuilt or removed.
pub fn rebuild(
    space: &mut AddressSpace,
    ns: u16,
    old: &Index,
    old_table: &TagTable,
    table: &TagTable,
) -> (Index, usize) {
    let mut index = index_of(ns, table);
    let mut touched = 0;
    for (name, nodes) in &old.device_nodes {
        if old_table.same_device_shape(name, table) {
            index.device_nodes.insert(name.clone(), nodes.clone());
            continue;
        }
        touched += 1;
        for node in nodes {
            space.delete(node, true);
        }
    }
    for device in table.devices() {
        if index.device_nodes.contains_key(&device.name) {
            continue;
        }
        // A changed device was counted when its old nodes went.
        if !old.device_nodes.contains_key(&device.name) {
            touched += 1;
        }
        let made = insert_device(space, ns, table, device);
        index.device_nodes.insert(device.name.clone(), made);
    }
    (index, touched)
}

/// A device's folder, Status object and tags, under Devices; returns every NodeId made.
fn insert_device(
    space: &mut AddressSpace,
    ns: u16,
    table: &TagTable,
    device: &crate::model::DeviceDef,
) -> Vec<NodeId> {
    let id = |s: String| NodeId::new(ns, s);
    let name = |s: &str| QualifiedName::new(ns, s);
    let devices = id("/uaedge/Devices".into());
    let mut made = Vec::new();
    let nodes = &mut made;
    {
        let dev = id(device.name.clone());
        insert_object(
            space,
            nodes,
            ObjectBuilder::new(&dev, name(&device.name), device.name.as_str())
                .is_folder()
                .description(format!(
                    "device `{}` (driver {})",
                    device.name, device.driver
                ))
                .organized_by(devices.clone()),
        );
        let status = id(format!("{}//Status", device.name));
        insert_object(
            space,
            nodes,
            ObjectBuilder::new(&status, name("Status"), "Status")
                .has_type_definition(ObjectTypeId::BaseObjectType)
                .description("the device link: connected, last error, driver, counters")
                .component_of(dev.clone()),
        );
        for field in StatusField::ALL {
            let node = id(format!("{}//Status/{}", device.name, field.name()));
            insert_variable(
                space,
                nodes,
                VariableBuilder::new(&node, name(field.name()), field.name())
                    .data_type(field.data_type())
                    .value_rank(-1)
                    .has_type_definition(VariableTypeId::BaseDataVariableType)
                    .component_of(status.clone()),
            );
        }

        // Folders for the `/`-separated parts of tag names, made on first use. A prefix that is
        // itself a tag hangs its children under that tag's variable instead: an alarm
        // `pressure/Alarms/high` sits in an `Alarms` folder that is a component of the
        // `pressure` variable (Organizes may only start at an object), never in a folder
        // `pressure` beside it.
        let mut parents: HashMap<String, NodeId> = HashMap::new();
        let device_tags = table.device_tags(device.id);
        let tag_paths: HashMap<&str, NodeId> = device_tags
            .iter()
            .map(|t| (&*t.path.tag, id(t.path.to_string())))
            .collect();
        for tag in device_tags {
            let segments: Vec<&str> = tag.path.tag.split('/').collect();
            let mut parent = dev.clone();
            let mut parent_is_tag = false;
            let mut prefix = String::new();
            for segment in &segments[..segments.len().saturating_sub(1)] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(segment);
                let under_tag = parent_is_tag;
                parent_is_tag = tag_paths.contains_key(prefix.as_str());
                parent = if let Some(tag_node) = tag_paths.get(prefix.as_str()) {
                    tag_node.clone()
                } else if let Some(folder) = parents.get(&prefix) {
                    folder.clone()
                } else {
                    let folder = id(format!("{}/{prefix}/", device.name));
                    let builder = ObjectBuilder::new(&folder, name(segment), *segment).is_folder();
                    let builder = if under_tag {
                        builder.component_of(parent.clone())
                    } else {
                        builder.organized_by(parent.clone())
                    };
                    insert_object(space, nodes, builder);
                    parents.insert(prefix.clone(), folder.clone());
                    folder
                };
            }
            let leaf = segments.last().copied().unwrap_or(&tag.path.tag);
            let node = id(tag.path.to_string());
            add_tag(space, nodes, ns, &node, leaf, tag, parent, parent_is_tag);
        }
    }
    made
}

#[allow(clippy::too_many_arguments)]
fn add_tag(
    space: &mut AddressSpace,
    nodes: &mut Vec<NodeId>,
    ns: u16,
    node: &NodeId,
    leaf: &str,
    tag: &crate::model::TagDef,
    parent: NodeId,
    parent_is_tag: bool,
) {
    let mut access = AccessLevel::CURRENT_READ;
    if tag.writable {
        access |= AccessLevel::CURRENT_WRITE;
    }
    let description = match &tag.description {
        Some(d) => format!("{d} ({})", tag.address),
        None => tag.address.to_string(),
    };
    let type_definition = if tag.range.is_some() {
        VariableTypeId::AnalogItemType
    } else {
        VariableTypeId::BaseDataVariableType
    };
    let builder = VariableBuilder::new(node, QualifiedName::new(ns, leaf), leaf)
        .data_type(convert::data_type_id(tag.data_type))
        .value_rank(-1)
        .access_level(access)
        .user_access_level(access)
        .description(description)
        .has_type_definition(type_definition);
    let builder = if parent_is_tag {
        builder.component_of(parent)
    } else {
        builder.organized_by(parent)
    };
    insert_variable(space, nodes, builder);

    if let Some(units) = &tag.units {
        let eu = NodeId::new(ns, format!("{}//EngineeringUnits", tag.path));
        insert_variable(
            space,
            nodes,
            VariableBuilder::new(&eu, "EngineeringUnits", "EngineeringUnits")
                .data_type(DataTypeId::EUInformation)
                .value_rank(-1)
                .value(ExtensionObject::from_message(units::eu_information(units)))
                .has_type_definition(VariableTypeId::PropertyType)
                .property_of(node.clone()),
        );
    }
    if let Some([low, high]) = tag.eng_range() {
        let range = NodeId::new(ns, format!("{}//EURange", tag.path));
        insert_variable(
            space,
            nodes,
            VariableBuilder::new(&range, "EURange", "EURange")
                .data_type(DataTypeId::Range)
                .value_rank(-1)
                .value(ExtensionObject::from_message(Range { low, high }))
                .has_type_definition(VariableTypeId::PropertyType)
                .property_of(node.clone()),
        );
    }
}

// The builders panic on an invalid node (a null id or browse name); config validation rules
// those out, and a node that slipped through is logged and left out rather than taking
// the server down.
fn insert_object(space: &mut AddressSpace, nodes: &mut Vec<NodeId>, builder: ObjectBuilder) {
    if builder.is_valid() {
        nodes.push(builder.get_node_id().clone());
        builder.insert(space);
    } else {
        warn!(node = %builder.get_node_id(), "invalid object node left out of the address space");
    }
}

fn insert_variable(space: &mut AddressSpace, nodes: &mut Vec<NodeId>, builder: VariableBuilder) {
    if builder.is_valid() {
        nodes.push(builder.get_node_id().clone());
        builder.insert(space);
    } else {
        warn!(node = %builder.get_node_id(), "invalid variable node left out of the address space");
    }
}
