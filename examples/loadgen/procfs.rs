//! What the kernel knows about a process: CPU time and memory, from /proc.

/// USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux uaedge targets.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces; utime and stime are the 12th
    // and 13th fields after it.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of /proc/<pid>/status (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS")
}

/// The peak resident set the kernel recorded for the process.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM")
}

/// CPU of a process between two readings, as percent of one core.
pub struct CpuMeter {
    pid: u32,
    ticks: u64,
    at: std::time::Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            ticks: cpu_ticks(pid).unwrap_or(0),
            at: std::time::Instant::now(),
        }
    }

    /// Percent of one core since `start`; `None` once the process is gone.
    pub fn percent(&self) -> Option<f64> {
        let ticks = cpu_ticks(self.pid)?;
        let seconds = self.at.elapsed().as_secs_f64();
        Some(100.0 * (ticks.saturating_sub(self.ticks)) as f64 / TICKS_PER_SECOND / seconds)
    }
}
