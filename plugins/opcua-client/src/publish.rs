//! The publish loop of a link: what async-opcua's own subscription handling does not do.
//!
//! - It keeps several Publish requests outstanding while the session is up and a device
//!   subscribes, and hands the responses on in the order they were sent.
//! - It follows every subscription's sequence numbers. Messages the server sent but that
//!   never arrived (a connection cut mid-response) are asked for again with Republish
//!   before what came after them is delivered, so a short break loses no data change and
//!   changes arrive in order. When a Republish cannot get through (the connection broke
//!   again), the response that showed the gap is neither delivered nor acknowledged and the
//!   gap stays open: the server keeps it all for the next attempt.
//! - On a new session it moves the subscriptions over with TransferSubscriptions; those the
//!   server no longer has are reported to their devices, which create them anew.
//! - Data for a subscription no device routes any more (one whose deletion did not reach
//!   the server) is acknowledged and the subscription deleted: it would be sampled for the
//!   life of the session otherwise.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use opcua::client::services::{DeleteSubscriptions, Publish, Republish, TransferSubscriptions};
use opcua::client::UARequest;
use opcua::types::{
    DataChangeNotification, NotificationMessage, PublishResponse, StatusChangeNotification,
    StatusCode, SubscriptionAcknowledgement,
};
use tracing::{debug, info};
use uaedge_driver::LinkError;

use crate::inbox::{Change, Inbox};
use crate::link::{lock, Inner, LinkState};
use crate::sequence::{numbers, Step};

/// Publish requests kept outstanding per subscription (plus one), within these bounds:
/// enough that a response is always on its way at tens of thousands of changes a second,
/// few enough to stay inside what servers allow (async-opcua: 4 per subscription).
const MIN_PUBLISH: usize = 2;
const MAX_PUBLISH: usize = 10;
/// Pause after a refused or failed Publish with none outstanding, so that a server that
/// keeps saying no is not asked again at once.
const BACK_OFF: Duration = Duration::from_millis(200);

/// The loop's own state across sessions.
struct Loop {
    inner: Arc<Inner>,
    /// Acknowledgements for the next Publish request.
    acks: Vec<SubscriptionAcknowledgement>,
    /// Unrouted subscriptions already deleted in this session.
    orphans: HashSet<u32>,
    /// A new session's transfer did not get through; try again once connected.
    transfer_pending: bool,
}

/// How one response went.
enum Handled {
    Done,
    /// A Republish could not get through: the connection is failing.
    Broken,
}

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut state = inner.state.subscribe();
    let mut l = Loop {
        inner,
        acks: Vec::new(),
        orphans: HashSet::new(),
        transfer_pending: false,
    };
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
                    if new_session && seen_generation != 0 {
                        l.transfer_pending = true;
                        l.orphans.clear();
                    }
                    if l.transfer_pending {
                        l.transfer_pending = !l.transfer().await;
                    }
                    seen_generation = generation;
                    l.inner.state.send_if_modified(|s| match s {
                        LinkState::Settling { generation: g, .. } if *g == generation => {
                            *s = LinkState::Up { generation };
                            true
                        }
                        _ => false,
                    });
                    continue;
                }
                LinkState::Up { generation } if !lock(&l.inner.routes).is_empty() => {
                    break generation
                }
                LinkState::Dead(_) => return,
                _ => {}
            }
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                _ = l.inner.wake.notified() => {}
            }
        };
        l.publish(generation, &mut state).await;
        // Acknowledgements only for subscriptions still routed.
        let routes = lock(&l.inner.routes);
        l.acks.retain(|a| routes.contains_key(&a.subscription_id));
    }
}

