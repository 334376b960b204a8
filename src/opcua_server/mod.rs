//! uaedge's own OPC UA server: the unified model as an address space that SCADA clients
//! browse, read, subscribe to and write.
//!
//! Built on async-opcua (pure-Rust crypto). The pieces:
//! - `config.rs`: the `opcua:` YAML section and its validation.
//! - `address_space.rs`: Objects/uaedge/Devices/<device>/<folders…>/<tag>, Status and
//!   Runtime objects; NodeIds `ns=<uaedge>;s=<device>/<tag>`. No node is stored: each is
//!   worked out from the [`TagTable`](crate::model::TagTable) when a client asks.
//! - `node_manager.rs`: answers Browse, Read, TranslateBrowsePaths and monitored items from
//!   the table (no second copy of the values) and carries writes to [`Handle::write`];
//!   `services.rs` is async-opcua's `NodeManager` trait over it, which also routes
//!   HistoryRead to `history_read.rs` (raw), `history_processed.rs` (processed, at-time)
//!   and `history_events.rs`.
//! - `notify.rs`: pushes model events to monitored items, rather than sampling every tag,
//!   and applies config reloads in order with them: the address space shows the new table
//!   from then on, so sessions and monitored items on untouched tags carry on. A changed
//!   `opcua:` section restarts the server instead.
//! - `auth.rs`: anonymous on/off, users with plain or argon2-hashed passwords, who may
//!   write.
//! - `convert.rs`, `units.rs`: types, StatusCodes, timestamps, EngineeringUnits.
//!
//! Security: endpoints None, Basic256Sha256, Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss,
//! each Sign or SignAndEncrypt, as configured (default: the three SignAndEncrypt ones). The
//! application certificate is made on first start under `<state_dir>/pki/own`; client
//! certificates are trusted by moving them from `pki/rejected` to `pki/trusted` (or
//! automatically with `trust_client_certs: true`).

mod address_space;
mod aggregates;
mod auth;
mod condition_event;
mod condition_nodes;
mod conditions;
mod convert;
pub mod event_filter;
mod fresh_items;
mod gate;
mod history_capabilities;
mod history_events;
mod history_processed;
mod history_raw;
mod history_read;
mod limits;
mod live_values;
mod node_manager;
mod notify;
mod root_events;
mod services;
mod status_vars;
mod type_tree;
pub mod uatcp;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opcua::crypto::SecurityPolicy;
use opcua::server::{ServerBuilder, ServerEndpoint, ANONYMOUS_USER_TOKEN_ID};

use crate::history::HistorySlot;
use opcua::types::MessageSecurityMode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use uaedge_opcua_client::hardening::harden;

pub use address_space::tag_node_id;
pub use condition_event::condition_path;

use auth::Authenticator;
use conditions::CoreWithConditionsBuilder;
use node_manager::{ModelManagerBuilder, ModelNodeManager};

use crate::bus::{EndpointInfo, Handle, OpcUaStatus};
use crate::config::opcua::{Access, Endpoint, OpcUaSettings};

