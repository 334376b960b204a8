//! The components the runtime starts over the bus (Sparkplug edge node, OPC UA server,
//! metrics endpoint, web server), each from its own config section, each restarted alone when only
//! its section changes. A new component is one field here and one in [`Sections`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::STAGE_DEADLINE;
use crate::bus::{Handle, ModelEvent, SparkplugIdentity, SparkplugStatus, Start};
use crate::config::history::HistorySettings;
use crate::config::opcua::OpcUaSettings;
use crate::config::sparkplug::SparkplugSettings;
use crate::config::web::{Tls, WebSettings};
use crate::config::{Config, MetricsConfig};
use crate::history::{Historian, HistorySlot};
use crate::opcua_server::OpcUaServer;
use crate::sparkplug::EdgeNode;
use crate::web::audit::Audit;
use crate::web::auth::Auth;
use crate::web::Mount;

/// The sections whose change restarts their component.
#[derive(PartialEq)]
pub(super) struct Sections {
    state_dir: PathBuf,
    sparkplug: Option<SparkplugSettings>,
    opcua: Option<OpcUaSettings>,
    metrics: Option<MetricsConfig>,
    web: Option<WebSettings>,
    history: Option<HistorySettings>,
}

impl Sections {
    pub fn take(config: &mut Config) -> Sections {
        Sections {
            state_dir: std::mem::take(&mut config.state_dir),
            sparkplug: config.sparkplug.take(),
            opcua: config.opcua.take(),
            metrics: config.metrics.take(),
            web: config.web.take(),
            history: config.history.take(),
        }
    }

    /// The edge node journals under `state_dir`, so a new one restarts it too.
    fn sparkplug_differs(&self, other: &Sections) -> bool {
        self.sparkplug != other.sparkplug || self.state_dir != other.state_dir
    }

    /// The server keeps its PKI under `state_dir`.
    fn opcua_differs(&self, other: &Sections) -> bool {
        self.opcua != other.opcua || self.state_dir != other.state_dir
    }
}

pub(super) struct Components {
    sections: Sections,
    sparkplug: Option<EdgeNode>,
    opcua: Option<OpcUaServer>,
    metrics: Option<HttpTask>,
    web: Option<HttpTask>,
    history: Option<Historian>,
    /// Where the OPC UA server finds the historian, across its restarts.
    history_slot: HistorySlot,
}

impl Components {
    /// Starts every configured component. The edge node subscribes here, so when this
    /// runs before the devices start it sees every first event.
    pub fn start(sections: Sections, handle: &Handle, cancel: &CancellationToken) -> Components {
        // Before the OPC UA server, which reads it.
        let history_slot = HistorySlot::default();
        let history = start_history(sections.history.clone(), handle, &history_slot);
        Components {
            sparkplug: start_sparkplug(
                &sections,
                handle,
                sections
                    .sparkplug
                    .as_ref()
                    .map(|_| handle.subscribe_from(crate::sparkplug::MODEL_QUEUE)),
            ),
            opcua: crate::opcua_server::start_from_config(
                sections.opcua.clone(),
                &sections.state_dir,
                handle,
                history_slot.clone(),
            ),
            metrics: sections
                .metrics
                .map(|m| start_http(m.listen, Mount::Metrics, handle, &history_slot, cancel)),
            web: sections
                .web
                .as_ref()
                .map(|w| start_http(w.listen, api_mount(w), handle, &history_slot, cancel)),
            history,
            history_slot,
            sections,
        }
    }

    pub fn opcua(&self) -> Option<&OpcUaServer> {
        self.opcua.as_ref()
    }

    /// The first part of a reload, before the new table is in force: an edge node whose
    /// section changed hands over to its successor. The successor subscribes first, so
    /// that every event the old node did not journal reaches it (those both saw are
    /// journaled twice, and delivered at least once as always); it runs once the old one
    /// has stopped and closed the journal. `true` when it was replaced.
    pub async fn replace_changed_sparkplug(&mut self, next: &Sections, handle: &Handle) -> bool {
        if !next.sparkplug_differs(&self.sections) {
            return false;
        }
        let events = next
            .sparkplug
            .as_ref()
            .map(|_| handle.subscribe_from(crate::sparkplug::MODEL_QUEUE));
        if let Some(node) = self.sparkplug.take() {
            if !node.shutdown(crate::sparkplug::SHUTDOWN_DEADLINE).await {
                warn!("Sparkplug edge node did not stop within the shutdown deadline");
            }
        }
        self.sparkplug = start_sparkplug(next, handle, events);
        true
    }

