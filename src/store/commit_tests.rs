//! The commit split in three (`commit.rs`): appends, acks and reads go on while a commit
//! is in flight, and what the file holds afterwards is exactly what was not acked, in seq
//! order. The steps are interleaved by hand so that every case is deterministic; a failing
//! write is in `disk_full_tests`, a kill with a commit in flight in `crash_tests`.

use super::tables::{now_micros, record_bytes};
use super::tests::{config, seqs};
use super::{Ack, Journal, JournalConfig, StoreError};

/// The payload names its seq, so a record read back can be told from any other.
fn payload(seq: u64) -> Vec<u8> {
    let mut p = seq.to_le_bytes().to_vec();
    p.extend(std::iter::repeat_n(seq as u8, 40));
    p
}

fn append_range(j: &mut Journal, range: std::ops::RangeInclusive<u64>) {
    for seq in range {
        assert_eq!(j.append(now_micros(), payload(seq)), seq);
    }
}

fn assert_holds(j: &Journal, expected: &[u64], what: &str) {
    let all = j.oldest(usize::MAX).unwrap();
    assert_eq!(seqs(&all), expected, "{what}");
    for (seq, _, bytes) in &all {
        assert_eq!(bytes, &payload(*seq), "{what}: payload of {seq}");
    }
}

#[test]
fn appends_acks_and_reads_go_on_while_a_commit_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    append_range(&mut j, 1..=5);
    assert_eq!(j.commit().unwrap().written, 5);
    append_range(&mut j, 6..=10);
    assert_eq!(j.ack(3), Ack::Deleting);

    let job = j.begin_commit().expect("records to write");
    assert!(j.commit_in_flight());
    assert_eq!(
        j.next_commit_due(),
        None,
        "no second commit while one is in flight"
    );
    assert!(j.begin_commit().is_none());
    // The write has not even started: intake and acks go on regardless.
    append_range(&mut j, 11..=15);
    assert_eq!(j.ack(2), Ack::Deleting, "committed");
    assert_eq!(j.ack(3), Ack::Unknown, "its delete is in flight");
    assert_eq!(j.ack(7), Ack::Deleting, "in flight");
    assert_eq!(j.ack(7), Ack::Unknown);
    assert_eq!(j.ack(12), Ack::Cancelled, "gathered since");
    assert_eq!(j.ack(99), Ack::Unknown);
    assert_eq!(
        j.committed_through(),
        Some(5),
        "nothing of the batch is durable yet"
    );
    let expected = [1, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15];
    assert_holds(&j, &expected, "before the write");
    assert_eq!(seqs(&j.oldest_after(5, 3).unwrap()), [6, 8, 9]);
    assert_eq!(seqs(&j.oldest_after(9, 3).unwrap()), [10, 11, 13]);

    // The write on another thread while this one reads: the batch's records come from
    // memory whether or not the reader's snapshot already has them, so no read shows a
    // record twice, misses one, or shows an acked one.
    let writer = std::thread::spawn(move || job.write());
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        assert_holds(&j, &expected, "during the write");
        reads += 1;
    }
    writer.join().unwrap();
    assert!(j.commit_in_flight(), "until it is finished");
    assert_holds(&j, &expected, "written, not finished");
    let stats = j.finish_commit().unwrap();
    assert_eq!((stats.written, stats.deleted), (5, 1));
    assert!(!j.commit_in_flight());
    assert_eq!(j.committed_through(), Some(10));
    assert_holds(&j, &expected, "finished");
    // 2 (acked as committed) and 7 (acked in flight) are the next commit's deletes.
    assert!(j.next_commit_due().is_some());
    let stats = j.commit().unwrap();
    assert_eq!((stats.written, stats.deleted), (4, 2));
    assert_eq!(j.backlog(), (11, 11 * record_bytes(48)));
    drop(j);

    let j = Journal::open(&path, config()).unwrap();
    assert_holds(&j, &expected, "after a reopen");
    assert_eq!(j.next_seq(), 16);
}

#[test]
fn records_acked_in_flight_are_deleted_once_it_lands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    append_range(&mut j, 1..=4);
    let job = j.begin_commit().unwrap();
    // The broker acked them all while the batch was on its way to the disk.
    for seq in 1..=4 {
        assert_eq!(j.ack(seq), Ack::Deleting);
    }
    assert!(
        j.oldest(10).unwrap().is_empty(),
        "acked records are hidden at once"
    );
    job.write();
    assert_eq!(j.finish_commit().unwrap().written, 4);
    // On disk, and hidden, until the next commit deletes them.
    assert_eq!(j.backlog().0, 4);
    assert!(j.oldest(10).unwrap().is_empty());
    assert_eq!(j.commit().unwrap().deleted, 4);
    assert_eq!(j.backlog(), (0, 0));
    assert_eq!(j.ack(2), Ack::Unknown);
    drop(j);
    let j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.backlog(), (0, 0));
    assert_eq!(j.next_seq(), 5);
}

