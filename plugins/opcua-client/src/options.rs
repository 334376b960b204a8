use std::path::PathBuf;

use serde::Deserialize;
use uaedge_driver::Duration;

/// A device's `options:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `opc.tcp://host:port/path`: the discovery URL; the session uses the server's endpoint
    /// that matches `security_policy` and `security_mode`, with this URL's host.
    pub endpoint: String,
    #[serde(default)]
    pub security_policy: SecurityPolicy,
    #[serde(default)]
    pub security_mode: SecurityMode,
    /// User name for a UserName identity token; anonymous when absent.
    pub username: Option<String>,
    /// Password inline (prefer `password_file`, which keeps it out of the config).
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored), read at every connect so a
    /// rotated secret takes effect without a restart.
    pub password_file: Option<PathBuf>,
    /// The client's application instance certificate (DER) and private key (PEM). Without
    /// them a self-signed pair is created under `pki_dir` on first connect.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The client's PKI folder: `own/` (created certificate), `trusted/` (server
    /// certificates to trust; drop a server's DER certificate here), `rejected/`.
    #[serde(default = "default_pki_dir")]
    pub pki_dir: PathBuf,
    /// Trust any server certificate (it still has to be valid); otherwise it must be in
    /// `pki_dir/trusted/`. Only relevant with a security policy other than None.
    #[serde(default)]
    pub trust_server_certificate: bool,
    #[serde(default)]
    pub mode: Mode,
    /// How often the server sends data changes of the subscription.
    #[serde(default = "default_publishing_interval")]
    pub publishing_interval: Duration,
    /// How often the server samples each monitored item; default: `publishing_interval`.
    pub sampling_interval: Option<Duration>,
    /// Values the server queues per monitored item between two publishes; default: enough
    /// for 10 s of samples (10 to 1000), so that a short network break loses nothing.
    pub queue_size: Option<u32>,
    /// Data-change filter for numeric tags in subscription mode.
    pub deadband: Option<Deadband>,
    #[serde(default = "default_session_timeout")]
    pub session_timeout: Duration,
    /// Per service call; also bounds how long a dead server takes to be noticed.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// How often the session checks that the server is alive (a Read of ServerStatus).
    #[serde(default = "default_keep_alive_interval")]
    pub keep_alive_interval: Duration,
    /// Upper bound of nodes in one Read (polling); the server's own limit, when lower, wins.
    #[serde(default = "default_max_nodes_per_read")]
    pub max_nodes_per_read: u32,
    /// Data changes held between two reads of the runtime (subscription mode); when full,
    /// the oldest is dropped and counted.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
pub enum SecurityPolicy {
    #[default]
    None,
    Basic256Sha256,
    #[serde(rename = "Aes128_Sha256_RsaOaep")]
    Aes128Sha256RsaOaep,
    #[serde(rename = "Aes256_Sha256_RsaPss")]
    Aes256Sha256RsaPss,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
pub enum SecurityMode {
    #[default]
    None,
    Sign,
    SignAndEncrypt,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One subscription with a monitored item per tag; `read` drains the data changes.
    #[default]
    Subscription,
    /// One batched Read per poll interval.
    Polling,
}

/// `deadband: { absolute: 0.5 }` or `deadband: { percent: 2 }` (of the node's EURange).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(try_from = "DeadbandSpec")]
pub enum Deadband {
    Absolute(f64),
    Percent(f64),
}

/// serde_yaml 0.9 reads externally tagged enums only from YAML tags (`!absolute 0.5`), so
/// the map form goes through this.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadbandSpec {
    absolute: Option<f64>,
    percent: Option<f64>,
}

impl TryFrom<DeadbandSpec> for Deadband {
    type Error = String;

    fn try_from(d: DeadbandSpec) -> Result<Self, Self::Error> {
        match (d.absolute, d.percent) {
            (Some(x), None) => Ok(Deadband::Absolute(x)),
            (None, Some(p)) => Ok(Deadband::Percent(p)),
            _ => Err("deadband takes one of `absolute: <value>` or `percent: <0-100>`".into()),
        }
    }
}

