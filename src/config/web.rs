//! The `web:` section: the HTTP server with the REST API, `/metrics` and `/health`.
//!
//! ```yaml
//! web:
//!   listen: 127.0.0.1:8480   # the default
//! ```
//! `metrics:` alone keeps serving only `/metrics` and `/health`, as it always did; with
//! `web:` those two are served on the web port as well.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, Spanned};

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8480);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    #[serde(default)]
    listen: Option<Spanned<SocketAddr>>,
}

/// The web server's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub listen: SocketAddr,
}

impl WebSettings {
    pub fn from_raw(raw: RawWeb, errors: &mut Vec<ConfigError>) -> Option<WebSettings> {
        let Some(listen) = raw.listen else {
            return Some(WebSettings {
                listen: DEFAULT_LISTEN,
            });
        };
        if !listen.value.ip().is_loopback() {
            // The API shows every tag's value: off this machine it needs TLS and a login,
            // which this version does not serve yet.
            errors.push(listen.error(format!(
                "web.listen {} is off the loopback interface; this version serves the API on loopback only (use 127.0.0.1 or [::1])",
                listen.value
            )));
            return None;
        }
        Some(WebSettings {
            listen: listen.value,
        })
    }
}
