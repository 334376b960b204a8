//! The `sparkplug:` section of the YAML and its validation.
//!
//! Serde reads [`RawSparkplug`] (unknown keys refused, values that need checking kept
//! [`Spanned`]); [`SparkplugSettings::from_raw`] then validates it into settings the node
//! runs on, reading the password and TLS files at load so a missing file is a config error
//! with its line, not a runtime surprise. The password is never logged: [`Secret`]'s `Debug`
//! prints `***`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::Duration;

use super::{Backoff, ByteSize, ConfigError, Spanned};

/// `sparkplug:` as written in YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSparkplug {
    broker: Spanned<String>,
    #[serde(default)]
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    client_id: Option<Spanned<String>>,
    group_id: Spanned<String>,
    #[serde(default)]
    edge_node_id: Option<Spanned<String>>,
    #[serde(default)]
    primary_host_id: Option<Spanned<String>>,
    #[serde(default = "default_keep_alive")]
    keep_alive: Spanned<Duration>,
    /// QoS of NDATA/DDATA (see the module docs for why 1 is the default).
    #[serde(default = "default_data_qos")]
    data_qos: Spanned<u8>,
    #[serde(default)]
    reconnect: Backoff,
    /// Absent: report by exception, each device read as it comes. Set: each device's
    /// reported samples are gathered and published (and journaled) once per period.
    #[serde(default)]
    publish_period: Option<Spanned<Duration>>,
    /// How often changed node diagnostics go out as NDATA.
    #[serde(default = "default_diagnostics_period")]
    diagnostics_period: Spanned<Duration>,
    #[serde(default)]
    store: Option<RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    cert_file: Option<Spanned<String>>,
    #[serde(default)]
    key_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    path: Option<String>,
    /// Bytes, as a number or with a unit: `256MiB`, `2GB`.
    #[serde(default)]
    max_bytes: Option<Spanned<ByteSize>>,
    #[serde(default = "default_max_age")]
    max_age: Spanned<Duration>,
    #[serde(default = "default_commit_window")]
    commit_window: Spanned<Duration>,
    /// Historical samples per second while the backlog drains.
    #[serde(default = "default_drain_rate")]
    drain_rate: Spanned<u32>,
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        pos: Default::default(),
        path: String::new(),
        file: "".into(),
    }
}

fn default_keep_alive() -> Spanned<Duration> {
    spanned(Duration::from_secs(30))
}
fn default_data_qos() -> Spanned<u8> {
    spanned(1)
}
fn default_diagnostics_period() -> Spanned<Duration> {
    spanned(Duration::from_secs(10))
}
fn default_max_age() -> Spanned<Duration> {
    spanned(Duration::from_secs(7 * 24 * 3600))
}
fn default_commit_window() -> Spanned<Duration> {
    spanned(Duration::from_millis(100))
}
fn default_drain_rate() -> Spanned<u32> {
    spanned(5000)
}

const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A string that must not reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where `mqtts://` without `ca_file` finds trusted roots (Debian's `ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

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

fn system_roots(broker: &Spanned<String>, errors: &mut Vec<ConfigError>) -> Option<TlsSettings> {
    match std::fs::read(SYSTEM_CA_BUNDLE) {
        Ok(ca) => Some(TlsSettings { ca, client: None }),
        Err(e) => {
            errors.push(broker.error(format!(
                "mqtts:// without `tls.ca_file` uses {SYSTEM_CA_BUNDLE}, which cannot be read ({e}); set `tls.ca_file`"
            )));
            None
        }
    }
}

/// The journal's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub max_age: std::time::Duration,
    pub commit_window: std::time::Duration,
    pub drain_rate: u32,
}

/// A validated `sparkplug:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkplugSettings {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsSettings>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub client_id: String,
    pub group_id: String,
    pub edge_node_id: String,
    pub primary_host_id: Option<String>,
    pub keep_alive: std::time::Duration,
    /// 0 or 1.
    pub data_qos: u8,
    pub reconnect: Backoff,
    pub diagnostics_period: std::time::Duration,
    /// `None`: report by exception; else gather samples and publish once per period.
    pub publish_period: Option<std::time::Duration>,
    pub store: StoreSettings,
}

/// Sparkplug ids become MQTT topic levels: no `/`, `+`, `#`, and not empty.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if let Some(c) = id.chars().find(|c| matches!(c, '/' | '+' | '#')) {
        return Err(format!(
            "{what} `{id}` must not contain `{c}` (it becomes an MQTT topic level)"
        ));
    }
    Ok(())
}

