//! The node manager that serves the model: async-opcua's in-memory node manager keeps the
//! structure (so Browse, TranslateBrowsePaths and attribute reads come for free), and this
//! implementation answers what is live — tag values straight from the [`TagTable`], the
//! Status and Runtime variables from the device and Sparkplug state — and carries writes
//! to the devices.
//!
//! [`TagTable`]: crate::model::TagTable

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opcua::server::address_space::AddressSpace;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{
    InMemoryNodeManager, InMemoryNodeManagerImpl, InMemoryNodeManagerImplBuilder,
};
use opcua::server::node_manager::{
    MonitoredItemRef, MonitoredItemUpdateRef, ParsedReadValueId, RequestContext, ServerContext,
    SyncSampler, WriteNode,
};
use opcua::server::CreateMonitoredItem;
use opcua::sync::RwLock;
use opcua::types::{
    AttributeId, DataValue, MonitoringMode, NumericRange, StatusCode, TimestampsToReturn, UAString,
    Variant,
};
use tracing::{debug, info};
use uaedge_driver::{Timestamp, WriteError};

use super::address_space::{self, Index, RuntimeField, StatusField, Target};
use super::auth::Authenticator;
use super::convert;
use crate::runtime::Handle;

/// The node manager type as the server holds it.
pub type ModelNodeManager = InMemoryNodeManager<ModelManager>;

pub struct ModelManagerBuilder {
    pub namespace_uri: String,
    pub handle: Handle,
    pub auth: Arc<Authenticator>,
}

impl InMemoryNodeManagerImplBuilder for ModelManagerBuilder {
    type Impl = ModelManager;

    fn build(self, context: ServerContext, space: &mut AddressSpace) -> ModelManager {
        let ns = context
            .type_tree
            .write()
            .namespaces_mut()
            .add_namespace(&self.namespace_uri);
        space.add_namespace(&self.namespace_uri, ns);
        let table = self.handle.table();
        let index = address_space::build(space, ns, &table);
        info!(
            namespace = %self.namespace_uri,
            ns,
            tags = index.tag_nodes.len(),
            "OPC UA address space built"
        );
        ModelManager {
            namespace: NamespaceMetadata {
                namespace_uri: self.namespace_uri,
                namespace_index: ns,
                ..Default::default()
            },
            view: parking_lot::RwLock::new(Arc::new(View {
                table,
                index: Arc::new(index),
            })),
            handle: self.handle,
            auth: self.auth,
            samplers: SyncSampler::new(),
        }
    }
}

/// The table and the address space's index that belong to it, swapped as one by a reload
/// so that a TagId is never looked up in the wrong table.
pub struct View {
    pub table: Arc<crate::model::TagTable>,
    pub index: Arc<Index>,
}

pub struct ModelManager {
    namespace: NamespaceMetadata,
    view: parking_lot::RwLock<Arc<View>>,
    handle: Handle,
    auth: Arc<Authenticator>,
    /// Polls the few Status and Runtime variables someone monitors; tags are pushed from
    /// model events instead (see `notify.rs`).
    samplers: SyncSampler,
}

impl ModelManager {
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Brings the address space to `table`: only the nodes of devices that went or changed
    /// shape are deleted, only those of new or changed ones added (see
    /// [`address_space::rebuild`]); sessions and monitored items stay.
    pub fn reload(&self, space: &RwLock<AddressSpace>, table: Arc<crate::model::TagTable>) {
        let old = self.view();
        if Arc::ptr_eq(&old.table, &table) {
            return;
        }
        // The view changes while the space is locked for writing: a Read (which takes the
        // space, then the view) never pairs new nodes with the old index.
        let mut space = space.write();
        let (index, touched) = address_space::rebuild(
            &mut space,
            self.namespace.namespace_index,
            &old.index,
            &old.table,
            &table,
        );
        let tags = index.tag_nodes.len();
        *self.view.write() = Arc::new(View {
            table,
            index: Arc::new(index),
        });
        drop(space);
        info!(
            devices_rebuilt = touched,
            tags, "OPC UA address space updated for the reloaded config"
        );
    }

    pub fn namespace_index(&self) -> u16 {
        self.namespace.namespace_index
    }

