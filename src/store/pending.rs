//! The in-memory write-behind buffer: appends not yet committed.
//!
//! Seqs are handed out contiguously, so a deque indexed by `seq - base` gives
//! O(1) append and O(1) ack; an ack leaves a tombstone (`None`) that the next
//! commit skips, which is how an early PUBACK keeps a record off the disk.
//! A commit takes the whole buffer with it (see `commit.rs`); one that fails
//! hands it back and it goes in front of what arrived meanwhile.

use std::collections::VecDeque;

use super::tables::record_bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingRecord {
    pub ts: i64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Seq of `items[0]`; equals the journal's next seq when empty.
    base: u64,
    items: VecDeque<Option<PendingRecord>>,
    live_records: u64,
    live_bytes: u64,
}

impl Pending {
    pub fn new(base: u64) -> Self {
        Self {
            base,
            items: VecDeque::new(),
            live_records: 0,
            live_bytes: 0,
        }
    }

    /// Lowest seq that can still be pending; everything below it was
    /// committed, dropped or cancelled.
    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn live_records(&self) -> u64 {
        self.live_records
    }

    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Whether nothing, not even a tombstone, is buffered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Buffers a record; the caller guarantees `seq` is the next one.
    pub fn push(&mut self, seq: u64, ts: i64, payload: Vec<u8>) {
        debug_assert_eq!(seq, self.end());
        self.live_records += 1;
        self.live_bytes += record_bytes(payload.len());
        self.items.push_back(Some(PendingRecord { ts, payload }));
    }

    /// One past the last buffered seq.
    pub fn end(&self) -> u64 {
        self.base + self.items.len() as u64
    }

    /// The record `seq`, if buffered and not cancelled.
    pub fn get(&self, seq: u64) -> Option<&PendingRecord> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.items.get(index)?.as_ref()
    }

    /// Puts `later` (the buffer that filled while this one was being
    /// committed) behind this one. Seqs that `later` dropped off its front in
    /// the meantime become tombstones, so that every seq keeps its slot.
    pub fn append(&mut self, later: Pending) {
        debug_assert!(later.base >= self.end());
        while self.end() < later.base {
            self.items.push_back(None);
        }
        self.items.extend(later.items);
        self.live_records += later.live_records;
        self.live_bytes += later.live_bytes;
    }

    fn slot(&mut self, seq: u64) -> Option<&mut Option<PendingRecord>> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.items.get_mut(index)
    }

    /// Cancels a buffered record; false if it is not (or no longer) here.
    pub fn cancel(&mut self, seq: u64) -> bool {
        let Some(slot) = self.slot(seq) else {
            return false;
        };
        let Some(record) = slot.take() else {
            return false;
        };
        self.live_records -= 1;
        self.live_bytes -= record_bytes(record.payload.len());
        true
    }

    /// Drops the oldest live record (the buffer outgrew the byte bound while
    /// commits were failing). Returns its logical size.
    pub fn drop_oldest(&mut self) -> Option<u64> {
        while let Some(front) = self.items.pop_front() {
            self.base += 1;
            if let Some(record) = front {
                let bytes = record_bytes(record.payload.len());
                self.live_records -= 1;
                self.live_bytes -= bytes;
                return Some(bytes);
            }
        }
        None
    }

    /// Live records in seq order, without removing them: a commit only
    /// clears the buffer once redb has reported success.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &PendingRecord)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .filter_map(move |(i, slot)| slot.as_ref().map(|r| (base + i as u64, r)))
    }

    /// Forgets everything up to the current end after a successful commit.
    pub fn clear(&mut self) {
        self.base = self.end();
        self.items.clear();
        self.live_records = 0;
        self.live_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_leaves_tombstone_and_keeps_order() {
        let mut p = Pending::new(10);
        for seq in 10..15 {
            p.push(seq, seq as i64, vec![0; 4]);
        }
        assert!(p.cancel(12));
        assert!(!p.cancel(12), "second ack of the same seq is a no-op");
        assert!(!p.cancel(9) && !p.cancel(15));
        let seqs: Vec<u64> = p.iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [10, 11, 13, 14]);
        assert_eq!(p.live_records(), 4);
        assert_eq!(p.live_bytes(), 4 * record_bytes(4));
        p.clear();
        assert_eq!(p.base(), 15);
        assert!(p.is_empty());
    }

    #[test]
    fn drop_oldest_skips_tombstones() {
        let mut p = Pending::new(0);
        for seq in 0..3 {
            p.push(seq, 0, vec![1; 8]);
        }
        assert!(p.cancel(0));
        assert_eq!(p.drop_oldest(), Some(record_bytes(8)));
        assert_eq!(p.base(), 2);
        assert_eq!(p.iter().map(|(s, _)| s).collect::<Vec<_>>(), [2]);
        assert_eq!(p.drop_oldest(), Some(record_bytes(8)));
        assert_eq!(p.drop_oldest(), None);
        assert_eq!(p.live_records(), 0);
    }

    #[test]
    fn append_keeps_every_seq_in_its_slot() {
        let mut first = Pending::new(1);
        for seq in 1..4 {
            first.push(seq, 0, vec![seq as u8; 4]);
        }
        assert!(first.cancel(2));
        // The later buffer lost its two oldest to the byte bound.
        let mut later = Pending::new(4);
        for seq in 4..8 {
            later.push(seq, 0, vec![seq as u8; 4]);
        }
        later.drop_oldest();
        later.drop_oldest();
        first.append(later);
        let seqs: Vec<u64> = first.iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [1, 3, 6, 7]);
        assert_eq!(first.end(), 8);
        assert_eq!(first.live_records(), 4);
        assert_eq!(first.live_bytes(), 4 * record_bytes(4));
        assert_eq!(first.get(6).map(|r| r.payload[0]), Some(6));
        assert!(first.get(2).is_none() && first.get(5).is_none() && first.get(8).is_none());
        assert!(first.cancel(7));
        assert!(!first.cancel(4));
    }
}
