use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::client::{Client, MonitoredItem, OnSubscriptionNotification, Session};
use opcua::types::{
    AttributeId, BrowsePath, DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType,
    ExtensionObject, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
    ObjectId, ReadValueId, ReferenceTypeId, RelativePath, RelativePathElement,
    StatusChangeNotification, StatusCode, TimestampsToReturn, VariableId, WriteValue,
};
use tracing::{debug, info, warn};
use uaedge_driver::{
    async_trait, BadReason, DataType, Driver, LinkError, Quality, Reading, Value, WriteError,
};

use crate::address::OpcAddress;
use crate::convert;
use crate::options::{Deadband, Mode, Options};
use crate::session::{self, link_error, Live, Shared};

/// The server sends at least a keep-alive publish every this many publishing intervals.
const SUBSCRIPTION_KEEP_ALIVE_COUNT: u32 = 10;
/// The subscription outlives this many publishing intervals without a publish request;
/// three times the keep-alive count, as the specification requires at least.
const SUBSCRIPTION_LIFETIME_COUNT: u32 = 3 * SUBSCRIPTION_KEEP_ALIVE_COUNT;

pub(crate) struct Tag {
    pub name: String,
    pub data_type: DataType,
    pub address: OpcAddress,
    /// The last problem logged for this tag, so each is logged once, not once per read.
    pub problem: Option<String>,
}

pub(crate) struct OpcUaDriver {
    pub device: String,
    pub options: Options,
    pub tags: Vec<Tag>,
    pub client: Option<Client>,
    pub conn: Option<Conn>,
}

pub(crate) struct Conn {
    live: Live,
    shared: Arc<Shared>,
    /// Each tag's node in this session; `None` when it could not be resolved.
    nodes: Vec<Option<NodeId>>,
    /// Bad readings for tags the server refused at connect, delivered on the next read.
    pending: Vec<Reading>,
    chunk: usize,
}

impl OpcUaDriver {
    fn request_timeout(&self) -> Duration {
        self.options.request_timeout.get()
    }

