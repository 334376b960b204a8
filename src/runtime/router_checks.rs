//! The router's side of anomaly detection: samples into the [`AnomalyEngine`], alarm
//! transitions out as samples of the alarm tags (so every consumer carries them like any
//! tag), one log line per transition, and reactions handed to their own task.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info, warn};
use uaedge_driver::{Quality, Timestamp, Value};

use crate::anomaly::{
    alarm_path, AlarmEvent, AlarmState, AnomalyEngine, CheckKind, CheckSpec, ReactionRequest,
};
use crate::bus::{AlarmStatus, Handle};
use crate::conditions::{ConditionBook, ConditionEvent, LimitState};
use crate::model::{Sample, TagId, TagTable};

/// Reactions waiting for their write. Alarms turn Active rarely; a full queue means the
/// devices do not take writes, and waiting would stall the router, so the reaction is
/// dropped with a warning instead.
pub(super) const REACTION_QUEUE: usize = 64;

/// A reaction on its way to the writer task.
pub(super) struct Reaction {
    /// `device/tag/Alarms/check`, for the log.
    alarm: String,
    request: ReactionRequest,
}

pub(super) struct Alarms {
    engine: AnomalyEngine,
    status: Arc<AlarmStatus>,
    reactions: mpsc::Sender<Reaction>,
    /// Scratch for the engine's events; empty between calls.
    events: Vec<AlarmEvent>,
}

impl Alarms {
    pub fn new(
        checks: Vec<CheckSpec>,
        status: Arc<AlarmStatus>,
        reactions: mpsc::Sender<Reaction>,
    ) -> Alarms {
        let n = checks.len();
        if n > 0 {
            info!(checks = n, "anomaly checks armed");
        }
        status.checks.store(n as u64, Ordering::Relaxed);
        Alarms {
            engine: AnomalyEngine::new(checks),
            status,
            reactions,
            events: Vec::new(),
        }
    }

    /// A reload's checks: every window starts empty and every alarm normal, the counts
    /// from zero (the new table's alarm tags start normal too).
    pub fn replace(&mut self, checks: Vec<CheckSpec>) {
        let r = Ordering::Relaxed;
        self.status.checks.store(checks.len() as u64, r);
        self.status.active.store(0, r);
        self.status.transitions.store(0, r);
        self.engine = AnomalyEngine::new(checks);
        self.events.clear();
    }

    /// Starts the checks whose conditions `book` holds Active as Active: the same
    /// occurrence, carried over a restart or a reload, raises no second transition.
    pub fn resume(&mut self, book: &ConditionBook) {
        for (tag, check) in book.active() {
            self.engine.resume_active(tag, &check);
        }
        let stats = self.engine.stats();
        self.status
            .active
            .store(stats.active as u64, Ordering::Relaxed);
    }

    pub fn has_checks(&self, tag: TagId) -> bool {
        self.engine.has_checks(tag)
    }

    /// Judges one sample of a tag with checks, unchanged values included.
    pub fn observe(
        &mut self,
        tag: TagId,
        value: Option<&Value>,
        quality: Quality,
        time: Timestamp,
    ) {
        let x = value.and_then(Value::as_f64);
        self.engine.process(tag, x, quality, time, &mut self.events);
    }

    /// Lets time pass for checks that depend on it (flatline by duration, `delay`).
    pub fn tick(&mut self, now: Timestamp) {
        self.engine.tick(now, &mut self.events);
    }

    /// Turns the transitions seen since the last call into samples of the alarm tags,
    /// appended to `out` and recorded in `reported` (alarms bypass report-by-exception:
    /// each one is a change), and into condition changes, appended to `conditions`. Logs
    /// each once and queues its reaction. A disabled condition's check raises nothing.
    pub fn drain(
        &mut self,
        table: &TagTable,
        book: &ConditionBook,
        out: &mut Vec<Sample>,
        reported: &mut [Option<(Option<Value>, Quality)>],
        conditions: &mut Vec<ConditionEvent>,
    ) {
        if self.events.is_empty() {
            return;
        }
        for event in self.events.drain(..) {
            let Some(owner) = table.tag(event.tag) else {
                continue;
            };
            let device = &owner.path.device;
            let path = format!("{device}/{}", alarm_path(&owner.path.tag, &event.check));
            let Some(alarm) = table.find(&path) else {
                warn!(alarm = %path, "alarm tag missing from the model; transition dropped");
                continue;
            };
            let active = event.state.is_active();
            let enabled = book.is_enabled(event.tag, &event.check);
            let message = format!(
                "{device}/{} {}: {}",
                owner.path.tag, event.check, event.message
            );
            // Always, so the book knows what the check says (an Enable starts from it).
            if let Some(changed) = book.on_alarm(
                event.tag,
                &event.check,
                active,
                event.time,
                event.value,
                message,
                limit_state(&event),
            ) {
                conditions.push(changed);
            }
            if !enabled {
                info!(device = %device, tag = %owner.path.tag, alarm = %event.check, active, "alarm transition ignored: its condition is disabled");
                continue;
            }
            if active {
                warn!(device = %device, tag = %owner.path.tag, alarm = %event.check, kind = %event.kind, value = event.value, threshold = event.threshold, detail = %event.message, "alarm active");
            } else {
                info!(device = %device, tag = %owner.path.tag, alarm = %event.check, kind = %event.kind, value = event.value, threshold = event.threshold, detail = %event.message, "alarm cleared");
            }
            let value = Value::Boolean(active);
            if let Some(slot) = reported.get_mut(alarm.index()) {
                *slot = Some((Some(value.clone()), Quality::Good));
            }
            out.push(Sample {
                tag: alarm,
                value: Some(value),
                quality: Quality::Good,
                time: event.time,
            });
            if let Some(request) = event.reaction {
                let target = request.path.clone();
                match self.reactions.try_send(Reaction {
                    alarm: path,
                    request,
                }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(r)) => {
                        warn!(alarm = %r.alarm, tag = %target, "alarm reaction queue full; reaction dropped")
                    }
                    Err(mpsc::error::TrySendError::Closed(r)) => {
                        warn!(alarm = %r.alarm, tag = %target, "alarm reaction writer stopped; reaction dropped")
                    }
                }
            }
        }
        let stats = self.engine.stats();
        let r = Ordering::Relaxed;
        self.status.active.store(stats.active as u64, r);
        self.status.transitions.store(stats.transitions, r);
    }
}

/// Which limit an active alarm crossed, for the limit alarm types.
fn limit_state(event: &AlarmEvent) -> Option<LimitState> {
    match (event.state, event.kind) {
        (AlarmState::Normal, _) | (AlarmState::Active, CheckKind::Flatline) => None,
        (AlarmState::Active, CheckKind::Limits) if event.value < event.threshold => {
            Some(LimitState::Low)
        }
        (AlarmState::Active, _) => Some(LimitState::High),
    }
}

/// Carries out reactions one after the other, until the router (the only sender) is gone.
pub(super) async fn react(handle: Handle, mut reactions: mpsc::Receiver<Reaction>) {
    while let Some(Reaction { alarm, request }) = reactions.recv().await {
        // By path, resolved in the table in force when the write goes: a reload between the
        // alarm and its write may have given the tag another id (or taken it away, which
        // the write refuses).
        match handle.write(&request.path, &request.value).await {
            Ok(()) => {
                info!(alarm = %alarm, tag = %request.path, value = %request.value, "alarm reaction done")
            }
            Err(e) => {
                warn!(alarm = %alarm, tag = %request.path, value = %request.value, error = %e, "alarm reaction failed")
            }
        }
    }
}
