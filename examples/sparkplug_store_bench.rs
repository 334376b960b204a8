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
//!
//! Buffering runs twice, each into a file of its own: with every commit written inline
//! (`Journal::commit`, the intake waits for it) and with each commit written on a thread of
//! its own while the intake goes on (`begin_commit` / `CommitJob::write` / `finish_commit`,
//! as the edge node does). The two differ once fsync is slow; to see a slow disk, delay
//! every fsync, e.g. by 300 ms, and give it enough samples to span several commits:
//!
//! ```sh
//! cargo build --release --example sparkplug_store_bench
//! strace -f --seccomp-bpf -o /dev/null -e trace=fsync,fdatasync \
//!   -e inject=fsync,fdatasync:delay_exit=300000 \
//!   target/release/examples/sparkplug_store_bench 10000000
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uaedge::config::Config;
use uaedge::model::{Sample, TagId, TagTable};
use uaedge::sparkplug::codec::{self, MetricSpec};
use uaedge::sparkplug::record;
use uaedge::store::{Journal, JournalConfig};
use uaedge_driver::{Quality, Timestamp, Value};

const TAGS: usize = 10;
const WINDOW: Duration = Duration::from_millis(100);

fn open(path: &std::path::Path) -> Result<Journal, Box<dyn std::error::Error>> {
    Ok(Journal::open(
        path,
        JournalConfig {
            max_bytes: 4 << 30,
            max_age: Duration::from_secs(86_400),
            commit_window: WINDOW,
        },
    )?)
}

/// The broker is away: every device read becomes one record, committed when due, inline
/// or on a writer thread. Returns the time until the last sample was appended (intake) and
/// until everything was on disk.
fn buffer(
    journal: &mut Journal,
    table: &TagTable,
    ids: &[TagId],
    total: usize,
    writer: bool,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let start = Timestamp::now();
    let mut job: Option<JoinHandle<()>> = None;
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
        let (bytes, newest) = record::encode(table, "press", &samples);
        journal.append(newest.as_micros(), bytes);
        if job.as_ref().is_some_and(JoinHandle::is_finished) {
            job = None;
            journal.finish_commit()?;
        }
        let due = journal
            .next_commit_due()
            .is_some_and(|t| t <= Instant::now());
        if due && !writer {
            journal.commit()?;
        } else if due {
            job = journal
                .begin_commit()
                .map(|j| std::thread::spawn(move || j.write()));
        }
        n += TAGS;
        k += 1;
    }
    let intake = t0.elapsed();
    // flush() waits for the commit in flight.
    journal.flush()?;
    if let Some(job) = job {
        job.join().map_err(|_| "commit thread panicked")?;
    }
    Ok((intake, t0.elapsed()))
}

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
    let mut inline = open(&dir.path().join("inline.redb"))?;
    let (inline_intake, inline_total) = buffer(&mut inline, &table, &ids, total, false)?;
    drop(inline);
    let path = dir.path().join("bench.redb");
    let mut journal = open(&path)?;
    let (intake, buffered) = buffer(&mut journal, &table, &ids, total, true)?;
    let n = total.div_ceil(TAGS) * TAGS;
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

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("samples: {n} ({TAGS} per record, {records} records)");
    println!(
        "buffered into redb, commits inline: {:.0} samples/s taken in ({:.2} s), {:.0} samples/s on disk ({:.2} s), group commit every {WINDOW:?}",
        rate(inline_intake),
        inline_intake.as_secs_f64(),
        rate(inline_total),
        inline_total.as_secs_f64()
    );
    println!(
        "buffered into redb, commits on a writer thread: {:.0} samples/s taken in ({:.2} s), {:.0} samples/s on disk ({:.2} s)",
        rate(intake),
        intake.as_secs_f64(),
        rate(buffered),
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
