//! A condition event as the historian keeps it: the event's state and what of its
//! definition the event's fields show, so that it reads back as the same Part 9 event
//! after the config changed or the check is gone.

use std::sync::Arc;

use uaedge_driver::Timestamp;

use super::state::{AckMode, ConditionClass, ConditionDef, ConditionState};
use super::ConditionEvent;
use crate::model::TagId;

/// One stored condition event (JSON in the history file; fuzzed with the chunk decoder).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRecord {
    pub device: String,
    pub tag: String,
    pub check: String,
    pub key: String,
    pub class: ConditionClass,
    pub severity: u16,
    pub ack: AckMode,
    pub confirm: bool,
    #[serde(default)]
    pub high_limit: Option<f64>,
    #[serde(default)]
    pub low_limit: Option<f64>,
    #[serde(default)]
    pub units: Option<String>,
    pub state: ConditionState,
    pub receive_time: i64,
}

impl EventRecord {
    pub fn of(event: &ConditionEvent) -> EventRecord {
        let d = &event.def;
        EventRecord {
            device: d.device.to_string(),
            tag: d.tag.to_string(),
            check: d.check.to_string(),
            key: d.key.to_string(),
            class: d.class,
            severity: d.severity,
            ack: d.ack,
            confirm: d.confirm,
            high_limit: d.high_limit,
            low_limit: d.low_limit,
            units: d.units.as_deref().map(str::to_string),
            state: event.state.clone(),
            receive_time: event.receive_time.as_micros(),
        }
    }

    /// The event again. Its owner TagId means nothing outside the table it came from, and
    /// no event field shows it.
    pub fn event(&self) -> ConditionEvent {
        ConditionEvent {
            def: Arc::new(ConditionDef {
                owner: TagId(u32::MAX),
                device: self.device.as_str().into(),
                tag: self.tag.as_str().into(),
                check: self.check.as_str().into(),
                key: self.key.as_str().into(),
                class: self.class,
                severity: self.severity,
                ack: self.ack,
                confirm: self.confirm,
                high_limit: self.high_limit,
                low_limit: self.low_limit,
                units: self.units.as_deref().map(Into::into),
            }),
            state: self.state.clone(),
            receive_time: Timestamp(self.receive_time),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of plain fields always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<EventRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::test_def;

    #[test]
    fn a_record_reads_back_as_the_same_event() {
        let def = test_def(AckMode::Required, true);
        let state = ConditionState {
            active: true,
            time: 42,
            ..ConditionState::default()
        };
        let event = ConditionEvent {
            def: Arc::new(def),
            state,
            receive_time: Timestamp(43),
        };
        let record = EventRecord::of(&event);
        let back = EventRecord::decode(&record.encode()).expect("decodes");
        assert_eq!(back, record);
        let again = back.event();
        assert_eq!(again.state, event.state);
        assert_eq!(again.def.key, event.def.key);
        assert_eq!(again.def.class, event.def.class);
        assert!(EventRecord::decode(b"{").is_err());
    }
}
