//! `opcua: limits:`: how large a message, a service call and a subscription may grow.
//!
//! The defaults hold a 100,000-tag gateway: one Read, Write or CreateMonitoredItems may
//! cover every tag, and the OperationLimits under `Server/ServerCapabilities` advertise
//! them so that clients batch below them. A Publish response carries at most
//! `max_notifications_per_publish` notifications, the rest follow in further responses
//! (MoreNotifications): at most about 35 bytes each for numeric tags, 1,000 of them stay
//! far below the smallest receive limit clients announce (async-opcua's 320 KiB). Only string
//! tags of several hundred characters could exceed that at 1,000 per response; lower the
//! value (or let the client ask for fewer) where such tags change in thousands at once.

use serde::Deserialize;

use super::{ByteSize, ConfigError, RawNode, Spanned};

/// `limits:` as written in YAML; every key is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_size: Option<Spanned<ByteSize>>,
    max_chunk_count: Option<Spanned<u32>>,
    max_array_length: Option<Spanned<u32>>,
    max_string_length: Option<Spanned<u32>>,
    max_nodes_per_read: Option<Spanned<u32>>,
    max_nodes_per_write: Option<Spanned<u32>>,
    max_nodes_per_browse: Option<Spanned<u32>>,
    max_monitored_items_per_call: Option<Spanned<u32>>,
    max_notifications_per_publish: Option<Spanned<u32>>,
    max_subscriptions_per_session: Option<Spanned<u32>>,
    max_monitored_items_per_subscription: Option<Spanned<u32>>,
    max_queue_size: Option<Spanned<u32>>,
    max_event_queue_size: Option<Spanned<u32>>,
}

/// The validated limits the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one request or response, all chunks together.
    pub max_message_size: usize,
    pub max_chunk_count: usize,
    /// Elements of any array in a request (a Read's nodes, a Write's values).
    pub max_array_length: usize,
    pub max_string_length: usize,
    pub max_nodes_per_read: usize,
    pub max_nodes_per_write: usize,
    pub max_nodes_per_browse: usize,
    pub max_monitored_items_per_call: usize,
    pub max_notifications_per_publish: usize,
    pub max_subscriptions_per_session: usize,
    pub max_monitored_items_per_subscription: usize,
    /// Values a monitored item may queue between two Publish responses; covers a network
    /// break of `max_queue_size × sampling interval` without loss, at the cost of memory
    /// (about 80 bytes a value) while the client is away.
    pub max_queue_size: usize,
    /// Events an event monitored item may queue between two Publish responses. One item
    /// on the Server object receives every condition's events, so this is larger than
    /// `max_queue_size`: 10,000 holds ten seconds of 1,000 transitions a second.
    pub max_event_queue_size: usize,
}

/// The smallest chunk a peer may negotiate (OPC UA Part 6): a message of the maximum
/// size fits in this many of them.
const MIN_CHUNK: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        let max_message_size = 32 << 20;
        Limits {
            max_message_size,
            max_chunk_count: max_message_size / MIN_CHUNK + 1,
            max_array_length: 100_000,
            max_string_length: 65_535,
            max_nodes_per_read: 100_000,
            max_nodes_per_write: 100_000,
            max_nodes_per_browse: 100_000,
            max_monitored_items_per_call: 100_000,
            max_notifications_per_publish: 1_000,
            max_subscriptions_per_session: 64,
            max_monitored_items_per_subscription: 500_000,
            max_queue_size: 100,
            max_event_queue_size: 10_000,
        }
    }
}

