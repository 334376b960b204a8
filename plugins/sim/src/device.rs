//! The simulated device: a step clock in virtual time, the tags' signals, faults and writes.

use std::collections::VecDeque;
use std::hash::Hasher;

use tracing::{info, warn};
use uaedge_driver::{BadReason, DataType, LinkError, Reading, Timestamp, Value, WriteError};

use crate::fault::{Effect, Fault, FaultSpec};
use crate::names::Names;
use crate::rng;
use crate::signal::{number_to_value, zero_value, Raw, Signal, SignalOptions};

/// At most this many steps are emitted by one read; older ones are skipped (with one warn
/// line), so a process that was suspended for a day does not flood the pipeline.
pub const MAX_CATCH_UP: u64 = 10_000;
/// And at most this many samples (steps × tags), never fewer steps than one poll brings
/// (see `SimDevice::read_every`): a device of 2,500 tags
/// that fell 10,000 steps behind would otherwise hand over 25 million samples in one read,
/// gigabytes that the runtime's queues, bounded at about this many samples a batch, cannot
/// hold back. A simulator behind a pipeline that cannot keep up skips steps, as a real
/// device polled too slowly shows only its current value.
pub const MAX_CATCH_UP_SAMPLES: u64 = 65_536;
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
    names: &'a Names,
}

impl Step<'_> {
    /// The name of tag `index` ("" past the last tag), for a driver's log lines.
    pub fn tag_name(&self, index: usize) -> &str {
        self.names.get(index)
    }
}

/// What tags share: a device of thousands of tags has a handful of distinct signals, so
/// each is kept once.
#[derive(Debug, PartialEq)]
struct Profile {
    signal: Signal,
    /// σ of gaussian noise added to every step; 0 for none.
    noise: f64,
    data_type: DataType,
    writable: bool,
}

/// `TagState::extra` of a tag that has none.
const NO_EXTRA: u32 = u32::MAX;
/// `SimDevice::cache_of` a profile whose step values are not shared.
const NO_CACHE: u32 = u32::MAX;

/// The per-tag state stepping reads. It is kept this small because a device may have
/// 100,000 tags: everything else lives in tables shared by tags or owned by the few that
/// need it.
#[derive(Debug, Clone, Copy)]
struct TagState {
    /// [`rng::name_key`] of the tag's name.
    key: u64,
    /// Index into [`SimDevice::profiles`].
    profile: u32,
    /// Index into [`SimDevice::extras`], or [`NO_EXTRA`].
    extra: u32,
}

/// State only written or faulted tags have. A tag named by a fault gets one at build, so
/// stepping looks at the faults only for tags that have one.
#[derive(Debug, Default)]
struct Extra {
    /// Pending writes, each taking effect from its step on.
    writes: VecDeque<(u64, Value)>,
    held: Option<Value>,
    /// (fault index, occurrence, value) of the stuck fault holding this tag.
    frozen: Option<(usize, u64, Option<Raw>)>,
}

/// A tag as handed to [`SimDevice::build`]: borrowed, so a driver's tags need not be
/// cloned into [`SimTag`]s first.
pub(crate) struct TagRef<'a> {
    pub name: &'a str,
    pub data_type: DataType,
    pub writable: bool,
    pub signal: &'a Signal,
    pub noise: f64,
}

/// Feeds formatted text to a hasher, so a profile can be hashed through its `Debug` text
/// (which spells every field, floats exactly) without building the string.
struct HashText<'a>(&'a mut std::collections::hash_map::DefaultHasher);

impl std::fmt::Write for HashText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

