//! `tcpcopy copy`: the copy data path, as share-nothing shards.
//!
//! ```text
//!            kernel PACKET_FANOUT (hash of the flow)
//!                 │                 │
//!  shard 0: [ pcap ring ] ─► parse ─► session ─► emit ─► sendmmsg ─► raw socket
//!           [ intercept links ] ─► reply headers ─┘  (registrations out on the same links)
//!  shard 1: the same, other flows ...
//! ```
//!
//! Each shard ([`shard`]) is one thread with one `poll(2)` loop over its own captures, its
//! own raw socket and its own link to every intercept; it runs each packet to completion. The
//! kernel spreads flows over the shards' captures, and each intercept routes a reply to the
//! link that registered its flow, so no packet ever crosses threads. What crosses threads is
//! counters (atomics, flushed in batches), link status and the stop flag.
//!
//! Offline (`--offline FILE...`), one shard replays the files instead of capturing
//! ([`feed`]), on a clock taken from their timestamps (see `shard`'s offline module).
//!
//! - [`core`]: a shard's packet work without syscalls (parse, rewrite, sessions, emit).
//! - [`sessions`]: the session table, its timers and the engine's output.
//! - `slot`: what the table keeps of a session: all of it, or its time-wait record.
//! - [`link`]: a shard's connection to one intercept.
//! - [`sink`]: where copies go (raw sockets with `sendmmsg`, a pcap file, memory).
//! - [`rewrite`]: `-x` (and each `--loop` round's client ports) applied to captured
//!   segments.
//! - [`replicas`]: `-n`/`-f`/`-c`: each replica's client end, free of collisions.
//! - [`admission`]: `-r`/`--ramp`/`--max-rate`: which new sessions open.
//! - [`feed`]: the frames of the files of an offline replay, in replay order.
//! - [`no_reply`]: the warning when SYNs go out and no reply comes back (pure).
//! - [`compare`]: `--compare`: the online conversations' capture, the shards' tap and the
//!   thread that writes the comparison's records.

pub mod admission;
mod backlog;
pub mod compare;
pub mod core;
pub mod feed;
pub mod link;
pub mod no_reply;
pub mod replicas;
pub mod rewrite;
pub mod sessions;
pub mod shard;
pub mod sink;
mod slot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::addresses::{InterceptAddr, PortMapping};
use crate::capture::{
    self, BlockRing, LiveCapture, LiveOptions, PacketSource, RingLayout, RingMode, RingOptions,
};
use crate::cli::CopyArgs;
use crate::diagnosis::Topic;
use crate::diagnosis::causes::Setup;
use crate::offline_clock::ClockSettings;
use crate::progress::Progress;
use crate::session::SessionConfig;
use crate::stats::metrics::{Exposition, GaugeFamily, GaugeValues, MetricsServer};
use crate::stats::{Counter, Counters, Reporter};

pub use self::core::ShardCore;
pub use sessions::{SessionLimits, Shaping};
pub use shard::{Feed, Shard, ShardInputs, ShardStatus};

/// Counters `copy` reports.
const REPORTED: &[Counter] = &[
    Counter::Captured,
    Counter::Malformed,
    Counter::KernelDropped,
    Counter::SessionsOpened,
    Counter::SessionsMidstream,
    Counter::SessionsSkipped,
    Counter::RequestsCaptured,
    Counter::RequestsSent,
    Counter::RequestsNotSent,
    Counter::RequestsAnswered,
    Counter::RequestsUnanswered,
    Counter::SessionsClosed,
    Counter::SessionsReset,
    Counter::SessionsTimedOut,
    Counter::SessionsGivenUp,
    Counter::SessionsAborted,
    Counter::SessionsRebuilt,
    Counter::ResponsesTimedOut,
    Counter::PortsReused,
    Counter::BufferOverflows,
    Counter::BytesNotReplayed,
    Counter::HandshakesFailed,
    Counter::HandshakesAbandoned,
    Counter::HandshakesRefused,
    Counter::SessionsOverLimit,
    Counter::SessionsEvicted,
    Counter::SessionsShed,
    Counter::SessionsSampledOut,
    Counter::SessionsRateLimited,
    Counter::SessionsNoPort,
    Counter::PortsRemapped,
    Counter::PortsInUseAtTarget,
    Counter::StaleConnectionsReset,
    Counter::PortsHeldByOtherCopy,
    Counter::Sent,
    Counter::SendFailed,
    Counter::Retransmitted,
    Counter::RepliesReceived,
    Counter::RepliesUnmatched,
    Counter::Registrations,
    Counter::RegistrationsRefused,
];

