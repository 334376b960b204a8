//! Sparkplug B 3.0 Edge Node over MQTT, with store and forward in a redb journal.
//!
//! The node republishes the unified model: the gateway is one Sparkplug edge node
//! (`group_id`/`edge_node_id`), each configured device a Sparkplug device, each tag a metric
//! named by its path inside the device. The protobuf types come from `sparkplug-rs` (Eclipse
//! Tahu's `sparkplug_b.proto`); the life cycle, aliases, seq/bdSeq and MQTT handling are
//! ours.
//!
//! # Configuration
//! ```yaml
//! state_dir: /var/lib/uaedge          # default: $STATE_DIRECTORY, else /var/lib/uaedge
//! sparkplug:                          # absent: no MQTT
//!   broker: mqtts://broker.plant:8883 # or mqtt://host[:1883]; short for a list of one:
//!   # brokers:                        # servers in order of preference (not with `broker`)
//!   #   - url: mqtts://site-a:8883    # each may set its own tls, username, password_file;
//!   #   - url: mqtts://site-b:8883    # the section's are the defaults (the credentials as a
//!   #                                 # pair: an entry setting either uses its own only)
//!   #     username: edge-b
//!   #     password_file: /etc/uaedge/site-b.pass
//!   # return_to_first: 30m            # optional: online elsewhere this long → the first
//!   tls:                              # mqtts only; without ca_file: the system CA bundle
//!     ca_file: /etc/uaedge/ca.pem
//!     cert_file: /etc/uaedge/client.pem   # client certificate, with key_file
//!     key_file: /etc/uaedge/client.key
//!   username: edge                    # optional
//!   password_file: /etc/uaedge/mqtt.pass  # read at load, never logged
//!   client_id: uaedge-plant-line3     # default uaedge-<group_id>-<edge_node_id>
//!   group_id: plant
//!   edge_node_id: line3               # default node.name
//!   primary_host_id: scada            # optional: birth only while it is online
//!   primary_host_timeout: 10s         # several servers: no STATE online this long → next
//!   keep_alive: 30s
//!   data_qos: 1                       # NDATA/DDATA QoS (see below); 0 or 1
//!   reconnect: { min: 500ms, max: 30s }
//!   diagnostics_period: 10s           # changed node diagnostics as NDATA
//!   publish_period: 1s                # optional; absent = report by exception per read
//!   store:
//!     path: sparkplug.redb            # relative to state_dir (the default)
//!     max_bytes: 256MiB               # bytes or B/KB/MB/GB/KiB/MiB/GiB
//!     max_age: 168h
//!     commit_window: 100ms            # a kill -9 may lose two windows and a commit; ≤ 10s
//!     drain_rate: 5000                # historical samples/s after an outage
//! ```
//! Relative file paths (TLS, password) are relative to the config file's folder. Device
//! names and the ids must be valid topic levels (no `/`, `+`, `#`).
//!
//! # Life cycle
//! 1. bdSeq = last + 1 (mod 256), persisted in the journal's meta table *before* CONNECT, so
//!    every session's Will carries a bdSeq no earlier session used (a CONNECT the broker
//!    refused or never answered uses one up too: the Will may have been registered). A
//!    journal commit writes it, off the node task like every commit; CONNECT follows once
//!    that commit has finished (or failed: a full disk does not keep the node offline).
//! 2. CONNECT (clean session) with the Will = NDEATH {bdSeq}, QoS 1, not retained.
//! 3. SUBSCRIBE NCMD, DCMD (`+`) and, with `primary_host_id`, `spBv1.0/STATE/<id>`, all
//!    QoS 1; the node waits for the SUBACK before any birth.
//! 4. With a primary host: wait for its STATE `{"online":true,"timestamp":…}` (STATE with an
//!    older timestamp than the last seen is ignored). Without one: go on at once.
//! 5. NBIRTH (seq 0, bdSeq, `Node Control/Rebirth` and `/Next Server` false, diagnostics), then a DBIRTH for
//!    every device whose link is up, each with every tag: name, alias, datatype, current
//!    value (or `is_null`), `Quality` (192/64/0) and `engUnit`. "Current" is the state as
//!    of the last event this node took from the model stream: the states the stream started
//!    from (or a reload's `Reloaded` carried) with every later sample applied. The router
//!    writes the table before its events reach the node, so a birth read from the table
//!    could announce a value that samples still queued here would then take back.
//!    NBIRTH/DBIRTH/DDEATH are QoS 0, not retained, as the specification says.
//!    Anomaly alarms are tags too (`<tag>/Alarms/<check>`, Boolean), so they are metrics
//!    of their device like any other; NBIRTH and the diagnostics NDATA carry the node's
//!    `Alarms/Active` and `Alarms/Transitions` counts.
//! 6. Online: data by exception (aliases only), backlog drain, diagnostics NDATA.
//!    seq runs 0–255 and wraps, over every message of the node after NBIRTH.
//! 7. A device link lost → DDEATH; back → DBIRTH after its first samples (so it carries
//!    current values; at the latest 500 ms after the link came up).
//! 8. NCMD `Node Control/Rebirth` = true → NBIRTH (same bdSeq, seq 0) and all DBIRTHs.
//! 9. STATE offline from the primary host → NDEATH, DISCONNECT, reconnect (new bdSeq) to
//!    the next server (or, with one, the same) and wait for the host there: the
//!    specification's behaviour, and an outage for the data.
//! 10. Several servers (`brokers:`, rules in `servers.rs`): a session that ends goes on to
//!     the next server after the backoff; the node stays on one that works (no flapping
//!     back) unless `return_to_first` is set. A server where the primary host is not online
//!     (STATE offline, or none within `primary_host_timeout`) sends the node on, until
//!     every server was tried since its last birth: then it stays, connected and
//!     buffering, until the host is back there. NCMD `Node Control/Next Server` = true
//!     moves it (both node controls are in NBIRTH). A planned move (those three, and the
//!     return to the first) stops live data and waits up to 2 s for the PUBACKs in flight
//!     before NDEATH, so that what the old server took is not sent to the new one; what it
//!     did not take drains there, historical. bdSeq counts sessions, whatever the server.
//! 11. Shutdown (after the runtime stopped the drivers and drained the router): journal the
//!     last samples, wait up to 1 s for in-flight PUBACKs, commit the journal, publish
//!     NDEATH (QoS 1, awaited), DISCONNECT.
//! 12. A config reload that keeps the `sparkplug:` section keeps the session (same bdSeq,
//!     no NDEATH). When the tag set changed (see `TagTable::same_tag_set`: names, types,
//!     units, ranges, access, aliases), removed devices get a DDEATH and the node re-births
//!     as in 8; a change elsewhere (an anomaly threshold, a driver option) re-births
//!     nothing, but a device whose link the reload restarted (or disabled) gets its DDEATH
//!     as at a link loss, and its DBIRTH when it is back. A changed `sparkplug:` section
//!     restarts the node: the new one subscribes before the old one stops (nothing falls
//!     between them; what both saw is journaled twice), then NDEATH, a new session, NBIRTH.
//!
//! # Store and forward: what departs from the specification, and why
//! Every reported sample is appended to the journal (in memory; committed about one
//! `commit_window` later) *and*, when online, published at once. Commits are written on a
//! blocking thread while the node goes on taking samples (see `crate::store`), so a slow
//! fsync does not hold up the router and the drivers behind it. The record is deleted only
//! when the broker's PUBACK for that publish arrives, so **NDATA/DDATA use QoS 1** by default
//! (`data_qos: 1`), where Sparkplug suggests QoS 0: with QoS 0 there is no PUBACK, and a
//! sample written into a TCP connection that then breaks would be lost. `data_qos: 0`
//! restores the specification's choice; records are then acked when rumqttc writes them.
//! Delivery is at least once: a PUBACK lost with the connection means the record is sent
//! again, as historical, after the next birth.
//!
//! PUBACK → record: rumqttc assigns packet ids inside its event loop. The node keeps a FIFO
//! of what it handed to `try_publish`; rumqttc processes requests in order and reports each
//! publish exactly once as `Outgoing::Publish(pkid)` (a pkid collision delays the event but
//! also stops later requests), so popping the FIFO on each such event pairs the pkid with
//! its journal seq; `Incoming::PubAck(pkid)` then acks it. rumqttc's own in-flight queue
//! lives in memory only and is thrown away with each session (see `session.rs`): the journal
//! is what survives.
//!
//! After a (re)birth the backlog drains oldest first as DDATA with `is_historical = true`
//! and the original source timestamps, rate-limited (`drain_rate` samples/s, token bucket)
//! while live data keeps flowing, so the host may see a tag's live value before its older
//! historical ones; each stream is in order. Records of a device that is not born (link
//! down) are held until its next DBIRTH. A record naming a device or tag that is no longer
//! configured loses that part with one warn line. The historical encoding is in one function
//! ([`codec::historical_payload`]).
//!
//! A `kill -9` loses the samples not yet acknowledged of the window being gathered and of
//! the commit in flight: at most two commit windows and one commit's fsyncs (on a disk
//! slower than the window, each window lasts one commit), never a committed sample. The
//! backlog of the last run drains after the first birth. Journal full or too old → the oldest records go, counted in
//! the `Node Info/Store Dropped Records` metric and logged by the journal.

mod aliases;
mod births;
pub mod codec;
mod commands;
mod data;
mod inflight;
mod link;
mod node;
pub mod record;
mod servers;
mod session;
pub mod topics;
mod wire;

pub use node::{EdgeNode, MODEL_QUEUE, SHUTDOWN_DEADLINE};

/// Errors of the edge node that end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum SparkplugError {
    #[error("journal: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
