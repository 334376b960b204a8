//! Behaviour tests of the journal (the crash test is in `crash_tests`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::tables::{now_micros, record_bytes};
use super::{Ack, Journal, JournalConfig, StoreError};

/// A journal as the edge node's defaults would have it, shared with `commit_tests`.
pub(super) fn config() -> JournalConfig {
    JournalConfig {
        max_bytes: 64 * 1024 * 1024,
        max_age: Duration::from_secs(3600),
        commit_window: Duration::from_millis(100),
    }
}

pub(super) fn seqs(records: &[(u64, i64, Vec<u8>)]) -> Vec<u64> {
    records.iter().map(|r| r.0).collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn order_and_seqs_continue_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let now = now_micros();
    let mut j = Journal::open(&path, config()).unwrap();
    let first: Vec<u64> = (0..5)
        .map(|i| j.append(now + i, vec![i as u8; 10]))
        .collect();
    assert_eq!(first, [1, 2, 3, 4, 5]);
    j.close().unwrap();

    let mut j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.backlog(), (5, 5 * record_bytes(10)));
    assert_eq!(j.committed_through(), Some(5));
    let second: Vec<u64> = (0..3).map(|i| j.append(now + 10 + i, vec![9; 4])).collect();
    assert_eq!(second, [6, 7, 8]);
    let all = j.oldest(100).unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(all[2], (3, now + 2, vec![2; 10]));
    // Drain everything: the table is empty, yet seqs must not restart.
    for seq in 1..=8 {
        assert_ne!(j.ack(seq), Ack::Unknown, "seq {seq}");
    }
    j.close().unwrap();

    let mut j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.backlog(), (0, 0));
    assert_eq!(j.append(now, vec![1]), 9);
}

#[test]
fn ack_before_commit_never_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    let a = j.append(now_micros(), vec![1; 100]);
    let b = j.append(now_micros(), vec![2; 100]);
    let c = j.append(now_micros(), vec![3; 100]);
    assert_eq!(j.ack(a), Ack::Cancelled);
    assert_eq!(j.ack(c), Ack::Cancelled);
    assert_eq!(j.ack(c), Ack::Unknown, "a duplicate PUBACK is harmless");
    assert_eq!(j.backlog(), (1, record_bytes(100)));
    let stats = j.commit().unwrap();
    assert_eq!((stats.written, stats.deleted), (1, 0));

    // A window whose every append was acked in time leaves the file as is.
    let before = std::fs::read(&path).unwrap();
    for _ in 0..10 {
        let seq = j.append(now_micros(), vec![4; 100]);
        assert_eq!(j.ack(seq), Ack::Cancelled);
    }
    assert!(j.next_commit_due().is_some());
    assert_eq!(j.commit().unwrap().written, 0);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(j);

    let j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.backlog(), (1, record_bytes(100)));
    assert_eq!(seqs(&j.oldest(10).unwrap()), [b]);
}

#[test]
fn ack_after_commit_deletes_in_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    let a = j.append(now_micros(), vec![1; 50]);
    let b = j.append(now_micros(), vec![2; 50]);
    assert_eq!(j.commit().unwrap().written, 2);
    assert_eq!(j.ack(a), Ack::Deleting);
    assert_eq!(j.ack(a), Ack::Unknown);
    assert_eq!(
        seqs(&j.oldest(10).unwrap()),
        [b],
        "hidden before its delete commits"
    );
    assert!(j.next_commit_due().is_some());
    let stats = j.commit().unwrap();
    assert_eq!((stats.written, stats.deleted), (0, 1));
    assert_eq!(j.backlog(), (1, record_bytes(50)));
    assert_eq!(j.ack(a), Ack::Unknown, "below the oldest committed seq");
    drop(j);

    let j = Journal::open(&path, config()).unwrap();
    assert_eq!(seqs(&j.oldest(10).unwrap()), [b]);
}

#[test]
fn byte_bound_drops_oldest_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let size = record_bytes(100);
    let cfg = JournalConfig {
        max_bytes: 10 * size,
        ..config()
    };
    let mut j = Journal::open(&path, cfg).unwrap();
    let mut dropped = 0;
    for round in 0..5 {
        for i in 0..5u8 {
            j.append(now_micros(), vec![round * 5 + i; 100]);
        }
        dropped += j.commit().unwrap().dropped_records;
    }
    assert_eq!(dropped, 15);
    assert_eq!(j.dropped_total(), (15, 15 * size));
    assert_eq!(j.backlog(), (10, 10 * size));
    let left = j.oldest(100).unwrap();
    assert_eq!(seqs(&left), (16..=25).collect::<Vec<_>>());
    assert_eq!(left[0].2, vec![15; 100]);
}

