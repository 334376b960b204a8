//! One OPC UA session and the task that drives it.
//!
//! async-opcua's session event loop would reconnect by itself and, on a new session,
//! transfer or re-create subscriptions behind our back. We switch that off: the loop ends
//! at the first loss, the driver reports a [`LinkError`], and the runtime's `connect` builds
//! a new session and a new subscription from scratch. One way to recover, tested once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opcua::client::{
    Client, ClientBuilder, IdentityToken, Session, SessionPollResult, SubscriptionActivity,
};
use opcua::crypto::SecurityPolicy as Policy;
use opcua::types::{
    DataValue, EndpointDescription, MessageSecurityMode, StatusCode, UserTokenPolicy,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uaedge_driver::LinkError;

use crate::options::{Options, SecurityMode, SecurityPolicy};

/// Data changes and link news, shared between the session's callbacks and the driver.
#[derive(Default)]
pub(crate) struct Inbox {
    /// (tag index, value), oldest first.
    pub changes: VecDeque<(u32, DataValue)>,
    pub dropped: u64,
    /// Set once when the session or its subscription is gone.
    pub lost: Option<LinkError>,
    pub last_publish: Option<Instant>,
}

pub(crate) struct Shared {
    inbox: Mutex<Inbox>,
    capacity: usize,
    device: String,
}

impl Shared {
    pub fn new(capacity: usize, device: &str) -> Arc<Shared> {
        Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            capacity,
            device: device.to_string(),
        })
    }

    /// A poisoned lock only means a callback panicked mid-push; the queue is still sound.
    pub fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, tag: u32, value: DataValue) {
        let mut inbox = self.lock();
        if inbox.changes.len() >= self.capacity {
            inbox.changes.pop_front();
            inbox.dropped += 1;
            // First drop and every thousandth: enough to notice, not enough to flood.
            if inbox.dropped % 1000 == 1 {
                tracing::warn!(device = %self.device, dropped = inbox.dropped, capacity = self.capacity,
                    "data-change buffer full; dropping the oldest (raise `buffer` or poll faster)");
            }
        }
        inbox.changes.push_back((tag, value));
    }

    pub fn fail(&self, error: LinkError) {
        let mut inbox = self.lock();
        if inbox.lost.is_none() {
            inbox.lost = Some(error);
        }
    }

    fn published(&self) {
        self.lock().last_publish = Some(Instant::now());
    }
}

/// Builds the client: certificates and trust are settled here, once per driver.
pub(crate) fn client(options: &Options, device: &str) -> Result<Client, LinkError> {
    let mut builder = ClientBuilder::new()
        .application_name(format!("uaedge {device}"))
        .application_uri("urn:uaedge:opcua-client")
        .product_uri("urn:uaedge")
        .pki_dir(options.pki_dir.clone())
        .create_sample_keypair(options.client_certificate.is_none())
        .trust_server_certs(options.trust_server_certificate)
        // Never: the driver reports the loss and the runtime reconnects with its backoff.
        .session_retry_limit(0)
        .session_timeout(millis_u32(options.session_timeout.get()))
        .request_timeout(options.request_timeout.get())
        .keep_alive_interval(options.keep_alive_interval.get())
        .max_failed_keep_alive_count(2)
        .recreate_subscriptions(false)
        .session_name(format!("uaedge {device}"));
    if let (Some(cert), Some(key)) = (&options.client_certificate, &options.client_key) {
        builder = builder
            .certificate_path(absolute(cert))
            .private_key_path(absolute(key));
    }
    builder
        .client()
        .map_err(|e| LinkError::not_connected(format!("client setup: {}", e.join("; "))))
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub(crate) fn identity(options: &Options) -> Result<IdentityToken, LinkError> {
    let Some(user) = &options.username else {
        return Ok(IdentityToken::Anonymous);
    };
    let password = match (&options.password, &options.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                LinkError::not_connected(format!(
                    "cannot read password_file {}: {e}",
                    file.display()
                ))
            })?,
        (None, None) => String::new(),
    };
    Ok(IdentityToken::new_user_name(user.clone(), password))
}

pub(crate) fn endpoint(options: &Options) -> EndpointDescription {
    let policy = match options.security_policy {
        SecurityPolicy::None => Policy::None,
        SecurityPolicy::Basic256Sha256 => Policy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep => Policy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss => Policy::Aes256Sha256RsaPss,
    };
    let mode = match options.security_mode {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    };
    (
        options.endpoint.as_str(),
        policy.to_str(),
        mode,
        UserTokenPolicy::anonymous(),
    )
        .into()
}

