//! The engine: every check of every tag, fed sample by sample, emitting alarm transitions.
//!
//! The router calls [`AnomalyEngine::process`] for every sample it receives (before
//! report-by-exception, so a flatline sees the unchanged values too) and
//! [`AnomalyEngine::tick`] periodically, so time-based conditions (flatline by duration,
//! `delay`) fire when a tag goes quiet. Each alarm transition comes out once, as an
//! [`AlarmEvent`]; the caller logs it, publishes the Boolean and runs its reaction.
//!
//! Per sample the engine indexes a vector by tag id, then runs that tag's checks; nothing
//! is allocated once the windows are warm (events, which allocate their message, are
//! transitions, not samples).

use std::sync::Arc;

use uaedge_driver::{Quality, Timestamp, Value};

use super::alarm::{AlarmMachine, AlarmState};
use super::checks::{Detector, Evaluation};
use super::spec::{CheckKind, CheckSpec, Reaction};
use crate::model::TagId;

/// A write the caller should do (with `Handle::write`) because an alarm turned Active.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionRequest {
    pub tag: TagId,
    /// `device/tag` of the written tag, for the log.
    pub path: Arc<str>,
    pub value: Value,
}

/// One alarm transition.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    pub tag: TagId,
    /// The check's name: the alarm is `<tag>/Alarms/<check>`.
    pub check: Arc<str>,
    pub kind: CheckKind,
    pub state: AlarmState,
    /// The tag's value that decided it (on a tick: the last good value).
    pub value: f64,
    /// The measured quantity and what it was compared with (see [`Evaluation`]).
    pub score: f64,
    pub threshold: f64,
    /// The sample's source time, or the tick's time.
    pub time: Timestamp,
    /// One line for the log, without the tag path (the caller has it).
    pub message: String,
    /// Set on an Active transition of a check with `reaction:`.
    pub reaction: Option<ReactionRequest>,
}

/// Counters for the runtime diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnomalyStats {
    pub checks: usize,
    pub active: usize,
    /// Alarm transitions either way, since start.
    pub transitions: u64,
    /// Good samples judged (once per sample, however many checks its tag has).
    pub samples: u64,
    /// Samples skipped: Bad quality, no value, or not a finite number.
    pub skipped: u64,
    pub reactions: u64,
}

struct Check {
    tag: TagId,
    name: Arc<str>,
    kind: CheckKind,
    detector: Detector,
    alarm: AlarmMachine,
    reaction: Option<Reaction>,
    /// The last good value and its evaluation: what a tick holds on to.
    last: Option<(f64, Evaluation)>,
}

#[derive(Clone, Copy)]
struct TagSlot {
    /// `checks[first..end]` belong to the tag.
    first: u32,
    end: u32,
    /// Latest sample time seen (microseconds); an earlier one is treated as this one, so
    /// windows never see time run backwards.
    time: i64,
    /// The last sample was Bad: ticks leave the tag alone until a good one arrives.
    bad: bool,
}

pub struct AnomalyEngine {
    checks: Vec<Check>,
    tags: Vec<TagSlot>,
    stats: AnomalyStats,
}

impl AnomalyEngine {
    /// Builds the engine from validated checks, in any tag order (config order is kept
    /// within a tag). Windows are allocated here.
    pub fn new(specs: impl IntoIterator<Item = CheckSpec>) -> AnomalyEngine {
        let mut specs: Vec<CheckSpec> = specs.into_iter().collect();
        specs.sort_by_key(|s| s.tag);
        let tag_count = specs.last().map_or(0, |s| s.tag.index() + 1);
        let empty = TagSlot {
            first: 0,
            end: 0,
            time: i64::MIN,
            bad: false,
        };
        let mut tags = vec![empty; tag_count];
        let mut checks = Vec::with_capacity(specs.len());
        for spec in specs {
            let i = checks.len() as u32;
            if let Some(slot) = tags.get_mut(spec.tag.index()) {
                if slot.first == slot.end {
                    slot.first = i;
                }
                slot.end = i + 1;
            }
            checks.push(Check {
                tag: spec.tag,
                kind: spec.kind(),
                detector: Detector::new(&spec.params),
                alarm: AlarmMachine::new(spec.debounce),
                name: spec.name,
                reaction: spec.reaction,
                last: None,
            });
        }
        let stats = AnomalyStats {
            checks: checks.len(),
            ..AnomalyStats::default()
        };
        AnomalyEngine {
            checks,
            tags,
            stats,
        }
    }

    /// Whether `tag` has any checks (the router can skip the f64 conversion otherwise).
    pub fn has_checks(&self, tag: TagId) -> bool {
        self.tags.get(tag.index()).is_some_and(|s| s.first != s.end)
    }

