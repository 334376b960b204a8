//! The log: one line per event on stderr, filtered by `log.level` (or `RUST_LOG`), with
//! the OPC UA library kept from flooding it.
//!
//! async-opcua logs for itself: per connection at INFO (accepted, terminated, its internal
//! listening port, which is not the one clients use) and per failure at WARN or ERROR, in
//! lines a peer can trigger at will. So its crates start at WARN unless `log.level` names
//! them (`info,opcua_server=debug`), and each of their log statements is let through at
//! most once a minute; uaedge logs the connection events that matter itself (gate.rs).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{info, warn, Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The OPC UA library's crates, by the target prefix their log lines carry.
const LIBRARY: &str = "opcua_";
/// Each of the library's log statements passes at most once per this.
const LIBRARY_EVERY: Duration = Duration::from_secs(60);

/// `level` with the library's crates at WARN (or quieter, when `level` is), unless it says
/// otherwise about them.
pub fn directives(level: &str) -> String {
    if level.contains(LIBRARY) {
        return level.to_string();
    }
    let default = level
        .split(',')
        .map(str::trim)
        .find(|d| !d.contains('='))
        .unwrap_or("");
    let cap = if default.eq_ignore_ascii_case("error") || default.eq_ignore_ascii_case("off") {
        default
    } else {
        "warn"
    };
    let quiet = [
        "opcua_server",
        "opcua_client",
        "opcua_core",
        "opcua_crypto",
        "opcua_nodes",
        "opcua_types",
    ]
    .map(|c| format!("{c}={cap}"))
    .join(",");
    if level.trim().is_empty() {
        quiet
    } else {
        format!("{level},{quiet}")
    }
}

/// Lets each log statement of the library through once per [`LIBRARY_EVERY`]; its DEBUG
/// and TRACE lines, seen only when asked for, all pass.
#[derive(Default)]
pub struct LibraryLimit {
    last: parking_lot::Mutex<HashMap<Identifier, Instant>>,
}

impl LibraryLimit {
    fn admits(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        if !meta.target().starts_with(LIBRARY) || *meta.level() > Level::INFO {
            return true;
        }
        let mut last = self.last.lock();
        match last.get(&meta.callsite()) {
            Some(at) if now.duration_since(*at) < LIBRARY_EVERY => false,
            _ => {
                last.insert(meta.callsite(), now);
                true
            }
        }
    }
}

impl<S> Filter<S> for LibraryLimit {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        self.admits(event.metadata(), Instant::now())
    }
}

/// Changes the log filter of the running process: `log.level` on reload.
pub struct LogLevel {
    /// `None` when `RUST_LOG` is set: the environment wins, for one-off debugging.
    reload: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogLevel {
    pub fn set(&self, level: &str) {
        let Some(reload) = &self.reload else {
            info!("RUST_LOG is set; log.level from the config is not applied");
            return;
        };
        let result = EnvFilter::try_new(directives(level))
            .map_err(|e| e.to_string())
            .and_then(|f| reload.reload(f).map_err(|e| e.to_string()));
        match result {
            Ok(()) => info!(level, "log level applied"),
            Err(e) => warn!(level, error = %e, "log level not applied"),
        }
    }
}

/// Installs the process's log. Under systemd (JOURNAL_STREAM set) journald adds its own
/// time and colours would be noise, so both go.
pub fn init(level: &str) -> LogLevel {
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_wins = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(directives(level)).ok())
        .unwrap_or_else(|| EnvFilter::new(directives("info")));
    let (filter, reload) = reload::Layer::new(filter);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let lines = fmt::layer()
        .with_ansi(!journald && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false);
    type Filtered =
        tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
    let lines: Box<dyn tracing_subscriber::Layer<Filtered> + Send + Sync> = if journald {
        Box::new(lines.without_time())
    } else {
        Box::new(lines)
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines.with_filter(LibraryLimit::default()))
        .try_init();
    LogLevel {
        reload: (!env_wins).then_some(reload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_starts_at_warn_unless_named() {
        assert_eq!(
            directives("info"),
            "info,opcua_server=warn,opcua_client=warn,opcua_core=warn,opcua_crypto=warn,opcua_nodes=warn,opcua_types=warn"
        );
        assert_eq!(
            directives("debug,opcua_server=trace"),
            "debug,opcua_server=trace"
        );
        assert!(directives("error").ends_with("opcua_types=error"));
        assert!(EnvFilter::try_new(directives("")).is_ok());
    }

    #[test]
    fn a_library_statement_passes_once_a_minute() {
        static FIELDS: &[&str] = &[];
        struct Site;
        static SITE: Site = Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                &META
            }
        }
        static META: Metadata<'static> = tracing::metadata!(
            name: "x",
            target: "opcua_server::transport",
            level: Level::ERROR,
            fields: FIELDS,
            callsite: &SITE,
            kind: tracing::metadata::Kind::EVENT
        );
        let limit = LibraryLimit::default();
        let t0 = Instant::now();
        assert!(limit.admits(&META, t0));
        assert!(!limit.admits(&META, t0 + Duration::from_secs(59)));
        assert!(limit.admits(&META, t0 + Duration::from_secs(61)));
    }
}