/// Snap length on a device that merges received segments (GRO/LRO): whole super-segments,
/// which copy splits to the MTU.
const MERGED_SNAPLEN: usize = 65_535;
/// Room beyond the MTU for the link header (Ethernet with two VLAN tags, or Linux cooked v2).
const LINK_HEADER_ROOM: usize = 32;
/// Smallest blocks of copy's ring: five 1,500-byte packets, or dozens of ACKs and short
/// requests, handed over together (larger where a frame needs it: a jumbo MTU, GRO).
const MIN_BLOCK: usize = 8 << 10;

/// How copy captures on one device (see the capture module): its own TPACKET_V3 ring on
/// Ethernet devices, libpcap's elsewhere (and for a `-F` filter on VLAN tags, which only
/// libpcap's live filters see once the kernel has stripped them).
enum DeviceCapture {
    Ring(RingOptions),
    Pcap(LiveOptions),
}

impl DeviceCapture {
    /// The capture for `device`, sized by what it delivers: without receive offloads a
    /// packet is at most one MTU, so 8 MiB of 8 KiB blocks hold about 5,000 of them and
    /// tens of thousands of ACKs; with GRO/LRO packets may be 64 KiB, so 16 MiB of 128 KiB
    /// blocks. Bursts the ring cannot hold wait in the shard's backlog.
    fn for_device(device: &str, filter: &str, args: &CopyArgs) -> Result<DeviceCapture> {
        let shape = capture::receive_shape(device)
            .with_context(|| format!("cannot read the MTU and offloads of {device}"))?;
        if shape.merges_segments {
            log::info!(
                "{device} merges received segments (GRO/LRO): capturing whole super-segments"
            );
        }
        let (snaplen, default_mib) = if shape.merges_segments {
            (MERGED_SNAPLEN, 16)
        } else {
            (shape.mtu + LINK_HEADER_ROOM, 8)
        };
        let snaplen = args.snaplen.map_or(snaplen, usize::from);
        let buffer_mib = args.buffer_mib.unwrap_or(default_mib);
        if shape.ethernet_frames && !filter.contains("vlan") {
            return Ok(DeviceCapture::Ring(RingOptions {
                device: device.to_owned(),
                layout: RingLayout::new(usize::from(buffer_mib) << 20, MIN_BLOCK, snaplen),
                snaplen,
                fanout: None,
                both_directions: false,
            }));
        }
        Ok(DeviceCapture::Pcap(LiveOptions {
            device: device.to_owned(),
            filter: filter.to_owned(),
            buffer_bytes: crate::cli::mib_to_bytes(buffer_mib),
            snaplen: i32::try_from(snaplen).unwrap_or(i32::MAX),
            ring: if shape.merges_segments {
                RingMode::Blocks
            } else {
                RingMode::Immediate
            },
            fanout: None,
        }))
    }

    /// One capture per shard, as a fanout group when there are several.
    fn open(&self, filter: &str, shards: usize) -> Result<Vec<Box<dyn PacketSource>>> {
        match self {
            DeviceCapture::Ring(options) => capture::open_group(shards, filter, |fanout| {
                BlockRing::open_unfiltered(&RingOptions {
                    fanout,
                    ..options.clone()
                })
            }),
            DeviceCapture::Pcap(options) => capture::open_group(shards, filter, |fanout| {
                LiveCapture::open_unfiltered(&LiveOptions {
                    fanout,
                    ..options.clone()
                })
            }),
        }
    }
}

