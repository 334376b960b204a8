//! A device's `options:` for the exec driver, and what `uaedge check` checks of them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uaedge_driver::{ByteSize, Duration};

use crate::child::Program;

/// Environment variables uaedge sets itself.
const RESERVED: [&str; 2] = ["UAEDGE_DEVICE", "UAEDGE_PROTOCOL"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecOptions {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The program's environment, beside PATH and LANG.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Where it runs; uaedge's own working directory when absent.
    pub cwd: Option<PathBuf>,
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: Duration,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    #[serde(default = "default_max_line")]
    pub max_line: ByteSize,
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_line() -> ByteSize {
    ByteSize(8 << 20)
}

impl ExecOptions {
    pub fn program(&self) -> Program {
        Program {
            command: self.command.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
        }
    }

    pub fn max_line(&self) -> usize {
        usize::try_from(self.max_line.0).unwrap_or(usize::MAX)
    }

    /// Everything that can be known without starting the program: it exists and may be
    /// run, the timeouts are not zero, the environment can be set.
    pub fn validate(&self) -> Result<(), String> {
        let Some(program) = self.command.first() else {
            return Err("command: an empty command; give the program and its arguments, e.g. [/usr/lib/uaedge/drivers/s7.py, --rack, \"0\"]".into());
        };
        find_program(program, self.cwd.as_deref())
            .map_err(|e| format!("command: `{program}` {e}"))?;
        if let Some(cwd) = &self.cwd {
            if !cwd.is_dir() {
                return Err(format!("cwd: {} is not a directory", cwd.display()));
            }
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(format!("env: `{key}` cannot be an environment variable"));
            }
            if RESERVED.contains(&key.as_str()) {
                return Err(format!("env: `{key}` is set by uaedge"));
            }
        }
        for (name, d) in [
            ("startup_timeout", self.startup_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.get().is_zero() {
                return Err(format!("{name}: must be more than 0"));
            }
        }
        if !(1 << 10..=1 << 30).contains(&self.max_line.0) {
            return Err("max_line: from 1KiB to 1GiB".into());
        }
        Ok(())
    }
}

/// Where `program` is, as the child's exec will look for it: a path (relative to `cwd`)
/// when it has a `/`, else the first executable of that name in PATH.
fn find_program(program: &str, cwd: Option<&Path>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = match cwd {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return match std::fs::metadata(&path) {
            Err(e) => Err(format!("cannot be found: {e}")),
            Ok(m) if !m.is_file() => Err("is not a file".into()),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err("is not executable (chmod +x, or name its interpreter first)".into())
            }
            Ok(_) => Ok(path),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| "is not an executable in PATH".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(command: &[&str]) -> ExecOptions {
        ExecOptions {
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            startup_timeout: default_startup_timeout(),
            request_timeout: default_request_timeout(),
            max_line: default_max_line(),
        }
    }

    #[test]
    fn the_program_must_exist_and_be_executable() {
        assert_eq!(options(&["sh", "-c", "true"]).validate(), Ok(()));
        assert_eq!(options(&["/bin/sh"]).validate(), Ok(()));
        let err = |c: &[&str]| options(c).validate().expect_err("refused");
        assert!(err(&[]).contains("an empty command"));
        assert!(err(&["no-such-driver-here"]).contains("is not an executable in PATH"));
        assert!(err(&["/nonexistent/driver.py"]).contains("cannot be found"));
        assert!(err(&["/etc/passwd"]).contains("is not executable"));
        assert!(err(&["/etc"]).contains("is not a file"));
        let mut o = options(&["sh"]);
        o.env.insert("UAEDGE_DEVICE".into(), "x".into());
        assert!(o
            .validate()
            .expect_err("reserved")
            .contains("set by uaedge"));
        let mut o = options(&["sh"]);
        o.request_timeout = Duration::from_millis(0);
        assert!(o.validate().is_err());
    }
}
