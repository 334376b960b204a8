//! The `sparkplug:` section of the YAML and its validation.
//!
//! Serde reads [`RawSparkplug`] (unknown keys refused, values that need checking kept
//! [`Spanned`]); [`SparkplugSettings::from_raw`] then validates it into settings the node
//! runs on, reading the password and TLS files at load so a missing file is a config error
//! with its line, not a runtime surprise. The password is never logged: [`Secret`]'s `Debug`
//! prints `***`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::Duration;

use super::brokers::{self, resolve, RawBroker, RawServers, RawTls};
pub use super::brokers::{BrokerSettings, Secret, TlsSettings, SYSTEM_CA_BUNDLE};
use super::{Backoff, ByteSize, ConfigError, Spanned};

/// `sparkplug:` as written in YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSparkplug {
    #[serde(default)]
    broker: Option<Spanned<String>>,
    #[serde(default)]
    brokers: Option<Spanned<Vec<RawBroker>>>,
    /// Online on a server other than the first this long: back to the first.
    #[serde(default)]
    return_to_first: Option<Spanned<Duration>>,
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
    /// How long a server may keep the primary host's STATE from the node before it tries
    /// the next server (with more than one).
    #[serde(default = "default_primary_host_timeout")]
    primary_host_timeout: Spanned<Duration>,
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

fn default_primary_host_timeout() -> Spanned<Duration> {
    spanned(Duration::from_secs(10))
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
    /// The MQTT servers in order of preference: at least one.
    pub brokers: Vec<BrokerSettings>,
    /// Online on a server other than the first this long: back to the first.
    pub return_to_first: Option<std::time::Duration>,
    pub client_id: String,
    pub group_id: String,
    pub edge_node_id: String,
    pub primary_host_id: Option<String>,
    /// With several servers: how long one may keep the primary host's STATE from the
    /// node (none arrives, or it says offline) before the node tries the next.
    pub primary_host_timeout: std::time::Duration,
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
        let brokers = brokers::servers(
            RawServers {
                broker: raw.broker.as_ref(),
                brokers: raw.brokers.as_ref(),
                tls: raw.tls.as_ref(),
                username: raw.username.as_ref(),
                password_file: raw.password_file.as_ref(),
                section: &raw.group_id,
            },
            &base,
            errors,
        );
        for (what, d) in [
            ("return_to_first", raw.return_to_first.as_ref()),
            ("primary_host_timeout", Some(&raw.primary_host_timeout)),
        ] {
            if let Some(d) = d.filter(|d| d.get() < std::time::Duration::from_secs(1)) {
                errors.push(d.error(format!("{what} must be at least 1s")));
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
            brokers,
            return_to_first: raw.return_to_first.map(|d| d.get()),
            client_id,
            group_id: raw.group_id.value,
            edge_node_id,
            primary_host_id: raw.primary_host_id.map(Spanned::into_inner),
            primary_host_timeout: raw.primary_host_timeout.get(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.brokers.len(), 1);
        assert_eq!(s.brokers[0].url(), "mqtt://127.0.0.1:1883");
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
        assert_eq!(s.brokers[0].password, Some(Secret("s3cret".into())));
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