    /// Longest silence of the subscription before we call the session dead: the server owes
    /// us a keep-alive every `publishing_interval × keep-alive count`.
    fn publish_deadline(&self) -> Duration {
        self.options
            .publishing_interval
            .get()
            .saturating_mul(SUBSCRIPTION_KEEP_ALIVE_COUNT + 2)
            .max(Duration::from_secs(2))
            + self.request_timeout().saturating_mul(2)
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.live
                .close(self.request_timeout().min(Duration::from_secs(2)))
                .await;
        }
    }

    /// Resolves the tags and, in subscription mode, subscribes: (nodes, pending, chunk).
    async fn setup(
        &mut self,
        session: &Session,
        shared: &Arc<Shared>,
    ) -> Result<(Vec<Option<NodeId>>, Vec<Reading>, usize), LinkError> {
        let mut pending = Vec::new();
        let nodes = self.resolve(session, &mut pending).await?;
        let chunk = max_nodes_per_read(session, &self.options).await;
        if self.options.mode == Mode::Subscription {
            self.subscribe(session, shared, &nodes, chunk, &mut pending)
                .await?;
        }
        Ok((nodes, pending, chunk))
    }

    /// NodeIds for this session: namespace URIs looked up in the server's namespace array,
    /// browse paths translated, in as few calls as the server allows.
    async fn resolve(
        &mut self,
        session: &Session,
        pending: &mut Vec<Reading>,
    ) -> Result<Vec<Option<NodeId>>, LinkError> {
        let mut nodes: Vec<Option<NodeId>> = vec![None; self.tags.len()];
        let needs_namespaces = self
            .tags
            .iter()
            .any(|t| matches!(t.address, OpcAddress::NamespaceUri { .. }));
        let namespaces = if needs_namespaces {
            Some(
                session
                    .read_namespace_array()
                    .await
                    .map_err(|e| link_error(e.status(), &format!("namespace array: {e}")))?,
            )
        } else {
            None
        };
        let mut paths = Vec::new();
        let mut path_tags = Vec::new();
        let addresses: Vec<OpcAddress> = self.tags.iter().map(|t| t.address.clone()).collect();
        for (i, address) in addresses.iter().enumerate() {
            match address {
                OpcAddress::Node(n) => nodes[i] = Some(n.clone()),
                OpcAddress::NamespaceUri { uri, node } => {
                    match namespaces.as_ref().and_then(|m| m.get_index(uri)) {
                        Some(ns) => nodes[i] = Some(NodeId::new(ns, node.identifier.clone())),
                        None => pending.push(
                            self.refuse(i, format!("namespace `{uri}` is not on the server")),
                        ),
                    }
                }
                OpcAddress::BrowsePath(p) => {
                    paths.push(BrowsePath {
                        starting_node: ObjectId::ObjectsFolder.into(),
                        relative_path: RelativePath {
                            elements: Some(
                                OpcAddress::browse_names(p)
                                    .into_iter()
                                    .map(|name| RelativePathElement {
                                        reference_type_id: ReferenceTypeId::HierarchicalReferences
                                            .into(),
                                        is_inverse: false,
                                        include_subtypes: true,
                                        target_name: name,
                                    })
                                    .collect(),
                            ),
                        },
                    });
                    path_tags.push(i);
                }
            }
        }
        for (chunk, tags) in paths.chunks(100).zip(path_tags.chunks(100)) {
            let results = session
                .translate_browse_paths_to_node_ids(chunk)
                .await
                .map_err(|e| link_error(e.status(), &format!("browse paths: {e}")))?;
            for (k, &i) in tags.iter().enumerate() {
                let found = results.get(k).and_then(|r| {
                    if !r.status_code.is_good() {
                        return None;
                    }
                    r.targets.iter().flatten().find_map(|t| {
                        (t.target_id.server_index == 0 && t.target_id.namespace_uri.is_null())
                            .then(|| t.target_id.node_id.clone())
                    })
                });
                match found {
                    Some(node) => {
                        debug!(device = %self.device, tag = %self.tags[i].name, node = %node, "browse path resolved");
                        nodes[i] = Some(node);
                    }
                    None => {
                        let status = results
                            .get(k)
                            .map_or(StatusCode::BadNoMatch, |r| r.status_code);
                        pending.push(self.refuse(i, format!("browse path not found: {status}")));
                    }
                }
            }
        }
        Ok(nodes)
    }

    async fn subscribe(
        &mut self,
        session: &Session,
        shared: &Arc<Shared>,
        nodes: &[Option<NodeId>],
        chunk: usize,
        pending: &mut Vec<Reading>,
    ) -> Result<(), LinkError> {
        let o = &self.options;
        let id = session
            .create_subscription(
                o.publishing_interval.get(),
                SUBSCRIPTION_LIFETIME_COUNT,
                SUBSCRIPTION_KEEP_ALIVE_COUNT,
                0,
                0,
                true,
                Sink {
                    shared: shared.clone(),
                },
            )
            .await
            .map_err(|e| link_error(e.status(), &format!("create subscription: {e}")))?;
        let sampling = o.sampling().get().as_secs_f64() * 1000.0;
        let items: Vec<(usize, MonitoredItemCreateRequest)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .map(|(i, node)| {
                let filter = match (o.deadband, self.tags[i].data_type.is_numeric()) {
                    (Some(d), true) => {
                        let (deadband_type, deadband_value) = match d {
                            Deadband::Absolute(x) => (DeadbandType::Absolute, x),
                            Deadband::Percent(x) => (DeadbandType::Percent, x),
                        };
                        ExtensionObject::from_message(DataChangeFilter {
                            trigger: DataChangeTrigger::StatusValue,
                            deadband_type: deadband_type as u32,
                            deadband_value,
                        })
                    }
                    _ => ExtensionObject::null(),
                };
                let request = MonitoredItemCreateRequest {
                    item_to_monitor: value_of(node),
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        // Handles start at 1: async-opcua replaces 0 with its own.
                        client_handle: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        sampling_interval: sampling,
                        filter,
                        queue_size: o.queue_size,
                        discard_oldest: true,
                    },
                };
                (i, request)
            })
            .collect();
        for batch in items.chunks(chunk) {
            let requests = batch.iter().map(|(_, r)| r.clone()).collect();
            let created = session
                .create_monitored_items(id, TimestampsToReturn::Both, requests)
                .await
                .map_err(|e| link_error(e.status(), &format!("create monitored items: {e}")))?;
            for ((i, _), item) in batch.iter().zip(&created) {
                let status = item.result.status_code;
                if !status.is_good() {
                    pending.push(self.refuse(*i, format!("monitored item refused: {status}")));
                }
            }
        }
        debug!(device = %self.device, subscription = id, items = items.len(), "subscribed");
        Ok(())
    }

    /// A Bad reading for a tag the server refused, logged once per distinct problem.
    fn refuse(&mut self, i: usize, problem: String) -> Reading {
        let quality = Quality::Bad(BadReason::ConfigError);
        note_problem(&self.device, &mut self.tags[i], problem);
        Reading::bad(index(i), quality_reason(quality))
    }

    fn reading(&mut self, i: usize, dv: DataValue) -> Reading {
        let tag = &mut self.tags[i];
        let status = dv.status.unwrap_or(StatusCode::Good);
        let source_time = dv
            .source_timestamp
            .as_ref()
            .or(dv.server_timestamp.as_ref())
            .map(convert::timestamp);
        let quality = convert::quality(status);
        let result = if quality.is_bad() {
            Err((quality, format!("server status {status}")))
        } else {
            match dv.value.as_ref() {
                None | Some(opcua::types::Variant::Empty) => Err((
                    Quality::Bad(BadReason::DeviceFailure),
                    "the server sent no value".to_string(),
                )),
                Some(v) => match convert::value(v) {
                    None => Err((
                        Quality::Bad(BadReason::ConfigError),
                        format!("the server's {:?} is not a model type", v.type_id()),
                    )),
                    Some(value) => value.convert(tag.data_type).map_err(|e| {
                        (
                            Quality::Bad(BadReason::ConfigError),
                            format!("{e} (declared type {})", tag.data_type),
                        )
                    }),
                },
            }
        };
        match result {
            Ok(value) => {
                if tag.problem.take().is_some() {
                    info!(device = %self.device, tag = %tag.name, "tag readable again");
                }
                Reading {
                    tag: index(i),
                    value: Some(value),
                    quality,
                    source_time,
                }
            }
            Err((quality, problem)) => {
                note_problem(&self.device, tag, problem);
                Reading {
                    tag: index(i),
                    value: None,
                    quality,
                    source_time,
                }
            }
        }
    }

    async fn poll(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(LinkError::not_connected("not connected"));
        };
        out.append(&mut conn.pending.clone());
        let wanted: Vec<(usize, ReadValueId)> = conn
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, value_of(n))))
            .collect();
        let session = conn.live.session.clone();
        let chunk = conn.chunk;
        for batch in wanted.chunks(chunk) {
            let ids: Vec<ReadValueId> = batch.iter().map(|(_, r)| r.clone()).collect();
            let values = session
                .read(&ids, TimestampsToReturn::Both, 0.0)
                .await
                .map_err(|e| link_error(e.status(), &format!("read: {e}")))?;
            if values.len() != ids.len() {
                return Err(LinkError::protocol(format!(
                    "read of {} nodes answered with {} values",
                    ids.len(),
                    values.len()
                )));
            }
            for ((i, _), dv) in batch.iter().zip(values) {
                let r = self.reading(*i, dv);
                out.push(r);
            }
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let deadline = self.publish_deadline();
        let Some(conn) = self.conn.as_mut() else {
            return Err(LinkError::not_connected("not connected"));
        };
        let changes = {
            let mut inbox = conn.shared.lock();
            if let Some(e) = &inbox.lost {
                return Err(e.clone());
            }
            if inbox.last_publish.is_some_and(|t| t.elapsed() > deadline) {
                return Err(LinkError::timeout(format!(
                    "no publish response for {deadline:?}"
                )));
            }
            std::mem::take(&mut inbox.changes)
        };
        out.append(&mut conn.pending);
        for (tag, dv) in changes {
            if (tag as usize) < self.tags.len() {
                let r = self.reading(tag as usize, dv);
                out.push(r);
            }
        }
        Ok(())
    }
}

