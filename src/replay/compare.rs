//! `copy --compare FILE`: the comparison's edge. One more thread, `compare`, captures both
//! directions of the copied conversations on the online host (the client's requests and
//! the online server's replies, with the kernel's timestamps; in a ring of its own on
//! Ethernet devices, like the shards, so it wakes about once a millisecond, not once a
//! packet), takes the shards'
//! [`TargetEvent`]s from a channel, runs the [`Comparator`] and writes its records to FILE.
//!
//! The shards only call their [`ChannelTap`] (see `sessions`): a send on a bounded channel
//! per data segment, SYN, FIN or RST sent to or heard from the target. A full channel drops
//! the event and counts it. Without `--compare` none of this exists: no capture, no thread,
//! no tap.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use crate::addresses::PortMapping;
use crate::capture::Unfiltered;
use crate::capture::{
    self, BlockRing, LiveCapture, LiveOptions, Next, PacketSource, RingLayout, RingMode,
    RingOptions, build_conversation_filter,
};
use crate::cli::CopyArgs;
use crate::compare::side::Piece;
use crate::compare::tap::TargetEvent;
use crate::compare::{Comparator, ComparatorLimits, TargetTap};
use crate::packet::{self, Flow, LinkType, Segment};
use crate::poll::{poll, pollfd};

use super::rewrite::Rewriter;

/// Target events waiting for the compare thread at most.
const CHANNEL_EVENTS: usize = 1 << 16;
/// Reply and request bytes the comparison keeps (heads and framing) at least.
const KEEP_BYTES: usize = 2048;
/// Room in the snap length for the link, IP and TCP headers.
const HEADER_ROOM: usize = 32 + 60 + 60;
/// Kernel buffer of each compare capture.
const CAPTURE_BUFFER: usize = 8 << 20;
/// How long the compare thread waits for a frame before it looks at its channel.
const WAIT: Duration = Duration::from_millis(10);
/// How often quiet exchanges are ended and the records written out.
const SWEEP_EVERY: u64 = 100_000;
/// Frames taken from one capture before the channel is looked at again.
const FRAMES_PER_TURN: usize = 4096;

/// Microseconds since the Unix epoch, now.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// A shard's [`TargetTap`]: each call becomes a [`TargetEvent`] on the compare thread's
/// channel.
#[derive(Debug, Clone)]
pub struct ChannelTap {
    events: Sender<TargetEvent>,
    dropped: Arc<AtomicU64>,
}