    /// The rest, after the swap: the other changed components start again. Returns the
    /// names of all those restarted.
    pub async fn restart_changed(
        &mut self,
        next: Sections,
        sparkplug_replaced: bool,
        handle: &Handle,
        cancel: &CancellationToken,
    ) -> Vec<&'static str> {
        let mut restarted = Vec::new();
        if sparkplug_replaced {
            restarted.push("sparkplug");
        }
        if next.opcua_differs(&self.sections) {
            if let Some(server) = self.opcua.take() {
                if !server.shutdown().await {
                    warn!("OPC UA server did not stop within the shutdown deadline");
                }
            }
            self.opcua = crate::opcua_server::start_from_config(
                next.opcua.clone(),
                &next.state_dir,
                handle,
                self.history_slot.clone(),
            );
            restarted.push("opcua");
        }
        if next.metrics != self.sections.metrics {
            stop_http(self.metrics.take()).await;
            self.metrics = next
                .metrics
                .map(|m| start_http(m.listen, Mount::Metrics, handle, &self.history_slot, cancel));
            restarted.push("metrics");
        }
        if next.web != self.sections.web {
            stop_http(self.web.take()).await;
            self.web = next
                .web
                .as_ref()
                .map(|w| start_http(w.listen, api_mount(w), handle, &self.history_slot, cancel));
            restarted.push("web");
        }
        if next.history != self.sections.history {
            *self.history_slot.write() = None;
            if let Some(historian) = self.history.take() {
                historian.stop().await;
            }
            self.history = start_history(next.history.clone(), handle, &self.history_slot);
            restarted.push("history");
        }
        self.sections = next;
        restarted
    }

    /// Stops them after the router drained: the edge node journals the last samples,
    /// commits the store, publishes NDEATH and disconnects; the OPC UA server goes last,
    /// so SCADA clients keep seeing values and qualities until everything else stopped.
    /// The names of those that missed their deadline go to `late`.
    pub async fn shutdown(self, late: &mut Vec<String>) {
        if let Some(node) = self.sparkplug {
            if !node.shutdown(crate::sparkplug::SHUTDOWN_DEADLINE).await {
                warn!("Sparkplug edge node did not stop within the shutdown deadline");
                late.push("sparkplug".to_string());
            }
        }
        // After the router drained: the intake takes what is queued, then commits.
        if let Some(historian) = self.history {
            if tokio::time::timeout(STAGE_DEADLINE, historian.stop())
                .await
                .is_err()
            {
                late.push("history".to_string());
            }
        }
        // Cancelled with the runtime's token.
        for (name, http) in [("metrics", self.metrics), ("web", self.web)] {
            if let Some(http) = http {
                if tokio::time::timeout(STAGE_DEADLINE, http.task)
                    .await
                    .is_err()
                {
                    late.push(name.to_string());
                }
            }
        }
        if let Some(server) = self.opcua {
            if !server.shutdown().await {
                warn!("OPC UA server did not stop within the shutdown deadline");
                late.push("opcua".to_string());
            }
        }
    }
}

/// The edge node of `sections` (none without a `sparkplug:` section) on `events`, and its
/// status where readers find it.
fn start_sparkplug(
    sections: &Sections,
    handle: &Handle,
    events: Option<(mpsc::Receiver<ModelEvent>, Start)>,
) -> Option<EdgeNode> {
    let node = sections
        .sparkplug
        .clone()
        .zip(events)
        .map(|(settings, events)| {
            let status = Arc::new(SparkplugStatus::new(SparkplugIdentity {
                group_id: settings.group_id.clone(),
                edge_node_id: settings.edge_node_id.clone(),
                brokers: settings.brokers.iter().map(|b| b.url()).collect(),
                primary_host_id: settings.primary_host_id.clone(),
            }));
            EdgeNode::start(settings, handle.clone(), events, status)
        });
    handle
        .status()
        .set_sparkplug(node.as_ref().map(EdgeNode::status));
    node
}

fn api_mount(settings: &WebSettings) -> Mount {
    let secure = settings.tls != Tls::Off;
    Mount::Api {
        auth: Arc::new(Auth::new(&settings.users, settings.session_idle, secure)),
        audit: Arc::new(Audit::new(settings.audit_file.clone())),
        tls: settings.tls.clone(),
    }
}

/// An HTTP listener's task and the token that stops it.
struct HttpTask {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Serves `mount` on `listen`. A port that cannot be bound is logged and left: metrics and
/// the API are for watching; the plant's data keeps flowing without them.
fn start_http(
    listen: SocketAddr,
    mount: Mount,
    handle: &Handle,
    history: &HistorySlot,
    cancel: &CancellationToken,
) -> HttpTask {
    let (handle, cancel) = (handle.clone(), cancel.child_token());
    let history = history.clone();
    let stop = cancel.clone();
    let what = mount.name();
    let task = tokio::spawn(async move {
        match crate::web::bind(listen) {
            Ok(listener) => crate::web::serve(listener, mount, handle, history, cancel).await,
            Err(e) => warn!(listen = %listen, error = %e, "{what} not started"),
        }
    });
    HttpTask { cancel: stop, task }
}

async fn stop_http(http: Option<HttpTask>) {
    if let Some(http) = http {
        http.cancel.cancel();
        if tokio::time::timeout(STAGE_DEADLINE, http.task)
            .await
            .is_err()
        {
            warn!("HTTP listener did not stop within the shutdown deadline");
        }
    }
}

/// The historian of a `history:` section, subscribed from here on. A file that cannot be
/// opened leaves the runtime without history, not without data.
fn start_history(
    settings: Option<HistorySettings>,
    handle: &Handle,
    slot: &HistorySlot,
) -> Option<Historian> {
    let settings = settings?;
    let path = settings.path.clone();
    match Historian::start(settings, handle.subscribe_from(crate::history::MODEL_QUEUE)) {
        Ok(h) => {
            *slot.write() = Some(h.history().clone());
            Some(h)
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "history not started");
            None
        }
    }
}
