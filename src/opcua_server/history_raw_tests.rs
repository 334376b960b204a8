//! Part 11 (v1.05) Table 1, value for value: raw data at 5:00, 5:02, 5:03, 5:05 and 5:06.

use std::convert::Infallible;

use uaedge_driver::{Quality, Value};

use super::{raw_page, RawCursor, RawEntry, RawPlan, Samples};
use crate::history::chunk::Point;
use crate::history::RawRead;

struct Stored(Vec<Point>);

impl Samples for Stored {
    type Error = Infallible;
    fn read(&self, from: i64, to: i64, reverse: bool, limit: usize) -> Result<RawRead, Infallible> {
        let mut points: Vec<Point> = (self.0.iter())
            .filter(|p| p.time >= from && p.time <= to)
            .cloned()
            .collect();
        if reverse {
            points.reverse();
        }
        let more = points.len() > limit;
        points.truncate(limit);
        Ok(RawRead { points, more })
    }
}

/// Minutes past 5:00 in µs (4:59 is -1).
fn m(min: i64) -> i64 {
    min * 60_000_000
}

fn data() -> Stored {
    Stored(
        [0, 2, 3, 5, 6]
            .iter()
            .map(|&t| Point {
                time: m(t),
                value: Some(Value::Int32(t as i32)),
                quality: Quality::Good,
            })
            .collect(),
    )
}

/// Each entry as `5:02`, or a missing bound as `!<seconds from 5:00>`.
fn show(page: &[RawEntry]) -> Vec<String> {
    page.iter()
        .map(|e| match e {
            RawEntry::Value { point, .. } => format!("5:{:02}", point.time / 60_000_000),
            RawEntry::BoundNotFound(t) => format!("!{}", t / 1_000_000),
        })
        .collect()
}

fn plan(start: Option<i64>, end: Option<i64>, n: usize, bounds: bool) -> RawPlan {
    let (a, b, reverse) = match (start, end) {
        (Some(s), Some(e)) => (s, Some(e), s > e),
        (Some(s), None) => (s, None, false),
        (None, Some(e)) => (e, None, true),
        (None, None) => unreachable!("refused before"),
    };
    RawPlan {
        a,
        b,
        at_one_time: start.is_some() && start == end,
        reverse,
        n,
        bounds,
    }
}

fn read_all(p: RawPlan, max_page: usize) -> (Vec<String>, usize) {
    let s = data();
    let mut all = Vec::new();
    let mut cursor: Option<RawCursor> = None;
    let mut pages = 0;
    loop {
        let (page, next) = raw_page(&s, &p, cursor, max_page).expect("reads");
        pages += 1;
        all.extend(show(&page));
        match next {
            Some(c) => cursor = Some(c),
            None => return (all, pages),
        }
    }
}

#[test]
fn part_11_table_1() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // (start, end, numValuesPerNode, returnBounds, expected)
    type Case = (Option<i64>, Option<i64>, usize, bool, Vec<String>);
    let cases: Vec<Case> = vec![
        (
            Some(m(0)),
            Some(m(5)),
            0,
            false,
            s(&["5:00", "5:02", "5:03"]),
        ),
        (
            Some(m(0)),
            Some(m(5)),
            0,
            true,
            s(&["5:00", "5:02", "5:03", "5:05"]),
        ),
        (
            Some(m(5)),
            Some(m(0)),
            0,
            false,
            s(&["5:05", "5:03", "5:02"]),
        ),
        (
            Some(m(5)),
            Some(m(0)),
            0,
            true,
            s(&["5:05", "5:03", "5:02", "5:00"]),
        ),
        (None, Some(m(6)), 3, false, s(&["5:06", "5:05", "5:03"])),
        (Some(m(0)), Some(m(0)), 0, false, s(&["5:00"])),
        (Some(m(0)), Some(m(0)), 0, true, s(&["5:00", "5:02"])),
        (Some(m(1)), Some(m(1)), 0, true, s(&["5:00", "5:02"])),
        (Some(m(1)), Some(m(1)), 0, false, s(&[])),
        (Some(m(-12)), Some(m(-12)), 0, true, s(&["!-720", "5:00"])),
        (Some(m(-12)), Some(m(-12)), 1, true, s(&["!-720"])),
        (
            Some(m(0)),
            None,
            6,
            true,
            s(&["5:00", "5:02", "5:03", "5:05", "5:06", "!361"]),
        ),
        (Some(m(7)), None, 6, true, s(&["5:06", "!361"])),
        (Some(m(7)), None, 6, false, s(&[])),
        (
            None,
            Some(m(6)),
            6,
            true,
            s(&["5:06", "5:05", "5:03", "5:02", "5:00", "!-1"]),
        ),
        (None, Some(m(-12)), 6, true, s(&["5:00", "!-1"])),
        (None, Some(m(-12)), 6, false, s(&[])),
    ];
    for (start, end, n, bounds, expected) in cases {
        let (got, _) = read_all(plan(start, end, n, bounds), 100);
        assert_eq!(
            got, expected,
            "start {start:?} end {end:?} n {n} bounds {bounds}"
        );
    }
}

#[test]
fn pages_continue_where_the_last_one_stopped() {
    // Table 1: 4:59 to 5:05, 3 values a page, with bounds: FIRST, 5:00, 5:02, then the rest.
    let p = plan(Some(m(-1)), Some(m(5)), 3, true);
    let s = data();
    let (first, cursor) = raw_page(&s, &p, None, 100).expect("reads");
    assert_eq!(show(&first), ["!-60", "5:00", "5:02"]);
    let cursor = cursor.expect("more");
    let (second, end) = raw_page(&s, &p, Some(cursor), 100).expect("reads");
    assert_eq!(show(&second), ["5:03", "5:05"]);
    assert_eq!(end, None);
    // One value a page: as many pages as values, and nothing twice.
    let (all, pages) = read_all(plan(Some(m(0)), Some(m(7)), 1, false), 100);
    assert_eq!(all, ["5:00", "5:02", "5:03", "5:05", "5:06"]);
    assert_eq!(pages, 5);
    // The server's own page limit pages an unlimited read, backwards too.
    let (all, pages) = read_all(plan(Some(m(7)), Some(m(-1)), 0, false), 2);
    assert_eq!(all, ["5:06", "5:05", "5:03", "5:02", "5:00"]);
    assert_eq!(pages, 3);
}

#[test]
fn samples_sharing_a_timestamp_are_one_value_the_newest() {
    let mut d = data();
    d.0.insert(
        2,
        Point {
            time: m(2),
            value: Some(Value::Int32(99)),
            quality: Quality::Good,
        },
    );
    for reverse in [false, true] {
        let p = if reverse {
            plan(Some(m(2)), Some(m(1)), 0, false)
        } else {
            plan(Some(m(2)), Some(m(3)), 0, false)
        };
        let (page, _) = raw_page(&d, &p, None, 100).expect("reads");
        assert_eq!(page.len(), 1);
        let RawEntry::Value { point, extra } = &page[0] else {
            panic!("a value");
        };
        assert_eq!(point.value, Some(Value::Int32(99)), "reverse {reverse}");
        assert!(extra);
    }
}
