//! The MQTT servers of the `sparkplug:` section: `broker:` (one, the shorthand) or
//! `brokers:` (an ordered list, each with its own URL, TLS and credentials), validated into
//! [`BrokerSettings`]. The section's own `tls`, `username` and `password_file` belong to
//! `broker:`, and are the defaults of the entries of `brokers:`: an entry that sets neither
//! `username` nor `password_file` takes the section's pair, one that sets either uses its
//! own only (a password is never paired with another server's user); an `mqtts://` entry
//! without `tls` takes the section's. Files are read at load, so a missing one is a config
//! error with its line; a password never reaches a log line ([`Secret`]).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Spanned};

/// Where `mqtts://` without `ca_file` finds trusted roots (Debian's `ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Servers in `brokers:`: a list longer than this is a mistake, not a plant.
const MAX_BROKERS: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    cert_file: Option<Spanned<String>>,
    #[serde(default)]
    key_file: Option<Spanned<String>>,
}

/// One entry of `brokers:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBroker {
    url: Spanned<String>,
    #[serde(default)]
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

/// What the section says of its servers, as written.
pub(super) struct RawServers<'a> {
    pub broker: Option<&'a Spanned<String>>,
    pub brokers: Option<&'a Spanned<Vec<RawBroker>>>,
    pub tls: Option<&'a Spanned<RawTls>>,
    pub username: Option<&'a String>,
    pub password_file: Option<&'a Spanned<String>>,
    /// Where an error about the section as a whole points (`group_id`, which it requires).
    pub section: &'a Spanned<String>,
}

/// A string that must not reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// TLS material, read at config load: PEM bytes of the CA (or the system bundle), and of
/// the client certificate and key when configured.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

/// One MQTT server, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsSettings>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl BrokerSettings {
    /// `mqtt://host:port` or `mqtts://host:port`: how logs, metrics and the status name it.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// The servers in order; empty when there was an error (pushed to `errors`).
pub(super) fn servers(
    raw: RawServers<'_>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<BrokerSettings> {
    match (raw.broker, raw.brokers) {
        (Some(url), None) => one(url, raw.tls, raw.username, raw.password_file, base, errors)
            .into_iter()
            .collect(),
        (None, Some(list)) => many(&raw, list, base, errors),
        (Some(url), Some(_)) => {
            errors.push(url.error(
                "`broker` and `brokers` exclude each other: `broker: url` is short for a `brokers:` list of one",
            ));
            Vec::new()
        }
        (None, None) => {
            errors.push(raw.section.error(
                "the sparkplug section needs `broker: mqtt://host:port` or a `brokers:` list",
            ));
            Vec::new()
        }
    }
}

fn many(
    raw: &RawServers<'_>,
    list: &Spanned<Vec<RawBroker>>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<BrokerSettings> {
    if list.is_empty() || list.len() > MAX_BROKERS {
        errors.push(list.error(format!("brokers must list 1 to {MAX_BROKERS} servers")));
        return Vec::new();
    }
    let mut out: Vec<BrokerSettings> = Vec::new();
    let mut seen: Vec<(String, u16, usize)> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        // An entry's own credentials, else the section's.
        let (username, password_file) = match (&entry.username, &entry.password_file) {
            (None, None) => (raw.username, raw.password_file),
            (u, p) => (u.as_ref(), p.as_ref()),
        };
        let scheme_tls = entry.url.starts_with("mqtts://");
        let tls = entry.tls.as_ref().or(raw.tls.filter(|_| scheme_tls));
        let Some(broker) = one(&entry.url, tls, username, password_file, base, errors) else {
            continue;
        };
        let key = (broker.host.to_ascii_lowercase(), broker.port);
        if let Some((_, _, first)) = seen.iter().find(|(h, p, _)| (h, *p) == (&key.0, key.1)) {
            errors.push(entry.url.error(format!(
                "{} is listed twice (first as brokers[{first}]); each server once",
                broker.url()
            )));
            continue;
        }
        seen.push((key.0, key.1, i));
        out.push(broker);
    }
    if out.len() != list.len() {
        return Vec::new();
    }
    out
}