    /// Judges one sample of `tag`. Call it for every sample, unchanged values included.
    /// Bad samples are not values: they hold every alarm and restart pending debounces.
    pub fn process(
        &mut self,
        tag: TagId,
        value: Option<f64>,
        quality: Quality,
        time: Timestamp,
        out: &mut Vec<AlarmEvent>,
    ) {
        let Some(slot) = self.tags.get_mut(tag.index()) else {
            return;
        };
        if slot.first == slot.end {
            return;
        }
        let range = slot.first as usize..slot.end as usize;
        let x = match value {
            Some(x) if x.is_finite() && !quality.is_bad() => x,
            _ => {
                self.stats.skipped += 1;
                if quality.is_bad() {
                    slot.bad = true;
                    for c in self.checks.get_mut(range).into_iter().flatten() {
                        c.alarm.interrupt();
                    }
                }
                return;
            }
        };
        slot.bad = false;
        slot.time = slot.time.max(time.0);
        let t = slot.time;
        self.stats.samples += 1;
        for c in self.checks.get_mut(range).into_iter().flatten() {
            let eval = c.detector.observe(x, t);
            c.last = Some((x, eval));
            if let Some(state) = c.alarm.on_sample(eval.verdict, t) {
                out.push(transition(c, &mut self.stats, state, x, eval, t));
            }
        }
    }

    /// Lets time pass without samples: a flatline by duration can complete, and `delay`
    /// debounces advance on the last verdict. `now` must be on the samples' clock (the
    /// runtime's read time); checks whose tag has a later sample time are left alone.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<AlarmEvent>) {
        let now = now.0;
        let stats = &mut self.stats;
        for c in &mut self.checks {
            let Some(slot) = self.tags.get(c.tag.index()) else {
                continue;
            };
            if slot.bad || now < slot.time {
                continue;
            }
            let Some((x, held)) = c.last else { continue };
            let eval = c.detector.at(now).unwrap_or(held);
            if let Some(state) = c.alarm.on_tick(eval.verdict, now) {
                out.push(transition(c, stats, state, x, eval, now));
            }
        }
    }

    /// Starts `tag`'s check `name` Active, as it was before a restart or a reload: it
    /// clears when its samples say so, rather than firing the same occurrence again.
    /// `false` when there is no such check.
    pub fn resume_active(&mut self, tag: TagId, name: &str) -> bool {
        let Some(slot) = self.tags.get(tag.index()) else {
            return false;
        };
        let range = slot.first as usize..slot.end as usize;
        let Some(c) = self
            .checks
            .get_mut(range)
            .into_iter()
            .flatten()
            .find(|c| &*c.name == name)
        else {
            return false;
        };
        if !c.alarm.state().is_active() {
            c.alarm.resume_active();
            self.stats.active += 1;
        }
        true
    }

    /// Every alarm as `(tag, check name, active)`, for births and the address space.
    pub fn alarms(&self) -> impl Iterator<Item = (TagId, &str, bool)> + '_ {
        self.checks
            .iter()
            .map(|c| (c.tag, &*c.name, c.alarm.state().is_active()))
    }

    pub fn stats(&self) -> AnomalyStats {
        self.stats
    }

    pub fn active_count(&self) -> usize {
        self.stats.active
    }
}

fn transition(
    c: &Check,
    stats: &mut AnomalyStats,
    state: AlarmState,
    value: f64,
    eval: Evaluation,
    time: i64,
) -> AlarmEvent {
    stats.transitions += 1;
    match state {
        AlarmState::Active => stats.active += 1,
        AlarmState::Normal => stats.active = stats.active.saturating_sub(1),
    }
    let reaction = match (state, &c.reaction) {
        (AlarmState::Active, Some(r)) => {
            stats.reactions += 1;
            Some(ReactionRequest {
                tag: r.tag,
                path: r.path.clone(),
                value: r.value.clone(),
            })
        }
        _ => None,
    };
    AlarmEvent {
        tag: c.tag,
        check: c.name.clone(),
        kind: c.kind,
        state,
        value,
        score: eval.score,
        threshold: eval.threshold,
        time: Timestamp(time),
        message: message(c.kind, state, value, eval),
        reaction,
    }
}

fn message(kind: CheckKind, state: AlarmState, x: f64, e: Evaluation) -> String {
    let (s, t) = (e.score, e.threshold);
    match (kind, state) {
        (CheckKind::Limits, AlarmState::Active) => {
            let side = if x > t {
                "above the high"
            } else {
                "below the low"
            };
            format!("value {x} {side} limit {t}")
        }
        (CheckKind::Limits, AlarmState::Normal) => format!("value {x} back within limits"),
        (CheckKind::RateOfChange, AlarmState::Active) => {
            format!("rate of change {s:.4}/s exceeds ±{t}/s (value {x})")
        }
        (CheckKind::RateOfChange, AlarmState::Normal) => {
            format!("rate of change {s:.4}/s back within ±{t}/s (value {x})")
        }
        (CheckKind::Zscore, AlarmState::Active) => {
            format!("value {x} is {s:.2}σ from the window mean (threshold {t}σ)")
        }
        (CheckKind::Zscore, AlarmState::Normal) => {
            format!("value {x} back within the z-score threshold ({s:.2}σ)")
        }
        (CheckKind::Flatline, AlarmState::Active) => {
            format!("value stuck at {x} for {s} (flatline after {t})")
        }
        (CheckKind::Flatline, AlarmState::Normal) => format!("value moving again ({x})"),
        (CheckKind::Spike, AlarmState::Active) => {
            format!("value {x} is {s:.2} MADs from the window median (threshold {t})")
        }
        (CheckKind::Spike, AlarmState::Normal) => {
            format!("value {x} back within the spike threshold ({s:.2} MADs)")
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