#[test]
fn a_job_dropped_unwritten_gives_its_records_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    append_range(&mut j, 1..=3);
    j.commit().unwrap();
    append_range(&mut j, 4..=6);
    assert_eq!(j.ack(1), Ack::Deleting);
    let job = j.begin_commit().unwrap();
    append_range(&mut j, 7..=8);
    assert_eq!(j.ack(5), Ack::Deleting);
    // A task cancelled before it ran, or a write that panicked.
    drop(job);
    let err = j.finish_commit().err().unwrap();
    assert!(matches!(err, StoreError::CommitLost { .. }), "{err:?}");
    assert!(!j.commit_in_flight());
    assert_holds(&j, &[2, 3, 4, 6, 7, 8], "given back");
    assert!(j.next_commit_due().is_some(), "retried");
    let stats = j.commit().unwrap();
    assert_eq!(stats.written, 4);
    drop(j);
    let j = Journal::open(&path, config()).unwrap();
    assert_holds(&j, &[2, 3, 4, 6, 7, 8], "after a reopen");
}

#[test]
fn flush_and_drop_wait_for_the_commit_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    append_range(&mut j, 1..=3);
    let job = j.begin_commit().unwrap();
    let writer = std::thread::spawn(move || job.write());
    append_range(&mut j, 4..=6);
    // The two commits' figures: the one in flight and the rest.
    assert_eq!(j.flush().unwrap().written, 6);
    writer.join().unwrap();

    append_range(&mut j, 7..=9);
    let job = j.begin_commit().unwrap();
    let writer = std::thread::spawn(move || job.write());
    append_range(&mut j, 10..=11);
    drop(j);
    writer.join().unwrap();
    let j = Journal::open(&path, config()).unwrap();
    assert_holds(&j, &(1..=11).collect::<Vec<_>>(), "after drop");
}

#[test]
fn a_window_acked_in_time_still_costs_no_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    append_range(&mut j, 1..=2);
    j.commit().unwrap();
    let before = std::fs::read(&path).unwrap();
    for seq in 3..=12 {
        j.append(now_micros(), payload(seq));
        assert_eq!(j.ack(seq), Ack::Cancelled);
    }
    assert!(j.begin_commit().is_none());
    assert!(!j.commit_in_flight());
    assert!(j.next_commit_due().is_some(), "the age bound's deadline");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn the_byte_bound_holds_for_the_window_gathered_during_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let size = record_bytes(48);
    let cfg = JournalConfig {
        max_bytes: 10 * size,
        ..config()
    };
    let mut j = Journal::open(dir.path().join("j.redb"), cfg).unwrap();
    append_range(&mut j, 1..=8);
    let job = j.begin_commit().unwrap();
    // The batch in flight cannot be dropped; the window gathered meanwhile keeps to the
    // bound by itself, dropping its oldest, counted.
    append_range(&mut j, 9..=30);
    assert_eq!(j.dropped_total(), (12, 12 * size));
    assert_eq!(
        seqs(&j.oldest(100).unwrap()),
        [1, 2, 3, 4, 5, 6, 7, 8, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]
    );
    job.write();
    let stats = j.finish_commit().unwrap();
    assert_eq!(
        stats.dropped_records, 12,
        "reported with the next commit that lands"
    );
    let stats = j.commit().unwrap();
    // On disk the bound holds across both: the batch's 8 go first.
    assert_eq!(stats.dropped_records, 8);
    assert_eq!(seqs(&j.oldest(100).unwrap()), (21..=30).collect::<Vec<_>>());
    assert_eq!(j.dropped_total(), (20, 20 * size));
}

#[test]
fn a_staged_counter_is_saved_by_the_next_commit_that_begins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut j = Journal::open(&path, config()).unwrap();
    assert!(j.u64_saved("bd"), "nothing to save");
    append_range(&mut j, 1..=1);
    let job = j.begin_commit().unwrap();
    // The edge node's bdSeq before CONNECT: set while a commit is in flight, no
    // transaction of its own.
    j.stage_u64("bd", 7);
    assert_eq!(j.get_u64("bd").unwrap(), Some(7));
    assert!(!j.u64_saved("bd"));
    job.write();
    j.finish_commit().unwrap();
    assert!(!j.u64_saved("bd"), "that commit was begun before");
    let job = j
        .begin_commit()
        .expect("the counter alone is worth a commit");
    assert!(!j.u64_saved("bd"), "in flight");
    job.write();
    j.finish_commit().unwrap();
    assert!(j.u64_saved("bd"));
    drop(j);
    let mut j = Journal::open(&path, config()).unwrap();
    assert_eq!(j.get_u64("bd").unwrap(), Some(7));
}
