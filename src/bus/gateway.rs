//! What the process knows of itself: which config runs, since when, and how the last
//! reload went. The runtime writes the config's part as it starts and reloads, the binary
//! each SIGHUP's outcome; the web API reads it.

use std::time::SystemTime;

/// The config in force and the reloads tried.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    /// The gateway's name (`node.name`).
    pub node: String,
    /// The config file, as given on the command line.
    pub config_file: String,
    /// SHA-256 of the file's bytes in hex: what `sha256sum` prints for it.
    pub config_sha256: String,
    /// When the process started.
    pub started: SystemTime,
    /// When the config in force was applied (start-up or the last applied reload).
    pub applied: SystemTime,
    /// The last SIGHUP's outcome; `None` before the first.
    pub last_reload: Option<ReloadRecord>,
}

impl Default for GatewayInfo {
    fn default() -> Self {
        let now = SystemTime::now();
        GatewayInfo {
            node: String::new(),
            config_file: String::new(),
            config_sha256: String::new(),
            started: now,
            applied: now,
            last_reload: None,
        }
    }
}

/// One reload: when, what came of it, and the file's errors when it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    pub time: SystemTime,
    pub outcome: ReloadOutcome,
    pub errors: Vec<ReloadError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A changed file was applied.
    Applied,
    /// The file had not changed.
    Unchanged,
    /// The file had errors; the running config stayed.
    Refused,
}

/// One error of a refused file, where it is: the same facts `uaedge check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The key's path in the document, `devices[0].tags[3].address`.
    pub key: String,
    pub message: String,
}
