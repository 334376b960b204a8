//! The MQTT link of the edge node: the session's state machine (connect with the next
//! bdSeq, subscribe, wait for the primary host, birth), publishing with seq and flow
//! control, acknowledgements, loss and reconnect with backoff, moving to another server
//! (the rules are in `servers.rs`), and the explicit NDEATH.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{ConnectReturnCode, Event, Incoming, Outgoing, QoS, SubscribeFilter};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::codec;
use super::inflight::Track;
use super::node::{blocking, NodeTask};
use super::session::{Session, SessionEvent};
use super::topics::Topics;

/// Meta key of the last bdSeq used.
pub(super) const BD_SEQ_KEY: &str = "sparkplug.bd_seq";
/// Payload bytes of data that may wait in front of the MQTT connection (see
/// [`NodeTask::room_for_data`]): about half a second of 1M samples/s.
pub(super) const QUEUED_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No session; the next one starts at `retry_at`.
    Down { retry_at: Instant },
    /// bdSeq set, waiting for the journal commit that writes it (see `connect`).
    Persisting { bd_seq: u64 },
    /// CONNECT sent.
    Connecting,
    /// SUBSCRIBE sent, waiting for SUBACK.
    Subscribing,
    /// Subscribed; the primary host is offline.
    WaitingHost,
    /// NBIRTH sent.
    Online,
    /// Leaving the server on purpose (host offline, Next Server, back to the first): data
    /// goes to the journal only while the PUBACKs of what is in flight come in, so that
    /// nothing the server took is sent again on the next; NDEATH and DISCONNECT at `until`
    /// at the latest. `born`: NBIRTH went out on this session.
    Leaving {
        until: Instant,
        born: bool,
        why: &'static str,
    },
}

/// Longest a planned move waits for in-flight PUBACKs.
const LEAVE_WAIT: Duration = Duration::from_secs(2);

