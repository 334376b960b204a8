//! OPC UA client driver for uaedge: reads tags from upstream OPC UA servers (PLCs, other
//! gateways) into the model, on `async-opcua`.
//!
//! # Device
//!
//! ```yaml
//! devices:
//!   - name: line1
//!     driver: opcua-client
//!     poll_interval: 200ms        # how often buffered data changes are handed on (or polled)
//!     options:
//!       endpoint: opc.tcp://10.0.0.7:4840/plc
//!       security_policy: Basic256Sha256   # None | Basic256Sha256 | Aes128_Sha256_RsaOaep | Aes256_Sha256_RsaPss
//!       security_mode: SignAndEncrypt     # None | Sign | SignAndEncrypt
//!       username: edge                    # anonymous when absent
//!       password_file: /etc/uaedge/line1.password
//!       pki_dir: /var/lib/uaedge/pki-client   # own/ (self-signed cert made on first use), trusted/, rejected/
//!       trust_server_certificate: false   # else put the server's DER certificate in pki_dir/trusted/
//!       mode: subscription                # subscription | polling
//!       publishing_interval: 500ms
//!       sampling_interval: 250ms          # default: publishing_interval
//!       queue_size: 100                # default: 10 s of samples (10–1000)
//!       deadband: { absolute: 0.5 }       # or { percent: 2 }; numeric tags, subscription mode
//!       session_timeout: 60s
//!       request_timeout: 5s
//!     tags:
//!       - { name: speed, type: float64, address: "ns=3;s=Line1.Speed", writable: true }
//!       - { name: count, type: uint32, address: "ns=2;i=1001" }
//!       - { name: state, type: int16, address: "nsu=urn:plc:line;s=State" }
//!       - { name: temp, type: float32, address: "/Objects/2:Plant/2:Line1/2:Temperature" }
//! ```
//!
//! Also: `client_certificate` (DER) + `client_key` (PEM) instead of the self-signed pair,
//! `password` inline, `keep_alive_interval` (5s), `max_nodes_per_read` (1000; the server's
//! own limit wins when lower), `buffer` (10000 data changes between two reads).
//!
//! # Behaviour
//!
//! Addresses are parsed at config load; namespace URIs and browse paths are resolved once per
//! session. The declared `type:` is what the model holds: a server value is converted with
//! [`uaedge_driver::Value::convert`], and one that does not fit makes that tag Bad
//! (ConfigError), logged once. A node the server does not know is a Bad (ConfigError) tag,
//! not a link failure. Source timestamps are kept.
//!
//! In subscription mode, `connect` creates one subscription with a monitored item per tag,
//! in batches of the server's MaxMonitoredItemsPerCall; data changes queue in a bounded
//! buffer that each `read` drains, oldest first. In polling mode each `read` is one batched
//! Read (in chunks of the server's MaxNodesPerRead).
//!
//! # Sessions
//!
//! Devices that name the same endpoint, security, user and certificates share one session
//! (pool.rs), each with a subscription of its own: a PLC that allows a handful of sessions
//! gives uaedge one. The session is never left behind: the last device to go closes it
//! (CloseSession, deleting its subscriptions).
//!
//! When the connection breaks, the session is reactivated on a new secure channel while the
//! server still keeps it (link.rs). Its subscriptions carry on: the data changes the server
//! queued meanwhile arrive, and messages lost on the way are asked for again (Republish), so
//! a short break costs no data change. The tags turn Bad when the break lasts longer than
//! `request_timeout`; what the server kept still arrives, late, once it is back. A
//! server that lost the session (a restart) gets a new one; subscriptions it still has are
//! moved over (TransferSubscriptions), the others are created anew through the runtime's
//! reconnect. A server that refuses the session (credentials, certificates), or never
//! answers, is a [`uaedge_driver::LinkError`] at once, retried with the runtime's backoff.

mod address;
mod convert;
mod discover;
mod driver;
pub mod hardening;
mod inbox;
mod link;
mod options;
mod pool;
mod publish;
mod resolve;
mod sequence;
mod session;
mod subscribe;

use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, TagSpec};

pub use address::OpcAddress;
pub use discover::{discover, DiscoverError};
pub use options::{Deadband, Mode, Options, SecurityMode, SecurityPolicy, TagOptions};

/// The factory the runtime registers under `driver: opcua-client`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpcUaClientFactory;

impl DriverFactory for OpcUaClientFactory {
    type Options = Options;
    type TagOptions = TagOptions;
    type Address = OpcAddress;

    fn parse_address(
        &self,
        address: &str,
        _data_type: DataType,
        _options: &TagOptions,
    ) -> Result<OpcAddress, String> {
        address.parse()
    }

    fn validate(&self, options: &Options, _tags: &[TagSpec<OpcAddress>]) -> Result<(), String> {
        let problems = options.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn build(
        &self,
        device: &DeviceInfo,
        options: Options,
        tags: Vec<TagSpec<OpcAddress>>,
    ) -> Box<dyn Driver> {
        Box::new(driver::OpcUaDriver {
            device: device.name.clone(),
            options,
            tags: tags
                .into_iter()
                .map(|t| driver::Tag {
                    name: t.name,
                    data_type: t.data_type,
                    address: t.address,
                    problem: None,
                })
                .collect(),
            link: None,
            sub: None,
            resolved: None,
            paused: false,
        })
    }

    fn describe(&self, address: &OpcAddress) -> String {
        address.to_string()
    }
}

impl Options {
    /// The defaults for one endpoint, no security, anonymous: what `uaedge discover` uses.
    /// The PKI folder goes to the temp dir, since discovery should not need root.
    pub fn for_endpoint(endpoint: &str) -> Options {
        Options {
            endpoint: endpoint.to_string(),
            security_policy: SecurityPolicy::None,
            security_mode: SecurityMode::None,
            username: None,
            password: None,
            password_file: None,
            client_certificate: None,
            client_key: None,
            pki_dir: std::env::temp_dir().join("uaedge-pki-client"),
            trust_server_certificate: false,
            mode: Mode::Polling,
            publishing_interval: uaedge_driver::Duration::from_millis(500),
            sampling_interval: None,
            queue_size: None,
            deadband: None,
            session_timeout: uaedge_driver::Duration::from_secs(60),
            request_timeout: uaedge_driver::Duration::from_secs(5),
            keep_alive_interval: uaedge_driver::Duration::from_secs(5),
            max_nodes_per_read: 1000,
            buffer: 1,
        }
    }
}
