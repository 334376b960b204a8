//! HistoryRead of tag values (OPC UA Part 11) from the historian (`crate::history`): the
//! service side (requests, access, continuation points, DataValues); which values a raw
//! read returns is `history_raw.rs`.
//!
//! A page holds at most `numValuesPerNode` values and never more than
//! [`MAX_VALUES_PER_NODE`]; a continuation point carries the request it belongs to and
//! where it stopped (timestamps are unique in what a raw read returns, so the last one
//! returned is enough).

use std::sync::Arc;

use opcua::server::address_space::AccessLevel;
use opcua::server::node_manager::{HistoryNode, RequestContext};
use opcua::server::ContinuationPoint;
use opcua::types::{
    DataValue, DateTime, HistoryData, NodeId, ReadRawModifiedDetails, StatusCode,
    StatusCodeInfoType, TimestampsToReturn,
};

use super::address_space::UaNode;
use super::convert;
use super::history_raw::{raw_page, RawCursor, RawEntry, RawPlan, Samples};
use super::node_manager::ModelNodeManager;
use crate::history::chunk::Point;
use crate::history::{History, RawRead};

/// Values one node returns per HistoryRead at most; more come through continuation points.
/// One day of a 1 s tag fits one page.
pub const MAX_VALUES_PER_NODE: usize = 100_000;

/// Where a paged raw read continues, with the request it belongs to: a client must send
/// the same details with it (Part 11, 6.3).
#[derive(Debug, Clone)]
struct RawContinuation {
    node: NodeId,
    plan: RawPlan,
    cursor: RawCursor,
}

/// µs since the epoch of an OPC UA time (a time between two µs counts as the µs after it,
/// so that no stored value before the requested time is taken in); `None` for the null
/// time, which means unspecified.
pub(super) fn micros(t: &DateTime) -> Option<i64> {
    if t.is_null() {
        return None;
    }
    let us = convert::timestamp(t).as_micros();
    let exact =
        convert::date_time(uaedge_driver::Timestamp(us)).checked_ticks() == t.checked_ticks();
    Some(if exact { us } else { us.saturating_add(1) })
}

/// Part 11's rules for which values a ReadRawModifiedDetails names (6.5.3.2).
pub fn plan_raw(d: &ReadRawModifiedDetails) -> Result<RawPlan, StatusCode> {
    if d.is_read_modified {
        // Stored values are never replaced: there is no modified history to read.
        return Err(StatusCode::BadHistoryOperationUnsupported);
    }
    let n = d.num_values_per_node as usize;
    let (start, end) = (micros(&d.start_time), micros(&d.end_time));
    let (a, b, reverse) = match (start, end) {
        // Two of start, end and a count are needed.
        (None, None) => return Err(StatusCode::BadInvalidTimestampArgument),
        (Some(_), None) | (None, Some(_)) if n == 0 => {
            return Err(StatusCode::BadInvalidTimestampArgument)
        }
        (Some(s), None) => (s, None, false),
        (None, Some(e)) => (e, None, true),
        (Some(s), Some(e)) => (s, Some(e), s > e),
    };
    Ok(RawPlan {
        a,
        b,
        at_one_time: start.is_some() && start == end,
        reverse,
        n,
        bounds: d.return_bounds,
    })
}

/// What the historian keeps of timestamps: source times only. Both gets them (the server
/// timestamp left out, as Part 11 4.5 allows); Server alone cannot be answered.
pub fn check_timestamps(ttr: TimestampsToReturn) -> Result<(), StatusCode> {
    match ttr {
        TimestampsToReturn::Source | TimestampsToReturn::Both => Ok(()),
        TimestampsToReturn::Server => Err(StatusCode::BadTimestampNotSupported),
        _ => Err(StatusCode::BadTimestampsToReturnInvalid),
    }
}

/// A stored sample as a history DataValue: its source time only.
pub fn point_value(p: &Point) -> DataValue {
    let time = uaedge_driver::Timestamp(p.time);
    let mut dv = convert::data_value(p.value.as_ref(), p.quality, time, time);
    dv.server_timestamp = None;
    dv
}

