//! Historian benchmark (not a test): the figures for the local historian, measured
//! side by side in one sitting and printed; nothing is asserted.
//!
//! 1. Ingest: an in-process `Historian` (commit window 1 s, as shipped) fed batches of
//!    Samples as the router hands them on (10 devices × 100 tags, 50 noisy float32 and 50
//!    uint32 counters each; a batch is one device read, 100 ms of source time after the
//!    previous one), twice: flat out, and paced at 1,000,000 samples/s. Samples/s sent,
//!    taken by the intake, and until every sample is durable (`durable_samples_in ==
//!    samples_in`, so the last commit window is in the figure); the whole process's CPU
//!    over that time, with the share of the generator (it runs in the same process).
//! 2. Bytes per sample, `History::footprint` (compressed chunks in the file plus the open
//!    chunks in memory; the intake log, a transient copy, is left out) over the samples
//!    kept, for two sources that run at the same time for `HISTORY_LIVE_SECS` (90 s):
//!    - the shipped `config.example.yaml`, run in-process as `Edge::shipped()` does (its
//!      own `history:` section; OPC UA on a free port, no broker listening, so Sparkplug
//!      buffers); its history file is opened again after a clean shutdown;
//!    - Modbus-like counters: 10 devices × 100 uint16 registers, each device on its own
//!      tokio interval of 100 ms (missed ticks delayed, as device tasks do), every read
//!      stamped with `Timestamp::now()`, report by exception; 50 a device step by one a
//!      poll, 50 count events at 1 to 50 a second.
//!
//!    Per type and per group: every tag read back and encoded again with `ChunkEncoder`,
//!    closing chunks as the series do (1 KiB, one hour, time going back, a type change).
//! 3. One day at 1 s: 10 float32 tags (a noisy sine each, poll jitter up to 2 ms) written
//!    through the Historian with source times from a day ago, the file opened again, and
//!    `History::read_raw` of one tag's 86,400 values timed in-process (what a HistoryRead
//!    raw costs the server beside encoding). Then the same file served by an in-process
//!    uaedge and read over OPC UA on 127.0.0.1 (security None) with async-opcua's client:
//!    HistoryRead raw, one request for the whole day, and processed, Average over 1-minute
//!    intervals (1,440 values); round trips, so upper bounds of the server's time. The
//!    aggregates are crate-private, so the Average is measured through OPC UA only.
//!
//! Run: `cargo bench --bench history` (about 2 min; `HISTORY_LIVE_SECS` (90) and
//! `HISTORY_INGEST_SECS` (10) set the live window and each ingest run's length,
//! `HISTORY_PACE` (1000000) the paced run's samples/s, `HISTORY_SECTIONS` (123) which
//! sections run). A slow disk: run the bench binary under `strace -f --seccomp-bpf -o
//! /dev/null -e trace=fsync,fdatasync -e inject=fsync,fdatasync:delay_exit=300000` with
//! `HISTORY_SECTIONS=1 HISTORY_PACE=2000000`, and once without the delay to compare.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/opcua_support/mod.rs"]
mod opcua_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proc_cpu_seconds;
use opcua::client::{ClientBuilder, HistoryReadAction, IdentityToken, Session};
use opcua::types::{
    AggregateConfiguration, DateTime, HistoryData, HistoryReadValueId, MessageSecurityMode, NodeId,
    ObjectId, ReadProcessedDetails, ReadRawModifiedDetails, TimestampsToReturn, UserTokenPolicy,
};
use opcua_support::Edge;
use tokio::sync::mpsc;
use uaedge::bus::{queue_depth, ModelEvent, Start};
use uaedge::config::history::HistorySettings;
use uaedge::config::Config;
use uaedge::history::chunk::{ChunkEncoder, Point, HEADER_BYTES};
use uaedge::history::series::CHUNK_BYTES;
use uaedge::history::store::MAX_SPAN_US;
use uaedge::history::{Historian, History, MODEL_QUEUE};
use uaedge::model::{DeviceId, Sample, TagId, TagTable};
use uaedge_driver::{DataType, Quality, Timestamp, Value};

