//! Alarm conditions: each anomaly check is also an OPC UA Part 9 condition, with the
//! states an operator works with (enabled, active, acknowledged, confirmed, a comment),
//! kept across restarts and reloads.
//!
//! - `state.rs`: one condition's definition, state and the Part 9 state changes.
//! - `book.rs`: [`ConditionBook`], every condition of the config in force; the router
//!   changes it, anyone reads it.
//! - `persist.rs`: the states in `<state_dir>/conditions.redb`, written off the router.
//! - `record.rs`: an event as the historian keeps it.
//!
//! This module knows no OPC UA and no Sparkplug: it imports only the model. The OPC UA
//! server turns [`ConditionEvent`]s into Part 9 events and methods into
//! [`ConditionCommand`]s; the Sparkplug node will carry `Acked` the same way.

mod book;
mod persist;
mod record;
mod state;

pub use book::{ConditionBook, ConditionEvent};
pub use persist::{decode_state, encode_state, open as open_store, PersistError, Persister};
pub use record::EventRecord;
pub use state::{
    AckMode, ConditionClass, ConditionCommand, ConditionDef, ConditionError, ConditionState,
    EventId, LimitState,
};

/// What follows an alarm's path in the path of its acknowledged state, a Boolean tag:
/// writing `true` to `hydraulics/pressure/Alarms/high/Acked` acknowledges the alarm.
pub const ACKED: &str = "/Acked";

/// The file under the state directory.
pub const STATE_FILE: &str = "conditions.redb";

/// A condition definition for unit tests: `d/t/Alarms/high`, a high limit of 1.
#[cfg(test)]
pub(crate) fn test_def(ack: AckMode, confirm: bool) -> ConditionDef {
    ConditionDef {
        owner: crate::model::TagId(0),
        device: "d".into(),
        tag: "t".into(),
        check: "high".into(),
        key: "d/t/Alarms/high".into(),
        class: ConditionClass::ExclusiveLimit,
        severity: 700,
        ack,
        confirm,
        high_limit: Some(1.0),
        low_limit: None,
        units: None,
    }
}
