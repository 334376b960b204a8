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

/// Whether a socket listens on TCP `port` (IPv4, any address), from /proc/net/tcp: finding
/// out without connecting, since a connection that never sends Hello is a warning in an
/// OPC UA server's log.
pub fn tcp_listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // `sl local_address rem_address st …`, the address as hex `IP:PORT`, LISTEN is 0A.
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        state == "0A"
            && local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
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

/// One process's CPU and memory over a run.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Over the measured window, percent of one core.
    pub cpu_pct: f64,
    /// VmRSS once start-up is over, after the warm-up, at the end of the window.
    pub rss_started: u64,
    pub rss_warm: u64,
    pub rss_end: u64,
    /// VmHWM at the end.
    pub rss_peak: u64,
    /// The first VmRSS printed during the window (after a minute, by default): where the
    /// growth over a long run is measured from, start-up settled.
    pub rss_first_minute: Option<u64>,
}

/// Takes a [`Usage`] at the marks of a run: [`Watch::started`], [`Watch::warm`] (which also
/// starts the CPU meter: the window begins), [`Watch::usage`] at the end of the window.
pub struct Watch {
    pid: u32,
    rss_started: u64,
    rss_warm: u64,
    rss_first_minute: Option<u64>,
    cpu: Option<CpuMeter>,
}

impl Watch {
    pub fn new(pid: u32) -> Watch {
        Watch {
            pid,
            rss_started: 0,
            rss_warm: 0,
            rss_first_minute: None,
            cpu: None,
        }
    }

    pub fn started(&mut self) {
        self.rss_started = rss_bytes(self.pid).unwrap_or(0);
    }

    pub fn warm(&mut self) {
        self.rss_warm = rss_bytes(self.pid).unwrap_or(0);
        self.cpu = Some(CpuMeter::start(self.pid));
    }

    /// VmRSS now, to print during the window; the first is kept.
    pub fn rss_now(&mut self) -> u64 {
        let rss = rss_bytes(self.pid).unwrap_or(0);
        self.rss_first_minute.get_or_insert(rss);
        rss
    }

    /// Read before the process is stopped.
    pub fn usage(&self) -> Usage {
        Usage {
            cpu_pct: self
                .cpu
                .as_ref()
                .and_then(CpuMeter::percent)
                .unwrap_or(f64::NAN),
            rss_started: self.rss_started,
            rss_warm: self.rss_warm,
            rss_end: rss_bytes(self.pid).unwrap_or(0),
            rss_peak: peak_rss_bytes(self.pid).unwrap_or(0),
            rss_first_minute: self.rss_first_minute,
        }
    }
}
