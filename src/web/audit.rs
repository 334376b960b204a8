//! The audit trail of what users changed through the API: one JSON line per write,
//! acknowledgement or reload (asked for, then its outcome) in `<state_dir>/audit.jsonl` (user, address, what, before, after, and
//! how it ended), and the same as a log line. At 10 MiB the file moves to
//! `audit.jsonl.1`, so it stays bounded and the last rotation is kept.

use std::io::Write as _;
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::Serialize;
use tracing::{info, warn};

const ROTATE_AT: u64 = 10 * 1024 * 1024;

/// One change asked for by a user.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub time: String,
    pub user: String,
    pub from: String,
    /// `write`, `acknowledge` or `reload`.
    pub action: &'static str,
    /// The tag's path, the alarm's key, or the config file.
    pub target: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub comment: Option<String>,
    /// `done`, or why not.
    pub result: String,
}

impl Entry {
    /// `user` from `from` asks for `action` on `target`, now; the rest to be filled in.
    pub fn new(
        user: &str,
        from: std::net::SocketAddr,
        action: &'static str,
        target: &str,
    ) -> Entry {
        Entry {
            time: crate::history::export::rfc3339(uaedge_driver::Timestamp::now().as_micros()),
            user: user.to_string(),
            from: from.ip().to_string(),
            action,
            target: target.to_string(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            comment: None,
            result: String::new(),
        }
    }

    /// `done`, or the error.
    pub fn outcome<T, E: std::fmt::Display>(result: &Result<T, E>) -> String {
        result
            .as_ref()
            .map_or_else(ToString::to_string, |_| "done".to_string())
    }
}

pub struct Audit {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Audit {
    pub fn new(path: PathBuf) -> Audit {
        Audit {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Logs `entry` and appends it to the file (off the async threads). A file that cannot
    /// be written is logged; the change itself has happened either way.
    pub async fn record(self: &std::sync::Arc<Self>, entry: Entry) {
        info!(
            user = %entry.user,
            from = %entry.from,
            action = entry.action,
            target = %entry.target,
            before = %entry.before,
            after = %entry.after,
            result = %entry.result,
            "audit"
        );
        let audit = self.clone();
        let written = tokio::task::spawn_blocking(move || audit.append(&entry)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            warn!(file = %self.path.display(), error = %e, "audit file not written");
        }
    }

    fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _one = self.lock.lock();
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= ROTATE_AT) {
            std::fs::rename(&self.path, self.path.with_extension("jsonl.1"))?;
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)
    }
}
