//! The `opcua-client` driver of one device: a subscription (or batched Reads) on the
//! session its endpoint shares (pool.rs), and the readings made of what arrives.

use std::sync::Arc;
use std::time::Duration;

use opcua::types::{
    AttributeId, DataValue, NodeId, ReadValueId, StatusCode, TimestampsToReturn, WriteValue,
};
use tracing::{debug, info, warn};
use uaedge_driver::{
    async_trait, BadReason, DataType, Driver, LinkError, Quality, Reading, Value, WriteError,
};

use crate::address::OpcAddress;
use crate::convert;
use crate::link::{Link, LinkState};
use crate::options::{Mode, Options};
use crate::pool;
use crate::session::{link_error, MAX_BATCH};
use crate::subscribe::{batch, unsubscribe, Sub};

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
    pub conn: Option<Conn>,
    /// Between `disconnect` and the next `connect`: the session and subscription are kept
    /// for a quick resume, but nothing is read or written.
    pub paused: bool,
}

/// This device's share of a link: attached in the pool until `close`.
pub(crate) struct Conn {
    link: Arc<Link>,
    /// The session generation the nodes were resolved in.
    generation: u64,
    /// Each tag's node in this session; `None` when it could not be resolved.
    nodes: Vec<Option<NodeId>>,
    /// Bad readings for tags the server refused at connect, delivered on the next read.
    pending: Vec<Reading>,
    /// Nodes per Read (polling mode).
    chunk: usize,
    sub: Option<Sub>,
}

impl OpcUaDriver {
    pub(crate) fn request_timeout(&self) -> Duration {
        self.options.request_timeout.get()
    }

    /// How long a broken link may take to come back before the tags turn Bad; data the
    /// server kept meanwhile still arrives, late, once it is back.
    fn grace(&self) -> Duration {
        self.request_timeout()
    }

    /// Resolves the tags and, in subscription mode, subscribes, on `link`.
    async fn setup(&mut self, link: Arc<Link>, generation: u64) -> Result<(), LinkError> {
        crate::link::read_limits(&link).await;
        let mut pending = Vec::new();
        let nodes = self.resolve(link.session(), &mut pending).await?;
        let chunk = batch(
            link.limits().max_nodes_per_read,
            (self.options.max_nodes_per_read as usize).min(MAX_BATCH),
        );
        let sub = match self.options.mode {
            Mode::Subscription => Some(self.subscribe(&link, &nodes, &mut pending).await?),
            Mode::Polling => None,
        };
        self.conn = Some(Conn {
            link,
            generation,
            nodes,
            pending,
            chunk,
            sub,
        });
        Ok(())
    }

    /// Leaves the link for good: the subscription deleted, the session closed when this
    /// was its last device.
    async fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let grace = self.request_timeout().min(Duration::from_secs(2));
            release(conn, &self.options, grace).await;
        }
    }

    /// The link as it stands for reading: an error once it has been down past the grace.
    fn check_link(&self, link: &Link) -> Result<bool, LinkError> {
        match link.state() {
            LinkState::Up { .. } => Ok(true),
            LinkState::Dead(e) => Err(e),
            LinkState::Down { since, reason, .. } if since.elapsed() > self.grace() => Err(
                LinkError::not_connected(format!("{reason} ({:.1?} ago)", since.elapsed())),
            ),
            _ => Ok(false),
        }
    }

    /// A Bad reading for a tag the server refused, logged once per distinct problem.
    pub(crate) fn refuse(&mut self, i: usize, problem: String) -> Reading {
        note_problem(&self.device, &mut self.tags[i], problem);
        Reading::bad(index(i), BadReason::ConfigError)
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

    fn live(&self) -> Result<&Conn, LinkError> {
        match &self.conn {
            Some(conn) if !self.paused => Ok(conn),
            _ => Err(LinkError::not_connected("not connected")),
        }
    }

    async fn poll(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let conn = self.live()?;
        if !self.check_link(&conn.link)? {
            return Ok(());
        }
        let wanted: Vec<(usize, ReadValueId)> = conn
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, value_of(n))))
            .collect();
        let session = conn.link.session().clone();
        let chunk = conn.chunk;
        out.extend(conn.pending.iter().cloned());
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
        let conn = self.live()?;
        let up = self.check_link(&conn.link)?;
        let Some(sub) = &conn.sub else {
            return Err(LinkError::not_connected("no subscription"));
        };
        let changes = {
            let mut inbox = sub.inbox.lock();
            if let Some(e) = &inbox.lost {
                return Err(e.clone());
            }
            if up
                && inbox
                    .last_publish
                    .is_some_and(|t| t.elapsed() > sub.deadline)
            {
                return Err(LinkError::timeout(format!(
                    "no publish response for {:?}",
                    sub.deadline
                )));
            }
            std::mem::take(&mut inbox.changes)
        };
        if let Some(conn) = self.conn.as_mut() {
            out.append(&mut conn.pending);
        }
        for (tag, dv) in changes {
            if (tag as usize) < self.tags.len() {
                let r = self.reading(tag as usize, dv);
                out.push(r);
            }
        }
        Ok(())
    }
}

