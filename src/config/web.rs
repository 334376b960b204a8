//! The `web:` section: the HTTP server with the REST API, `/metrics` and `/health`.
//!
//! ```yaml
//! web:
//!   listen: 127.0.0.1:8480   # the default
//!   tls: auto                # auto (HTTPS off loopback) | on | off | {cert_file, key_file}
//!   session_idle: 30m        # a login ends after this long without a request
//! ```
//! With `users:` in the config every API request needs a login; without, the API is open
//! for reading and takes no writes. Off the loopback interface both TLS and users are
//! required. `tls: on` (or `auto` off loopback) makes a self-signed certificate under
//! `<state_dir>/web/` on the first start.
//!
//! `metrics:` alone keeps serving only `/metrics` and `/health`, as it always did; with
//! `web:` those two are served on the web port as well.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::Duration;

use super::users::User;
use super::{ConfigError, Spanned};

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8480);
pub const DEFAULT_SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    #[serde(default)]
    listen: Option<Spanned<SocketAddr>>,
    #[serde(default)]
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    session_idle: Option<Spanned<Duration>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTls {
    Mode(String),
    Files(RawTlsFiles),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsFiles {
    cert_file: String,
    key_file: String,
}

/// The user's certificate chain and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How the web port speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (loopback only).
    Off,
    /// HTTPS with a self-signed certificate kept in this folder, made when missing.
    SelfSigned(PathBuf),
    /// HTTPS with the user's certificate.
    Files(TlsFiles),
}

/// The web server's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub listen: SocketAddr,
    pub tls: Tls,
    pub session_idle: std::time::Duration,
    /// Every write and acknowledgement made through the API, a JSON line each:
    /// `<state_dir>/audit.jsonl`.
    pub audit_file: PathBuf,
    /// The config's `users:`, who may log in; set once they are loaded.
    pub users: Vec<User>,
}

impl WebSettings {
    /// Checks `raw`; `base` (the config's folder) resolves relative certificate paths.
    pub fn from_raw(
        raw: RawWeb,
        base: &Path,
        state_dir: &Path,
        errors: &mut Vec<ConfigError>,
    ) -> Option<WebSettings> {
        let before = errors.len();
        let listen = raw.listen.as_ref().map_or(DEFAULT_LISTEN, |l| l.value);
        let loopback = listen.ip().is_loopback();
        let self_signed = Tls::SelfSigned(state_dir.join("web"));
        let auto = if loopback {
            Tls::Off
        } else {
            self_signed.clone()
        };
        let tls = match raw.tls.as_ref().map(|t| (t, &t.value)) {
            None => auto,
            Some((t, RawTls::Mode(mode))) => match mode.as_str() {
                "auto" => auto,
                "on" => self_signed,
                "off" if !loopback => {
                    errors.push(t.error(format!(
                        "tls: off is allowed on the loopback interface only, and web.listen {listen} is not: passwords and values would cross the network in clear"
                    )));
                    Tls::Off
                }
                "off" => Tls::Off,
                other => {
                    errors.push(t.error(format!(
                        "unknown tls `{other}`: use auto, on, off or {{cert_file, key_file}}"
                    )));
                    Tls::Off
                }
            },
            Some((t, RawTls::Files(files))) => {
                let files = TlsFiles {
                    cert_file: base.join(&files.cert_file),
                    key_file: base.join(&files.key_file),
                };
                for path in [&files.cert_file, &files.key_file] {
                    if let Err(e) = std::fs::File::open(path) {
                        errors.push(t.error(format!("cannot read {}: {e}", path.display())));
                    }
                }
                Tls::Files(files)
            }
        };
        let session_idle = raw
            .session_idle
            .as_ref()
            .map_or(DEFAULT_SESSION_IDLE, |d| d.get());
        if let Some(d) = raw
            .session_idle
            .as_ref()
            .filter(|d| d.get() < std::time::Duration::from_secs(60))
        {
            errors.push(d.error("session_idle must be at least 1m"));
        }
        (errors.len() == before).then_some(WebSettings {
            listen,
            tls,
            session_idle,
            audit_file: state_dir.join("audit.jsonl"),
            users: Vec::new(),
        })
    }

    /// What the users list must satisfy, checked once it is loaded: off loopback, a login.
    pub fn check_users(&self, at: &super::yaml::RawNode, errors: &mut Vec<ConfigError>) {
        if self.users.is_empty() && !self.listen.ip().is_loopback() {
            let at = at.get("listen").unwrap_or_else(|| at.clone());
            errors.push(at.error(format!(
                "web.listen {} is off the loopback interface, which needs a login: add `users:` (name, password or password_file, role)",
                self.listen
            )));
        }
    }
}
