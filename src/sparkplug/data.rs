//! Data: every reported sample into the journal and, when online, out as DDATA at once;
//! the backlog out as historical DDATA, oldest first, rate-limited.

use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::warn;
use uaedge_driver::Timestamp;

use super::aliases;
use super::codec::{self, MetricSpec};
use super::inflight::Track;
use super::link::Phase;
use super::node::{blocking, NodeTask, TICK};
use super::record;
use super::wire;
use crate::model::{DeviceId, Sample};

/// Samples gathered per device under `publish_period` before it is flushed early.
const MAX_GATHERED: usize = 10_000;
/// Journal records read per look at the backlog.
const DRAIN_BATCH: usize = 64;
/// Looks at the backlog per tick, bounding the time one tick may take.
const DRAIN_READS_PER_TICK: usize = 8;

/// Where the backlog drain stands.
#[derive(Debug)]
pub(super) struct Drain {
    /// Highest journal seq looked at since the last birth.
    cursor: u64,
    /// Nothing to drain past the cursor (cleared by anything that may add some).
    idle: bool,
    /// Token bucket, in samples.
    tokens: f64,
    last_refill: Instant,
}

impl Drain {
    pub fn new(tokens: f64) -> Drain {
        Drain {
            cursor: 0,
            idle: false,
            tokens,
            last_refill: Instant::now(),
        }
    }

    /// After a birth: the backlog is looked at from its oldest record again.
    pub fn restart(&mut self) {
        self.cursor = 0;
        self.idle = false;
    }

    /// Something may have been added to the backlog.
    pub fn wake(&mut self) {
        self.idle = false;
    }
}

impl NodeTask {
    /// One device's batch, as the router reported it.
    pub(super) fn on_samples(&mut self, device: DeviceId, batch: &[Sample]) {
        let now = uaedge_driver::Timestamp::now();
        for s in batch {
            if let Some(state) = self.seen.get_mut(s.tag.index()) {
                state.apply(s, now);
            }
        }
        if self.settings.publish_period.is_none() {
            self.on_device_samples(device, batch);
            return;
        }
        let d = device.index();
        let full = match self.devices.get_mut(d) {
            Some(device) => {
                device.gathered.extend(batch.iter().cloned());
                device.gathered.len() >= MAX_GATHERED
            }
            None => false,
        };
        if full {
            self.flush_device(d);
        }
    }

    /// Journals and publishes what `publish_period` gathered for one device.
    pub(super) fn flush_device(&mut self, d: usize) {
        let Some(gathered) = (self.devices.get_mut(d))
            .map(|x| &mut x.gathered)
            .filter(|g| !g.is_empty())
        else {
            return;
        };
        let samples = std::mem::take(gathered);
        self.on_device_samples(DeviceId(u16::try_from(d).unwrap_or(u16::MAX)), &samples);
    }

    pub(super) fn flush_all(&mut self) {
        for d in 0..self.devices.len() {
            self.flush_device(d);
        }
    }

    fn on_device_samples(&mut self, device: DeviceId, samples: &[Sample]) {
        let d = device.index();
        let Some(name) = self.table.device(device).map(|x| x.name.clone()) else {
            return;
        };
        let (bytes, newest) = record::encode(&self.table, &name, samples);
        let seq = self.journal.append(newest.as_micros(), bytes);
        if self.phase != Phase::Online {
            return;
        }
        // A device that came back is born with its first samples: `on_samples` took them into
        // `seen` already, so the DBIRTH carries them.
        let link = self.devices.get(d);
        if link.is_some_and(|x| !x.born && x.up) {
            self.dbirth(d);
        }
        if !self.devices.get(d).is_some_and(|x| x.born) {
            // Held in the journal until the device's next DBIRTH.
            return;
        }
        if !self.room_for_data() {
            // Stays in the journal; the drain sends it as historical once there is room.
            self.drain.wake();
            return;
        }
        // Written straight to protobuf (see `wire`), sized up front for the batch.
        // A metric here is about 30 bytes (keys, alias, ms time, type, value) unless a string.
        let mut payload = Vec::with_capacity(24 + samples.len() * 32);
        wire::payload_timestamp(&mut payload, Timestamp::now().as_millis().max(0) as u64);
        let mut scratch = Vec::new();
        let mut n: u32 = 0;
        for s in samples {
            let Some(def) = self.table.tag(s.tag) else {
                continue;
            };
            let spec = MetricSpec {
                name: None,
                alias: Some(aliases::of_tag(s.tag)),
                data_type: def.data_type,
                value: s.value.as_ref(),
                quality: codec::data_quality(s.quality),
                units: None,
                time: s.time,
            };
            wire::metric(
                &mut payload,
                &mut scratch,
                &spec,
                s.time.as_millis().max(0) as u64,
            );
            n = n.saturating_add(1);
        }
        let topic = self.topics.ddata(&name);
        let qos = self.data_qos();
        let track = Track::Record { seq, samples: n };
        let sent = self.publish_bytes(topic, qos, track, |seq| {
            wire::payload_seq(&mut payload, u64::from(seq));
            payload
        });
        if !sent {
            // Stays in the journal; the drain sends it as historical.
            self.drain.wake();
        }
    }