fn one(
    url: &Spanned<String>,
    tls: Option<&Spanned<RawTls>>,
    username: Option<&String>,
    password_file: Option<&Spanned<String>>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<BrokerSettings> {
    let before = errors.len();
    let (tls_scheme, host, port) = match parse_url(url) {
        Ok(v) => v,
        Err(m) => {
            errors.push(url.error(m));
            (false, String::new(), 0)
        }
    };
    let tls = match (tls, tls_scheme) {
        (Some(t), false) => {
            errors.push(t.error("`tls` needs an `mqtts://` broker URL"));
            None
        }
        (None, true) => system_roots(url, errors),
        (None, false) => None,
        (Some(t), true) => tls_files(url, t, base, errors),
    };
    let password = password_file.and_then(|p| match read_file(base, p, "password_file") {
        // A trailing newline from `echo pw > file` is not part of the password.
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Some(Secret(s.trim_end_matches(['\n', '\r']).to_string())),
            Err(_) => {
                errors.push(p.error("password_file is not UTF-8 text"));
                None
            }
        },
        Err(e) => {
            errors.push(e);
            None
        }
    });
    if let (Some(p), None) = (password_file, username) {
        errors.push(p.error("password_file needs `username`"));
    }
    (errors.len() == before).then(|| BrokerSettings {
        host,
        port,
        tls,
        username: username.cloned(),
        password,
    })
}

fn tls_files(
    url: &Spanned<String>,
    t: &Spanned<RawTls>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<TlsSettings> {
    let client = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => match (
            read_file(base, c, "cert_file"),
            read_file(base, k, "key_file"),
        ) {
            (Ok(c), Ok(k)) => Some((c, k)),
            (c, k) => {
                errors.extend(c.err());
                errors.extend(k.err());
                None
            }
        },
        (None, None) => None,
        _ => {
            errors.push(t.error("`cert_file` and `key_file` go together"));
            None
        }
    };
    match &t.ca_file {
        Some(ca) => match read_file(base, ca, "ca_file") {
            Ok(ca) => Some(TlsSettings { ca, client }),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None if client.is_some() => {
            errors.push(t.error("a client certificate needs `ca_file` as well"));
            None
        }
        None => system_roots(url, errors),
    }
}

fn system_roots(url: &Spanned<String>, errors: &mut Vec<ConfigError>) -> Option<TlsSettings> {
    match std::fs::read(SYSTEM_CA_BUNDLE) {
        Ok(ca) => Some(TlsSettings { ca, client: None }),
        Err(e) => {
            errors.push(url.error(format!(
                "mqtts:// without `tls.ca_file` uses {SYSTEM_CA_BUNDLE}, which cannot be read ({e}); set `tls.ca_file`"
            )));
            None
        }
    }
}

/// Resolves a path from the config relative to the config file's folder.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_file(base: &Path, s: &Spanned<String>, what: &str) -> Result<Vec<u8>, ConfigError> {
    let path = resolve(base, &s.value);
    crate::config::read_referenced_file(&path)
        .map_err(|e| s.error(format!("cannot read {what} {}: {e}", path.display())))
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → (tls, host, port).
fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let expected =
        || format!("invalid broker `{url}`: expected `mqtt://host:port` or `mqtts://host:port`");
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(expected());
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "{}; credentials go in `username`/`password_file`, and no path is allowed",
            expected()
        ));
    }
    let default_port = if tls { 8883 } else { 1883 };
    // `[::1]:1883` for IPv6 literals.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(expected)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| expected())?,
            None if tail.is_empty() => default_port,
            None => return Err(expected()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| expected())?),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(expected());
    }
    Ok((tls, host, port))
}

