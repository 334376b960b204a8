//! What components report about themselves, in one neutral place: the component writes,
//! readers (`/metrics`, the OPC UA Runtime object, the Sparkplug node metrics) read. Plain
//! atomics: a reader never waits on the component it watches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::gateway::GatewayInfo;

/// Every component's status, shared by all [`super::Handle`]s of one runtime. It outlives
/// component restarts by a reload, so counters that only grow keep growing.
#[derive(Debug, Default)]
pub struct Status {
    /// Written by the router's anomaly checks.
    pub alarms: Arc<AlarmStatus>,
    /// Written by the OPC UA server's gate.
    pub opcua_connections: Arc<ConnectionStats>,
    /// The edge node running now, when the config has a `sparkplug:` section; a restarted
    /// node starts with a fresh one.
    sparkplug: RwLock<Option<Arc<SparkplugStatus>>>,
    /// The OPC UA server while it listens.
    opcua: RwLock<Option<Arc<OpcUaStatus>>>,
    /// Written by the binary at start and on each reload.
    gateway: RwLock<GatewayInfo>,
    /// Where reloads asked for by an admin go: the binary serves them as it serves SIGHUP.
    reloads: RwLock<Option<mpsc::Sender<ReloadRequest>>>,
}

/// A reload asked for by `user` (the web console's admin), and where its own outcome
/// goes (not another reload's that ran meanwhile).
#[derive(Debug)]
pub struct ReloadRequest {
    pub user: String,
    pub done: tokio::sync::oneshot::Sender<super::gateway::ReloadRecord>,
}

/// Why a reload cannot be asked for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReloadRefused {
    /// uaedge runs inside another program, which reloads as it sees fit.
    #[error("this runtime takes no reload requests (only the uaedge service does)")]
    NotServed,
    #[error("a reload is already waiting")]
    Busy,
}

impl Status {
    pub fn sparkplug(&self) -> Option<Arc<SparkplugStatus>> {
        self.sparkplug.read().clone()
    }

    pub fn opcua(&self) -> Option<Arc<OpcUaStatus>> {
        self.opcua.read().clone()
    }

    /// Set by the OPC UA server once it listens.
    pub(crate) fn set_opcua(&self, status: Arc<OpcUaStatus>) {
        *self.opcua.write() = Some(status);
    }

    /// Back to `None` when that server stops, unless a newer one has taken its place (a
    /// server slow to stop may end after its successor started).
    pub(crate) fn clear_opcua(&self, status: &Arc<OpcUaStatus>) {
        let mut slot = self.opcua.write();
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, status)) {
            *slot = None;
        }
    }

    /// Takes the reload requests from now on (the binary, once).
    pub fn serve_reloads(&self) -> mpsc::Receiver<ReloadRequest> {
        let (tx, rx) = mpsc::channel(1);
        *self.reloads.write() = Some(tx);
        rx
    }

    /// Asks whoever serves reloads for one; it runs as SIGHUP's does. Its outcome comes
    /// on the receiver (and lands in [`GatewayInfo::last_reload`] as well).
    pub fn request_reload(
        &self,
        user: &str,
    ) -> Result<tokio::sync::oneshot::Receiver<super::gateway::ReloadRecord>, ReloadRefused> {
        let reloads = self.reloads.read();
        let tx = reloads.as_ref().ok_or(ReloadRefused::NotServed)?;
        let (done, outcome) = tokio::sync::oneshot::channel();
        tx.try_send(ReloadRequest {
            user: user.to_string(),
            done,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ReloadRefused::Busy,
            mpsc::error::TrySendError::Closed(_) => ReloadRefused::NotServed,
        })?;
        Ok(outcome)
    }

    /// What is known of the process now.
    pub fn gateway(&self) -> GatewayInfo {
        self.gateway.read().clone()
    }

    /// Changes what is known of the process (the binary calls it at start and on reload).
    pub fn update_gateway(&self, f: impl FnOnce(&mut GatewayInfo)) {
        f(&mut self.gateway.write());
    }

    /// Set by whoever starts (or stops, with `None`) the edge node.
    pub(crate) fn set_sparkplug(&self, status: Option<Arc<SparkplugStatus>>) {
        *self.sparkplug.write() = status;
    }
}

/// One endpoint the OPC UA server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub url: String,
    /// The policy's short name, e.g. `Basic256Sha256`.
    pub security_policy: String,
    /// `None`, `Sign` or `SignAndEncrypt`.
    pub security_mode: String,
}

/// The running OPC UA server, as readers outside it see it: its endpoints, and its
/// session count read from the server's own diagnostics when asked.
pub struct OpcUaStatus {
    pub endpoints: Vec<EndpointInfo>,
    sessions: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl OpcUaStatus {
    pub fn new(endpoints: Vec<EndpointInfo>, sessions: Box<dyn Fn() -> u64 + Send + Sync>) -> Self {
        Self {
            endpoints,
            sessions,
        }
    }

    /// Sessions open now.
    pub fn sessions(&self) -> u64 {
        (self.sessions)()
    }
}

impl std::fmt::Debug for OpcUaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpcUaStatus")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// Live alarm counters, shared with the diagnostics (OPC UA Runtime object, Sparkplug
/// node metrics). Plain atomics: readers never wait on the router.
#[derive(Debug, Default)]
pub struct AlarmStatus {
    pub(crate) checks: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) transitions: AtomicU64,
}