/// How long shutdown waits for sessions to close.
const STOP_DEADLINE: Duration = Duration::from_secs(3);
/// Pause between attempts to bind a listen address that is taken.
const BIND_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OpcUaError {
    #[error("cannot create the PKI folder {path}: {source}")]
    Pki {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no application certificate in {0} (see the log for why it could not be made); encrypted endpoints cannot work")]
    Certificate(String),
    #[error("invalid server setup: {0}")]
    Build(String),
    #[error("the uaedge node manager is missing from the server")]
    NodeManager,
}

/// A running OPC UA server.
pub struct OpcUaServer {
    listen: SocketAddr,
    ready: Arc<parking_lot::Mutex<Option<(SocketAddr, u16)>>>,
    token: CancellationToken,
    server: JoinHandle<()>,
}

impl OpcUaServer {
    /// Starts building the address space over `handle`'s model and then serving it, in the
    /// background: making the application certificate on first start takes seconds, and
    /// nothing else should wait for it. Must be called inside a tokio runtime. A listen
    /// address that is taken (say, by the previous instance still shutting down) is
    /// retried, with an error logged.
    pub fn start(
        settings: OpcUaSettings,
        state_dir: &Path,
        handle: &Handle,
        history: HistorySlot,
    ) -> Result<OpcUaServer, OpcUaError> {
        let pki = state_dir.join("pki");
        std::fs::create_dir_all(&pki).map_err(|source| OpcUaError::Pki {
            path: pki.display().to_string(),
            source,
        })?;
        let token = CancellationToken::new();
        let ready = Arc::new(parking_lot::Mutex::new(None));
        // Bound now, so a port-0 listener has its port and a taken port shows at once.
        let first = bind_now(settings.listen);
        let listen = settings.listen;
        info!(
            listen = %listen,
            endpoints = ?settings.endpoints,
            anonymous = ?settings.anonymous,
            users = settings.users.len(),
            pki = %pki.display(),
            "OPC UA server starting"
        );
        let task = serve(
            settings,
            pki,
            handle.clone(),
            history,
            first,
            token.clone(),
            ready.clone(),
        );
        Ok(OpcUaServer {
            listen,
            ready,
            token,
            server: tokio::spawn(task),
        })
    }

    /// The address the server listens on once it serves (with port 0, the port it got).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.ready.lock().map(|(addr, _)| addr)
    }

    /// The namespace index of uaedge's nodes (`ns=` in NodeIds), once it serves.
    pub fn namespace_index(&self) -> Option<u16> {
        self.ready.lock().map(|(_, ns)| ns)
    }

    /// Closes every session and stops; `false` when it took longer than the deadline.
    pub async fn shutdown(self) -> bool {
        self.token.cancel();
        let stopped = tokio::time::timeout(STOP_DEADLINE, self.server)
            .await
            .is_ok();
        if stopped {
            info!(listen = %self.listen, "OPC UA server stopped");
        }
        stopped
    }
}

