//! Capped exponential backoff: a device's reconnects, an MQTT session's, an `exec`
//! driver's restarts.

use serde::Deserialize;

use crate::Duration;

/// Capped exponential backoff between reconnect attempts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "default_backoff_min")]
    pub min: Duration,
    #[serde(default = "default_backoff_max")]
    pub max: Duration,
}

impl Backoff {
    /// The wait before reconnect attempt `attempt` (0 for the first): `min * 2^attempt`,
    /// capped at `max`.
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.min.get().saturating_mul(factor).min(self.max.get())
    }
}

fn default_backoff_min() -> Duration {
    Duration::from_millis(500)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: default_backoff_min(),
            max: default_backoff_max(),
        }
    }
}