/// `tcpcopy copy`: runs until SIGINT/SIGTERM (or, offline, until the file is replayed).
pub fn run(args: &CopyArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let mappings = args.all_mappings();
    let devices = if args.offline.is_empty() {
        capture_devices(args, &mappings)?
    } else {
        Vec::new()
    };
    let recorder = compare::Recorder::start(args, &mappings, &devices, &stop)?;
    let config = PipelineConfig {
        rewriter: rewrite::Rewriter::new(mappings.clone()),
        shaping: shaping(args),
        intercepts: args.all_intercepts(),
        secret: args
            .secret
            .secret_file
            .as_deref()
            .map(crate::secret_file::load)
            .transpose()?,
        limits: SessionLimits {
            session: session_config(args),
            mtu: usize::from(args.mtu),
            max_sessions: args.max_sessions,
        },
        drain: if args.offline.is_empty() {
            Duration::ZERO
        } else {
            args.drain
        },
        // Copies written to a file get no replies.
        no_reply: args
            .output
            .is_none()
            .then(|| Setup::new(&mappings, &args.all_intercepts(), args.client_ips.as_ref()))
            .flatten(),
        compare: recorder.as_ref().map(compare::Recorder::tap),
    };
    let feeds = open_feeds(args, &mappings, &devices)?;
    let pcap_output = match &args.output {
        Some(path) => Some(sink::SharedSink::new(sink::PcapFileSink::create(path)?)),
        None => None,
    };
    let counters = Arc::new(Counters::default());
    let mut progress = None;
    let mut shards = Vec::with_capacity(feeds.len());
    for feed in feeds {
        if let Feed::Offline(files) = &feed {
            progress = Progress::start(
                files.total_bytes(),
                files.bytes_read(),
                Arc::clone(&counters),
            );
        }
        let sink: Box<dyn sink::PacketSink> = match &pcap_output {
            Some(file) => Box::new(file.clone()),
            None => Box::new(sink::RawSocketSink::open()?),
        };
        shards.push(ShardInputs { feed, sink });
    }
    let statuses: Vec<Arc<ShardStatus>> = shards.iter().map(|_| Arc::default()).collect();
    let _reporter = Reporter::start(
        "copy",
        Arc::clone(&counters),
        REPORTED,
        args.report.stats_interval,
    );
    let _metrics = match args.report.metrics {
        Some(addr) => Some(MetricsServer::start(
            addr,
            exposition(&counters, &statuses),
        )?),
        None => None,
    };
    let result = run_shards(&config, shards, &stop, &counters, &statuses);
    drop(progress);
    let compared = recorder.map_or(Ok(()), compare::Recorder::finish);
    result.and(compared)
}

/// What `copy --metrics` serves: the reported counters, and per shard the sessions tracked
/// and open, the backlog's depth and the intercepts connected.
fn exposition(counters: &Arc<Counters>, statuses: &[Arc<ShardStatus>]) -> Exposition {
    let statuses = statuses.to_vec();
    let per_shard = move |read: fn(&ShardStatus) -> &AtomicUsize| {
        let values = statuses
            .iter()
            .map(|status| read(status).load(Ordering::Relaxed))
            .collect();
        GaugeValues::PerShard(values)
    };
    let gauges = move || {
        vec![
            GaugeFamily {
                name: "sessions_tracked",
                help: "Sessions in the shard's table, counted against --max-sessions: being \
                       replayed, or closed and in TIME-WAIT.",
                values: per_shard(|status| &status.sessions_tracked),
            },
            GaugeFamily {
                name: "sessions_open",
                help: "Sessions being replayed now: the sessions tracked but those closed and \
                       in TIME-WAIT.",
                values: per_shard(|status| &status.sessions_open),
            },
            GaugeFamily {
                name: "backlog_bytes",
                help: "Captured bytes waiting in the shard's backlog (its queue between the \
                       capture ring and the sessions).",
                values: per_shard(|status| &status.backlog_bytes),
            },
            GaugeFamily {
                name: "intercepts_connected",
                help: "Intercepts the shard is connected to now.",
                values: per_shard(|status| &status.links_up),
            },
        ]
    };
    Exposition::new("copy", Arc::clone(counters), REPORTED, Box::new(gauges)).with_request_delays()
}