#[test]
fn pending_buffer_respects_byte_bound_without_commits() {
    let dir = tempfile::tempdir().unwrap();
    let size = record_bytes(1000);
    let cfg = JournalConfig {
        max_bytes: 20 * size,
        ..config()
    };
    let mut j = Journal::open(dir.path().join("j.redb"), cfg).unwrap();
    for _ in 0..100 {
        j.append(now_micros(), vec![0; 1000]);
    }
    assert_eq!(j.backlog(), (20, 20 * size));
    assert_eq!(j.dropped_total(), (80, 80 * size));
    assert_eq!(j.oldest(1).unwrap()[0].0, 81);
}

#[test]
fn age_bound_drops_old_records_and_schedules_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    let hour = 3_600_000_000i64;
    let now = now_micros();
    for _ in 0..3 {
        j.append(now - 2 * hour, vec![0; 10]);
    }
    j.append(now - hour + 30_000_000, vec![1; 10]);
    j.append(now, vec![2; 10]);
    let stats = j.commit().unwrap();
    assert_eq!((stats.written, stats.dropped_records), (5, 3));
    assert_eq!(j.dropped_total(), (3, 3 * record_bytes(10)));
    assert_eq!(seqs(&j.oldest(10).unwrap()), [4, 5]);

    // Nothing is dirty, yet a commit is due when record 4 expires (~30 s).
    let due = j.next_commit_due().unwrap();
    let wait = due.saturating_duration_since(Instant::now());
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
}

#[test]
fn next_commit_due_follows_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path().join("j.redb"), config()).unwrap();
    assert_eq!(j.next_commit_due(), None);
    let before = Instant::now();
    let seq = j.append(now_micros(), vec![1]);
    let due = j.next_commit_due().unwrap();
    assert!(due >= before + Duration::from_millis(100));
    assert!(due <= Instant::now() + Duration::from_millis(100));
    // A cancelled append still leaves a commit due; it is a cheap no-op.
    assert_eq!(j.ack(seq), Ack::Cancelled);
    assert_eq!(j.commit().unwrap().written, 0);
    assert_eq!(j.next_commit_due(), None);
}

#[test]
fn meta_values_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.get_u64("bdSeq").unwrap(), None);
    j.set_u64("bdSeq", 41).unwrap();
    j.set_u64("bdSeq", 42).unwrap();
    j.append(now_micros(), vec![1]);
    drop(j);
    let mut j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.get_u64("bdSeq").unwrap(), Some(42));
    assert_eq!(j.get_u64("other").unwrap(), None);
    // A caller key named like the journal's own bookkeeping is just a key.
    assert_eq!(j.get_u64("next_seq").unwrap(), None);
}

#[test]
fn oldest_merges_committed_and_pending_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path().join("j.redb"), config()).unwrap();
    let ts = now_micros();
    for i in 1..=3u8 {
        j.append(ts, vec![i]);
    }
    j.commit().unwrap();
    for i in 4..=6u8 {
        j.append(ts, vec![i]);
    }
    assert_eq!(j.ack(2), Ack::Deleting);
    assert_eq!(j.ack(5), Ack::Cancelled);
    let all = j.oldest(10).unwrap();
    assert_eq!(seqs(&all), [1, 3, 4, 6]);
    assert!(all.iter().all(|(seq, _, p)| p == &vec![*seq as u8]));
    assert_eq!(seqs(&j.oldest(2).unwrap()), [1, 3]);
    assert_eq!(seqs(&j.oldest(3).unwrap()), [1, 3, 4]);
    assert_eq!(seqs(&j.oldest_after(1, 10).unwrap()), [3, 4, 6]);
    assert_eq!(seqs(&j.oldest_after(3, 1).unwrap()), [4]);
    assert!(j.oldest(0).unwrap().is_empty());
    assert!(j.oldest_after(u64::MAX, 5).unwrap().is_empty());
}

#[test]
fn a_file_that_is_not_redb_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "mqtt:\n  host: 127.0.0.1\n").unwrap();
    let err = Journal::open(&path, config()).err().unwrap();
    assert!(matches!(err, StoreError::NotRedb { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()), "{text}");
    assert!(text.contains("not a redb database"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), b"mqtt:\n  host: 127.0.0.1\n");
}

#[test]
fn a_second_handle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let _j = Journal::open(&path, config()).unwrap();
    let err = Journal::open(&path, config()).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
}

#[test]
fn missing_directory_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("j.redb");
    let err = Journal::open(&path, config()).err().unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("absent"));
}

/// Appends `n` records of `size` bytes with a commit every 100, as an outage
/// would, then drains them oldest first the way the publisher does.
fn fill_and_drain(j: &mut Journal, n: usize, size: usize) {
    for i in 0..n {
        j.append(now_micros(), vec![i as u8; size]);
        if i % 100 == 99 {
            j.commit().unwrap();
        }
    }
    j.commit().unwrap();
    loop {
        let batch = j.oldest(200).unwrap();
        if batch.is_empty() {
            break;
        }
        for (seq, _, _) in batch {
            assert_eq!(j.ack(seq), Ack::Deleting);
        }
        j.commit().unwrap();
    }
    assert_eq!(j.backlog(), (0, 0));
}

