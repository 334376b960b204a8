//! The YAML schema and its validation.
//!
//! Loading runs in two passes over one parsed [`yaml::Document`]: serde reads each device and
//! each tag on its own (so one mistake does not hide the next), then semantic checks
//! (duplicate paths, scaling, addresses parsed by each driver's factory) run over what was
//! read. Every error names the file, line, column and key path, and all of them are returned.

mod alarm_tags;
mod brokers;
pub mod checks;
pub mod conditions;
mod drivers;
pub mod history;
pub mod opcua;
mod opcua_limits;
mod referenced_file;
pub mod sparkplug;
pub mod users;
pub mod web;
pub mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::{DataType, Duration};

use crate::model::{
    Deadband, DeviceDef, DeviceId, Gain, Scaling, TagDef, TagId, TagPath, TagTable,
};
use drivers::Prepared;
pub use referenced_file::read_referenced_file;
pub use uaedge_driver::{Backoff, ByteSize};
pub use yaml::{ConfigError, RawNode, Spanned};

/// All the errors of one config file, printed one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `node:` section: who this gateway is.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Names the gateway in logs, its OPC UA application and (by default) its Sparkplug
    /// edge node id.
    #[serde(default = "default_node_name")]
    pub name: String,
}

fn default_node_name() -> String {
    "uaedge".to_string()
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            name: default_node_name(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `RUST_LOG`-style filter, e.g. `info` or `info,uaedge_modbus=debug`. `RUST_LOG` in the
    /// environment wins, for one-off debugging.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Log every reported value change (one line each, target `uaedge::values`). Useful when
    /// commissioning; noisy in production.
    #[serde(default)]
    pub values: bool,
}

fn default_log_level() -> String {
    "info".to_string()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            values: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    node: GatewayConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    devices: Vec<RawNode>,
    /// Where uaedge keeps its state (the Sparkplug journal, certificates).
    #[serde(default)]
    state_dir: Option<String>,
    /// The Sparkplug B edge node; absent = no MQTT.
    #[serde(default)]
    sparkplug: Option<RawNode>,
    /// The OPC UA server; absent = no server.
    #[serde(default)]
    opcua: Option<RawNode>,
    /// Who may log in, to OPC UA and the web console.
    #[serde(default)]
    users: Vec<RawNode>,
    /// The Prometheus/health endpoint; absent = off.
    #[serde(default)]
    metrics: Option<MetricsConfig>,
    /// The local historian; absent = off.
    #[serde(default)]
    history: Option<RawNode>,
    /// The REST API (with `/metrics` and `/health`); absent = off.
    #[serde(default)]
    web: Option<RawNode>,
}

fn yes() -> bool {
    true
}

/// `metrics: { listen: 127.0.0.1:9464 }`: `/metrics` and `/health` over HTTP.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_listen")]
    pub listen: std::net::SocketAddr,
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    driver: Spanned<String>,
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default = "default_poll_interval")]
    poll_interval: Duration,
    #[serde(default)]
    reconnect: Backoff,
    #[serde(default)]
    options: Option<RawNode>,
    #[serde(default)]
    tags: Vec<RawNode>,
}

