//! Store and forward: a durable, bounded, ordered journal of Sparkplug batches.
//!
//! The publisher publishes a live batch at once *and* appends it here. Appends
//! wait in memory for at most one commit window, then go to disk in a single
//! redb write transaction (group commit). A PUBACK that arrives inside the
//! window cancels the record before it ever reaches the disk; a later PUBACK
//! deletes it in the next commit. So with a healthy broker the disk sees
//! almost nothing, and during an outage everything is on disk soon after.
//!
//! The API is synchronous and `&mut self`, and the owner (the edge node task)
//! feeds it appends and acks. A commit has the historian's writer design: when
//! [`Journal::next_commit_due`] says so, [`Journal::begin_commit`] takes what
//! is pending into a [`CommitJob`] without touching the disk, the job's
//! [`write`](CommitJob::write) runs on another thread (`spawn_blocking`) with
//! the fsyncs, and [`Journal::finish_commit`] takes the outcome in. Meanwhile
//! appends, acks and reads go on, so a slow fsync never stalls intake; the
//! next window gathers in a fresh buffer, bounded by `max_bytes` as always.
//! At most one commit is in flight. [`Journal::commit`] (and `flush`,
//! `close`, drop) does the three steps on the calling thread, after waiting
//! for the commit in flight. Only the job, `oldest*`, the meta calls, `open`
//! and a compaction after a drain touch the disk.
//!
//! What a `kill -9` or power cut can lose: the commit window being gathered
//! plus the commit in flight, so at most two windows and one commit's fsyncs
//! while the disk keeps up with the window. (The next commit begins only once
//! the one in flight has finished, so on a disk slower than that, the window
//! being gathered lasts as long as one commit.) Never anything a finished
//! commit wrote: redb commits atomically and the reopen repairs the file (see
//! `crash_tests`).

mod clock;
mod commit;
mod journal;
mod pending;
mod tables;

#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod disk_full_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use commit::CommitJob;
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

/// What one commit ([`Journal::commit`], [`Journal::finish_commit`]) did.
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
    /// The write of a commit ended without an outcome: its job was dropped
    /// unwritten (a cancelled task) or panicked. Its records are kept, and
    /// the next commit writes them.
    #[error("journal {}: a commit ended without being written", .path.display())]
    CommitLost {
        /// The journal file.
        path: PathBuf,
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
