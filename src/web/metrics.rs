//! `/metrics` in the Prometheus text format: the live model, the Sparkplug status and the
//! historian, rendered on each scrape.

use std::fmt::Write as _;

use crate::bus::Handle;
use crate::history::History;

/// Label values escaped as the exposition format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: HELP and TYPE once, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The whole exposition, from the live model, the Sparkplug status and the historian.
pub fn render(handle: &Handle, history: Option<&History>) -> String {
    let table = handle.table();
    let mut out = String::new();
    family(
        &mut out,
        "uaedge_build_info",
        "gauge",
        "Version of the running uaedge.",
        &[(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1.0)],
    );
    let devices: Vec<_> = table
        .devices()
        .iter()
        .map(|d| {
            let state = table.device_state(d.id).unwrap_or_default();
            let labels = format!(
                "device=\"{}\",driver=\"{}\"",
                label(&d.name),
                label(&d.driver)
            );
            (labels, state)
        })
        .collect();
    let per_device = |f: &dyn Fn(&crate::model::DeviceState) -> f64| -> Vec<(String, f64)> {
        devices.iter().map(|(l, s)| (l.clone(), f(s))).collect()
    };
    family(
        &mut out,
        "uaedge_device_connected",
        "gauge",
        "1 while the device's link is up.",
        &per_device(&|s| f64::from(u8::from(s.connected))),
    );
    family(
        &mut out,
        "uaedge_device_reconnects_total",
        "counter",
        "Times the device's link came back after a loss.",
        &per_device(&|s| s.reconnects as f64),
    );
    family(
        &mut out,
        "uaedge_device_samples_in_total",
        "counter",
        "Readings taken from the device.",
        &per_device(&|s| s.samples_in as f64),
    );
    family(
        &mut out,
        "uaedge_device_samples_reported_total",
        "counter",
        "Samples that passed report-by-exception and went to consumers.",
        &per_device(&|s| s.samples_out as f64),
    );
    let bad = table.states(|states| {
        table
            .devices()
            .iter()
            .map(|d| {
                let n = d
                    .tag_ids()
                    .filter(|t| states.get(t.index()).is_some_and(|s| s.quality.is_bad()))
                    .count();
                (format!("device=\"{}\"", label(&d.name)), n as f64)
            })
            .collect::<Vec<_>>()
    });
    family(
        &mut out,
        "uaedge_device_tags_bad",
        "gauge",
        "Tags of the device whose quality is Bad now.",
        &bad,
    );
    let alarms = handle.alarm_counts();
    family(
        &mut out,
        "uaedge_alarms_active",
        "gauge",
        "Anomaly alarms Active now.",
        &[(String::new(), alarms.active as f64)],
    );
    family(
        &mut out,
        "uaedge_alarm_transitions_total",
        "counter",
        "Anomaly alarm transitions, either way, since start.",
        &[(String::new(), alarms.transitions as f64)],
    );
    let (accepted, open, failed) = handle.opcua_connections().snapshot();
    let one = |v: u64| vec![(String::new(), v as f64)];
    family(
        &mut out,
        "uaedge_opcua_connections_total",
        "counter",
        "TCP connections accepted on the OPC UA port.",
        &one(accepted),
    );
    family(
        &mut out,
        "uaedge_opcua_connections_open",
        "gauge",
        "TCP connections to the OPC UA port open now.",
        &one(open),
    );
    family(
        &mut out,
        "uaedge_opcua_handshake_failures_total",
        "counter",
        "OPC UA connections that ended before their secure channel opened (not OPC UA, refused, or silent).",
        &one(failed),
    );
    if let Some(h) = history {
        history_metrics(&mut out, h);
    }
    if let Some(status) = handle.sparkplug_status() {
        let s = status.snapshot();
        let one = |v: f64| vec![(String::new(), v)];
        family(
            &mut out,
            "uaedge_mqtt_connected",
            "gauge",
            "1 while the MQTT session is up.",
            &one(f64::from(u8::from(s.mqtt_connected))),
        );
        family(
            &mut out,
            "uaedge_sparkplug_primary_host_online",
            "gauge",
            "1 while the primary host is online on the server in use (always 1 without one).",
            &one(f64::from(u8::from(s.primary_host_online))),
        );
        let id = &status.identity;
        let per_server = |f: &dyn Fn(usize) -> bool| -> Vec<(String, f64)> {
            (id.brokers.iter().enumerate())
                .map(|(i, url)| {
                    let v = f64::from(u8::from(f(i)));
                    (format!("server=\"{}\"", label(url)), v)
                })
                .collect()
        };
        family(
            &mut out,
            "uaedge_sparkplug_server_current",
            "gauge",
            "1 for the MQTT server in use (or being tried), 0 for the others.",
            &per_server(&|i| i == s.server),
        );
        family(
            &mut out,
            "uaedge_sparkplug_server_primary_host_online",
            "gauge",
            "The primary host's STATE on each server as last seen there (always 1 without one).",
            &per_server(&|i| s.host_online_on(i)),
        );
        family(
            &mut out,
            "uaedge_sparkplug_server_switches_total",
            "counter",
            "Births of the edge node on another MQTT server than the one of the birth before.",
            &one(s.server_switches as f64),
        );
        family(
            &mut out,
            "uaedge_samples_published_total",
            "counter",
            "Samples the broker acknowledged, live and historical.",
            &one(s.samples_published as f64),
        );
        family(
            &mut out,
            "uaedge_samples_replayed_total",
            "counter",
            "Historical samples forwarded from the store after outages.",
            &one(s.samples_replayed as f64),
        );
        let _ = writeln!(
            out,
            "# HELP uaedge_publish_latency_seconds Time from publishing a sample batch to the broker's PUBACK."
        );
        let _ = writeln!(out, "# TYPE uaedge_publish_latency_seconds summary");
        let _ = writeln!(
            out,
            "uaedge_publish_latency_seconds_sum {}",
            s.publish_latency_sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "uaedge_publish_latency_seconds_count {}",
            s.publish_latency_count
        );
        family(
            &mut out,
            "uaedge_store_backlog_records",
            "gauge",
            "Store records not yet acknowledged by the broker.",
            &one(s.backlog_records as f64),
        );
        family(
            &mut out,
            "uaedge_store_backlog_bytes",
            "gauge",
            "Bytes of store records not yet acknowledged by the broker.",
            &one(s.backlog_bytes as f64),
        );
        family(
            &mut out,
            "uaedge_store_dropped_records_total",
            "counter",
            "Store records dropped by the size or age bound.",
            &one(s.records_dropped as f64),
        );
    }
    out
}

