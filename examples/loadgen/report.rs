//! One run's figures: a plain-text block, a JSON line for the README table, and the
//! uaedge/peer ratios of a `--compare`.

use serde_json::{json, Value};

use crate::procfs::Usage;

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What a uaedge process logged at WARN or above during the run.
pub struct LogNote {
    pub process: String,
    pub count: usize,
    pub first: Vec<String>,
}

pub struct Report {
    pub scenario: String,
    pub edge: String,
    pub devices: usize,
    pub tags: usize,
    pub period_ms: u64,
    pub offered: f64,
    pub window_s: f64,
    pub warmup_s: f64,
    pub samples: u64,
    pub gaps: u64,
    pub repeats: u64,
    pub backwards: u64,
    pub historical: u64,
    pub unknown: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Device change → the edge's DDATA timestamp.
    pub to_edge_p50_ms: Option<f64>,
    pub to_edge_p99_ms: Option<f64>,
    /// The edge under test (in the OPC UA chain, the downstream uaedge).
    pub usage: Usage,
    /// The OPC UA chain's upstream uaedge, and when its server listened (s after its start).
    pub upstream: Option<(Usage, f64)>,
    pub broker_cpu_pct: f64,
    pub loadgen_cpu_pct: f64,
    pub nbirth_s: f64,
    pub births_s: f64,
    /// Every tag delivered a live value: start-up is over.
    pub flowing_s: f64,
    pub modbus: bool,
    pub logs: Vec<LogNote>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

impl Usage {
    fn text(&self, who: &str) -> String {
        format!(
            "{who} CPU: {cpu:.1} % of one core; RSS after start-up {r0:.1} MB, after warm-up {r1:.1} MB, \
             end {r2:.1} MB, peak (VmHWM) {rp:.1} MB",
            cpu = self.cpu_pct,
            r0 = mb(self.rss_started),
            r1 = mb(self.rss_warm),
            r2 = mb(self.rss_end),
            rp = mb(self.rss_peak),
        )
    }

    fn growth(&self, who: &str) -> String {
        self.rss_first_minute
            .map(|first| {
                format!(
                    "\n  {who}RSS growth, first minute → end: {:+.1} MB ({:.1} → {:.1} MB)",
                    mb(self.rss_end) - mb(first),
                    mb(first),
                    mb(self.rss_end)
                )
            })
            .unwrap_or_default()
    }

    /// `<prefix>cpu_pct`, `<prefix>rss_started_mb`… into `out`.
    fn json(&self, prefix: &str, out: &mut serde_json::Map<String, Value>) {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        for (key, value) in [
            ("cpu_pct", r1(self.cpu_pct)),
            ("rss_started_mb", r1(mb(self.rss_started))),
            ("rss_warm_mb", r1(mb(self.rss_warm))),
            ("rss_end_mb", r1(mb(self.rss_end))),
            ("rss_peak_mb", r1(mb(self.rss_peak))),
        ] {
            out.insert(format!("{prefix}{key}"), json!(value));
        }
        out.insert(
            format!("{prefix}rss_first_minute_mb"),
            json!(self.rss_first_minute.map(|b| r1(mb(b)))),
        );
    }
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.samples as f64 / self.window_s
    }