async fn serve(
    settings: OpcUaSettings,
    pki: PathBuf,
    handle: Handle,
    history: HistorySlot,
    first: std::io::Result<tokio::net::TcpListener>,
    token: CancellationToken,
    ready: Arc<parking_lot::Mutex<Option<(SocketAddr, u16)>>>,
) {
    let listen = settings.listen;
    let max_chunk = settings.limits.max_message_size;
    // The port clients reach: the one bound already (port 0 becomes a real one), else the
    // configured one, which the retries will bind.
    let port = first
        .as_ref()
        .ok()
        .and_then(|l| l.local_addr().ok())
        .map_or(listen.port(), |a| a.port());
    let hostname = settings.hostname.clone();
    let offered: Vec<(SecurityPolicy, MessageSecurityMode)> =
        settings.endpoints.iter().map(|&e| security(e)).collect();
    let build = {
        let (handle, token) = (handle.clone(), token.clone());
        tokio::task::spawn_blocking(move || build(&settings, port, &pki, &handle, history, token))
    };
    let built = tokio::select! {
        // The certificate may still be in the making; its thread finishes on its own.
        _ = token.cancelled() => return,
        b = build => b,
    };
    let (server, info, subscriptions, manager, ns) = match built {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            error!(error = %e, "OPC UA server not started");
            return;
        }
        Err(e) => {
            error!(error = %e, "OPC UA server setup failed");
            return;
        }
    };
    // Subscribed only now: a notifier that is not reading yet would stall the router. The
    // node manager follows the stream from its start before any client can connect.
    let (events, start) = handle.subscribe_from(notify::QUEUE);
    manager.reload(&start);
    let notifier = tokio::spawn(notify::run(
        events,
        subscriptions,
        manager,
        token.child_token(),
    ));
    let listener = match first {
        Ok(l) => l,
        Err(e) => match bind_retrying(listen, e, &token).await {
            Some(l) => l,
            None => return,
        },
    };
    // async-opcua listens on a loopback port of its own, behind the gate (gate.rs).
    let (backend, public) = match (
        tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await,
        listener.local_addr(),
    ) {
        (Ok(b), Ok(public)) => (b, public),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "OPC UA server not started: no loopback port for it");
            notifier.abort();
            return;
        }
    };
    let Ok(backend_addr) = backend.local_addr() else {
        notifier.abort();
        return;
    };
    let run = server.run_with(backend);
    tokio::pin!(run);
    // Endpoint descriptions name the port async-opcua listens on, which it records once it
    // runs; clients must be told the gate's port instead.
    loop {
        tokio::select! {
            r = &mut run => {
                if let Err(e) = r {
                    error!(error = %e, "OPC UA server stopped with an error");
                }
                notifier.abort();
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        if info.port.load(std::sync::atomic::Ordering::Relaxed) == backend_addr.port() {
            info.port
                .store(public.port(), std::sync::atomic::Ordering::Relaxed);
            break;
        }
    }
    let gate = tokio::spawn(gate::run(
        listener,
        backend_addr,
        max_chunk,
        handle.opcua_connections().clone(),
        token.child_token(),
    ));
    *ready.lock() = Some((public, ns));
    // Cleared however this task ends (stopped, aborted, or a panic).
    let _shown = Shown::new(
        handle.clone(),
        Arc::new(running_status(&hostname, public.port(), &offered, info)),
    );
    if let Err(e) = run.await {
        error!(error = %e, "OPC UA server stopped with an error");
    }
    gate.abort();
    notifier.abort();
}

type Built = (
    opcua::server::Server,
    Arc<opcua::server::ServerInfo>,
    Arc<opcua::server::SubscriptionCache>,
    Arc<ModelNodeManager>,
    u16,
);

fn build(
    settings: &OpcUaSettings,
    port: u16,
    pki: &Path,
    handle: &Handle,
    history: HistorySlot,
    token: CancellationToken,
) -> Result<Built, OpcUaError> {
    let auth = Arc::new(Authenticator::new(settings));
    let builder = server_builder(settings, port, pki, auth, handle, history, token);
    let (server, server_handle) = builder.build().map_err(OpcUaError::Build)?;
    // A client's ExtensionObjects are decoded before anything about it is checked (see
    // uaedge_opcua_client::hardening); every connection copies these loaders when it opens.
    {
        let info = server_handle.info();
        let hardened = event_filter::with_event_filter_paths(&harden(&info.type_loaders.read()));
        *info.type_loaders.write() = hardened;
    }
    let cert = pki.join("own").join("cert.der");
    if settings.endpoints.iter().any(|e| e.is_secure()) && !cert.exists() {
        return Err(OpcUaError::Certificate(cert.display().to_string()));
    }
    let manager = server_handle
        .node_managers()
        .get_of_type::<ModelNodeManager>()
        .ok_or(OpcUaError::NodeManager)?;
    let ns = manager.namespace_index();
    Ok((
        server,
        server_handle.info().clone(),
        server_handle.subscriptions().clone(),
        manager,
        ns,
    ))
}

/// Starts the server of a loaded config, logging instead of failing: the devices and
/// Sparkplug keep running when the OPC UA side cannot start.
pub fn start_from_config(
    settings: Option<OpcUaSettings>,
    state_dir: &Path,
    handle: &Handle,
    history: HistorySlot,
) -> Option<OpcUaServer> {
    let Some(settings) = settings else {
        info!("OPC UA server off (no `opcua:` section, or `enabled: false`)");
        return None;
    };
    match OpcUaServer::start(settings, state_dir, handle, history) {
        Ok(s) => Some(s),
        Err(e) => {
            error!(error = %e, "OPC UA server not started");
            None
        }
    }
}

fn server_builder(
    settings: &OpcUaSettings,
    port: u16,
    pki: &Path,
    auth: Arc<Authenticator>,
    handle: &Handle,
    history: HistorySlot,
    token: CancellationToken,
) -> ServerBuilder {
    let anonymous: Vec<String> = if settings.anonymous == Access::Off {
        Vec::new()
    } else {
        vec![ANONYMOUS_USER_TOKEN_ID.to_string()]
    };
    // async-opcua's core node manager first, as ServerBuilder::new() has it, wrapped to
    // answer Part 9's condition methods (conditions.rs); then its diagnostics and ours.
    let mut builder = ServerBuilder::new()
        .without_node_managers()
        .with_node_manager(CoreWithConditionsBuilder {
            handle: handle.clone(),
            auth: auth.clone(),
            data_queue_max: settings.limits.max_queue_size,
            history: history.clone(),
        })
        .with_node_manager(opcua::server::diagnostics::DiagnosticsNodeManagerBuilder)
        .with_type_tree_getter(Arc::new(type_tree::ConditionAwareTypeTrees))
        .application_name(settings.application_name.clone())
        .application_uri(settings.application_uri.clone())
        .product_uri("urn:uaedge")
        .create_sample_keypair(true)
        .pki_dir(PathBuf::from(pki))
        .trust_client_certs(settings.trust_client_certs)
        .host(settings.hostname.clone())
        .port(port)
        .discovery_urls(vec![format!("opc.tcp://{}:{port}/", settings.hostname)])
        .with_node_manager(ModelManagerBuilder {
            namespace_uri: settings.namespace_uri.clone(),
            handle: handle.clone(),
            auth: auth.clone(),
            data_queue_max: settings.limits.max_queue_size,
            history,
        })
        .with_authenticator(auth)
        .max_sessions(settings.max_sessions)
        .diagnostics_enabled(true)
        .token(token);
    for &endpoint in &settings.endpoints {
        let (policy, mode) = security(endpoint);
        builder = builder.add_endpoint(
            endpoint.name(),
            ServerEndpoint::new("/", policy, mode, &anonymous),
        );
    }
    let server_limits = builder.limits_mut();
    limits::apply(&settings.limits, server_limits);
    server_limits.subscriptions.min_sampling_interval_ms =
        settings.min_sampling_interval.as_secs_f64() * 1000.0;
    builder
}

/// The server's status where readers find it, for as long as this lives.
struct Shown(Handle, Arc<OpcUaStatus>);

impl Shown {
    fn new(handle: Handle, status: Arc<OpcUaStatus>) -> Shown {
        handle.status().set_opcua(status.clone());
        Shown(handle, status)
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.0.status().clear_opcua(&self.1);
    }
}

/// What the web console and the API show of the server: the endpoints as clients reach
/// them (the gate's port), and the session count from async-opcua's diagnostics.
fn running_status(
    hostname: &str,
    port: u16,
    offered: &[(SecurityPolicy, MessageSecurityMode)],
    info: Arc<opcua::server::ServerInfo>,
) -> OpcUaStatus {
    let url = format!("opc.tcp://{hostname}:{port}/");
    let endpoints = offered
        .iter()
        .map(|(policy, mode)| EndpointInfo {
            url: url.clone(),
            security_policy: policy.to_str().to_string(),
            security_mode: format!("{mode:?}"),
        })
        .collect();
    OpcUaStatus::new(
        endpoints,
        Box::new(move || {
            let count = info.summary().get(
                opcua::types::VariableId::Server_ServerDiagnostics_ServerDiagnosticsSummary_CurrentSessionCount,
            );
            match count.and_then(|v| v.value) {
                Some(opcua::types::Variant::UInt32(n)) => u64::from(n),
                _ => 0,
            }
        }),
    )
}

/// The security policy and message mode of an endpoint.
fn security(endpoint: Endpoint) -> (SecurityPolicy, MessageSecurityMode) {
    use MessageSecurityMode::{Sign, SignAndEncrypt};
    match endpoint {
        Endpoint::None => (SecurityPolicy::None, MessageSecurityMode::None),
        Endpoint::Basic256Sha256Sign => (SecurityPolicy::Basic256Sha256, Sign),
        Endpoint::Basic256Sha256SignEncrypt => (SecurityPolicy::Basic256Sha256, SignAndEncrypt),
        Endpoint::Aes128Sha256RsaOaepSign => (SecurityPolicy::Aes128Sha256RsaOaep, Sign),
        Endpoint::Aes128Sha256RsaOaepSignEncrypt => {
            (SecurityPolicy::Aes128Sha256RsaOaep, SignAndEncrypt)
        }
        Endpoint::Aes256Sha256RsaPssSign => (SecurityPolicy::Aes256Sha256RsaPss, Sign),
        Endpoint::Aes256Sha256RsaPssSignEncrypt => {
            (SecurityPolicy::Aes256Sha256RsaPss, SignAndEncrypt)
        }
    }
}

fn bind_now(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

async fn bind_retrying(
    addr: SocketAddr,
    first: std::io::Error,
    cancel: &CancellationToken,
) -> Option<tokio::net::TcpListener> {
    let mut error = first;
    let mut attempt: u32 = 0;
    loop {
        // The first failure and then one a minute, so a taken port does not flood the log.
        if attempt.is_multiple_of(12) {
            error!(listen = %addr, error = %error, attempt, "OPC UA server cannot listen; retrying");
        }
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(BIND_RETRY) => {}
        }
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                info!(listen = %addr, "OPC UA server listening");
                return Some(l);
            }
            Err(e) => error = e,
        }
    }
}