impl Loop {
    /// Publishes for as long as session `generation` is up and routes exist.
    async fn publish(
        &mut self,
        generation: u64,
        state: &mut tokio::sync::watch::Receiver<LinkState>,
    ) {
        let mut cap = MAX_PUBLISH;
        let mut inflight = FuturesOrdered::new();
        while let Some((want, wait)) = self.plan(cap) {
            while inflight.len() < want {
                let session = self.inner.session.clone();
                let sent = std::mem::take(&mut self.acks);
                inflight.push_back(async move {
                    let at = Instant::now();
                    let r = Publish::new(&session)
                        .acks(sent.clone())
                        .timeout(wait)
                        .send(session.channel())
                        .await;
                    (sent, at, r)
                });
            }
            tokio::select! {
                Some((sent, at, result)) = inflight.next() => match result {
                    Ok(response) => {
                        if let Handled::Broken = self.handle(response).await {
                            return;
                        }
                    }
                    Err(e) => {
                        // Not acknowledged after all: send them with the next request.
                        self.acks.extend(sent);
                        let code = e.status();
                        if code == StatusCode::BadTooManyPublishRequests {
                            cap = inflight.len().max(1);
                            debug!(endpoint = %self.inner.endpoint, outstanding = cap, "the server takes fewer Publish requests");
                            if inflight.is_empty() {
                                tokio::time::sleep(BACK_OFF).await;
                            }
                        } else if code == StatusCode::BadNoSubscription {
                            self.lose_before(at);
                        } else if code == StatusCode::BadTimeout {
                            // An answer that took too long; the next request is on its way.
                        } else if !self.inner.up(generation) {
                            return;
                        } else {
                            debug!(endpoint = %self.inner.endpoint, status = %code, "Publish failed");
                            tokio::time::sleep(BACK_OFF).await;
                        }
                    }
                },
                r = state.changed() => {
                    if r.is_err() || !self.inner.up(generation) {
                        return;
                    }
                }
                _ = self.inner.wake.notified() => {
                    // Routes came or went: try the full number of requests again.
                    cap = MAX_PUBLISH;
                }
            }
        }
    }

    /// Publish requests to keep outstanding, and how long each may wait for its answer: a
    /// queued request is answered at the latest one keep-alive after the one before it.
    fn plan(&self, cap: usize) -> Option<(usize, Duration)> {
        let routes = lock(&self.inner.routes);
        let longest = routes.values().map(|r| r.keep_alive).max()?;
        let n = (routes.len() + 1)
            .clamp(MIN_PUBLISH, MAX_PUBLISH)
            .min(cap.max(1));
        let wait = longest
            .saturating_mul(n as u32 + 1)
            .saturating_add(self.inner.request_timeout);
        Some((n, wait))
    }

    /// Moves the subscriptions to a new session; those the server no longer has are
    /// reported to their devices. `false` when the request did not get through (the
    /// routes stay, to be moved on the next attempt).
    async fn transfer(&mut self) -> bool {
        let ids: Vec<u32> = lock(&self.inner.routes).keys().copied().collect();
        if ids.is_empty() {
            return true;
        }
        let session = &self.inner.session;
        let results = match TransferSubscriptions::new(session)
            .subscription_ids(ids.clone())
            .send_initial_values(false)
            .send(session.channel())
            .await
        {
            Ok(r) => r.results.unwrap_or_default(),
            Err(e) if e.status() == StatusCode::BadServiceUnsupported => Vec::new(),
            Err(e) => {
                debug!(endpoint = %self.inner.endpoint, error = %e, "TransferSubscriptions did not get through");
                return false;
            }
        };
        let mut routes = lock(&self.inner.routes);
        for (i, id) in ids.iter().enumerate() {
            let status = results
                .get(i)
                .map_or(StatusCode::BadSubscriptionIdInvalid, |r| r.status_code);
            if status.is_good() {
                info!(endpoint = %self.inner.endpoint, subscription = id, "subscription moved to the new session");
            } else if let Some(route) = routes.remove(id) {
                route.inbox.fail(LinkError::protocol(format!(
                    "the server lost the subscription with the old session ({status})"
                )));
            }
        }
        // An acknowledgement for a subscription that did not move could hit a new one the
        // server gives the same id.
        self.acks
            .retain(|a| routes.contains_key(&a.subscription_id));
        true
    }

