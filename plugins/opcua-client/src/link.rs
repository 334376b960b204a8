//! One session to one server, shared by every device that reaches it the same way
//! (pool.rs): its state, the routes from its subscriptions to the devices' inboxes, and the
//! task that follows async-opcua's session event loop. The publish loop (publish.rs) serves
//! the routes.
//!
//! async-opcua drives the session: it notices a broken connection, opens a new secure
//! channel and reactivates the same session on it, or creates a new session when the old
//! one is gone. A new session passes through `Settling` while the publish loop moves the
//! subscriptions over, before devices look at theirs again.
//!
//! A link that never came up, or whose server refuses it (credentials, certificates),
//! gives up at once and reports why: the runtime's backoff decides when to try again.
//! One that was up keeps trying to reactivate its session for as long as the session can
//! live on the server, then gives up the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opcua::client::{Client, Session, SessionConnectMode, SessionPollResult};
use opcua::types::StatusCode;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uaedge_driver::LinkError;

use crate::inbox::Inbox;
use crate::options::Options;
use crate::sequence::Sequence;
use crate::session::{self, link_error};

#[derive(Debug, Clone)]
pub(crate) enum LinkState {
    /// Not up yet.
    Connecting,
    /// Connected; a new session's subscriptions are being moved over before devices use
    /// it (see publish.rs).
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

pub(crate) struct Route {
    pub inbox: Arc<Inbox>,
    pub sequence: Sequence,
    /// Longest time the server may take to answer a Publish for this subscription: its
    /// publishing interval times its keep-alive count.
    pub keep_alive: Duration,
    /// When it was added: a BadNoSubscription answer to a Publish sent before does not
    /// concern it.
    pub added: Instant,
}

/// What the link's tasks share.
pub(crate) struct Inner {
    pub session: Arc<Session>,
    pub endpoint: String,
    pub state: watch::Sender<LinkState>,
    pub routes: Mutex<HashMap<u32, Route>>,
    /// Rings when routes come or go, so the publish loop adjusts.
    pub wake: Notify,
    limits: Mutex<ServerLimits>,
    pub request_timeout: Duration,
}

pub(crate) struct Link {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Kept for as long as the session lives: it holds the certificate store.
    _client: Client,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        // Before the event loop runs, so the session's channel decodes every answer with
        // them. The GetEndpoints just made ran on async-opcua's own channel, which cannot
        // be given loaders (see hardening.rs).
        {
            let context = session.context();
            let mut context = context.write();
            let hardened = crate::hardening::harden(context.loaders_mut());
            *context.loaders_mut() = hardened;
        }
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
        let publish = tokio::spawn(crate::publish::run(inner.clone()));
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
                added: Instant::now(),
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
