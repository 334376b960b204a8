//! The `opcua:` section of the YAML and its validation.
//!
//! Serde reads [`RawOpcUa`] (unknown keys refused, values that need checking kept
//! [`Spanned`]); [`OpcUaSettings::load`] turns it into settings the server runs on. Its
//! users are the top-level list (or `opcua.users`, the older place), read by
//! [`super::users`].

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use uaedge_driver::Duration;

pub use super::opcua_limits::Limits;
use super::users::{self, User};
use super::{ConfigError, RawNode, Spanned};

/// `opcua:` as written in YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpcUa {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    hostname: Option<Spanned<String>>,
    #[serde(default)]
    namespace_uri: Option<Spanned<String>>,
    #[serde(default)]
    endpoints: Option<Spanned<Vec<Endpoint>>>,
    #[serde(default)]
    anonymous: Access,
    #[serde(default)]
    trust_client_certs: bool,
    #[serde(default)]
    users: Vec<RawNode>,
    #[serde(default = "default_max_sessions")]
    max_sessions: u32,
    #[serde(default)]
    min_sampling_interval: Option<Spanned<Duration>>,
    #[serde(default)]
    limits: Option<RawNode>,
}

fn default_true() -> bool {
    true
}

fn default_max_sessions() -> u32 {
    20
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:4840";

/// One kind of endpoint the server offers: a security policy and a message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Endpoint {
    /// No signing, no encryption: anonymous only (passwords are never accepted here).
    #[serde(rename = "none")]
    None,
    #[serde(rename = "basic256sha256_sign")]
    Basic256Sha256Sign,
    #[serde(rename = "basic256sha256_sign_encrypt")]
    Basic256Sha256SignEncrypt,
    #[serde(rename = "aes128_sha256_rsaoaep_sign")]
    Aes128Sha256RsaOaepSign,
    #[serde(rename = "aes128_sha256_rsaoaep_sign_encrypt")]
    Aes128Sha256RsaOaepSignEncrypt,
    #[serde(rename = "aes256_sha256_rsapss_sign")]
    Aes256Sha256RsaPssSign,
    #[serde(rename = "aes256_sha256_rsapss_sign_encrypt")]
    Aes256Sha256RsaPssSignEncrypt,
}

impl Endpoint {
    /// What a config leaves out: the current policies (OPC UA 1.04+) and Basic256Sha256 for
    /// older clients, encrypted.
    pub const DEFAULT: [Endpoint; 3] = [
        Endpoint::Aes128Sha256RsaOaepSignEncrypt,
        Endpoint::Aes256Sha256RsaPssSignEncrypt,
        Endpoint::Basic256Sha256SignEncrypt,
    ];

    pub fn is_secure(self) -> bool {
        self != Endpoint::None
    }

    /// Encrypted, so that a password may cross it.
    pub fn encrypts(self) -> bool {
        matches!(
            self,
            Endpoint::Basic256Sha256SignEncrypt
                | Endpoint::Aes128Sha256RsaOaepSignEncrypt
                | Endpoint::Aes256Sha256RsaPssSignEncrypt
        )
    }

    /// The name a config uses.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::None => "none",
            Endpoint::Basic256Sha256Sign => "basic256sha256_sign",
            Endpoint::Basic256Sha256SignEncrypt => "basic256sha256_sign_encrypt",
            Endpoint::Aes128Sha256RsaOaepSign => "aes128_sha256_rsaoaep_sign",
            Endpoint::Aes128Sha256RsaOaepSignEncrypt => "aes128_sha256_rsaoaep_sign_encrypt",
            Endpoint::Aes256Sha256RsaPssSign => "aes256_sha256_rsapss_sign",
            Endpoint::Aes256Sha256RsaPssSignEncrypt => "aes256_sha256_rsapss_sign_encrypt",
        }
    }
}

/// What a user (or the anonymous one) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Off,
    Read,
    Write,
}

/// A validated `opcua:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct OpcUaSettings {
    pub listen: SocketAddr,
    /// The host clients are told to use in endpoint URLs.
    pub hostname: String,
    pub application_name: String,
    pub application_uri: String,
    pub namespace_uri: String,
    pub endpoints: Vec<Endpoint>,
    pub anonymous: Access,
    pub trust_client_certs: bool,
    pub users: Vec<User>,
    pub max_sessions: usize,
    pub min_sampling_interval: std::time::Duration,
    pub limits: Limits,
}