    /// The server has no subscription for this session: the routes that existed when the
    /// failed request was sent are gone (those added since are not concerned).
    fn lose_before(&self, sent: Instant) {
        lock(&self.inner.routes).retain(|_, route| {
            let gone = route.added < sent;
            if gone {
                route
                    .inbox
                    .fail(LinkError::protocol("the server has no subscription for us"));
            }
            !gone
        });
    }

    /// One Publish response: asks again for what never arrived, then delivers in order.
    async fn handle(&mut self, response: PublishResponse) -> Handled {
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
            let mut routes = lock(&self.inner.routes);
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
            // Monitored items are created after their route, so data for an unrouted id
            // on this session can only be a subscription of ours no device wants.
            if has_data {
                self.acks.push(ack);
                if self.orphans.insert(id) {
                    self.delete_orphan(id).await;
                }
            }
            return Handled::Done;
        };
        if let Step::Gap { from, count } = step {
            let available = response.available_sequence_numbers.unwrap_or_default();
            let mut missed = 0u64;
            for n in numbers(from, count) {
                if !available.contains(&n) {
                    missed += 1;
                    continue;
                }
                let session = &self.inner.session;
                match Republish::new(id, n, session).send(session.channel()).await {
                    Ok(r) => {
                        self.deliver(id, &inbox, r.notification_message);
                        self.acks.push(SubscriptionAcknowledgement {
                            subscription_id: id,
                            sequence_number: n,
                        });
                    }
                    Err(e) if gone(e.status()) => missed += 1,
                    Err(e) => {
                        // Keep the gap open from `n`: this response is neither delivered
                        // nor acknowledged, so the server still has it after the break.
                        debug!(endpoint = %self.inner.endpoint, subscription = id, sequence = n, error = %e, "Republish did not get through");
                        if let Some(r) = lock(&self.inner.routes).get_mut(&id) {
                            r.sequence.rewind(n);
                        }
                        if missed > 0 {
                            inbox.missed(missed);
                        }
                        return Handled::Broken;
                    }
                }
            }
            if missed > 0 {
                inbox.missed(missed);
            } else {
                debug!(endpoint = %self.inner.endpoint, subscription = id, from, count, "notifications republished");
            }
        }
        if has_data {
            if step != Step::Seen {
                self.deliver(id, &inbox, message);
            }
            self.acks.push(ack);
        }
        inbox.published();
        Handled::Done
    }

    async fn delete_orphan(&self, id: u32) {
        let session = &self.inner.session;
        let result = DeleteSubscriptions::new(session)
            .subscription(id)
            .send(session.channel())
            .await;
        debug!(endpoint = %self.inner.endpoint, subscription = id, deleted = result.is_ok(), "unrouted subscription deleted");
    }

    fn deliver(&self, id: u32, inbox: &Inbox, message: NotificationMessage) {
        for data in message.notification_data.into_iter().flatten() {
            if data.inner_as::<DataChangeNotification>().is_some() {
                let Some(changes) = data.into_inner_as::<DataChangeNotification>() else {
                    continue;
                };
                inbox.push(
                    changes
                        .monitored_items
                        .into_iter()
                        .flatten()
                        .filter_map(|n| {
                            n.client_handle
                                .checked_sub(1)
                                .map(|tag| Change::new(tag, n.value))
                        }),
                );
            } else if let Some(status) = data.inner_as::<StatusChangeNotification>() {
                if !status.status.is_good() {
                    inbox.fail(LinkError::protocol(format!(
                        "subscription ended by the server: {}",
                        status.status
                    )));
                    lock(&self.inner.routes).remove(&id);
                }
            }
        }
    }
}

/// The server no longer has the message: it is missing for good.
fn gone(code: StatusCode) -> bool {
    code == StatusCode::BadMessageNotAvailable || code == StatusCode::BadSequenceNumberUnknown
}

impl Inner {
    pub(crate) fn up(&self, generation: u64) -> bool {
        matches!(&*self.state.borrow(), LinkState::Up { generation: g } if *g == generation)
    }
}
