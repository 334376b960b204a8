//! The journal on storage that refuses to grow past a limit, as a full
//! filesystem or an RLIMIT_FSIZE does: commits fail without a spin, the
//! buffer stays bounded and counts what it drops, and writing resumes by
//! itself once space returns, with nothing that was kept lost.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{Builder, StorageBackend};

use super::journal::Opener;
use super::tables::now_micros;
use super::{Ack, Journal, JournalConfig};

#[derive(Debug)]
struct Quota {
    inner: FileBackend,
    limit: Arc<AtomicU64>,
}

impl Quota {
    fn check(&self, end: u64) -> io::Result<()> {
        if end > self.limit.load(Ordering::SeqCst) {
            // ENOSPC, as a full filesystem reports it.
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl StorageBackend for Quota {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(len)?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset + data.len() as u64)?;
        self.inner.write(offset, data)
    }
}

fn quota_opener(path: &Path, limit: Arc<AtomicU64>) -> Opener {
    let path = path.to_path_buf();
    Box::new(move || {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Builder::new().create_with_backend(Quota {
            inner: FileBackend::new(file)?,
            limit: Arc::clone(&limit),
        })
    })
}

const PAYLOAD: usize = 1000;

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAYLOAD];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn id(p: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[..8]);
    u64::from_le_bytes(b)
}

#[test]
fn a_full_disk_is_retried_with_backoff_counted_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let limit = Arc::new(AtomicU64::new(u64::MAX));
    let config = JournalConfig {
        max_bytes: 200 * (PAYLOAD as u64 + 16),
        max_age: Duration::from_secs(3600),
        commit_window: Duration::from_millis(100),
    };
    let mut j = Journal::open_with(
        path.clone(),
        config.clone(),
        quota_opener(&path, Arc::clone(&limit)),
        &AtomicBool::new(false),
    )
    .unwrap();
    let mut next = 0u64;
    for _ in 0..50 {
        j.append(now_micros(), payload(next));
        next += 1;
    }
    j.commit().unwrap();

    // The disk is full: the file may not grow by a byte.
    limit.store(std::fs::metadata(&path).unwrap().len(), Ordering::SeqCst);
    let mut failures = 0;
    // Drops as the caller sees them, through the commits that succeed.
    let mut reported = 0;
    while failures < 6 {
        for _ in 0..100 {
            j.append(now_micros(), payload(next));
            next += 1;
        }
        match j.commit() {
            Ok(stats) => reported += stats.dropped_records,
            Err(_) => failures += 1,
        }
        assert!(next < 10_000, "commits never failed");
    }
    // Retries are spaced out, further each time, instead of one per window.
    let wait = j.next_commit_due().unwrap() - Instant::now();
    assert!(wait > config.commit_window * 8, "{wait:?}");
    // Memory stayed within the byte bound; what did not fit is counted.
    let (_, bytes) = j.backlog();
    assert!(bytes <= 2 * config.max_bytes, "{bytes}");
    let (dropped, _) = j.dropped_total();
    assert!(dropped > 0);
    // Reads fail cleanly rather than panic; a counter the disk refuses is still the one
    // handed out, so a caller that goes on never reuses it.
    let _ = j.oldest(10);
    // (Nothing at all may be written for this one: a small write can fit in freed pages.)
    limit.store(0, Ordering::SeqCst);
    assert!(j.set_u64("bd", 3).is_err());
    assert_eq!(j.get_u64("bd").unwrap(), Some(3));

    // Space returns: the next commit reopens the file and writes what was kept.
    limit.store(u64::MAX, Ordering::SeqCst);
    let stats = j.commit().unwrap();
    // No retry pending any more: the next due commit is the age bound's, an hour away.
    let due = j.next_commit_due().unwrap();
    assert!(
        due > Instant::now() + Duration::from_secs(60),
        "retry state cleared"
    );
    // What the buffer dropped while commits failed reaches the caller with the commit that
    // succeeds, so a drop counter fed from commit stats misses nothing.
    reported += stats.dropped_records;
    assert_eq!(reported, j.dropped_total().0);
    let (records, _) = j.backlog();
    let kept: Vec<u64> = j
        .oldest(usize::MAX)
        .unwrap()
        .iter()
        .map(|r| id(&r.2))
        .collect();
    assert_eq!(kept.len() as u64, records);
    // Oldest dropped first: what is left is one unbroken run up to the newest.
    assert_eq!(kept.last(), Some(&(next - 1)));
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
    let seqs: Vec<u64> = j.oldest(usize::MAX).unwrap().iter().map(|r| r.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    drop(j);

    // And it is on disk, as a reopen by the ordinary path shows.
    let mut j = Journal::open(&path, config).unwrap();
    let again: Vec<u64> = j
        .oldest(usize::MAX)
        .unwrap()
        .iter()
        .map(|r| id(&r.2))
        .collect();
    assert_eq!(again, kept);
    assert_eq!(
        j.get_u64("bd").unwrap(),
        Some(3),
        "written by the recovering commit"
    );
    let next_seq = j.next_seq();
    assert!(seqs.iter().all(|s| *s < next_seq), "seqs never repeat");
}

