//! Every condition of the config, with its state: the one truth that OPC UA events,
//! ConditionRefresh, Sparkplug's `Acked` metrics and the state directory are made from.
//!
//! The router alone changes it (alarm transitions from the checks, and users' commands,
//! which reach the router through [`crate::bus::Handle::condition`]), so a change and the
//! event that tells of it are in the same order as the samples around them. Anyone may
//! read it (a ConditionRefresh, `uaedge alarms`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use uaedge_driver::Timestamp;

use super::persist::Persister;
use super::state::{
    self, AckMode, ConditionCommand, ConditionDef, ConditionError, ConditionState, EventId,
    LimitState,
};
use crate::model::TagId;

/// One condition as clients learn of it: a state change, or the current state for a
/// ConditionRefresh.
#[derive(Debug, Clone)]
pub struct ConditionEvent {
    pub def: Arc<ConditionDef>,
    pub state: ConditionState,
    /// When uaedge learned of it (Part 5's ReceiveTime).
    pub receive_time: Timestamp,
}

impl ConditionEvent {
    pub fn retain(&self) -> bool {
        self.state.retain()
    }
}

struct Entry {
    def: Arc<ConditionDef>,
    state: ConditionState,
    /// What the check says now, whatever the condition shows (a disabled one shows
    /// nothing), and which limit it crossed; Enable starts from it.
    engine_active: bool,
    engine_limit: Option<LimitState>,
}

struct Inner {
    entries: Vec<Entry>,
    by_check: HashMap<(TagId, Arc<str>), usize>,
    by_key: HashMap<Arc<str>, usize>,
    /// EventIds: a number new at each start, then a counter, so none repeats across
    /// restarts (whose numbers differ by the clock).
    boot: u64,
    seq: u64,
}

/// Every condition of the config in force; see the module docs.
pub struct ConditionBook {
    inner: RwLock<Inner>,
    persister: Option<Arc<Persister>>,
}

impl ConditionBook {
    /// The conditions of `defs`, each in the state `restored` holds for its key (from
    /// the state directory, or the book a reload replaces), else as new.
    pub fn new(
        defs: Vec<ConditionDef>,
        restored: &HashMap<String, ConditionState>,
        persister: Option<Arc<Persister>>,
    ) -> ConditionBook {
        let now = Timestamp::now().0;
        let mut inner = Inner {
            entries: Vec::with_capacity(defs.len()),
            by_check: HashMap::with_capacity(defs.len()),
            by_key: HashMap::with_capacity(defs.len()),
            boot: boot_number(),
            seq: 0,
        };
        for def in defs {
            let state = match restored.get(def.key.as_ref()) {
                Some(s) => fitted(&def, s.clone()),
                None => ConditionState::new(&def, now),
            };
            let i = inner.entries.len();
            inner.by_check.insert((def.owner, def.check.clone()), i);
            inner.by_key.insert(def.key.clone(), i);
            inner.entries.push(Entry {
                engine_active: state.active,
                engine_limit: state.limit_state,
                def: Arc::new(def),
                state,
            });
        }
        // The state file forgets conditions the config no longer has (removed while
        // stopped, or by a reload), so a check that comes back later starts afresh.
        if let Some(p) = &persister {
            p.keep_only(inner.by_key.keys().cloned().collect());
        }
        ConditionBook {
            inner: RwLock::new(inner),
            persister,
        }
    }

    /// A reload's book: `defs` with the states this book holds for the same keys.
    pub fn successor(&self, defs: Vec<ConditionDef>) -> ConditionBook {
        let states: HashMap<String, ConditionState> = self
            .inner
            .read()
            .entries
            .iter()
            .map(|e| (e.def.key.to_string(), e.state.clone()))
            .collect();
        ConditionBook::new(defs, &states, self.persister.clone())
    }

    /// The conditions this book retains that `next` (a reload's) no longer has, each as a
    /// last event that takes it off clients' alarm lists: inactive, acknowledged, not
    /// retained.
    pub fn removed_in(&self, next: &ConditionBook) -> Vec<ConditionEvent> {
        let gone: Vec<(Arc<ConditionDef>, ConditionState)> = {
            let inner = self.inner.read();
            let keep = next.inner.read();
            inner
                .entries
                .iter()
                .filter(|e| e.state.retain() && !keep.by_key.contains_key(&e.def.key))
                .map(|e| (e.def.clone(), e.state.clone()))
                .collect()
        };
        let now = Timestamp::now();
        let mut inner = self.inner.write();
        gone.into_iter()
            .map(|(def, mut state)| {
                state.active = false;
                state.acked = true;
                state.confirmed = true;
                state.limit_state = None;
                state.time = now.0;
                state.message = format!(
                    "{} {}: removed from the config",
                    state::path(&def),
                    def.check
                );
                state.event_id = inner.next_id();
                ConditionEvent {
                    def,
                    state,
                    receive_time: now,
                }
            })
            .collect()
    }

