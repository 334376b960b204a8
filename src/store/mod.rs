//! Store and forward: a durable, bounded, ordered journal of Sparkplug batches.
//!
//! The publisher publishes a live batch at once *and* appends it here. Appends
//! wait in memory for at most one commit window, then go to disk in a single
//! redb write transaction (group commit). A PUBACK that arrives inside the
//! window cancels the record before it ever reaches the disk; a later PUBACK
//! deletes it in the next commit. So with a healthy broker the disk sees
//! almost nothing, and during an outage everything is on disk within one
//! window — the bound on what a `kill -9` or power cut can lose.
//!
//! The API is synchronous and `&mut self`: the owner runs the journal on one
//! dedicated thread (or `spawn_blocking`), feeds it appends and acks over a
//! channel, and calls [`Journal::commit`] when [`Journal::next_commit_due`]
//! says so. Only `commit`, `oldest*`, the meta calls and `open` touch the disk.

mod clock;
mod journal;
mod pending;
mod tables;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod disk_full_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use journal::{Ack, Journal};

/// Bounds and timing of a [`Journal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Upper bound on the logical size of the backlog (key + timestamp +
    /// payload of every record). The file itself is larger by the B-tree's
    /// overhead; see the benchmark for the measured factor.
    pub max_bytes: u64,
    /// Records whose timestamp is older than this are dropped at commit.
    pub max_age: Duration,
    /// Longest time an append or ack waits in memory before it is committed.
    pub commit_window: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
            commit_window: Duration::from_millis(100),
        }
    }
}

/// What one [`Journal::commit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Records written to disk (pending appends not cancelled by an ack).
    pub written: u64,
    /// Records deleted because they were acked after an earlier commit.
    pub deleted: u64,
    /// Records dropped to stay within `max_bytes` / `max_age`.
    pub dropped_records: u64,
    /// Logical bytes of the dropped records.
    pub dropped_bytes: u64,
    /// Whether the file was compacted after the commit.
    pub compacted: bool,
}

/// Errors of the journal. Every variant that concerns the file names it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists and is not empty, but is not a redb database at all
    /// (wrong path in the config, or another program's file).
    #[error("journal {} is not a redb database file: {detail}", .path.display())]
    NotRedb {
        /// The journal file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// A redb file damaged in a way that the repair on open could not fix.
    #[error("journal {} is corrupted beyond repair: {detail}", .path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// Another process (or another handle in this one) has the file open.
    #[error("journal {} is already open by another process or handle", .path.display())]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
    /// Any other failure to open (permissions, missing directory, old format).
    #[error("journal {}: cannot open: {source}", .path.display())]
    Open {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read, write or commit failed after the file was open.
    #[error("journal {}: {source}", .path.display())]
    Db {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: redb::Error,
    },
}
