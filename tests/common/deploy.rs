//! `tcpcopy intercept` and `tcpcopy copy` started in the lab in one of the two ways the
//! product supports ([`Mode`]), each waited on until it is ready: intercept listening for
//! copies and catching the target's replies, copy capturing on its online host and connected
//! to that intercept.
//!
//! - [`Mode::Assistant`]: copy rewrites clients (`-c`, e.g. 203.0.113.0/24); the target routes
//!   that net via the assistant, where intercept captures the replies with pcap (the
//!   assistant does not forward, so they die there).
//! - [`Mode::Target`]: copies keep the real client addresses; on the target an iptables rule
//!   queues the replies to the clients' net to NFQUEUE, where intercept reads and drops them.
//!
//! Both log their counters every second (`--stats-interval 1s`), read back with
//! [`super::counters`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::copy_totals::copy_exit_totals;
use super::counters::last_counters;
use super::host::Host;
use super::lab::Lab;
use super::process::Proc;
use super::wait::{has_bound_packet_socket, wait_until};
use anyhow::{Context, Result, ensure};

/// How long intercept and copy may take to be ready, and copy to reconnect.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long copy and intercept may take to exit after SIGINT.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The counter report interval given to both.
const STATS_INTERVAL: &str = "1s";
/// What copy logs each time it connects to an intercept.
const CONNECTED_LOG: &str = "connected to intercept";
/// What intercept logs once it listens for copies.
const LISTENING_LOG: &str = "waiting for copy connections";
/// What intercept logs once it has bound its NFQUEUE queue.
const QUEUE_BOUND_LOG: &str = "reading replies from NFQUEUE";
/// The NFQUEUE queue intercept reads in target mode.
const QUEUE: &str = "0";
/// The lab hosts' net: in target mode the copies carry these (real) client addresses.
const HOSTS_NET: &str = "198.51.100.0/24";
/// The same, in an IPv6 lab.
const HOSTS_NET6: &str = "2001:db8::/64";

/// The address family a deployment replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// `host`'s address in this family.
    pub fn addr(self, host: Host) -> std::net::IpAddr {
        match self {
            Family::Ipv4 => host.addr().into(),
            Family::Ipv6 => host.addr6().into(),
        }
    }
}

/// Where the target's replies are caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Clients rewritten by copy's `-c`, replies captured on the assistant.
    Assistant,
    /// Real client addresses kept, replies queued to NFQUEUE and dropped on the target.
    Target,
}

