//! `tcpcopy intercept`: catches the target's replies (NFQUEUE on the target, pcap on an
//! assistant host), keeps them from real clients, and sends their headers to the copy that
//! registered each flow.
//!
//! ```text
//!  NFQUEUE reader ──┐                                  ┌──► copy connection A
//!                   ├─► hub (verdict DROP at once) ────┼──► copy connection B
//!  pcap reader(s) ──┘   routes by registered flow      └──► ...
//! ```

mod hub;
mod nfqueue;
mod router;
mod server;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::capture::{self, LiveCapture, Next, PacketSource};
use crate::cli::InterceptArgs;
use crate::packet::{self, LinkHeader, LinkType};
use crate::stats::{Counter, Counters, Reporter};

pub use hub::Hub;
pub use router::{ConnId, Router, RouterLimits, Routing};

/// Counters `intercept` reports.
const REPORTED: &[Counter] = &[
    Counter::Captured,
    Counter::Malformed,
    Counter::KernelDropped,
    Counter::RepliesRouted,
    Counter::RepliesUnrouted,
    Counter::RepliesDroppedSlowPeer,
];

/// How often parked replies and idle routes are expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// `tcpcopy intercept`: runs until SIGINT/SIGTERM.
pub fn run(args: &InterceptArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let counters = Arc::new(Counters::default());
    let hub = Arc::new(Hub::new(Arc::clone(&counters)));

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

    // Sources first: a queue we cannot bind is a startup error, not a log line.
    start_sources(args, &hub, &counters, &stop)?;
    let _reporter = Reporter::start(
        "intercept",
        Arc::clone(&counters),
        REPORTED,
        args.report.stats_interval,
    );
    let server = {
        let (hub, stop) = (Arc::clone(&hub), Arc::clone(&stop));
        thread::Builder::new()
            .name("server".into())
            .spawn(move || server::serve(listener, hub, stop))
            .context("cannot start the control server")?
    };
    while !stop.load(Ordering::Relaxed) && !server.is_finished() {
        hub.expire();
        thread::sleep(EXPIRE_EVERY);
    }
    stop.store(true, Ordering::Relaxed);
    // Source threads may sit in a blocking read; the process exit ends them.
    server
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("control server panicked")))
}

fn start_sources(
    args: &InterceptArgs,
    hub: &Arc<Hub>,
    counters: &Arc<Counters>,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    if let Some(number) = args.nfqueue {
        let source = nfqueue::NfQueueSource::open(number, args.passlist.clone())?;
        let (hub, counters, stop) = (Arc::clone(hub), Arc::clone(counters), Arc::clone(stop));
        spawn_source("nfqueue", stop, move || {
            source.run(|bytes, headers| {
                counters.add(Counter::Captured, 1);
                match headers {
                    Ok(segment) => hub.on_reply(bytes, &segment),
                    Err(_) => counters.add(Counter::Malformed, 1),
                }
            })
        })?;
    }
    let filter = args.filter.clone().unwrap_or_default();
    for device in &args.interfaces {
        let options = capture::LiveOptions {
            device: device.clone(),
            filter: filter.clone(),
            buffer_bytes: crate::cli::mib_to_bytes(args.buffer_mib),
            snaplen: 256,
            ring: capture::RingMode::Immediate,
            fanout: None,
        };
        let source = LiveCapture::open(&options)?;
        let (hub, counters, stop_flag) = (Arc::clone(hub), Arc::clone(counters), Arc::clone(stop));
        spawn_source(&format!("pcap-{device}"), Arc::clone(stop), move || {
            capture_replies(Box::new(source), &hub, &counters, &stop_flag)
        })?;
    }
    Ok(())
}

/// Runs a source on its own thread; if it fails, the whole intercept stops.
fn spawn_source(
    name: &str,
    stop: Arc<AtomicBool>,
    body: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<()> {
    thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            if let Err(err) = body() {
                log::error!("{err:#}");
            }
            stop.store(true, Ordering::Relaxed);
        })
        .with_context(|| format!("cannot start thread {name}"))?;
    Ok(())
}

/// Assistant mode: replies captured with pcap (the assistant's `ip_forward=0` drops them after).
fn capture_replies(
    mut source: Box<dyn PacketSource>,
    hub: &Hub,
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<()> {
    let dlt = source.datalink();
    let link = LinkType::from_dlt(dlt)
        .with_context(|| format!("{}: unsupported link type {dlt}", source.name()))?;
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame()? {
            Next::Frame(frame) => frame,
            Next::Idle => {
                counters.set(Counter::KernelDropped, source.stats().dropped);
                source.wait(capture::POLL_INTERVAL)?;
                continue;
            }
            Next::End => break,
        };
        counters.add(Counter::Captured, 1);
        // The snap length keeps headers and a payload prefix only, so parse headers alone.
        let parsed = LinkHeader::parse(link, frame.data)
            .and_then(|(_, ip)| packet::parse_ip_headers(ip).map(|segment| (ip, segment)));
        match parsed {
            Ok((ip, segment)) => hub.on_reply(ip, &segment),
            Err(_) => counters.add(Counter::Malformed, 1),
        }
    }
    Ok(())
}
