//! One condition: what the config says of it ([`ConditionDef`]), what it is now
//! ([`ConditionState`], the part that is persisted), and the Part 9 state changes on it.
//!
//! The states follow OPC UA Part 9's AlarmConditionType, with no branches: EnabledState,
//! ActiveState, AckedState, ConfirmedState (when the check asks for confirmation),
//! Comment and ClientUserId, Severity and LastSeverity, and Retain worked out from them.
//! Each change that a client should see gets a new EventId; Acknowledge, Confirm and
//! AddComment name the EventId of the newest event, as Part 9 asks.

use std::sync::Arc;

use uaedge_driver::Timestamp;

use crate::model::TagId;

/// Whether an operator must acknowledge the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// Unacknowledged until an operator acknowledges; retained until then, even cleared.
    Required,
    /// Acknowledged as it turns Active: the alarm is retained only while Active.
    Auto,
}

impl AckMode {
    pub fn name(self) -> &'static str {
        match self {
            AckMode::Required => "required",
            AckMode::Auto => "auto",
        }
    }
}

/// The Part 9 type of a condition (see the config's mapping from check kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionClass {
    /// ExclusiveLimitAlarmType (i=9341): HighState/LowState, HighLimit/LowLimit.
    ExclusiveLimit,
    /// ExclusiveRateOfChangeAlarmType (i=9623).
    ExclusiveRateOfChange,
    /// ExclusiveDeviationAlarmType (i=9764): a deviation from a statistic of the window.
    ExclusiveDeviation,
    /// OffNormalAlarmType (i=10637): the value is not what it normally is (stuck).
    OffNormal,
}

impl ConditionClass {
    /// The Part 9 type's browse name.
    pub fn type_name(self) -> &'static str {
        match self {
            ConditionClass::ExclusiveLimit => "ExclusiveLimitAlarmType",
            ConditionClass::ExclusiveRateOfChange => "ExclusiveRateOfChangeAlarmType",
            ConditionClass::ExclusiveDeviation => "ExclusiveDeviationAlarmType",
            ConditionClass::OffNormal => "OffNormalAlarmType",
        }
    }

    /// Whether the type is a LimitAlarmType, with HighLimit/LowLimit and a LimitState.
    pub fn is_limit(self) -> bool {
        !matches!(self, ConditionClass::OffNormal)
    }
}

/// What the config says of one condition: one a check.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDef {
    /// The watched tag.
    pub owner: TagId,
    /// Its device's name and its name within the device.
    pub device: Arc<str>,
    pub tag: Arc<str>,
    /// The check's name: the condition's ConditionName.
    pub check: Arc<str>,
    /// `device/tag/Alarms/check`, the alarm tag's path: the condition's key everywhere
    /// (the state directory, Sparkplug, the log).
    pub key: Arc<str>,
    pub class: ConditionClass,
    /// 1..=1000, Part 5's scale (801–1000 high, 1–200 low).
    pub severity: u16,
    pub ack: AckMode,
    /// Whether an acknowledged alarm also waits for Confirm before it leaves the list.
    pub confirm: bool,
    pub high_limit: Option<f64>,
    pub low_limit: Option<f64>,
    /// The watched tag's units, for messages.
    pub units: Option<Arc<str>>,
}

/// Which limit an ExclusiveLimitAlarm crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LimitState {
    High,
    Low,
}

/// A 16-byte EventId: unique per event across restarts (see `book.rs`).
pub type EventId = [u8; 16];

/// What a condition is now: everything a client sees of it, and what survives a restart.
/// A field missing from a stored state (one added in a later version) takes its default.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ConditionState {
    pub enabled: bool,
    pub active: bool,
    pub acked: bool,
    pub confirmed: bool,
    /// Transition times (µs) of EnabledState, ActiveState, AckedState, ConfirmedState.
    pub enabled_time: i64,
    pub active_time: i64,
    pub acked_time: i64,
    pub confirmed_time: i64,
    /// The newest event's Time (µs), and what it said.
    pub time: i64,
    pub message: String,
    pub severity: u16,
    pub last_severity: u16,
    pub comment: String,
    pub comment_time: i64,
    /// Who last acknowledged, confirmed or commented.
    pub client_user_id: String,
    pub event_id: EventId,
    /// Set while an ExclusiveLimitAlarm is active.
    pub limit_state: Option<LimitState>,
    /// The value that decided the last transition.
    pub value: Option<f64>,
}

impl ConditionState {
    /// A condition that never fired: enabled, inactive, nothing to acknowledge.
    pub fn new(def: &ConditionDef, now: i64) -> ConditionState {
        ConditionState {
            enabled: true,
            active: false,
            acked: true,
            confirmed: true,
            enabled_time: now,
            active_time: now,
            acked_time: now,
            confirmed_time: now,
            time: now,
            message: format!("{} {}: normal", path(def), def.check),
            severity: def.severity,
            last_severity: def.severity,
            comment: String::new(),
            comment_time: now,
            client_user_id: String::new(),
            event_id: [0; 16],
            limit_state: None,
            value: None,
        }
    }

    /// Part 9's Retain: the condition is of interest to a client that wants the current
    /// picture (active, or waiting for acknowledgement or confirmation).
    pub fn retain(&self) -> bool {
        self.enabled && (self.active || !self.acked || !self.confirmed)
    }
}

/// `device/tag`, as messages name the source.
pub fn path(def: &ConditionDef) -> String {
    format!("{}/{}", def.device, def.tag)
}

