//! `GET /api/v1/events`: the change stream, as server-sent events, filtered by device and
//! path prefix.
//!
//! One hub per web server subscribes to the bus and fans out to the clients. The router
//! waits for a full subscriber, so the hub never waits for a client: each client has a
//! small queue, and one whose queue is full is cut off rather than left with a gap (a
//! browser's EventSource reconnects and the console reloads its snapshot). Clients with
//! the same filter share one encoding of each batch. A stream ends with its session
//! (logout, idle expiry), and a user holds at most [`MAX_PER_USER`] streams (without
//! users, an address does).
//!
//! Events: `tags` (a JSON array of changes: path, value, quality, source_time), `device`
//! (a link went up or down), `alarm` (a condition changed; the alarm's key) and `reload`
//! (the tag table was replaced: fetch again).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::api::ApiError;
use super::auth::{Auth, Caller};
use super::Web;
use crate::bus::{Handle, ModelEvent};
use crate::model::{DeviceId, Sample, TagTable};

/// Frames a client's queue holds.
const CLIENT_QUEUE: usize = 16;
/// Clients at once; one more is answered 503.
pub const MAX_CLIENTS: usize = 256;
/// Streams one user may hold.
pub const MAX_PER_USER: usize = 16;
/// The longest `prefix` taken.
const MAX_PREFIX: usize = 256;
/// How often streams are checked against their sessions.
const SESSION_CHECK: Duration = Duration::from_secs(5);
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
    /// Whether the tag `tag` of device `device` is wanted, without building its path.
    fn wants_tag(&self, device: &str, tag: &str) -> bool {
        self.device.as_deref().is_none_or(|d| d == device)
            && self.prefix.as_deref().is_none_or(|p| {
                if p.len() <= device.len() {
                    device.starts_with(p)
                } else {
                    p.strip_prefix(device)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|rest| tag.starts_with(rest))
                }
            })
    }

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
}

struct Client {
    filter: Arc<Filter>,
    tx: mpsc::Sender<Frame>,
    user: String,
    /// The session's CSRF token, which names it; `None` for the anonymous reader.
    session: Option<String>,
}

#[derive(Default)]
struct Clients {
    list: Vec<Client>,
    /// The hub stopped: no one joins any more.
    closed: bool,
}

/// The clients of one web server's change stream.
pub struct Hub {
    clients: Mutex<Clients>,
    auth: Arc<Auth>,
}

/// Why a client was not let in.
enum Refused {
    Full,
    UserFull,
    Closed,
}