/// Everything the shards need besides their captures and sinks.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub rewriter: rewrite::Rewriter,
    pub shaping: Shaping,
    pub intercepts: Vec<InterceptAddr>,
    /// What every link proves to its intercept (`--secret-file`).
    pub secret: Option<crate::proto::Secret>,
    pub limits: SessionLimits,
    /// Offline, once the files are replayed: how long to keep running so sessions finish.
    pub drain: Duration,
    /// The deployment to name the likely causes for when SYNs go unanswered; `None` when
    /// no reply is expected.
    pub no_reply: Option<Setup>,
    /// `--compare`: the tap every shard's sessions tell the target side to.
    pub compare: Option<compare::ChannelTap>,
}

/// Runs one shard per entry of `shards` until `stop` is set or (offline) the files are
/// replayed and the drain has passed; a shard that fails stops the others. Each shard shows
/// what it does in its entry of `statuses` (one per shard).
pub fn run_shards(
    config: &PipelineConfig,
    shards: Vec<ShardInputs>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
    statuses: &[Arc<ShardStatus>],
) -> Result<()> {
    anyhow::ensure!(
        statuses.len() == shards.len(),
        "{} shard statuses for {} shards",
        statuses.len(),
        shards.len()
    );
    let now = Instant::now();
    let mut running = Vec::with_capacity(shards.len());
    for ((index, inputs), status) in shards.into_iter().enumerate().zip(statuses) {
        let status = Arc::clone(status);
        let links = config
            .intercepts
            .iter()
            .map(|addr| {
                let secret = config.secret.clone();
                link::Link::new(addr.clone(), index, now, Arc::clone(stop), secret)
            })
            .collect();
        let mut core = ShardCore::new(
            config.rewriter.clone(),
            config.limits.clone(),
            &config.shaping,
            now,
        );
        if let Some(tap) = &config.compare {
            core.sessions().set_tap(Box::new(tap.clone()));
        }
        let shard = Shard::new(index, core, inputs, links, Arc::clone(counters), status)?;
        let (stop, drain) = (Arc::clone(stop), config.drain);
        let name = format!("shard-{index}");
        running.push(
            thread::Builder::new()
                .name(name.clone())
                .spawn(move || shard.run(&stop, drain))
                .with_context(|| format!("cannot start thread {name}"))?,
        );
    }
    let mut warn_no_intercept = WarnNoIntercept::new(now);
    let mut no_reply = config.no_reply.clone().map(no_reply::NoReplyWatch::new);
    let mut result = Ok(());
    // Whichever shard ends first, with an error, stops the others.
    while !running.is_empty() {
        let Some(done) = running.iter().position(|shard| shard.is_finished()) else {
            let connected = any_connected(statuses);
            warn_no_intercept.check(connected);
            let seen = no_reply::Seen {
                sessions_opened: counters.get(Counter::SessionsOpened),
                replies_received: counters.get(Counter::RepliesReceived),
                connected,
            };
            if let Some(message) = no_reply
                .as_mut()
                .and_then(|watch| watch.observe(Instant::now(), seen))
            {
                log::warn!("{message}");
            }
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        let outcome = running
            .swap_remove(done)
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a shard panicked")));
        if let Err(err) = outcome {
            stop.store(true, Ordering::Relaxed);
            result = result.and(Err(err));
        }
    }
    result
}

fn session_config(args: &CopyArgs) -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        mss: args.tuning.mss,
        response_end_rtt: args.tuning.rtt,
        idle_timeout: args.tuning.idle_timeout(),
        only_full_sessions: args.only_full_sessions,
        wait_for_response: !args.no_wait,
        ..SessionConfig::default()
    })
}

/// `-n`, `-f`, `-c`, `-r`, `--ramp` and `--max-rate`, for every shard.
fn shaping(args: &CopyArgs) -> Shaping {
    let flags = &args.shaping;
    if let Some(connections) = args.connections {
        log::info!(
            "-C {connections} is TCPCopy's: copy opens one connection to each intercept per shard"
        );
    }
    Shaping {
        replicas: replicas::ReplicaPlan::new(
            flags.copies,
            flags.port_shift,
            args.client_ips.clone(),
        ),
        ports: Arc::default(),
        admission: admission::AdmissionRules {
            sample_percent: flags.sample_percent,
            ramp: flags.ramp(),
            max_rate: flags.max_rate,
        },
        shards: shard_count(args),
    }
}

