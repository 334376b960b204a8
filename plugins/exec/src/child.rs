//! The driver program as a process: started with only the environment it was given, in a
//! process group of its own, its stderr logged with the device's name, and stopped by
//! closing stdin, then SIGTERM, then SIGKILL to the whole group.
//!
//! The program is reaped only after its group has been killed: until then its zombie
//! holds the group's number, so a signal to the group can never reach a process that
//! took the number over.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tracing::{debug, error, info, warn, Level};

/// How long a stop waits for the program to exit after closing its stdin, and again after
/// SIGTERM; then SIGKILL. With the rest of a stop it stays within the runtime's three
/// seconds per shutdown stage.
pub const STOP_STEP: Duration = Duration::from_secs(1);
/// How long a stop waits after SIGKILL, and for the last log lines.
const STOP_LAST: Duration = Duration::from_millis(400);
/// close_range(2)'s flag to mark instead of close (linux/close_range.h).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// How often an exit is looked for while waiting.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// Driver log lines per second; past that they are counted and the count is logged.
const LOG_LINES_PER_SECOND: u32 = 20;
/// The longest stderr line logged whole.
const LOG_LINE: usize = 2048;

/// What to start, from the device's options.
#[derive(Debug, Clone)]
pub struct Program {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

/// A running driver program.
pub struct Child {
    process: tokio::process::Child,
    /// The process group, the program's own pid.
    group: Option<i32>,
    pub stdin: Option<ChildStdin>,
    stderr: Option<tokio::task::JoinHandle<()>>,
}

impl Program {
    /// Starts the program for `device`; its stdout is the caller's to read.
    pub fn spawn(&self, device: &str) -> std::io::Result<(Child, ChildStdout)> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no command"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(inherited())
            .env("UAEDGE_DEVICE", device)
            .env("UAEDGE_PROTOCOL", crate::protocol::VERSION.to_string())
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, close_range,
        // sysconf, fcntl), nothing that allocates or locks.
        unsafe {
            command.pre_exec(|| {
                // setuid programs do not raise the driver's privileges (systemd's
                // NoNewPrivileges, kept also when uaedge runs outside its unit).
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Descriptors uaedge itself inherited without close-on-exec (a parent's
                // pipes, a jobserver) stay behind: only the three pipes reach the program.
                // Marked, not closed: std's own exec-error pipe must live until exec.
                if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                    // Before Linux 5.11: one by one.
                    let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
                        n if n > 0 => n.min(1 << 20) as libc::c_int,
                        _ => 1024,
                    };
                    for fd in 3..max {
                        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    }
                }
                Ok(())
            });
        }
        let mut process = command.spawn()?;
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let stderr = process
            .stderr
            .take()
            .map(|e| tokio::spawn(log_stderr(device.to_string(), e)));
        let group = process.id().and_then(|p| i32::try_from(p).ok());
        Ok((
            Child {
                stdin: process.stdin.take(),
                process,
                group,
                stderr,
            },
            stdout,
        ))
    }
}

