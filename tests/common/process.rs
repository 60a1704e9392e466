//! Processes the harness starts: output captured to files, stopped by pid, always reaped.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often a wait polls a child's status.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A running (or finished) child process whose stdout and stderr go to files.
///
/// Dropping it kills the process with SIGKILL if it still runs, then reaps it.
#[derive(Debug)]
pub struct Proc {
    label: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// How the command exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout, lossily decoded.
    pub stdout: String,
    /// Everything it wrote to stderr, lossily decoded.
    pub stderr: String,
}

impl Proc {
    /// Starts `command` with stdout and stderr sent to `DIR/LABEL.out` and `DIR/LABEL.err`.
    pub fn spawn(label: &str, mut command: Command, dir: &Path) -> Result<Proc> {
        let stdout = dir.join(format!("{label}.out"));
        let stderr = dir.join(format!("{label}.err"));
        let out_file =
            File::create(&stdout).with_context(|| format!("creating {}", stdout.display()))?;
        let err_file =
            File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .spawn()
            .with_context(|| format!("starting {label}: {command:?}"))?;
        Ok(Proc {
            label: label.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given at spawn, used in messages and file names.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The exit status if the process has finished (reaping it), `None` while it runs.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("checking on {}", self.label))?;
        }
        Ok(self.status)
    }

    /// Fails, with the exit status and stderr, if the process has already exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_status()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited early ({status}); stderr:\n{}",
                self.label,
                self.stderr()
            ),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to the process, if it still runs.
    pub fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        if self.try_status()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory effects; the pid is our unreaped child, so it cannot
        // have been reused by another process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending signal {signal} to {}", self.label));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` and waits up to `timeout` for the exit; past that, kills the process
    /// and fails.
    pub fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> Result<ExitStatus> {
        self.signal(signal)?;
        match self.wait_timeout(timeout)? {
            Some(status) => Ok(status),
            None => {
                self.kill();
                bail!(
                    "{} did not exit within {timeout:?} of signal {signal}; stderr:\n{}",
                    self.label,
                    self.stderr()
                )
            }
        }
    }

    /// Waits up to `timeout` for the process to finish on its own and returns its output;
    /// past that, kills it and fails.
    pub fn finish(mut self, timeout: Duration) -> Result<Output> {
        let Some(status) = self.wait_timeout(timeout)? else {
            self.kill();
            bail!("{} did not finish within {timeout:?}", self.label);
        };
        Ok(Output {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        })
    }

    /// A `kB` field of the process's /proc/PID/status, e.g. `VmHWM` (peak resident set
    /// size) or `VmRSS`, in KiB.
    pub fn status_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in {path} of {}", self.label))
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            // Errors mean it already exited; wait() below reaps it either way.
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
