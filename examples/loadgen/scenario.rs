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
    /// Simulated EtherNet/IP counters in an upstream uaedge, served by its OPC UA server;
    /// the uaedge under test reads them with `opcua-client` (see chain.rs).
    OpcUa,
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
            // 100,000 changes/s through two uaedges, OPC UA between them.
            "opcua-100k" => s(Source::OpcUa, 100_000, 10, 1000, 30),
            // 50,000 samples/s for 30 minutes.
            "soak" => s(Source::Sim, 5_000, 10, 100, 1800),
            other => {
                return Err(format!(
                    "unknown scenario `{other}`: expected sim-1k, sim-10k, sim-100k, modbus-10k, opcua-100k or soak"
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

    /// Device names, the same for every edge: `unit<u>` for Modbus (the unit id), `sim<d>`
    /// (in the OPC UA chain, upstream and downstream alike).
    pub fn device_names(&self) -> Vec<String> {
        (1..=self.devices)
            .map(|d| match self.source {
                Source::Modbus => format!("unit{d}"),
                Source::Sim | Source::OpcUa => format!("sim{d}"),
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
    /// A `history:` section as shipped: every tag kept in the local historian.
    pub history: bool,
    /// The OPC UA server the `opcua-client` devices read ([`Source::OpcUa`]).
    pub upstream: Option<OpcUaUpstream<'a>>,
}

/// The chain's upstream uaedge as the downstream's devices address it.
#[derive(Clone, Copy)]
pub struct OpcUaUpstream<'a> {
    pub port: u16,
    /// Its `node.name`: the namespace of its tags is `urn:uaedge:<node>`.
    pub node: &'a str,
    /// The downstream client's own certificate store (made on first use; security None
    /// does not use it, but the driver keeps one).
    pub pki_dir: &'a Path,
}

/// The uaedge config of a scenario: report by exception per read, QoS 1 with the store, as
/// shipped; values not logged.
pub fn uaedge_yaml(s: &Scenario, e: &EdgeConfig<'_>) -> String {
    let mut y = String::with_capacity(s.tags() * 100 + 1024);
    header(&mut y, e.node, e.state_dir);
    let _ = write!(
        y,
        "sparkplug:\n  broker: mqtt://127.0.0.1:{port}\n  group_id: {group}\n  edge_node_id: {node}\n  \
         data_qos: 1\n  store: {{ path: sparkplug.redb, max_bytes: 256MiB, commit_window: 100ms }}\n",
        node = e.node,
        port = e.broker_port,
        group = e.group,
    );
    if let Some(port) = e.opcua_port {
        opcua_server(&mut y, port);
    }
    if e.history {
        y.push_str("history: { max_age: 30d, max_bytes: 1GiB, commit_window: 1s }\n");
    }
    devices(&mut y, s, |y, d, name| {
        match (s.source, e.modbus_port, e.upstream) {
            (Source::Modbus, Some(port), _) => modbus_device(y, s, d, port),
            (Source::OpcUa, _, Some(up)) => opcua_client_device(y, s, name, &up),
            _ => sim_device(y, s, d),
        }
    });
    y
}

/// The chain's upstream: the simulated devices of the scenario served over OPC UA (security
/// None, anonymous reads), no Sparkplug.
pub fn upstream_yaml(s: &Scenario, node: &str, state_dir: &Path, opcua_port: u16) -> String {
    let mut y = String::with_capacity(s.tags() * 100 + 1024);
    header(&mut y, node, state_dir);
    opcua_server(&mut y, opcua_port);
    devices(&mut y, s, |y, d, _| sim_device(y, s, d));
    y
}

fn header(y: &mut String, node: &str, state_dir: &Path) {
    let _ = write!(
        y,
        "node: {{ name: {node} }}\nstate_dir: {state}\nlog: {{ level: warn, values: false }}\n",
        state = state_dir.display(),
    );
}

fn opcua_server(y: &mut String, port: u16) {
    let _ = writeln!(
        y,
        "opcua:\n  listen: 127.0.0.1:{port}\n  endpoints: [none]\n  anonymous: read"
    );
}

/// `devices:`, each with its name and poll period; `body(y, index, name)` writes the rest.
fn devices(y: &mut String, s: &Scenario, mut body: impl FnMut(&mut String, usize, &str)) {
    let period_ms = s.period.as_millis();
    y.push_str("devices:\n");
    for (d, name) in s.device_names().iter().enumerate() {
        let _ = write!(y, "  - name: {name}\n    poll_interval: {period_ms}ms\n");
        body(y, d, name);
    }
}

fn modbus_device(y: &mut String, s: &Scenario, d: usize, port: u16) {
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

fn sim_device(y: &mut String, s: &Scenario, d: usize) {
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

/// One `opcua-client` device per upstream device, the same tags, by subscription: the server
/// sends each change once a period and every poll hands on what arrived.
fn opcua_client_device(y: &mut String, s: &Scenario, device: &str, up: &OpcUaUpstream<'_>) {
    let period_ms = s.period.as_millis();
    // Room for ten periods of changes between two polls: a poll that comes late (start-up,
    // a slow Sparkplug turn) must not make the driver drop the oldest.
    let buffer = (10 * s.tags_per_device).max(10_000);
    let _ = write!(
        y,
        "    driver: opcua-client\n    options: {{ endpoint: \"opc.tcp://127.0.0.1:{port}/\", pki_dir: \"{pki}\", \
         mode: subscription, publishing_interval: {period_ms}ms, buffer: {buffer} }}\n    tags:\n",
        port = up.port,
        pki = up.pki_dir.display(),
    );
    for t in 0..s.tags_per_device {
        let _ = writeln!(
            y,
            "      - {{ name: t{t}, type: uint32, address: \"nsu=urn:uaedge:{node};s={device}/t{t}\" }}",
            node = up.node,
        );
    }
}
