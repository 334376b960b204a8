//! The `web:` section: the HTTP server with the REST API, `/metrics` and `/health`.
//!
//! ```yaml
//! web:
//!   listen: 127.0.0.1:8480   # the default
//!   session_idle: 30m        # a login ends after this long without a request
//! ```
//! With `users:` in the config every API request needs a login; without, the API is open
//! for reading (on loopback only) and takes no writes.
//! `metrics:` alone keeps serving only `/metrics` and `/health`, as it always did; with
//! `web:` those two are served on the web port as well.

use std::net::SocketAddr;

use serde::Deserialize;

use uaedge_driver::Duration;

use super::users::User;
use super::{ConfigError, Spanned};

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8480);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    #[serde(default)]
    listen: Option<Spanned<SocketAddr>>,
    #[serde(default)]
    session_idle: Option<Spanned<Duration>>,
}

pub const DEFAULT_SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The web server's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub listen: SocketAddr,
    pub session_idle: std::time::Duration,
    /// The config's `users:`, who may log in.
    pub users: Vec<User>,
}

impl WebSettings {
    pub fn from_raw(raw: RawWeb, errors: &mut Vec<ConfigError>) -> Option<WebSettings> {
        let before = errors.len();
        let listen = raw.listen.as_ref().map_or(DEFAULT_LISTEN, |l| l.value);
        if let Some(l) = raw.listen.as_ref().filter(|l| !l.value.ip().is_loopback()) {
            // The API shows every tag's value: off this machine it needs TLS and a login,
            // which this version does not serve yet.
            errors.push(l.error(format!(
                "web.listen {} is off the loopback interface; this version serves the API on loopback only (use 127.0.0.1 or [::1])",
                l.value
            )));
        }
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
            session_idle,
            users: Vec::new(),
        })
    }
}
