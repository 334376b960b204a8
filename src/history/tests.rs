//! The historian end to end on real redb files: what goes in comes back, across a clean
//! stop, an abort (the committed log is replayed) and retention.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uaedge_driver::{BadReason, DataType, Quality, Timestamp, Value};

use super::chunk::Point;
use super::{Historian, History};
use crate::bus::{ModelEvent, Start};
use crate::config::history::HistorySettings;
use crate::model::{DeviceId, Sample, TagId, TagTable};

const T0: i64 = 1_780_000_000_000_000;

fn table() -> Arc<TagTable> {
    let tags = [
        ("pressure", DataType::Double),
        ("count", DataType::UInt32),
        ("secret", DataType::Boolean),
    ];
    Arc::new(TagTable::one_device("press", &tags, |def| {
        def.historized = &*def.path.tag != "secret";
    }))
}

fn settings(dir: &std::path::Path, max_bytes: u64) -> HistorySettings {
    HistorySettings {
        path: dir.join("history.redb"),
        max_age: Duration::from_secs(3650 * 86400),
        max_bytes,
        commit_window: Duration::from_millis(10),
    }
}

/// Sample `i` of each tag: a wobbling pressure (Bad for a stretch), a counter, a Boolean.
fn batch(i: i64) -> Vec<Sample> {
    let time = Timestamp(T0 + i * 1_000_000);
    let bad = (500..520).contains(&i);
    vec![
        Sample {
            tag: TagId(0),
            value: (!bad).then(|| Value::Double(100.0 + ((i * 7919) % 1000) as f64 / 7.0)),
            quality: if bad {
                Quality::Bad(BadReason::CommFailure)
            } else {
                Quality::Good
            },
            time,
        },
        Sample {
            tag: TagId(1),
            value: Some(Value::UInt32(i as u32)),
            quality: Quality::Good,
            time,
        },
        Sample {
            tag: TagId(2),
            value: Some(Value::Boolean(i % 2 == 0)),
            quality: Quality::Good,
            time,
        },
    ]
}

fn start(dir: &std::path::Path, max_bytes: u64) -> (Historian, mpsc::Sender<ModelEvent>) {
    let table = table();
    let (tx, rx) = mpsc::channel(16);
    let historian =
        Historian::start(settings(dir, max_bytes), (rx, Start::of(table))).expect("history opens");
    (historian, tx)
}

async fn send(tx: &mpsc::Sender<ModelEvent>, range: std::ops::Range<i64>) {
    for i in range {
        tx.send(ModelEvent::Samples(DeviceId(0), Arc::new(batch(i))))
            .await
            .expect("intake runs");
    }
}

/// Waits until everything handed to the intake so far is durable.
async fn settle(history: &History) {
    for _ in 0..4000 {
        let s = history.stats();
        if s.durable_samples_in == s.samples_in {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("history never committed: {:?}", history.stats());
}

/// Equal, or the first difference (the lists are long).
#[track_caller]
fn same(actual: &[Point], expected: &[Point]) {
    if let Some(i) = (0..actual.len().min(expected.len())).find(|&i| actual[i] != expected[i]) {
        panic!(
            "sample {i} differs: {:?} instead of {:?}",
            actual[i], expected[i]
        );
    }
    assert_eq!(actual.len(), expected.len(), "sample counts differ");
}

fn all(history: &History, path: &str) -> Vec<Point> {
    history
        .read_raw(path, i64::MIN, i64::MAX, false, usize::MAX - 1)
        .expect("reads")
        .expect("known tag")
        .points
}

fn expected(tag: usize, range: std::ops::Range<i64>) -> Vec<Point> {
    range
        .map(|i| {
            let s = &batch(i)[tag];
            Point {
                time: s.time.as_micros(),
                value: s.value.clone(),
                quality: s.quality,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_come_back_after_a_clean_stop_and_an_abort() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (historian, tx) = start(dir.path(), 1 << 30);
    send(&tx, 0..6000).await;
    settle(historian.history()).await;
    // Readable while running: from the file, the chunks in flight and the open chunk.
    same(
        &all(historian.history(), "press/pressure"),
        &expected(0, 0..6000),
    );
    same(
        &all(historian.history(), "press/count"),
        &expected(1, 0..6000),
    );
    assert!(!historian.history().knows("press/secret"));
    historian.stop().await;

    // A clean stop: everything is back.
    let (historian, tx) = start(dir.path(), 1 << 30);
    same(
        &all(historian.history(), "press/pressure"),
        &expected(0, 0..6000),
    );
    send(&tx, 6000..9000).await;
    settle(historian.history()).await;
    // An abort: what the log committed is replayed on the next start.
    historian.abort().await;
    let (historian, _tx) = start(dir.path(), 1 << 30);
    same(
        &all(historian.history(), "press/pressure"),
        &expected(0, 0..9000),
    );
    same(
        &all(historian.history(), "press/count"),
        &expected(1, 0..9000),
    );

    // Pages, forward and backward.
    let h = historian.history();
    let page = h
        .read_raw("press/count", T0, T0 + 99 * 1_000_000, false, 10)
        .expect("reads")
        .expect("known");
    same(&page.points, &expected(1, 0..10));
    assert!(page.more);
    let back = h
        .read_raw("press/count", T0, T0 + 8999 * 1_000_000, true, 3)
        .expect("reads")
        .expect("known");
    let mut newest = expected(1, 8997..9000);
    newest.reverse();
    same(&back.points, &newest);
    historian.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_oldest_chunks_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (historian, tx) = start(dir.path(), 1024 * 1024);
    // The two series take ~4 bytes a sample together: 300,000 of them overflow 1 MiB.
    for chunk in 0..30 {
        send(&tx, chunk * 10_000..(chunk + 1) * 10_000).await;
        settle(historian.history()).await;
    }
    let h = historian.history();
    let stats = h.stats();
    assert!(stats.retention_dropped_chunks > 0, "{stats:?}");
    assert!(
        stats.chunk_bytes + stats.log_bytes <= 1024 * 1024,
        "{stats:?}"
    );
    let kept = all(h, "press/pressure");
    let first = kept.first().expect("recent samples kept").time;
    assert!(first > T0, "the oldest went");
    assert_eq!(kept.last().map(|p| p.time), Some(T0 + 299_999 * 1_000_000));
    // The dropped range reads as empty.
    let gone = h
        .read_raw("press/pressure", T0, first - 1, false, 100)
        .expect("reads")
        .expect("known");
    assert!(gone.points.is_empty());
    assert!(stats.oldest.is_some_and(|o| o >= T0));
    historian.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_many_samples_of_one_tag_keeps_each_value_at_its_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (historian, tx) = start(dir.path(), 1 << 30);
    for b in 0..20i64 {
        let batch: Vec<Sample> = (0..50)
            .map(|j| {
                let k = b * 50 + j;
                Sample {
                    tag: TagId(1),
                    value: Some(Value::UInt32(k as u32)),
                    quality: Quality::Good,
                    time: Timestamp(T0 + k * 1000),
                }
            })
            .collect();
        tx.send(ModelEvent::Samples(DeviceId(0), Arc::new(batch)))
            .await
            .expect("intake runs");
    }
    settle(historian.history()).await;
    let got = all(historian.history(), "press/count");
    assert_eq!(got.len(), 1000);
    for (k, p) in got.iter().enumerate() {
        assert_eq!(
            (p.time, &p.value),
            (T0 + k as i64 * 1000, &Some(Value::UInt32(k as u32)))
        );
    }
    historian.stop().await;
}