    /// Clears the Active conditions whose watched tag `idle` names (a disabled device's:
    /// no sample will come to clear them); what was unacknowledged stays so. The events
    /// that tell of it.
    pub fn clear_idle(&self, idle: impl Fn(TagId) -> bool) -> Vec<ConditionEvent> {
        let now = Timestamp::now();
        let mut inner = self.inner.write();
        let mut events = Vec::new();
        for i in 0..inner.entries.len() {
            let id = inner.next_id();
            let Some(entry) = inner.entries.get_mut(i) else {
                continue;
            };
            if !idle(entry.def.owner) || !entry.state.active {
                continue;
            }
            entry.engine_active = false;
            entry.engine_limit = None;
            let message = format!(
                "{} {}: its device is disabled in the config",
                state::path(&entry.def),
                entry.def.check
            );
            let value = entry.state.value.unwrap_or_default();
            if state::on_alarm(
                &entry.def,
                &mut entry.state,
                false,
                now,
                value,
                message,
                None,
            ) {
                entry.state.event_id = id;
                events.push(self.changed(entry));
            }
        }
        events
    }

    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checks whose conditions were Active when the book was made (restored from the
    /// state directory or carried over a reload): the checks start Active from them, so
    /// the same occurrence fires no second Active event.
    pub fn active(&self) -> Vec<(TagId, Arc<str>)> {
        self.inner
            .read()
            .entries
            .iter()
            .filter(|e| e.state.active)
            .map(|e| (e.def.owner, e.def.check.clone()))
            .collect()
    }

    /// Whether the condition of `owner`'s check `check` shows its alarms (`true` for a
    /// check without a condition).
    pub fn is_enabled(&self, owner: TagId, check: &Arc<str>) -> bool {
        let inner = self.inner.read();
        // The check's own name: a reference count, no copy of the string per transition.
        let key = (owner, check.clone());
        inner
            .by_check
            .get(&key)
            .and_then(|&i| inner.entries.get(i))
            .is_none_or(|e| e.state.enabled)
    }

    /// Whether the condition `key` shows Active now (enabled and active): what its alarm
    /// tag must say.
    pub fn shows_active(&self, key: &str) -> bool {
        let inner = self.inner.read();
        inner
            .by_key
            .get(key)
            .and_then(|&i| inner.entries.get(i))
            .is_some_and(|e| e.state.enabled && e.state.active)
    }

    /// What the alarm tag at `path` must say: whether the condition shows Active for its
    /// alarm tag (`…/Alarms/<check>`), whether it is acknowledged for its `…/Acked` tag;
    /// `None` for a path of no condition.
    pub fn tag_value(&self, path: &str, acked_suffix: &str) -> Option<bool> {
        if let Some(key) = path.strip_suffix(acked_suffix) {
            let inner = self.inner.read();
            if let Some(e) = inner.by_key.get(key).and_then(|&i| inner.entries.get(i)) {
                return Some(e.state.acked);
            }
        }
        let inner = self.inner.read();
        let e = inner.by_key.get(path).and_then(|&i| inner.entries.get(i))?;
        Some(e.state.enabled && e.state.active)
    }

    /// A check's transition; the event to send, if the condition shows it.
    #[allow(clippy::too_many_arguments)]
    pub fn on_alarm(
        &self,
        owner: TagId,
        check: &Arc<str>,
        active: bool,
        time: Timestamp,
        value: f64,
        message: String,
        limit_state: Option<LimitState>,
    ) -> Option<ConditionEvent> {
        let mut inner = self.inner.write();
        let i = *inner.by_check.get(&(owner, check.clone()))?;
        let id = inner.next_id();
        let entry = inner.entries.get_mut(i)?;
        entry.engine_active = active;
        entry.engine_limit = limit_state;
        if !state::on_alarm(
            &entry.def,
            &mut entry.state,
            active,
            time,
            value,
            message,
            limit_state,
        ) {
            return None;
        }
        entry.state.event_id = id;
        Some(self.changed(entry))
    }

    /// A user's command on the condition `key`; the event that tells of it.
    pub fn command(
        &self,
        key: &str,
        command: &ConditionCommand,
        user: &str,
    ) -> Result<ConditionEvent, ConditionError> {
        let mut inner = self.inner.write();
        let i = *inner.by_key.get(key).ok_or(ConditionError::Unknown)?;
        let id = inner.next_id();
        let entry = inner.entries.get_mut(i).ok_or(ConditionError::Unknown)?;
        let now = Timestamp::now().0;
        let mut next = entry.state.clone();
        state::apply(
            &entry.def,
            &mut next,
            command,
            user,
            entry.engine_active,
            now,
        )?;
        if matches!(command, ConditionCommand::Enable) && next.active {
            next.limit_state = entry.engine_limit;
        }
        next.event_id = id;
        entry.state = next;
        Ok(self.changed(entry))
    }

    /// Whether there is a condition `key` (no copy of its state, unlike [`Self::get`]).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.read().by_key.contains_key(key)
    }

