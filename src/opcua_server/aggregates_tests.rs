//! Part 13 Annex A's Historian1 (sloped, TreatUncertainAsBad off, 100/100), value for value
//! where the annex gives them, and the rules around empty and Bad intervals.

use opcua::types::{StatusCode, StatusCodeValueType, Variant};
use uaedge_driver::{BadReason, Quality, UncertainReason, Value};

use super::{config, Aggregate, Config, Interval, Intervals, Raw, DEFAULTS};

fn intervals(start: i64, end: i64, step: i64) -> Vec<Interval> {
    let plan = Intervals::new(start, end, step);
    (0..plan.count).map(|k| plan.get(k)).collect()
}
use crate::history::chunk::Point;

fn s(secs: i64) -> i64 {
    secs * 1_000_000
}

/// 12:00:10 … 12:01:30 (12:00:00 is second 0).
fn historian1() -> Vec<Point> {
    let p = |t: i64, v: Option<f64>, quality| Point {
        time: s(t),
        value: v.map(Value::Double),
        quality,
    };
    vec![
        p(10, Some(10.0), Quality::Good),
        p(20, Some(20.0), Quality::Good),
        p(30, Some(30.0), Quality::Good),
        p(40, None, Quality::Bad(BadReason::CommFailure)),
        p(50, Some(50.0), Quality::Good),
        p(60, Some(60.0), Quality::Good),
        p(
            70,
            Some(70.0),
            Quality::Uncertain(UncertainReason::LastUsableValue),
        ),
        p(80, Some(80.0), Quality::Good),
        p(90, Some(90.0), Quality::Good),
    ]
}

const H1: Config = Config {
    treat_uncertain_as_bad: false,
    ..DEFAULTS
};

fn raw(points: &[Point]) -> Raw<'_> {
    Raw {
        points,
        first: points.first().map(|p| p.time),
        last: points.last().map(|p| p.time),
        stepped: false,
        textual: false,
    }
}

fn at(agg: Aggregate, lo: i64, width: i64, cfg: &Config) -> (Option<f64>, StatusCode) {
    let points = historian1();
    let iv = Interval {
        lo: s(lo),
        hi: s(lo + width) - 1,
        stamp: s(lo),
    };
    let dv = raw(&points).compute(agg, &iv, cfg);
    let value = dv.value.and_then(|v| match v {
        Variant::Double(x) => Some(x),
        Variant::Int32(x) => Some(f64::from(x)),
        _ => None,
    });
    (value, dv.status.unwrap_or(StatusCode::Good))
}

fn kind(code: StatusCode) -> StatusCodeValueType {
    code.value_type()
}

#[test]
fn interpolative_matches_the_annex() {
    let (v, c) = at(Aggregate::Interpolative, 15, 5, &H1);
    assert_eq!(v, Some(15.0));
    assert!(
        c.is_good() && kind(c) == StatusCodeValueType::Interpolated,
        "{c}"
    );
    // Across the Bad sample at 40: Uncertain.
    let (v, c) = at(Aggregate::Interpolative, 35, 5, &H1);
    assert_eq!(v, Some(35.0));
    assert!(
        c.is_uncertain() && kind(c) == StatusCodeValueType::Interpolated,
        "{c}"
    );
    // A raw sample at the time: itself, Raw.
    let (v, c) = at(Aggregate::Interpolative, 70, 5, &H1);
    assert_eq!(v, Some(70.0));
    assert!(
        c.is_uncertain() && kind(c) == StatusCodeValueType::Raw,
        "{c}"
    );
    // Before any data: no data; after it: held, Uncertain.
    assert_eq!(
        at(Aggregate::Interpolative, 5, 5, &H1).1,
        StatusCode::BadNoData
    );
    let (v, c) = at(Aggregate::Interpolative, 95, 5, &H1);
    assert_eq!(v, Some(90.0));
    assert!(c.is_uncertain(), "{c}");
}

#[test]
fn time_average_matches_the_annex() {
    let (v, c) = at(Aggregate::TimeAverage, 10, 5, &H1);
    assert_eq!(v, Some(12.5));
    assert!(
        c.is_good() && kind(c) == StatusCodeValueType::Calculated,
        "{c}"
    );
    let (v, c) = at(Aggregate::TimeAverage, 30, 5, &H1);
    assert_eq!(v, Some(32.5));
    assert!(c.is_uncertain(), "{c}");
}

