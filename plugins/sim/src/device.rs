//! The simulated device: a step clock in virtual time, the tags' signals, faults and writes.

use std::collections::VecDeque;

use tracing::{info, warn};
use uaedge_driver::{BadReason, DataType, LinkError, Reading, Timestamp, Value, WriteError};

use crate::fault::{Effect, Fault, FaultSpec};
use crate::rng;
use crate::signal::{number_to_value, zero_value, Raw, Signal, SignalOptions};

/// At most this many steps are emitted by one read; older ones are skipped (with one warn
/// line), so a process that was suspended for a day does not flood the pipeline.
pub const MAX_CATCH_UP: u64 = 10_000;
/// Skipped steps are still evaluated silently up to this many, so random walks and stuck
/// values stay on their deterministic course; past it the walk continues from where it was.
pub const MAX_REPLAY: u64 = 1_000_000;

const STREAM_NOISE: u64 = 1;
const STREAM_WALK: u64 = 2;
const STREAM_BURST: u64 = 1 << 20;

/// A tag of a simulated device.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTag {
    pub name: String,
    /// The type the simulated device holds (its native type).
    pub data_type: DataType,
    pub writable: bool,
    pub signal: Signal,
    /// σ of gaussian noise added to every step; 0 for none.
    pub noise: f64,
}

impl SimTag {
    pub fn new(
        name: impl Into<String>,
        data_type: DataType,
        writable: bool,
        options: &SignalOptions,
    ) -> Result<SimTag, String> {
        let (signal, noise) = options.build(data_type)?;
        Ok(SimTag {
            name: name.into(),
            data_type,
            writable,
            signal,
            noise,
        })
    }
}

/// One tag at one step.
#[derive(Debug, Clone, PartialEq)]
pub enum TagSample {
    /// The tag's signal or its last write produced this value.
    Driven(Value),
    /// Nothing drives the tag (no signal, never written): it shows whatever its storage
    /// holds: zero for a plain tag, or bytes other tags wrote for a view into an image.
    Idle,
    /// A fault took the value away.
    Bad(BadReason),
}

/// One step of virtual time, handed to a driver's projection.
#[derive(Debug)]
pub struct Step<'a> {
    pub index: u64,
    pub time: Timestamp,
    /// False for steps that produce no readings (inside an offline window, or skipped by the
    /// catch-up cap) but are still evaluated so stateful signals stay deterministic.
    pub emit: bool,
    /// Indexed like the tags the device was built with.
    pub samples: &'a [TagSample],
}

#[derive(Debug)]
struct TagState {
    tag: SimTag,
    key: u64,
    walk: f64,
    walk_step: Option<u64>,
    /// Pending writes, each taking effect from its step on.
    writes: VecDeque<(u64, Value)>,
    held: Option<Value>,
    /// (fault index, occurrence, value) of the stuck fault holding this tag.
    frozen: Option<(usize, u64, Option<Raw>)>,
}

/// A simulated device. Every value is a function of (seed, tag name, step index, faults,
/// writes), never of when or how often `read` is called.
#[derive(Debug)]
pub struct SimDevice {
    name: String,
    seed: u64,
    period_us: i64,
    start: Timestamp,
    tags: Vec<TagState>,
    faults: Vec<Fault>,
    /// The last occurrence of each fault that was logged, so each shows once in the log.
    logged: Vec<Option<u64>>,
    next_step: u64,
    connected: bool,
    samples: Vec<TagSample>,
}