impl OpcUaSettings {
    /// Validates `opcua:`; `None` when it is switched off or has errors (pushed to
    /// `errors`). `base` is the config file's folder, for relative `password_file:` paths.
    pub fn load(
        node: &RawNode,
        base: &Path,
        node_name: &str,
        shared_users: &[User],
        errors: &mut Vec<ConfigError>,
    ) -> Option<OpcUaSettings> {
        if node.is_null() {
            errors.push(node.error(
                "`opcua:` is empty: nobody could log in; set `anonymous: read` or add `users:`",
            ));
            return None;
        }
        let raw: RawOpcUa = match node.deserialize() {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        if !raw.enabled {
            return None;
        }
        let before = errors.len();
        let listen = match &raw.listen {
            Some(l) => l.value.trim().parse::<SocketAddr>().map_err(|_| {
                errors.push(l.error(format!(
                    "invalid listen address `{}`: expected IP:port, e.g. `0.0.0.0:4840` or `127.0.0.1:4840`",
                    l.value
                )))
            }),
            None => DEFAULT_LISTEN.parse().map_err(|_| ()),
        };
        let endpoints = match &raw.endpoints {
            Some(e) if e.value.is_empty() => {
                errors.push(e.error("at least one endpoint is needed"));
                Vec::new()
            }
            Some(e) => e.value.clone(),
            None => Endpoint::DEFAULT.to_vec(),
        };
        // `opcua.users` is where the list lived before the web console shared it.
        let users = match raw.users.first() {
            Some(first) if !shared_users.is_empty() => {
                errors.push(first.error(
                    "users are listed once, in the top-level `users:` (shared with the web console): move these there",
                ));
                shared_users.to_vec()
            }
            Some(_) => users::load(&raw.users, users::Place::OpcUa, base, errors),
            None => shared_users.to_vec(),
        };
        if raw.anonymous == Access::Off && users.is_empty() {
            errors.push(
                node.error(
                    "nobody could log in: set `anonymous: read` (or `write`) or add `users:`",
                ),
            );
        }
        let secure = endpoints.iter().any(|e| e.is_secure());
        // Top-level users may be there for the web console alone; they log in to OPC UA
        // only where an endpoint is encrypted, so without one only anonymous access counts.
        let needs_secure =
            !raw.users.is_empty() || (raw.anonymous == Access::Off && !users.is_empty());
        if needs_secure && !secure {
            let msg = "users log in only on encrypted endpoints (passwords are never sent in clear): add `aes256_sha256_rsapss_sign_encrypt` (or another encrypted one)";
            errors.push(match &raw.endpoints {
                Some(e) => e.error(msg),
                None => node.error(msg),
            });
        }
        // Users who cannot log in here are not this server's: a change to them (for the web
        // console) then leaves the server, and its sessions, alone on reload.
        let users = if secure { users } else { Vec::new() };
        let min_sampling_interval = match &raw.min_sampling_interval {
            Some(d) if d.value.get() < std::time::Duration::from_millis(10) => {
                errors.push(d.error("min_sampling_interval must be at least 10ms"));
                std::time::Duration::from_millis(100)
            }
            Some(d) => d.value.get(),
            None => std::time::Duration::from_millis(100),
        };
        if raw.max_sessions == 0 {
            errors.push(node.error("max_sessions must be at least 1"));
        }
        let check_text =
            |s: &Option<Spanned<String>>, what: &str, errors: &mut Vec<ConfigError>| {
                if let Some(s) = s {
                    if s.value.trim().is_empty() || s.value.contains(char::is_whitespace) {
                        errors.push(s.error(format!("{what} must be non-empty without spaces")));
                    }
                }
            };
        let limits = Limits::load(raw.limits.as_ref(), errors);
        check_text(&raw.hostname, "hostname", errors);
        check_text(&raw.namespace_uri, "namespace_uri", errors);
        let listen = listen.ok()?;
        if errors.len() > before {
            return None;
        }
        let hostname = raw
            .hostname
            .map(Spanned::into_inner)
            .unwrap_or_else(|| default_hostname(listen));
        Some(OpcUaSettings {
            listen,
            hostname,
            application_name: format!("uaedge {node_name}"),
            application_uri: format!("urn:uaedge:{node_name}:server"),
            namespace_uri: raw
                .namespace_uri
                .map(Spanned::into_inner)
                .unwrap_or_else(|| format!("urn:uaedge:{node_name}")),
            endpoints,
            anonymous: raw.anonymous,
            trust_client_certs: raw.trust_client_certs,
            users,
            max_sessions: raw.max_sessions as usize,
            min_sampling_interval,
            limits,
        })
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// A specific listen address is what clients reach; behind 0.0.0.0 the machine's name is
/// the best guess (clients such as UaExpert offer to swap it for the address they used).
fn default_hostname(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.ip().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