impl ChannelTap {
    fn send(&self, event: TargetEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether a segment tells a comparison anything: data, or a change of the connection
/// (pure ACKs do not).
fn worth_telling(segment: &Segment) -> bool {
    segment.payload_len > 0 || segment.flags.syn() || segment.flags.fin() || segment.flags.rst()
}

impl TargetTap for ChannelTap {
    fn opened(&mut self, captured: Flow, replayed: Flow) {
        self.send(TargetEvent::Opened { captured, replayed });
    }

    fn sent(&mut self, segment: &Segment) {
        if worth_telling(segment) {
            self.send(TargetEvent::Sent {
                at_us: now_us(),
                replayed: Flow::of_request(segment),
                seq: segment.seq,
                flags: segment.flags,
                len: segment.payload_len as u32,
            });
        }
    }

    fn replied(&mut self, segment: &Segment, prefix: &[u8], stamped_us: Option<u64>) {
        if worth_telling(segment) {
            self.send(TargetEvent::Replied {
                received_us: now_us(),
                stamped_us,
                replayed: Flow::of_reply(segment),
                seq: segment.seq,
                flags: segment.flags,
                len: segment.payload_len as u32,
                prefix: prefix.to_vec(),
            });
        }
    }

    fn ended(&mut self, replayed: Flow) {
        self.send(TargetEvent::Ended { replayed });
    }
}

/// The running comparison: its thread and the tap the shards get.
pub struct Recorder {
    tap: ChannelTap,
    done: Arc<AtomicBool>,
    thread: JoinHandle<Result<()>>,
}

impl Recorder {
    /// Opens the compare captures on `devices` and FILE, and starts the compare thread.
    /// A failure in it (FILE cannot be written) sets `stop`, so copy stops too.
    pub fn start(
        args: &CopyArgs,
        mappings: &[PortMapping],
        devices: &[String],
        stop: &Arc<AtomicBool>,
    ) -> Result<Option<Recorder>> {
        let Some(path) = args.compare.file.clone() else {
            return Ok(None);
        };
        let head_max = args.compare.head_bytes();
        let keep = KEEP_BYTES.max(head_max);
        let mut captures = Vec::with_capacity(devices.len());
        for device in devices {
            let own = capture::own_addresses(device)?;
            let filter = build_conversation_filter(mappings, &own, args.client_ips.as_ref())
                .with_context(|| format!("cannot build the --compare filter for {device}"))?;
            let capture = open_conversation_capture(device, &filter, keep + HEADER_ROOM)?;
            let dlt = capture.datalink();
            let link = LinkType::from_dlt(dlt)
                .with_context(|| format!("{device}: unsupported link type {dlt}"))?;
            log::info!(
                "--compare: capturing the online conversations on {device}, filter: {filter}"
            );
            captures.push((capture, link));
        }
        let file = File::create(&path)
            .with_context(|| format!("cannot create --compare {}", path.display()))?;
        let (events, received) = crossbeam_channel::bounded(CHANNEL_EVENTS);
        let tap = ChannelTap {
            events,
            dropped: Arc::default(),
        };
        let done = Arc::new(AtomicBool::new(false));
        let limits = ComparatorLimits {
            keep,
            head_max,
            ..ComparatorLimits::default()
        };
        let worker = Worker {
            captures,
            events: received,
            comparator: Comparator::new(args.compare.protocol, limits),
            rewriter: Rewriter::new(mappings.to_vec()),
            out: BufWriter::new(file),
            path,
            unreadable: 0,
            dropped: Arc::clone(&tap.dropped),
        };
        let (thread_done, thread_stop) = (Arc::clone(&done), Arc::clone(stop));
        let thread = thread::Builder::new()
            .name("compare".to_owned())
            .spawn(move || {
                let result = worker.run(&thread_done);
                if let Err(err) = &result {
                    log::error!("--compare stopped: {err:#}");
                    thread_stop.store(true, Ordering::Relaxed);
                }
                result
            })
            .context("cannot start the compare thread")?;
        Ok(Some(Recorder { tap, done, thread }))
    }

    /// The tap for one shard.
    pub fn tap(&self) -> ChannelTap {
        self.tap.clone()
    }

    /// Once the shards have stopped: writes what is left and says what was written.
    pub fn finish(self) -> Result<()> {
        self.done.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the compare thread panicked")))
    }
}

/// Both directions of `device`'s packets that `filter` accepts, `snaplen` bytes of each: in
/// a ring of the compare thread's own on Ethernet devices, through libpcap elsewhere.
fn open_conversation_capture(
    device: &str,
    filter: &str,
    snaplen: usize,
) -> Result<Box<dyn PacketSource>> {
    let shape = capture::receive_shape(device)
        .with_context(|| format!("cannot read the MTU and offloads of {device}"))?;
    if shape.ethernet_frames {
        let mut ring = BlockRing::open_unfiltered(&RingOptions {
            device: device.to_owned(),
            layout: RingLayout::new(CAPTURE_BUFFER, super::MIN_BLOCK, snaplen),
            snaplen,
            fanout: None,
            both_directions: true,
        })?;
        ring.apply_filter(filter)?;
        return Ok(Box::new(ring));
    }
    let mut capture = LiveCapture::open_unfiltered(&LiveOptions {
        device: device.to_owned(),
        filter: filter.to_owned(),
        buffer_bytes: i32::try_from(CAPTURE_BUFFER).unwrap_or(i32::MAX),
        snaplen: i32::try_from(snaplen).unwrap_or(i32::MAX),
        ring: RingMode::Immediate,
        fanout: None,
    })?;
    capture.capture_both_directions()?;
    capture.apply_filter(filter)?;
    Ok(Box::new(capture))
}

/// What the compare thread owns.
struct Worker {
    captures: Vec<(Box<dyn PacketSource>, LinkType)>,
    events: Receiver<TargetEvent>,
    comparator: Comparator,
    rewriter: Rewriter,
    out: BufWriter<File>,
    path: PathBuf,
    /// Frames that are not TCP over IP with whole headers.
    unreadable: u64,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self, done: &AtomicBool) -> Result<()> {
        let mut pollfds = Vec::with_capacity(self.captures.len());
        let mut next_sweep = now_us() + SWEEP_EVERY;
        loop {
            let finishing = done.load(Ordering::Relaxed);
            pollfds.clear();
            pollfds.extend(
                self.captures
                    .iter()
                    .filter_map(|(capture, _)| capture.poll_fd())
                    .map(|fd| pollfd(fd, libc::POLLIN)),
            );
            let wait = if finishing { Duration::ZERO } else { WAIT };
            poll(&mut pollfds, wait).context("poll on the --compare captures")?;
            self.read_captures()?;
            // Once the shards are done, the channel holds everything they told.
            while let Ok(event) = self.events.try_recv() {
                self.comparator.target(event);
            }
            let now = now_us();
            if finishing {
                self.comparator.finish_all();
                self.write_out()?;
                self.log_summary();
                return Ok(());
            }
            if now >= next_sweep {
                self.comparator.sweep(now);
                self.write_out()?;
                next_sweep = now + SWEEP_EVERY;
            }
        }
    }

    /// Hands what the captures hold to the comparator.
    fn read_captures(&mut self) -> Result<()> {
        for (capture, link) in &mut self.captures {
            for _ in 0..FRAMES_PER_TURN {
                let frame = match capture.next_frame()? {
                    Next::Frame(frame) => frame,
                    Next::Idle => break,
                };
                let Ok((segment, payload)) = packet::parse_frame_prefix(*link, frame.data) else {
                    self.unreadable += 1;
                    continue;
                };
                let piece = Piece {
                    at_us: u64::try_from(frame.timestamp.as_micros()).unwrap_or(u64::MAX),
                    seq: segment.seq,
                    flags: segment.flags,
                    len: segment.payload_len as u32,
                    known: payload,
                };
                if let Some(mapping) = self.rewriter.mapping_for(segment.dst) {
                    let key = Flow {
                        client: segment.src,
                        target: mapping.target,
                    };
                    self.comparator.online(key, segment.dst, true, piece);
                } else if let Some(mapping) = self.rewriter.mapping_for(segment.src) {
                    let key = Flow {
                        client: segment.dst,
                        target: mapping.target,
                    };
                    self.comparator.online(key, segment.src, false, piece);
                }
            }
        }
        Ok(())
    }

    /// Writes the records decided since the last call, and logs the comparator's news.
    fn write_out(&mut self) -> Result<()> {
        for note in self.comparator.take_notes() {
            log::info!("--compare: {note}");
        }
        let path = &self.path;
        for record in self.comparator.take_records() {
            serde_json::to_writer(&mut self.out, &record)
                .map_err(std::io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"))
                .with_context(|| format!("cannot write --compare {}", path.display()))?;
        }
        self.out
            .flush()
            .with_context(|| format!("cannot write --compare {}", path.display()))
    }

    fn log_summary(&mut self) {
        let tally = self.comparator.tally();
        log::info!(
            "--compare: {} records written to {} ({} matched, {} with differing outcomes; \
             `tcpcopy stats compare {}` reports them)",
            tally.records,
            self.path.display(),
            tally.matched,
            tally.differing,
            self.path.display()
        );
        let dropped_kernel: u64 = self
            .captures
            .iter_mut()
            .map(|(capture, _)| capture.stats().dropped)
            .sum();
        let dropped = self.dropped.load(Ordering::Relaxed);
        let losses = [
            (
                dropped_kernel,
                "online packets the kernel dropped from the compare capture",
            ),
            (
                dropped,
                "target events the compare thread could not take in time",
            ),
            (self.unreadable, "captured frames that are not TCP/IP"),
            (
                tally.sessions_over_limit,
                "sessions beyond the comparison's limit, not compared",
            ),
        ];
        for (count, what) in losses {
            if count > 0 {
                log::warn!("--compare: {count} {what}: their requests may be unmatched or missing");
            }
        }
        log::info!(
            "--compare: {} sessions not replayed (sampled out, shed or over a limit) were not \
             compared; {} server bytes answered no request (greetings, late bytes)",
            tally.sessions_not_replayed,
            tally.stray_bytes
        );
    }
}
