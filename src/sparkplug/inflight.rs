//! Pairs rumqttc packet ids with what the node published, so a PUBACK can ack its journal
//! record. See the module docs of `sparkplug` for why FIFO order is sound.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a publish carried, for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Births, deaths of devices, node data: nothing to ack in the journal.
    Untracked,
    /// A journal record with this many samples.
    Record { seq: u64, samples: u32 },
    /// The explicit NDEATH at shutdown, whose PUBACK the node waits for.
    Death,
}

#[derive(Debug, Default)]
pub struct Inflight {
    /// Handed to rumqttc, not yet reported as `Outgoing::Publish`, with each payload's size.
    queued: VecDeque<(Track, usize)>,
    /// The payload bytes of `queued`.
    queued_bytes: usize,
    /// Written with a packet id, awaiting PUBACK.
    by_pkid: HashMap<u16, Track>,
    /// Journal seqs in either of the above, with when they were handed to rumqttc: a
    /// PUBACK then tells the publish latency.
    seqs: HashMap<u64, Instant>,
}

impl Inflight {
    /// A `try_publish` of a payload of `bytes` succeeded.
    pub fn queued(&mut self, track: Track, bytes: usize) {
        if let Track::Record { seq, .. } = track {
            self.seqs.insert(seq, Instant::now());
        }
        self.queued.push_back((track, bytes));
        self.queued_bytes += bytes;
    }

    /// Payload bytes handed to rumqttc and not yet written to the connection. rumqttc's
    /// request queue is bounded in requests, and one request may be the DDATA of a device
    /// of 20,000 registers (a quarter of a megabyte), so this is what bounds its memory.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// `Outgoing::Publish(pkid)`: returns the track when the publish is complete already
    /// (QoS 0 has pkid 0 and no PUBACK).
    pub fn written(&mut self, pkid: u16) -> Option<Track> {
        let (track, bytes) = self.queued.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(bytes);
        if pkid == 0 {
            let _ = self.forget(track);
            return Some(track);
        }
        // A pkid still mapped means its PUBACK never came, which rumqttc's collision
        // handling rules out; replacing it keeps the map bounded either way.
        if let Some(old) = self.by_pkid.insert(pkid, track) {
            let _ = self.forget(old);
        }
        None
    }

    /// `Incoming::PubAck(pkid)`: the track, and for a journal record the time from publish
    /// to PUBACK.
    pub fn acked(&mut self, pkid: u16) -> Option<(Track, Option<Duration>)> {
        let track = self.by_pkid.remove(&pkid)?;
        let latency = self.forget(track).map(|sent| sent.elapsed());
        Some((track, latency))
    }

    fn forget(&mut self, track: Track) -> Option<Instant> {
        match track {
            Track::Record { seq, .. } => self.seqs.remove(&seq),
            _ => None,
        }
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.seqs.contains_key(&seq)
    }

    /// Journal records not yet acknowledged.
    pub fn records(&self) -> usize {
        self.seqs.len()
    }

    /// The session ended: whatever was in flight stays in the journal and drains later.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.queued_bytes = 0;
        self.by_pkid.clear();
        self.seqs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_order_and_handles_qos0() {
        let mut f = Inflight::default();
        f.queued(Track::Untracked, 10);
        f.queued(Track::Record { seq: 7, samples: 2 }, 20);
        f.queued(Track::Record { seq: 8, samples: 1 }, 30);
        assert_eq!(f.queued_bytes(), 60);
        assert_eq!(f.written(0), Some(Track::Untracked));
        assert_eq!(f.queued_bytes(), 50);
        assert_eq!(f.written(1), None);
        assert_eq!(f.written(2), None);
        assert_eq!(f.queued_bytes(), 0, "written, only awaiting PUBACK");
        assert!(f.contains(7) && f.contains(8));
        let track = |a: Option<(Track, Option<Duration>)>| a.map(|(t, _)| t);
        let (acked, latency) = f.acked(2).expect("pkid 2");
        assert_eq!(acked, Track::Record { seq: 8, samples: 1 });
        assert!(
            latency.is_some(),
            "a journal record's PUBACK measures latency"
        );
        assert_eq!(track(f.acked(2)), None);
        assert_eq!(
            track(f.acked(1)),
            Some(Track::Record { seq: 7, samples: 2 })
        );
        assert_eq!(f.records(), 0);
        // Unsolicited events are ignored.
        assert_eq!(f.written(5), None);
        assert_eq!(track(f.acked(9)), None);
    }
}