impl NodeTask {
    pub(super) fn connect(&mut self) {
        let last = match blocking(|| self.journal.get_u64(BD_SEQ_KEY)) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot read bdSeq from the journal; retrying");
                self.backoff();
                return;
            }
        };
        // 0 on the very first session, then +1 per CONNECT, wrapping at 256.
        let bd_seq = last.map_or(0, |v| (v + 1) % 256);
        // On disk before the CONNECT that registers it in the Will: a journal commit writes
        // it, on the blocking thread that writes every commit, and `after_commit` connects
        // once it has. A transaction of its own here (`set_u64`) would stop this task for
        // its fsyncs and, behind redb's one writer at a time, for the commit in flight too:
        // seconds on a slow card, with no samples taken meanwhile.
        self.journal.stage_u64(BD_SEQ_KEY, bd_seq);
        self.phase = Phase::Persisting { bd_seq };
        // With a commit in flight, `after_commit` begins the next one.
        self.begin_commit();
    }

    /// A journal commit has finished (`failed`: with an error). While a bdSeq waits for the
    /// disk: connect once it is there, or begin the commit that writes it. A full disk must
    /// not stop live data: after a failed commit the node connects anyway; the journal
    /// still hands out the next bdSeq in this process and writes it once it can, so only a
    /// restart before then could reuse it.
    pub(super) fn after_commit(&mut self, failed: bool) {
        let Phase::Persisting { bd_seq } = self.phase else {
            return;
        };
        if failed {
            warn!(bd_seq, "cannot persist bdSeq; connecting with it anyway");
        } else if !self.journal.u64_saved(BD_SEQ_KEY) {
            // That commit was begun before the bdSeq was set.
            self.begin_commit();
            return;
        }
        self.start_session(bd_seq);
    }

    fn start_session(&mut self, bd_seq: u64) {
        let server = self.servers.current();
        let Some(broker) = self.settings.brokers.get(server) else {
            return;
        };
        debug!(server = %broker.url(), bd_seq, "connecting to the MQTT broker");
        if self.settings.primary_host_id.is_some() {
            // What was seen of the host here in an earlier session may be hours old: its
            // retained STATE, due right after SUBACK, says what it is now.
            self.servers.forget_host();
            self.status.host_online.store(false, Ordering::Relaxed);
            self.status
                .hosts_online
                .store(self.servers.hosts_mask(), Ordering::Relaxed);
        }
        self.status.bd_seq.store(bd_seq, Ordering::Relaxed);
        self.session = Some(Session::start(
            &self.settings,
            broker,
            &self.topics,
            bd_seq as u8,
        ));
        self.phase = Phase::Connecting;
    }

    /// The URL of the server in use, for log lines.
    pub(super) fn server_url(&self) -> String {
        (self.settings.brokers.get(self.servers.current())).map_or_else(String::new, |b| b.url())
    }

    /// Leaves the server on purpose (see [`Phase::Leaving`]); the next session goes to the
    /// next server, or the pinned one, at once.
    pub(super) fn leave(&mut self, why: &'static str) {
        // Already on the way out: the first reason, its deadline and its NDEATH stand.
        if matches!(self.phase, Phase::Leaving { .. }) {
            return;
        }
        let born = self.phase == Phase::Online;
        info!(server = %self.server_url(), why, "leaving the MQTT server");
        self.phase = Phase::Leaving {
            until: Instant::now() + LEAVE_WAIT,
            born,
            why,
        };
        self.devices.iter_mut().for_each(|d| d.born = false);
        self.status.born.store(false, Ordering::Relaxed);
        self.on_server_clock(Instant::now());
    }

    /// NDEATH (when born) and DISCONNECT, finished aside, then the next session.
    fn depart(&mut self, born: bool, why: &'static str) {
        if let Some(session) = self.session.take() {
            if born {
                let bytes = codec::encode(&codec::payload(
                    None,
                    vec![codec::bd_seq_metric(session.bd_seq, None)],
                ));
                let _ = session.client.try_publish(
                    self.topics.ndeath(),
                    QoS::AtLeastOnce,
                    false,
                    bytes,
                );
            }
            // DISCONNECT follows the NDEATH in the same ordered queue.
            tokio::spawn(session.disconnect(Duration::from_secs(2)));
        }
        self.lost(why, true);
    }

    /// The timed parts of the server rules, at each tick: a planned move whose PUBACKs are
    /// in (or waited for long enough), the primary host's STATE not arriving, and the
    /// return to the first server.
    pub(super) fn on_server_clock(&mut self, now: Instant) {
        match self.phase {
            Phase::Leaving { until, born, why }
                if self.inflight.records() == 0 || now >= until || self.session.is_none() =>
            {
                self.depart(born, why);
            }
            Phase::WaitingHost if self.host_wait_until.is_some_and(|t| now >= t) => {
                self.host_wait_until = None;
                self.host_missing("no STATE from the primary host within primary_host_timeout");
            }
            Phase::Online => {
                let back = self.settings.return_to_first.is_some_and(|after| {
                    self.servers.current() != 0
                        && self.online_since.is_some_and(|t| now >= t + after)
                });
                if back {
                    self.servers.pin_first();
                    self.leave("return_to_first: back to the first server");
                }
            }
            _ => {}
        }
    }

    /// The primary host is not online on this server: on to the next, or stay once every
    /// server has been tried (see `servers.rs`).
    pub(super) fn host_missing(&mut self, why: &'static str) {
        if self.servers.host_missing() {
            self.leave(why);
        } else if self.servers.count() > 1 {
            info!(
                server = %self.server_url(),
                servers = self.servers.count(),
                "the primary host is online on none of the servers; staying here, data to the journal until it is back"
            );
        }
    }

    fn backoff(&mut self) {
        let delay = self.settings.reconnect.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Down {
            retry_at: Instant::now() + delay,
        };
    }

    /// The session is over; its in-flight records stay in the journal.
    pub(super) fn lost(&mut self, reason: &str, retry_now: bool) {
        // Each server's first failure in a row is logged (a wrong password on one of them
        // must show), then every tenth.
        let loud = self.phase == Phase::Online
            || self.attempt < self.servers.count() as u32
            || self.attempt.is_multiple_of(10);
        if retry_now {
            // A planned end (host offline, Next Server, back to the first), logged by `leave`.
            debug!(reason, "MQTT session ended; data goes to the journal");
        } else if loud {
            warn!(
                server = %self.server_url(),
                reason,
                attempt = self.attempt,
                "MQTT session lost; data goes to the journal"
            );
        }
        self.session = None;
        self.inflight.clear();
        self.devices.iter_mut().for_each(|d| d.born = false);
        self.status.connected.store(false, Ordering::Relaxed);
        self.status.born.store(false, Ordering::Relaxed);
        self.host_wait_until = None;
        self.online_since = None;
        if let Some(from) = self.servers.advance() {
            let from = (self.settings.brokers.get(from)).map_or_else(String::new, |b| b.url());
            if loud || retry_now {
                info!(from = %from, to = %self.server_url(), "the next session goes to another MQTT server");
            }
            self.status
                .server
                .store(self.servers.current() as u64, Ordering::Relaxed);
            self.status
                .host_online
                .store(self.servers.host().online, Ordering::Relaxed);
        }
        if retry_now {
            self.phase = Phase::Down {
                retry_at: Instant::now(),
            };
        } else {
            self.backoff();
        }
    }

    /// Handles `first` and every event already queued behind it. Events are cheap and a
    /// model batch is not: taking one event per turn of the loop let them pile up under load
    /// until the queue was full and rumqttc's event loop, waiting to hand over the next one,
    /// stopped writing to the connection (2M samples/s offered: 330k delivered, p99 23 s).
    pub(super) fn on_session_events(&mut self, first: Option<SessionEvent>) {
        self.on_session(first);
        // At most the queue's worth, so a busy connection cannot keep the model waiting.
        for _ in 0..super::session::EVENT_QUEUE {
            let Some(session) = &mut self.session else {
                return;
            };
            match session.events.try_recv() {
                Ok(ev) => self.on_session(Some(ev)),
                Err(_) => return,
            }
        }
    }

    pub(super) fn on_session(&mut self, ev: Option<SessionEvent>) {
        let ev = match ev {
            Some(SessionEvent::Mqtt(ev)) => ev,
            Some(SessionEvent::Closed(reason)) => return self.lost(&reason, false),
            None => return self.lost("event loop ended", false),
        };
        match ev {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    return self.lost(&format!("broker refused: {:?}", ack.code), false);
                }
                self.status.connected.store(true, Ordering::Relaxed);
                self.subscribe();
            }
            Event::Incoming(Incoming::SubAck(ack)) if self.phase == Phase::Subscribing => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    return self.lost("broker refused a subscription (NCMD/DCMD/STATE)", false);
                }
                info!(
                    bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq),
                    "MQTT connected and subscribed"
                );
                if self.servers.host().online {
                    self.birth();
                } else {
                    info!(host = ?self.settings.primary_host_id, server = %self.server_url(), "waiting for the primary host to be online");
                    self.phase = Phase::WaitingHost;
                    // With nowhere else to go there is nothing to time out.
                    self.host_wait_until = (self.servers.count() > 1)
                        .then(|| Instant::now() + self.settings.primary_host_timeout);
                }
            }
            Event::Incoming(Incoming::Publish(p)) => self.on_message(&p.topic, &p.payload),
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some((track, latency)) = self.inflight.acked(ack.pkid) {
                    self.status.record_latency(latency);
                    self.done(track);
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(track) = self.inflight.written(pkid) {
                    self.done(track);
                }
            }
            _ => {}
        }
    }

    /// A publish is complete: its record leaves the journal.
    fn done(&mut self, track: Track) {
        if let Track::Record { seq, samples } = track {
            self.journal.ack(seq);
            self.status
                .published
                .fetch_add(u64::from(samples), Ordering::Relaxed);
        }
    }

    fn subscribe(&mut self) {
        let Some(session) = &self.session else { return };
        let mut filters = vec![
            SubscribeFilter::new(self.topics.ncmd(), QoS::AtLeastOnce),
            SubscribeFilter::new(self.topics.dcmd_filter(), QoS::AtLeastOnce),
        ];
        if let Some(host) = &self.settings.primary_host_id {
            filters.push(SubscribeFilter::new(Topics::state(host), QoS::AtLeastOnce));
        }
        match session.client.try_subscribe_many(filters) {
            Ok(()) => self.phase = Phase::Subscribing,
            Err(e) => self.lost(&format!("cannot subscribe: {e}"), false),
        }
    }

    /// Publishes with the current seq (advanced only when the request was taken).
    pub(super) fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        track: Track,
        build: impl FnOnce(u8) -> sparkplug_rs::Payload,
    ) -> bool {
        self.publish_bytes(topic, qos, track, |seq| codec::encode(&build(seq)))
    }

    /// [`publish`](Self::publish) of a payload already encoded but for its `seq`.
    pub(super) fn publish_bytes(
        &mut self,
        topic: String,
        qos: QoS,
        track: Track,
        build: impl FnOnce(u8) -> Vec<u8>,
    ) -> bool {
        let Some(session) = &self.session else {
            return false;
        };
        if matches!(track, Track::Record { .. }) && !self.room_for_data() {
            return false;
        }
        let bytes = build(self.seq);
        let size = bytes.len();
        match session.client.try_publish(topic, qos, false, bytes) {
            Ok(()) => {
                self.seq = self.seq.wrapping_add(1);
                self.inflight.queued(track, size);
                true
            }
            Err(e) => {
                debug!(error = %e, "MQTT request queue full");
                false
            }
        }
    }

    /// Whether a data record may go to rumqttc now. Past [`QUEUED_BYTES`] waiting to be
    /// written, the broker or the link is not keeping up: records stay in the journal, and
    /// the drain sends them (historical) once it does, so memory and the latency of what is
    /// sent live stay bounded instead of queueing without end in front of the connection.
    pub(super) fn room_for_data(&self) -> bool {
        self.inflight.queued_bytes() < QUEUED_BYTES
    }

    pub(super) fn data_qos(&self) -> QoS {
        if self.settings.data_qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    /// The explicit NDEATH of a clean stop or a host going offline: QoS 1, awaited up to
    /// 2 s, with the bdSeq of this session.
    pub(super) async fn publish_ndeath(&mut self) {
        let bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq);
        let Some(session) = &self.session else { return };
        let bytes = codec::encode(&codec::payload(
            None,
            vec![codec::bd_seq_metric(bd_seq, None)],
        ));
        if session
            .client
            .try_publish(self.topics.ndeath(), QoS::AtLeastOnce, false, bytes)
            .is_err()
        {
            warn!("MQTT request queue full: NDEATH not sent (the broker's Will covers it)");
            return;
        }
        self.inflight.queued(Track::Death, 0);
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let ev =
                match tokio::time::timeout_at(until, next_session_event(&mut self.session)).await {
                    Ok(Some(ev)) => ev,
                    _ => break,
                };
            match ev {
                SessionEvent::Mqtt(Event::Incoming(Incoming::PubAck(ack))) => {
                    match self.inflight.acked(ack.pkid) {
                        Some((Track::Death, _)) => {
                            info!(bd_seq, "NDEATH published");
                            break;
                        }
                        Some((track, latency)) => {
                            self.status.record_latency(latency);
                            self.done(track)
                        }
                        None => {}
                    }
                }
                SessionEvent::Mqtt(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(track) = self.inflight.written(pkid) {
                        self.done(track);
                    }
                }
                SessionEvent::Mqtt(_) => {}
                SessionEvent::Closed(_) => break,
            }
        }
        self.status.born.store(false, Ordering::Relaxed);
    }
}

pub(super) async fn next_session_event(session: &mut Option<Session>) -> Option<SessionEvent> {
    match session {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}
