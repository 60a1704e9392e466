//! `tcpcopy intercept` and `tcpcopy copy` started in the lab in assistant mode, each waited on
//! until it is ready: intercept listening for copies and capturing the target's replies on the
//! assistant, copy capturing on its online host and connected to that intercept.
//!
//! Both log their counters every second (`--stats-interval 1s`), read back with
//! [`super::counters`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::counters::last_counters;
use super::host::Host;
use super::lab::Lab;
use super::process::Proc;
use super::wait::{has_bound_packet_socket, wait_until};

/// How long intercept and copy may take to be ready, and copy to reconnect.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long copy may take to exit after SIGINT.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The counter report interval given to both.
const STATS_INTERVAL: &str = "1s";
/// What copy logs each time it connects to an intercept.
const CONNECTED_LOG: &str = "connected to intercept";
/// What intercept logs once it listens for copies.
const LISTENING_LOG: &str = "waiting for copy connections";

/// How many times copy's log says it connected to an intercept.
pub fn intercept_connections(copy_log: &str) -> usize {
    copy_log.matches(CONNECTED_LOG).count()
}

/// Waits until `proc`'s stderr satisfies `ready`, failing early (with its stderr) if it exits.
pub fn wait_for_log(
    proc: &mut Proc,
    timeout: Duration,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> Result<()> {
    wait_until(timeout, what, || {
        proc.ensure_running()?;
        Ok(ready(&proc.stderr()))
    })
}

impl Lab {
    /// Starts intercept on the assistant, capturing the target's replies from `port`, and
    /// waits until it listens for copies and captures.
    pub fn start_intercept(&self, port: u16) -> Result<Proc> {
        let filter = format!(
            "tcp and src host {} and src port {port}",
            Host::Target.addr()
        );
        let args = [
            super::tcpcopy_bin(),
            "intercept",
            "-i",
            "eth0",
            "-F",
            &filter,
            "--stats-interval",
            STATS_INTERVAL,
        ];
        let mut intercept = self.spawn(Host::Assistant, &args)?;
        wait_for_log(
            &mut intercept,
            READY_TIMEOUT,
            "intercept to listen",
            |log| log.contains(LISTENING_LOG),
        )?;
        let pid = intercept.pid();
        wait_until(READY_TIMEOUT, "intercept to capture on eth0", || {
            intercept.ensure_running()?;
            has_bound_packet_socket(pid)
        })?;
        Ok(intercept)
    }

    /// Starts copy on `online`, replaying `port` to the same port on the target with client
    /// addresses rewritten into `client_ips`, intercept on the assistant, plus `extra` options;
    /// waits until it captures and is connected to the intercept.
    pub fn start_copy(
        &self,
        online: Host,
        port: u16,
        client_ips: &str,
        extra: &[&str],
    ) -> Result<Proc> {
        let map = format!("{port}-{}", Host::Target.socket(port));
        let assistant = Host::Assistant.addr().to_string();
        let mut args = vec![
            super::tcpcopy_bin(),
            "copy",
            "-i",
            "eth0",
            "-x",
            &map,
            "-c",
            client_ips,
            "-s",
            &assistant,
            "--stats-interval",
            STATS_INTERVAL,
        ];
        args.extend_from_slice(extra);
        let mut copy = self.spawn(online, &args)?;
        let pid = copy.pid();
        wait_until(READY_TIMEOUT, "copy to capture on eth0", || {
            copy.ensure_running()?;
            has_bound_packet_socket(pid)
        })?;
        wait_for_log(
            &mut copy,
            READY_TIMEOUT,
            "copy to connect to intercept",
            |log| intercept_connections(log) > 0,
        )?;
        Ok(copy)
    }
}

/// Stops copy with SIGINT and returns the totals it logs at exit; fails unless it exits 0.
pub fn stop_copy(copy: &mut Proc) -> Result<BTreeMap<String, u64>> {
    let status = copy.stop(libc::SIGINT, EXIT_TIMEOUT)?;
    let log = copy.stderr();
    ensure!(
        status.code() == Some(0),
        "copy on SIGINT: {status}; stderr:\n{log}"
    );
    let totals = last_counters(&log, "copy totals")
        .with_context(|| format!("copy logged no totals:\n{log}"))?;
    eprintln!("e2e: {} totals: {totals:?}", copy.label());
    Ok(totals)
}
