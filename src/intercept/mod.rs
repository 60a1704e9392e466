//! `tcpcopy intercept`: catches the target's replies (NFQUEUE on the target, pcap on an
//! assistant host), keeps them from real clients, and sends their headers to the copy that
//! registered each flow.
//!
//! ```text
//!  NFQUEUE ──┐   one thread, one poll(2) loop            ┌──► copy connection A
//!            ├─► split headers ─► switchboard (router) ──┼──► copy connection B
//!  pcap(s) ──┘   (verdict DROP at once)   combined frames └──► ...   once per loop turn
//! ```
//!
//! # Layout
//! - `event_loop.rs`: the loop over the listener, the sources and the connections.
//! - `failsafe.rs`: what keeps the replies from the real clients while intercept runs:
//!   forwarding off on an assistant, replies queued on a target.
//! - `sources.rs`: what a reply source is, and the pcap one; `nfqueue.rs`: the NFQUEUE one.
//! - `switchboard.rs`: the connections and the routing table, fed by the loop.
//! - `connection.rs`: one copy connection: decoder, handshake, batch, bounded outbound buffer.
//! - `router.rs`: which connection owns which flow (pure).
//! - `incidents.rs`: refusals on the control port, counted and logged rate-limited.
//!
//! The control port is guarded by `--allow` (at accept) and `--secret-file` (at the hello);
//! docs/security.md says what each protects.
//!
//! This file sets the pieces up and runs the loop; it handles no packet itself.

mod connection;
mod event_loop;
mod failsafe;
mod incidents;
mod nfqueue;
mod router;
mod sources;
mod switchboard;
mod verdict_batch;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::capture::{self, LiveCapture};
use crate::cli::InterceptArgs;
use crate::stats::metrics::{Exposition, GaugeFamily, GaugeValues, MetricsServer};
use crate::stats::{Counter, Counters, Reporter};

pub use router::{ConnId, Router, RouterLimits};

use event_loop::{EventLoop, PortGuard};
use failsafe::{Guard, Mode, SystemProbe};
use sources::{CapturedReplies, ReplySource};

/// Counters `intercept` reports.
const REPORTED: &[Counter] = &[
    Counter::Captured,
    Counter::Malformed,
    Counter::KernelDropped,
    Counter::FlowsRegistered,
    Counter::RepliesRouted,
    Counter::RepliesUnrouted,
    Counter::RepliesParked,
    Counter::ParkedRepliesDropped,
    Counter::RepliesDroppedSlowPeer,
    Counter::FlowsHeldByOtherCopy,
    Counter::RegistrationsOverLimit,
    Counter::ConnectionsRefused,
    Counter::ConnectionsUnauthenticated,
    Counter::ConnectionsMalformed,
    Counter::ConnectionsSilent,
];

/// Bytes of each reply the assistant captures: headers and a payload prefix.
const CAPTURE_SNAPLEN: i32 = 256;

/// `tcpcopy intercept`: runs until SIGINT/SIGTERM.
pub fn run(args: &InterceptArgs) -> Result<()> {
    let port_guard = PortGuard {
        allow: args.allow.clone(),
        waiting_limit: PortGuard::default().waiting_limit,
        secret: args
            .secret
            .secret_file
            .as_deref()
            .map(crate::secret_file::load)
            .transpose()?,
    };
    // The host first: an assistant that would forward the replies is refused before any
    // capture opens; a missing NFQUEUE rule is said at once.
    let (guard, alarms) = Guard::start(
        Mode::of(args),
        Box::new(SystemProbe::new(args)),
        Instant::now(),
    )
    .map_err(anyhow::Error::msg)?;
    alarms.iter().for_each(failsafe::Alarm::log);
    // Then the sources, while this is the only thread (the NFQUEUE descriptor is found by the
    // lowest-free-descriptor rule): a queue we cannot bind is a startup error, not a log line.
    let sources = open_sources(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let counters = Arc::new(Counters::default());

    let bind = SocketAddr::new(
        args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        args.port,
    );
    let listener = TcpListener::bind(bind)
        .or_else(|err| match args.bind {
            // A host without IPv6 still serves IPv4.
            None => TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], args.port))),
            Some(_) => Err(err),
        })
        .with_context(|| format!("cannot listen on {bind}"))?;
    log::info!("waiting for copy connections on {}", listener.local_addr()?);
    describe_port_guard(&port_guard, args.port);
    let descriptors = raise_open_file_limit();
    let port_guard = PortGuard {
        // Strangers waiting for their hello never take more than a quarter of them.
        waiting_limit: port_guard.waiting_limit.min(descriptors / 4).max(16),
        ..port_guard
    };

    let _reporter = Reporter::start(
        "intercept",
        Arc::clone(&counters),
        REPORTED,
        args.report.stats_interval,
    );
    let mut event_loop =
        EventLoop::new(listener, sources, Arc::clone(&counters), port_guard)?.guarded_by(guard);
    let _metrics = match args.report.metrics {
        Some(addr) => Some(MetricsServer::start(
            addr,
            exposition(counters, event_loop.copies_connected()),
        )?),
        None => None,
    };
    event_loop.run(&stop)
}

