//! The `history:` section: the local historian's file, retention and commit window.
//!
//! ```yaml
//! history:
//!   path: history.redb        # under state_dir unless absolute
//!   max_age: 30d              # older chunks go
//!   max_bytes: 1GiB           # above this the oldest chunks go
//!   commit_window: 1s         # what a kill -9 may lose: two windows and one fsync
//! ```
//! Every tag is historized while the section is there; `history: false` on a tag leaves it
//! out. Without the section there is no historian.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::Duration;

use super::{ByteSize, ConfigError, Spanned};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    max_age: Option<Spanned<Duration>>,
    #[serde(default)]
    max_bytes: Option<Spanned<ByteSize>>,
    #[serde(default)]
    commit_window: Option<Spanned<Duration>>,
}

/// The historian's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    pub path: PathBuf,
    pub max_age: std::time::Duration,
    pub max_bytes: u64,
    pub commit_window: std::time::Duration,
}

pub const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

impl HistorySettings {
    /// The settings a section without keys gives, with the file under `state_dir`.
    pub fn defaults(state_dir: &Path) -> HistorySettings {
        HistorySettings {
            path: state_dir.join("history.redb"),
            max_age: DEFAULT_MAX_AGE,
            max_bytes: DEFAULT_MAX_BYTES,
            commit_window: DEFAULT_COMMIT_WINDOW,
        }
    }

    pub fn from_raw(
        raw: RawHistory,
        state_dir: &Path,
        errors: &mut Vec<ConfigError>,
    ) -> Option<HistorySettings> {
        let before = errors.len();
        let mut s = HistorySettings::defaults(state_dir);
        if let Some(p) = raw.path {
            let p = Path::new(&p);
            s.path = if p.is_absolute() {
                p.to_path_buf()
            } else {
                state_dir.join(p)
            };
        }
        if let Some(a) = raw.max_age {
            if a.get().is_zero() {
                errors.push(a.error("max_age must be more than 0"));
            }
            s.max_age = a.get();
        }
        if let Some(b) = raw.max_bytes {
            if b.0 < 1024 * 1024 {
                errors.push(b.error("max_bytes must be at least 1MiB"));
            }
            s.max_bytes = b.0;
        }
        if let Some(w) = raw.commit_window {
            let d = w.get();
            if d < std::time::Duration::from_millis(10) || d > std::time::Duration::from_secs(60) {
                errors.push(w.error("commit_window must be between 10ms and 60s"));
            }
            s.commit_window = d;
        }
        (errors.len() == before).then_some(s)
    }
}