impl Hub {
    /// Starts the hub: it follows the bus until `cancel`, and ends streams whose session
    /// `auth` no longer knows.
    pub fn start(handle: &Handle, auth: Arc<Auth>, cancel: CancellationToken) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            clients: Mutex::default(),
            auth,
        });
        let (mut events, start) = handle.subscribe_from(HUB_QUEUE);
        let mut table = start.table;
        let fan = hub.clone();
        tokio::spawn(async move {
            let mut sessions = tokio::time::interval(SESSION_CHECK);
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = sessions.tick() => {
                        fan.drop_ended_sessions();
                        continue;
                    }
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
            let mut clients = fan.clients.lock();
            clients.list.clear();
            clients.closed = true;
        });
        hub
    }

    /// A new client's queue.
    fn join(&self, filter: Filter, caller: &Caller) -> Result<mpsc::Receiver<Frame>, Refused> {
        let mut clients = self.clients.lock();
        if clients.closed {
            return Err(Refused::Closed);
        }
        clients.list.retain(|c| !c.tx.is_closed());
        if clients.list.len() >= MAX_CLIENTS {
            return Err(Refused::Full);
        }
        if clients
            .list
            .iter()
            .filter(|c| c.user == caller.user)
            .count()
            >= MAX_PER_USER
        {
            return Err(Refused::UserFull);
        }
        // Clients with one filter share it, and with it one encoding per event.
        let filter = clients
            .list
            .iter()
            .find(|c| *c.filter == filter)
            .map_or_else(|| Arc::new(filter), |c| c.filter.clone());
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        clients.list.push(Client {
            filter,
            tx,
            user: caller.user.clone(),
            session: caller.csrf.clone(),
        });
        Ok(rx)
    }

    fn drop_ended_sessions(&self) {
        let mut clients = self.clients.lock();
        let auth = &self.auth;
        clients
            .list
            .retain(|c| c.session.as_deref().is_none_or(|s| auth.alive(s)));
    }

    fn on_event(&self, table: &TagTable, event: &ModelEvent) {
        let mut clients = self.clients.lock();
        if clients.list.is_empty() {
            return;
        }
        let device_name = |id: DeviceId| table.device(id).map(|d| d.name.as_str());
        // One encoding per distinct filter (clients share the filter's Arc): `None` where
        // nothing of the event is wanted.
        let mut frames: HashMap<*const Filter, Option<Frame>> = HashMap::new();
        clients.list.retain(|client| {
            let frame = frames
                .entry(Arc::as_ptr(&client.filter))
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
                        let tag = c.def.key.split_once('/').map_or("", |(_, t)| t);
                        let wanted = client.filter.wants_tag(&c.def.device, tag);
                        wanted.then(|| {
                            let json = serde_json::json!({ "key": &*c.def.key });
                            ("alarm", Arc::from(json.to_string()))
                        })
                    }
                    ModelEvent::Reloaded(_) => Some(("reload", Arc::from("{}"))),
                })
                .clone();
            // Kept while its frame fits; dropping the sender ends the client's stream.
            frame.is_none_or(|frame| client.tx.try_send(frame).is_ok())
        });
    }
}

/// The `tags` frame of `samples` that `filter` wants; `None` when it wants none of them.
fn changes(table: &TagTable, filter: &Filter, samples: &[Sample]) -> Option<Frame> {
    super::frame::tags_json(table, samples, |def| {
        filter.wants_tag(&def.path.device, &def.path.tag)
    })
    .map(|json| ("tags", Arc::from(json)))
}

/// The change stream: server-sent events `tags`, `device`, `alarm` and `reload`.
#[utoipa::path(get, path = "/api/v1/events", tag = "tags", params(Filter),
    responses(
        (status = 200, content_type = "text/event-stream", description = "The stream, until the client goes or falls too far behind"),
        (status = 400, body = ApiError, description = "A bad parameter"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 404, body = ApiError, description = "`device` names no device"),
        (status = 503, body = ApiError, description = "Too many streams open, or stopping"),
    ))]
pub(crate) async fn events(
    State(web): State<Web>,
    mut caller: Caller,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(filter) = query?;
    // Without users every browser is "anonymous": counted per address instead, so that
    // one engineer's tabs cannot use up another's streams.
    if caller.csrf.is_none() {
        caller.user = format!("{}@{}", caller.user, from.ip());
    }
    if filter.prefix.as_ref().is_some_and(|p| p.len() > MAX_PREFIX) {
        return Err(ApiError::bad_request(format!(
            "prefix is longer than {MAX_PREFIX} bytes"
        )));
    }
    if let Some(name) = &filter.device {
        if web.handle.table().device_id(name).is_none() {
            return Err(ApiError::not_found(format!("no device `{name}`")));
        }
    }
    let hub = web
        .hub
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no change stream on this port"))?;
    let rx = hub.join(filter, &caller).map_err(|why| {
        let message = match why {
            Refused::Full => format!("{MAX_CLIENTS} streams are open already"),
            Refused::UserFull => format!(
                "user `{}` has {MAX_PER_USER} streams open already",
                caller.user
            ),
            Refused::Closed => "the web server is stopping".to_string(),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message).retry_after(5)
    })?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let (name, data) = rx.recv().await?;
        Some((Ok(Event::default().event(name).data(&*data)), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
