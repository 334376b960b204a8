//! `GET /api/v1/events`: the change stream, as server-sent events, filtered by device and
//! path prefix.
//!
//! One hub per web server subscribes to the bus and fans out to the clients. The router
//! waits for a full subscriber, so the hub never waits for a client: each client has a
//! small queue, a frame that does not fit is dropped and counted, and a client that misses
//! [`MAX_MISSES`] frames in a row is cut off (a browser's EventSource reconnects and the
//! console reloads its snapshot). Clients with the same filter share one encoding of each
//! batch.
//!
//! Events: `tags` (a JSON array of changes: path, value, quality, source_time), `device`
//! (a link went up or down), `alarm` (a condition changed; the alarm's key) and `reload`
//! (the tag table was replaced: fetch again).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::api::ApiError;
use super::auth::Caller;
use super::Web;
use crate::bus::{Handle, ModelEvent};
use crate::history::export::{json_value, rfc3339};
use crate::model::{DeviceId, Sample, TagTable};

/// Frames a client's queue holds.
const CLIENT_QUEUE: usize = 16;
/// Frames in a row a client may miss before it is cut off.
const MAX_MISSES: u32 = 8;
/// Clients at once; one more is answered 503.
pub const MAX_CLIENTS: usize = 256;
/// Batches the hub's own subscription queues (see [`crate::bus::queue_depth`]).
const HUB_QUEUE: usize = 64;
/// A comment this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An event's name and its JSON, shared by every client it goes to.
type Frame = (&'static str, Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this device's changes.
    device: Option<String>,
    /// Only tags whose path (`device/tag`) starts with this.
    prefix: Option<String>,
}

impl Filter {
    fn wants_device(&self, name: &str) -> bool {
        self.device.as_deref().is_none_or(|d| d == name)
            && self.prefix.as_deref().is_none_or(|p| {
                // The device's tags can match when the prefix stops inside its name or
                // goes on past it.
                p.len() <= name.len() && name.starts_with(p)
                    || p.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }

    fn wants_path(&self, path: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

struct Client {
    filter: Filter,
    tx: mpsc::Sender<Frame>,
    misses: u32,
}

/// The clients of one web server's change stream.
#[derive(Default)]
pub struct Hub {
    clients: Mutex<Vec<Client>>,
}

#[derive(Serialize)]
struct Change {
    path: String,
    value: serde_json::Value,
    quality: String,
    source_time: Option<String>,
}

impl Hub {
    /// Starts the hub: it follows the bus until `cancel`.
    pub fn start(handle: &Handle, cancel: CancellationToken) -> Arc<Hub> {
        let hub = Arc::new(Hub::default());
        let (mut events, start) = handle.subscribe_from(HUB_QUEUE);
        let mut table = start.table;
        let fan = hub.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    e = events.recv() => match e {
                        Some(e) => e,
                        None => break,
                    },
                };
                if let ModelEvent::Reloaded(r) = &event {
                    table = r.start.table.clone();
                }
                fan.on_event(&table, &event);
            }
            // Their streams end, which tells the browsers to reconnect.
            fan.clients.lock().clear();
        });
        hub
    }

    /// A new client's queue, or `None` when [`MAX_CLIENTS`] are connected.
    fn join(&self, filter: Filter) -> Option<mpsc::Receiver<Frame>> {
        let mut clients = self.clients.lock();
        clients.retain(|c| !c.tx.is_closed());
        if clients.len() >= MAX_CLIENTS {
            return None;
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        clients.push(Client {
            filter,
            tx,
            misses: 0,
        });
        Some(rx)
    }

    fn on_event(&self, table: &TagTable, event: &ModelEvent) {
        let mut clients = self.clients.lock();
        if clients.is_empty() {
            return;
        }
        let device_name = |id: DeviceId| table.device(id).map(|d| d.name.as_str());
        // One encoding per distinct filter: `None` where nothing of the event is wanted.
        let mut frames: HashMap<Filter, Option<Frame>> = HashMap::new();
        for client in clients.iter_mut() {
            let frame = frames
                .entry(client.filter.clone())
                .or_insert_with(|| match event {
                    ModelEvent::Samples(device, samples) => device_name(*device)
                        .filter(|n| client.filter.wants_device(n))
                        .and_then(|_| changes(table, &client.filter, samples)),
                    ModelEvent::DeviceUp(device) | ModelEvent::DeviceDown(device) => {
                        let up = matches!(event, ModelEvent::DeviceUp(_));
                        device_name(*device)
                            .filter(|n| client.filter.wants_device(n))
                            .map(|n| {
                                let json = serde_json::json!({ "device": n, "connected": up });
                                ("device", Arc::from(json.to_string()))
                            })
                    }
                    ModelEvent::Condition(c) => {
                        let wanted = client.filter.wants_device(&c.def.device)
                            && client.filter.wants_path(&c.def.key);
                        wanted.then(|| {
                            let json = serde_json::json!({ "key": &*c.def.key });
                            ("alarm", Arc::from(json.to_string()))
                        })
                    }
                    ModelEvent::Reloaded(_) => Some(("reload", Arc::from("{}"))),
                })
                .clone();
            let Some(frame) = frame else {
                continue;
            };
            match client.tx.try_send(frame) {
                Ok(()) => client.misses = 0,
                Err(mpsc::error::TrySendError::Full(_)) => client.misses += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => client.misses = MAX_MISSES,
            }
        }
        // Dropping the sender ends the client's stream.
        clients.retain(|c| c.misses < MAX_MISSES);
    }
}

/// The `tags` frame of `samples` that `filter` wants; `None` when it wants none of them.
fn changes(table: &TagTable, filter: &Filter, samples: &[Sample]) -> Option<Frame> {
    let list: Vec<Change> = samples
        .iter()
        .filter_map(|s| {
            let def = table.tag(s.tag)?;
            let path = def.path.to_string();
            filter.wants_path(&path).then(|| Change {
                path,
                value: json_value(&s.value),
                quality: s.quality.to_string(),
                source_time: (s.time.as_micros() != 0).then(|| rfc3339(s.time.as_micros())),
            })
        })
        .collect();
    if list.is_empty() {
        return None;
    }
    serde_json::to_string(&list)
        .ok()
        .map(|json| ("tags", Arc::from(json)))
}

/// The change stream: server-sent events `tags`, `device`, `alarm` and `reload`.
#[utoipa::path(get, path = "/api/v1/events", tag = "tags", params(Filter),
    responses(
        (status = 200, content_type = "text/event-stream", description = "The stream, until the client goes or falls too far behind"),
        (status = 400, body = ApiError, description = "A bad parameter"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "`device` names no device"),
        (status = 503, body = ApiError, description = "Too many streams open"),
    ))]
pub(crate) async fn events(
    State(web): State<Web>,
    _caller: Caller,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(filter) = query?;
    if let Some(name) = &filter.device {
        if web.handle.table().device_id(name).is_none() {
            return Err(ApiError::not_found(format!("no device `{name}`")));
        }
    }
    let hub = web
        .hub
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no change stream on this port"))?;
    let rx = hub.join(filter).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_CLIENTS} streams are open already"),
        )
        .retry_after(5)
    })?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let (name, data) = rx.recv().await?;
        Some((Ok(Event::default().event(name).data(&*data)), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
