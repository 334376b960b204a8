//! One session to one server, shared by every device that reaches it the same way
//! (pool.rs), and the publish loop that serves all their subscriptions.
//!
//! async-opcua drives the session: it notices a broken connection, opens a new secure
//! channel and reactivates the same session on it, or creates a new session when the old
//! one is gone. This module does what async-opcua's own subscription handling does not:
//! - the publish loop keeps several Publish requests outstanding and routes each
//!   NotificationMessage to its device's inbox;
//! - it follows every subscription's sequence numbers, and asks for messages that were
//!   sent but never arrived (a connection cut mid-response) with Republish before it
//!   delivers what came after them, so a short break loses no data change;
//! - on a new session it moves the subscriptions over with TransferSubscriptions; those
//!   the server no longer has are reported to their devices, which create them anew.
//!
//! A link that never came up, or whose server refuses it (credentials, certificates),
//! gives up at once and reports why: the runtime's backoff decides when to try again.
//! One that was up keeps trying to reactivate its session for as long as the session can
//! live on the server, then gives up the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use opcua::client::services::{Publish, Republish, TransferSubscriptions};
use opcua::client::{Client, Session, SessionConnectMode, SessionPollResult, UARequest};
use opcua::types::{
    DataChangeNotification, ExtensionObject, NotificationMessage, PublishResponse,
    StatusChangeNotification, StatusCode, SubscriptionAcknowledgement,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uaedge_driver::LinkError;

use crate::inbox::Inbox;
use crate::options::Options;
use crate::sequence::{numbers, Sequence, Step};
use crate::session::{self, link_error};

/// Publish requests kept outstanding per subscription (plus one), within these bounds:
/// enough that a response is always on its way at tens of thousands of changes a second,
/// few enough to stay inside what servers allow (async-opcua: 4 per subscription).
const MIN_PUBLISH: usize = 2;
const MAX_PUBLISH: usize = 10;

#[derive(Debug, Clone)]
pub(crate) enum LinkState {
    /// Not up yet.
    Connecting,
    /// Connected; a new session's subscriptions are being moved over before devices use
    /// it (see `publish_loop`).
    Settling { generation: u64, new_session: bool },
    /// The session is usable; `generation` counts sessions, a new one after a server lost
    /// the old.
    Up { generation: u64 },
    /// The connection broke; async-opcua is reconnecting.
    Down { since: Instant, reason: String },
    /// Given up, for the reason given; a new link is needed.
    Dead(LinkError),
}

/// What the server allows per call (0: no limit), read after each connect.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerLimits {
    pub max_nodes_per_read: u32,
    pub max_monitored_items_per_call: u32,
}

struct Route {
    inbox: Arc<Inbox>,
    sequence: Sequence,
    /// Longest time the server may take to answer a Publish for this subscription: its
    /// publishing interval times its keep-alive count.
    keep_alive: Duration,
}

struct Inner {
    session: Arc<Session>,
    endpoint: String,
    state: watch::Sender<LinkState>,
    routes: Mutex<HashMap<u32, Route>>,
    /// Rings when routes come or go, so the publish loop adjusts.
    wake: Notify,
    limits: Mutex<ServerLimits>,
    request_timeout: Duration,
}

