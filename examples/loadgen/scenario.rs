//! Scenarios and the uaedge config each one runs.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Simulated EtherNet/IP devices inside uaedge, one counter per tag.
    Sim,
    /// uaedge polls the loadgen's own multi-unit Modbus TCP server.
    Modbus,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub source: Source,
    pub devices: usize,
    pub tags_per_device: usize,
    pub period: Duration,
    pub duration: Duration,
    pub warmup: Duration,
}

impl Scenario {
    /// The named defaults; `tags`, `devices`, `period`, `duration` and `warmup` override.
    pub fn named(name: &str) -> Result<Scenario, String> {
        let s = |source, tags: usize, devices: usize, period_ms, duration_s| Scenario {
            name: name.to_string(),
            source,
            devices,
            tags_per_device: tags / devices,
            period: Duration::from_millis(period_ms),
            duration: Duration::from_secs(duration_s),
            warmup: Duration::from_secs(5),
        };
        Ok(match name {
            "sim-1k" => s(Source::Sim, 1_000, 10, 100, 30),
            "sim-10k" => s(Source::Sim, 10_000, 10, 100, 30),
            // Every 500 ms: 200,000 samples/s offered, the end-to-end target.
            "sim-100k" => s(Source::Sim, 100_000, 10, 500, 30),
            "modbus-10k" => s(Source::Modbus, 10_000, 10, 100, 30),
            // 50,000 samples/s for 30 minutes.
            "soak" => s(Source::Sim, 5_000, 10, 100, 1800),
            other => {
                return Err(format!(
                    "unknown scenario `{other}`: expected sim-1k, sim-10k, sim-100k, modbus-10k or soak"
                ))
            }
        })
    }

    pub fn tags(&self) -> usize {
        self.devices * self.tags_per_device
    }

    /// Samples per second the devices produce: every tag changes every period.
    pub fn offered(&self) -> f64 {
        self.tags() as f64 / self.period.as_secs_f64()
    }

    /// Device names, the same for every edge: `unit<u>` for Modbus (the unit id), `sim<d>`.
    pub fn device_names(&self) -> Vec<String> {
        (1..=self.devices)
            .map(|d| match self.source {
                Source::Modbus => format!("unit{d}"),
                Source::Sim => format!("sim{d}"),
            })
            .collect()
    }
}

pub struct EdgeConfig<'a> {
    pub state_dir: &'a Path,
    pub broker_port: u16,
    pub group: &'a str,
    pub node: &'a str,
    pub modbus_port: Option<u16>,
    pub opcua_port: Option<u16>,
}

/// The uaedge config of a scenario: report by exception per read, QoS 1 with the store, as
/// shipped; values not logged.
pub fn uaedge_yaml(s: &Scenario, e: &EdgeConfig<'_>) -> String {
    let period_ms = s.period.as_millis();
    let mut y = String::with_capacity(s.tags() * 100 + 1024);
    let _ = write!(
        y,
        "node: {{ name: {node} }}\nstate_dir: {state}\nlog: {{ level: warn, values: false }}\n\
         sparkplug:\n  broker: mqtt://127.0.0.1:{port}\n  group_id: {group}\n  edge_node_id: {node}\n  \
         data_qos: 1\n  store: {{ path: sparkplug.redb, max_bytes: 256MiB, commit_window: 100ms }}\n",
        node = e.node,
        state = e.state_dir.display(),
        port = e.broker_port,
        group = e.group,
    );
    if let Some(port) = e.opcua_port {
        let _ = writeln!(
            y,
            "opcua:\n  listen: 127.0.0.1:{port}\n  endpoints: [none]\n  anonymous: read"
        );
    }
    y.push_str("devices:\n");
    for (d, name) in s.device_names().iter().enumerate() {
        let _ = write!(y, "  - name: {name}\n    poll_interval: {period_ms}ms\n");
        match (s.source, e.modbus_port) {
            (Source::Modbus, Some(port)) => {
                let _ = write!(
                    y,
                    "    driver: modbus\n    options: {{ transport: tcp, host: 127.0.0.1, port: {port}, unit_id: {unit}, timeout: 1s }}\n    tags:\n",
                    unit = d + 1
                );
                for r in 0..s.tags_per_device {
                    let _ = writeln!(
                        y,
                        "      - {{ name: hr{r}, type: uint16, address: \"hr:{r}\" }}"
                    );
                }
            }
            _ => {
                let _ = write!(
                    y,
                    "    driver: enip-sim\n    options: {{ seed: {d} }}\n    tags:\n"
                );
                // A counter with no period steps by one every poll: report by exception
                // passes every reading, and a missing value is a gap the subscriber sees.
                for t in 0..s.tags_per_device {
                    let _ = writeln!(
                        y,
                        "      - {{ name: t{t}, type: uint32, address: \"Tag_{t}\", options: {{ signal: counter }} }}"
                    );
                }
            }
        }
    }
    y
}
