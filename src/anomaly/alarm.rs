//! The alarm state machine of one (tag, check): Normal ⇄ Active, debounced both ways.
//!
//! A check judges each good sample as a [`Verdict`]: `Hit` (the condition holds), `Clear`
//! (it is false by the check's hysteresis margin too) or `Neutral` (in the hysteresis band,
//! or not enough data to judge). The machine moves
//! - Normal → Active after `Hit`s for `delay` (from the first hit's sample time to a later
//!   sample's or tick's time) or for `hits` consecutive samples;
//! - Active → Normal after `Clear`s the same way (the debounce is symmetric).
//!
//! Anything else restarts the pending run: a `Neutral`, the opposite verdict, or a Bad
//! sample ([`AlarmMachine::interrupt`]) since nobody knows what the value did meanwhile.
//! Ticks (no sample) only advance `delay` runs, treating the last verdict as still true
//! (the value holds until the next sample); they never count as `hits`.

use super::spec::Debounce;

/// A check's judgement of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Hit,
    Clear,
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Normal,
    Active,
}

impl AlarmState {
    pub fn is_active(self) -> bool {
        self == AlarmState::Active
    }
}

#[derive(Debug, Clone)]
pub struct AlarmMachine {
    debounce: Debounce,
    active: bool,
    /// Consecutive samples agreeing with a change of state.
    run: u32,
    /// Time of the first of them, microseconds.
    since: Option<i64>,
}

impl AlarmMachine {
    pub fn new(debounce: Debounce) -> AlarmMachine {
        AlarmMachine {
            debounce,
            active: false,
            run: 0,
            since: None,
        }
    }

    pub fn state(&self) -> AlarmState {
        if self.active {
            AlarmState::Active
        } else {
            AlarmState::Normal
        }
    }

    /// Active without a transition: an alarm that was Active before a restart.
    pub fn resume_active(&mut self) {
        self.active = true;
        self.interrupt();
    }

    /// Restarts a pending change (after a Bad sample); the state itself holds.
    pub fn interrupt(&mut self) {
        self.run = 0;
        self.since = None;
    }

    /// A sample's verdict at `time`; the new state if it changed.
    pub fn on_sample(&mut self, verdict: Verdict, time: i64) -> Option<AlarmState> {
        self.step(verdict, time, true)
    }

    /// No sample, but time passed: the last verdict (or a re-evaluation at `now`) holds.
    pub fn on_tick(&mut self, verdict: Verdict, now: i64) -> Option<AlarmState> {
        if matches!(self.debounce, Debounce::Hits(_)) {
            return None;
        }
        self.step(verdict, now, false)
    }

    fn step(&mut self, verdict: Verdict, time: i64, sample: bool) -> Option<AlarmState> {
        let toward = if self.active {
            Verdict::Clear
        } else {
            Verdict::Hit
        };
        if verdict != toward {
            self.interrupt();
            return None;
        }
        if sample {
            self.run = self.run.saturating_add(1);
        }
        let since = *self.since.get_or_insert(time);
        let done = match self.debounce {
            Debounce::Hits(n) => self.run >= n,
            Debounce::Delay(d) => time.saturating_sub(since) >= d,
        };
        if !done {
            return None;
        }
        self.active = !self.active;
        self.interrupt();
        Some(self.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn immediate_by_default() {
        let mut a = AlarmMachine::new(Debounce::default());
        assert_eq!(a.on_sample(Clear, 0), None);
        assert_eq!(a.on_sample(Hit, 1), Some(AlarmState::Active));
        assert_eq!(a.on_sample(Hit, 2), None);
        assert_eq!(a.on_sample(Neutral, 3), None);
        assert_eq!(a.on_sample(Clear, 4), Some(AlarmState::Normal));
    }

    #[test]
    fn hits_must_be_consecutive_both_ways() {
        let mut a = AlarmMachine::new(Debounce::Hits(3));
        assert_eq!(a.on_sample(Hit, 0), None);
        assert_eq!(a.on_sample(Hit, 1), None);
        assert_eq!(a.on_sample(Clear, 2), None); // restarts
        assert_eq!(a.on_sample(Hit, 3), None);
        assert_eq!(a.on_sample(Hit, 4), None);
        // Ticks never count as hits.
        assert_eq!(a.on_tick(Hit, 100), None);
        assert_eq!(a.on_sample(Hit, 5), Some(AlarmState::Active));
        assert_eq!(a.on_sample(Clear, 6), None);
        assert_eq!(a.on_sample(Clear, 7), None);
        assert_eq!(a.on_sample(Neutral, 8), None); // in the hysteresis band: restarts
        assert_eq!(a.on_sample(Clear, 9), None);
        assert_eq!(a.on_sample(Clear, 10), None);
        assert_eq!(a.on_sample(Clear, 11), Some(AlarmState::Normal));
    }

    #[test]
    fn delay_by_sample_time_and_by_tick() {
        let mut a = AlarmMachine::new(Debounce::Delay(2_000_000));
        assert_eq!(a.on_sample(Hit, 10_000_000), None);
        assert_eq!(a.on_sample(Hit, 11_000_000), None);
        assert_eq!(a.on_sample(Hit, 12_000_000), Some(AlarmState::Active));
        // Clearing: a tick carries the held Clear verdict over the delay.
        assert_eq!(a.on_sample(Clear, 13_000_000), None);
        assert_eq!(a.on_tick(Clear, 14_999_999), None);
        assert_eq!(a.on_tick(Clear, 15_000_000), Some(AlarmState::Normal));
    }

    #[test]
    fn bad_sample_restarts_the_pending_run() {
        let mut a = AlarmMachine::new(Debounce::Delay(2_000_000));
        assert_eq!(a.on_sample(Hit, 0), None);
        a.interrupt();
        assert_eq!(a.on_sample(Hit, 3_000_000), None);
        assert_eq!(a.on_sample(Hit, 5_000_000), Some(AlarmState::Active));
    }
}