fn fingerprint(profile: &Profile) -> Option<u64> {
    use std::fmt::Write;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    write!(HashText(&mut hasher), "{profile:?}").ok()?;
    Some(hasher.finish())
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
    profiles: Vec<Profile>,
    /// Per profile: its slot in `cache`, for a profile several tags share whose value is
    /// the same for all of them (no noise, no walk: nothing keyed by the tag's name), so
    /// a step evaluates it once and hands the others a copy; else [`NO_CACHE`].
    cache_of: Vec<u32>,
    /// This step's sample of each cached profile, once its first tag was evaluated.
    cache: Vec<Option<TagSample>>,
    extras: Vec<Extra>,
    /// Each tag's random walk position, indexed like the tags; empty when no tag walks.
    walks: Vec<f64>,
    names: Names,
    faults: Vec<Fault>,
    /// The last occurrence of each fault that was logged, so each shows once in the log.
    logged: Vec<Option<u64>>,
    /// The last step evaluated: every step evaluates every tag, so one for all tags.
    evaluated: Option<u64>,
    next_step: u64,
    /// Steps one read brings when the device keeps up: the poll interval over the sample
    /// period, plus one for a read that lands late. The samples cap never cuts below it, so
    /// only a device that really fell behind skips steps.
    poll_steps: u64,
    /// Whether the last read skipped steps: the warning is logged when skipping starts,
    /// not at every read of a device that stays behind.
    behind: bool,
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
        SimDevice::build(
            name,
            seed,
            period,
            start,
            tags.iter().map(|t| TagRef {
                name: &t.name,
                data_type: t.data_type,
                writable: t.writable,
                signal: &t.signal,
                noise: t.noise,
            }),
            faults,
        )
    }

    /// Tells the device how often it is read (see `poll_steps`).
    pub fn read_every(mut self, poll_interval: std::time::Duration) -> SimDevice {
        let period = u128::try_from(self.period_us).unwrap_or(1).max(1);
        let steps = poll_interval.as_micros().div_ceil(period) + 1;
        self.poll_steps = u64::try_from(steps).unwrap_or(u64::MAX).max(1);
        self
    }

    /// [`SimDevice::new`] from borrowed tags.
    pub(crate) fn build<'a>(
        name: impl Into<String>,
        seed: u64,
        period: std::time::Duration,
        start: Timestamp,
        tags: impl ExactSizeIterator<Item = TagRef<'a>>,
        faults: &[FaultSpec],
    ) -> Result<SimDevice, String> {
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        if period_us < 1000 {
            return Err(format!("sample period {period:?} is below the 1ms minimum"));
        }
        let count = tags.len();
        let mut states = Vec::with_capacity(count);
        let mut names = Names {
            text: String::new(),
            ends: Vec::with_capacity(count),
        };
        let mut profiles: Vec<Profile> = Vec::new();
        let mut known: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
        let mut walks = Vec::new();
        for (i, tag) in tags.enumerate() {
            names.push(tag.name)?;
            let profile = Profile {
                signal: tag.signal.clone(),
                noise: tag.noise,
                data_type: tag.data_type,
                writable: tag.writable,
            };
            if matches!(profile.signal, Signal::RandomWalk { .. }) && walks.is_empty() {
                walks = vec![0.0; count];
            }
            if let Some(w) = walks.get_mut(i) {
                *w = profile.signal.walk_start();
            }
            let print = fingerprint(&profile);
            let index = match print.and_then(|p| known.get(&p)).copied() {
                Some(j) if profiles.get(j as usize) == Some(&profile) => j,
                _ => {
                    let j = u32::try_from(profiles.len())
                        .map_err(|_| "more than 4 billion tags".to_string())?;
                    if let Some(p) = print {
                        known.entry(p).or_insert(j);
                    }
                    profiles.push(profile);
                    j
                }
            };
            states.push(TagState {
                key: rng::name_key(tag.name),
                profile: index,
                extra: NO_EXTRA,
            });
        }
        drop(known);
        let mut users = vec![0u32; profiles.len()];
        for state in &states {
            if let Some(n) = users.get_mut(state.profile as usize) {
                *n = n.saturating_add(1);
            }
        }
        let mut cached = 0u32;
        let cache_of: Vec<u32> = profiles
            .iter()
            .zip(&users)
            .map(|(p, n)| {
                let keyed = p.noise > 0.0 || matches!(p.signal, Signal::RandomWalk { .. });
                if *n < 2 || keyed {
                    return NO_CACHE;
                }
                cached += 1;
                cached - 1
            })
            .collect();
        drop(users);
        // Both grew by doubling; they are kept for the device's life.
        names.text.shrink_to_fit();
        profiles.shrink_to_fit();
        let mut device = SimDevice {
            name: name.into(),
            seed,
            period_us,
            start: Timestamp(start.0 - start.0.rem_euclid(period_us)),
            samples: vec![TagSample::Idle; count],
            logged: Vec::new(),
            tags: states,
            profiles,
            cache_of,
            cache: (0..cached).map(|_| None).collect(),
            extras: Vec::new(),
            walks,
            names,
            faults: Vec::new(),
            evaluated: None,
            next_step: 0,
            poll_steps: 1,
            behind: false,
            connected: false,
        };
        let names: Vec<&str> = (0..count).map(|i| device.names.get(i)).collect();
        let types: Vec<DataType> = device
            .tags
            .iter()
            .map(|t| device.profile(t).data_type)
            .collect();
        let faults = faults
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Fault::resolve(f, &names, &types, period).map_err(|e| format!("faults[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        drop(names);
        for tag in faults.iter().filter_map(|f| f.tag) {
            device.extra(tag);
        }
        device.logged = vec![None; faults.len()];
        device.faults = faults;
        Ok(device)
    }

    fn profile(&self, tag: &TagState) -> &Profile {
        profile_of(&self.profiles, tag)
    }

    /// The extra state of tag `index`, made on first use.
    fn extra(&mut self, index: usize) -> Option<&mut Extra> {
        let state = self.tags.get_mut(index)?;
        if state.extra == NO_EXTRA {
            state.extra = u32::try_from(self.extras.len()).ok()?;
            self.extras.push(Extra::default());
        }
        self.extras.get_mut(state.extra as usize)
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

    /// How many tags the device has.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// The name of tag `index` ("" past the last tag), for log lines and errors.
    pub fn tag_name(&self, index: usize) -> &str {
        self.names.get(index)
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
        let cap = MAX_CATCH_UP
            .min((MAX_CATCH_UP_SAMPLES / self.tags.len().max(1) as u64).max(self.poll_steps));
        let emit_from = if due > cap {
            let from = current + 1 - cap;
            let replayed = (from - first).min(MAX_REPLAY);
            first = from - replayed;
            if !self.behind {
                warn!(
                    device = %self.name,
                    skipped = from - self.next_step,
                    replayed,
                    "simulated device fell behind; skipping the oldest steps"
                );
            }
            self.behind = true;
            from
        } else {
            self.behind = false;
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
                names: &self.names,
            };
            project(&step);
        }
        self.next_step = current + 1;
        Ok(())
    }

    /// Pushes one [`Reading`] per tag for every due step: the projection for devices
    /// whose tags are plain values (no shared byte images).
    pub fn read_due(&mut self, now: Timestamp, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let types: Vec<DataType> = self
            .tags
            .iter()
            .map(|t| self.profile(t).data_type)
            .collect();
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
            .get(index)
            .ok_or_else(|| WriteError::Rejected(format!("no tag with index {tag}")))?;
        let profile = self.profile(state);
        if !profile.writable {
            return Err(WriteError::NotWritable);
        }
        if value.data_type() != profile.data_type {
            return Err(WriteError::TypeMismatch(format!(
                "{} holds {}, got {}",
                self.names.get(index),
                profile.data_type,
                value.data_type()
            )));
        }
        if let Some(kind) = blocked {
            return Err(WriteError::Rejected(format!(
                "tag is in a simulated {kind} fault"
            )));
        }
        info!(device = %self.name, tag = %self.names.get(index), value = %value, step = from, "simulated write");
        let extra = self
            .extra(index)
            .ok_or_else(|| WriteError::Rejected(format!("no room for a write to tag {tag}")))?;
        if extra.writes.back().is_some_and(|(k, _)| *k == from) {
            extra.writes.pop_back();
        }
        extra.writes.push_back((from, value));
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
        let step = StepAt {
            seed: self.seed,
            k,
            t_us,
            t: t_us as f64 / 1e6,
            time: self.step_time(k),
            walk_moves: self.evaluated.is_some_and(|j| j < k),
        };
        self.evaluated = Some(k);
        let SimDevice {
            name,
            tags,
            profiles,
            cache_of,
            cache,
            extras,
            walks,
            names,
            faults,
            logged,
            samples,
            ..
        } = self;
        cache.iter_mut().for_each(|c| *c = None);
        for (i, (state, slot)) in tags.iter().zip(samples.iter_mut()).enumerate() {
            let extra = match state.extra {
                NO_EXTRA => None,
                e => extras.get_mut(e as usize),
            };
            // A written or faulted tag has its own course.
            let cached = match (&extra, cache_of.get(state.profile as usize)) {
                (None, Some(&c)) if c != NO_CACHE => cache.get_mut(c as usize),
                _ => None,
            };
            if let Some(Some(sample)) = &cached {
                slot.clone_from(sample);
                continue;
            }
            let tag = Tag {
                index: i,
                key: state.key,
                profile: profile_of(profiles, state),
                walk: walks.get_mut(i),
            };
            eval_tag(tag, &step, extra, faults, logged, slot, || {
                (name.as_str(), names.get(i))
            });
            if let Some(c) = cached {
                *c = Some(slot.clone());
            }
        }
    }
}

/// Stands in for a profile index that is out of range, which `build` never makes.
static NO_PROFILE: Profile = Profile {
    signal: Signal::None,
    noise: 0.0,
    data_type: DataType::Boolean,
    writable: false,
};

fn profile_of<'a>(profiles: &'a [Profile], tag: &TagState) -> &'a Profile {
    profiles.get(tag.profile as usize).unwrap_or(&NO_PROFILE)
}