fn default_enabled() -> bool {
    true
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

/// Linear scaling as written in YAML: `{raw: [0, 27648], eng: [0, 250]}` or
/// `{gain: 0.1, offset: -40}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
enum ScaleConfig {
    Range {
        raw: [f64; 2],
        eng: [f64; 2],
        #[serde(default)]
        clamp: bool,
    },
    Gain {
        gain: f64,
        #[serde(default)]
        offset: f64,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum DeadbandConfig {
    Absolute(f64),
    Percent(f64),
}

/// A tag as written in YAML, before its driver parsed the address.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTag {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub data_type: DataType,
    pub address: Spanned<String>,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    scale: Option<Spanned<ScaleConfig>>,
    /// The type clients see when `scale` is set; float64 unless given.
    #[serde(default)]
    scaled_type: Option<DataType>,
    /// Engineering range (for percent deadband and OPC UA's EURange) where `scale` has none.
    #[serde(default)]
    range: Option<[f64; 2]>,
    #[serde(default)]
    deadband: Option<Spanned<DeadbandConfig>>,
    #[serde(default)]
    pub writable: bool,
    /// `false` leaves the tag out of the historian.
    #[serde(default = "yes")]
    pub history: bool,
    #[serde(default)]
    pub options: Option<RawNode>,
    /// Anomaly checks on this tag; each adds an alarm tag `<tag>/Alarms/<check>`.
    #[serde(default)]
    checks: Vec<checks::CheckConfig>,
}

/// A device ready to run: validated settings, its tags, and its driver waiting to be built.
pub struct DeviceSetup {
    pub name: String,
    pub driver: String,
    pub enabled: bool,
    pub poll_interval: Duration,
    pub reconnect: Backoff,
    pub prepared: Prepared,
    /// What a reload compares to tell whether this device's link may keep running: see
    /// [`link_fingerprint`].
    pub fingerprint: u64,
}

/// A loaded, fully validated configuration.
pub struct Config {
    pub file: String,
    /// SHA-256 of the file's text ([`sha256_hex`]).
    pub sha256: String,
    pub node: GatewayConfig,
    pub log: LogConfig,
    pub devices: Vec<DeviceSetup>,
    /// `state_dir:`, or `$STATE_DIRECTORY`, or `/var/lib/uaedge`.
    pub state_dir: std::path::PathBuf,
    pub sparkplug: Option<sparkplug::SparkplugSettings>,
    /// `opcua:`; `None` when absent or `enabled: false`.
    pub opcua: Option<opcua::OpcUaSettings>,
    /// `users:` (the OPC UA server's list also holds `opcua.users` where that is used).
    pub users: Vec<users::User>,
    /// `metrics:`; `None` when absent.
    pub metrics: Option<MetricsConfig>,
    /// `history:`; `None` when absent.
    pub history: Option<history::HistorySettings>,
    /// `web:`; `None` when absent.
    pub web: Option<web::WebSettings>,
    /// The model's static part, built while validating; the runtime turns it into a TagTable.
    pub device_defs: Vec<DeviceDef>,
    pub tag_defs: Vec<TagDef>,
    /// Every tag's validated anomaly checks; their alarm tags are in `tag_defs`.
    pub checks: Vec<crate::anomaly::CheckSpec>,
    /// The alarm condition of each check (see `conditions.rs`).
    pub conditions: Vec<crate::conditions::ConditionDef>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: 0,
                col: 0,
                path: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        let doc = yaml::Document::parse(&file, &text).map_err(|e| ConfigErrors(vec![e]))?;
        let sha256 = sha256_hex(text.as_bytes());
        // The tree has every scalar it needs: the text (9 MB for 100,000 tags) goes before
        // the model is built, not after.
        drop(text);
        Config::from_document(&file, sha256, doc)
    }

    /// Validates config text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigErrors> {
        let doc = yaml::Document::parse(file, text).map_err(|e| ConfigErrors(vec![e]))?;
        Config::from_document(file, sha256_hex(text.as_bytes()), doc)
    }

    fn from_document(
        file: &str,
        sha256: String,
        doc: yaml::Document,
    ) -> Result<Config, ConfigErrors> {
        let mut raw: RawConfig = doc
            .root()
            .deserialize()
            .map_err(|e| ConfigErrors(vec![e]))?;
        // The tree lives on in the `RawNode`s read from it (about 200 bytes a tag) and goes
        // in one piece when the last of them does, at the end of this function.
        drop(doc);
        let mut errors = Vec::new();
        let mut config = Config {
            file: file.to_string(),
            sha256,
            node: raw.node,
            log: raw.log,
            devices: Vec::new(),
            state_dir: raw
                .state_dir
                .map(std::path::PathBuf::from)
                .unwrap_or_else(default_state_dir),
            sparkplug: None,
            opcua: None,
            users: Vec::new(),
            metrics: raw.metrics,
            history: None,
            web: None,
            device_defs: Vec::new(),
            tag_defs: Vec::new(),
            checks: Vec::new(),
            conditions: Vec::new(),
        };
        let mut pending = Vec::new();
        let mut device_names: HashMap<String, usize> = HashMap::new();
        let mut name_spans = Vec::new();
        for node in std::mem::take(&mut raw.devices) {
            let node = &node;
            let device: RawDevice = match node.deserialize() {
                Ok(d) => d,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            check_name(&device.name, false, &mut errors);
            if let Some(first) = device_names.get(&device.name.value) {
                errors.push(device.name.error(format!(
                    "duplicate device name `{}` (first defined at line {})",
                    device.name.value, first
                )));
            } else {
                device_names.insert(device.name.value.clone(), device.name.pos.line);
            }
            name_spans.push(device.name.clone());
            config.add_device(node, device, &mut pending, &mut errors);
        }
        // After every device: a reaction may write to a tag of a device further down.
        (config.checks, config.conditions) =
            alarm_tags::validate(&mut config.tag_defs, pending, &mut errors);
        if let Some(node) = raw.sparkplug.filter(|n| !n.is_null()) {
            match node.deserialize::<sparkplug::RawSparkplug>() {
                Ok(sp) => {
                    config.sparkplug = sparkplug::SparkplugSettings::from_raw(
                        sp,
                        file,
                        &config.node.name,
                        &config.state_dir,
                        &name_spans,
                        &mut errors,
                    )
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(node) = &raw.history {
            match node.deserialize_or_default::<history::RawHistory>() {
                Ok(h) => {
                    config.history =
                        history::HistorySettings::from_raw(h, &config.state_dir, &mut errors)
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(node) = &raw.web {
            match node.deserialize_or_default::<web::RawWeb>() {
                Ok(w) => {
                    config.web = web::WebSettings::from_raw(
                        w,
                        Path::new(file).parent().unwrap_or(Path::new("")),
                        &config.state_dir,
                        &mut errors,
                    )
                }
                Err(e) => errors.push(e),
            }
            if let (Some(w), Some(m)) = (&config.web, &config.metrics) {
                if w.listen == m.listen {
                    errors.push(node.error(format!(
                        "web and metrics both listen on {}: web serves /metrics and /health too, so drop `metrics:`",
                        w.listen
                    )));
                }
            }
        }
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        config.users = users::load(&raw.users, users::Place::Top, base, &mut errors);
        if let Some(node) = &raw.opcua {
            config.opcua = opcua::OpcUaSettings::load(
                node,
                base,
                &config.node.name,
                &config.users,
                &mut errors,
            );
            // Users listed the older way, under `opcua:`, are everyone's users too.
            if config.users.is_empty() {
                if let Some(o) = &config.opcua {
                    config.users.clone_from(&o.users);
                }
            }
        }
        if let (Some(w), Some(node)) = (&mut config.web, &raw.web) {
            w.users = config.users.clone();
            w.check_users(node, &mut errors);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            // Checks run in passes; the reader wants the file's order.
            errors.sort_by_key(|e| (e.line, e.col));
            Err(ConfigErrors(errors))
        }
    }

    fn add_device(
        &mut self,
        node: &RawNode,
        device: RawDevice,
        pending: &mut Vec<alarm_tags::PendingChecks>,
        errors: &mut Vec<ConfigError>,
    ) {
        let id = DeviceId(u16::try_from(self.device_defs.len()).unwrap_or(u16::MAX));
        if self.device_defs.len() >= usize::from(u16::MAX) {
            errors.push(node.error("too many devices (at most 65535)"));
            return;
        }
        let first_tag = u32::try_from(self.tag_defs.len()).unwrap_or(u32::MAX);
        let mut tags = Vec::with_capacity(device.tags.len());
        let mut paths: HashMap<String, usize> = HashMap::new();
        let device_name: std::sync::Arc<str> = device.name.value.as_str().into();
        for tag_node in &device.tags {
            let mut tag: RawTag = match tag_node.deserialize() {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            check_name(&tag.name, true, errors);
            if let Some(line) = paths.get(&tag.name.value) {
                errors.push(tag.name.error(format!(
                    "duplicate tag path `{}/{}` (first defined at line {line})",
                    device.name.value, tag.name.value
                )));
                continue;
            }
            paths.insert(tag.name.value.clone(), tag.name.pos.line);
            if let Some(def) = tag_def(&device_name, &tag, errors) {
                let checks = std::mem::take(&mut tag.checks);
                tags.push((tag, def, checks));
            }
        }
        let prepared = drivers::prepare(
            &device.driver,
            device.options.as_ref(),
            node,
            &tags.iter().map(|(t, _, _)| t).collect::<Vec<_>>(),
            errors,
        );
        let Some(mut prepared) = prepared else { return };
        let driver_tags = u32::try_from(tags.len()).unwrap_or(u32::MAX);
        let mut with_checks = Vec::new();
        // Moved, not copied: a second string a tag, made while the parse's garbage is being
        // freed, would scatter across the heap and keep its pages from going back.
        for (local, ((_, mut def, checks), address)) in tags
            .into_iter()
            .zip(std::mem::take(&mut prepared.addresses))
            .enumerate()
        {
            def.id = TagId(first_tag + local as u32);
            def.device = id;
            def.local = local as u32;
            def.address = address.into_boxed_str();
            if !checks.is_empty() {
                with_checks.push((self.tag_defs.len(), checks));
            }
            self.tag_defs.push(def);
        }
        // Alarm tags after the driver's: the driver numbers its tags 0..driver_tags.
        if !with_checks.is_empty() {
            let driver_defs = self.tag_defs.get(first_tag as usize..).unwrap_or(&[]);
            let device_paths: HashSet<&str> = driver_defs.iter().map(|t| &*t.path.tag).collect();
            let mut alarm_tags = Vec::new();
            for (i, checks) in with_checks {
                let Some(owner) = self.tag_defs.get(i) else {
                    continue;
                };
                let next = driver_tags.saturating_add(alarm_tags.len() as u32);
                for mut alarm in alarm_tags::alarm_defs(owner, &checks, &device_paths, next, errors)
                {
                    alarm.id = TagId(first_tag + alarm.local);
                    alarm_tags.push(alarm);
                }
                pending.push(alarm_tags::PendingChecks {
                    owner: owner.id,
                    checks,
                });
            }
            self.tag_defs.extend(alarm_tags);
        }
        let tag_count = u32::try_from(self.tag_defs.len())
            .unwrap_or(u32::MAX)
            .saturating_sub(first_tag);
        self.device_defs.push(DeviceDef {
            id,
            name: device.name.value.clone(),
            driver: device.driver.value.clone(),
            first_tag,
            tag_count,
            driver_tags,
        });
        self.devices.push(DeviceSetup {
            name: device.name.value,
            driver: device.driver.value,
            enabled: device.enabled,
            poll_interval: device.poll_interval,
            reconnect: device.reconnect,
            prepared,
            fingerprint: link_fingerprint(node),
        });
    }

    /// The model's tag table for this config, which takes the definitions over: a copy
    /// would double the start-up peak of a 100,000-tag gateway for nothing.
    pub fn take_tag_table(&mut self) -> TagTable {
        TagTable::new(
            std::mem::take(&mut self.device_defs),
            std::mem::take(&mut self.tag_defs),
        )
    }
}

/// Everything that defines a device's link — driver, options, `enabled`, poll interval,
/// reconnect, and its tags with their addresses, types, scaling and deadband — as one
/// comparable digest, positions left out (moving a device in the file changes nothing).
/// A tag's `checks:` are left out too: the router judges them, the link never sees them,
/// so changing a threshold does not reconnect the device.
fn link_fingerprint(node: &RawNode) -> u64 {
    let mut value = node
        .deserialize::<serde_json::Value>()
        .unwrap_or(serde_json::Value::Null);
    if let Some(tags) = value.get_mut("tags").and_then(|t| t.as_array_mut()) {
        for tag in tags {
            if let Some(tag) = tag.as_object_mut() {
                tag.remove("checks");
            }
        }
    }
    // serde_json's maps are sorted, so key order in the file does not matter either. The
    // canonical text goes straight into the digest: kept whole, it would be about 100 bytes
    // per tag held for as long as the device runs.
    let mut digest = Digest::default();
    // Writing into a hasher cannot fail, and a Value always serializes.
    let _ = serde_json::to_writer(&mut digest, &value);
    digest.finish()
}

/// A 64-bit digest of bytes, to tell whether a device's link changed without keeping its
/// settings ([`link_fingerprint`]). SipHash with fixed keys, so equal bytes give equal
/// digests for the life of the process, which is all the comparison needs.
#[derive(Default)]
pub struct Digest(std::collections::hash_map::DefaultHasher);

impl Digest {
    pub fn finish(&self) -> u64 {
        std::hash::Hasher::finish(&self.0)
    }
}

/// What `sha256sum` prints for `bytes`: a config file's identity, shown by the API and
/// compared by reloads.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

impl std::io::Write for Digest {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(&mut self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where state lives when the config names no `state_dir`: systemd's `$STATE_DIRECTORY`
/// (the first entry if several), else `/var/lib/uaedge` for root (the packaged service),
/// else the user's own state folder, so `cargo run` from a checkout works without root.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| {
            v.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .filter(|p| !p.as_os_str().is_empty())
    {
        return dir;
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/uaedge");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|base| base.join("uaedge"))
        .unwrap_or_else(|| PathBuf::from("uaedge-state"))
}

/// Device names may not hold `/` (it separates device from tag); tag names may, for folders,
/// but no empty segments.
fn check_name(name: &Spanned<String>, folders: bool, errors: &mut Vec<ConfigError>) {
    let n = &name.value;
    if n.trim().is_empty() {
        errors.push(name.error("name must not be empty"));
    } else if !folders && n.contains('/') {
        errors.push(name.error(format!("device name `{n}` must not contain `/`")));
    } else if folders && n.split('/').any(str::is_empty) {
        errors.push(name.error(format!(
            "tag name `{n}` has an empty folder (leading, trailing or double `/`)"
        )));
    }
}

fn tag_def(
    device: &std::sync::Arc<str>,
    tag: &RawTag,
    errors: &mut Vec<ConfigError>,
) -> Option<TagDef> {
    let before = errors.len();
    let scaling = tag.scale.as_ref().and_then(|s| {
        if !tag.data_type.is_numeric() {
            errors.push(s.error(format!(
                "scaling needs a numeric type, but the tag is {}",
                tag.data_type
            )));
            return None;
        }
        match s.value {
            ScaleConfig::Range { raw, eng, clamp } => {
                if raw[0] == raw[1] || eng[0] == eng[1] {
                    errors.push(s.error("scale ranges must not be empty (lo == hi)"));
                    return None;
                }
                Some(Scaling::Range { raw, eng, clamp })
            }
            ScaleConfig::Gain { gain, offset } => {
                if gain == 0.0 || !gain.is_finite() || !offset.is_finite() {
                    errors.push(s.error("gain must be a finite non-zero number"));
                    return None;
                }
                Some(Scaling::Gain(Gain::new(gain, offset)))
            }
        }
    });
    let data_type = match (&tag.scale, tag.scaled_type) {
        (Some(_), Some(t)) if !t.is_numeric() => {
            errors.push(
                tag.name
                    .error(format!("scaled_type must be numeric, not {t}")),
            );
            t
        }
        (Some(_), t) => t.unwrap_or(DataType::Double),
        (None, Some(_)) => {
            errors.push(tag.name.error("scaled_type is only meaningful with scale"));
            tag.data_type
        }
        (None, None) => tag.data_type,
    };
    let range = tag.range.or(scaling.and_then(|s| s.eng_range()));
    let deadband = tag.deadband.as_ref().and_then(|d| match d.value {
        DeadbandConfig::Absolute(x) | DeadbandConfig::Percent(x) if x.is_nan() || x < 0.0 => {
            errors.push(d.error("deadband must be zero or positive"));
            None
        }
        DeadbandConfig::Absolute(x) => Some(Deadband::Absolute(x)),
        DeadbandConfig::Percent(_) if range.is_none() => {
            errors.push(d.error(
                "a percent deadband needs an engineering range: add `range: [lo, hi]` or a `scale` with `eng`",
            ));
            None
        }
        DeadbandConfig::Percent(x) => Some(Deadband::Percent(x)),
    });
    if errors.len() > before {
        return None;
    }
    Some(TagDef {
        id: TagId(0),
        device: DeviceId(0),
        path: TagPath {
            device: device.clone(),
            tag: tag.name.value.as_str().into(),
        },
        local: 0,
        data_type,
        raw_type: tag.data_type,
        units: tag.units.as_deref().map(Into::into),
        description: tag.description.as_deref().map(Into::into),
        scaling: scaling.map(Box::new),
        range: range.map(Box::new),
        deadband,
        writable: tag.writable,
        historized: tag.history,
        address: Box::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "devices:\n  - name: a\n    driver: enip-sim\n    poll_interval: 50ms\n    tags:\n      - name: t\n        type: float64\n        address: Count\n        checks: [{ kind: limits, hi: 10 }]\n";

    fn fingerprint(text: &str) -> u64 {
        let config = Config::parse("f.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        config.devices[0].fingerprint
    }

    #[test]
    fn checks_and_layout_do_not_change_the_link_but_options_do() {
        let base = fingerprint(BASE);
        assert_eq!(base, fingerprint(&BASE.replace("hi: 10", "hi: 20")));
        // Same device, keys in another order and further down the file.
        let moved = "\n\ndevices:\n  - driver: enip-sim\n    name: a\n    tags:\n      - { type: float64, name: t, address: Count }\n    poll_interval: 50ms\n";
        assert_eq!(base, fingerprint(moved));
        assert_ne!(base, fingerprint(&BASE.replace("50ms", "60ms")));
        assert_ne!(base, fingerprint(&BASE.replace("float64", "float32")));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert_eq!(b.delay(0), std::time::Duration::from_millis(100));
        assert_eq!(b.delay(3), std::time::Duration::from_millis(800));
        assert_eq!(b.delay(5), std::time::Duration::from_secs(2));
        assert_eq!(b.delay(1000), std::time::Duration::from_secs(2));
    }
}
