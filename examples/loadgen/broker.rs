//! The loadgen's mosquitto, on a free port. The tests' `sparkplug_support::Broker` cannot be
//! shared: that module names the test-only `CARGO_BIN_EXE_uaedge` at compile time, which an
//! example does not have. This one keeps no persistence (a run is throw-away) and exposes
//! the PID, whose CPU is reported.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Broker {
    pub port: u16,
    child: Child,
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Broker {
    pub fn start(dir: &Path) -> Result<Broker> {
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        // As root, mosquitto would otherwise switch to its own user.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n{}",
                if is_root { "user root\n" } else { "" }
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start mosquitto (bash tests/setup.sh installs it)")?;
        let mut broker = Broker { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                bail!("mosquitto exited with {status}");
            }
            if Instant::now() > deadline {
                bail!("mosquitto is not listening on {port} after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