/// What the driver keeps of uaedge's environment: where to find programs and how to
/// read text. Nothing else (credentials, tokens, the service's own settings).
fn inherited() -> impl Iterator<Item = (String, String)> {
    ["PATH", "LANG"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
}

impl Child {
    pub fn pid(&self) -> Option<i32> {
        self.group
    }

    /// How the program ended, if it has: looked at without reaping it.
    pub fn ended(&self) -> Option<String> {
        let pid = u32::try_from(self.group?).ok()?;
        // SAFETY: waitid(2) on our own child with WNOWAIT leaves it unreaped; `info` is
        // plain data the call fills.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PID, pid, &mut info, flags) != 0 || info.si_pid() == 0 {
                return None;
            }
            Some(match info.si_code {
                libc::CLD_EXITED => format!("exit status {}", info.si_status()),
                _ => format!("killed by signal {}", info.si_status()),
            })
        }
    }

    /// [`Child::ended`], waiting up to `limit` for it.
    pub async fn ended_within(&self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(how) = self.ended() {
                return Some(how);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Stops the program: closes its stdin, then SIGTERM, then SIGKILL, [`STOP_STEP`]
    /// apart; kills what is left of its group and reaps it. Returns how it ended.
    pub async fn stop(mut self) -> Option<String> {
        self.stdin = None;
        let mut how = self.ended_within(STOP_STEP).await;
        if how.is_none() {
            self.signal(libc::SIGTERM);
            how = self.ended_within(STOP_STEP).await;
        }
        if how.is_none() {
            self.signal(libc::SIGKILL);
            how = self.ended_within(STOP_LAST).await;
        }
        // Whatever the program started and left behind goes with it.
        self.signal(libc::SIGKILL);
        if tokio::time::timeout(STOP_LAST, self.process.wait())
            .await
            .is_ok()
        {
            self.group = None;
        }
        if let Some(mut task) = self.stderr.take() {
            // The pipe closes once the group is gone, and the last lines are logged; a
            // helper that left the group may hold it open: then the task goes.
            if tokio::time::timeout(STOP_LAST, &mut task).await.is_err() {
                task.abort();
            }
        }
        how
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(group) = self.group {
            // SAFETY: kill(2) on the group of our unreaped child; ESRCH is ignored.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child dropped without `stop` (a connect cancelled by shutdown): this takes its
        // group (not reaped yet, so the number is still its own), kill_on_drop the rest.
        self.signal(libc::SIGKILL);
        if let Some(task) = self.stderr.take() {
            task.abort();
        }
    }
}

/// Logs the driver's stderr, a line each with the device's name, at most
/// [`LOG_LINES_PER_SECOND`]; the pipe is always drained, so a chatty driver never blocks.
async fn log_stderr(device: String, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut window = Instant::now();
    let (mut logged, mut skipped) = (0u32, 0u64);
    loop {
        line.clear();
        // At most LOG_LINE bytes kept; the rest of a long line is read and dropped.
        let read = (&mut reader)
            .take(LOG_LINE as u64)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let whole = line.last() == Some(&b'\n');
        if !whole {
            skip_rest_of_line(&mut reader).await;
        }
        if window.elapsed() >= Duration::from_secs(1) {
            if skipped > 0 {
                warn!(device = %device, skipped, "driver log lines skipped (over {LOG_LINES_PER_SECOND} a second)");
            }
            window = Instant::now();
            logged = 0;
            skipped = 0;
        }
        if logged >= LOG_LINES_PER_SECOND {
            skipped += 1;
            continue;
        }
        logged += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let cut = if whole { "" } else { "… (cut)" };
        match level(text) {
            Level::ERROR => error!(device = %device, "driver: {text}{cut}"),
            Level::WARN => warn!(device = %device, "driver: {text}{cut}"),
            Level::DEBUG => debug!(device = %device, "driver: {text}{cut}"),
            _ => info!(device = %device, "driver: {text}{cut}"),
        }
    }
    if skipped > 0 {
        warn!(device = %device, skipped, "driver log lines skipped (over {LOG_LINES_PER_SECOND} a second)");
    }
}

/// A log line's level, from the word it starts with as most logging libraries write it
/// (`ERROR`, `WARNING:root:…`, `[warn]`, `debug …`); INFO otherwise.
fn level(line: &str) -> Level {
    let word: String = line
        .trim_start_matches(['[', '<', ' '])
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    match word.to_ascii_uppercase().as_str() {
        "ERROR" | "CRITICAL" | "FATAL" => Level::ERROR,
        "WARNING" | "WARN" => Level::WARN,
        "DEBUG" | "TRACE" => Level::DEBUG,
        _ => Level::INFO,
    }
}

async fn skip_rest_of_line(reader: &mut BufReader<tokio::process::ChildStderr>) {
    loop {
        let Ok(available) = reader.fill_buf().await else {
            return;
        };
        if available.is_empty() {
            return;
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return;
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_keep_the_level_they_start_with() {
        for (line, want) in [
            ("ERROR S7_HOST is not set", Level::ERROR),
            ("WARNING:root:slow PLC", Level::WARN),
            ("[warn] retrying", Level::WARN),
            ("debug: frame 3", Level::DEBUG),
            ("CRITICAL:driver:gone", Level::ERROR),
            ("connected to 10.0.0.7", Level::INFO),
            ("Errors so far: 0", Level::INFO),
            ("", Level::INFO),
        ] {
            assert_eq!(level(line), want, "{line}");
        }
    }
}
