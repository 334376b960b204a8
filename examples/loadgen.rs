//! End-to-end load harness: simulated or Modbus devices → an edge (uaedge, or one of the
//! comparison peers in examples/compare/) → a local mosquitto → this program's own
//! Sparkplug subscriber. Reports samples/s sustained, latency from device change to MQTT
//! delivery (p50/p99), the edge's CPU and RSS, mosquitto's CPU, start-up time, and counter
//! values lost (gaps), repeated or stepping back. It reports; it asserts nothing about speed.
//!
//! ```text
//! cargo run --release --example loadgen -- --scenario sim-10k [--duration 30s] [--warmup 5s] [--json]
//! cargo run --release --example loadgen -- --scenario modbus-10k --compare
//! cargo run --release --example loadgen -- --scenario opcua-100k      # 100,000 tags @1 s over OPC UA
//! cargo run --release --example loadgen -- --scenario opcua-100k --tags 10000 --period 100ms
//! cargo run --release --example loadgen -- --scenario soak            # 50,000 samples/s, 30 min
//! cargo run --release --example loadgen -- --scenario sim-100k --history  # every tag historized too
//! ```
//! Scenarios: sim-1k, sim-10k, sim-100k (simulated EtherNet/IP counters inside uaedge),
//! modbus-10k (10 units × 1,000 holding registers served here, polled every 100 ms),
//! opcua-100k (10 × 10,000 simulated counters @1 s in an upstream uaedge, read over OPC UA
//! by subscription by the uaedge under test; CPU and RSS of both; see chain.rs), soak.
//! `--tags N --devices D --period 100ms` override a scenario's shape. Needs mosquitto
//! (`bash tests/setup.sh`); the peers need `bash examples/compare/setup.sh`.

#[path = "loadgen/broker.rs"]
mod broker;
#[path = "loadgen/chain.rs"]
mod chain;
#[path = "loadgen/modbus_server.rs"]
mod modbus_server;
#[path = "loadgen/process.rs"]
mod process;
#[path = "loadgen/procfs.rs"]
mod procfs;
#[path = "loadgen/report.rs"]
mod report;
#[path = "loadgen/scenario.rs"]
mod scenario;
#[path = "loadgen/subscriber.rs"]
mod subscriber;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use chain::Upstream;
use modbus_server::CounterServer;
use process::EdgeProcess;
use procfs::{CpuMeter, Watch};
use report::{mb, LogNote, Report};
use scenario::{EdgeConfig, OpcUaUpstream, Scenario, Source};
use subscriber::{Origin, Subscriber};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const GROUP: &str = "loadgen";

#[derive(Parser, Debug)]
#[command(about = "End-to-end load harness: devices → edge → mosquitto → subscriber")]
struct Args {
    /// sim-1k | sim-10k | sim-100k | modbus-10k | opcua-100k | soak
    #[arg(long, default_value = "sim-10k")]
    scenario: String,
    /// Total tags (split evenly over the devices).
    #[arg(long)]
    tags: Option<usize>,
    #[arg(long)]
    devices: Option<usize>,
    /// Poll period of every device (and the Modbus server's counter period, the OPC UA
    /// chain's publishing interval).
    #[arg(long)]
    period: Option<uaedge_driver::Duration>,
    /// The measured window.
    #[arg(long)]
    duration: Option<uaedge_driver::Duration>,
    /// Running time after start-up that is not measured.
    #[arg(long)]
    warmup: Option<uaedge_driver::Duration>,
    /// Edge under test: uaedge | python | nodered (the peers serve modbus-10k only).
    #[arg(long, default_value = "uaedge")]
    edge: String,
    /// Run uaedge, python and nodered one after another on the same server and broker.
    #[arg(long)]
    compare: bool,
    /// Also serve OPC UA (security None) on a free port while measuring.
    #[arg(long)]
    opcua: bool,
    /// Also keep every tag in the local historian (`history:` as shipped), to set its CPU
    /// against a run without; the scenario is reported as `<scenario>+history`.
    #[arg(long)]
    history: bool,
    /// Also print one JSON line per run.
    #[arg(long)]
    json: bool,
    /// RSS is printed at this interval during the window (default: every minute).
    #[arg(long)]
    rss_every: Option<uaedge_driver::Duration>,
    /// The uaedge binary; default: next to this example's executable (built if absent).
    #[arg(long)]
    uaedge_bin: Option<PathBuf>,
    /// Write the scenario's uaedge config here (broker port 1883, Modbus port 502; for
    /// opcua-100k also the upstream's, as <name>.upstream.yaml, OPC UA port 4840) and exit,
    /// e.g. to time `uaedge check` on 100,000 tags.
    #[arg(long)]
    write_config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Uaedge,
    Python,
    NodeRed,
}

