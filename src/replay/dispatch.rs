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
use crate::capture::{Next, PacketSource};
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

/// Routes inputs to workers by flow, counting what could not be queued.
#[derive(Clone)]
pub struct Dispatcher {
    workers: Vec<Sender<WorkerInput>>,
    pool: BufferPool,
}

impl Dispatcher {
    pub fn new(workers: Vec<Sender<WorkerInput>>, pool: BufferPool) -> Dispatcher {
        Dispatcher { workers, pool }
    }

    /// Queues `input` for the worker owning `client`; false when that queue is full.
    pub fn dispatch(&self, client: SocketAddr, input: WorkerInput) -> bool {
        let worker = &self.workers[shard_of(client, self.workers.len())];
        match worker.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(WorkerInput::Client { payload, .. })) => {
                self.pool.give(payload);
                false
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => true,
        }
    }

    /// A buffer for a captured payload; the worker gives it back.
    pub fn payload_buffer(&self, payload: &[u8]) -> Vec<u8> {
        let mut buffer = self.pool.take();
        buffer.extend_from_slice(payload);
        buffer
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
    let mut clock = PaceClock::default();
    let mut malformed_logged = false;
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame()? {
            Next::Frame(frame) => frame,
            Next::Idle => {
                counters.flush_into(shared);
                continue;
            }
            Next::End => break,
        };
        counters.bump(Counter::Captured);
        if pace == Pace::Recorded {
            clock.wait_for(frame.timestamp);
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
            payload: dispatcher.payload_buffer(parsed.payload),
        };
        if !dispatcher.dispatch(client, input) {
            counters.bump(Counter::QueueFull);
        }
        if counters.should_flush() {
            counters.flush_into(shared);
            shared.set(Counter::KernelDropped, source.stats().dropped);
        }
    }
    counters.flush_into(shared);
    shared.set(Counter::KernelDropped, source.stats().dropped);
    Ok(())
}

/// Sleeps so frames leave at the offsets their capture timestamps had.
#[derive(Default)]
struct PaceClock {
    start: Option<(Instant, Duration)>,
}

impl PaceClock {
    fn wait_for(&mut self, timestamp: Duration) {
        let (started, first) = *self.start.get_or_insert((Instant::now(), timestamp));
        let due = started + timestamp.saturating_sub(first);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
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
