//! Births and deaths: NBIRTH with the node metrics, a DBIRTH per device that is up (every
//! tag with the value this node last took from the model stream), DDEATH, the re-birth a
//! reload with a new tag set needs, and the node diagnostics as NDATA.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rumqttc::QoS;
use sparkplug_rs::payload::Metric;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uaedge_driver::{DataType, Quality, Timestamp, Value};

use super::aliases::{
    self, Diagnostics, DIAGNOSTICS, NEXT_SERVER, NEXT_SERVER_ALIAS, REBIRTH, REBIRTH_ALIAS,
};
use super::codec::{self, MetricSpec};
use super::inflight::Track;
use super::link::Phase;
use super::node::{DeviceLink, NodeTask};
use crate::bus::Reloaded;

/// A device that came back is born with its first samples, or after this at the latest.
pub(super) const DBIRTH_DEFER: std::time::Duration = std::time::Duration::from_millis(500);

impl NodeTask {
    /// NBIRTH (seq 0) and a DBIRTH for every device that is up; then data and drain flow.
    pub(super) fn birth(&mut self) {
        let bd_seq = self.session.as_ref().map_or(0, |s| s.bd_seq);
        self.seq = 0;
        self.devices.iter_mut().for_each(|d| d.born = false);
        let mut metrics = vec![codec::bd_seq_metric(bd_seq, None)];
        let now = Timestamp::now();
        for (name, alias) in [(REBIRTH, REBIRTH_ALIAS), (NEXT_SERVER, NEXT_SERVER_ALIAS)] {
            metrics.push(codec::metric(&MetricSpec {
                name: Some(name),
                alias: Some(alias),
                data_type: DataType::Boolean,
                value: Some(&Value::Boolean(false)),
                quality: None,
                units: None,
                time: now,
            }));
        }
        let diag = self.diagnostics();
        metrics.extend(diagnostic_metrics(&diag, None, true));
        let topic = self.topics.nbirth();
        if !self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            return self.lost("request queue full at NBIRTH", false);
        }
        self.last_diag = Some(diag);
        self.next_diag = Instant::now() + self.settings.diagnostics_period;
        // A rebirth on the same session keeps the time `return_to_first` counts from.
        if self.phase != Phase::Online {
            self.online_since = Some(Instant::now());
        }
        self.phase = Phase::Online;
        self.attempt = 0;
        if self.servers.born() {
            self.status.switches.fetch_add(1, Ordering::Relaxed);
        }
        self.status.born.store(true, Ordering::Relaxed);
        for d in 0..self.devices.len() {
            if self.devices[d].up {
                self.dbirth(d);
            }
        }
        self.drain.restart();
        info!(
            bd_seq,
            devices = self.devices.iter().filter(|d| d.born).count(),
            "Sparkplug NBIRTH published"
        );
    }

    /// DBIRTH with every tag as this node last took it from the model stream (`seen`).
    pub(super) fn dbirth(&mut self, d: usize) {
        let Some(def) = self.table.devices().get(d) else {
            return;
        };
        let id = def.id;
        let name = def.name.clone();
        let states = &self.seen;
        let metrics: Vec<Metric> = self
            .table
            .device_tags(id)
            .iter()
            .map(|t| {
                let st = states.get(t.id.index());
                let time = st
                    .map(|s| s.source_time)
                    .filter(|t| t.0 > 0)
                    .unwrap_or_else(Timestamp::now);
                let quality = st.map_or(Quality::default(), |s| s.quality);
                codec::metric(&MetricSpec {
                    name: Some(&t.path.tag),
                    alias: Some(aliases::of_tag(t.id)),
                    data_type: t.data_type,
                    value: st.and_then(|s| s.value.as_ref()),
                    quality: Some(quality.sparkplug_code()),
                    units: t.units.as_deref(),
                    time,
                })
            })
            .collect();
        let topic = self.topics.dbirth(&name);
        if self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            if let Some(device) = self.devices.get_mut(d) {
                device.born = true;
                device.birth_due = None;
            }
            // Records held while the device was down can go now.
            self.drain.restart();
            debug!(device = %name, "DBIRTH published");
        } else {
            warn!(device = %name, "MQTT request queue full: DBIRTH deferred");
            if let Some(device) = self.devices.get_mut(d) {
                device.birth_due = Some(Instant::now() + DBIRTH_DEFER);
            }
        }
    }

    pub(super) fn ddeath(&mut self, d: usize) {
        let Some(name) = self.table.devices().get(d).map(|x| x.name.clone()) else {
            return;
        };
        self.publish_ddeath(&name);
        if let Some(device) = self.devices.get_mut(d) {
            device.born = false;
        }
    }

    fn publish_ddeath(&mut self, name: &str) {
        let topic = self.topics.ddeath(name);
        if !self.publish(topic, QoS::AtMostOnce, Track::Untracked, |seq| {
            codec::payload(Some(seq), Vec::new())
        }) {
            warn!(device = %name, "MQTT request queue full: DDEATH not sent");
        }
        debug!(device = %name, "DDEATH published");
    }

    /// A reload swapped the table. The MQTT session stays (same bdSeq, no NDEATH); when
    /// the tag set changed (names, types, units, aliases), removed devices get their DDEATH
    /// and everything is re-born on the new set: NBIRTH with seq 0 and every DBIRTH.
    pub(super) fn on_reload(&mut self, reloaded: &Reloaded) {
        if Arc::ptr_eq(&self.table, &reloaded.start.table) {
            return;
        }
        // What was gathered names tags by the old table's ids.
        self.flush_all();
        let old = std::mem::replace(&mut self.table, reloaded.start.table.clone());
        // The router's states at the swap: what a later birth reports is what the table
        // held at this point of the stream, new tags (alarms `false`, disabled devices Bad)
        // included.
        self.seen.clone_from(&reloaded.start.states);
        if !reloaded.tag_set_changed {
            debug!("reload kept the tag set: no rebirth");
            return;
        }
        if self.phase == Phase::Online {
            let gone: Vec<String> = old
                .devices()
                .iter()
                .filter(|d| self.devices.get(d.id.index()).is_some_and(|x| x.born))
                .filter(|d| !self.table.devices().iter().any(|n| n.name == d.name))
                .map(|d| d.name.clone())
                .collect();
            for name in gone {
                self.publish_ddeath(&name);
            }
        }
        let devices = self.table.devices().len();
        self.devices = reloaded
            .start
            .connected
            .iter()
            .map(|&up| DeviceLink {
                up,
                ..DeviceLink::default()
            })
            .collect();
        if self.phase == Phase::Online {
            info!(devices, "tag set changed by a reload: re-birth");
            self.birth();
        }
    }

    fn diagnostics(&self) -> Diagnostics {
        let (records, bytes) = self.journal.backlog();
        let alarms = self.handle.alarm_counts();
        [
            records,
            bytes,
            self.status.dropped.load(Ordering::Relaxed),
            self.devices.iter().filter(|d| d.up).count() as u64,
            self.status.published.load(Ordering::Relaxed),
            alarms.active,
            alarms.transitions,
        ]
    }

    pub(super) fn publish_diagnostics(&mut self) {
        let now = self.diagnostics();
        let metrics = diagnostic_metrics(&now, self.last_diag.as_ref(), false);
        if metrics.is_empty() {
            return;
        }
        let topic = self.topics.ndata();
        let qos = self.data_qos();
        if self.publish(topic, qos, Track::Untracked, |seq| {
            codec::payload(Some(seq), metrics)
        }) {
            self.last_diag = Some(now);
        }
    }
}

/// Node diagnostics as metrics: all of them for NBIRTH (`full`), else those that changed.
fn diagnostic_metrics(now: &Diagnostics, last: Option<&Diagnostics>, full: bool) -> Vec<Metric> {
    DIAGNOSTICS
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(i, _)| full || last.is_none_or(|l| l[*i] != now[*i]))
        .map(|(_, ((name, alias), v))| {
            codec::metric(&MetricSpec {
                name: full.then_some(*name),
                alias: Some(*alias),
                data_type: DataType::UInt64,
                value: Some(&Value::UInt64(*v)),
                quality: None,
                units: None,
                time: Timestamp::now(),
            })
        })
        .collect()
}
