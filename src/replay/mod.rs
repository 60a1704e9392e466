//! The copy side: address rewriting, packet sinks, the intercept links, and the
//! capture → worker → sender pipeline that `tcpcopy copy` runs.
//!
//! ```text
//!  capture thread(s) ──by flow hash──► worker 0..N-1 ──packets──► sender ─► raw socket
//!                                          ▲
//!  intercept link(s) ──reply headers───────┘   (registrations go back out to every intercept)
//! ```

pub mod control;
mod dispatch;
mod pool;
mod registrar;
pub mod rewrite;
pub mod sender;
pub mod sink;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::{self, FileCapture, LiveCapture, PacketSource};
use crate::cli::CopyArgs;
use crate::session::SessionConfig;
use crate::stats::{Counter, Counters, Reporter};

pub use dispatch::{Dispatcher, Pace, shard_of};

/// Counters `copy` reports.
const REPORTED: &[Counter] = &[
    Counter::Captured,
    Counter::Malformed,
    Counter::KernelDropped,
    Counter::QueueFull,
    Counter::SessionsOpened,
    Counter::SessionsMidstream,
    Counter::SessionsSkipped,
    Counter::RequestsSent,
    Counter::SessionsClosed,
    Counter::SessionsReset,
    Counter::SessionsTimedOut,
    Counter::SessionsGivenUp,
    Counter::SessionsRebuilt,
    Counter::ResponsesTimedOut,
    Counter::PortsReused,
    Counter::BufferOverflows,
    Counter::BytesNotReplayed,
    Counter::HandshakesFailed,
    Counter::HandshakesRefused,
    Counter::SessionsOverLimit,
    Counter::SessionsShed,
    Counter::Sent,
    Counter::SendFailed,
    Counter::Retransmitted,
    Counter::RepliesReceived,
    Counter::Registrations,
];

/// Batches a worker or the sender may have queued before new ones are dropped and counted.
/// Under load a batch holds up to 64 packets; at a few µs per packet the sender's queue then
/// holds well under the 250 ms initial retransmission timeout of the sessions.
const QUEUE_DEPTH: usize = 1_024;
/// Spare packet buffers kept for reuse.
const POOLED_BUFFERS: usize = 8_192;

/// `tcpcopy copy`: runs until SIGINT/SIGTERM (or, offline, until the file is replayed).
pub fn run(args: &CopyArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let mappings = args.all_mappings();
    let sources = open_sources(args, &mappings)?;
    let sink: Box<dyn sink::PacketSink> = match &args.output {
        Some(path) => Box::new(sink::PcapFileSink::create(path)?),
        None => Box::new(sink::RawSocketSink::open()?),
    };
    let counters = Arc::new(Counters::default());
    let _reporter = Reporter::start(
        "copy",
        Arc::clone(&counters),
        REPORTED,
        args.report.stats_interval,
    );
    let config = PipelineConfig {
        rewriter: rewrite::Rewriter::new(mappings, args.client_ips.clone()),
        intercepts: args.all_intercepts(),
        worker: worker::WorkerConfig {
            session: session_config(args),
            mtu: usize::from(args.mtu),
            max_sessions: args.max_sessions,
        },
        workers: usize::from(args.workers),
        pace: if args.offline.is_some() {
            Pace::Recorded
        } else {
            Pace::AsFastAsPossible
        },
        drain: args.offline.is_some().then_some(args.drain),
    };
    run_pipeline(config, sources, sink, &stop, &counters)
}

/// Everything the copy pipeline needs besides its sources and sink.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub rewriter: rewrite::Rewriter,
    pub intercepts: Vec<control::InterceptAddr>,
    pub worker: worker::WorkerConfig,
    pub workers: usize,
    pub pace: Pace,
    /// After the sources end, how long to keep running so sessions can finish (`None`: stop
    /// at once).
    pub drain: Option<Duration>,
}