/// Why a method on a condition was refused; the OPC UA server names each with the status
/// code Part 9 gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("no such condition")]
    Unknown,
    #[error("the EventId is not the condition's newest event")]
    EventIdUnknown,
    #[error("the condition is disabled")]
    Disabled,
    #[error("the alarm is acknowledged already")]
    AlreadyAcked,
    #[error("the alarm is confirmed already")]
    AlreadyConfirmed,
    #[error("the condition is enabled already")]
    AlreadyEnabled,
    #[error("the condition is disabled already")]
    AlreadyDisabled,
    #[error("the runtime is stopping")]
    Stopped,
}

/// A state change asked for by a user (an OPC UA method, a Sparkplug command).
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionCommand {
    Acknowledge {
        event_id: Option<EventId>,
        comment: Option<String>,
    },
    Confirm {
        event_id: Option<EventId>,
        comment: Option<String>,
    },
    AddComment {
        event_id: Option<EventId>,
        comment: Option<String>,
    },
    Enable,
    Disable,
}

impl ConditionCommand {
    pub fn name(&self) -> &'static str {
        match self {
            ConditionCommand::Acknowledge { .. } => "acknowledge",
            ConditionCommand::Confirm { .. } => "confirm",
            ConditionCommand::AddComment { .. } => "comment",
            ConditionCommand::Enable => "enable",
            ConditionCommand::Disable => "disable",
        }
    }
}

/// Applies a user's command to `state` at `now` (µs). `None` as the EventId means the
/// caller has none to give (a Sparkplug acknowledgement names the alarm, not an event).
/// `engine_active` is what the check says now, which an Enable brings back.
pub fn apply(
    def: &ConditionDef,
    state: &mut ConditionState,
    command: &ConditionCommand,
    user: &str,
    engine_active: bool,
    now: i64,
) -> Result<(), ConditionError> {
    match command {
        ConditionCommand::Acknowledge { event_id, comment } => {
            addressable(state, event_id)?;
            if state.acked {
                return Err(ConditionError::AlreadyAcked);
            }
            state.acked = true;
            state.acked_time = now;
            if def.confirm {
                state.confirmed = false;
                state.confirmed_time = now;
            }
            set_comment(state, comment, now);
            state.message = format!("{} {}: acknowledged", path(def), def.check);
        }
        ConditionCommand::Confirm { event_id, comment } => {
            addressable(state, event_id)?;
            if state.confirmed {
                return Err(ConditionError::AlreadyConfirmed);
            }
            state.confirmed = true;
            state.confirmed_time = now;
            set_comment(state, comment, now);
            state.message = format!("{} {}: confirmed", path(def), def.check);
        }
        ConditionCommand::AddComment { event_id, comment } => {
            addressable(state, event_id)?;
            set_comment(state, comment, now);
            state.message = format!("{} {}: comment added", path(def), def.check);
        }
        ConditionCommand::Enable => {
            if state.enabled {
                return Err(ConditionError::AlreadyEnabled);
            }
            state.enabled = true;
            state.enabled_time = now;
            state.message = format!("{} {}: enabled", path(def), def.check);
            // Whatever the check sees now is where the condition starts again.
            if engine_active {
                activate(def, state, now);
            }
        }
        ConditionCommand::Disable => {
            if !state.enabled {
                return Err(ConditionError::AlreadyDisabled);
            }
            state.enabled = false;
            state.enabled_time = now;
            state.active = false;
            state.active_time = now;
            state.acked = true;
            state.confirmed = true;
            state.limit_state = None;
            state.message = format!("{} {}: disabled", path(def), def.check);
        }
    }
    if !matches!(
        command,
        ConditionCommand::Enable | ConditionCommand::Disable
    ) {
        state.client_user_id = user.to_string();
    }
    state.time = now;
    Ok(())
}

/// Part 9's checks before Acknowledge, Confirm and AddComment: the condition is enabled,
/// and the EventId (when one is given) names its newest event.
fn addressable(state: &ConditionState, event_id: &Option<EventId>) -> Result<(), ConditionError> {
    if !state.enabled {
        return Err(ConditionError::Disabled);
    }
    if event_id.is_some_and(|id| id != state.event_id) {
        return Err(ConditionError::EventIdUnknown);
    }
    Ok(())
}

fn set_comment(state: &mut ConditionState, comment: &Option<String>, now: i64) {
    // Part 9: a null comment leaves the Comment as it is.
    if let Some(c) = comment {
        state.comment = c.clone();
        state.comment_time = now;
    }
}

/// The alarm turned Active: a new occurrence.
pub fn activate(def: &ConditionDef, state: &mut ConditionState, time: i64) {
    state.active = true;
    state.active_time = time;
    state.time = time;
    state.last_severity = state.severity;
    state.severity = def.severity;
    match def.ack {
        AckMode::Required => {
            state.acked = false;
            state.acked_time = time;
        }
        AckMode::Auto => {
            state.acked = true;
            state.acked_time = time;
        }
    }
    state.confirmed = true;
}

/// What a check's transition does to its condition; `false` when the condition ignores it
/// (disabled, or Active already: the same occurrence, restored after a restart).
pub fn on_alarm(
    def: &ConditionDef,
    state: &mut ConditionState,
    active: bool,
    time: Timestamp,
    value: f64,
    message: String,
    limit_state: Option<LimitState>,
) -> bool {
    if !state.enabled || state.active == active {
        return false;
    }
    if active {
        activate(def, state, time.0);
        state.limit_state = limit_state;
    } else {
        state.active = false;
        state.active_time = time.0;
        state.time = time.0;
        state.last_severity = state.severity;
        state.limit_state = None;
    }
    state.value = Some(value);
    state.message = message;
    true
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
