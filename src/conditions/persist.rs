//! Condition states in the state directory (`conditions.redb`), so a restart does not
//! forget an unacknowledged alarm nor fire again one still Active.
//!
//! The router must not wait for a disk, so changes go to a map (one entry a condition:
//! its newest state; bounded by the number of conditions) that a thread of its own
//! writes in one transaction per round. A `kill -9` loses at most the changes of the
//! round in flight, a few milliseconds of them; a write that fails is tried again, with
//! the newer states that came in meanwhile.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::{debug, warn};

use super::state::ConditionState;

/// Pause before writing again after a failed write.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// redb's page cache for the states file.
const CACHE_BYTES: usize = 1 << 20;

/// Key → the state as JSON (readable with any redb tool; a field added to the state in a
/// later version takes its default in rows written before).
const STATES: TableDefinition<&str, &[u8]> = TableDefinition::new("condition_states");

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
}

#[derive(Default)]
struct Pending {
    saves: HashMap<Arc<str>, ConditionState>,
    /// After a reload: the keys to keep; the others are deleted.
    keep: Option<HashSet<Arc<str>>>,
    stop: bool,
}

/// Writes condition states on a thread of its own; see the module docs.
pub struct Persister {
    pending: Mutex<Pending>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Opens (or creates) the states file and reads what it holds.
pub fn open(
    path: &Path,
) -> Result<(Arc<Persister>, HashMap<String, ConditionState>), PersistError> {
    let shown = path.display().to_string();
    // Read once at start, then only written: a small page cache is plenty, and redb's
    // default would keep every page ever written in memory.
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| PersistError::Open {
            path: shown.clone(),
            source: Box::new(e.into()),
        })?;
    let states = load(&db).map_err(|e| PersistError::Read {
        path: shown,
        source: Box::new(e),
    })?;
    let persister = Arc::new(Persister {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        thread: Mutex::new(None),
    });
    let worker = persister.clone();
    let file = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("uaedge-conditions".into())
        .spawn(move || worker.run(db, file))
        .map_err(|e| PersistError::Open {
            path: path.display().to_string(),
            source: Box::new(redb::Error::Io(e)),
        })?;
    *persister.thread.lock() = Some(thread);
    Ok((persister, states))
}

fn load(db: &Database) -> Result<HashMap<String, ConditionState>, redb::Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(STATES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut states = HashMap::new();
    for row in table.iter()? {
        let (key, value) = row?;
        match decode_state(value.value()) {
            Ok(state) => {
                states.insert(key.value().to_string(), state);
            }
            Err(e) => {
                warn!(alarm = key.value(), error = %e, "stored condition state unreadable; it starts as new")
            }
        }
    }
    Ok(states)
}

/// A state as the file holds it (fuzzed: tests/fuzz/fuzz_targets/condition_inputs.rs).
pub fn decode_state(bytes: &[u8]) -> Result<ConditionState, serde_json::Error> {
    serde_json::from_slice(bytes)
}

pub fn encode_state(state: &ConditionState) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(state)
}

impl Persister {
    /// Queues the newest state of `key`.
    pub fn save(&self, key: Arc<str>, state: ConditionState) {
        self.pending.lock().saves.insert(key, state);
        self.wake.notify_one();
    }

    /// Forgets the conditions a reload removed.
    pub fn keep_only(&self, keys: HashSet<Arc<str>>) {
        let mut p = self.pending.lock();
        p.saves.retain(|k, _| keys.contains(k));
        p.keep = Some(keys);
        drop(p);
        self.wake.notify_one();
    }