impl Edge {
    fn parse(s: &str) -> Result<Edge> {
        Ok(match s {
            "uaedge" => Edge::Uaedge,
            "python" => Edge::Python,
            "nodered" => Edge::NodeRed,
            other => bail!("unknown edge `{other}`: expected uaedge, python or nodered"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Edge::Uaedge => "uaedge",
            Edge::Python => "python",
            Edge::NodeRed => "nodered",
        }
    }

    /// Why a peer cannot run here, with the command that sets it up.
    fn missing(self) -> Option<String> {
        let need = match self {
            Edge::Uaedge => return None,
            Edge::Python => [
                ".build/compare/venv/bin/python",
                "examples/compare/python_edge.py",
            ],
            Edge::NodeRed => [
                "examples/compare/nodered/run.sh",
                ".build/compare/nodered/node_modules",
            ],
        };
        need.iter()
            .find(|p| !Path::new(REPO).join(p).exists())
            .map(|p| {
                format!(
                    "{} is missing: run `bash examples/compare/setup.sh` first",
                    Path::new(REPO).join(p).display()
                )
            })
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut s = Scenario::named(&args.scenario).map_err(anyhow::Error::msg)?;
    if let Some(d) = args.devices {
        let tags = s.tags();
        s.devices = d.max(1);
        s.tags_per_device = tags / s.devices;
    }
    if let Some(t) = args.tags {
        s.tags_per_device = (t / s.devices).max(1);
    }
    if let Some(p) = args.period {
        s.period = p.get();
    }
    if let Some(d) = args.duration {
        s.duration = d.get();
    }
    if let Some(w) = args.warmup {
        s.warmup = w.get();
    }
    if args.history {
        s.name.push_str("+history");
    }
    if s.source == Source::Modbus && (s.devices > 247 || s.tags_per_device > 65_536) {
        bail!("Modbus has at most 247 units and 65,536 registers per unit");
    }
    if let Some(path) = &args.write_config {
        let state = std::env::temp_dir().join("uaedge-loadgen-state");
        let yaml = scenario::uaedge_yaml(
            &s,
            &EdgeConfig {
                state_dir: &state,
                broker_port: 1883,
                group: GROUP,
                node: "uaedge",
                modbus_port: Some(502),
                opcua_port: None,
                history: args.history,
                upstream: Some(OpcUaUpstream {
                    port: 4840,
                    node: chain::NODE,
                    pki_dir: &state.join("pki"),
                }),
            },
        );
        std::fs::write(path, yaml)?;
        if s.source == Source::OpcUa {
            // The chain's other end, beside it: config.yaml → config.upstream.yaml.
            let upstream = path.with_extension("upstream.yaml");
            let state = std::env::temp_dir().join("uaedge-loadgen-upstream-state");
            std::fs::write(
                &upstream,
                scenario::upstream_yaml(&s, chain::NODE, &state, 4840),
            )?;
            println!("loadgen: the upstream's config is {}", upstream.display());
        }
        return Ok(());
    }
    let edges = if args.compare {
        vec![Edge::Uaedge, Edge::Python, Edge::NodeRed]
    } else {
        vec![Edge::parse(&args.edge)?]
    };
    if s.source != Source::Modbus && edges.iter().any(|e| *e != Edge::Uaedge) {
        bail!("the python and nodered peers poll Modbus: use --scenario modbus-10k");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_all(&args, &s, &edges))
}

async fn run_all(args: &Args, s: &Scenario, edges: &[Edge]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let uaedge = if edges.contains(&Edge::Uaedge) {
        Some(uaedge_binary(args.uaedge_bin.as_deref())?)
    } else {
        None
    };
    if let Some(bin) = &uaedge {
        // A stale binary would measure yesterday's code: say how old it is.
        let age = std::fs::metadata(bin)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or("?".to_string(), |a| {
                format!("{:.0}", a.as_secs_f64() / 60.0)
            });
        println!("loadgen: uaedge is {} (built {age} min ago)", bin.display());
    }
    let broker_dir = dir.path().join("mosquitto");
    std::fs::create_dir_all(&broker_dir)?;
    let broker = broker::Broker::start(&broker_dir)?;
    let broker_pid = Some(broker.pid());
    let server = match s.source {
        Source::Modbus => Some(
            CounterServer::start(s.devices as u8, s.tags_per_device as u16, s.period)
                .await
                .context("start the Modbus server")?,
        ),
        Source::Sim | Source::OpcUa => None,
    };
    println!(
        "loadgen: {} — {} devices × {} tags every {} ms = {} tags, {:.0} samples/s offered; \
         mosquitto on 127.0.0.1:{}{}",
        s.name,
        s.devices,
        s.tags_per_device,
        s.period.as_millis(),
        s.tags(),
        s.offered(),
        broker.port,
        server
            .as_ref()
            .map(|m| format!(", Modbus server on 127.0.0.1:{}", m.port))
            .unwrap_or_default()
    );
    let mut reports = Vec::new();
    for &edge in edges {
        if let Some(why) = edge.missing() {
            println!("\n[{}] skipped: {why}", edge.name());
            continue;
        }
        let run = Run {
            s,
            edge,
            dir: dir.path().join(edge.name()),
            broker_port: broker.port,
            broker_pid,
            server: server.as_ref(),
            uaedge: uaedge.as_deref(),
            opcua: args.opcua,
            history: args.history,
            rss_every: args
                .rss_every
                .map(|d| d.get())
                .unwrap_or(Duration::from_secs(60)),
        };
        match run.go().await {
            Ok(r) => {
                println!("\n{}", r.text());
                if args.json {
                    println!("{}", r.json());
                }
                reports.push(r);
            }
            Err(e) => println!("\n[{}] failed: {e:#}", edge.name()),
        }
    }
    if args.compare {
        report::print_ratios(&reports);
    }
    drop(broker);
    if reports.is_empty() {
        bail!("no run completed");
    }
    Ok(())
}

/// The release (or debug) `uaedge` next to this example, built when it is not there.
fn uaedge_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/loadgen → target/<profile>/uaedge
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locate the target folder")?;
    let bin = profile_dir.join("uaedge");
    if !bin.exists() {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "--bin", "uaedge"]).current_dir(REPO);
        if release {
            cargo.arg("--release");
        }
        println!("loadgen: {} not found, building it", bin.display());
        if !cargo.status()?.success() {
            bail!("cargo build --bin uaedge failed");
        }
    }
    Ok(bin)
}

