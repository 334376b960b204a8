//! Raw reads: the samples of one tag in a time range, from the file and from memory (the
//! open chunk and chunks whose commit is still in flight), oldest or newest first.

use std::collections::HashMap;
use std::ops::ControlFlow;

use tracing::warn;

use std::sync::Arc;

use super::chunk::{self, Point};
use super::store::ChunkKey;
use super::{History, HistoryError, PendingEvent};
use crate::conditions::EventRecord;

/// What [`History::read_raw`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRead {
    /// In time order (newest first for a reverse read); samples with equal times keep the
    /// order they arrived in.
    pub points: Vec<Point>,
    /// More samples lie in the range past the last one returned.
    pub more: bool,
}

impl History {
    /// Samples of `path` with `from ≤ time ≤ to`, at most `limit`, oldest first (newest
    /// first when `reverse`). `None` when the historian has never kept `path`.
    pub fn read_raw(
        &self,
        path: &str,
        from: i64,
        to: i64,
        reverse: bool,
        limit: usize,
    ) -> Result<Option<RawRead>, HistoryError> {
        let Some(series) = self.series_of(path) else {
            return Ok(None);
        };
        if from > to {
            return Ok(Some(RawRead::default()));
        }
        // Memory first: a chunk that reaches the file after this copy is found there with
        // the same key (or more samples), and memory's copy wins only where it is newer.
        let unstored: HashMap<ChunkKey, std::sync::Arc<[u8]>> =
            (self.mems.lock().get(series as usize))
                .map(|m| m.unstored().into_iter().collect())
                .unwrap_or_default();
        let mut points: Vec<Point> = Vec::new();
        let mut cutoff: Option<i64> = None;
        let take = |key: ChunkKey, bytes: &[u8], points: &mut Vec<Point>| match chunk::decode(bytes)
        {
            Ok(decoded) => points.extend(
                decoded
                    .into_iter()
                    .filter(|p| p.time >= from && p.time <= to),
            ),
            Err(e) => {
                warn!(tag = path, first = key.first, error = %e, "history chunk unreadable; its samples are skipped")
            }
        };
        let mut visit = |key: ChunkKey, bytes: &[u8]| {
            // Past the cutoff no chunk can hold a sample among the first `limit`.
            if let Some(c) = cutoff {
                let beyond = if reverse {
                    chunk::peek(bytes).is_ok_and(|m| m.last < c)
                } else {
                    key.first > c
                };
                if beyond {
                    return ControlFlow::Break(());
                }
            }
            if !unstored.contains_key(&key) {
                take(key, bytes, &mut points);
            }
            if points.len() > limit {
                order(&mut points, reverse);
                points.truncate(limit + 1);
                cutoff = points.last().map(|p| p.time);
            }
            ControlFlow::Continue(())
        };
        self.store
            .visit_chunks(series, from, to, reverse, &mut visit)?;
        for (key, bytes) in &unstored {
            take(*key, bytes, &mut points);
        }
        order(&mut points, reverse);
        let more = points.len() > limit;
        points.truncate(limit);
        Ok(Some(RawRead { points, more }))
    }
}

/// Stable, so equal times keep their arrival order (chunks are visited in key order).
fn order(points: &mut [Point], reverse: bool) {
    if reverse {
        points.reverse();
        points.sort_by_key(|p| std::cmp::Reverse(p.time));
    } else {
        points.sort_by_key(|p| p.time);
    }
}

/// What [`History::read_events`] found: (time, seq, event), in the order asked for.
#[derive(Debug, Clone, Default)]
pub struct EventRead {
    pub events: Vec<(i64, u64, Arc<EventRecord>)>,
    pub more: bool,
}

impl History {
    /// Condition events with `from ≤ time ≤ to` that `keep` accepts, at most `limit`,
    /// oldest first (newest first when `reverse`); `after` resumes past an event
    /// (time, seq) an earlier page returned.
    pub fn read_events(
        &self,
        from: i64,
        to: i64,
        reverse: bool,
        limit: usize,
        after: Option<(i64, u64)>,
        keep: &dyn Fn(&EventRecord) -> bool,
    ) -> Result<EventRead, HistoryError> {
        let past = |key: (i64, u64)| match after {
            None => true,
            Some(a) if reverse => key < a,
            Some(a) => key > a,
        };
        let pending: Vec<PendingEvent> = self.pending_events.lock().clone();
        let mut found: Vec<(i64, u64, Arc<EventRecord>)> = Vec::new();
        let mut damaged = 0usize;
        self.store
            .visit_events(from, to, reverse, &mut |time, seq, bytes| {
                if !past((time, seq)) {
                    return ControlFlow::Continue(());
                }
                match EventRecord::decode(bytes) {
                    Ok(r) if keep(&r) => found.push((time, seq, Arc::new(r))),
                    Ok(_) => {}
                    Err(_) => damaged += 1,
                }
                // Pending events are newer than most stored ones; read a little past the limit.
                if found.len() > limit + pending.len() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        if damaged > 0 {
            warn!(
                events = damaged,
                "stored condition events unreadable; they are left out"
            );
        }
        for e in pending {
            let key = (e.time, e.seq);
            let inside = e.time >= from && e.time <= to && past(key);
            if inside && keep(&e.record) && !found.iter().any(|f| f.1 == e.seq) {
                found.push((e.time, e.seq, e.record));
            }
        }
        found.sort_by_key(|e| (e.0, e.1));
        if reverse {
            found.reverse();
        }
        let more = found.len() > limit;
        found.truncate(limit);
        Ok(EventRead {
            events: found,
            more,
        })
    }
}