    pub fn text(&self) -> String {
        let gap_note = if self.modbus && self.gaps > 0 {
            " (the server bumps and the edge polls at the same period, so a poll that lands \
             just after two bumps skips a value: aliasing, not loss)"
        } else {
            ""
        };
        // The edge's, then the upstream's.
        let mut growth = self.usage.growth("");
        let (chain, who, upstream) = match &self.upstream {
            Some((usage, ready)) => (
                format!(
                    "\n  chain: devices in an upstream uaedge (its OPC UA server listening after {ready:.2} s) \
                     → OPC UA subscription → {} → mosquitto",
                    self.edge
                ),
                format!("{} (downstream: OPC UA client, Sparkplug)", self.edge),
                {
                    growth.push_str(&usage.growth("upstream "));
                    format!("\n  {}", usage.text("upstream uaedge (devices, OPC UA server)"))
                },
            ),
            None => (String::new(), self.edge.clone(), String::new()),
        };
        let logs: String = self
            .logs
            .iter()
            .map(|l| {
                let first = l
                    .first
                    .iter()
                    .map(|line| format!("\n      {line}"))
                    .collect::<String>();
                format!(
                    "\n  {} log: {} warnings and errors{}{first}",
                    l.process,
                    l.count,
                    if l.first.is_empty() {
                        ""
                    } else {
                        ", the first:"
                    }
                )
            })
            .collect();
        format!(
            "[{edge}] {scenario}: {tags} tags on {devices} devices every {period} ms \
             ({offered:.0} samples/s offered){chain}\n\
             \x20 start-up: NBIRTH after {nb:.2} s, all {devices} DBIRTHs after {bs:.2} s, \
             a value from every tag after {fs:.2} s\n\
             \x20 window: {window:.1} s after {warmup:.0} s warm-up\n\
             \x20 samples/s sustained: {rate:.0} ({samples} samples decoded from DDATA)\n\
             \x20 gaps (counter values skipped in the live stream): {gaps}{gap_note}; repeated: {repeats}; \
             stepped back (an older value late): {backwards}; \
             replayed late from the edge's store (is_historical): {historical}; unknown metrics: {unknown}\n\
             \x20 latency device change → MQTT delivery: p50 {p50}, p99 {p99}, max {max}; \
             of which device change → the edge's DDATA timestamp: p50 {e50}, p99 {e99}\n\
             \x20 {usage}{upstream}\n\
             \x20 mosquitto CPU: {bcpu:.1} % of one core; loadgen (subscriber{server}) CPU: {lcpu:.1} %{growth}{logs}",
            edge = self.edge,
            scenario = self.scenario,
            tags = self.tags,
            devices = self.devices,
            period = self.period_ms,
            offered = self.offered,
            nb = self.nbirth_s,
            bs = self.births_s,
            fs = self.flowing_s,
            window = self.window_s,
            warmup = self.warmup_s,
            rate = self.rate(),
            samples = self.samples,
            gaps = self.gaps,
            repeats = self.repeats,
            backwards = self.backwards,
            historical = self.historical,
            unknown = self.unknown,
            p50 = ms(self.p50_ms),
            p99 = ms(self.p99_ms),
            max = ms(self.max_ms),
            e50 = ms(self.to_edge_p50_ms),
            e99 = ms(self.to_edge_p99_ms),
            usage = self.usage.text(&who),
            bcpu = self.broker_cpu_pct,
            server = if self.modbus { ", Modbus server" } else { "" },
            lcpu = self.loadgen_cpu_pct,
        )
    }

    pub fn json(&self) -> String {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        let mut j = json!({
            "scenario": self.scenario,
            "edge": self.edge,
            "devices": self.devices,
            "tags": self.tags,
            "period_ms": self.period_ms,
            "offered_per_s": self.offered.round(),
            "window_s": r1(self.window_s),
            "samples": self.samples,
            "samples_per_s": self.rate().round(),
            "gaps": self.gaps,
            "repeats": self.repeats,
            "backwards": self.backwards,
            "historical": self.historical,
            "unknown": self.unknown,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "to_edge_publish_p50_ms": self.to_edge_p50_ms,
            "to_edge_publish_p99_ms": self.to_edge_p99_ms,
            "broker_cpu_pct": r1(self.broker_cpu_pct),
            "loadgen_cpu_pct": r1(self.loadgen_cpu_pct),
            "nbirth_s": (self.nbirth_s * 1000.0).round() / 1000.0,
            "births_s": (self.births_s * 1000.0).round() / 1000.0,
            "flowing_s": (self.flowing_s * 1000.0).round() / 1000.0,
        });
        let out = j.as_object_mut().expect("an object");
        self.usage.json("", out);
        if let Some((usage, ready)) = &self.upstream {
            usage.json("upstream_", out);
            out.insert(
                "upstream_ready_s".into(),
                json!((ready * 1000.0).round() / 1000.0),
            );
        }
        if !self.logs.is_empty() {
            let counts: serde_json::Map<String, Value> = self
                .logs
                .iter()
                .map(|l| (l.process.clone(), json!(l.count)))
                .collect();
            out.insert("log_warnings".into(), Value::Object(counts));
        }
        j.to_string()
    }
}

/// uaedge against each peer that ran: how many times more (throughput) or less (CPU, RSS).
pub fn print_ratios(reports: &[Report]) {
    let Some(ua) = reports.iter().find(|r| r.edge == "uaedge") else {
        println!("\ncompare: uaedge did not run, no ratios");
        return;
    };
    println!("\ncompare (uaedge / peer):");
    println!("  peer      samples/s   CPU      peak RSS   p99 latency");
    for peer in reports.iter().filter(|r| r.edge != "uaedge") {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "n/a".into()
            }
        };
        println!(
            "  {:<8}  {:>9}   {:>6}   {:>8}   {:>9}",
            peer.edge,
            ratio(ua.rate(), peer.rate()),
            ratio(ua.usage.cpu_pct, peer.usage.cpu_pct),
            ratio(ua.usage.rss_peak as f64, peer.usage.rss_peak as f64),
            ratio(
                ua.p99_ms.unwrap_or(f64::NAN),
                peer.p99_ms.unwrap_or(f64::NAN)
            ),
        );
    }
}