/// Runs the copy pipeline until every source has ended (and the drain time passed) or `stop`
/// is set, then shuts it down in order: captures, intercept links, workers, sender.
pub fn run_pipeline(
    config: PipelineConfig,
    sources: Vec<Box<dyn PacketSource>>,
    sink: Box<dyn sink::PacketSink>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Result<()> {
    let registrar = Arc::new(registrar::Registrar::default());
    let pool = pool::BufferPool::new(POOLED_BUFFERS, config.worker.mtu);
    let (packets_tx, packets_rx) = crossbeam_channel::bounded(QUEUE_DEPTH);
    let lag = sender::SendLag::default();
    let sender = {
        let (lag, counters, pool) = (lag.clone(), Arc::clone(counters), pool.clone());
        spawn("sender", move || {
            sender::run(sink, packets_rx, lag, pool, counters)
        })?
    };
    let mut worker_inputs = Vec::new();
    let mut workers = Vec::new();
    for index in 0..config.workers.max(1) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_DEPTH);
        worker_inputs.push(tx);
        let worker = worker::Worker::new(
            config.worker.clone(),
            packets_tx.clone(),
            lag.clone(),
            Arc::clone(&registrar),
            Arc::clone(counters),
            pool.clone(),
        );
        workers.push(spawn(&format!("worker-{index}"), move || worker.run(rx))?);
    }
    drop(packets_tx);
    let dispatcher = Dispatcher::new(worker_inputs, pool);

    let links_stop = Arc::new(AtomicBool::new(false));
    let mut links = Vec::new();
    for addr in config.intercepts {
        let (registrar, dispatcher, stop, counters) = (
            Arc::clone(&registrar),
            dispatcher.clone(),
            Arc::clone(&links_stop),
            Arc::clone(counters),
        );
        links.push(spawn(&format!("link-{addr}"), move || {
            control::run_link(&addr, &registrar, &dispatcher, &stop, &counters)
        })?);
    }

    let mut captures = Vec::new();
    for source in sources {
        let (rewriter, dispatcher, stop, counters) = (
            config.rewriter.clone(),
            dispatcher.clone(),
            Arc::clone(stop),
            Arc::clone(counters),
        );
        let name = format!("capture-{}", source.name());
        captures.push(spawn(&name, move || {
            dispatch::run(
                source,
                &rewriter,
                &dispatcher,
                config.pace,
                &stop,
                &counters,
            )
        })?);
    }
    let warn_no_intercept = WarnNoIntercept::new(&registrar);
    let mut capture_result = Ok(());
    for capture in captures {
        while !capture.is_finished() {
            warn_no_intercept.check();
            thread::sleep(Duration::from_millis(100));
        }
        let result = capture
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("capture thread panicked")));
        if let Err(err) = result {
            stop.store(true, Ordering::Relaxed);
            capture_result = capture_result.and(Err(err));
        }
    }
    if let Some(drain) = config.drain.filter(|_| !stop.load(Ordering::Relaxed)) {
        log::info!(
            "input ended; letting sessions finish for {}",
            humantime::format_duration(drain)
        );
        let until = Instant::now() + drain;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
        }
    }

    links_stop.store(true, Ordering::Relaxed);
    for link in links {
        let _ = link.join();
    }
    drop(dispatcher);
    for worker in workers {
        let _ = worker.join();
    }
    let _ = sender.join();
    capture_result
}

fn session_config(args: &CopyArgs) -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        only_full_sessions: args.only_full_sessions,
        wait_for_response: !args.no_wait,
        ..SessionConfig::default()
    })
}

fn open_sources(
    args: &CopyArgs,
    mappings: &[rewrite::PortMapping],
) -> Result<Vec<Box<dyn PacketSource>>> {
    if let Some(path) = &args.offline {
        let source = FileCapture::open(path, args.filter.as_deref())?;
        return Ok(vec![Box::new(source)]);
    }
    let mut sources: Vec<Box<dyn PacketSource>> = Vec::new();
    for device in &args.interfaces {
        let filter = match &args.filter {
            Some(filter) => filter.clone(),
            None => capture::build_filter(mappings, &capture::own_addresses(device)?)
                .with_context(|| format!("cannot build the capture filter for {device}"))?,
        };
        let options = capture::LiveOptions {
            device: device.clone(),
            filter,
            buffer_bytes: crate::cli::mib_to_bytes(args.buffer_mib),
            snaplen: 65_535,
        };
        sources.push(Box::new(LiveCapture::open(&options)?));
    }
    Ok(sources)
}

fn spawn<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>> {
    thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(body)
        .with_context(|| format!("cannot start thread {name}"))
}

/// Says clearly, and again every 30 s, when no intercept is connected: without one no session
/// gets past its handshake.
struct WarnNoIntercept<'a> {
    registrar: &'a registrar::Registrar,
    since: Instant,
    last: std::cell::Cell<Option<Instant>>,
}

impl<'a> WarnNoIntercept<'a> {
    const GRACE: Duration = Duration::from_secs(3);
    const REPEAT: Duration = Duration::from_secs(30);

    fn new(registrar: &'a registrar::Registrar) -> Self {
        WarnNoIntercept {
            registrar,
            since: Instant::now(),
            last: std::cell::Cell::new(None),
        }
    }

    fn check(&self) {
        let now = Instant::now();
        if self.registrar.connected() > 0 || now - self.since < Self::GRACE {
            return;
        }
        if self.last.get().is_none_or(|at| now - at >= Self::REPEAT) {
            log::warn!(
                "no intercept is connected: the target's replies cannot reach copy, so replayed sessions stall after the SYN"
            );
            self.last.set(Some(now));
        }
    }
}