fn history_metrics(out: &mut String, history: &History) {
    let s = history.stats();
    let one = |v: f64| vec![(String::new(), v)];
    let series: [(&str, &str, &str, f64); 11] = [
        (
            "uaedge_history_samples",
            "gauge",
            "Samples the history holds.",
            s.samples as f64,
        ),
        (
            "uaedge_history_bytes",
            "gauge",
            "Bytes of the history: compressed chunks and the intake log.",
            (s.chunk_bytes + s.log_bytes) as f64,
        ),
        (
            "uaedge_history_oldest_timestamp_seconds",
            "gauge",
            "Source time of the oldest sample kept (0 while there is none).",
            history.oldest().map_or(0.0, |us| us as f64 / 1e6),
        ),
        (
            "uaedge_history_samples_received_total",
            "counter",
            "Samples of historized tags received since start.",
            s.samples_in as f64,
        ),
        (
            "uaedge_history_dropped_samples_total",
            "counter",
            "Samples not kept because commits fell behind (a disk slower than the intake).",
            s.dropped as f64,
        ),
        (
            "uaedge_history_retention_dropped_samples_total",
            "counter",
            "Samples removed by the age or size bound.",
            s.retention_dropped_samples as f64,
        ),
        (
            "uaedge_history_retention_dropped_chunks_total",
            "counter",
            "Chunks removed by the age or size bound.",
            s.retention_dropped_chunks as f64,
        ),
        (
            "uaedge_history_commits_total",
            "counter",
            "Durable history commits.",
            s.commits as f64,
        ),
        (
            "uaedge_history_commit_failures_total",
            "counter",
            "History commits that failed and were retried.",
            s.failed_commits as f64,
        ),
        (
            "uaedge_history_commit_seconds",
            "gauge",
            "How long the last history commit took, fsync included.",
            s.last_commit.as_secs_f64(),
        ),
        (
            "uaedge_history_commit_max_seconds",
            "gauge",
            "The longest history commit since start.",
            s.max_commit.as_secs_f64(),
        ),
    ];
    for (name, kind, help, value) in series {
        family(out, name, kind, help, &one(value));
    }
}
