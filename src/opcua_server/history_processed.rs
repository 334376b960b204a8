//! HistoryRead of processed values (ReadProcessedDetails, Part 11 6.5.4) and of values at
//! given times (ReadAtTimeDetails, 6.5.5), computed by `aggregates.rs` from the raw
//! history around the range.

use opcua::server::node_manager::{HistoryNode, RequestContext};
use opcua::server::ContinuationPoint;
use opcua::types::{
    DataValue, HistoryData, NodeId, ReadAtTimeDetails, ReadProcessedDetails, StatusCode,
    TimestampsToReturn,
};
use uaedge_driver::DataType;

use super::aggregates::{self, Aggregate, Interval, Intervals, Raw};
use super::history_read::{check_timestamps, micros, MAX_VALUES_PER_NODE};
use super::node_manager::ModelNodeManager;
use crate::history::chunk::Point;
use crate::history::History;

/// Raw samples one page of a processed read may hold in memory; the page ends early
/// (at an interval boundary) where more would be needed.
const MAX_RAW_PER_PAGE: usize = 1_000_000;
/// Samples read beyond each end of a page to find the usable neighbours interpolation needs.
const NEIGHBOURS: usize = 256;

/// Where a paged processed read continues.
#[derive(Debug, Clone)]
struct ProcessedContinuation {
    node: NodeId,
    plan: Intervals,
    aggregate: Aggregate,
    next: u64,
}

fn read(
    history: &History,
    path: &str,
    (from, to): (i64, i64),
    reverse: bool,
    limit: usize,
) -> Result<crate::history::RawRead, StatusCode> {
    history
        .read_raw(path, from, to, reverse, limit)
        .map_err(|e| {
            tracing::warn!(tag = path, error = %e, "history read failed");
            StatusCode::BadHistoryOperationInvalid
        })
        .map(Option::unwrap_or_default)
}

/// The first and last stored sample times: intervals outside them have no data.
fn data_range(history: &History, path: &str) -> Result<(Option<i64>, Option<i64>), StatusCode> {
    let all = (i64::MIN, i64::MAX);
    let first = read(history, path, all, false, 1)?
        .points
        .first()
        .map(|p| p.time);
    let last = read(history, path, all, true, 1)?
        .points
        .first()
        .map(|p| p.time);
    Ok((first, last))
}

