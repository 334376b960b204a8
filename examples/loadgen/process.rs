//! A child process the harness runs (an edge, or the OPC UA chain's upstream uaedge): its
//! stderr goes to a log file, it is stopped (SIGTERM, then SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct EdgeProcess {
    child: Child,
    pub log: PathBuf,
}

/// `uaedge run -c <config>`, with RUST_LOG cleared so that the config's `log:` decides.
pub fn uaedge_run(bin: &Path, config: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(["run", "-c"]).arg(config).env_remove("RUST_LOG");
    c
}

impl EdgeProcess {
    /// Starts `cmd` with no stdin or stdout and its stderr written to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf, what: &str) -> Result<EdgeProcess> {
        let stderr = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("start {what}"))?;
        Ok(EdgeProcess { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// uaedge's WARN and ERROR lines so far: how many, and the first `keep` of them. A
    /// report with figures but a link that kept failing would mislead.
    pub fn log_problems(&self, keep: usize) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut first = Vec::new();
        let mut count = 0;
        for line in text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        {
            count += 1;
            if first.len() < keep {
                first.push(line.to_string());
            }
        }
        (count, first)
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        }
    }
}