/// Resolves a path from the config relative to the config file's folder.
fn resolve(base: &Path, p: &str) -> PathBuf {
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

impl SparkplugSettings {
    /// Validates the section. `config_file` anchors relative paths; `node_name` is the
    /// default edge node id; `devices` are the configured device names (each becomes a
    /// topic level). Errors go to `errors`; `None` when there was any.
    pub fn from_raw(
        raw: RawSparkplug,
        config_file: &str,
        node_name: &str,
        state_dir: &Path,
        devices: &[Spanned<String>],
        errors: &mut Vec<ConfigError>,
    ) -> Option<SparkplugSettings> {
        let before = errors.len();
        let base = Path::new(config_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (tls_scheme, host, port) = match parse_broker(&raw.broker.value) {
            Ok(v) => v,
            Err(m) => {
                errors.push(raw.broker.error(m));
                (false, String::new(), 0)
            }
        };
        let tls = match (&raw.tls, tls_scheme) {
            (Some(t), false) => {
                errors.push(t.error("`tls` needs an `mqtts://` broker URL"));
                None
            }
            (None, true) => system_roots(&raw.broker, errors),
            (None, false) => None,
            (Some(t), true) => {
                let client = match (&t.cert_file, &t.key_file) {
                    (Some(c), Some(k)) => {
                        match (
                            read_file(&base, c, "cert_file"),
                            read_file(&base, k, "key_file"),
                        ) {
                            (Ok(c), Ok(k)) => Some((c, k)),
                            (c, k) => {
                                errors.extend(c.err());
                                errors.extend(k.err());
                                None
                            }
                        }
                    }
                    (None, None) => None,
                    _ => {
                        errors.push(t.error("`cert_file` and `key_file` go together"));
                        None
                    }
                };
                match &t.ca_file {
                    Some(ca) => match read_file(&base, ca, "ca_file") {
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
                    None => system_roots(&raw.broker, errors),
                }
            }
        };
        let password = raw.password_file.as_ref().and_then(|p| {
            match read_file(&base, p, "password_file") {
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
            }
        });
        if password.is_some() && raw.username.is_none() {
            if let Some(p) = &raw.password_file {
                errors.push(p.error("password_file needs `username`"));
            }
        }
        if let Err(m) = check_id("group_id", &raw.group_id) {
            errors.push(raw.group_id.error(m));
        }
        let edge_node_id = match &raw.edge_node_id {
            Some(id) => {
                if let Err(m) = check_id("edge_node_id", id) {
                    errors.push(id.error(m));
                }
                id.value.clone()
            }
            None => {
                if let Err(m) = check_id("edge_node_id (from node.name)", node_name) {
                    errors.push(
                        raw.group_id
                            .error(format!("{m}; set `sparkplug.edge_node_id` explicitly")),
                    );
                }
                node_name.to_string()
            }
        };
        if let Some(id) = &raw.primary_host_id {
            if let Err(m) = check_id("primary_host_id", id) {
                errors.push(id.error(m));
            }
        }
        for d in devices {
            if let Err(m) = check_id("device name (a Sparkplug device id)", d) {
                errors.push(d.error(m));
            }
        }
        let client_id = match &raw.client_id {
            Some(c) if c.is_empty() || c.len() > 256 => {
                errors.push(c.error("client_id must have 1 to 256 characters"));
                String::new()
            }
            Some(c) => c.value.clone(),
            None => format!("uaedge-{}-{}", raw.group_id.value, edge_node_id),
        };
        let keep_alive = raw.keep_alive.get();
        if keep_alive < std::time::Duration::from_secs(1)
            || keep_alive > std::time::Duration::from_secs(65535)
        {
            errors.push(
                raw.keep_alive
                    .error("keep_alive must be between 1s and 65535s"),
            );
        }
        if *raw.data_qos > 1 {
            errors.push(raw.data_qos.error("data_qos must be 0 or 1"));
        }
        if raw.diagnostics_period.get() < std::time::Duration::from_millis(100) {
            errors.push(
                raw.diagnostics_period
                    .error("diagnostics_period must be at least 100ms"),
            );
        }
        if let Some(p) = &raw.publish_period {
            let d = p.get();
            if d < std::time::Duration::from_millis(50) || d > std::time::Duration::from_secs(3600)
            {
                errors.push(p.error("publish_period must be between 50ms and 1h"));
            }
        }
        let store = raw.store.unwrap_or(RawStore {
            path: None,
            max_bytes: None,
            max_age: default_max_age(),
            commit_window: default_commit_window(),
            drain_rate: default_drain_rate(),
        });
        let window = store.commit_window.get();
        if window.is_zero() || window > std::time::Duration::from_secs(10) {
            errors.push(
                store
                    .commit_window
                    .error("commit_window must be more than 0 and at most 10s"),
            );
        }
        if store.max_age.get().is_zero() {
            errors.push(store.max_age.error("max_age must be more than 0"));
        }
        if *store.drain_rate == 0 {
            errors.push(
                store
                    .drain_rate
                    .error("drain_rate must be at least 1 sample/s"),
            );
        }
        let max_bytes = match &store.max_bytes {
            Some(b) if b.0 < 64 * 1024 => {
                errors.push(b.error("max_bytes must be at least 64KiB"));
                0
            }
            Some(b) => b.0,
            None => DEFAULT_MAX_BYTES,
        };
        let store_path = match &store.path {
            Some(p) => resolve(state_dir, p),
            None => state_dir.join("sparkplug.redb"),
        };
        if errors.len() > before {
            return None;
        }
        Some(SparkplugSettings {
            host,
            port,
            tls,
            username: raw.username,
            password,
            client_id,
            group_id: raw.group_id.value,
            edge_node_id,
            primary_host_id: raw.primary_host_id.map(Spanned::into_inner),
            keep_alive,
            data_qos: *raw.data_qos,
            reconnect: raw.reconnect,
            diagnostics_period: raw.diagnostics_period.get(),
            publish_period: raw.publish_period.map(|p| p.get()),
            store: StoreSettings {
                path: store_path,
                max_bytes,
                max_age: store.max_age.get(),
                commit_window: window,
                drain_rate: *store.drain_rate,
            },
        })
    }
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → (tls, host, port).
fn parse_broker(url: &str) -> Result<(bool, String, u16), String> {
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
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884"),
            Ok((false, "127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_broker("mqtts://broker.local"),
            Ok((true, "broker.local".into(), 8883))
        );
        assert_eq!(parse_broker("mqtt://[::1]:9"), Ok((false, "::1".into(), 9)));
        assert!(parse_broker("tcp://x:1").is_err());
        assert!(parse_broker("mqtt://u:p@x:1").is_err());
        assert!(parse_broker("mqtt://x:0").is_err());
        assert!(parse_broker("mqtt://:1").is_err());
    }

    fn parse(text: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
        crate::config::Config::parse("t.yaml", text)
    }

    fn errors(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn section_defaults_and_errors_with_lines() {
        let ok = parse(
            "node: { name: edge7 }\nstate_dir: /tmp/uaedge-state\nsparkplug:\n  broker: mqtt://127.0.0.1\n  group_id: plant\n",
        )
        .expect("valid");
        let s = ok.sparkplug.expect("section");
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 1883));
        assert_eq!(s.edge_node_id, "edge7");
        assert_eq!(s.client_id, "uaedge-plant-edge7");
        assert_eq!(s.data_qos, 1);
        assert_eq!(
            s.store.path,
            PathBuf::from("/tmp/uaedge-state/sparkplug.redb")
        );
        assert_eq!(s.store.commit_window, std::time::Duration::from_millis(100));
        assert!(parse("devices: []\n")
            .expect("no section")
            .sparkplug
            .is_none());

        let err = errors(
            "sparkplug:\n  broker: tcp://x\n  group_id: a/b\n  data_qos: 2\n  password_file: /nonexistent/pw\n  username: u\n",
        );
        for needle in [
            "t.yaml:2:11: sparkplug.broker: invalid broker",
            "t.yaml:3:13: sparkplug.group_id: group_id `a/b` must not contain `/`",
            "t.yaml:4:13: sparkplug.data_qos: data_qos must be 0 or 1",
            "t.yaml:5:18: sparkplug.password_file: cannot read password_file",
        ] {
            assert!(err.contains(needle), "{needle} not in:\n{err}");
        }
        let err = errors("sparkplug:\n  broker: mqtt://x\n  group_id: g\n  colour: red\n");
        assert!(err.contains("colour"), "{err}");
        let err = errors(
            "sparkplug:\n  broker: mqtt://x\n  group_id: g\n  store: { commit_window: 0ms, max_bytes: 12 parsecs }\n",
        );
        assert!(err.contains("parsecs"), "{err}");
    }

    #[test]
    fn password_is_read_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let text = format!(
            "sparkplug:\n  broker: mqtt://x:1\n  group_id: g\n  username: u\n  password_file: {}/pw\n",
            dir.path().display()
        );
        let s = parse(&text).expect("valid").sparkplug.expect("section");
        assert_eq!(s.password, Some(Secret("s3cret".into())));
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn ids_are_topic_levels() {
        assert!(check_id("g", "plant-1").is_ok());
        assert!(check_id("g", "a/b").is_err());
        assert!(check_id("g", "a+").is_err());
        assert!(check_id("g", "").is_err());
    }
}