/// The raw history `[lo, hi]` needs: the samples inside, and neighbours around it to
/// interpolate from; one sample per time (the newest). `true` when the inside was cut
/// short at [`MAX_RAW_PER_PAGE`].
fn raw_around(
    history: &History,
    path: &str,
    lo: i64,
    hi: i64,
) -> Result<(Vec<Point>, bool), StatusCode> {
    let mut before = read(
        history,
        path,
        (i64::MIN, lo.saturating_sub(1)),
        true,
        NEIGHBOURS,
    )?
    .points;
    before.reverse();
    let inside = read(history, path, (lo, hi), false, MAX_RAW_PER_PAGE)?;
    let after = read(
        history,
        path,
        (hi.saturating_add(1), i64::MAX),
        false,
        NEIGHBOURS,
    )?
    .points;
    let mut points = before;
    points.extend(inside.points);
    points.extend(after);
    // Samples sharing a time are one value in OPC UA: the newest (`dedup_by` keeps the
    // earlier of two equal ones, so the later is moved into its place first).
    points.dedup_by(|later, earlier| {
        let same = later.time == earlier.time;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    Ok((points, inside.more))
}

/// Which aggregate each node asks for. async-opcua hands a node manager its nodes without
/// their places in the request, so the list maps only where that cannot be ambiguous: one
/// aggregate for all, or as many as this manager has nodes (every node is ours, in order).
fn aggregates_for(details: &ReadProcessedDetails, nodes: usize) -> Result<Vec<NodeId>, StatusCode> {
    let list = details.aggregate_type.clone().unwrap_or_default();
    match list.as_slice() {
        [] => Err(StatusCode::BadAggregateListMismatch),
        [one] => Ok(vec![one.clone(); nodes]),
        many if many.iter().all(|a| *a == many[0]) => Ok(vec![many[0].clone(); nodes]),
        many if many.len() == nodes => Ok(many.to_vec()),
        _ => Err(StatusCode::BadAggregateListMismatch),
    }
}

/// One page of a processed read, from interval `next` on.
fn processed_page(
    history: &History,
    path: &str,
    data_type: DataType,
    aggregate: Aggregate,
    plan: &Intervals,
    next: u64,
    cfg: &aggregates::Config,
) -> Result<(Vec<DataValue>, Option<u64>), StatusCode> {
    let end = plan
        .count
        .min(next.saturating_add(MAX_VALUES_PER_NODE as u64));
    if next >= end {
        return Ok((Vec::new(), None));
    }
    let (a, b) = (plan.get(next), plan.get(end - 1));
    let (lo, hi) = (a.lo.min(b.lo), a.hi.max(b.hi));
    let (first, last) = data_range(history, path)?;
    let (points, cut) = raw_around(history, path, lo, hi)?;
    // Past what was read, intervals wait for the next page.
    let read_to = if cut {
        points
            .iter()
            .rev()
            .find(|p| p.time <= hi)
            .map_or(lo, |p| p.time)
    } else {
        hi
    };
    let raw = Raw {
        points: &points,
        first,
        last,
        stepped: matches!(data_type, DataType::Boolean | DataType::String),
        textual: data_type == DataType::String,
    };
    let mut values = Vec::new();
    let mut k = next;
    while k < end {
        let iv: Interval = plan.get(k);
        let complete = iv.hi < read_to || !cut;
        if !complete && !values.is_empty() {
            break;
        }
        values.push(raw.compute(aggregate, &iv, cfg));
        k += 1;
    }
    Ok((values, (k < plan.count).then_some(k)))
}

impl ModelNodeManager {
    pub(super) async fn history_processed(
        &self,
        context: &RequestContext,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut HistoryNode],
        ttr: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        check_timestamps(ttr)?;
        let (Some(start), Some(end)) = (micros(&details.start_time), micros(&details.end_time))
        else {
            return Err(StatusCode::BadInvalidTimestampArgument);
        };
        if start == end {
            return Err(StatusCode::BadInvalidArgument);
        }
        if !details.processing_interval.is_finite() || details.processing_interval < 0.0 {
            return Err(StatusCode::BadInvalidArgument);
        }
        let step = (details.processing_interval * 1000.0)
            .round()
            .min(i64::MAX as f64) as i64;
        let plan = Intervals::new(start, end, step);
        let cfg = aggregates::config(&details.aggregate_configuration)?;
        let wanted = aggregates_for(details, nodes.len())?;
        for (node, aggregate_id) in nodes.iter_mut().zip(wanted) {
            let Some(aggregate) = Aggregate::of(&aggregate_id) else {
                node.set_status(StatusCode::BadAggregateNotSupported);
                continue;
            };
            let (history, def) = match self.history_target(context, node.node_id()) {
                Ok(t) => t,
                Err(status) => {
                    node.set_status(status);
                    continue;
                }
            };
            let next = match node.continuation_point() {
                None => 0,
                Some(cp) => match cp.get::<ProcessedContinuation>() {
                    Some(c)
                        if &c.node == node.node_id()
                            && c.plan == plan
                            && c.aggregate == aggregate =>
                    {
                        c.next
                    }
                    _ => {
                        node.set_status(StatusCode::BadContinuationPointInvalid);
                        continue;
                    }
                },
            };
            let page = tokio::task::spawn_blocking(move || {
                processed_page(&history, &def.0, def.1, aggregate, &plan, next, &cfg)
            })
            .await
            .unwrap_or(Err(StatusCode::BadInternalError));
            match page {
                Ok((values, more)) => {
                    if let Some(next) = more {
                        let cont = ProcessedContinuation {
                            node: node.node_id().clone(),
                            plan,
                            aggregate,
                            next,
                        };
                        node.set_next_continuation_point(Some(ContinuationPoint::new(Box::new(
                            cont,
                        ))));
                    }
                    node.set_result(HistoryData {
                        data_values: Some(values),
                    });
                    node.set_status(StatusCode::Good);
                }
                Err(status) => node.set_status(status),
            }
        }
        Ok(())
    }

    /// ReadAtTime: per requested time (in the request's order), the value there, or the
    /// one interpolated to it (Interpolative's rules); with simple bounds, stepped.
    pub(super) async fn history_at_time(
        &self,
        context: &RequestContext,
        details: &ReadAtTimeDetails,
        nodes: &mut [&mut HistoryNode],
        ttr: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        check_timestamps(ttr)?;
        let times: Vec<i64> = details
            .req_times
            .iter()
            .flatten()
            .map(|t| micros(t).unwrap_or(i64::MIN))
            .collect();
        if times.is_empty() {
            return Err(StatusCode::BadNothingToDo);
        }
        if times.len() > MAX_VALUES_PER_NODE {
            return Err(StatusCode::BadTooManyOperations);
        }
        let simple = details.use_simple_bounds;
        for node in nodes.iter_mut() {
            if node.continuation_point().is_some() {
                // Every answer fits one response: no point was ever handed out.
                node.set_status(StatusCode::BadContinuationPointInvalid);
                continue;
            }
            let (history, def) = match self.history_target(context, node.node_id()) {
                Ok(t) => t,
                Err(status) => {
                    node.set_status(status);
                    continue;
                }
            };
            let times = times.clone();
            let values = tokio::task::spawn_blocking(move || {
                let range = data_range(&history, &def.0)?;
                times
                    .iter()
                    .map(|&t| value_at(&history, &def.0, def.1, t, simple, range))
                    .collect::<Result<Vec<DataValue>, StatusCode>>()
            })
            .await
            .unwrap_or(Err(StatusCode::BadInternalError));
            match values {
                Ok(values) => {
                    node.set_result(HistoryData {
                        data_values: Some(values),
                    });
                    node.set_status(StatusCode::Good);
                }
                Err(status) => node.set_status(status),
            }
        }
        Ok(())
    }
}

/// The value at `t`: Interpolative over a one-µs interval at `t`; simple bounds use the
/// samples around `t` even when Bad (Part 13 3.1.9). Boolean and String values are held
/// from the sample at or before `t`.
fn value_at(
    history: &History,
    path: &str,
    data_type: DataType,
    t: i64,
    simple: bool,
    (first, last): (Option<i64>, Option<i64>),
) -> Result<DataValue, StatusCode> {
    let (points, _) = raw_around(history, path, t, t)?;
    if matches!(data_type, DataType::Boolean | DataType::String) {
        return Ok(held_at(&points, t));
    }
    let raw = Raw {
        points: &points,
        first,
        last,
        stepped: simple,
        textual: false,
    };
    let cfg = if simple {
        aggregates::Config {
            treat_uncertain_as_bad: false,
            ..aggregates::DEFAULTS
        }
    } else {
        aggregates::DEFAULTS
    };
    let iv = Interval {
        lo: t,
        hi: t,
        stamp: t,
    };
    Ok(raw.compute(Aggregate::Interpolative, &iv, &cfg))
}

/// A value that cannot be interpolated: the stored one at `t`, else the one before it
/// (Interpolated, and Uncertain past the last sample); none before: Bad_NoData.
fn held_at(points: &[Point], t: i64) -> DataValue {
    use opcua::types::{StatusCodeInfoType, StatusCodeValueType};
    let i = points.partition_point(|p| p.time <= t);
    let time = Some(super::convert::date_time(uaedge_driver::Timestamp(t)));
    let Some(p) = i.checked_sub(1).and_then(|j| points.get(j)) else {
        return DataValue {
            status: Some(StatusCode::BadNoData),
            source_timestamp: time,
            ..Default::default()
        };
    };
    let (severity, kind) = if p.time == t {
        (
            super::convert::status_code(p.quality),
            StatusCodeValueType::Raw,
        )
    } else if i == points.len() || !p.quality.is_good() {
        (
            StatusCode::UncertainDataSubNormal,
            StatusCodeValueType::Interpolated,
        )
    } else {
        (StatusCode::Good, StatusCodeValueType::Interpolated)
    };
    let code = severity
        .set_info_type(StatusCodeInfoType::DataValue)
        .set_value_type(kind);
    DataValue {
        value: if code.is_bad() {
            None
        } else {
            p.value.as_ref().map(super::convert::variant)
        },
        status: Some(code),
        source_timestamp: time,
        ..Default::default()
    }
}