const DEVICES: usize = 10;
const TAGS_PER_DEVICE: usize = 100;
const POLL: Duration = Duration::from_millis(100);
const DAY_S: i64 = 86_400;
const DAY_TAGS: usize = 10;
/// Timed repetitions of each read.
const READS: usize = 10;
/// The Sparkplug store-and-forward journal on disk, README (Store and forward).
const JOURNAL_BYTES_PER_SAMPLE: f64 = 35.7;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: the same noise in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, σ = 1.
    fn noise(&mut self) -> f64 {
        2.0 * (self.unit() + self.unit() + self.unit() - 1.5)
    }
}

/// The settings and tag table of a config with a `history:` section (every tag kept) and
/// `devices` (YAML list items) under `dir`.
fn config(dir: &Path, devices: &str) -> (HistorySettings, Arc<TagTable>) {
    let text = format!(
        "node: {{ name: bench }}\nstate_dir: {}\nhistory:\n  commit_window: 1s\ndevices:\n{devices}",
        dir.display()
    );
    let mut config = Config::parse("bench.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let settings = config.history.take().expect("a history section");
    (settings, Arc::new(config.take_tag_table()))
}

/// `enip-sim` devices named `name(d)`, tag `t` of each `(name, type)`.
fn devices(
    count: usize,
    name: impl Fn(usize) -> String,
    tag: impl Fn(usize) -> (String, &'static str),
) -> String {
    let mut y = String::new();
    for d in 0..count {
        y.push_str(&format!(
            "  - name: {}\n    driver: enip-sim\n    poll_interval: 100ms\n    tags:\n",
            name(d)
        ));
        for t in 0..TAGS_PER_DEVICE {
            let (tag, ty) = tag(t);
            y.push_str(&format!(
                "      - {{ name: {tag}, type: {ty}, address: \"{tag}\" }}\n"
            ));
        }
    }
    y
}

/// Each device's driver tags, in order.
fn tag_ids(table: &TagTable) -> Vec<Vec<TagId>> {
    table
        .devices()
        .iter()
        .map(|d| d.driver_tag_ids().collect())
        .collect()
}

fn start(
    settings: &HistorySettings,
    table: &Arc<TagTable>,
) -> (Historian, mpsc::Sender<ModelEvent>) {
    let (tx, rx) = mpsc::channel(queue_depth(table, MODEL_QUEUE));
    let historian =
        Historian::start(settings.clone(), (rx, Start::of(table.clone()))).expect("history opens");
    (historian, tx)
}

/// Waits until every sample handed over is durable; `false` after `limit`.
async fn settle(history: &History, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let s = history.stats();
        if s.durable_samples_in == s.samples_in {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

fn sample(tag: TagId, value: Value, time: i64) -> Sample {
    Sample {
        tag,
        value: Some(value),
        quality: Quality::Good,
        time: Timestamp(time),
    }
}

/// What a stored tag's samples take, encoded again in chunks closed as `series.rs` closes
/// them: in all, with times and states only (values left out), and in chunk headers.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    tags: usize,
    samples: u64,
    bytes: u64,
    time_bytes: u64,
    chunks: u64,
    /// Sum of |Δ²t| (µs) between consecutive samples, and how many: what the times code.
    dod_us: u64,
    dods: u64,
}

impl Kept {
    fn add(&mut self, other: Kept) {
        self.tags += other.tags;
        self.samples += other.samples;
        self.bytes += other.bytes;
        self.time_bytes += other.time_bytes;
        self.chunks += other.chunks;
        self.dod_us += other.dod_us;
        self.dods += other.dods;
    }

    fn per(&self, bytes: u64) -> f64 {
        bytes as f64 / self.samples.max(1) as f64
    }

    fn per_sample(&self) -> f64 {
        self.per(self.bytes)
    }

    /// `X B/sample = times t + values v + headers h (mean |Δ²t| µs)`.
    fn split(&self) -> String {
        let headers = self.chunks * HEADER_BYTES as u64;
        format!(
            "{:.2} B/sample = times {:.2} + values {:.2} + headers {:.2} (mean |Δ²t| {:.0} µs)",
            self.per_sample(),
            self.per(self.time_bytes.saturating_sub(headers)),
            self.per(self.bytes.saturating_sub(self.time_bytes)),
            self.per(headers),
            self.dod_us as f64 / self.dods.max(1) as f64
        )
    }
}

fn reencoded(history: &History, path: &str, data_type: DataType) -> Kept {
    let points: Vec<Point> = history
        .read_raw(path, i64::MIN, i64::MAX, false, usize::MAX - 1)
        .ok()
        .flatten()
        .map(|r| r.points)
        .unwrap_or_default();
    let mut kept = Kept {
        tags: 1,
        samples: points.len() as u64,
        ..Kept::default()
    };
    for w in points.windows(3) {
        let dod = (w[2].time - w[1].time) - (w[1].time - w[0].time);
        kept.dod_us += dod.unsigned_abs();
        kept.dods += 1;
    }
    // The chunk, and its twin holding the same samples' times and states only.
    let mut open: Option<(ChunkEncoder, ChunkEncoder)> = None;
    let mut close = |open: &mut Option<(ChunkEncoder, ChunkEncoder)>| {
        if let Some((enc, times)) = open.take() {
            kept.bytes += enc.byte_len() as u64;
            kept.time_bytes += times.byte_len() as u64;
            kept.chunks += 1;
        }
    };
    for p in &points {
        let ty = p.value.as_ref().map_or(data_type, Value::data_type);
        let pushed = open.as_mut().is_some_and(|(enc, times)| {
            let m = enc.meta();
            let fits = p.time >= m.last
                && p.time.saturating_sub(m.first) <= MAX_SPAN_US
                && m.data_type == ty
                && enc.push(p.time, p.value.as_ref(), p.quality).is_ok();
            fits && times.push(p.time, None, p.quality).is_ok()
        });
        if !pushed {
            close(&mut open);
            let enc = ChunkEncoder::new(ty, p.time, p.value.as_ref(), p.quality).ok();
            let times = ChunkEncoder::new(ty, p.time, None, p.quality).ok();
            open = enc.zip(times);
        }
        if open
            .as_ref()
            .is_some_and(|(enc, _)| enc.byte_len() >= CHUNK_BYTES)
        {
            close(&mut open);
        }
    }
    close(&mut open);
    kept
}

/// A file's length and the bytes allocated to it (redb grows its file ahead of use).
fn file_size(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or((0, 0), |m| (m.len(), m.blocks() * 512))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (min, median) of some durations, ms.
fn min_median(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    (
        times.first().map_or(f64::NAN, |d| ms(*d)),
        times.get(times.len() / 2).map_or(f64::NAN, |d| ms(*d)),
    )
}

// 1. Ingest.

/// How the ingest run offers its samples.
#[derive(Debug, Clone, Copy)]
enum Offer {
    /// As fast as the intake takes them, for this long.
    FlatOut(Duration),
    /// This many samples a second (in bursts every 10 ms), for this long.
    Paced(u64, Duration),
}

struct Ingest {
    offer: Offer,
    samples: u64,
    /// From the first batch to the last one sent, to the intake's count reaching them all,
    /// and to all of them durable.
    sent: Duration,
    accepted: Duration,
    durable: Duration,
    cpu_s: f64,
    /// What generating the batches alone takes, per sample.
    generate_ns: f64,
    dropped: u64,
    commits: u64,
    max_commit: Duration,
    bytes: u64,
    kept_samples: u64,
    log_bytes: u64,
    /// The redb file: length and bytes allocated, after the stop.
    file: (u64, u64),
}

impl Ingest {
    fn rate(&self, d: Duration) -> f64 {
        self.samples as f64 / d.as_secs_f64()
    }

    /// CPU as a share of one core over first batch → all durable.
    fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu_s / self.durable.as_secs_f64()
    }

    fn generator_pct(&self) -> f64 {
        100.0 * self.generate_ns * 1e-9 * self.samples as f64 / self.durable.as_secs_f64()
    }
}

/// Batch `k` of device `d`: 50 noisy float32 (a 60 s sine of ±20 around 180, σ 0.5) and
/// 50 counters, stamped 100 ms × k plus up to 0.5 ms of poll jitter after `t0`.
fn ingest_batch(ids: &[TagId], d: usize, k: usize, t0: i64, rng: &mut Rng) -> Vec<Sample> {
    let time = t0 + k as i64 * 100_000 + (rng.next() % 500) as i64;
    let secs = time as f64 / 1e6;
    ids.iter()
        .enumerate()
        .map(|(t, &id)| {
            let value = if t % 2 == 0 {
                let phase = (d * TAGS_PER_DEVICE + t) as f64 / 7.0;
                let x = 180.0
                    + 20.0 * (std::f64::consts::TAU * secs / 60.0 + phase).sin()
                    + 0.5 * rng.noise();
                Value::Float(x as f32)
            } else {
                Value::UInt32((k + t * 1000) as u32)
            };
            sample(id, value, time)
        })
        .collect()
}

async fn ingest(offer: Offer) -> Ingest {
    let dir = tempfile::tempdir().expect("dir");
    let (settings, table) = config(
        dir.path(),
        &devices(
            DEVICES,
            |d| format!("d{d}"),
            |t| {
                if t % 2 == 0 {
                    (format!("f{t}"), "float32")
                } else {
                    (format!("c{t}"), "uint32")
                }
            },
        ),
    );
    let ids = tag_ids(&table);
    let step_samples = DEVICES * TAGS_PER_DEVICE;
    // Source times: 100 ms a step, ending about now (retention keeps 30 days).
    let t0 = Timestamp::now().as_micros() - DAY_S * 1_000_000;

    // The generator alone, to set its share apart.
    let mut rng = Rng(7);
    let began = Instant::now();
    let trial = 200;
    for k in 0..trial {
        for (d, ids) in ids.iter().enumerate() {
            std::hint::black_box(Arc::new(ingest_batch(ids, d, k, t0, &mut rng)));
        }
    }
    let generate_ns = began.elapsed().as_secs_f64() * 1e9 / (trial * step_samples) as f64;

    let (historian, tx) = start(&settings, &table);
    let history = historian.history().clone();
    let mut rng = Rng(7);
    let pid = std::process::id();
    let cpu0 = proc_cpu_seconds(pid);
    let began = Instant::now();
    let mut k = 0usize;
    let send_step = |k: usize, rng: &mut Rng| {
        ids.iter()
            .enumerate()
            .map(|(d, ids)| {
                let batch = Arc::new(ingest_batch(ids, d, k, t0, rng));
                ModelEvent::Samples(DeviceId(d as u16), batch)
            })
            .collect::<Vec<_>>()
    };
    match offer {
        Offer::FlatOut(window) => {
            while began.elapsed() < window {
                for event in send_step(k, &mut rng) {
                    tx.send(event).await.expect("intake runs");
                }
                k += 1;
            }
        }
        Offer::Paced(rate, window) => {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let per_tick = rate as f64 / 100.0 / step_samples as f64;
            let mut due = 0.0;
            while began.elapsed() < window {
                tick.tick().await;
                due += per_tick;
                while (k as f64) < due {
                    for event in send_step(k, &mut rng) {
                        tx.send(event).await.expect("intake runs");
                    }
                    k += 1;
                }
            }
        }
    }
    let sent = began.elapsed();
    let samples = (k * step_samples) as u64;
    let mut accepted = None;
    let durable = loop {
        let s = history.stats();
        if accepted.is_none() && s.samples_in >= samples {
            accepted = Some(began.elapsed());
        }
        if s.samples_in >= samples && s.durable_samples_in >= s.samples_in {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "history never committed: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let cpu_s = proc_cpu_seconds(pid) - cpu0;
    let stats = history.stats();
    let (bytes, kept_samples) = history.footprint();
    drop(history);
    drop(tx);
    historian.stop().await;
    Ingest {
        offer,
        samples,
        sent,
        accepted: accepted.unwrap_or(durable),
        durable,
        cpu_s,
        generate_ns,
        dropped: stats.dropped,
        commits: stats.commits,
        max_commit: stats.max_commit,
        bytes,
        kept_samples,
        log_bytes: stats.log_bytes,
        file: file_size(&settings.path),
    }
}

// 2. Bytes per sample.

struct Footprint {
    bytes: u64,
    samples: u64,
    dropped: u64,
    /// (label, re-encoded figures).
    groups: Vec<(String, Kept)>,
    /// The redb file after the clean stops: length and bytes allocated.
    file: (u64, u64),
}

impl Footprint {
    fn per_sample(&self) -> f64 {
        self.bytes as f64 / self.samples.max(1) as f64
    }
}

/// Opens a history file again, with no tags of its own, and weighs what it holds; `group`
/// names each stored tag's group.
async fn reopen_and_weigh(
    settings: &HistorySettings,
    table: &TagTable,
    group: impl Fn(&str, DataType) -> String,
) -> Footprint {
    let empty = Arc::new(TagTable::new(Vec::new(), Vec::new()));
    let (historian, _tx) = start(settings, &empty);
    let history = historian.history().clone();
    let (bytes, samples) = history.footprint();
    let dropped = history.stats().dropped;
    let mut groups: Vec<(String, Kept)> = Vec::new();
    for def in table.tags() {
        let path = def.path.to_string();
        if !history.knows(&path) {
            continue;
        }
        let kept = reencoded(&history, &path, def.data_type);
        let label = group(&path, def.data_type);
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, k)) => k.add(kept),
            None => groups.push((label, kept)),
        }
    }
    drop(history);
    historian.stop().await;
    Footprint {
        bytes,
        samples,
        dropped,
        groups,
        file: file_size(&settings.path),
    }
}

fn type_name(t: DataType) -> String {
    format!("{t:?}")
}

/// The shipped config for `window`, then its history file weighed.
async fn shipped(window: Duration) -> Footprint {
    let edge = Edge::shipped().await;
    tokio::time::sleep(window).await;
    let Edge { runtime, state, .. } = edge;
    runtime.shutdown().await.expect("clean shutdown");
    // The same tags, from the same file, to name the stored series.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .expect("read config.example.yaml");
    let text = format!("state_dir: {}\n{text}", state.path().display());
    let mut config = Config::parse("config.example.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let settings = config.history.take().expect("the example keeps history");
    let table = config.take_tag_table();
    reopen_and_weigh(&settings, &table, |_, t| type_name(t)).await
}

/// Registers read every 100 ms for `window`, then weighed.
async fn counters(window: Duration) -> Footprint {
    let dir = tempfile::tempdir().expect("dir");
    let (settings, table) = config(
        dir.path(),
        &devices(
            DEVICES,
            |d| format!("unit{}", d + 1),
            |t| (format!("hr{t}"), "uint16"),
        ),
    );
    let (historian, tx) = start(&settings, &table);
    let began = Instant::now();
    let tasks: Vec<_> = tag_ids(&table)
        .into_iter()
        .enumerate()
        .map(|(d, ids)| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut last: Vec<Option<u16>> = vec![None; ids.len()];
                let mut tick = tokio::time::interval(POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut polls = 0u32;
                loop {
                    tick.tick().await;
                    let elapsed = began.elapsed();
                    if elapsed >= window {
                        break;
                    }
                    let time = Timestamp::now().as_micros();
                    let mut batch = Vec::with_capacity(ids.len());
                    for (t, &id) in ids.iter().enumerate() {
                        let value = if t < TAGS_PER_DEVICE / 2 {
                            polls.wrapping_add(t as u32) as u16
                        } else {
                            // 1 to 50 events a second, counted by the device.
                            let rate = (t - TAGS_PER_DEVICE / 2 + 1) as f64;
                            (rate * elapsed.as_secs_f64()) as u64 as u16
                        };
                        if last[t] != Some(value) {
                            last[t] = Some(value);
                            batch.push(sample(id, Value::UInt16(value), time));
                        }
                    }
                    polls += 1;
                    if !batch.is_empty() {
                        let event = ModelEvent::Samples(DeviceId(d as u16), Arc::new(batch));
                        if tx.send(event).await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    drop(tx);
    historian.stop().await;
    reopen_and_weigh(&settings, &table, |path, _| {
        let register: usize = path
            .rsplit("hr")
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if register < TAGS_PER_DEVICE / 2 {
            "one a poll".to_string()
        } else {
            "1-50 events/s".to_string()
        }
    })
    .await
}

// 3. One day at 1 s.

struct Day {
    build: Duration,
    stored: Kept,
    in_process: Vec<Duration>,
    raw_rt: Vec<Duration>,
    raw_values: usize,
    avg_rt: Vec<Duration>,
    avg_values: usize,
    avg_status: String,
}

const DAY_OPCUA: &str = "  endpoints: [none]\n  anonymous: read\nhistory:\n  commit_window: 1s";

fn day_devices() -> String {
    let mut y = String::from(
        "  - name: day\n    driver: enip-sim\n    enabled: false\n    poll_interval: 1s\n    tags:\n",
    );
    for t in 0..DAY_TAGS {
        y.push_str(&format!(
            "      - {{ name: t{t}, type: float32, address: \"T_{t}\" }}\n"
        ));
    }
    y
}

fn date_time(us: i64) -> DateTime {
    const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;
    DateTime::from(us * 10 + UNIX_EPOCH_TICKS)
}

async fn day() -> Day {
    let state = tempfile::tempdir().expect("state dir");
    let (settings, table) = config(state.path(), &day_devices());
    let ids = tag_ids(&table).remove(0);
    let now = Timestamp::now().as_micros();
    let from = (now / 1_000_000 - DAY_S) * 1_000_000;
    let to = from + DAY_S * 1_000_000 - 1;

    let (historian, tx) = start(&settings, &table);
    let mut rng = Rng(11);
    let began = Instant::now();
    for k in 0..DAY_S {
        let time = from + k * 1_000_000 + (rng.next() % 2000) as i64;
        let batch: Vec<Sample> = ids
            .iter()
            .enumerate()
            .map(|(t, &id)| {
                let period = 600.0 * (t + 1) as f64;
                let x = 50.0
                    + 10.0 * (std::f64::consts::TAU * k as f64 / period).sin()
                    + 0.05 * rng.noise();
                sample(id, Value::Float(x as f32), time)
            })
            .collect();
        tx.send(ModelEvent::Samples(DeviceId(0), Arc::new(batch)))
            .await
            .expect("intake runs");
    }
    assert!(
        settle(historian.history(), Duration::from_secs(120)).await,
        "the day never became durable"
    );
    let build = began.elapsed();
    drop(tx);
    historian.stop().await;

    // In-process: the file as a restart finds it.
    let (historian, tx) = start(&settings, &table);
    let history = historian.history().clone();
    let stored = reencoded(&history, "day/t0", DataType::Float);
    let mut in_process = Vec::new();
    for _ in 0..READS {
        let t0 = Instant::now();
        let read = history
            .read_raw("day/t0", from, to, false, 100_000)
            .expect("reads")
            .expect("known tag");
        in_process.push(t0.elapsed());
        assert_eq!(read.points.len(), DAY_S as usize, "one day of values");
        assert!(!read.more);
    }
    drop(history);
    drop(tx);
    historian.stop().await;

    // Through OPC UA: the same file served by uaedge.
    let edge = Edge::start_in(state, DAY_OPCUA, &day_devices()).await;
    let pki = tempfile::tempdir().expect("pki dir");
    let (session, event_loop) = connect(&edge.url, pki.path()).await;
    let node = NodeId::new(edge.ns, "day/t0");
    let read = |details: HistoryReadAction| {
        let (session, node) = (session.clone(), node.clone());
        async move {
            let t0 = Instant::now();
            let results = session
                .history_read(
                    details,
                    TimestampsToReturn::Source,
                    false,
                    &[HistoryReadValueId {
                        node_id: node,
                        ..Default::default()
                    }],
                )
                .await
                .expect("HistoryRead");
            let took = t0.elapsed();
            let result = results.into_iter().next().expect("one result");
            let values = result
                .history_data
                .inner_as::<HistoryData>()
                .and_then(|d| d.data_values.as_ref())
                .map_or(0, Vec::len);
            (took, values, result.status_code, result.continuation_point)
        }
    };
    let raw = || {
        HistoryReadAction::ReadRawModifiedDetails(ReadRawModifiedDetails {
            is_read_modified: false,
            start_time: date_time(from),
            end_time: date_time(to),
            num_values_per_node: 0,
            return_bounds: false,
        })
    };
    let average = || {
        HistoryReadAction::ReadProcessedDetails(ReadProcessedDetails {
            start_time: date_time(from),
            end_time: date_time(from + DAY_S * 1_000_000),
            processing_interval: 60_000.0,
            aggregate_type: Some(vec![ObjectId::AggregateFunction_Average.into()]),
            aggregate_configuration: AggregateConfiguration {
                use_server_capabilities_defaults: true,
                ..Default::default()
            },
        })
    };
    let (mut raw_rt, mut raw_values) = (Vec::new(), 0);
    for _ in 0..READS {
        let (took, n, status, more) = read(raw()).await;
        assert!(status.is_good(), "raw read: {status}");
        assert!(more.is_null(), "one page holds the day");
        raw_rt.push(took);
        raw_values = n;
    }
    let (mut avg_rt, mut avg_values, mut avg_status) = (Vec::new(), 0, String::new());
    for _ in 0..READS {
        let (took, n, status, _) = read(average()).await;
        avg_rt.push(took);
        avg_values = n;
        avg_status = status.to_string();
    }
    let _ = session.disconnect().await;
    event_loop.abort();
    let Edge { runtime, .. } = edge;
    runtime.shutdown().await.expect("clean shutdown");
    Day {
        build,
        stored,
        in_process,
        raw_rt,
        raw_values,
        avg_rt,
        avg_values,
        avg_status,
    }
}

async fn connect(url: &str, pki: &Path) -> (Arc<Session>, tokio::task::JoinHandle<()>) {
    let mut client = ClientBuilder::new()
        .application_name("uaedge history bench")
        .application_uri("urn:uaedge:bench:history")
        .pki_dir(pki)
        .create_sample_keypair(false)
        .trust_server_certs(true)
        .session_retry_limit(3)
        .max_message_size(64 << 20)
        .max_chunk_count((64 << 20) / 8192 + 1)
        .max_array_length(200_000)
        .client()
        .unwrap_or_else(|e| panic!("client config: {e:?}"));
    let endpoint: opcua::types::EndpointDescription = (
        url,
        "http://opcfoundation.org/UA/SecurityPolicy#None",
        MessageSecurityMode::None,
        UserTokenPolicy::anonymous(),
    )
        .into();
    let (session, event_loop) = client
        .connect_to_matching_endpoint(endpoint, IdentityToken::Anonymous)
        .await
        .expect("endpoint");
    let handle = event_loop.spawn();
    let event_loop = tokio::spawn(async move {
        let _ = handle.await;
    });
    assert!(session.wait_for_connection().await, "session to {url}");
    (session, event_loop)
}

fn main() {
    // The client warns that it has no certificate, which security None does not need.
    uaedge::logging::init("error,uaedge::history=warn,opcua_client=off");
    let live_window = Duration::from_secs(env_or("HISTORY_LIVE_SECS", 90));
    let flat = Duration::from_secs(env_or("HISTORY_INGEST_SECS", 10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let pace = env_or("HISTORY_PACE", 1_000_000u64);
    let sections: String = env_or("HISTORY_SECTIONS", "123".to_string());
    let (ingests, day, live) = runtime.block_on(async {
        let mut ingests = Vec::new();
        if sections.contains('1') {
            ingests.push(ingest(Offer::FlatOut(flat)).await);
            ingests.push(ingest(Offer::Paced(pace, flat)).await);
        }
        let day = if sections.contains('3') {
            Some(day().await)
        } else {
            None
        };
        let live = if sections.contains('2') {
            Some(tokio::join!(shipped(live_window), counters(live_window)))
        } else {
            None
        };
        (ingests, day, live)
    });

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = chrono::DateTime::from_timestamp_micros(Timestamp::now().as_micros())
        .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M UTC").to_string());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "history benchmark: {date}, nproc {nproc}, load average {} at the end, {nproc} tokio workers, release build, {:.0} s in all",
        load.join(" "),
        started.elapsed().as_secs_f64()
    );

    if !ingests.is_empty() {
        println!(
            "1. ingest into an in-process Historian (commit window 1 s), 1,000 tags (500 noisy float32, 500 uint32 counters), batches of 100 [target ≥ 1,000,000 samples/s]:"
        );
    }
    for i in &ingests {
        let offered = match i.offer {
            Offer::FlatOut(d) => format!("flat out, {} s", d.as_secs()),
            Offer::Paced(rate, d) => format!("{rate}/s offered, {} s", d.as_secs()),
        };
        let kept = i.samples - i.dropped;
        println!(
            "   {offered}: {} samples sent at {:.0}/s, taken by the intake at {:.0}/s; {} kept, durable {:.2} s after the last was sent: {:.0} kept/s from the first batch to all durable; {} dropped",
            i.samples,
            i.rate(i.sent),
            i.rate(i.accepted),
            kept,
            (i.durable - i.sent).as_secs_f64(),
            kept as f64 / i.durable.as_secs_f64(),
            i.dropped
        );
        println!(
            "     CPU {:.0} % of one core over that time (whole process; the generator's share about {:.0} %, {:.0} ns/sample); {} commits, longest {:.0} ms; chunks {:.2} B/sample; log {:.1} MiB; the redb file {:.0} MiB long, {:.0} MiB allocated ({:.2} B/sample)",
            i.cpu_pct(),
            i.generator_pct(),
            i.generate_ns,
            i.commits,
            ms(i.max_commit),
            i.bytes as f64 / i.kept_samples.max(1) as f64,
            i.log_bytes as f64 / (1 << 20) as f64,
            i.file.0 as f64 / (1 << 20) as f64,
            i.file.1 as f64 / (1 << 20) as f64,
            i.file.1 as f64 / i.kept_samples.max(1) as f64
        );
    }

    if let Some((shipped, counters)) = &live {
        print_footprints(live_window, shipped, counters);
    }
    if let Some(day) = &day {
        print_day(day);
    }
}

fn print_footprints(live: Duration, shipped: &Footprint, counters: &Footprint) {
    let groups = |f: &Footprint| {
        f.groups
            .iter()
            .map(|(label, k)| {
                format!(
                    "\n     {label:<13} {:>4} tags {:>7} samples: {}",
                    k.tags,
                    k.samples,
                    k.split()
                )
            })
            .collect::<String>()
    };
    println!(
        "2. bytes per sample kept ({} s live; footprint: chunks in the file + open chunks, the log left out; per group: every tag read back and encoded again):",
        live.as_secs()
    );
    println!(
        "   shipped config.example.yaml [target ≤ 4]: {:.2} B/sample ({} B, {} samples, dropped {}; the redb file {} KiB long, {} KiB allocated){}",
        shipped.per_sample(),
        shipped.bytes,
        shipped.samples,
        shipped.dropped,
        shipped.file.0 / 1024,
        shipped.file.1 / 1024,
        groups(shipped)
    );
    println!(
        "   Modbus-like counters, 1,000 uint16 @100 ms, tokio interval + Timestamp::now() [target ≤ 2]: {:.2} B/sample ({} B, {} samples, dropped {}; the redb file {} KiB long, {} KiB allocated){}",
        counters.per_sample(),
        counters.bytes,
        counters.samples,
        counters.dropped,
        counters.file.0 / 1024,
        counters.file.1 / 1024,
        groups(counters)
    );
    println!(
        "   for comparison, the Sparkplug store-and-forward journal: {JOURNAL_BYTES_PER_SAMPLE} B/sample on disk (README, Store and forward; not measured here)"
    );
}

fn print_day(d: &Day) {
    let (ip_min, ip_med) = min_median(&mut d.in_process.clone());
    let (raw_min, raw_med) = min_median(&mut d.raw_rt.clone());
    let (avg_min, avg_med) = min_median(&mut d.avg_rt.clone());
    println!(
        "3. one day of one float32 tag at 1 s, read back (10 such tags in the file, written in {:.1} s; the tag {}):",
        d.build.as_secs_f64(),
        d.stored.split()
    );
    println!(
        "   History::read_raw of 86,400 values, in-process [target ≤ 100 ms server time]: {ip_min:.1} ms min, {ip_med:.1} ms median of {READS}"
    );
    println!(
        "   HistoryRead raw over OPC UA, one request (async-opcua client, round trip; {} values): {raw_min:.1} ms min, {raw_med:.1} ms median, the first {:.1} ms",
        d.raw_values,
        d.raw_rt.first().map_or(f64::NAN, |t| ms(*t))
    );
    println!(
        "   HistoryRead processed, Average over 1-minute intervals, over OPC UA [target ≤ 50 ms server time]: {avg_min:.1} ms min, {avg_med:.1} ms median, round trip only ({} values, {})",
        d.avg_values, d.avg_status
    );
}
