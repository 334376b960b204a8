//! The `opcua-client` driver of one device: a subscription (or batched Reads) on the
//! session its endpoint shares (pool.rs), and the readings made of what arrives.

use std::collections::VecDeque;
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
use crate::inbox::Change;
use crate::link::{Link, LinkState};
use crate::options::{Mode, Options};
use crate::pool;
use crate::resolve::Nodes;
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
    /// The link this device is attached to in the pool, from `connect` to `close`. Set
    /// before anything else awaits, so that a `connect` cut short (a reload, a shutdown)
    /// still lets go of it in `close`.
    pub link: Option<Arc<Link>>,
    /// This device's subscription (subscription mode), kept across reconnects for as long
    /// as the server keeps it; set as soon as the server created it, for the same reason.
    pub sub: Option<Sub>,
    /// The tags as this session knows them.
    pub resolved: Option<Resolved>,
    /// Between `disconnect` and the next `connect`: the session and subscription are kept
    /// for a quick resume, but nothing is read or written.
    pub paused: bool,
}

/// The tags' nodes in one session.
pub(crate) struct Resolved {
    /// The session generation the nodes were resolved in.
    generation: u64,
    /// Each tag's node in this session.
    pub nodes: Nodes,
    /// Bad readings for tags the server refused at connect, delivered on the next read.
    pub pending: Vec<Reading>,
    /// Nodes per Read (polling mode).
    chunk: usize,
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
    async fn setup(&mut self, link: &Link, generation: u64) -> Result<(), LinkError> {
        crate::link::read_limits(link).await;
        let mut pending = Vec::new();
        let nodes = self.resolve(link.session(), &mut pending).await?;
        let chunk = batch(
            link.limits().max_nodes_per_read,
            (self.options.max_nodes_per_read as usize).min(MAX_BATCH),
        );
        if self.options.mode == Mode::Subscription {
            self.subscribe(link, &nodes, &mut pending).await?;
        }
        self.resolved = Some(Resolved {
            generation,
            nodes,
            pending,
            chunk,
        });
        Ok(())
    }

    /// Whether the subscription (or, polling, the resolved nodes) can carry on as it is.
    fn resumable(&self, link: &Link, generation: u64) -> bool {
        match (&self.sub, &self.resolved) {
            (Some(sub), Some(_)) => {
                link.routes_to(sub.id, &sub.inbox) && sub.inbox.lock().lost.is_none()
            }
            (None, Some(r)) => self.options.mode == Mode::Polling && r.generation == generation,
            _ => false,
        }
    }

    /// Leaves the link for good: the subscription deleted, the session closed when this
    /// was its last device.
    async fn release(&mut self) {
        let grace = self.request_timeout().min(Duration::from_secs(2));
        release(self.link.take(), self.sub.take(), &self.options, grace).await;
        self.resolved = None;
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

    fn reading(&mut self, change: Change) -> Reading {
        let i = change.tag as usize;
        let tag = &mut self.tags[i];
        let status = change.status;
        let source_time = change.time;
        let quality = convert::quality(status);
        let result = if quality.is_bad() {
            Err((quality, format!("server status {status}")))
        } else {
            match change.value.as_ref() {
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

    /// The link, unless the device is between `disconnect` and `connect`.
    fn live(&self) -> Result<(&Arc<Link>, &Resolved), LinkError> {
        match (&self.link, &self.resolved) {
            (Some(link), Some(resolved)) if !self.paused => Ok((link, resolved)),
            _ => Err(LinkError::not_connected("not connected")),
        }
    }

    async fn poll(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let (link, resolved) = self.live()?;
        if !self.check_link(link)? {
            return Ok(());
        }
        let wanted: Vec<usize> = resolved.nodes.found().collect();
        let session = link.session().clone();
        let chunk = resolved.chunk;
        out.extend(resolved.pending.iter().cloned());
        for batch in wanted.chunks(chunk) {
            // Each batch's requests made for it alone, as in `monitor`.
            let Some(nodes) = self.resolved.as_ref().map(|r| &r.nodes) else {
                return Err(LinkError::not_connected("not connected"));
            };
            let (batch, ids): (Vec<usize>, Vec<ReadValueId>) = batch
                .iter()
                .filter_map(|&i| Some((i, value_of(&nodes.get(&self.tags, i)?))))
                .unzip();
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
            for (i, dv) in batch.into_iter().zip(values) {
                let r = self.reading(Change::new(index(i), dv));
                out.push(r);
            }
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let (link, _) = self.live()?;
        let up = self.check_link(link)?;
        let Some(sub) = &self.sub else {
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
                // Silent while the session works: the server dropped it without a word.
                // Marked lost, so that `connect` makes a new one rather than resume it.
                let e = LinkError::timeout(format!("no publish response for {:?}", sub.deadline));
                inbox.lost = Some(e.clone());
                return Err(e);
            }
            // The next queue starts at the size of this one: grown from empty by doubling
            // at 10,000 changes a read, it would churn the heap.
            let size = inbox.changes.len();
            std::mem::replace(&mut inbox.changes, VecDeque::with_capacity(size))
        };
        if let Some(resolved) = self.resolved.as_mut() {
            out.append(&mut resolved.pending);
        }
        out.reserve(changes.len());
        for change in changes {
            if (change.tag as usize) < self.tags.len() {
                let r = self.reading(change);
                out.push(r);
            }
        }
        Ok(())
    }
}

/// See [`OpcUaDriver::release`].
async fn release(link: Option<Arc<Link>>, sub: Option<Sub>, options: &Options, grace: Duration) {
    let Some(link) = link else {
        return;
    };
    if let Some(sub) = &sub {
        if matches!(link.state(), LinkState::Up { .. }) {
            unsubscribe(&link, sub, grace).await;
        } else {
            // Gone with the session when it closes; the id must not stay routed.
            link.take_route(sub.id, &sub.inbox);
        }
    }
    drop(link);
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
        if self
            .link
            .as_ref()
            .is_some_and(|l| matches!(l.state(), LinkState::Dead(_)))
        {
            // Given up: a new link (and session) replaces it.
            self.release().await;
        }
        let link = match &self.link {
            Some(link) => link.clone(),
            None => {
                let link = pool::attach(&self.options).await?;
                self.link = Some(link.clone());
                link
            }
        };
        let generation = link.wait_up(limit).await?;
        if self.resumable(&link, generation) {
            if let Some(sub) = &self.sub {
                // Silence while away was the link's; the deadline counts from now.
                sub.inbox.published();
            }
            debug!(device = %self.device, "resumed on the same session");
            self.paused = false;
            return Ok(());
        }
        if let Some(sub) = self.sub.take() {
            unsubscribe(&link, &sub, self.request_timeout()).await;
        }
        self.resolved = None;
        self.setup(&link, generation).await?;
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
        let (link, resolved) = self.live()?;
        if !matches!(link.state(), LinkState::Up { .. }) {
            return Err(WriteError::Link(LinkError::not_connected(
                "reconnecting to the server",
            )));
        }
        let i = tag as usize;
        let Some(t) = self.tags.get(i) else {
            return Err(WriteError::Rejected(format!("no tag {tag}")));
        };
        let Some(node) = resolved.nodes.get(&self.tags, i) else {
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
            node_id: node,
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(convert::variant(&value)),
        };
        let results = link
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
        let (Some(link), sub) = (self.link.take(), self.sub.take()) else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let options = self.options.clone();
            rt.spawn(
                async move { release(Some(link), sub, &options, Duration::from_secs(1)).await },
            );
        }
    }
}
