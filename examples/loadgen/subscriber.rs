//! The measuring end: an MQTT client subscribed to `spBv1.0/#` that decodes every
//! Sparkplug payload of the edge under test (sparkplug-rs types, not uaedge's own codec),
//! counts samples, tracks each counter metric for gaps, repeats and steps back, and measures
//! latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sparkplug_rs::payload::metric;
use sparkplug_rs::protobuf::Message;
use sparkplug_rs::Payload;

use crate::modbus_server::{now_us, SetTimes};

/// Where a sample's latency is measured from.
#[derive(Clone)]
pub enum Origin {
    /// The metric's own timestamp (ms): the simulator stamps each step.
    MetricTimestamp,
    /// The time the Modbus server set the value (µs), looked up by the value itself.
    ServerSet(Arc<SetTimes>),
}

/// Latency histogram: 100 µs buckets up to a minute; slower samples land in the last one.
const BUCKET_US: u64 = 100;
const BUCKETS: usize = 600_000;

pub struct Histogram(Vec<u64>);

impl Histogram {
    fn new() -> Histogram {
        Histogram(vec![0; BUCKETS])
    }

    fn clear(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }

    fn record(&mut self, us: u64) {
        self.0[((us / BUCKET_US) as usize).min(BUCKETS - 1)] += 1;
    }

    /// The value at quantile `q` (0..=1), in ms.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.0.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // The bucket's upper edge: never flatters.
                return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1000.0);
            }
        }
        None
    }
}

struct Track {
    by_alias: HashMap<u64, usize>,
    by_name: HashMap<String, usize>,
    last: Vec<u32>,
    mask: Vec<u32>,
    /// Whether a live value arrived since the DBIRTH, and how many did: start-up is over
    /// when every tag delivers (in the OPC UA chain the monitored items come well after
    /// the births).
    seen: Vec<bool>,
    flowing: usize,
}

pub struct Stats {
    node: String,
    origin: Origin,
    devices: HashMap<String, Track>,
    pub nbirth: Option<Instant>,
    pub births: usize,
    pub births_done: Option<Instant>,
    expected_births: usize,
    measuring: bool,
    pub samples: u64,
    pub gaps: u64,
    /// The same value again: delivered twice.
    pub repeats: u64,
    /// A value below the last one: an older value delivered late.
    pub backwards: u64,
    /// Samples flagged `is_historical`: held in the edge's store and forwarded late.
    pub historical: u64,
    pub unknown: u64,
    pub decode_errors: u64,
    /// Device change (the metric's timestamp) → arrival here.
    pub latency: Histogram,
    /// Device change → the edge's DDATA timestamp (when it built the payload): the part of
    /// the latency before the edge published. Where the value's timestamp did not travel
    /// (an edge stamping its own read time), this would be about zero.
    pub to_edge_publish: Histogram,
}

impl Stats {
    fn new(node: &str, expected_births: usize, origin: Origin) -> Stats {
        Stats {
            node: node.to_string(),
            origin,
            devices: HashMap::new(),
            nbirth: None,
            births: 0,
            births_done: None,
            expected_births,
            measuring: false,
            samples: 0,
            gaps: 0,
            repeats: 0,
            backwards: 0,
            historical: 0,
            unknown: 0,
            decode_errors: 0,
            latency: Histogram::new(),
            to_edge_publish: Histogram::new(),
        }
    }

    /// Starts a measured window: counts from zero.
    pub fn open_window(&mut self) {
        self.samples = 0;
        self.gaps = 0;
        self.repeats = 0;
        self.backwards = 0;
        self.historical = 0;
        self.unknown = 0;
        self.latency.clear();
        self.to_edge_publish.clear();
        self.measuring = true;
    }

    pub fn close_window(&mut self) {
        self.measuring = false;
    }

    /// Tags that delivered a live value since their DBIRTH, over all devices.
    pub fn tags_flowing(&self) -> usize {
        self.devices.values().map(|t| t.flowing).sum()
    }

