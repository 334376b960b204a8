//! The OPC UA chain's first link (`--scenario opcua-100k`): an upstream `uaedge run` with
//! the scenario's simulated counters and its OPC UA server on (security None, anonymous
//! reads), no Sparkplug. The uaedge under test reads every tag from it with the
//! `opcua-client` driver, one device per upstream device, by subscription, and publishes
//! Sparkplug as in the other scenarios.
//!
//! The latency still runs from the change at the device: the simulator stamps each step,
//! the upstream's server sends that stamp as the SourceTimestamp, the client keeps it as the
//! reading's source time, and the downstream's Sparkplug sends it as the metric timestamp.
//! The report's "device change → the edge's DDATA timestamp" shows the OPC UA hop apart; it
//! would be about zero if a link restamped the values. By design it is up to about three
//! periods: the server samples each item once a period (`sampling_interval` defaults to the
//! publishing interval, and the server's floor is 100 ms), publishes once a period, and the
//! downstream hands on what arrived at its next poll (`poll_interval` is the period too).
//! The three clocks' phases are set at start, so p50 moves from run to run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::process::{self, EdgeProcess};
use crate::scenario::{self, Scenario};

/// The upstream's `node.name`; its tags live in namespace `urn:uaedge:upstream`.
pub const NODE: &str = "upstream";

pub struct Upstream {
    pub port: u16,
    pub process: EdgeProcess,
    /// From the start of the process until its OPC UA server listened.
    pub ready: Duration,
}

impl Upstream {
    /// Starts the upstream in `dir` and returns once its OPC UA server listens.
    pub async fn start(bin: &Path, dir: &Path, s: &Scenario) -> Result<Upstream> {
        std::fs::create_dir_all(dir)?;
        let port = crate::broker::free_port()?;
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            scenario::upstream_yaml(s, NODE, &dir.join("state"), port),
        )?;
        let started = Instant::now();
        let mut process = EdgeProcess::spawn(
            process::uaedge_run(bin, &config),
            dir.join("edge.log"),
            "the upstream uaedge",
        )?;
        // The downstream would connect anyway, after its reconnect backoff; starting it
        // once the server listens keeps that backoff out of the start-up figures.
        let limit = Duration::from_secs(60 + s.tags() as u64 / 500);
        while !crate::procfs::tcp_listening(port) {
            if let Some(status) = process.exited() {
                bail!(
                    "the upstream uaedge exited with {status}; log {}:\n{}",
                    process.log.display(),
                    process.log_tail()
                );
            }
            if started.elapsed() > limit {
                bail!(
                    "the upstream uaedge's OPC UA server is not listening on {port} after {limit:?}; log {}:\n{}",
                    process.log.display(),
                    process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Upstream {
            port,
            process,
            ready: started.elapsed(),
        })
    }
}
