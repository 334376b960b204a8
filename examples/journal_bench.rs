//! Throughput of the store-and-forward journal. Not a test: run it once,
//! in release, on the target disk:
//!
//! `cargo run --release --example journal_bench [DIR]`
//!
//! Payloads are 32 samples × 24 bytes (768 B), the size of a typical DDATA
//! batch; commits happen whenever `next_commit_due` says so (100 ms window).

use std::time::{Duration, Instant};

use uaedge::store::{Journal, JournalConfig};

const PAYLOAD: usize = 32 * 24;
const FILL_SECS: u64 = 3;
const MAX_RECORDS: u64 = 400_000;

fn config() -> JournalConfig {
    JournalConfig {
        max_bytes: 4 * 1024 * 1024 * 1024,
        max_age: Duration::from_secs(24 * 3600),
        commit_window: Duration::from_millis(100),
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[derive(Default)]
struct Commits {
    count: u32,
    total: Duration,
    max: Duration,
}

impl Commits {
    fn run(&mut self, j: &mut Journal, force: bool) -> Result<(), Box<dyn std::error::Error>> {
        if !force && j.next_commit_due().is_none_or(|d| d > Instant::now()) {
            return Ok(());
        }
        let t = Instant::now();
        j.commit()?;
        let took = t.elapsed();
        self.count += 1;
        self.total += took;
        self.max = self.max.max(took);
        Ok(())
    }

    fn report(&self, what: &str) {
        let avg = self.total / self.count.max(1);
        println!(
            "  {what}: {} commits, avg {avg:.2?}, max {:.2?}",
            self.count, self.max
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let path = dir.path().join("bench.redb");
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7) as u8).collect();
    println!(
        "journal bench: {PAYLOAD} B payloads, 100 ms commit window, file in {}",
        dir.path().display()
    );

    // Broker up: every record acked before its commit, so nothing is written.
    let mut j = Journal::open(&path, config())?;
    let mut commits = Commits::default();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        let seq = j.append(now_us(), payload.clone());
        j.ack(seq);
        n += 1;
        commits.run(&mut j, false)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "online (ack before commit): {:.0} appends/s",
        n as f64 / secs
    );
    commits.report("commits");

    // Broker down at a realistic rate: 2,000 batches/s (64k samples/s).
    let mut commits = Commits::default();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let target = start.elapsed().as_millis() as u64 * 2;
        while n < target {
            j.append(now_us(), payload.clone());
            n += 1;
        }
        commits.run(&mut j, false)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("offline at 2,000 appends/s: {n} records");
    commits.report("commits");

    // Broker down, appending flat out: the disk's ceiling.
    let mut commits = Commits::default();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(FILL_SECS) && n < MAX_RECORDS {
        j.append(now_us(), payload.clone());
        n += 1;
        commits.run(&mut j, false)?;
    }
    commits.run(&mut j, true)?;
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::metadata(&path)?.len();
    let (records, bytes) = j.backlog();
    println!(
        "offline flat out (all committed): {:.0} appends/s, {n} records in {secs:.2} s",
        n as f64 / secs
    );
    commits.report("commits");
    println!(
        "on disk: {file} B for {records} records = {:.0} B/record (logical {:.0} B/record)",
        file as f64 / records.max(1) as f64,
        bytes as f64 / records.max(1) as f64
    );

    // Reopen cost: the scan that recomputes the counters.
    drop(j);
    let t = Instant::now();
    let mut j = Journal::open(&path, config())?;
    println!("reopen with {records} records: {:.2?}", t.elapsed());

    // Drain: read oldest, ack each (as PUBACKs arrive), commit when due.
    let mut commits = Commits::default();
    let start = Instant::now();
    let mut drained = 0u64;
    loop {
        let batch = j.oldest(1000)?;
        if batch.is_empty() {
            break;
        }
        for (seq, _, _) in batch {
            j.ack(seq);
            drained += 1;
        }
        commits.run(&mut j, false)?;
    }
    commits.run(&mut j, true)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "drain (oldest + ack + commit): {:.0} records/s, {drained} records",
        drained as f64 / secs
    );
    commits.report("commits");
    println!("file after drain: {} B", std::fs::metadata(&path)?.len());
    Ok(())
}