/// A tag's `options:`: none so far, but present so that a typo is refused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TagOptions {}

fn default_pki_dir() -> PathBuf {
    PathBuf::from("/var/lib/uaedge/pki-client")
}

fn default_publishing_interval() -> Duration {
    Duration::from_millis(500)
}

fn default_session_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_keep_alive_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_max_nodes_per_read() -> u32 {
    1000
}

fn default_buffer() -> usize {
    10_000
}

impl Options {
    /// Contradictions serde cannot see, each as one message.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.endpoint.starts_with("opc.tcp://") || self.endpoint.len() <= "opc.tcp://".len() {
            out.push(format!(
                "endpoint `{}` must look like `opc.tcp://host:4840/path`",
                self.endpoint
            ));
        }
        match (self.security_policy, self.security_mode) {
            (SecurityPolicy::None, SecurityMode::None) => {}
            (SecurityPolicy::None, m) => out.push(format!(
                "security_mode {m:?} needs a security_policy other than None"
            )),
            (p, SecurityMode::None) => out.push(format!(
                "security_policy {p:?} needs security_mode Sign or SignAndEncrypt"
            )),
            _ => {}
        }
        if self.password.is_some() && self.password_file.is_some() {
            out.push("give either `password` or `password_file`, not both".into());
        }
        if self.username.is_some() && self.password.is_none() && self.password_file.is_none() {
            out.push("`username` needs `password_file` (or `password`)".into());
        }
        if self.username.is_none() && (self.password.is_some() || self.password_file.is_some()) {
            out.push("a password without `username`".into());
        }
        if self.client_certificate.is_some() != self.client_key.is_some() {
            out.push("`client_certificate` and `client_key` go together".into());
        }
        if self.queue_size == Some(0) {
            out.push("queue_size must be at least 1".into());
        }
        if self.max_nodes_per_read == 0 {
            out.push("max_nodes_per_read must be at least 1".into());
        }
        if self.buffer == 0 {
            out.push("buffer must be at least 1".into());
        }
        if self.request_timeout.get().is_zero() {
            out.push("request_timeout must be more than 0".into());
        }
        if let Some(Deadband::Absolute(x) | Deadband::Percent(x)) = self.deadband {
            if !(x.is_finite() && x >= 0.0) {
                out.push(format!("deadband {x} must be a number ≥ 0"));
            }
            if matches!(self.deadband, Some(Deadband::Percent(p)) if p > 100.0) {
                out.push("a percent deadband is at most 100".into());
            }
        }
        out
    }

    pub(crate) fn sampling(&self) -> Duration {
        self.sampling_interval.unwrap_or(self.publishing_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Options, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_names_from_the_issue() {
        let o = parse("endpoint: opc.tcp://h:4840/x\n").unwrap();
        assert_eq!(o.mode, Mode::Subscription);
        assert_eq!(o.security_policy, SecurityPolicy::None);
        assert!(o.problems().is_empty());
        let o = parse(
            "endpoint: opc.tcp://h:4840\nsecurity_policy: Aes128_Sha256_RsaOaep\nsecurity_mode: Sign\nmode: polling\ndeadband: { percent: 2 }\n",
        )
        .unwrap();
        assert_eq!(o.security_policy, SecurityPolicy::Aes128Sha256RsaOaep);
        assert_eq!(o.deadband, Some(Deadband::Percent(2.0)));
        assert!(o.problems().is_empty(), "{:?}", o.problems());
    }

    #[test]
    fn refuses_typos_and_contradictions() {
        assert!(parse("endpoint: opc.tcp://h\nsecurty_mode: Sign\n").is_err());
        assert!(parse("endpoint: opc.tcp://h\nsecurity_policy: Basic128\n").is_err());
        let o = parse("endpoint: http://h\nsecurity_mode: Sign\nusername: u\n").unwrap();
        let p = o.problems().join("; ");
        assert!(p.contains("opc.tcp://"), "{p}");
        assert!(p.contains("security_policy other than None"), "{p}");
        assert!(p.contains("password_file"), "{p}");
    }
}