fn entry_value(e: &RawEntry) -> DataValue {
    match e {
        RawEntry::Value { point, extra } => {
            let mut dv = point_value(point);
            if *extra {
                dv.status = dv.status.map(|s| {
                    s.set_info_type(StatusCodeInfoType::DataValue)
                        .set_extra_data(true)
                });
            }
            dv
        }
        RawEntry::BoundNotFound(at) => DataValue {
            value: None,
            status: Some(StatusCode::BadBoundNotFound),
            source_timestamp: Some(convert::date_time(uaedge_driver::Timestamp(*at))),
            ..Default::default()
        },
    }
}

/// The historian as the pager reads it: one tag's samples.
struct TagSamples<'a> {
    history: &'a History,
    path: &'a str,
}

impl Samples for TagSamples<'_> {
    type Error = StatusCode;

    fn read(&self, from: i64, to: i64, reverse: bool, limit: usize) -> Result<RawRead, StatusCode> {
        match self.history.read_raw(self.path, from, to, reverse, limit) {
            Ok(Some(read)) => Ok(read),
            // Never kept: nothing to read.
            Ok(None) => Ok(RawRead::default()),
            Err(e) => {
                tracing::warn!(tag = self.path, error = %e, "history read failed");
                Err(StatusCode::BadHistoryOperationInvalid)
            }
        }
    }
}

impl ModelNodeManager {
    /// HistoryRead raw (ReadRawModifiedDetails) of tag variables.
    pub(super) async fn history_raw(
        &self,
        context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut HistoryNode],
        ttr: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        check_timestamps(ttr)?;
        let plan = plan_raw(details)?;
        for node in nodes.iter_mut() {
            let (history, (path, _)) = match self.history_target(context, node.node_id()) {
                Ok(target) => target,
                Err(status) => {
                    node.set_status(status);
                    continue;
                }
            };
            let cursor = match node.continuation_point() {
                None => None,
                Some(cp) => match cp.get::<RawContinuation>() {
                    Some(c) if &c.node == node.node_id() && c.plan == plan => Some(c.cursor),
                    // Another request's point: its details do not fit this one.
                    _ => {
                        node.set_status(StatusCode::BadContinuationPointInvalid);
                        continue;
                    }
                },
            };
            let page = tokio::task::spawn_blocking(move || {
                let samples = TagSamples {
                    history: &history,
                    path: &path,
                };
                raw_page(&samples, &plan, cursor, MAX_VALUES_PER_NODE)
            })
            .await
            .unwrap_or(Err(StatusCode::BadInternalError));
            match page {
                Ok((entries, next)) => {
                    let status = if entries.is_empty() && next.is_none() {
                        StatusCode::GoodNoData
                    } else {
                        StatusCode::Good
                    };
                    if let Some(cursor) = next {
                        let cont = RawContinuation {
                            node: node.node_id().clone(),
                            plan,
                            cursor,
                        };
                        node.set_next_continuation_point(Some(ContinuationPoint::new(Box::new(
                            cont,
                        ))));
                    }
                    node.set_result(HistoryData {
                        data_values: Some(entries.iter().map(entry_value).collect()),
                    });
                    node.set_status(status);
                }
                Err(status) => node.set_status(status),
            }
        }
        Ok(())
    }

    /// The historian, and the path and type of the tag a HistoryRead on `id` reads, or why
    /// not.
    pub(super) fn history_target(
        &self,
        context: &RequestContext,
        id: &NodeId,
    ) -> Result<(Arc<History>, (String, uaedge_driver::DataType)), StatusCode> {
        let table = self.table();
        let conditions = self.handle().conditions();
        let space = self.space(&table, &conditions);
        let node = space.node(id).ok_or(StatusCode::BadNodeIdUnknown)?;
        let UaNode::Tag(tag) = node else {
            return Err(StatusCode::BadHistoryOperationUnsupported);
        };
        let def = table.tag(tag).ok_or(StatusCode::BadNodeIdUnknown)?;
        let history = self
            .history()
            .read()
            .clone()
            .ok_or(StatusCode::BadHistoryOperationUnsupported)?;
        if !def.historized {
            return Err(StatusCode::BadHistoryOperationUnsupported);
        }
        let access = context.authenticator.effective_user_access_level(
            &context.token,
            super::address_space::access_level(def) | AccessLevel::HISTORY_READ,
            id,
        );
        if !access.contains(AccessLevel::HISTORY_READ) {
            return Err(StatusCode::BadUserAccessDenied);
        }
        Ok((history, (def.path.to_string(), def.data_type)))
    }
}