#[cfg(test)]
mod tests {
    use super::{parse_url, Secret};

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::parse("t.yaml", text).map_err(|e| e.to_string())
    }

    fn refused(text: &str) -> String {
        parse(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"))
    }

    #[test]
    fn a_list_of_servers_with_defaults_from_the_section() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "site\n").expect("write");
        std::fs::write(dir.path().join("cloud-pw"), "cloud\n").expect("write");
        let text = format!(
            "sparkplug:\n  group_id: g\n  username: edge\n  password_file: {d}/pw\n  return_to_first: 10m\n  brokers:\n    - url: mqtt://site-a\n    - url: mqtt://site-b:1884\n    - {{ url: \"mqtt://[::1]:1885\", username: cloud, password_file: {d}/cloud-pw }}\n",
            d = dir.path().display()
        );
        let s = parse(&text).expect("valid").sparkplug.expect("section");
        let urls: Vec<String> = s.brokers.iter().map(|b| b.url()).collect();
        assert_eq!(
            urls,
            [
                "mqtt://site-a:1883",
                "mqtt://site-b:1884",
                "mqtt://[::1]:1885"
            ]
        );
        assert_eq!(s.brokers[1].username.as_deref(), Some("edge"));
        assert_eq!(s.brokers[1].password, Some(Secret("site".into())));
        assert_eq!(s.brokers[2].username.as_deref(), Some("cloud"));
        assert_eq!(s.brokers[2].password, Some(Secret("cloud".into())));
        assert_eq!(s.return_to_first, Some(std::time::Duration::from_secs(600)));
        assert_eq!(s.primary_host_timeout, std::time::Duration::from_secs(10));
    }

    #[test]
    fn bad_lists_name_their_entry() {
        let dup = refused("sparkplug:\n  group_id: g\n  brokers:\n    - url: mqtt://a:1883\n    - url: mqtt://b\n    - url: mqtt://A\n");
        assert!(
            dup.contains("t.yaml:6:12: sparkplug.brokers[2].url: mqtt://A:1883 is listed twice (first as brokers[0])"),
            "{dup}"
        );
        let both = refused(
            "sparkplug:\n  group_id: g\n  broker: mqtt://a\n  brokers:\n    - url: mqtt://b\n",
        );
        assert!(
            both.contains(
                "t.yaml:3:11: sparkplug.broker: `broker` and `brokers` exclude each other"
            ),
            "{both}"
        );
        let none = refused("sparkplug:\n  group_id: g\n");
        assert!(
            none.contains("needs `broker: mqtt://host:port` or a `brokers:` list"),
            "{none}"
        );
        let empty = refused("sparkplug:\n  group_id: g\n  brokers: []\n");
        assert!(
            empty.contains("sparkplug.brokers: brokers must list 1 to 16 servers"),
            "{empty}"
        );
        let bad = refused("sparkplug:\n  group_id: g\n  primary_host_timeout: 10ms\n  brokers:\n    - url: mqtt://a\n    - { url: tcp://b, tls: { ca_file: /nonexistent } }\n");
        for needle in [
            "sparkplug.brokers[1].url: invalid broker `tcp://b`",
            "sparkplug.brokers[1].tls: `tls` needs an `mqtts://` broker URL",
            "sparkplug.primary_host_timeout: primary_host_timeout must be at least 1s",
        ] {
            assert!(bad.contains(needle), "{needle} not in:\n{bad}");
        }
        let unknown = refused(
            "sparkplug:\n  group_id: g\n  brokers:\n    - { url: mqtt://c, colour: red }\n",
        );
        assert!(
            unknown.contains("t.yaml:4:24: sparkplug.brokers[0].colour: unknown field `colour`"),
            "{unknown}"
        );
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884"),
            Ok((false, "127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_url("mqtts://broker.local"),
            Ok((true, "broker.local".into(), 8883))
        );
        assert_eq!(parse_url("mqtt://[::1]:9"), Ok((false, "::1".into(), 9)));
        assert!(parse_url("tcp://x:1").is_err());
        assert!(parse_url("mqtt://u:p@x:1").is_err());
        assert!(parse_url("mqtt://x:0").is_err());
        assert!(parse_url("mqtt://:1").is_err());
    }
}
