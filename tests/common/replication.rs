//! [`Replication`]: `tcpcopy copy` and `tcpcopy intercept` deployed in a lab in one of the
//! two ways the product supports ([`Mode`]), copying the online host's port 80 to the
//! target's, and stopped with SIGINT to read their exit totals.
//!
//! - [`Mode::Assistant`]: copy rewrites clients into 203.0.113.0/24 (`-c`); the target routes
//!   that net via the assistant, where intercept captures the replies with pcap (the
//!   assistant does not forward, so they die there).
//! - [`Mode::Target`]: copies keep the real client addresses; on the target an iptables rule
//!   queues the replies to the clients' net to NFQUEUE, where intercept reads and drops them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::counters::last_counters;
use super::host::{CLIENT_NET, Host};
use super::lab::Lab;
use super::process::Proc;
use super::wait::{has_bound_packet_socket, wait_until};

/// The NFQUEUE queue intercept reads in target mode.
const QUEUE: &str = "0";
/// The lab hosts' net: in target mode the copies carry these (real) client addresses.
const HOSTS_NET: &str = "198.51.100.0/24";
/// How long copy and intercept may take to get ready, and to exit after SIGINT.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the target's replies are caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Clients rewritten into [`CLIENT_NET`], replies captured on the assistant.
    Assistant,
    /// Real client addresses kept, replies queued to NFQUEUE and dropped on the target.
    Target,
}

/// A running copy and intercept pair.
#[derive(Debug)]
pub struct Replication {
    copy: Proc,
    intercept: Proc,
}

/// What copy and intercept logged as their totals when they exited.
#[derive(Debug)]
pub struct Totals {
    /// The `copy totals:` counters.
    pub copy: BTreeMap<String, u64>,
    /// The `intercept totals:` counters.
    pub intercept: BTreeMap<String, u64>,
    /// copy's whole log, for failure messages.
    pub copy_log: String,
    /// intercept's whole log, for failure messages.
    pub intercept_log: String,
}

impl Totals {
    /// One `copy totals` counter; panics, with the log, if copy did not report it.
    pub fn copy(&self, name: &str) -> u64 {
        Self::get(&self.copy, name, &self.copy_log)
    }

    /// One `intercept totals` counter; panics, with the log, if intercept did not report it.
    pub fn intercept(&self, name: &str) -> u64 {
        Self::get(&self.intercept, name, &self.intercept_log)
    }

    fn get(counters: &BTreeMap<String, u64>, name: &str, log: &str) -> u64 {
        counters
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no `{name}` in the totals of:\n{log}"))
    }
}

impl Lab {
    /// Starts intercept, then copy, in `mode`, and returns once copy captures and is
    /// connected to intercept: from then on every client packet to the online port 80 is
    /// copied.
    pub fn start_replication(&self, mode: Mode) -> Result<Replication> {
        let intercept = self.start_intercept(mode)?;
        let online = Host::Online.addr().to_string();
        let mut copy_args = vec![
            super::tcpcopy_bin().to_owned(),
            "copy".to_owned(),
            "-i".to_owned(),
            "eth0".to_owned(),
            "-x".to_owned(),
            format!("{online}:80-{}", Host::Target.socket(80)),
            "-s".to_owned(),
            intercept_host(mode).addr().to_string(),
        ];
        if mode == Mode::Assistant {
            copy_args.extend(["-c".to_owned(), CLIENT_NET.to_owned()]);
        }
        let mut copy = self.spawn(Host::Online, &copy_args)?;
        wait_until(
            PROCESS_TIMEOUT,
            "copy to capture and reach intercept",
            || {
                copy.ensure_running()?;
                Ok(has_bound_packet_socket(copy.pid())?
                    && copy.stderr().contains("connected to intercept"))
            },
        )?;
        Ok(Replication { copy, intercept })
    }

    /// Starts intercept where `mode` puts it and waits until it catches replies and accepts
    /// copies.
    fn start_intercept(&self, mode: Mode) -> Result<Proc> {
        let host = intercept_host(mode);
        let bin = super::tcpcopy_bin();
        let mut intercept = match mode {
            Mode::Assistant => {
                let args = [bin, "intercept", "-i", "eth0", "-F", "tcp and src port 80"];
                self.spawn(host, &args)?
            }
            Mode::Target => {
                // The rule first: until intercept binds the queue, the kernel drops what it
                // queues, so no reply ever reaches a real client.
                let rule = [
                    "iptables",
                    "-I",
                    "OUTPUT",
                    "-p",
                    "tcp",
                    "--sport",
                    "80",
                    "-d",
                    HOSTS_NET,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    QUEUE,
                ];
                self.run_ok(host, &rule)
                    .context("queueing the target's replies to NFQUEUE")?;
                self.spawn(host, &[bin, "intercept", "--nfqueue", QUEUE])?
            }
        };
        wait_until(PROCESS_TIMEOUT, "intercept to get ready", || {
            intercept.ensure_running()?;
            let log = intercept.stderr();
            let catching = match mode {
                Mode::Assistant => has_bound_packet_socket(intercept.pid())?,
                Mode::Target => log.contains("reading replies from NFQUEUE"),
            };
            Ok(catching && log.contains("waiting for copy connections"))
        })?;
        Ok(intercept)
    }
}

impl Replication {
    /// The copy process (its log so far: `copy().stderr()`).
    pub fn copy(&self) -> &Proc {
        &self.copy
    }

    /// Stops copy, then intercept, with SIGINT; both must exit 0 and log their totals.
    pub fn stop(mut self) -> Result<Totals> {
        for proc in [&mut self.copy, &mut self.intercept] {
            let status = proc.stop(libc::SIGINT, PROCESS_TIMEOUT)?;
            ensure!(
                status.success(),
                "{} exited with {status} on SIGINT; log:\n{}",
                proc.label(),
                proc.stderr()
            );
        }
        let (copy_log, intercept_log) = (self.copy.stderr(), self.intercept.stderr());
        Ok(Totals {
            copy: last_counters(&copy_log, "copy totals")
                .with_context(|| format!("no `copy totals` line in:\n{copy_log}"))?,
            intercept: last_counters(&intercept_log, "intercept totals")
                .with_context(|| format!("no `intercept totals` line in:\n{intercept_log}"))?,
            copy_log,
            intercept_log,
        })
    }
}

/// The host intercept runs on in `mode`.
fn intercept_host(mode: Mode) -> Host {
    match mode {
        Mode::Assistant => Host::Assistant,
        Mode::Target => Host::Target,
    }
}