    fn handle(&mut self, topic: &str, bytes: &[u8], arrival_us: u64) {
        // spBv1.0/<group>/<type>/<node>[/<device>]
        let mut parts = topic.split('/');
        let (Some("spBv1.0"), Some(_group), Some(kind), Some(node)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if node != self.node {
            return;
        }
        let device = parts.next().unwrap_or("");
        let payload = match Payload::parse_from_bytes(bytes) {
            Ok(p) => p,
            Err(_) => {
                self.decode_errors += 1;
                return;
            }
        };
        match kind {
            "NBIRTH" => {
                self.nbirth.get_or_insert_with(Instant::now);
            }
            "DBIRTH" => self.birth(device, &payload),
            "DDATA" => self.data(device, &payload, arrival_us),
            _ => {}
        }
    }

    fn birth(&mut self, device: &str, payload: &Payload) {
        let mut track = Track {
            by_alias: HashMap::new(),
            by_name: HashMap::new(),
            last: Vec::new(),
            mask: Vec::new(),
            seen: Vec::new(),
            flowing: 0,
        };
        for m in &payload.metrics {
            let Some(name) = m.name.as_deref() else {
                continue;
            };
            let mask = match m.datatype {
                Some(6) => 0xFFFF,
                Some(7) => u32::MAX,
                _ => continue,
            };
            let i = track.last.len();
            track.last.push(match m.value {
                Some(metric::Value::IntValue(v)) => v,
                _ => 0,
            });
            track.mask.push(mask);
            track.seen.push(false);
            track.by_name.insert(name.to_string(), i);
            if let Some(alias) = m.alias {
                track.by_alias.insert(alias, i);
            }
        }
        if self.devices.insert(device.to_string(), track).is_none() {
            self.births += 1;
            if self.births >= self.expected_births {
                self.births_done.get_or_insert_with(Instant::now);
            }
        }
    }

    fn data(&mut self, device: &str, payload: &Payload, arrival_us: u64) {
        let Some(track) = self.devices.get_mut(device) else {
            self.unknown += payload.metrics.len() as u64;
            return;
        };
        for m in &payload.metrics {
            let index = match (&m.name, m.alias) {
                (Some(name), _) => track.by_name.get(name.as_str()),
                (None, Some(alias)) => track.by_alias.get(&alias),
                (None, None) => None,
            };
            let (Some(&i), Some(metric::Value::IntValue(v))) = (index, &m.value) else {
                if self.measuring {
                    self.unknown += 1;
                }
                continue;
            };
            let v = *v;
            if m.is_historical == Some(true) {
                // Late, out of the live sequence: it fills a gap counted earlier rather than
                // opening one, and its latency is the outage's, not the pipeline's.
                if self.measuring {
                    self.samples += 1;
                    self.historical += 1;
                }
                continue;
            }
            let (last, mask) = (track.last[i], track.mask[i]);
            track.last[i] = v;
            if !track.seen[i] {
                track.seen[i] = true;
                track.flowing += 1;
            }
            if !self.measuring {
                continue;
            }
            self.samples += 1;
            let step = v.wrapping_sub(last) & mask;
            if step == 0 {
                self.repeats += 1;
            } else if step > mask / 2 {
                self.backwards += 1;
            } else {
                self.gaps += u64::from(step - 1);
            }
            let origin_us = match &self.origin {
                Origin::MetricTimestamp => m.timestamp.unwrap_or(0) * 1000,
                Origin::ServerSet(times) => times.get(v as u16),
            };
            if origin_us > 0 {
                self.latency.record(arrival_us.saturating_sub(origin_us));
                if let Some(published_ms) = payload.timestamp {
                    self.to_edge_publish
                        .record((published_ms * 1000).saturating_sub(origin_us));
                }
            }
        }
    }
}

pub struct Subscriber {
    pub stats: Arc<Mutex<Stats>>,
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    decoder: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Connects, subscribes to `spBv1.0/#` (QoS 1, so the broker drops nothing for a slow
    /// reader) and returns once the subscription is acknowledged.
    pub async fn start(
        broker_port: u16,
        node: &str,
        expected_births: usize,
        origin: Origin,
    ) -> Result<Subscriber, String> {
        let stats = Arc::new(Mutex::new(Stats::new(node, expected_births, origin)));
        let mut options = MqttOptions::new(
            format!("loadgen-{}-{}", std::process::id(), node),
            "127.0.0.1",
            broker_port,
        );
        options.set_keep_alive(Duration::from_secs(30));
        // A DBIRTH of 10,000 metrics is hundreds of kilobytes.
        options.set_max_packet_size(256 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(options, 64);
        client
            .subscribe("spBv1.0/#", QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        // Decoding runs on its own thread so the MQTT loop only receives; the bounded
        // queue makes a slow decoder slow the broker's delivery, never lose a message.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(rumqttc::Publish, u64)>(4096);
        let sink = stats.clone();
        let decoder = std::thread::spawn(move || {
            while let Some((p, at)) = rx.blocking_recv() {
                if let Ok(mut s) = sink.lock() {
                    s.handle(&p.topic, &p.payload, at);
                }
            }
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p, now_us())).await.is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("loadgen: subscriber connection: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .map_err(|_| "the broker did not acknowledge the subscription in 10 s".to_string())?
            .map_err(|_| "subscriber stopped".to_string())?;
        Ok(Subscriber {
            stats,
            client,
            task,
            decoder: Some(decoder),
        })
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        let mut guard = match self.stats.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub async fn stop(mut self) {
        // Stop reading first, so the disconnect is not reported as a connection error.
        self.task.abort();
        let _ = self.client.try_disconnect();
        let _ = (&mut self.task).await;
        if let Some(d) = self.decoder.take() {
            let _ = tokio::task::spawn_blocking(move || d.join()).await;
        }
    }
}