    /// Sends backlog records as historical DDATA within the token budget.
    pub(super) fn drain(&mut self) {
        let rate = f64::from(self.settings.store.drain_rate);
        // A bucket of one tick's worth (at least one sample) keeps the rate smooth.
        let capacity = (rate * TICK.as_secs_f64()).max(1.0);
        let now = Instant::now();
        let dt = now.duration_since(self.drain.last_refill).as_secs_f64();
        self.drain.last_refill = now;
        self.drain.tokens = (self.drain.tokens + rate * dt).min(capacity);
        if self.drain.idle {
            return;
        }
        for _ in 0..DRAIN_READS_PER_TICK {
            if !self.may_replay(capacity) {
                return;
            }
            let cursor = self.drain.cursor;
            let batch = match blocking(|| self.journal.oldest_after(cursor, DRAIN_BATCH)) {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "cannot read the journal backlog");
                    return;
                }
            };
            if batch.is_empty() {
                self.drain.idle = true;
                return;
            }
            for (seq, _ts, bytes) in batch {
                if self.inflight.contains(seq) {
                    self.drain.cursor = seq;
                    continue;
                }
                if !self.may_replay(capacity) {
                    return;
                }
                match self.replay(seq, &bytes, capacity) {
                    Replay::Sent | Replay::Skipped => self.drain.cursor = seq,
                    Replay::Wait => return,
                }
            }
        }
    }

    /// Whether a record may go out now, as far as can be told before decoding it: under
    /// overload the queue stays full and a large record leaves the bucket in debt for
    /// seconds, and decoding the same record every tick only to wait took the CPU the live
    /// data needed (offered 3 M samples/s over Modbus, delivery fell to 615 k/s). `replay`
    /// waits below min(samples, capacity) tokens and a record has at least one sample, so
    /// a large record may still be decoded once in vain while the bucket refills past one
    /// token; after that it waits for a full bucket, which one tick brings.
    fn may_replay(&self, capacity: f64) -> bool {
        self.drain.tokens >= capacity.min(1.0) && self.room_for_data()
    }

    fn replay(&mut self, seq: u64, bytes: &[u8], capacity: f64) -> Replay {
        let (rec, bad) = match record::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                warn!(seq, error = %e, "unreadable journal record dropped");
                self.drop_record(seq);
                return Replay::Skipped;
            }
        };
        let Some(def) = self.table.devices().iter().find(|d| d.name == rec.device) else {
            warn!(seq, device = %rec.device, samples = rec.samples.len(), "journal record of a device no longer configured dropped");
            self.drop_record(seq);
            return Replay::Skipped;
        };
        let d = def.id.index();
        if !self.devices.get(d).is_some_and(|x| x.born) {
            // Held until the device's next DBIRTH resets the cursor.
            return Replay::Skipped;
        }
        let mut missing = Vec::new();
        let mut metrics = Vec::with_capacity(rec.samples.len());
        for s in &rec.samples {
            let path = format!("{}/{}", rec.device, s.tag);
            let Some(tag) = self.table.find(&path).and_then(|id| self.table.tag(id)) else {
                missing.push(s.tag.as_str());
                continue;
            };
            let value = match s.value.as_ref().map(|v| v.convert(tag.data_type)) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => {
                    missing.push(s.tag.as_str());
                    continue;
                }
                None => None,
            };
            metrics.push(codec::metric(&MetricSpec {
                name: None,
                alias: Some(aliases::of_tag(tag.id)),
                data_type: tag.data_type,
                value: value.as_ref(),
                quality: (s.quality != 192).then_some(s.quality),
                units: None,
                time: uaedge_driver::Timestamp(s.time.0),
            }));
        }
        if !missing.is_empty() || !bad.is_empty() {
            warn!(seq, device = %rec.device, tags = ?missing, undecodable = bad.len(), "journal samples of tags no longer configured (or of another type) dropped");
        }
        if metrics.is_empty() {
            self.drop_record(seq);
            return Replay::Skipped;
        }
        let n = metrics.len() as f64;
        if self.drain.tokens < n.min(capacity) {
            return Replay::Wait;
        }
        let samples = u32::try_from(metrics.len()).unwrap_or(u32::MAX);
        let topic = self.topics.ddata(&rec.device);
        let qos = self.data_qos();
        if !self.publish(topic, qos, Track::Record { seq, samples }, |sp_seq| {
            codec::historical_payload(sp_seq, metrics)
        }) {
            return Replay::Wait;
        }
        self.drain.tokens -= n;
        self.status
            .replayed
            .fetch_add(u64::from(samples), Ordering::Relaxed);
        Replay::Sent
    }

    fn drop_record(&mut self, seq: u64) {
        self.journal.ack(seq);
        self.status.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

enum Replay {
    Sent,
    /// Dropped, or held for a device that is not born.
    Skipped,
    /// Out of tokens or queue space: try again next tick.
    Wait,
}