/// See [`OpcUaDriver::release`].
async fn release(conn: Conn, options: &Options, grace: Duration) {
    if let Some(sub) = &conn.sub {
        if matches!(conn.link.state(), LinkState::Up { .. }) {
            unsubscribe(&conn.link, sub, grace).await;
        } else {
            conn.link.take_route(sub.id, &sub.inbox);
        }
    }
    drop(conn);
    pool::detach(options, grace).await;
}

fn note_problem(device: &str, tag: &mut Tag, problem: String) {
    if tag.problem.as_deref() != Some(problem.as_str()) {
        warn!(device = %device, tag = %tag.name, problem = %problem, "tag has no usable value");
        tag.problem = Some(problem);
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

pub(crate) fn value_of(node: &NodeId) -> ReadValueId {
    ReadValueId {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    }
}

#[async_trait]
impl Driver for OpcUaDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        let limit = self.request_timeout().saturating_mul(2);
        if let Some(conn) = &self.conn {
            if matches!(conn.link.state(), LinkState::Dead(_)) {
                self.release().await;
            }
        }
        if let Some(conn) = &self.conn {
            // Back after a loss: the same session, and the subscription with the data the
            // server kept meanwhile, when they are still there.
            let generation = conn.link.wait_up(limit).await?;
            let resumable = match &conn.sub {
                Some(sub) => {
                    conn.link.routes_to(sub.id, &sub.inbox) && sub.inbox.lock().lost.is_none()
                }
                None => generation == conn.generation,
            };
            self.paused = false;
            if resumable {
                if let Some(sub) = &conn.sub {
                    // Silence while away was the link's; the deadline counts from now.
                    sub.inbox.published();
                }
                debug!(device = %self.device, "resumed on the same session");
                return Ok(());
            }
            let Some(conn) = self.conn.take() else {
                return Err(LinkError::not_connected("not connected"));
            };
            if let Some(sub) = &conn.sub {
                unsubscribe(&conn.link, sub, self.request_timeout()).await;
            }
            let link = conn.link.clone();
            drop(conn);
            return match self.setup(link, generation).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    pool::detach(&self.options, Duration::from_millis(500)).await;
                    Err(e)
                }
            };
        }
        let link = pool::attach(&self.options).await?;
        let setup = match link.wait_up(limit).await {
            Ok(generation) => self.setup(link, generation).await,
            Err(e) => Err(e),
        };
        if let Err(e) = setup {
            pool::detach(&self.options, Duration::from_millis(500)).await;
            return Err(e);
        }
        self.paused = false;
        Ok(())
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        match self.options.mode {
            Mode::Polling => self.poll(out).await,
            Mode::Subscription => self.drain(out),
        }
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        let conn = self.live()?;
        if !matches!(conn.link.state(), LinkState::Up { .. }) {
            return Err(WriteError::Link(LinkError::not_connected(
                "reconnecting to the server",
            )));
        }
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
            .link
            .session()
            .write(&[request])
            .await
            .map_err(|e| WriteError::Link(link_error(e.status(), &format!("write: {e}"))))?;
        let status = results
            .first()
            .copied()
            .unwrap_or(StatusCode::BadUnexpectedError);
        convert::write_result(status)
    }

    /// Before a reconnect: nothing is read or written until `connect`, but the session and
    /// the subscription stay, so that `connect` can resume them.
    async fn disconnect(&mut self) {
        self.paused = true;
    }

    async fn close(&mut self) {
        self.paused = true;
        self.release().await;
    }
}

impl Drop for OpcUaDriver {
    /// A driver dropped without `close` still leaves its link, in the background.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let options = self.options.clone();
            rt.spawn(async move { release(conn, &options, Duration::from_secs(1)).await });
        }
    }
}