impl SimDevice {
    /// `start` is aligned down to the period: pass the wall clock at build.
    pub fn new(
        name: impl Into<String>,
        seed: u64,
        period: std::time::Duration,
        start: Timestamp,
        tags: Vec<SimTag>,
        faults: &[FaultSpec],
    ) -> Result<SimDevice, String> {
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        if period_us < 1000 {
            return Err(format!("sample period {period:?} is below the 1ms minimum"));
        }
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        let types: Vec<DataType> = tags.iter().map(|t| t.data_type).collect();
        let faults = faults
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Fault::resolve(f, &names, &types, period).map_err(|e| format!("faults[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tags: Vec<TagState> = tags
            .into_iter()
            .map(|tag| TagState {
                key: rng::name_key(&tag.name),
                walk: tag.signal.walk_start(),
                walk_step: None,
                writes: VecDeque::new(),
                held: None,
                frozen: None,
                tag,
            })
            .collect();
        Ok(SimDevice {
            name: name.into(),
            seed,
            period_us,
            start: Timestamp(start.0 - start.0.rem_euclid(period_us)),
            samples: vec![TagSample::Idle; tags.len()],
            logged: vec![None; faults.len()],
            tags,
            faults,
            next_step: 0,
            connected: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time of step 0.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn sample_period(&self) -> std::time::Duration {
        std::time::Duration::from_micros(u64::try_from(self.period_us).unwrap_or(0))
    }

    pub fn step_time(&self, k: u64) -> Timestamp {
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        Timestamp(
            self.start
                .0
                .saturating_add(k.saturating_mul(self.period_us)),
        )
    }

    /// The last step whose time is at or before `now`; `None` before step 0.
    pub fn step_at(&self, now: Timestamp) -> Option<u64> {
        let since = now.0.checked_sub(self.start.0)?;
        u64::try_from(since / self.period_us).ok()
    }

    pub fn tags(&self) -> impl Iterator<Item = &SimTag> {
        self.tags.iter().map(|s| &s.tag)
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Fails while the step clock is inside an `offline` window, as a real device that does
    /// not answer.
    pub fn connect(&mut self, now: Timestamp) -> Result<(), LinkError> {
        self.check_offline(self.step_at(now).unwrap_or(0))?;
        self.connected = true;
        Ok(())
    }

    pub fn disconnect(&mut self) {
        self.connected = false;
    }

    /// Evaluates every step from the last one read up to `now`, oldest first, and hands each
    /// to `project`. Steps inside an offline window are evaluated with `emit == false`.
    pub fn advance(
        &mut self,
        now: Timestamp,
        mut project: impl FnMut(&Step<'_>),
    ) -> Result<(), LinkError> {
        let Some(current) = self.step_at(now) else {
            return Ok(());
        };
        self.check_offline(current)?;
        if !self.connected {
            return Err(LinkError::not_connected(
                "simulated device is not connected",
            ));
        }
        if current < self.next_step {
            return Ok(());
        }
        let due = current - self.next_step + 1;
        let mut first = self.next_step;
        let emit_from = if due > MAX_CATCH_UP {
            let from = current + 1 - MAX_CATCH_UP;
            let replayed = (from - first).min(MAX_REPLAY);
            first = from - replayed;
            warn!(
                device = %self.name,
                skipped = from - self.next_step,
                replayed,
                "simulated device fell behind; skipping the oldest steps"
            );
            from
        } else {
            first
        };
        for k in first..=current {
            let emit = k >= emit_from && self.offline_fault(k).is_none();
            self.eval_step(k);
            let step = Step {
                index: k,
                time: self.step_time(k),
                emit,
                samples: &self.samples,
            };
            project(&step);
        }
        self.next_step = current + 1;
        Ok(())
    }

    /// Pushes one [`Reading`] per tag for every due step: the projection for devices
    /// whose tags are plain values (no shared byte images).
    pub fn read_due(&mut self, now: Timestamp, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let types: Vec<DataType> = self.tags.iter().map(|t| t.tag.data_type).collect();
        self.advance(now, |step| {
            if !step.emit {
                return;
            }
            for (i, (sample, t)) in step.samples.iter().zip(&types).enumerate() {
                let tag = u32::try_from(i).unwrap_or(u32::MAX);
                out.push(sample_reading(tag, sample, *t).at(step.time));
            }
        })
    }

    /// Holds `value` on the tag from the current step on (or the next one, if the current
    /// step was already read), until the next write.
    pub fn write(&mut self, now: Timestamp, tag: u32, value: Value) -> Result<(), WriteError> {
        let current = self.step_at(now).unwrap_or(0);
        self.check_offline(current)?;
        if !self.connected {
            return Err(LinkError::not_connected("simulated device is not connected").into());
        }
        let index = usize::try_from(tag).unwrap_or(usize::MAX);
        let t_us = self.offset_us(current);
        let blocked = self
            .faults
            .iter()
            .find(|f| {
                f.tag == Some(index)
                    && matches!(f.effect, Effect::Dropout | Effect::DeviceFailure)
                    && f.occurrence(t_us).is_some()
            })
            .map(|f| f.kind.name());
        let from = current.max(self.next_step);
        let state = self
            .tags
            .get_mut(index)
            .ok_or_else(|| WriteError::Rejected(format!("no tag with index {tag}")))?;
        if !state.tag.writable {
            return Err(WriteError::NotWritable);
        }
        if value.data_type() != state.tag.data_type {
            return Err(WriteError::TypeMismatch(format!(
                "{} holds {}, got {}",
                state.tag.name,
                state.tag.data_type,
                value.data_type()
            )));
        }
        if let Some(kind) = blocked {
            return Err(WriteError::Rejected(format!(
                "tag is in a simulated {kind} fault"
            )));
        }
        info!(device = %self.name, tag = %state.tag.name, value = %value, step = from, "simulated write");
        if state.writes.back().is_some_and(|(k, _)| *k == from) {
            state.writes.pop_back();
        }
        state.writes.push_back((from, value));
        Ok(())
    }

    fn offset_us(&self, k: u64) -> i64 {
        i64::try_from(k)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.period_us)
    }

    fn offline_fault(&self, k: u64) -> Option<(usize, u64, i64)> {
        let t = self.offset_us(k);
        self.faults.iter().enumerate().find_map(|(i, f)| {
            if f.effect != Effect::Offline {
                return None;
            }
            f.occurrence(t).map(|(occ, begins)| (i, occ, begins))
        })
    }

    fn check_offline(&mut self, k: u64) -> Result<(), LinkError> {
        let Some((i, occ, begins)) = self.offline_fault(k) else {
            return Ok(());
        };
        self.connected = false;
        let until = self.faults.get(i).and_then(|f| f.ends(begins));
        if self.logged.get(i).copied().flatten() != Some(occ) {
            if let Some(slot) = self.logged.get_mut(i) {
                *slot = Some(occ);
            }
            info!(device = %self.name, fault = "offline", step = k, until_s = until.map(|u| u as f64 / 1e6), "simulated device goes offline");
        }
        Err(LinkError::not_connected(match until {
            Some(u) => format!(
                "simulated device offline until {}s after start",
                u as f64 / 1e6
            ),
            None => "simulated device offline".to_string(),
        }))
    }

    fn eval_step(&mut self, k: u64) {
        let t_us = self.offset_us(k);
        let t = t_us as f64 / 1e6;
        let time = self.step_time(k);
        for (i, state) in self.tags.iter_mut().enumerate() {
            let sample = eval_tag(
                state,
                i,
                self.seed,
                k,
                t_us,
                t,
                time,
                &self.faults,
                &mut self.logged,
                &self.name,
            );
            if let Some(slot) = self.samples.get_mut(i) {
                *slot = sample;
            }
        }
    }
}

/// The reading a sample gives a tag that has no storage of its own beyond its value.
pub fn sample_reading(tag: u32, sample: &TagSample, data_type: DataType) -> Reading {
    match sample {
        TagSample::Driven(v) => Reading::good(tag, v.clone()),
        TagSample::Idle => Reading::good(tag, zero_value(data_type)),
        TagSample::Bad(reason) => Reading::bad(tag, *reason),
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_tag(
    state: &mut TagState,
    index: usize,
    seed: u64,
    k: u64,
    t_us: i64,
    t: f64,
    time: Timestamp,
    faults: &[Fault],
    logged: &mut [Option<u64>],
    device: &str,
) -> TagSample {
    while state.writes.front().is_some_and(|(from, _)| *from <= k) {
        state.held = state.writes.pop_front().map(|(_, v)| v);
    }
    // The walk advances underneath a write too, so its course does not depend on writes.
    if let Signal::RandomWalk { .. } = state.tag.signal {
        if state.walk_step.is_some_and(|j| j < k) {
            let u = rng::symmetric(seed, state.key, k, STREAM_WALK);
            state.walk = state.tag.signal.walk(state.walk, u);
        }
        state.walk_step = Some(k);
    }
    let mut value = match &state.held {
        Some(v) => Some(Raw::Val(v.clone())),
        None => match state
            .tag
            .signal
            .eval(state.tag.data_type, k, t, time, state.walk)
        {
            Some(Raw::Num(x)) if state.tag.noise > 0.0 => Some(Raw::Num(
                x + state.tag.noise * rng::gaussian(seed, state.key, k, STREAM_NOISE),
            )),
            other => other,
        },
    };
    let mut add = 0.0;
    let mut bad = None;
    for (fi, fault) in faults.iter().enumerate() {
        if fault.tag != Some(index) {
            continue;
        }
        let Some((occ, begins)) = fault.occurrence(t_us) else {
            continue;
        };
        if let Some(slot) = logged.get_mut(fi) {
            if *slot != Some(occ) {
                *slot = Some(occ);
                info!(device, tag = %state.tag.name, fault = fault.kind.name(), step = k, "simulated fault begins");
            }
        }
        match fault.effect {
            Effect::Stuck => match &state.frozen {
                Some((f, o, v)) if *f == fi && *o == occ => value = v.clone(),
                _ => state.frozen = Some((fi, occ, value.clone())),
            },
            Effect::Spike(m) => add += m,
            Effect::Drift(rate) => add += rate * (t_us - begins) as f64 / 1e6,
            Effect::NoiseBurst(sigma) => {
                add += sigma * rng::gaussian(seed, state.key, k, STREAM_BURST + fi as u64)
            }
            Effect::Dropout => bad = bad.or(Some(BadReason::CommFailure)),
            Effect::DeviceFailure => bad = Some(BadReason::DeviceFailure),
            Effect::Offline => {}
        }
    }
    if let Some(reason) = bad {
        return TagSample::Bad(reason);
    }
    let data_type = state.tag.data_type;
    match value {
        None => TagSample::Idle,
        Some(Raw::Num(x)) => TagSample::Driven(number_to_value(x + add, data_type)),
        Some(Raw::Val(v)) if add != 0.0 => match v.as_f64() {
            Some(x) if data_type.is_numeric() => {
                TagSample::Driven(number_to_value(x + add, data_type))
            }
            _ => TagSample::Driven(v),
        },
        Some(Raw::Val(v)) => TagSample::Driven(v),
    }
}
