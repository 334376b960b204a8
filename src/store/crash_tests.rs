//! Crash consistency: a child process appends and commits continuously and
//! is killed with SIGKILL at a random moment; the parent reopens the file and
//! checks that nothing the child reported as committed was lost or damaged.
//! The child commits either inline (`Journal::commit`) or as the edge node
//! does, writing each commit on a thread of its own while it goes on
//! appending and acking (`begin_commit` / `write` / `finish_commit`). A third
//! child stops at a set point — one commit finished, one in flight, one
//! window gathered — to show what a kill can lose: the last two, never the
//! first, and the one in flight whole or not at all.
//!
//! The children are this same test binary, re-run on a `crash_child*` test
//! with an environment variable naming the journal; without the variable
//! those tests return at once, so a normal `cargo test` run skips them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tables::now_micros;
use super::{Ack, Journal, JournalConfig};

const CHILD_ENV: &str = "UAEDGE_STORE_CRASH_CHILD";
/// Set (to anything) for the child that writes its commits on another thread.
const WRITER_ENV: &str = "UAEDGE_STORE_CRASH_WRITER";
/// For the set-point child: `written` has the commit in flight written (on a thread of its
/// own, and not finished: the journal has not heard back) by the time of the kill,
/// `unwritten` keeps it unwritten. A kill during the write is the random tests' part.
const IN_FLIGHT_ENV: &str = "UAEDGE_STORE_CRASH_IN_FLIGHT";
/// The set point: last seq committed, last seq in flight, last seq gathered.
const SET_POINT: [u64; 3] = [40, 80, 120];
const READY: &str = "ready";
const ITERATIONS: usize = 10;
const REPORT_PREFIX: &str = "committed ";

fn config() -> JournalConfig {
    JournalConfig {
        max_bytes: 512 * 1024 * 1024,
        max_age: Duration::from_secs(24 * 3600),
        commit_window: Duration::from_millis(50),
    }
}

/// Acked right after append: such a record must never be found on disk.
fn acked_early(seq: u64) -> bool {
    seq % 7 == 3
}