fn quota_journal(path: &Path, limit: &Arc<AtomicU64>) -> Journal {
    let config = JournalConfig {
        max_bytes: 64 * 1024 * 1024,
        max_age: Duration::from_secs(3600),
        commit_window: Duration::from_millis(100),
    };
    Journal::open_with(
        path.to_path_buf(),
        config,
        quota_opener(path, Arc::clone(limit)),
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// Seqs and payload ids (the test appends payload(seq)) of everything the journal holds.
fn held(j: &Journal) -> Vec<u64> {
    let all = j.oldest(usize::MAX).unwrap();
    for (seq, _, p) in &all {
        assert_eq!(id(p), *seq, "payload of {seq}");
    }
    all.iter().map(|r| r.0).collect()
}

#[test]
fn a_commit_that_fails_in_flight_gives_its_records_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let limit = Arc::new(AtomicU64::new(u64::MAX));
    let mut j = quota_journal(&path, &limit);
    let append = |j: &mut Journal, range: std::ops::RangeInclusive<u64>| {
        for seq in range {
            assert_eq!(j.append(now_micros(), payload(seq)), seq);
        }
    };
    append(&mut j, 1..=20);
    j.commit().unwrap();
    append(&mut j, 21..=40);
    assert_eq!(j.ack(3), Ack::Deleting);
    let job = j.begin_commit().unwrap();
    // While it is in flight: more records, and acks of every kind.
    append(&mut j, 41..=50);
    assert_eq!(j.ack(4), Ack::Deleting, "committed");
    assert_eq!(j.ack(25), Ack::Deleting, "in flight");
    assert_eq!(j.ack(45), Ack::Cancelled, "gathered since");
    // The disk refuses every byte: the write fails on its own thread.
    limit.store(0, Ordering::SeqCst);
    std::thread::spawn(move || job.write()).join().unwrap();
    assert!(j.finish_commit().is_err());
    assert!(!j.commit_in_flight());
    let wait = j.next_commit_due().unwrap() - Instant::now();
    assert!(
        wait > Duration::from_millis(50),
        "a retry, not a spin: {wait:?}"
    );

    // The batch is back in front of what came since: nothing lost, nothing twice, in seq
    // order, and what was acked meanwhile does not come back. (Reads need the file, which
    // the failure closed; the next commit reopens it, so read after that.)
    let expected: Vec<u64> = (1..=50).filter(|s| ![3, 4, 25, 45].contains(s)).collect();
    assert_eq!(
        j.backlog().0,
        expected.len() as u64 + 2,
        "3 and 4 count until deleted"
    );
    limit.store(u64::MAX, Ordering::SeqCst);
    let stats = j.commit().unwrap();
    assert_eq!((stats.written, stats.deleted), (28, 2));
    assert_eq!(held(&j), expected);
    assert_eq!(j.backlog().0, expected.len() as u64);
    drop(j);

    let j = quota_journal(&path, &limit);
    assert_eq!(held(&j), expected, "on disk");
    assert_eq!(j.next_seq(), 51);
}

#[test]
fn a_counter_set_while_a_commit_carries_an_older_value_keeps_the_newer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let limit = Arc::new(AtomicU64::new(u64::MAX));
    let mut j = quota_journal(&path, &limit);
    j.set_u64("bd", 2).unwrap();
    // Refused: 3 waits for the next commit.
    limit.store(0, Ordering::SeqCst);
    assert!(j.set_u64("bd", 3).is_err());
    limit.store(u64::MAX, Ordering::SeqCst);
    j.append(now_micros(), payload(1));
    // The commit takes bd along, reopening the file (the failure closed it) on its own
    // thread; meanwhile no second handle may open it, so 4 waits for a commit too.
    let job = j.begin_commit().unwrap();
    assert!(j.set_u64("bd", 4).is_err());
    job.write();
    j.finish_commit().unwrap();
    // Now a commit carries bd = 4, and before its transaction starts the node sets 5,
    // durably. The commit must write 5 (what is current once it holds redb's writer lock),
    // not the 4 it was begun with, or a restart would see a bdSeq older than one used.
    j.append(now_micros(), payload(2));
    let job = j.begin_commit().unwrap();
    j.set_u64("bd", 5).unwrap();
    job.write();
    j.finish_commit().unwrap();
    assert_eq!(j.get_u64("bd").unwrap(), Some(5));
    drop(j);
    let mut j = quota_journal(&path, &limit);
    assert_eq!(j.get_u64("bd").unwrap(), Some(5));
}