#[test]
fn minimum_and_maximum_match_the_annex() {
    let (v, c) = at(Aggregate::Minimum, 0, 16, &H1);
    assert_eq!(v, Some(10.0));
    assert!(
        c.is_good() && c.partial() && kind(c) == StatusCodeValueType::Calculated,
        "{c}"
    );
    let (v, c) = at(Aggregate::Minimum, 80, 16, &H1);
    assert_eq!(v, Some(80.0));
    assert!(
        c.is_good() && c.partial() && kind(c) == StatusCodeValueType::Raw,
        "{c}"
    );
    // The Bad sample at 40 makes the interval Uncertain.
    let (v, c) = at(Aggregate::Maximum, 30, 16, &H1);
    assert_eq!(v, Some(30.0));
    assert!(
        c.is_uncertain() && kind(c) == StatusCodeValueType::Raw,
        "{c}"
    );
    // Only the Bad sample: no data.
    assert_eq!(at(Aggregate::Maximum, 32, 16, &H1).1, StatusCode::BadNoData);
}

#[test]
fn average_count_delta_start_end() {
    // 10, 20, 30 and the Bad 40: the average of the good ones, Uncertain (25 % Bad).
    let (v, c) = at(Aggregate::Average, 10, 40, &H1);
    assert_eq!(v, Some(20.0));
    assert!(c.is_uncertain() && !c.partial(), "{c}");
    let (v, c) = at(Aggregate::Count, 10, 40, &H1);
    assert_eq!(v, Some(3.0));
    assert!(c.is_uncertain(), "{c}");
    // Only the Bad sample: no count.
    let (v, c) = at(Aggregate::Count, 40, 5, &H1);
    assert_eq!((v, c.is_bad()), (None, true), "{c}");
    // Between samples, inside the data: a Good zero. Before the data: no data.
    let (v, c) = at(Aggregate::Count, 41, 5, &H1);
    assert_eq!((v, c.is_good()), (Some(0.0), true), "{c}");
    assert_eq!(at(Aggregate::Count, 0, 5, &H1).1, StatusCode::BadNoData);
    let (v, _) = at(Aggregate::Delta, 10, 40, &H1);
    assert_eq!(v, Some(20.0));
    let (v, c) = at(Aggregate::Delta, 10, 5, &H1);
    assert_eq!(v, Some(0.0), "one value: no change");
    assert!(c.is_good());
    let points = historian1();
    let iv = Interval {
        lo: s(35),
        hi: s(55) - 1,
        stamp: s(35),
    };
    let start = raw(&points).compute(Aggregate::Start, &iv, &H1);
    assert_eq!(
        start.status,
        Some(
            StatusCode::BadCommunicationError
                .set_info_type(opcua::types::StatusCodeInfoType::DataValue)
        )
    );
    let end = raw(&points).compute(Aggregate::End, &iv, &H1);
    assert_eq!(end.value, Some(Variant::Double(50.0)));
    // Treating Uncertain as Bad takes 70 out of the average.
    let (v, _) = at(Aggregate::Average, 60, 30, &DEFAULTS);
    assert_eq!(v, Some(70.0), "60 and 80");
    let (v, _) = at(Aggregate::Average, 60, 30, &H1);
    assert_eq!(v, Some(70.0), "60, 70 and 80");
    // An empty interval: no data.
    assert_eq!(at(Aggregate::Average, 41, 5, &H1).1, StatusCode::BadNoData);
}

#[test]
fn intervals_follow_part_13() {
    let fwd = intervals(0, 25, 10);
    assert_eq!(
        fwd,
        [
            Interval {
                lo: 0,
                hi: 9,
                stamp: 0
            },
            Interval {
                lo: 10,
                hi: 19,
                stamp: 10
            },
            Interval {
                lo: 20,
                hi: 24,
                stamp: 20
            },
        ]
    );
    let back = intervals(25, 0, 10);
    assert_eq!(
        back[0],
        Interval {
            lo: 16,
            hi: 25,
            stamp: 25
        }
    );
    assert_eq!(
        back[2],
        Interval {
            lo: 1,
            hi: 5,
            stamp: 5
        }
    );
    assert_eq!(intervals(0, 25, 0).len(), 1);
    assert_eq!(Intervals::new(0, 1_000_000, 1).count, 1_000_000);
}

#[test]
fn configurations_are_checked() {
    let mut c = opcua::types::AggregateConfiguration::default();
    assert_eq!(config(&c), Ok(DEFAULTS), "all zero: the defaults");
    c.percent_data_good = 50;
    c.percent_data_bad = 40;
    assert_eq!(config(&c), Err(StatusCode::BadAggregateInvalidInputs));
    c.percent_data_bad = 60;
    assert!(config(&c).is_ok());
    assert_eq!(
        Aggregate::of(&Aggregate::Delta.object_id().into()),
        Some(Aggregate::Delta)
    );
}