    /// The condition `key` now.
    pub fn get(&self, key: &str) -> Option<ConditionEvent> {
        let inner = self.inner.read();
        let e = inner.by_key.get(key).and_then(|&i| inner.entries.get(i))?;
        Some(snapshot(e))
    }

    /// Every condition with Retain set: what a ConditionRefresh sends.
    pub fn retained(&self) -> Vec<ConditionEvent> {
        self.inner
            .read()
            .entries
            .iter()
            .filter(|e| e.state.retain())
            .map(snapshot)
            .collect()
    }

    /// Every condition, in config order.
    pub fn all(&self) -> Vec<ConditionEvent> {
        self.inner.read().entries.iter().map(snapshot).collect()
    }

    fn changed(&self, entry: &Entry) -> ConditionEvent {
        if let Some(p) = &self.persister {
            p.save(entry.def.key.clone(), entry.state.clone());
        }
        snapshot(entry)
    }
}

/// A stored state made to fit its (possibly changed) definition: a check that no longer
/// asks for confirmation or acknowledgement leaves nothing waiting for one.
fn fitted(def: &ConditionDef, mut state: ConditionState) -> ConditionState {
    if !def.confirm {
        state.confirmed = true;
    }
    if def.ack == AckMode::Auto {
        state.acked = true;
    }
    state
}

impl Inner {
    fn next_id(&mut self) -> EventId {
        self.seq = self.seq.wrapping_add(1);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.boot.to_be_bytes());
        id[8..].copy_from_slice(&self.seq.to_be_bytes());
        id
    }
}

fn snapshot(e: &Entry) -> ConditionEvent {
    ConditionEvent {
        def: e.def.clone(),
        state: e.state.clone(),
        receive_time: Timestamp::now(),
    }
}

/// Nanoseconds since the epoch, mixed with the process id: differs at every start.
fn boot_number() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(confirm: bool, ack: AckMode) -> ConditionDef {
        crate::conditions::test_def(ack, confirm)
    }

    #[test]
    fn a_restored_state_fits_a_check_that_no_longer_asks_for_confirmation_or_acknowledgement() {
        let mut stored = ConditionState::new(&def(true, AckMode::Required), 0);
        stored.active = true;
        stored.acked = false;
        stored.confirmed = false;
        let restored = HashMap::from([("d/t/Alarms/high".to_string(), stored.clone())]);
        let same = ConditionBook::new(vec![def(true, AckMode::Required)], &restored, None);
        let s = same.get("d/t/Alarms/high").expect("condition").state;
        assert!(!s.acked && !s.confirmed, "as stored");
        let relaxed = ConditionBook::new(vec![def(false, AckMode::Auto)], &restored, None);
        let s = relaxed.get("d/t/Alarms/high").expect("condition").state;
        assert!(s.active && s.acked && s.confirmed, "{s:?}");
        assert_eq!(relaxed.active().len(), 1, "still the same occurrence");
    }

    #[test]
    fn the_state_file_forgets_conditions_the_config_no_longer_has() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("conditions.redb");
        let (p, _) = crate::conditions::open_store(&file).expect("open");
        let state = ConditionState::new(&def(false, AckMode::Required), 0);
        p.save("d/t/Alarms/high".into(), state.clone());
        p.save("d/t/Alarms/removed".into(), state);
        p.close();
        let (p, stored) = crate::conditions::open_store(&file).expect("reopen");
        assert_eq!(stored.len(), 2);
        // A start with a config that has one of them.
        let book = ConditionBook::new(
            vec![def(false, AckMode::Required)],
            &stored,
            Some(p.clone()),
        );
        p.close();
        drop((book, p));
        let (_p, stored) = crate::conditions::open_store(&file).expect("reopen");
        assert_eq!(stored.keys().collect::<Vec<_>>(), ["d/t/Alarms/high"]);
    }
}