pub(crate) struct Link {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Kept for as long as the session lives: it holds the certificate store.
    _client: Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// Looks the server's endpoint up and starts the session (in the background: wait for
    /// it with [`Link::wait_up`]).
    pub async fn open(options: &Options) -> Result<Arc<Link>, LinkError> {
        // Making the certificate on first use takes seconds of CPU: not on a runtime thread.
        let mut client = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || session::client(&options))
                .await
                .map_err(|e| LinkError::not_connected(format!("client setup: {e}")))??
        };
        let identity = session::identity(options)?;
        let limit = options.request_timeout.get().saturating_mul(2);
        let (session, event_loop) = tokio::time::timeout(
            limit,
            client.connect_to_matching_endpoint(session::endpoint(options), identity),
        )
        .await
        .map_err(|_| LinkError::timeout("no answer to GetEndpoints"))?
        .map_err(|e| link_error(e.status(), &format!("endpoint: {e}")))?;
        let (state, _) = watch::channel(LinkState::Connecting);
        let inner = Arc::new(Inner {
            session,
            endpoint: options.endpoint.clone(),
            state,
            routes: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            limits: Mutex::new(ServerLimits::default()),
            request_timeout: options.request_timeout.get(),
        });
        let drive = tokio::spawn(drive(event_loop.enter(), inner.clone()));
        let publish = tokio::spawn(publish_loop(inner.clone()));
        Ok(Arc::new(Link {
            inner,
            tasks: Mutex::new(vec![drive, publish]),
            _client: client,
        }))
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.inner.session
    }

    pub fn state(&self) -> LinkState {
        self.inner.state.borrow().clone()
    }

    pub fn limits(&self) -> ServerLimits {
        *lock(&self.inner.limits)
    }

    /// Waits until the session is usable; the link's own error when it gave up.
    pub async fn wait_up(&self, limit: Duration) -> Result<u64, LinkError> {
        let mut rx = self.inner.state.subscribe();
        let wait = async {
            loop {
                match &*rx.borrow_and_update() {
                    LinkState::Up { generation } => return Ok(*generation),
                    LinkState::Dead(e) => return Err(e.clone()),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(LinkError::not_connected("session closed"));
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => Err(match self.state() {
                LinkState::Down { reason, .. } => {
                    LinkError::not_connected(format!("reconnecting: {reason}"))
                }
                _ => LinkError::timeout("session not activated in time"),
            }),
        }
    }

    /// Routes the notifications of subscription `id` to `inbox`.
    pub fn add_route(&self, id: u32, inbox: Arc<Inbox>, keep_alive: Duration) {
        lock(&self.inner.routes).insert(
            id,
            Route {
                inbox,
                sequence: Sequence::default(),
                keep_alive,
            },
        );
        self.inner.wake.notify_one();
    }

    /// Stops routing subscription `id` to `inbox`; `false` when it was not (any more):
    /// a server that lost a subscription may give its id to another one.
    pub fn take_route(&self, id: u32, inbox: &Arc<Inbox>) -> bool {
        let mut routes = lock(&self.inner.routes);
        let ours = routes
            .get(&id)
            .is_some_and(|r| Arc::ptr_eq(&r.inbox, inbox));
        if ours {
            routes.remove(&id);
            self.inner.wake.notify_one();
        }
        ours
    }

    /// Whether subscription `id` still routes to `inbox` (its server side not known to be
    /// gone).
    pub fn routes_to(&self, id: u32, inbox: &Arc<Inbox>) -> bool {
        lock(&self.inner.routes)
            .get(&id)
            .is_some_and(|r| Arc::ptr_eq(&r.inbox, inbox))
    }

    /// Closes the session (its subscriptions with it) within `grace`, then stops the tasks
    /// whatever the server did.
    pub async fn close(&self, grace: Duration) {
        if matches!(self.state(), LinkState::Up { .. }) {
            let _ = tokio::time::timeout(grace, self.inner.session.disconnect()).await;
        }
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.inner
            .state
            .send_replace(LinkState::Dead(LinkError::not_connected("session closed")));
    }
}

/// Follows the session's event loop (which must be polled for anything to happen) and
/// tells the rest of the link how the session stands.
async fn drive(
    events: impl futures::Stream<Item = Result<SessionPollResult, StatusCode>>,
    inner: Arc<Inner>,
) {
    tokio::pin!(events);
    let mut generation = 0u64;
    loop {
        match events.next().await {
            Some(Ok(SessionPollResult::Reconnected(mode))) => {
                let new = generation == 0 || matches!(mode, SessionConnectMode::NewSession(_));
                if new {
                    generation += 1;
                }
                match mode {
                    SessionConnectMode::NewSession(id) if generation > 1 => {
                        warn!(endpoint = %inner.endpoint, session = %id, "OPC UA session lost; a new one replaces it")
                    }
                    SessionConnectMode::ReactivatedSession(id) => {
                        info!(endpoint = %inner.endpoint, session = %id, "OPC UA session reactivated")
                    }
                    SessionConnectMode::NewSession(id) => {
                        debug!(endpoint = %inner.endpoint, session = %id, "OPC UA session created")
                    }
                }
                inner.state.send_replace(LinkState::Settling {
                    generation,
                    new_session: new,
                });
            }
            Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                // Good: async-opcua closed it itself, after failed keep-alives.
                let reason = if code.is_good() {
                    "connection lost: the server stopped answering".to_string()
                } else {
                    format!("connection lost: {code}")
                };
                warn!(endpoint = %inner.endpoint, reason = %reason, "OPC UA connection lost; reactivating the session");
                inner.state.send_replace(LinkState::Down {
                    since: Instant::now(),
                    reason,
                });
            }
            Some(Ok(SessionPollResult::ReconnectFailed(code))) => {
                if generation == 0 || refused(code) {
                    inner.state.send_replace(LinkState::Dead(link_error(
                        code,
                        &format!("session not established: {code}"),
                    )));
                    break;
                }
                inner.state.send_modify(|s| {
                    if let LinkState::Down { reason, .. } = s {
                        *reason = format!("reconnect failed: {code}");
                    }
                });
            }
            Some(Ok(_)) => {}
            Some(Err(code)) => {
                inner.state.send_replace(LinkState::Dead(link_error(
                    code,
                    &format!("gave up reconnecting: {code}"),
                )));
                break;
            }
            None => {
                inner
                    .state
                    .send_replace(LinkState::Dead(LinkError::not_connected("session closed")));
                break;
            }
        }
    }
}