struct Run<'a> {
    s: &'a Scenario,
    edge: Edge,
    dir: PathBuf,
    broker_port: u16,
    broker_pid: Option<u32>,
    server: Option<&'a CounterServer>,
    uaedge: Option<&'a Path>,
    opcua: bool,
    history: bool,
    rss_every: Duration,
}

impl Run<'_> {
    fn node(&self) -> String {
        format!("{}-{}", self.edge.name(), std::process::id())
    }

    fn spawn(&self, upstream: Option<&Upstream>) -> Result<EdgeProcess> {
        std::fs::create_dir_all(&self.dir)?;
        let node = self.node();
        let pki_dir = self.dir.join("pki");
        let mut cmd = match self.edge {
            Edge::Uaedge => {
                let config = self.dir.join("config.yaml");
                let yaml = scenario::uaedge_yaml(
                    self.s,
                    &EdgeConfig {
                        state_dir: &self.dir.join("state"),
                        broker_port: self.broker_port,
                        group: GROUP,
                        node: &node,
                        modbus_port: self.server.map(|m| m.port),
                        opcua_port: if self.opcua {
                            Some(broker::free_port()?)
                        } else {
                            None
                        },
                        history: self.history,
                        upstream: upstream.map(|up| OpcUaUpstream {
                            port: up.port,
                            node: chain::NODE,
                            pki_dir: &pki_dir,
                        }),
                    },
                );
                std::fs::write(&config, yaml)?;
                process::uaedge_run(self.uaedge.context("no uaedge binary")?, &config)
            }
            Edge::Python | Edge::NodeRed => {
                let mut c = if self.edge == Edge::Python {
                    let mut c =
                        Command::new(Path::new(REPO).join(".build/compare/venv/bin/python"));
                    c.arg(Path::new(REPO).join("examples/compare/python_edge.py"));
                    c
                } else {
                    let mut c = Command::new("bash");
                    c.arg(Path::new(REPO).join("examples/compare/nodered/run.sh"));
                    c
                };
                let units: Vec<String> = (1..=self.s.devices).map(|u| u.to_string()).collect();
                let port = self.server.map(|m| m.port).context("no Modbus server")?;
                c.args(["--modbus-host", "127.0.0.1", "--modbus-port"])
                    .arg(port.to_string())
                    .arg("--units")
                    .arg(units.join(","))
                    .arg("--registers")
                    .arg(self.s.tags_per_device.to_string())
                    .args(["--start", "0", "--period-ms"])
                    .arg(self.s.period.as_millis().to_string())
                    .args(["--broker-host", "127.0.0.1", "--broker-port"])
                    .arg(self.broker_port.to_string())
                    .args(["--group", GROUP, "--node", &node]);
                c
            }
        };
        cmd.current_dir(REPO);
        EdgeProcess::spawn(cmd, self.dir.join("edge.log"), self.edge.name())
    }

    async fn go(&self) -> Result<Report> {
        let s = self.s;
        let origin = match self.server {
            Some(m) => Origin::ServerSet(m.times.clone()),
            None => Origin::MetricTimestamp,
        };
        let mut upstream = match s.source {
            Source::OpcUa => {
                let bin = self.uaedge.context("no uaedge binary")?;
                let up = Upstream::start(bin, &self.dir.join("upstream"), s).await?;
                println!(
                    "loadgen: upstream uaedge serving OPC UA on 127.0.0.1:{} after {:.2} s",
                    up.port,
                    up.ready.as_secs_f64()
                );
                Some(up)
            }
            _ => None,
        };
        let sub = Subscriber::start(self.broker_port, &self.node(), s.devices, origin)
            .await
            .map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        let mut edge = self.spawn(upstream.as_ref())?;
        let who = self.edge.name();
        // Generous: parsing and building 100k tags takes a while in a debug build.
        let limit = Duration::from_secs(60 + s.tags() as u64 / 500);
        let (nbirth, births) = loop {
            let (n, b) = sub.with(|st| (st.nbirth, st.births_done));
            if let (Some(n), Some(b)) = (n, b) {
                break (n - started, b - started);
            }
            ensure_running(&mut edge, who, upstream.as_mut(), "before its births")?;
            if started.elapsed() > limit {
                let got = sub.with(|st| st.births);
                bail!(
                    "only {got} of {} DBIRTHs after {limit:?}; log {}:\n{}",
                    s.devices,
                    edge.log.display(),
                    edge.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Births come before values: the chain's downstream creates its monitored items
        // (100,000 of them) after its births, so start-up ends when every tag delivers.
        let flowing = loop {
            if sub.with(|st| st.tags_flowing()) >= s.tags() {
                break started.elapsed();
            }
            ensure_running(
                &mut edge,
                who,
                upstream.as_mut(),
                "before every tag delivered",
            )?;
            if started.elapsed() > limit {
                let got = sub.with(|st| st.tags_flowing());
                bail!(
                    "only {got} of {} tags delivered a value after {limit:?}; log {}:\n{}",
                    s.tags(),
                    edge.log.display(),
                    edge.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // The edge's, then the upstream's.
        let mut watches: Vec<Watch> = std::iter::once(edge.pid())
            .chain(upstream.as_ref().map(|up| up.process.pid()))
            .map(Watch::new)
            .collect();
        watches.iter_mut().for_each(Watch::started);
        tokio::time::sleep(s.warmup).await;

        watches.iter_mut().for_each(Watch::warm);
        let broker_cpu = self.broker_pid.map(CpuMeter::start);
        let own_cpu = CpuMeter::start(std::process::id());
        sub.with(|st| st.open_window());
        let window_start = Instant::now();
        let mut next_rss = self.rss_every;
        while window_start.elapsed() < s.duration {
            let left = s.duration.saturating_sub(window_start.elapsed());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
            ensure_running(&mut edge, who, upstream.as_mut(), "during the window")?;
            if window_start.elapsed() >= next_rss && next_rss < s.duration {
                let rss: Vec<u64> = watches.iter_mut().map(Watch::rss_now).collect();
                let samples = sub.with(|st| st.samples);
                println!(
                    "  [{}] {:>5.0} s  RSS {}  {} samples",
                    self.edge.name(),
                    window_start.elapsed().as_secs_f64(),
                    match rss[..] {
                        [edge, upstream] =>
                            format!("{:.1} MB (upstream {:.1} MB)", mb(edge), mb(upstream)),
                        _ => format!("{:.1} MB", mb(rss[0])),
                    },
                    samples
                );
                next_rss += self.rss_every;
            }
        }
        sub.with(|st| st.close_window());
        let window = window_start.elapsed();
        let usage = watches[0].usage();
        let upstream_usage = watches.get(1).map(Watch::usage);
        let broker_cpu = broker_cpu.and_then(|m| m.percent()).unwrap_or(f64::NAN);
        let own_cpu = own_cpu.percent().unwrap_or(f64::NAN);
        let mut logs = Vec::new();
        if self.edge == Edge::Uaedge {
            let named = std::iter::once((self.edge.name(), &edge))
                .chain(upstream.as_ref().map(|up| ("upstream", &up.process)));
            for (process, p) in named {
                let (count, first) = p.log_problems(3);
                logs.push(LogNote {
                    process: process.to_string(),
                    count,
                    first,
                });
            }
        }
        edge.stop();
        if let Some(up) = upstream.as_mut() {
            up.process.stop();
        }
        let report = sub.with(|st| Report {
            scenario: s.name.clone(),
            edge: self.edge.name().to_string(),
            devices: s.devices,
            tags: s.tags(),
            period_ms: s.period.as_millis() as u64,
            offered: s.offered(),
            window_s: window.as_secs_f64(),
            warmup_s: s.warmup.as_secs_f64(),
            samples: st.samples,
            gaps: st.gaps,
            repeats: st.repeats,
            backwards: st.backwards,
            historical: st.historical,
            unknown: st.unknown + st.decode_errors,
            p50_ms: st.latency.quantile_ms(0.5),
            p99_ms: st.latency.quantile_ms(0.99),
            max_ms: st.latency.quantile_ms(1.0),
            to_edge_p50_ms: st.to_edge_publish.quantile_ms(0.5),
            to_edge_p99_ms: st.to_edge_publish.quantile_ms(0.99),
            usage,
            upstream: upstream_usage.zip(upstream.as_ref().map(|up| up.ready.as_secs_f64())),
            broker_cpu_pct: broker_cpu,
            loadgen_cpu_pct: own_cpu,
            nbirth_s: nbirth.as_secs_f64(),
            births_s: births.as_secs_f64(),
            flowing_s: flowing.as_secs_f64(),
            modbus: s.source == Source::Modbus,
            logs,
        });
        sub.stop().await;
        Ok(report)
    }
}

/// Fails the run, with the process's last log lines, once the edge or the chain's upstream
/// has exited.
fn ensure_running(
    edge: &mut EdgeProcess,
    who: &str,
    upstream: Option<&mut Upstream>,
    when: &str,
) -> Result<()> {
    let named = std::iter::once((who, edge))
        .chain(upstream.map(|up| ("the upstream uaedge", &mut up.process)));
    for (who, p) in named {
        if let Some(status) = p.exited() {
            bail!(
                "{who} exited with {status} {when}; log {}:\n{}",
                p.log.display(),
                p.log_tail()
            );
        }
    }
    Ok(())
}