impl Mode {
    /// The host intercept runs on.
    pub fn intercept_host(self) -> Host {
        match self {
            Mode::Assistant => Host::Assistant,
            Mode::Target => Host::Target,
        }
    }
}

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
    /// Runs intercept's command line `args` on `host` as it is (the test set up what it
    /// needs, or left it out on purpose), and waits until it listens for copies.
    pub fn spawn_listening_intercept<S: AsRef<std::ffi::OsStr>>(
        &self,
        host: Host,
        args: &[S],
    ) -> Result<Proc> {
        let mut intercept = self.spawn(host, args)?;
        wait_for_log(
            &mut intercept,
            READY_TIMEOUT,
            "intercept to listen",
            |log| log.contains(LISTENING_LOG),
        )?;
        Ok(intercept)
    }

    /// Starts intercept where `mode` puts it, catching the target's replies from `port`, and
    /// waits until it catches replies and listens for copies.
    pub fn start_intercept(&self, mode: Mode, port: u16) -> Result<Proc> {
        self.start_intercept_with(mode, port, &[])
    }

    /// [`Lab::start_intercept`] with `extra` options.
    pub fn start_intercept_with(&self, mode: Mode, port: u16, extra: &[&str]) -> Result<Proc> {
        self.start_intercept_for(mode, port, Family::Ipv4, extra)
    }

    /// [`Lab::start_intercept_with`] for the target's replies of `family` (IPv6 in a lab
    /// built with `Lab::up_ipv6`).
    pub fn start_intercept_for(
        &self,
        mode: Mode,
        port: u16,
        family: Family,
        extra: &[&str],
    ) -> Result<Proc> {
        let host = mode.intercept_host();
        let port = port.to_string();
        let bin = super::tcpcopy_bin();
        let mut intercept = match mode {
            Mode::Assistant => {
                let filter = format!(
                    "tcp and src host {} and src port {port}",
                    family.addr(Host::Target)
                );
                let args = [bin, "intercept", "-i", "eth0", "-F", &filter];
                self.spawn(
                    host,
                    &[&args[..], &["--stats-interval", STATS_INTERVAL], extra].concat(),
                )?
            }
            Mode::Target => {
                // The rule first: until intercept binds the queue, the kernel drops what it
                // queues, so no reply ever reaches a real client.
                let (tables, hosts_net) = match family {
                    Family::Ipv4 => ("iptables", HOSTS_NET),
                    Family::Ipv6 => ("ip6tables", HOSTS_NET6),
                };
                let rule = [
                    tables,
                    "-I",
                    "OUTPUT",
                    "-p",
                    "tcp",
                    "--sport",
                    &port,
                    "-d",
                    hosts_net,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    QUEUE,
                ];
                self.run_ok(host, &rule)
                    .context("queueing the target's replies to NFQUEUE")?;
                let args = [
                    bin,
                    "intercept",
                    "--nfqueue",
                    QUEUE,
                    "--stats-interval",
                    STATS_INTERVAL,
                ];
                self.spawn(host, &[&args[..], extra].concat())?
            }
        };
        wait_until(READY_TIMEOUT, "intercept to get ready", || {
            intercept.ensure_running()?;
            let log = intercept.stderr();
            let catching = match mode {
                Mode::Assistant => has_bound_packet_socket(intercept.pid())?,
                Mode::Target => log.contains(QUEUE_BOUND_LOG),
            };
            Ok(catching && log.contains(LISTENING_LOG))
        })?;
        Ok(intercept)
    }

    /// Starts copy on `online`, replaying `port` to the same port on the target through the
    /// intercept of `mode`, with client addresses rewritten into `client_ips` if given, plus
    /// `extra` options; waits until it captures and is connected to the intercept.
    pub fn start_copy(
        &self,
        online: Host,
        port: u16,
        mode: Mode,
        client_ips: Option<&str>,
        extra: &[&str],
    ) -> Result<Proc> {
        self.start_copy_for(online, port, mode, Family::Ipv4, client_ips, extra)
    }

    /// [`Lab::start_copy`] replaying the traffic of `family`, connected to the intercept
    /// over it too (IPv6 in a lab built with `Lab::up_ipv6`).
    pub fn start_copy_for(
        &self,
        online: Host,
        port: u16,
        mode: Mode,
        family: Family,
        client_ips: Option<&str>,
        extra: &[&str],
    ) -> Result<Proc> {
        let args = copy_args(online, port, port, mode, family, client_ips, extra);
        self.spawn_connected_copy(online, &args)
    }

    /// [`Lab::start_assistant_copy`] replaying the online `port` to the target's
    /// `target_port`.
    pub fn start_assistant_copy_to(
        &self,
        online: Host,
        port: u16,
        target_port: u16,
        client_ips: &str,
    ) -> Result<Proc> {
        let args = copy_args(
            online,
            port,
            target_port,
            Mode::Assistant,
            Family::Ipv4,
            Some(client_ips),
            &[],
        );
        self.spawn_connected_copy(online, &args)
    }

    /// Starts copy as `args` say on `online` and waits until it captures and an intercept
    /// has connected.
    fn spawn_connected_copy(&self, online: Host, args: &[String]) -> Result<Proc> {
        let mut copy = self.spawn(online, args)?;
        wait_for_capture(&mut copy)?;
        wait_for_log(
            &mut copy,
            READY_TIMEOUT,
            "copy to connect to intercept",
            |log| intercept_connections(log) > 0,
        )?;
        Ok(copy)
    }

    /// [`Lab::start_copy`] in assistant mode that returns once copy captures, connected to
    /// an intercept or not (e.g. none runs yet).
    pub fn start_copy_capturing(&self, online: Host, port: u16, client_ips: &str) -> Result<Proc> {
        let args = copy_args(
            online,
            port,
            port,
            Mode::Assistant,
            Family::Ipv4,
            Some(client_ips),
            &[],
        );
        let mut copy = self.spawn(online, &args)?;
        wait_for_capture(&mut copy)?;
        Ok(copy)
    }
}