/// The server said no for a reason retrying will not change.
fn refused(code: StatusCode) -> bool {
    use opcua::types::SubStatusCode as S;
    matches!(
        code.sub_code(),
        S::BadIdentityTokenRejected
            | S::BadIdentityTokenInvalid
            | S::BadUserAccessDenied
            | S::BadSecurityChecksFailed
            | S::BadCertificateUntrusted
            | S::BadCertificateInvalid
            | S::BadCertificateTimeInvalid
            | S::BadCertificateUriInvalid
            | S::BadSecurityPolicyRejected
            | S::BadSecurityModeRejected
            | S::BadTooManySessions
    )
}

impl Inner {
    fn up(&self, generation: u64) -> bool {
        matches!(&*self.state.borrow(), LinkState::Up { generation: g } if *g == generation)
    }

    /// Publish requests to keep outstanding, and how long each may wait for its answer: a
    /// queued request is answered at the latest one keep-alive after the one before it.
    fn publish_plan(&self, cap: usize) -> Option<(usize, Duration)> {
        let routes = lock(&self.routes);
        let longest = routes.values().map(|r| r.keep_alive).max()?;
        let n = (routes.len() + 1)
            .clamp(MIN_PUBLISH, MAX_PUBLISH)
            .min(cap.max(1));
        let wait = longest.saturating_mul(n as u32 + 1) + self.request_timeout;
        Some((n, wait))
    }

    /// After a new session: moves the subscriptions over; those the server no longer has
    /// are reported to their devices.
    async fn transfer(&self) {
        let ids: Vec<u32> = lock(&self.routes).keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let result = TransferSubscriptions::new(&self.session)
            .subscription_ids(ids.clone())
            .send_initial_values(false)
            .send(self.session.channel())
            .await;
        let results = match result {
            Ok(r) => r.results.unwrap_or_default(),
            Err(e) => {
                debug!(endpoint = %self.endpoint, error = %e, "TransferSubscriptions failed");
                Vec::new()
            }
        };
        let mut routes = lock(&self.routes);
        for (i, id) in ids.iter().enumerate() {
            let status = results
                .get(i)
                .map_or(StatusCode::BadSubscriptionIdInvalid, |r| r.status_code);
            if status.is_good() {
                info!(endpoint = %self.endpoint, subscription = id, "subscription moved to the new session");
            } else if let Some(route) = routes.remove(id) {
                route.inbox.fail(LinkError::protocol(format!(
                    "the server lost the subscription with the old session ({status})"
                )));
            }
        }
    }

    /// Fails and forgets every route: the server has none of our subscriptions.
    fn lose_all(&self, why: &str) {
        for (_, route) in lock(&self.routes).drain() {
            route.inbox.fail(LinkError::protocol(why.to_string()));
        }
    }

    /// One Publish response: asks again for what never arrived, then delivers in order.
    async fn handle(&self, response: PublishResponse, acks: &mut Vec<SubscriptionAcknowledgement>) {
        let id = response.subscription_id;
        let message = response.notification_message;
        let seq = message.sequence_number;
        let has_data = message
            .notification_data
            .as_ref()
            .is_some_and(|d| !d.is_empty());
        let ack = SubscriptionAcknowledgement {
            subscription_id: id,
            sequence_number: seq,
        };
        let found = {
            let mut routes = lock(&self.routes);
            routes.get_mut(&id).map(|r| {
                let step = if has_data {
                    r.sequence.data(seq)
                } else {
                    match r.sequence.keep_alive(seq) {
                        Some((from, count)) => Step::Gap { from, count },
                        None => Step::Seen,
                    }
                };
                (step, r.inbox.clone())
            })
        };
        let Some((step, inbox)) = found else {
            // A subscription we no longer route: acknowledge so the server can let go.
            if has_data {
                acks.push(ack);
            }
            return;
        };
        if let Step::Gap { from, count } = step {
            let available = response.available_sequence_numbers.unwrap_or_default();
            let mut missed = 0u64;
            for n in numbers(from, count) {
                if !available.contains(&n) {
                    missed += 1;
                    continue;
                }
                match Republish::new(id, n, &self.session)
                    .send(self.session.channel())
                    .await
                {
                    Ok(r) => {
                        self.deliver(id, &inbox, r.notification_message);
                        acks.push(SubscriptionAcknowledgement {
                            subscription_id: id,
                            sequence_number: n,
                        });
                    }
                    Err(e) => {
                        debug!(endpoint = %self.endpoint, subscription = id, sequence = n, error = %e, "Republish failed");
                        missed += 1;
                    }
                }
            }
            if missed > 0 {
                inbox.missed(missed);
            } else {
                debug!(endpoint = %self.endpoint, subscription = id, from, count, "notifications republished");
            }
        }
        if has_data {
            if step != Step::Seen {
                self.deliver(id, &inbox, message);
            }
            acks.push(ack);
        }
        inbox.published();
    }