/// Says once who may use the control port, and how to restrict it when anyone may.
fn describe_port_guard(guard: &PortGuard, port: u16) {
    let secret = if guard.secret.is_some() {
        "copies must prove the --secret-file secret"
    } else {
        "no secret is asked (--secret-file)"
    };
    if guard.allow.is_empty() {
        log::warn!(
            "port {port} takes copy connections from any address and {secret}: any host that \
             reaches it can register flows and read the target's reply headers; restrict it with \
             --allow CIDR (the copy hosts) and --secret-file FILE (see docs/security.md)"
        );
    } else {
        let blocks: Vec<String> = guard.allow.iter().map(ToString::to_string).collect();
        log::info!(
            "port {port} takes copy connections from {} only; {secret}",
            blocks.join(", ")
        );
    }
}

/// Raises the soft limit of open descriptors to the hard one (every copy connection holds
/// one, and strangers may hold some until the hello timeout closes them), unless a seccomp
/// filter runs this process (systemd's `SystemCallFilter=~@resources` kills a process that
/// calls setrlimit: the unit sets `LimitNOFILE` instead). Returns the soft limit in force.
fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        let soft = limit.rlim_cur;
        if soft < limit.rlim_max && !under_seccomp_filter() {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                log::debug!(
                    "open descriptors: limit raised from {soft} to {}",
                    limit.rlim_max
                );
            } else {
                limit.rlim_cur = soft;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Whether a seccomp filter runs this process (`Seccomp: 2` in /proc/self/status).
fn under_seccomp_filter() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| {
            line.strip_prefix("Seccomp:")
                .is_some_and(|mode| mode.trim() != "0")
        })
    })
}

/// What `intercept --metrics` serves: the reported counters and the copies connected.
fn exposition(counters: Arc<Counters>, copies_connected: Arc<AtomicUsize>) -> Exposition {
    let gauges = move || {
        vec![GaugeFamily {
            name: "copies_connected",
            help: "Copy connections open now.",
            values: GaugeValues::Process(copies_connected.load(Ordering::Relaxed)),
        }]
    };
    Exposition::new("intercept", counters, REPORTED, Box::new(gauges))
}

fn open_sources(args: &InterceptArgs) -> Result<Vec<Box<dyn ReplySource>>> {
    let mut sources: Vec<Box<dyn ReplySource>> = Vec::new();
    if let Some(number) = args.nfqueue {
        sources.push(Box::new(nfqueue::NfQueueSource::open(
            number,
            args.queue_length,
            args.passlist.clone(),
        )?));
    }
    let filter = args.filter.clone().unwrap_or_default();
    for device in &args.interfaces {
        let options = capture::LiveOptions {
            device: device.clone(),
            filter: filter.clone(),
            buffer_bytes: crate::cli::mib_to_bytes(args.buffer_mib),
            snaplen: CAPTURE_SNAPLEN,
            ring: capture::RingMode::Immediate,
            fanout: None,
        };
        sources.push(Box::new(CapturedReplies::new(LiveCapture::open(
            &options,
        )?)?));
    }
    Ok(sources)
}