/// A copy of [`AlarmStatus`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmCounts {
    /// Configured checks (one alarm each).
    pub checks: u64,
    /// Alarms Active now.
    pub active: u64,
    /// Alarm transitions either way since start.
    pub transitions: u64,
}

impl AlarmStatus {
    pub fn snapshot(&self) -> AlarmCounts {
        let r = Ordering::Relaxed;
        AlarmCounts {
            checks: self.checks.load(r),
            active: self.active.load(r),
            transitions: self.transitions.load(r),
        }
    }
}

/// Live state of the edge node, shared with the rest of the runtime (OPC UA Runtime
/// object, diagnostics). Plain atomics: readers never wait on the node.
#[derive(Debug, Default)]
pub struct SparkplugStatus {
    /// Who the node is and where it publishes: fixed for the node's life.
    pub identity: SparkplugIdentity,
    pub(crate) connected: AtomicBool,
    pub(crate) born: AtomicBool,
    pub(crate) host_online: AtomicBool,
    /// The primary host's STATE on each server, one bit a server (as last seen there).
    pub(crate) hosts_online: AtomicU64,
    /// Index in `identity.brokers` of the server in use (or being tried).
    pub(crate) server: AtomicU64,
    /// Births on another server than the one of the birth before.
    pub(crate) switches: AtomicU64,
    pub(crate) bd_seq: AtomicU64,
    pub(crate) backlog_records: AtomicU64,
    pub(crate) backlog_bytes: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Publish → PUBACK of journal records, summed in µs, and how many: a Prometheus summary.
    pub(crate) latency_sum_us: AtomicU64,
    pub(crate) latency_count: AtomicU64,
}

/// The edge node's names and broker, as the config gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparkplugIdentity {
    pub group_id: String,
    pub edge_node_id: String,
    /// The MQTT servers in order, as `mqtt://host:port` or `mqtts://host:port`.
    pub brokers: Vec<String>,
    pub primary_host_id: Option<String>,
}

/// A copy of [`SparkplugStatus`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// The MQTT connection is up (CONNACK received).
    pub mqtt_connected: bool,
    /// NBIRTH is out: data flows.
    pub born: bool,
    /// The primary host is online on the server in use (always true without
    /// `primary_host_id`).
    pub primary_host_online: bool,
    /// The primary host's STATE as last seen on each server: bit i for `brokers[i]`, all
    /// set without a primary host. See [`StatusSnapshot::host_online_on`].
    pub hosts_online: u64,
    /// Index in the identity's `brokers` of the server in use, or being tried.
    pub server: usize,
    /// Births on another server than the one of the birth before, since the node started
    /// (attempts that never got a birth do not count).
    pub server_switches: u64,
    pub bd_seq: u64,
    /// Journal records (one device's batch each) not yet acknowledged by the broker.
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    /// Samples acknowledged by the broker (live and historical).
    pub samples_published: u64,
    /// Historical samples sent from the backlog.
    pub samples_replayed: u64,
    /// Journal records dropped: bounds, unreadable, or naming tags no longer configured.
    pub records_dropped: u64,
    /// Publish → PUBACK time of journal records: total in µs and how many were measured.
    pub publish_latency_sum_us: u64,
    pub publish_latency_count: u64,
}

impl StatusSnapshot {
    /// The primary host's STATE on `brokers[server]` as last seen there (true without a
    /// primary host).
    pub fn host_online_on(&self, server: usize) -> bool {
        server < 64 && self.hosts_online & (1 << server) != 0
    }
}

impl SparkplugStatus {
    pub fn new(identity: SparkplugIdentity) -> Self {
        Self {
            identity,
            ..Self::default()
        }
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let r = Ordering::Relaxed;
        StatusSnapshot {
            mqtt_connected: self.connected.load(r),
            born: self.born.load(r),
            primary_host_online: self.host_online.load(r),
            hosts_online: self.hosts_online.load(r),
            server: usize::try_from(self.server.load(r)).unwrap_or(usize::MAX),
            server_switches: self.switches.load(r),
            bd_seq: self.bd_seq.load(r),
            backlog_records: self.backlog_records.load(r),
            backlog_bytes: self.backlog_bytes.load(r),
            samples_published: self.published.load(r),
            samples_replayed: self.replayed.load(r),
            records_dropped: self.dropped.load(r),
            publish_latency_sum_us: self.latency_sum_us.load(r),
            publish_latency_count: self.latency_count.load(r),
        }
    }

    pub(crate) fn record_latency(&self, latency: Option<std::time::Duration>) {
        if let Some(l) = latency {
            let us = u64::try_from(l.as_micros()).unwrap_or(u64::MAX);
            self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
            self.latency_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the gate has seen since the process started, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    /// Connections that ended before their secure channel opened.
    pub handshake_failures: AtomicU64,
}

impl ConnectionStats {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.open.load(Ordering::Relaxed),
            self.handshake_failures.load(Ordering::Relaxed),
        )
    }
}