    fn deliver(&self, id: u32, inbox: &Inbox, message: NotificationMessage) {
        for data in message.notification_data.into_iter().flatten() {
            if let Some(changes) = data.inner_as::<DataChangeNotification>() {
                inbox.push(changes.monitored_items.iter().flatten().filter_map(|n| {
                    n.client_handle
                        .checked_sub(1)
                        .map(|tag| (tag, n.value.clone()))
                }));
            } else if let Some(status) = data.inner_as::<StatusChangeNotification>() {
                if !status.status.is_good() {
                    inbox.fail(LinkError::protocol(format!(
                        "subscription ended by the server: {}",
                        status.status
                    )));
                    lock(&self.routes).remove(&id);
                }
            } else {
                debug!(endpoint = %self.endpoint, kind = ?ExtensionObject::type_id(&data), "notification ignored");
            }
        }
    }
}

/// Keeps Publish requests outstanding while the session is up and some device subscribes,
/// and hands each response to [`Inner::handle`] in the order they were sent.
async fn publish_loop(inner: Arc<Inner>) {
    let mut state = inner.state.subscribe();
    let mut acks: Vec<SubscriptionAcknowledgement> = Vec::new();
    let mut seen_generation = 0u64;
    loop {
        // Up, with something to publish for.
        let generation = loop {
            let now = state.borrow_and_update().clone();
            match now {
                LinkState::Settling {
                    generation,
                    new_session,
                } => {
                    // A new session after a first one: move what can be moved before
                    // devices look at their subscriptions again.
                    if new_session && seen_generation != 0 {
                        inner.transfer().await;
                    }
                    seen_generation = generation;
                    inner.state.send_if_modified(|s| match s {
                        LinkState::Settling { generation: g, .. } if *g == generation => {
                            *s = LinkState::Up { generation };
                            true
                        }
                        _ => false,
                    });
                    continue;
                }
                LinkState::Up { generation } if !lock(&inner.routes).is_empty() => {
                    break generation
                }
                LinkState::Dead(_) => return,
                _ => {}
            }
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                _ = inner.wake.notified() => {}
            }
        };
        let mut cap = MAX_PUBLISH;
        let mut inflight = FuturesOrdered::new();
        while let Some((want, wait)) = inner.publish_plan(cap) {
            while inflight.len() < want {
                let session = inner.session.clone();
                let sent = std::mem::take(&mut acks);
                inflight.push_back(async move {
                    let r = Publish::new(&session)
                        .acks(sent.clone())
                        .timeout(wait)
                        .send(session.channel())
                        .await;
                    (sent, r)
                });
            }
            tokio::select! {
                Some((sent, result)) = inflight.next() => match result {
                    Ok(response) => inner.handle(response, &mut acks).await,
                    Err(e) => {
                        // Not acknowledged after all: send them with the next request.
                        acks.extend(sent);
                        let code = e.status();
                        if code == StatusCode::BadTooManyPublishRequests {
                            cap = inflight.len().max(1);
                            debug!(endpoint = %inner.endpoint, outstanding = cap, "the server takes fewer Publish requests");
                        } else if code == StatusCode::BadNoSubscription {
                            inner.lose_all("the server has no subscription for us");
                        } else if code != StatusCode::BadTimeout && !inner.up(generation) {
                            break;
                        } else if code != StatusCode::BadTimeout {
                            debug!(endpoint = %inner.endpoint, status = %code, "Publish failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                },
                r = state.changed() => {
                    if r.is_err() || !inner.up(generation) {
                        break;
                    }
                }
                _ = inner.wake.notified() => {}
            }
        }
        // Keep only the acknowledgements of subscriptions still routed.
        let routes = lock(&inner.routes);
        acks.retain(|a| routes.contains_key(&a.subscription_id));
    }
}

/// The server's per-call limits, read once the session is up (0 where it states none).
pub(crate) async fn read_limits(link: &Link) {
    use opcua::types::{AttributeId, ReadValueId, TimestampsToReturn, VariableId};
    let ids = [
        VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    ]
    .map(|v| ReadValueId {
        node_id: v.into(),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    });
    let values = link
        .session()
        .read(&ids, TimestampsToReturn::Neither, 0.0)
        .await
        .unwrap_or_default();
    let number = |i: usize| {
        values
            .get(i)
            .and_then(|dv| dv.value.as_ref())
            .and_then(|v| match v {
                opcua::types::Variant::UInt32(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    };
    *lock(&link.inner.limits) = ServerLimits {
        max_nodes_per_read: number(0),
        max_monitored_items_per_call: number(1),
    };
}