/// Acked once committed: its delete may or may not have committed.
fn acked_late(seq: u64) -> bool {
    seq % 11 == 5
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Deterministic per seq, with sizes from 64 B to ~1.5 kB (some records
/// span redb pages), ending in a checksum of the rest.
fn payload(seq: u64) -> Vec<u8> {
    let len = 64 + (seq.wrapping_mul(37) % 1500) as usize;
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn checksum_ok(bytes: &[u8]) -> bool {
    let Some(split) = bytes.len().checked_sub(8) else {
        return false;
    };
    let (body, sum) = bytes.split_at(split);
    sum == fnv1a(body).to_le_bytes()
}

/// The child role: append and commit until killed.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    if std::env::var_os(WRITER_ENV).is_some() {
        return writer_child(Path::new(&path));
    }
    let mut j = Journal::open(&path, config()).unwrap();
    let mut late = Vec::new();
    loop {
        append_ten(&mut j, &mut late);
        if j.next_commit_due().is_some_and(|due| due <= Instant::now()) {
            j.commit().unwrap();
            // Only now is the report true; a kill before this line merely
            // under-reports, which the parent allows.
            println!("{REPORT_PREFIX}{}", j.committed_through().unwrap_or(0));
            for seq in late.drain(..) {
                assert_eq!(j.ack(seq), Ack::Deleting);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Appends ten records; acks the early ones at once and keeps the late ones in `late`.
fn append_ten(j: &mut Journal, late: &mut Vec<u64>) {
    for _ in 0..10 {
        let seq = j.next_seq();
        assert_eq!(j.append(now_micros(), payload(seq)), seq);
        if acked_early(seq) {
            assert_eq!(j.ack(seq), Ack::Cancelled);
        } else if acked_late(seq) {
            late.push(seq);
        }
    }
}

/// The edge node's way: each commit is written on a thread of its own while
/// appends and acks go on; records acked late are acked while their commit
/// is in flight, so the kill also meets deletes of records just written.
fn writer_child(path: &Path) {
    let mut j = Journal::open(path, config()).unwrap();
    let mut late = Vec::new();
    let mut writer: Option<std::thread::JoinHandle<()>> = None;
    loop {
        append_ten(&mut j, &mut late);
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            if let Some(w) = writer.take() {
                w.join().unwrap();
            }
            j.finish_commit().unwrap();
            // Only now is the report true (see `crash_child`).
            println!("{REPORT_PREFIX}{}", j.committed_through().unwrap_or(0));
        }
        let due = j.next_commit_due().is_some_and(|due| due <= Instant::now());
        if writer.is_none() && due {
            if let Some(job) = j.begin_commit() {
                for seq in late.drain(..) {
                    assert_eq!(j.ack(seq), Ack::Deleting, "in flight");
                }
                writer = Some(std::thread::spawn(move || job.write()));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn append_up_to(j: &mut Journal, last: u64) {
    while j.next_seq() <= last {
        let seq = j.next_seq();
        assert_eq!(j.append(now_micros(), payload(seq)), seq);
        if acked_early(seq) {
            assert_eq!(j.ack(seq), Ack::Cancelled);
        }
    }
}

/// The set-point role: one commit finished, one in flight, one window gathered, then
/// wait for the kill.
#[test]
fn crash_child_at_a_set_point() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let write = std::env::var(IN_FLIGHT_ENV).is_ok_and(|m| m == "written");
    let mut j = Journal::open(&path, config()).unwrap();
    append_up_to(&mut j, SET_POINT[0]);
    j.commit().unwrap();
    append_up_to(&mut j, SET_POINT[1]);
    let job = j.begin_commit().unwrap();
    let writer = std::thread::spawn(move || {
        if write {
            job.write();
        } else {
            // Held, unwritten, until the kill.
            std::thread::park();
            drop(job);
        }
    });
    append_up_to(&mut j, SET_POINT[2]);
    if write {
        writer.join().unwrap();
    }
    println!("{READY}");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Kills the child even when an assertion in the parent fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(path: &Path, child: &str, env: &[(&str, &str)]) -> KillOnDrop {
    let module = module_path!();
    let test_name = module.split_once("::").map_or(module, |(_, rest)| rest);
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", &format!("{test_name}::{child}")])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        // Inherited so that a panic in the child (say, a failed open) is seen.
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// Runs one child until a random moment after its first commit, SIGKILLs
/// it, and returns the highest seq it reported as committed.
fn run_and_kill(path: &Path, delay: Duration, writer: bool) -> Option<u64> {
    let env: &[(&str, &str)] = if writer { &[(WRITER_ENV, "1")] } else { &[] };
    let mut child = spawn_child(path, "crash_child", env);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix(REPORT_PREFIX) {
                if tx.send(seq.trim().parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    assert!(first.is_ok(), "child never reported a commit");
    std::thread::sleep(delay);
    // Child::kill sends SIGKILL on Unix: no destructor, no flush.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    reader.join().unwrap();
    first.ok().into_iter().chain(rx.try_iter()).max()
}

fn verify(path: &Path, last_reported: u64, iteration: usize) -> u64 {
    let mut j = Journal::open(path, config()).unwrap();
    let ctx = format!("iteration {iteration}, last reported {last_reported}");
    let mut expected = 1u64;
    let mut after = 0u64;
    loop {
        let batch = j.oldest_after(after, 4096).unwrap();
        let Some(last) = batch.last() else { break };
        after = last.0;
        for (seq, ts, bytes) in &batch {
            assert!(
                !acked_early(*seq),
                "{ctx}: seq {seq} was acked before commit"
            );
            assert!(*ts > 0, "{ctx}: seq {seq} bad timestamp");
            assert!(checksum_ok(bytes), "{ctx}: seq {seq} checksum");
            assert_eq!(bytes, &payload(*seq), "{ctx}: seq {seq} payload");
            for missing in expected..*seq {
                assert!(
                    acked_early(missing) || acked_late(missing),
                    "{ctx}: hole at unacked seq {missing}"
                );
            }
            expected = seq + 1;
        }
    }
    for missing in expected..=last_reported {
        assert!(
            acked_early(missing) || acked_late(missing),
            "{ctx}: committed seq {missing} lost"
        );
    }
    let next = j.next_seq();
    assert!(next > last_reported, "{ctx}: next seq {next}");
    assert_eq!(j.append(now_micros(), payload(next)), next);
    if acked_early(next) {
        j.ack(next);
    }
    j.close().unwrap();
    next
}

#[test]
fn sigkill_never_loses_or_damages_committed_records() {
    kill_repeatedly(false);
}

#[test]
fn sigkill_with_commits_in_flight_never_loses_or_damages_committed_records() {
    kill_repeatedly(true);
}

fn kill_repeatedly(writer: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = seed;
    let mut last_reported = 0;
    for iteration in 0..ITERATIONS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(20 + rng % 300);
        let reported = run_and_kill(&path, delay, writer);
        last_reported = last_reported.max(reported.unwrap_or(0));
        let appended = verify(&path, last_reported, iteration);
        // The parent's own append is committed by close(): the next child
        // resumes after it.
        last_reported = last_reported.max(appended);
        eprintln!("seed {seed}: iteration {iteration} killed after {delay:?}, committed through {last_reported}");
    }
}

#[test]
fn a_kill_loses_at_most_the_window_gathered_and_the_commit_in_flight() {
    let kept =
        |from: u64, to: u64| -> Vec<u64> { (from..=to).filter(|s| !acked_early(*s)).collect() };
    let committed = kept(1, SET_POINT[0]);
    let in_flight = kept(SET_POINT[0] + 1, SET_POINT[1]);
    for mode in ["unwritten", "written"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set_point.redb");
        let mut child = spawn_child(
            &path,
            "crash_child_at_a_set_point",
            &[(IN_FLIGHT_ENV, mode)],
        );
        let stdout = child.0.stdout.take().unwrap();
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The harness's "test … " may lead the line.
            .any(|line| line.ends_with(READY));
        assert!(ready, "{mode}: the child never reached the set point");
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let j = Journal::open(&path, config()).unwrap();
        let held = j.oldest(usize::MAX).unwrap();
        for (seq, _, bytes) in &held {
            assert_eq!(bytes, &payload(*seq), "{mode}: seq {seq} payload");
        }
        let held: Vec<u64> = held.iter().map(|r| r.0).collect();
        // Everything committed is there; the commit in flight is there whole once written,
        // not at all before; the window being gathered is not.
        assert!(
            held.starts_with(&committed),
            "{mode}: committed records lost: {held:?}"
        );
        let rest = &held[committed.len()..];
        if mode == "written" {
            assert_eq!(rest, in_flight, "{mode}: the commit in flight");
        } else {
            assert!(
                rest.is_empty(),
                "{mode}: never written, yet on disk: {rest:?}"
            );
        }
        assert!(j.next_seq() > SET_POINT[0]);
        eprintln!(
            "{mode}: kept {} of {} unacked records; lost {} in flight and {} gathered",
            held.len(),
            committed.len() + in_flight.len() + kept(SET_POINT[1] + 1, SET_POINT[2]).len(),
            in_flight.len() - rest.len(),
            kept(SET_POINT[1] + 1, SET_POINT[2]).len(),
        );
    }
}
