//! On-disk layout: typed table definitions and the size accounting that the
//! byte bound uses.

use std::time::{SystemTime, UNIX_EPOCH};

use redb::TableDefinition;

/// The journal: sequence number → (newest sample time in µs, encoded batch).
pub(super) const RECORDS: TableDefinition<u64, (i64, &[u8])> =
    TableDefinition::new("journal_records");

/// Caller-owned durable counters (Sparkplug bdSeq and the like).
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta_u64");

/// The journal's own bookkeeping, kept apart from `META` so that no caller
/// key can collide with it.
pub(super) const STATE: TableDefinition<&str, u64> = TableDefinition::new("journal_state");

/// Next sequence number to hand out. Stored because the records table may be
/// empty after a full drain, and seqs must still never repeat across restarts.
pub(super) const STATE_NEXT_SEQ: &str = "next_seq";

/// Key and timestamp, counted with the payload so that a flood of tiny
/// records cannot slip past the byte bound.
const RECORD_OVERHEAD: u64 = 16;

/// Logical size of one record for the byte bound and `backlog()`.
pub(super) fn record_bytes(payload_len: usize) -> u64 {
    u64::try_from(payload_len)
        .unwrap_or(u64::MAX)
        .saturating_add(RECORD_OVERHEAD)
}

/// Wall clock in µs since the epoch, the unit of record timestamps. A clock
/// before 1970 reads as 0, which only makes the age bound lenient.
pub(super) fn now_micros() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    #[cfg(test)]
    let now = now.saturating_add(WALL_SHIFT.with(std::cell::Cell::get));
    now
}

#[cfg(test)]
thread_local! {
    /// How far a test has jumped this thread's wall clock, µs.
    pub(super) static WALL_SHIFT: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}