#[test]
fn file_size_plateaus_over_fill_and_drain_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..6 {
        // 1500 × 800 B ≈ 1.2 MB logical per outage: below the compaction
        // floor, so this measures redb's own reuse of freed pages.
        fill_and_drain(&mut j, 1500, 800);
        sizes.push(file_len(&path));
    }
    eprintln!("fill/drain file sizes: {sizes:?}");
    let first = sizes[0];
    assert!(
        sizes.iter().all(|&s| s <= first + first / 4),
        "file keeps growing: {sizes:?}"
    );
}

#[test]
fn byte_bound_keeps_the_file_bounded_during_a_long_outage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let cfg = JournalConfig {
        max_bytes: 1024 * 1024,
        ..config()
    };
    let mut j = Journal::open(&path, cfg).unwrap();
    let mut sizes = Vec::new();
    // 12 MB through a 1 MB bound.
    for round in 0..15 {
        for _ in 0..1000 {
            j.append(now_micros(), vec![round as u8; 784]);
            if j.backlog().0.is_multiple_of(100) {
                j.commit().unwrap();
            }
        }
        j.commit().unwrap();
        assert!(j.backlog().1 <= 1024 * 1024);
        sizes.push(file_len(&path));
    }
    eprintln!("bounded outage file sizes: {sizes:?}");
    let peak = sizes.iter().copied().max().unwrap_or(0);
    assert!(peak < 4 * 1024 * 1024, "{sizes:?}");
    assert!(
        sizes[14] <= sizes[4] + sizes[4] / 4,
        "still growing: {sizes:?}"
    );
    assert!(j.dropped_total().0 > 10_000);
}

#[test]
fn a_drained_large_backlog_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    // ~8 MB logical, above the compaction floor.
    for i in 0..10_000u32 {
        j.append(now_micros(), vec![i as u8; 800]);
        if i % 500 == 499 {
            j.commit().unwrap();
        }
    }
    j.commit().unwrap();
    let peak = file_len(&path);
    let mut compacted = false;
    while let Ok(batch) = j.oldest(1000) {
        if batch.is_empty() {
            break;
        }
        for (seq, _, _) in batch {
            j.ack(seq);
        }
        compacted |= j.commit().unwrap().compacted;
    }
    let after = file_len(&path);
    eprintln!("compaction: peak {peak} -> {after}");
    assert!(compacted, "peak {peak}, after {after}");
    assert!(after < peak / 4, "peak {peak}, after {after}");
    // Still a working journal after compaction.
    let seq = j.append(now_micros(), vec![7; 10]);
    assert_eq!(seq, 10_001);
    j.close().unwrap();
    let j = Journal::open(&path, config()).unwrap();
    assert_eq!(seqs(&j.oldest(10).unwrap()), [10_001]);
}

#[test]
fn extreme_config_and_timestamps_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        max_bytes: u64::MAX,
        max_age: Duration::MAX,
        commit_window: Duration::MAX,
    };
    let mut j = Journal::open(dir.path().join("j.redb"), cfg).unwrap();
    j.append(i64::MAX, vec![1]);
    j.append(i64::MIN, vec![2]);
    assert_eq!(j.next_commit_due(), None);
    assert_eq!(j.commit().unwrap().dropped_records, 0);
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    assert!(j.next_commit_due().is_none_or(|due| due > far));
    assert_eq!(j.backlog().0, 2);
}

#[test]
fn a_wall_clock_jump_forward_does_not_age_records_kept_for_seconds() {
    use super::tables::WALL_SHIFT;
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path().join("j.redb"), config()).unwrap();
    let hour = 3_600_000_000i64;
    for _ in 0..5 {
        j.append(now_micros(), vec![1; 10]);
    }
    j.commit().unwrap();
    // Back an hour, a few records, then forward two hours: the first five now read three
    // hours old, the next five two hours old, against an age bound of one hour.
    WALL_SHIFT.with(|s| s.set(-hour));
    for _ in 0..5 {
        j.append(now_micros(), vec![2; 10]);
    }
    j.commit().unwrap();
    WALL_SHIFT.with(|s| s.set(hour));
    let due = j.next_commit_due().expect("the age bound's deadline");
    assert!(
        due > Instant::now() + Duration::from_secs(1800),
        "due at once"
    );
    let stats = j.commit().unwrap();
    assert_eq!(stats.dropped_records, 0);
    assert_eq!(j.backlog().0, 10);
    // A record that really is old still goes, on the clock as it is now.
    let dir2 = tempfile::tempdir().unwrap();
    let mut k = Journal::open(dir2.path().join("k.redb"), config()).unwrap();
    k.append(now_micros() - 2 * hour, vec![3; 10]);
    k.append(now_micros(), vec![4; 10]);
    assert_eq!(k.commit().unwrap().dropped_records, 1);
    WALL_SHIFT.with(|s| s.set(0));
}