/// What every tag of one step shares.
struct StepAt {
    seed: u64,
    k: u64,
    t_us: i64,
    t: f64,
    time: Timestamp,
    /// False at the first step evaluated, where walks stay at their start.
    walk_moves: bool,
}

struct Tag<'a> {
    index: usize,
    key: u64,
    profile: &'a Profile,
    /// The tag's random walk position, if any tag of the device walks.
    walk: Option<&'a mut f64>,
}

/// The reading a sample gives a tag that has no storage of its own beyond its value.
pub fn sample_reading(tag: u32, sample: &TagSample, data_type: DataType) -> Reading {
    match sample {
        TagSample::Driven(v) => Reading::good(tag, v.clone()),
        TagSample::Idle => Reading::good(tag, zero_value(data_type)),
        TagSample::Bad(reason) => Reading::bad(tag, *reason),
    }
}

/// `who` names the device and the tag for a log line; looked up only when one is written.
fn eval_tag<'a>(
    tag: Tag<'_>,
    step: &StepAt,
    mut extra: Option<&mut Extra>,
    faults: &[Fault],
    logged: &mut [Option<u64>],
    slot: &mut TagSample,
    who: impl Fn() -> (&'a str, &'a str),
) {
    let &StepAt {
        seed,
        k,
        t_us,
        t,
        time,
        walk_moves,
    } = step;
    let profile = tag.profile;
    let mut held = None;
    if let Some(extra) = extra.as_deref_mut() {
        while extra.writes.front().is_some_and(|(from, _)| *from <= k) {
            extra.held = extra.writes.pop_front().map(|(_, v)| v);
        }
        held = extra.held.as_ref();
    }
    // The walk advances underneath a write too, so its course does not depend on writes.
    let mut position = 0.0;
    if let Some(walk) = tag.walk {
        if walk_moves {
            if let Signal::RandomWalk { .. } = profile.signal {
                let u = rng::symmetric(seed, tag.key, k, STREAM_WALK);
                *walk = profile.signal.walk(*walk, u);
            }
        }
        position = *walk;
    }
    let mut value = match held {
        Some(v) => Some(Raw::Val(v.clone())),
        None => match profile.signal.eval(profile.data_type, k, t, time, position) {
            Some(Raw::Num(x)) if profile.noise > 0.0 => Some(Raw::Num(
                x + profile.noise * rng::gaussian(seed, tag.key, k, STREAM_NOISE),
            )),
            other => other,
        },
    };
    let mut add = 0.0;
    let mut bad = None;
    // Only a tag with extra state can be named by a fault.
    if let Some(extra) = extra {
        for (fi, fault) in faults.iter().enumerate() {
            if fault.tag != Some(tag.index) {
                continue;
            }
            let Some((occ, begins)) = fault.occurrence(t_us) else {
                continue;
            };
            if let Some(slot) = logged.get_mut(fi) {
                if *slot != Some(occ) {
                    *slot = Some(occ);
                    let (device, name) = who();
                    info!(device, tag = %name, fault = fault.kind.name(), step = k, "simulated fault begins");
                }
            }
            match fault.effect {
                Effect::Stuck => match &extra.frozen {
                    Some((f, o, v)) if *f == fi && *o == occ => value = v.clone(),
                    _ => extra.frozen = Some((fi, occ, value.clone())),
                },
                Effect::Spike(m) => add += m,
                Effect::Drift(rate) => add += rate * (t_us - begins) as f64 / 1e6,
                Effect::NoiseBurst(sigma) => {
                    add += sigma * rng::gaussian(seed, tag.key, k, STREAM_BURST + fi as u64)
                }
                Effect::Dropout => bad = bad.or(Some(BadReason::CommFailure)),
                Effect::DeviceFailure => bad = Some(BadReason::DeviceFailure),
                Effect::Offline => {}
            }
        }
    }
    if let Some(reason) = bad {
        *slot = TagSample::Bad(reason);
        return;
    }
    let data_type = profile.data_type;
    // Written in place rather than returned: returning it measured some 10% slower on a
    // random walk's step.
    *slot = match value {
        None => TagSample::Idle,
        Some(Raw::Num(x)) => TagSample::Driven(number_to_value(x + add, data_type)),
        Some(Raw::Val(v)) if add != 0.0 => match v.as_f64() {
            Some(x) if data_type.is_numeric() => {
                TagSample::Driven(number_to_value(x + add, data_type))
            }
            _ => TagSample::Driven(v),
        },
        Some(Raw::Val(v)) => TagSample::Driven(v),
    };
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