/// The command line of a copy on `online` replaying `port` to the target's `target_port`
/// through the intercept of `mode` (see [`Lab::start_copy_for`]).
fn copy_args(
    online: Host,
    port: u16,
    target_port: u16,
    mode: Mode,
    family: Family,
    client_ips: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let socket = |host, port| std::net::SocketAddr::new(family.addr(host), port);
    let map = format!(
        "{}-{}",
        socket(online, port),
        socket(Host::Target, target_port)
    );
    let intercept = family.addr(mode.intercept_host()).to_string();
    let mut args: Vec<String> = [
        super::tcpcopy_bin(),
        "copy",
        "-i",
        "eth0",
        "-x",
        &map,
        "-s",
        &intercept,
        "--stats-interval",
        STATS_INTERVAL,
    ]
    .map(String::from)
    .to_vec();
    if let Some(client_ips) = client_ips {
        args.extend(["-c".to_owned(), client_ips.to_owned()]);
    }
    let shards = shards_override().filter(|_| !extra.contains(&"--workers"));
    if let Some(shards) = &shards {
        args.extend(["--workers".to_owned(), shards.clone()]);
    }
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

/// Waits until copy captures on its interface (from then on it misses no client packet).
fn wait_for_capture(copy: &mut Proc) -> Result<()> {
    let pid = copy.pid();
    wait_until(READY_TIMEOUT, "copy to capture on eth0", || {
        copy.ensure_running()?;
        has_bound_packet_socket(pid)
    })
}

impl Lab {
    /// [`Lab::start_copy`] in assistant mode, clients rewritten into `client_ips`, no extras.
    pub fn start_assistant_copy(&self, online: Host, port: u16, client_ips: &str) -> Result<Proc> {
        self.start_copy(online, port, Mode::Assistant, Some(client_ips), &[])
    }
}

/// Stops `proc` (copy or intercept) with SIGINT and returns the `LABEL totals` it logs at
/// exit; fails unless it exits 0. A copy's totals are checked ([`copy_exit_totals`]).
pub fn stop_with_totals(proc: &mut Proc, label: &str) -> Result<BTreeMap<String, u64>> {
    let status = proc.stop(libc::SIGINT, EXIT_TIMEOUT)?;
    let log = proc.stderr();
    ensure!(
        status.code() == Some(0),
        "{} on SIGINT: {status}; stderr:\n{log}",
        proc.label()
    );
    if label == "copy" {
        return copy_exit_totals(&log, proc.label());
    }
    let totals = last_counters(&log, &format!("{label} totals"))
        .with_context(|| format!("{} logged no totals:\n{log}", proc.label()))?;
    eprintln!("e2e: {} totals: {totals:?}", proc.label());
    Ok(totals)
}

/// Stops copy with SIGINT and returns the totals it logs at exit; fails unless it exits 0.
pub fn stop_copy(copy: &mut Proc) -> Result<BTreeMap<String, u64>> {
    stop_with_totals(copy, "copy")
}

/// `TCPCOPY_E2E_WORKERS=N` runs every copy of the e2e tests with N shards instead of copy's
/// default (scripts/test.sh runs the HTTP and services tests once more with 2).
fn shards_override() -> Option<String> {
    std::env::var("TCPCOPY_E2E_WORKERS")
        .ok()
        .filter(|n| !n.is_empty())
}
