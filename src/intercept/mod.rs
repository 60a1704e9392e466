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
//! - `connection.rs`: one copy connection: decoder, batch, bounded outbound buffer.
//! - `router.rs`: which connection owns which flow (pure).
//!
//! This file sets the pieces up and runs the loop; it handles no packet itself.

mod connection;
mod event_loop;
mod failsafe;
mod nfqueue;
mod router;
mod sources;
mod switchboard;

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

use event_loop::EventLoop;
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
    Counter::RepliesDroppedSlowPeer,
    Counter::FlowsHeldByOtherCopy,
];

/// Bytes of each reply the assistant captures: headers and a payload prefix.
const CAPTURE_SNAPLEN: i32 = 256;

/// `tcpcopy intercept`: runs until SIGINT/SIGTERM.
pub fn run(args: &InterceptArgs) -> Result<()> {
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

    let _reporter = Reporter::start(
        "intercept",
        Arc::clone(&counters),
        REPORTED,
        args.report.stats_interval,
    );
    let mut event_loop =
        EventLoop::new(listener, sources, Arc::clone(&counters))?.guarded_by(guard);
    let _metrics = match args.report.metrics {
        Some(addr) => Some(MetricsServer::start(
            addr,
            exposition(counters, event_loop.copies_connected()),
        )?),
        None => None,
    };
    event_loop.run(&stop)
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