impl Limits {
    /// Reads `limits:` (absent: the defaults); errors go to `errors`.
    pub(crate) fn load(node: Option<&RawNode>, errors: &mut Vec<ConfigError>) -> Limits {
        let raw: RawLimits = match node.filter(|n| !n.is_null()) {
            None => RawLimits::default(),
            Some(n) => match n.deserialize() {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    return Limits::default();
                }
            },
        };
        let d = Limits::default();
        let count =
            |v: &Option<Spanned<u32>>, default: usize, errors: &mut Vec<ConfigError>| match v {
                Some(s) if s.value == 0 => {
                    errors.push(s.error("must be at least 1"));
                    default
                }
                Some(s) => s.value as usize,
                None => default,
            };
        let max_message_size = match &raw.max_message_size {
            Some(s) if s.value.0 < 64 * 1024 || s.value.0 > 1 << 30 => {
                errors.push(s.error("must be between 64KiB and 1GiB"));
                d.max_message_size
            }
            Some(s) => s.value.0 as usize,
            None => d.max_message_size,
        };
        let max_array_length = count(&raw.max_array_length, d.max_array_length, errors);
        // Left out, a per-call limit follows a lowered max_array_length down.
        let per_call = |v: &Option<Spanned<u32>>, default: usize, errors: &mut Vec<ConfigError>| {
            count(v, default.min(max_array_length), errors)
        };
        let limits = Limits {
            max_message_size,
            max_chunk_count: count(
                &raw.max_chunk_count,
                max_message_size / MIN_CHUNK + 1,
                errors,
            ),
            max_array_length,
            max_string_length: count(&raw.max_string_length, d.max_string_length, errors),
            max_nodes_per_read: per_call(&raw.max_nodes_per_read, d.max_nodes_per_read, errors),
            max_nodes_per_write: per_call(&raw.max_nodes_per_write, d.max_nodes_per_write, errors),
            max_nodes_per_browse: per_call(
                &raw.max_nodes_per_browse,
                d.max_nodes_per_browse,
                errors,
            ),
            max_monitored_items_per_call: per_call(
                &raw.max_monitored_items_per_call,
                d.max_monitored_items_per_call,
                errors,
            ),
            max_notifications_per_publish: count(
                &raw.max_notifications_per_publish,
                d.max_notifications_per_publish,
                errors,
            ),
            max_subscriptions_per_session: count(
                &raw.max_subscriptions_per_session,
                d.max_subscriptions_per_session,
                errors,
            ),
            max_monitored_items_per_subscription: count(
                &raw.max_monitored_items_per_subscription,
                d.max_monitored_items_per_subscription,
                errors,
            ),
            max_queue_size: count(&raw.max_queue_size, d.max_queue_size, errors),
            max_event_queue_size: count(&raw.max_event_queue_size, d.max_event_queue_size, errors),
        };
        // A call of the advertised size must decode: its array is that long.
        let explicit = [
            (&raw.max_nodes_per_read, limits.max_nodes_per_read),
            (&raw.max_nodes_per_write, limits.max_nodes_per_write),
            (&raw.max_nodes_per_browse, limits.max_nodes_per_browse),
            (
                &raw.max_monitored_items_per_call,
                limits.max_monitored_items_per_call,
            ),
        ];
        for (spanned, value) in explicit {
            if let Some(s) = spanned.as_ref().filter(|_| value > limits.max_array_length) {
                errors.push(s.error(format!(
                    "{value} exceeds max_array_length ({}): a call that large could not be decoded",
                    limits.max_array_length
                )));
            }
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::Document;

    fn load(text: &str) -> (Limits, Vec<String>) {
        let doc = Document::parse("t.yaml", text).expect("yaml");
        let mut errors = Vec::new();
        let limits = Limits::load(Some(&doc.root()), &mut errors);
        (limits, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn absent_keys_take_the_defaults() {
        let (l, e) = load("{ max_notifications_per_publish: 500 }");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(l.max_notifications_per_publish, 500);
        assert_eq!(
            Limits {
                max_notifications_per_publish: 1_000,
                ..l
            },
            Limits::default()
        );
    }

    #[test]
    fn chunk_count_follows_the_message_size() {
        let (l, e) = load("{ max_message_size: 8MiB }");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(l.max_message_size, 8 << 20);
        assert_eq!(l.max_chunk_count, (8 << 20) / 8192 + 1);
    }

    #[test]
    fn mistakes_name_their_key_and_line() {
        let (_, mut e) = load("max_queue_size: 0\nmax_message_size: 1KiB\nmax_nodes_per_read: 200000\nmax_array_length: 1000\n");
        e.sort();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].contains("t.yaml:1:") && e[0].contains("max_queue_size"),
            "{e:?}"
        );
        assert!(
            e[1].contains("t.yaml:2:") && e[1].contains("64KiB"),
            "{e:?}"
        );
        assert!(
            e[2].contains("t.yaml:3:") && e[2].contains("max_array_length"),
            "{e:?}"
        );
        let (l, e) = load("{ max_array_length: 5000 }");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            (l.max_nodes_per_read, l.max_monitored_items_per_call),
            (5000, 5000)
        );
        let (_, e) = load("{ max_notifications: 5 }");
        assert!(e[0].contains("unknown field"), "{e:?}");
    }
}