    async fn write_one(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        write: &mut WriteNode,
    ) {
        let status = self.check_write(context, space, write);
        let (tag, value) = match status {
            Ok(ok) => ok,
            Err(code) => {
                write.set_status(code);
                return;
            }
        };
        let result = self.handle.write(tag, &value).await;
        let code = match result {
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
        space: &RwLock<AddressSpace>,
        write: &WriteNode,
    ) -> Result<(crate::model::TagId, uaedge_driver::Value), StatusCode> {
        let w = write.value();
        let view = self.view();
        let target = view.index.target(&w.node_id);
        let Some(Target::Tag(tag)) = target else {
            return Err(if space.read().node_exists(&w.node_id) {
                StatusCode::BadNotWritable
            } else {
                StatusCode::BadNodeIdUnknown
            });
        };
        if w.attribute_id != AttributeId::Value {
            return Err(StatusCode::BadNotWritable);
        }
        let def = view.table.tag(tag).ok_or(StatusCode::BadNodeIdUnknown)?;
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
        Ok((tag, value))
    }
}

fn status_only(code: StatusCode) -> DataValue {
    DataValue {
        status: Some(code),
        ..Default::default()
    }
}

fn apply_timestamps(mut dv: DataValue, ttr: TimestampsToReturn) -> DataValue {
    if matches!(
        ttr,
        TimestampsToReturn::Neither | TimestampsToReturn::Server
    ) {
        dv.source_timestamp = None;
        dv.source_picoseconds = None;
    }
    if matches!(
        ttr,
        TimestampsToReturn::Neither | TimestampsToReturn::Source
    ) {
        dv.server_timestamp = None;
        dv.server_picoseconds = None;
    }
    dv
}

#[async_trait]
impl InMemoryNodeManagerImpl for ModelManager {
    async fn init(&self, _space: &mut AddressSpace, context: ServerContext) {
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

    fn name(&self) -> &str {
        "uaedge"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        vec![self.namespace.clone()]
    }

    async fn read_values(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        nodes: &[&ParsedReadValueId],
        max_age: f64,
        ttr: TimestampsToReturn,
    ) -> Vec<DataValue> {
        let space = space.read();
        let view = self.view();
        // One lock on the table for the whole request: a Read of 10,000 tags is one pass.
        view.table.states(|states| {
            nodes
                .iter()
                .map(|n| {
                    let node = match space.validate_node_read(context, n) {
                        Ok(node) => node,
                        Err(e) => return status_only(e),
                    };
                    match view.index.target(&n.node_id) {
                        Some(_) if n.index_range != NumericRange::None => {
                            status_only(StatusCode::BadIndexRangeNoData)
                        }
                        Some(Target::Tag(tag)) => match states.get(tag.index()) {
                            Some(s) => apply_timestamps(convert::state_value(s), ttr),
                            None => status_only(StatusCode::BadNodeIdUnknown),
                        },
                        Some(target) => {
                            apply_timestamps(live(&self.handle, &view.table, target), ttr)
                        }
                        None => opcua::server::address_space::read_node_value(
                            node, context, n, max_age, ttr,
                        ),
                    }
                })
                .collect()
        })
    }

    async fn create_value_monitored_items(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        items: &mut [&mut &mut CreateMonitoredItem],
    ) {
        let to_read: Vec<_> = items.iter().map(|r| r.item_to_monitor()).collect();
        let values = self
            .read_values(context, space, &to_read, 0.0, TimestampsToReturn::Both)
            .await;
        for (value, item) in values.into_iter().zip(items.iter_mut()) {
            let status = value.status();
            if status == StatusCode::BadNodeIdUnknown {
                item.set_status(status);
                continue;
            }
            if status != StatusCode::BadAttributeIdInvalid {
                item.set_initial_value(value);
            }
            item.set_status(StatusCode::Good);
            let node = item.item_to_monitor().node_id.clone();
            // Tags need nothing more: model events push their changes.
            if let Some(Target::Status(..) | Target::Runtime(_)) = self.view().index.target(&node) {
                let sampler = LiveSampler {
                    handle: self.handle.clone(),
                    node: node.clone(),
                };
                let interval = Duration::from_secs_f64(item.sampling_interval().max(0.0) / 1000.0);
                self.samplers.add_sampler(
                    node,
                    AttributeId::Value,
                    move || Some(sampler.sample()),
                    item.monitoring_mode(),
                    item.handle(),
                    interval,
                );
            }
        }
    }

    async fn modify_monitored_items(
        &self,
        _context: &RequestContext,
        items: &[&MonitoredItemUpdateRef],
    ) {
        for it in items {
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
        _context: &RequestContext,
        mode: MonitoringMode,
        items: &[&MonitoredItemRef],
    ) {
        for it in items {
            self.samplers
                .set_sampler_mode(it.node_id(), it.attribute(), it.handle(), mode);
        }
    }

    async fn delete_monitored_items(&self, _context: &RequestContext, items: &[&MonitoredItemRef]) {
        for it in items {
            self.samplers
                .remove_sampler(it.node_id(), it.attribute(), it.handle());
        }
    }

    async fn write(
        &self,
        context: &RequestContext,
        space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        for write in nodes_to_write.iter_mut() {
            self.write_one(context, space, write).await;
        }
        Ok(())
    }
}

/// What a sampler closure needs to read one Status or Runtime variable without the node
/// manager itself (the sampler runs on its own task). It holds the NodeId, not the
/// target: a reload may give the device another DeviceId, never another NodeId.
struct LiveSampler {
    handle: Handle,
    node: opcua::types::NodeId,
}

impl LiveSampler {
    fn sample(&self) -> DataValue {
        let table = self.handle.table();
        match address_space::target_in(&table, &self.node) {
            Some(target) => live(&self.handle, &table, target),
            // Its device went with a reload.
            None => status_only(StatusCode::BadNodeIdUnknown),
        }
    }
}

/// The current value of a Status or Runtime variable.
pub fn live(handle: &Handle, table: &crate::model::TagTable, target: Target) -> DataValue {
    let sparkplug = handle.sparkplug_status();
    let now = convert::date_time(Timestamp::now());
    let good = |v: Variant| DataValue {
        value: Some(v),
        status: Some(StatusCode::Good),
        source_timestamp: Some(now),
        server_timestamp: Some(now),
        ..Default::default()
    };
    match target {
        Target::Tag(_) => status_only(StatusCode::BadNodeIdUnknown),
        Target::Status(device, field) => {
            let Some(state) = table.device_state(device) else {
                return status_only(StatusCode::BadNodeIdUnknown);
            };
            good(match field {
                StatusField::Connected => Variant::Boolean(state.connected),
                StatusField::LastError => Variant::String(
                    state
                        .last_error
                        .as_deref()
                        .map_or_else(UAString::null, UAString::from),
                ),
                StatusField::Driver => Variant::String(UAString::from(
                    table.device(device).map_or("", |d| d.driver.as_str()),
                )),
                StatusField::Reconnects => Variant::UInt64(state.reconnects),
                StatusField::SamplesIn => Variant::UInt64(state.samples_in),
            })
        }
        Target::Runtime(RuntimeField::SamplesIn) => {
            let total = table
                .devices()
                .iter()
                .filter_map(|d| table.device_state(d.id))
                .map(|s| s.samples_in)
                .sum::<u64>();
            good(Variant::UInt64(total))
        }
        // Alarms are the runtime's own: they exist with or without MQTT.
        Target::Runtime(RuntimeField::AlarmsActive) => {
            good(Variant::UInt64(handle.alarm_counts().active))
        }
        Target::Runtime(RuntimeField::AlarmTransitions) => {
            good(Variant::UInt64(handle.alarm_counts().transitions))
        }
        Target::Runtime(field) => {
            // Without a `sparkplug:` section there is no MQTT link to describe.
            let Some(sparkplug) = sparkplug else {
                return status_only(StatusCode::BadOutOfService);
            };
            let s = sparkplug.snapshot();
            good(match field {
                RuntimeField::MqttConnected => Variant::Boolean(s.mqtt_connected),
                RuntimeField::PrimaryHostOnline => Variant::Boolean(s.primary_host_online),
                RuntimeField::StoreBacklog => Variant::UInt64(s.backlog_records),
                RuntimeField::SamplesOut
                | RuntimeField::SamplesIn
                | RuntimeField::AlarmsActive
                | RuntimeField::AlarmTransitions => Variant::UInt64(s.samples_published),
            })
        }
    }
}
