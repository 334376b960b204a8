//! One device's data changes between the session's publish loop, which fills it, and the
//! runtime's `read`, which drains it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use opcua::types::{DataValue, StatusCode, Variant};
use uaedge_driver::{LinkError, Timestamp};

use crate::convert;

/// One data change as it waits for the runtime: what of a DataValue a reading needs, in
/// 48 bytes rather than 80 (at 100,000 changes a second, a second of them is 5 MB).
pub(crate) struct Change {
    pub tag: u32,
    pub status: StatusCode,
    /// The source timestamp, else the server's.
    pub time: Option<Timestamp>,
    pub value: Option<Variant>,
}

impl Change {
    pub fn new(tag: u32, dv: DataValue) -> Change {
        Change {
            tag,
            status: dv.status.unwrap_or(StatusCode::Good),
            time: dv
                .source_timestamp
                .as_ref()
                .or(dv.server_timestamp.as_ref())
                .map(convert::timestamp),
            value: dv.value,
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    /// Oldest first.
    pub changes: VecDeque<Change>,
    /// Data changes dropped because the runtime did not drain in time.
    pub dropped: u64,
    /// Data changes the server sent but could not send again when asked (Republish), so
    /// they never arrived.
    pub missed: u64,
    /// Set once when the device's subscription is gone.
    pub lost: Option<LinkError>,
    /// The last Publish response for the subscription, keep-alives included.
    pub last_publish: Option<Instant>,
}

pub(crate) struct Inbox {
    state: Mutex<State>,
    capacity: usize,
    device: String,
}

impl Inbox {
    pub fn new(capacity: usize, device: &str) -> Arc<Inbox> {
        Arc::new(Inbox {
            // A subscription that never publishes at all times out like one that stopped.
            state: Mutex::new(State {
                last_publish: Some(Instant::now()),
                ..State::default()
            }),
            capacity,
            device: device.to_string(),
        })
    }

    /// A poisoned lock only means a push panicked midway; the queue is still sound.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a notification's data changes, dropping the oldest when full.
    pub fn push(&self, changes: impl IntoIterator<Item = Change>) {
        let mut state = self.lock();
        for change in changes {
            if state.changes.len() >= self.capacity {
                state.changes.pop_front();
                state.dropped += 1;
                // First drop and every thousandth: enough to notice, not enough to flood.
                if state.dropped % 1000 == 1 {
                    tracing::warn!(device = %self.device, dropped = state.dropped, capacity = self.capacity,
                        "data-change buffer full; dropping the oldest (raise `buffer` or poll faster)");
                }
            }
            state.changes.push_back(change);
        }
        state.last_publish = Some(Instant::now());
    }

    pub fn published(&self) {
        self.lock().last_publish = Some(Instant::now());
    }

    pub fn missed(&self, count: u64) {
        let mut state = self.lock();
        state.missed += count;
        tracing::warn!(device = %self.device, missed = state.missed,
            "the server could not resend notifications lost on the way; their data changes are missing");
    }

    pub fn fail(&self, error: LinkError) {
        let mut state = self.lock();
        if state.lost.is_none() {
            state.lost = Some(error);
        }
    }
}