/// Shards copy runs: `--workers`, or one for a file.
fn shard_count(args: &CopyArgs) -> usize {
    if !args.offline.is_empty() {
        1
    } else {
        usize::from(args.workers.max(1))
    }
}

/// The feed of each shard: the captures of every `-i` device, or offline the files (one
/// shard). With several shards, the captures of one device form a fanout group, and no
/// capture lets packets in before every member has joined.
/// The devices copy captures on live: `-i`, or every device that is up and holds an address.
fn capture_devices(args: &CopyArgs, mappings: &[PortMapping]) -> Result<Vec<String>> {
    if !args.interfaces.is_empty() {
        return Ok(args.interfaces.clone());
    }
    let devices = capture::default_devices(mappings)?;
    log::info!("no -i given: capturing on {}", devices.join(", "));
    Ok(devices)
}

fn open_feeds(args: &CopyArgs, mappings: &[PortMapping], devices: &[String]) -> Result<Vec<Feed>> {
    if !args.offline.is_empty() {
        let feed = feed::OfflineFeed::open(feed::FeedSettings {
            paths: args.offline.clone(),
            filter: args.filter.clone(),
            rounds: args.rounds(),
            clock: ClockSettings {
                speed: args.speed(),
                max_gap: args.max_gap,
            },
        })?;
        log::info!(
            "replaying {} file(s) of {} bytes, {} round(s), at speed {}{}",
            args.offline.len(),
            feed.total_bytes() / u64::from(args.rounds()),
            args.rounds(),
            args.speed(),
            args.max_gap.map_or(String::new(), |gap| format!(
                ", silences cut to {}",
                humantime::format_duration(gap)
            ))
        );
        return Ok(vec![Feed::Offline(Box::new(feed))]);
    }
    let shards = shard_count(args);
    let mut shard_captures: Vec<Vec<Box<dyn PacketSource>>> =
        (0..shards).map(|_| Vec::new()).collect();
    for device in devices {
        let filter = match &args.filter {
            Some(filter) => filter.clone(),
            None => capture::build_filter(
                mappings,
                &capture::own_addresses(device)?,
                args.client_ips.as_ref(),
            )
            .with_context(|| format!("cannot build the capture filter for {device}"))?,
        };
        let captures = DeviceCapture::for_device(device, &filter, args)?.open(&filter, shards)?;
        log::info!("capturing on {device} with {shards} shard(s), filter: {filter}");
        for (shard, capture) in captures.into_iter().enumerate() {
            shard_captures[shard].push(capture);
        }
    }
    Ok(shard_captures.into_iter().map(Feed::Live).collect())
}

/// Says clearly, and again every 30 s, when no intercept is connected to any shard:
/// without one no session gets past its handshake.
struct WarnNoIntercept {
    since: Instant,
    last: Option<Instant>,
}

impl WarnNoIntercept {
    const GRACE: Duration = Duration::from_secs(3);
    const REPEAT: Duration = Duration::from_secs(30);

    fn new(now: Instant) -> Self {
        WarnNoIntercept {
            since: now,
            last: None,
        }
    }

    fn check(&mut self, connected: bool) {
        let now = Instant::now();
        if connected || now - self.since < Self::GRACE {
            return;
        }
        if self.last.is_none_or(|at| now - at >= Self::REPEAT) {
            log::warn!(
                "no intercept is connected: the target's replies cannot reach copy, so replayed sessions stall after the SYN ({})",
                Topic::NoIntercept.see()
            );
            self.last = Some(now);
        }
    }
}

/// Whether any shard is connected to an intercept now.
fn any_connected(shards: &[Arc<ShardStatus>]) -> bool {
    shards
        .iter()
        .any(|status| status.links_up.load(Ordering::Relaxed) > 0)
}