fn note_problem(device: &str, tag: &mut Tag, problem: String) {
    if tag.problem.as_deref() != Some(problem.as_str()) {
        warn!(device = %device, tag = %tag.name, problem = %problem, "tag has no usable value");
        tag.problem = Some(problem);
    }
}

fn quality_reason(q: Quality) -> BadReason {
    match q {
        Quality::Bad(r) => r,
        _ => BadReason::DeviceFailure,
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn value_of(node: &NodeId) -> ReadValueId {
    ReadValueId {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    }
}

/// The server's MaxNodesPerRead when it has one (0 means no limit), capped by ours.
async fn max_nodes_per_read(session: &Session, options: &Options) -> usize {
    let ours = options.max_nodes_per_read as usize;
    let limit = session
        .read(
            &[value_of(
                &VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead.into(),
            )],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .ok()
        .and_then(|v| v.into_iter().next())
        .and_then(|dv| dv.value)
        .and_then(|v| match v {
            opcua::types::Variant::UInt32(n) => Some(n as usize),
            _ => None,
        });
    match limit {
        Some(n) if n > 0 => n.min(ours),
        _ => ours,
    }
}

/// Receives the subscription's notifications on async-opcua's task; only queues them, so
/// the session is never held up by the runtime.
struct Sink {
    shared: Arc<Shared>,
}

impl OnSubscriptionNotification for Sink {
    fn on_subscription_status_change(&mut self, notification: StatusChangeNotification) {
        if !notification.status.is_good() {
            self.shared.fail(LinkError::protocol(format!(
                "subscription ended by the server: {}",
                notification.status
            )));
        }
    }

    fn on_data_value(&mut self, value: DataValue, item: &MonitoredItem) {
        if let Some(tag) = item.client_handle().checked_sub(1) {
            self.shared.push(tag, value);
        }
    }
}

#[async_trait]
impl Driver for OpcUaDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        self.close().await;
        let started = Instant::now();
        if self.client.is_none() {
            self.client = Some(session::client(&self.options, &self.device)?);
        }
        let limit = self.request_timeout().saturating_mul(2);
        let shared = Shared::new(self.options.buffer, &self.device);
        let Some(client) = self.client.as_mut() else {
            return Err(LinkError::not_connected("no client"));
        };
        let live = Live::open(client, &self.options, shared.clone(), limit).await?;
        let session = live.session.clone();
        match self.setup(&session, &shared).await {
            Ok((nodes, pending, chunk)) => {
                self.conn = Some(Conn {
                    live,
                    shared,
                    nodes,
                    pending,
                    chunk,
                });
                debug!(device = %self.device, elapsed_ms = started.elapsed().as_millis() as u64, "session ready");
                Ok(())
            }
            Err(e) => {
                live.close(Duration::from_millis(500)).await;
                Err(e)
            }
        }
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        match self.options.mode {
            Mode::Polling => self.poll(out).await,
            Mode::Subscription => self.drain(out),
        }
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        let Some(conn) = self.conn.as_ref() else {
            return Err(WriteError::Link(LinkError::not_connected("not connected")));
        };
        let i = tag as usize;
        let Some(t) = self.tags.get(i) else {
            return Err(WriteError::Rejected(format!("no tag {tag}")));
        };
        let Some(node) = conn.nodes.get(i).and_then(Option::as_ref) else {
            return Err(WriteError::Rejected(format!(
                "`{}` is not on the server ({})",
                t.name,
                t.problem.as_deref().unwrap_or("unresolved")
            )));
        };
        let value = value
            .convert(t.data_type)
            .map_err(|e| WriteError::TypeMismatch(e.to_string()))?;
        let request = WriteValue {
            node_id: node.clone(),
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(convert::variant(&value)),
        };
        let results = conn
            .live
            .session
            .write(&[request])
            .await
            .map_err(|e| WriteError::Link(link_error(e.status(), &format!("write: {e}"))))?;
        let status = results
            .first()
            .copied()
            .unwrap_or(StatusCode::BadUnexpectedError);
        convert::write_result(status)
    }

    async fn disconnect(&mut self) {
        self.close().await;
    }
}
