//! Which values a raw HistoryRead (Part 11, 6.5.3) returns, page by page, as a pure
//! function of the stored samples, so that Part 11's Table 1 can be checked directly.
//!
//! A read walks from its first time `a` (included) towards its second `b` (excluded, or
//! open). Forward when `startTime < endTime`; backward (newest first) when `startTime` is
//! the later one, or when only `endTime` is given. With bounds, the walk is framed by the
//! value at or before `a` (after, backward) and the value at or after `b` (before,
//! backward); a bound that does not exist is a Bad_BoundNotFound entry at `a` or `b`, or,
//! with an open end, one second past the last value. Bounds count toward
//! `numValuesPerNode`. Samples that share a timestamp are one value in OPC UA: the newest
//! is returned, with the ExtraData bit.

use crate::history::chunk::Point;
use crate::history::RawRead;

/// One second in µs: where a missing bound of an open-ended read is placed (Part 11 Table
/// 1, notes a and b).
const OPEN_BOUND_STEP: i64 = 1_000_000;

/// A raw read as the request states it, times in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPlan {
    /// Where the walk starts (included).
    pub a: i64,
    /// Where it stops (excluded); `None` when open.
    pub b: Option<i64>,
    /// `a == b`: the values exactly at `a`.
    pub at_one_time: bool,
    pub reverse: bool,
    /// `numValuesPerNode`, 0 for no limit.
    pub n: usize,
    pub bounds: bool,
}

/// What a page holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEntry {
    /// A stored sample; `extra` when others share its timestamp.
    Value { point: Point, extra: bool },
    /// A bound that does not exist, at this time.
    BoundNotFound(i64),
}

impl RawEntry {
    fn time(&self) -> i64 {
        match self {
            RawEntry::Value { point, .. } => point.time,
            RawEntry::BoundNotFound(t) => *t,
        }
    }
}

/// Where the next page goes on: after `last` (a value's time) in the walk's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCursor {
    pub last: i64,
}

/// Reads stored samples: `(from, to, reverse, limit)`, both ends included.
pub trait Samples {
    type Error;
    fn read(&self, from: i64, to: i64, reverse: bool, limit: usize)
        -> Result<RawRead, Self::Error>;
}

/// Up to `room` values of the walk from `from` (included) to `to`, one per timestamp.
/// `more` when values remain.
fn walk<S: Samples>(
    s: &S,
    from: i64,
    to: i64,
    reverse: bool,
    room: usize,
) -> Result<(Vec<RawEntry>, bool), S::Error> {
    if from > to {
        return Ok((Vec::new(), false));
    }
    if room == 0 {
        return Ok((Vec::new(), s.read(from, to, reverse, 0)?.more));
    }
    let mut extra = 16usize;
    loop {
        let got = s.read(from, to, reverse, room.saturating_add(extra))?;
        let mut out: Vec<RawEntry> = Vec::with_capacity(room.min(got.points.len()));
        for p in got.points.iter() {
            match out.last_mut() {
                Some(RawEntry::Value { point, extra }) if point.time == p.time => {
                    // Forward, the later arrival is the newer; backward the first seen is.
                    if !reverse {
                        *point = p.clone();
                    }
                    *extra = true;
                }
                _ => out.push(RawEntry::Value {
                    point: p.clone(),
                    extra: false,
                }),
            }
        }
        if out.len() > room {
            out.truncate(room);
            return Ok((out, true));
        }
        if !got.more {
            return Ok((out, false));
        }
        // The last timestamp's run may go on past what was read: read more.
        extra = extra.saturating_mul(4);
    }
}

fn first<S: Samples>(
    s: &S,
    from: i64,
    to: i64,
    reverse: bool,
) -> Result<Option<RawEntry>, S::Error> {
    Ok(walk(s, from, to, reverse, 1)?.0.into_iter().next())
}

/// One page. `cursor` is `None` for the first page. Returns the page and, when the read
/// goes on, where.
pub fn raw_page<S: Samples>(
    s: &S,
    plan: &RawPlan,
    cursor: Option<RawCursor>,
    max_page: usize,
) -> Result<(Vec<RawEntry>, Option<RawCursor>), S::Error> {
    let limit = if plan.n == 0 {
        max_page
    } else {
        plan.n.min(max_page)
    };
    // One-ended reads stop after `n` values; two-ended ones page through the range.
    let pages = plan.b.is_some() || plan.n == 0;
    let mut out = Vec::new();
    // The walk's stored range, inclusive, in time order.
    let (lo, hi) = match (plan.reverse, plan.b, plan.at_one_time) {
        (_, _, true) => (plan.a, plan.a),
        (false, Some(b), _) => (plan.a, b.saturating_sub(1)),
        (false, None, _) => (plan.a, i64::MAX),
        (true, Some(b), _) => (b.saturating_add(1), plan.a),
        (true, None, _) => (i64::MIN, plan.a),
    };
    // What is left of it after the cursor.
    let (lo, hi) = match cursor {
        None => (lo, hi),
        Some(c) if plan.reverse => (lo, c.last.saturating_sub(1)),
        Some(c) => (c.last.saturating_add(1), hi),
    };
    if cursor.is_none() && plan.bounds {
        let exact = first(s, plan.a, plan.a, plan.reverse)?;
        if exact.is_none() {
            let before = if plan.reverse {
                first(s, plan.a.saturating_add(1), i64::MAX, false)?
            } else {
                first(s, i64::MIN, plan.a.saturating_sub(1), true)?
            };
            out.push(before.unwrap_or(RawEntry::BoundNotFound(plan.a)));
        }
    }
    let room = limit.saturating_sub(out.len());
    let (values, more) = walk(s, lo, hi, plan.reverse, room)?;
    out.extend(values);
    if more && pages {
        let last = out.last().map_or(plan.a, RawEntry::time);
        return Ok((out, Some(RawCursor { last })));
    }
    if more || !plan.bounds || out.len() >= limit {
        return Ok((out, None));
    }
    // The end bound.
    let bound = match plan.b {
        Some(b) if plan.at_one_time => {
            first(s, b.saturating_add(1), i64::MAX, false)?.unwrap_or(RawEntry::BoundNotFound(b))
        }
        Some(b) if plan.reverse => {
            first(s, i64::MIN, b, true)?.unwrap_or(RawEntry::BoundNotFound(b))
        }
        Some(b) => first(s, b, i64::MAX, false)?.unwrap_or(RawEntry::BoundNotFound(b)),
        None => {
            // The walk ran out of data: the bound past it does not exist.
            let last = out.last().map_or(plan.a, RawEntry::time);
            RawEntry::BoundNotFound(if plan.reverse {
                last.saturating_sub(OPEN_BOUND_STEP)
            } else {
                last.saturating_add(OPEN_BOUND_STEP)
            })
        }
    };
    out.push(bound);
    Ok((out, None))
}

#[cfg(test)]
#[path = "history_raw_tests.rs"]
mod tests;
