//! What `uaedge history` prints: one tag's stored samples in a time range, read from the
//! file alone (beside a running service, whose commits it sees), as CSV or JSON.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use uaedge_driver::Value;

use crate::model::json::{Rfc3339, ValueJson};

use super::chunk::{self, Point};
use super::store::{HistoryError, ReadOnlyStore};
use super::wal::replay;

/// Why an export did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] HistoryError),
    #[error("the history file holds no tag `{tag}` (it has {known} tags; `uaedge tags` lists the configured ones)")]
    UnknownTag { tag: String, known: usize },
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Every sample of `tag` with `from ≤ time ≤ to` (µs), oldest first: the chunks, and the
/// samples the intake log holds that no chunk does yet.
pub fn read(path: &Path, tag: &str, from: i64, to: i64) -> Result<Vec<Point>, ExportError> {
    let store = ReadOnlyStore::open(path)?;
    let series = store.series()?;
    let known = series.len();
    let id = series
        .into_iter()
        .find(|(p, _)| p == tag)
        .map(|(_, id)| id)
        .ok_or_else(|| ExportError::UnknownTag {
            tag: tag.to_string(),
            known,
        })?;
    let mut points = Vec::new();
    let mut damaged = 0usize;
    store.visit_chunks(id, from, to, &mut |_, bytes| {
        match chunk::decode(bytes) {
            Ok(decoded) => points.extend(
                decoded
                    .into_iter()
                    .filter(|p| p.time >= from && p.time <= to),
            ),
            Err(_) => damaged += 1,
        }
        ControlFlow::Continue(())
    })?;
    if damaged > 0 {
        tracing::warn!(
            tag,
            chunks = damaged,
            "history chunks unreadable; their samples are left out"
        );
    }
    let recovered = store.recover()?;
    let through: HashMap<u32, (u64, u32)> = recovered
        .heads
        .iter()
        .map(|(id, head)| (*id, head.through))
        .collect();
    replay(&recovered.log, &through, |_, s| {
        if s.series == id && s.time >= from && s.time <= to {
            points.push(Point {
                time: s.time,
                value: s.value,
                quality: s.quality,
            });
        }
    });
    points.sort_by_key(|p| p.time);
    Ok(points)
}

/// RFC 3339 in UTC with µs ([`Rfc3339`]).
pub(crate) fn rfc3339(us: i64) -> String {
    Rfc3339(us).to_string()
}

/// A value as JSON ([`ValueJson`]), for bodies built as `serde_json::Value`: the text is
/// read back so that a float32 keeps its shortest digits (0.1, not 0.10000000149011612).
pub(crate) fn json_value(v: &Option<Value>) -> serde_json::Value {
    serde_json::to_string(&ValueJson(v))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// `time,value,quality` with a header; text values quoted as CSV quotes them.
pub fn write_csv(out: &mut impl Write, points: &[Point]) -> std::io::Result<()> {
    writeln!(out, "time,value,quality")?;
    for p in points {
        let value = match &p.value {
            None => String::new(),
            Some(Value::String(s)) => format!("\"{}\"", s.replace('"', "\"\"")),
            Some(v) => match json_value(&Some(v.clone())) {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
        };
        writeln!(out, "{},{},{}", rfc3339(p.time), value, p.quality)?;
    }
    Ok(())
}

/// One JSON object a line: `{"time", "time_us", "value", "quality"}`.
pub fn write_json(out: &mut impl Write, points: &[Point]) -> std::io::Result<()> {
    for p in points {
        let line = serde_json::json!({
            "time": rfc3339(p.time),
            "time_us": p.time,
            "value": json_value(&p.value),
            "quality": p.quality.to_string(),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A time as `uaedge history` takes it: RFC 3339 (`2026-12-06T16:00:00Z`), `now`, or a
/// duration before now (`-2h`, `-30m`, `-1d`).
pub fn parse_time(s: &str, now_us: i64) -> Result<i64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_us);
    }
    if let Some(ago) = s.strip_prefix('-') {
        let d: uaedge_driver::Duration = ago.parse()?;
        let us = i64::try_from(d.get().as_micros()).unwrap_or(i64::MAX);
        return Ok(now_us.saturating_sub(us));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("invalid time `{s}` ({e}): expected RFC 3339 like 2026-12-06T16:00:00Z, `now`, or `-2h`"))
}
