//! Store-and-forward throughput: how fast samples are buffered into the redb journal while
//! the broker is away, how fast the backlog drains back out as historical DDATA payloads,
//! and how many bytes a sample takes on disk. Not a timed test; run it in release:
//!
//! ```sh
//! cargo run --release --example sparkplug_store_bench [samples]
//! ```
//!
//! It uses the node's own record encoding (a device read of 10 tags per record) and a
//! 100 ms group commit, as `uaedge run` does; the drain side decodes each record, builds
//! and encodes the historical payload and acks it, without the network (the node's drain
//! rate limit, 5,000 samples/s by default, sits far below these figures).

use std::sync::Arc;
use std::time::{Duration, Instant};

use uaedge::config::Config;
use uaedge::model::Sample;
use uaedge::sparkplug::codec::{self, MetricSpec};
use uaedge::sparkplug::record;
use uaedge::store::{Journal, JournalConfig};
use uaedge_driver::{Quality, Timestamp, Value};

const TAGS: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut yaml = String::from(
        "devices:\n  - name: press\n    driver: profinet-sim\n    options: { station: p }\n    tags:\n",
    );
    for i in 0..TAGS {
        yaml.push_str(&format!(
            "      - {{ name: line/t{i}, type: float64, address: \"in:1.1:{}\" }}\n",
            i * 8
        ));
    }
    let mut config = Config::parse("bench.yaml", &yaml).map_err(|e| e.to_string())?;
    let table = Arc::new(config.take_tag_table());
    let ids: Vec<_> = table.tags().iter().map(|t| t.id).collect();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.redb");
    let window = Duration::from_millis(100);
    let mut journal = Journal::open(
        &path,
        JournalConfig {
            max_bytes: 4 << 30,
            max_age: Duration::from_secs(86_400),
            commit_window: window,
        },
    )?;

    // Buffer: the broker is away, every device read becomes one record.
    let t0 = Instant::now();
    let start = Timestamp::now();
    let mut n = 0usize;
    let mut k: i64 = 0;
    while n < total {
        let samples: Vec<Sample> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Sample {
                tag: *id,
                value: Some(Value::Double((k as f64) * 0.1 + i as f64)),
                quality: Quality::Good,
                time: Timestamp(start.0 + k * 10_000),
            })
            .collect();
        let (bytes, newest) = record::encode(&table, "press", &samples);
        journal.append(newest.as_micros(), bytes);
        if journal
            .next_commit_due()
            .is_some_and(|t| t <= Instant::now())
        {
            journal.commit()?;
        }
        n += TAGS;
        k += 1;
    }
    journal.flush()?;
    let buffered = t0.elapsed();
    let file = std::fs::metadata(&path)?.len();
    let (records, logical) = journal.backlog();

    // Drain: oldest first, decode, historical payload, encode, ack; commits on the window.
    let t1 = Instant::now();
    let mut drained = 0usize;
    let mut cursor = 0;
    let mut wire_bytes = 0usize;
    loop {
        let batch = journal.oldest_after(cursor, 256)?;
        if batch.is_empty() {
            break;
        }
        for (seq, _, bytes) in batch {
            cursor = seq;
            let (rec, _) = record::decode(&bytes)?;
            let metrics: Vec<_> = rec
                .samples
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    codec::metric(&MetricSpec {
                        name: None,
                        alias: Some(100 + i as u64),
                        data_type: uaedge_driver::DataType::Double,
                        value: s.value.as_ref(),
                        quality: None,
                        units: None,
                        time: s.time,
                    })
                })
                .collect();
            drained += metrics.len();
            wire_bytes +=
                codec::encode(&codec::historical_payload((seq % 256) as u8, metrics)).len();
            journal.ack(seq);
        }
        if journal
            .next_commit_due()
            .is_some_and(|t| t <= Instant::now())
        {
            journal.commit()?;
        }
    }
    journal.flush()?;
    let drain = t1.elapsed();

    println!("samples: {n} ({TAGS} per record, {records} records)");
    println!(
        "buffered into redb: {:.0} samples/s ({:.2} s, group commit every {window:?})",
        n as f64 / buffered.as_secs_f64(),
        buffered.as_secs_f64()
    );
    println!(
        "drained (decode + historical DDATA encode + ack): {:.0} samples/s ({:.2} s)",
        drained as f64 / drain.as_secs_f64(),
        drain.as_secs_f64()
    );
    println!(
        "on disk: {:.1} bytes/sample (file {file} bytes; logical {:.1} bytes/sample); historical DDATA on the wire: {:.1} bytes/sample",
        file as f64 / n as f64,
        logical as f64 / n as f64,
        wire_bytes as f64 / drained.max(1) as f64
    );
    Ok(())
}
