//! What subscribers receive from the router, in the order it happened.

use std::sync::Arc;

use crate::conditions::ConditionEvent;
use crate::model::{DeviceId, Sample, TagState, TagTable};

/// Samples a queue of batches may hold. A batch is one device read, from a handful of tags
/// to tens of thousands, so a depth in batches alone would let a consumer that falls behind
/// (an overloaded broker, a slow disk) queue hundreds of megabytes of big devices' reads.
const SAMPLES_IN_FLIGHT: usize = 65_536;
/// Batches a queue keeps at least, so devices still interleave.
const MIN_QUEUE: usize = 4;

/// What subscribers receive, in order. The router is the only sender, and the only writer
/// of the [`TagTable`]: a subscriber that applies every event to the states it started
/// from holds exactly what the table held at that point of the stream.
#[derive(Debug, Clone)]
pub enum ModelEvent {
    /// Samples of one device: those of one read that passed report-by-exception, with the
    /// alarm transitions they caused; or transitions that time alone brought about; or,
    /// at a reload, the restarted alarms and the tags of a device that started over.
    Samples(DeviceId, Arc<Vec<Sample>>),
    /// A device's link came up (its tags follow as samples).
    DeviceUp(DeviceId),
    /// A device's link went down; its tags are Bad from now on.
    DeviceDown(DeviceId),
    /// A reload replaced the table: TagIds and DeviceIds of every later event refer to the
    /// new one.
    Reloaded(Arc<Reloaded>),
    /// An alarm condition changed: a check's transition (after the batch with its alarm
    /// tag's sample), or a user's acknowledgement, confirmation, comment, enable or
    /// disable.
    Condition(Arc<ConditionEvent>),
}

/// What a reload changed, as subscribers learn it: the new table and what it held at the
/// moment of the swap, so that a subscriber takes its state from the router rather than
/// working it out again.
pub struct Reloaded {
    /// The new table and its states at the swap: the kept devices' carried over, the new
    /// ones as configured (alarm tags `false`, disabled devices' tags Bad OutOfService).
    /// Later events continue from here, as from a subscription's [`Start`].
    pub start: Start,
    /// `false` when every tag kept its id, type, units and access (see
    /// [`TagTable::same_tag_set`]): Sparkplug needs no rebirth then.
    pub tag_set_changed: bool,
}

impl std::fmt::Debug for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloaded")
            .field("devices", &self.start.table.devices().len())
            .field("tags", &self.start.table.tags().len())
            .field("tag_set_changed", &self.tag_set_changed)
            .finish()
    }
}

/// Where a subscriber's stream starts: the table and what it held when the subscription
/// was made (see [`super::Handle::subscribe_from`]). A subscriber that applies every event
/// to these holds, at each point of its stream, what the table held there.
#[derive(Clone)]
pub struct Start {
    pub table: Arc<TagTable>,
    /// Every tag's state, by [`crate::model::TagId`] of `table`.
    pub states: Vec<TagState>,
    /// Every device's link, by [`DeviceId`] of `table`.
    pub connected: Vec<bool>,
}

impl Start {
    /// `table` as it stands now.
    pub fn of(table: Arc<TagTable>) -> Start {
        let connected = (table.devices().iter())
            .map(|d| table.device_state(d.id).is_some_and(|s| s.connected))
            .collect();
        Start {
            states: table.states(|s| s.to_vec()),
            connected,
            table,
        }
    }

    /// Takes one batch of the stream's samples, taken in at `now` (the server time).
    pub fn apply_samples(&mut self, batch: &[Sample], now: uaedge_driver::Timestamp) {
        for s in batch {
            if let Some(state) = self.states.get_mut(s.tag.index()) {
                state.apply(s, now);
            }
        }
    }

    /// Keeps up with the stream while the subscriber cannot act on it yet.
    pub fn apply(&mut self, event: &ModelEvent) {
        match event {
            ModelEvent::Samples(_, batch) => {
                self.apply_samples(batch, uaedge_driver::Timestamp::now());
            }
            ModelEvent::DeviceUp(id) | ModelEvent::DeviceDown(id) => {
                if let Some(up) = self.connected.get_mut(id.index()) {
                    *up = matches!(event, ModelEvent::DeviceUp(_));
                }
            }
            // Conditions are read from their book, not from a start's states.
            ModelEvent::Condition(_) => {}
            ModelEvent::Reloaded(r) => self.clone_from(&r.start),
        }
    }
}

/// `wanted` batches, but no more than [`SAMPLES_IN_FLIGHT`] samples of the largest device's
/// batches (at least [`MIN_QUEUE`]). Sized when the queue is made: a reload that adds a
/// bigger device keeps the depths it finds.
pub fn queue_depth(table: &TagTable, wanted: usize) -> usize {
    let largest = table
        .devices()
        .iter()
        .map(|d| d.tag_count as usize)
        .max()
        .unwrap_or(1)
        .max(1);
    wanted
        .min((SAMPLES_IN_FLIGHT / largest).max(MIN_QUEUE))
        .max(1)
}
