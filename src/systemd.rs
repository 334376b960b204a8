//! systemd integration: READY/STOPPING/STATUS notifications and the watchdog.
//!
//! Everything here is a no-op when systemd did not start us (no `NOTIFY_SOCKET`), so the
//! same binary runs from a shell. A notification that fails is logged at debug and
//! otherwise ignored: systemd being unreachable must not stop the plant's data.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// Startup finished: drivers started and servers listening.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A one-line status shown by `systemctl status uaedge`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload began; `ready` ends it. systemd 253+ wants the monotonic time with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Tells systemd the main loop is alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half of `WatchdogSec`, so one late ping is not fatal.
/// `None` when systemd runs no watchdog for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
