//! The capture thread's loop: read frames, parse them once, rewrite them, and hand each to
//! the worker that owns its flow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};

use super::pool::BufferPool;
use super::rewrite::Rewriter;
use super::worker::WorkerInput;
use crate::capture::{Next, POLL_INTERVAL, PacketSource};
use crate::packet::{self, LinkType};
use crate::stats::{Counter, Counters, LocalCounters};

/// The worker that owns flows of `client` (the copy's client address and port).
///
/// Captured segments and intercept replies both route through here, so a flow's events always
/// reach the same worker.
pub fn shard_of(client: SocketAddr, shards: usize) -> usize {
    // FNV-1a over address and port: cheap, stable, and spreads sequential ports evenly.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match client.ip() {
        std::net::IpAddr::V4(ip) => mix(&ip.octets()),
        std::net::IpAddr::V6(ip) => mix(&ip.octets()),
    }
    mix(&client.port().to_be_bytes());
    (hash % shards.max(1) as u64) as usize
}

/// What travels to a worker in one channel message: inputs of its flows, in arrival order.
/// Batching keeps thread wake-ups (the main cost of the pipeline) well below one per packet
/// under load, while a lone packet still goes at once.
pub type InputBatch = Vec<WorkerInput>;

/// Inputs a batch carries at most.
pub const MAX_BATCH: usize = 64;

/// The workers' queues, shared by every thread that feeds them.
#[derive(Clone)]
pub struct Dispatcher {
    workers: Vec<Sender<InputBatch>>,
    pool: BufferPool,
}

impl Dispatcher {
    pub fn new(workers: Vec<Sender<InputBatch>>, pool: BufferPool) -> Dispatcher {
        Dispatcher { workers, pool }
    }

    /// A batcher for one feeding thread.
    pub fn batcher(&self) -> Batcher {
        Batcher {
            pending: self.workers.iter().map(|_| Vec::new()).collect(),
            dispatcher: self.clone(),
        }
    }

    /// A buffer for a captured payload; the worker gives it back.
    fn payload_buffer(&self, payload: &[u8]) -> Vec<u8> {
        let mut buffer = self.pool.take();
        buffer.extend_from_slice(payload);
        buffer
    }

    /// Queues `batch` for `worker`; returns how many inputs were lost to a full queue.
    fn send(&self, worker: usize, batch: InputBatch) -> usize {
        match self.workers[worker].try_send(batch) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => 0,
            Err(TrySendError::Full(lost)) => {
                let count = lost.len();
                for input in lost {
                    if let WorkerInput::Client { payload, .. } = input {
                        self.pool.give(payload);
                    }
                }
                count
            }
        }
    }
}

/// One thread's pending inputs, a batch per worker.
pub struct Batcher {
    dispatcher: Dispatcher,
    pending: Vec<InputBatch>,
}

impl Batcher {
    /// Adds `input` for the worker owning `client`, sending that worker's batch once full.
    /// Returns how many inputs were lost to a full queue.
    pub fn push(&mut self, client: SocketAddr, input: WorkerInput) -> usize {
        let worker = shard_of(client, self.pending.len());
        self.pending[worker].push(input);
        if self.pending[worker].len() < MAX_BATCH {
            return 0;
        }
        let batch = std::mem::replace(&mut self.pending[worker], Vec::with_capacity(MAX_BATCH));
        self.dispatcher.send(worker, batch)
    }

    /// Sends every pending batch; call whenever the feeding thread is about to wait.
    /// Returns how many inputs were lost to full queues.
    pub fn flush(&mut self) -> usize {
        let mut lost = 0;
        for worker in 0..self.pending.len() {
            if !self.pending[worker].is_empty() {
                let batch = std::mem::take(&mut self.pending[worker]);
                lost += self.dispatcher.send(worker, batch);
            }
        }
        lost
    }

    /// A buffer for a captured payload; the worker gives it back.
    pub fn payload_buffer(&self, payload: &[u8]) -> Vec<u8> {
        self.dispatcher.payload_buffer(payload)
    }
}

/// Whether to replay a file at the pace its timestamps say, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    AsFastAsPossible,
    Recorded,
}

/// Reads `source` until it ends or `stop` is set.
pub fn run(
    mut source: Box<dyn PacketSource>,
    rewriter: &Rewriter,
    dispatcher: &Dispatcher,
    pace: Pace,
    stop: &AtomicBool,
    shared: &Arc<Counters>,
) -> Result<()> {
    let dlt = source.datalink();
    let link = LinkType::from_dlt(dlt)
        .with_context(|| format!("{}: unsupported link type {dlt}", source.name()))?;
    let mut counters = LocalCounters::default();
    let mut batcher = dispatcher.batcher();
    let mut clock = PaceClock::default();
    let mut malformed_logged = false;
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame()? {
            Next::Frame(frame) => frame,
            Next::Idle => {
                counters.add(Counter::QueueFull, batcher.flush() as u64);
                counters.flush_into(shared);
                source.wait(POLL_INTERVAL)?;
                continue;
            }
            Next::End => break,
        };
        counters.bump(Counter::Captured);
        if pace == Pace::Recorded
            && let Some(delay) = clock.delay_for(frame.timestamp)
        {
            counters.add(Counter::QueueFull, batcher.flush() as u64);
            std::thread::sleep(delay);
        }
        let parsed = match packet::parse_frame(link, frame.data) {
            Ok(parsed) => parsed,
            Err(err) => {
                counters.bump(Counter::Malformed);
                if !malformed_logged {
                    log::warn!(
                        "skipping a malformed packet ({err}); further ones are only counted"
                    );
                    malformed_logged = true;
                }
                continue;
            }
        };
        let mut segment = parsed.segment;
        if !rewriter.rewrite(&mut segment) {
            counters.bump(Counter::Unmapped);
            continue;
        }
        let client = segment.src;
        let input = WorkerInput::Client {
            segment,
            payload: batcher.payload_buffer(parsed.payload),
        };
        counters.add(Counter::QueueFull, batcher.push(client, input) as u64);
        if counters.should_flush() {
            counters.flush_into(shared);
            shared.set(Counter::KernelDropped, source.stats().dropped);
        }
    }
    counters.add(Counter::QueueFull, batcher.flush() as u64);
    counters.flush_into(shared);
    shared.set(Counter::KernelDropped, source.stats().dropped);
    Ok(())
}

/// Spaces frames out at the offsets their capture timestamps had.
#[derive(Default)]
struct PaceClock {
    start: Option<(Instant, Duration)>,
}

impl PaceClock {
    /// How long to wait before the frame captured at `timestamp` is due, if at all.
    fn delay_for(&mut self, timestamp: Duration) -> Option<Duration> {
        let (started, first) = *self.start.get_or_insert((Instant::now(), timestamp));
        let due = started + timestamp.saturating_sub(first);
        due.checked_duration_since(Instant::now())
            .filter(|delay| !delay.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        let client: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        assert_eq!(shard_of(client, 4), shard_of(client, 4));
        assert_eq!(shard_of(client, 1), 0);
        assert_eq!(shard_of(client, 0), 0);
        let mut seen = [0usize; 4];
        for port in 40000..40400 {
            seen[shard_of(SocketAddr::new(client.ip(), port), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven spread {seen:?}");
    }
}