    /// Writes what is queued and stops the thread.
    pub fn close(&self) {
        self.pending.lock().stop = true;
        self.wake.notify_one();
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                warn!("condition state writer panicked");
            }
        }
    }

    fn run(&self, db: Database, file: PathBuf) {
        let mut failures: u32 = 0;
        loop {
            let (saves, keep, stop) = {
                let mut p = self.pending.lock();
                while p.saves.is_empty() && p.keep.is_none() && !p.stop {
                    self.wake.wait(&mut p);
                }
                (std::mem::take(&mut p.saves), p.keep.take(), p.stop)
            };
            if saves.is_empty() && keep.is_none() {
                return;
            }
            let n = saves.len();
            match write(&db, &saves, keep.as_ref()) {
                Ok(()) => {
                    failures = 0;
                    debug!(conditions = n, "condition states written");
                }
                Err(e) => {
                    // Kept for the next round (newer states of the same conditions win),
                    // so a full or failing disk delays the states rather than losing them.
                    if failures.is_multiple_of(60) {
                        warn!(file = %file.display(), error = %e, conditions = n, "condition states not written yet; retrying");
                    }
                    failures = failures.saturating_add(1);
                    let mut p = self.pending.lock();
                    for (key, state) in saves {
                        p.saves.entry(key).or_insert(state);
                    }
                    if p.keep.is_none() {
                        p.keep = keep;
                    }
                    let stopping = p.stop;
                    drop(p);
                    if stop || stopping {
                        warn!(file = %file.display(), conditions = n, "stopping with condition states unwritten; a restart may not see them");
                        return;
                    }
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
            if stop {
                return;
            }
        }
    }
}

fn write(
    db: &Database,
    saves: &HashMap<Arc<str>, ConditionState>,
    keep: Option<&HashSet<Arc<str>>>,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(STATES)?;
        if let Some(keep) = keep {
            let gone: Vec<String> = table
                .iter()?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value().to_string())
                .filter(|k| !keep.contains(k.as_str()))
                .collect();
            for k in gone {
                table.remove(k.as_str())?;
            }
        }
        for (key, state) in saves {
            match encode_state(state) {
                Ok(bytes) => {
                    table.insert(key.as_ref(), bytes.as_slice())?;
                }
                Err(e) => warn!(alarm = %key, error = %e, "condition state not encodable"),
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::AckMode;

    fn state() -> ConditionState {
        let def = crate::conditions::test_def(AckMode::Required, false);
        let mut s = ConditionState::new(&def, 5);
        s.active = true;
        s.acked = false;
        s.comment = "seen".into();
        s.event_id = [3; 16];
        s
    }

    #[test]
    fn states_written_are_read_back_after_a_restart_and_a_reload_forgets_removed_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("conditions.redb");
        let (p, loaded) = open(&file).expect("open");
        assert!(loaded.is_empty());
        p.save("d/t/Alarms/high".into(), state());
        p.save("d/t/Alarms/gone".into(), state());
        p.close();
        drop(p);
        let (p, loaded) = open(&file).expect("reopen");
        assert_eq!(loaded.get("d/t/Alarms/high"), Some(&state()));
        assert_eq!(loaded.len(), 2);
        p.keep_only(HashSet::from([Arc::from("d/t/Alarms/high")]));
        p.close();
        drop(p);
        let (_p, loaded) = open(&file).expect("reopen");
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["d/t/Alarms/high"]);
    }

    #[test]
    fn an_unreadable_state_is_an_error_not_a_panic() {
        let bytes = encode_state(&state()).expect("encode");
        assert_eq!(decode_state(&bytes).expect("decode"), state());
        assert!(decode_state(b"{\"enabled\": 3}").is_err());
        assert!(decode_state(&bytes[..bytes.len() / 2]).is_err());
    }

    /// serde_json's default float parser may miss the nearest f64 by one ulp, so a state
    /// restored after a restart could carry a limit value a hair off what was saved (the
    /// fuzzer found 1.3222222222222221e19); `float_roundtrip` parses exactly.
    #[test]
    fn a_saved_value_is_restored_to_the_last_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let value = f64::from_bits(seed);
            if !value.is_finite() {
                continue;
            }
            let mut s = state();
            s.value = Some(value);
            let bytes = encode_state(&s).expect("encode");
            assert_eq!(decode_state(&bytes).expect("decode").value, Some(value));
        }
        let mut s = state();
        s.value = Some(1.322_222_222_222_222_1e19);
        let bytes = encode_state(&s).expect("encode");
        assert_eq!(decode_state(&bytes).expect("decode"), s);
    }
}