/// A live session and the task polling its event loop.
pub(crate) struct Live {
    pub session: Arc<Session>,
    task: JoinHandle<()>,
}

impl Live {
    /// Opens a session and waits until it is activated (or failed), within `limit`.
    pub async fn open(
        client: &mut Client,
        options: &Options,
        shared: Arc<Shared>,
        limit: Duration,
    ) -> Result<Live, LinkError> {
        let identity = identity(options)?;
        let (session, event_loop) = tokio::time::timeout(
            limit,
            client.connect_to_matching_endpoint(endpoint(options), identity),
        )
        .await
        .map_err(|_| LinkError::timeout("no answer to GetEndpoints"))?
        .map_err(|e| link_error(e.status(), &format!("endpoint: {e}")))?;
        session.disable_reconnects();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(drive(event_loop.enter(), shared, ready_tx));
        let live = Live { session, task };
        let ready = tokio::time::timeout(limit, ready_rx).await;
        match ready {
            Ok(Ok(Ok(()))) => Ok(live),
            Ok(Ok(Err(e))) => {
                live.close(Duration::ZERO).await;
                Err(e)
            }
            Ok(Err(_)) => {
                live.close(Duration::ZERO).await;
                Err(LinkError::not_connected("session task ended"))
            }
            Err(_) => {
                live.close(Duration::ZERO).await;
                Err(LinkError::timeout("session not activated in time"))
            }
        }
    }

    /// Closes the session politely within `grace` (deleting its subscriptions on the
    /// server), then stops the task whatever the server did.
    pub async fn close(self, grace: Duration) {
        if !grace.is_zero() && !self.task.is_finished() {
            let _ = tokio::time::timeout(grace, self.session.disconnect()).await;
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn drive(
    events: impl futures::Stream<Item = Result<SessionPollResult, StatusCode>>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<(), LinkError>>,
) {
    let mut ready = Some(ready);
    // Before the session is up the error answers `open`; after, the next read finds it.
    let report = |ready: &mut Option<oneshot::Sender<_>>, error: LinkError| match ready.take() {
        Some(tx) => {
            let _ = tx.send(Err(error));
        }
        None => shared.fail(error),
    };
    tokio::pin!(events);
    loop {
        match events.next().await {
            Some(Ok(SessionPollResult::Reconnected(_))) => {
                shared.published();
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                report(
                    &mut ready,
                    link_error(code, &format!("connection lost: {code}")),
                );
            }
            Some(Ok(SessionPollResult::Subscription(SubscriptionActivity::Publish))) => {
                shared.published();
            }
            Some(Ok(SessionPollResult::Subscription(SubscriptionActivity::FatalFailure(code)))) => {
                report(
                    &mut ready,
                    link_error(code, &format!("subscription failed: {code}")),
                );
            }
            Some(Ok(SessionPollResult::Subscription(SubscriptionActivity::PublishFailed(
                code,
            )))) => {
                // BadNoSubscription means the server dropped ours (its lifetime ran out
                // while we were away, or it restarted the address space).
                if code == StatusCode::BadNoSubscription {
                    report(
                        &mut ready,
                        LinkError::protocol("the server has no subscription for us"),
                    );
                } else {
                    tracing::debug!(device = %shared.device, status = %code, "publish failed");
                }
            }
            Some(Ok(_)) => {}
            Some(Err(code)) => {
                report(
                    &mut ready,
                    link_error(code, &format!("session failed: {code}")),
                );
                break;
            }
            None => {
                report(&mut ready, LinkError::not_connected("session closed"));
                break;
            }
        }
    }
}

/// A failed service call or session to a link error of the right kind.
pub(crate) fn link_error(status: StatusCode, message: &str) -> LinkError {
    use opcua::types::SubStatusCode as S;
    match status.sub_code() {
        S::BadTimeout | S::BadRequestTimeout => LinkError::timeout(message),
        S::BadConnectionRejected
        | S::BadConnectionClosed
        | S::BadNotConnected
        | S::BadServerHalted
        | S::BadSecureChannelClosed
        | S::BadCommunicationError
        | S::BadServerNotConnected
        | S::BadTcpEndpointUrlInvalid => LinkError::not_connected(message),
        _ => LinkError::protocol(message),
    }
}
