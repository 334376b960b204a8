//! One MQTT session: a fresh rumqttc client and event loop per connection.
//!
//! A new event loop per session (instead of letting rumqttc reconnect by itself) is on
//! purpose: each Sparkplug session needs its own Last Will (NDEATH with that session's
//! bdSeq), and rumqttc would re-send the previous session's unacknowledged publishes on
//! reconnect, i.e. DDATA with the previous session's aliases before the new NBIRTH. Those
//! publishes are not lost: their records are still in the journal and drain after the
//! re-birth.
//!
//! The event loop runs on its own task and forwards events over a bounded channel. The node
//! only ever uses the non-blocking `try_*` calls on the client, so the node never waits on
//! the event loop while the event loop waits on the node.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec;
use super::topics::Topics;
use crate::config::sparkplug::{BrokerSettings, SparkplugSettings};

/// Unacknowledged QoS 1 publishes in flight (rumqttc's window).
pub const INFLIGHT: u16 = 100;
/// Requests queued to the event loop; past that `try_publish` refuses and data waits in
/// the journal.
pub const REQUEST_QUEUE: usize = 1024;
/// Events queued from the event loop to the node.
pub const EVENT_QUEUE: usize = 256;
/// Largest packet accepted from the broker (commands are small; this bounds a hostile one).
const MAX_INCOMING: usize = 1024 * 1024;
/// Largest packet sent (a DBIRTH of a device with many tags).
const MAX_OUTGOING: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT_S: u64 = 10;

pub enum SessionEvent {
    Mqtt(Event),
    /// The connection ended (error text); the session is over.
    Closed(String),
}

pub struct Session {
    pub client: AsyncClient,
    pub events: mpsc::Receiver<SessionEvent>,
    pub bd_seq: u8,
    task: JoinHandle<()>,
}

impl Session {
    /// Starts connecting to `broker`; the CONNACK arrives as an event.
    pub fn start(
        settings: &SparkplugSettings,
        broker: &BrokerSettings,
        topics: &Topics,
        bd_seq: u8,
    ) -> Session {
        let mut opts = MqttOptions::new(&settings.client_id, &broker.host, broker.port);
        opts.set_keep_alive(settings.keep_alive);
        // Sparkplug 3.0 requires a clean session (MQTT 3.1.1).
        opts.set_clean_session(true);
        opts.set_inflight(INFLIGHT);
        opts.set_max_packet_size(MAX_INCOMING, MAX_OUTGOING);
        if let Some(user) = &broker.username {
            let password = broker
                .password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default();
            opts.set_credentials(user.clone(), password);
        }
        let will = codec::encode(&codec::payload(
            None,
            vec![codec::bd_seq_metric(bd_seq, None)],
        ));
        opts.set_last_will(LastWill::new(
            topics.ndeath(),
            will,
            QoS::AtLeastOnce,
            false,
        ));
        if let Some(tls) = &broker.tls {
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }));
        }
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_QUEUE);
        eventloop
            .network_options
            .set_connection_timeout(CONNECT_TIMEOUT_S);
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(event) => {
                        if tx.send(SessionEvent::Mqtt(event)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(SessionEvent::Closed(e.to_string())).await;
                        break;
                    }
                }
            }
        });
        Session {
            client,
            events,
            bd_seq,
            task,
        }
    }

    /// Sends DISCONNECT (so the broker does not publish the Will) and waits up to `limit`
    /// for the event loop to finish writing it.
    pub async fn disconnect(mut self, limit: Duration) {
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(limit, async {
                while let Some(ev) = self.events.recv().await {
                    if matches!(ev, SessionEvent::Closed(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        self.task.abort();
    }
}

impl Drop for Session {
    /// Dropping a session drops the connection without DISCONNECT: the broker publishes
    /// the Will.
    fn drop(&mut self) {
        self.task.abort();
    }
}
