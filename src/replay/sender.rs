//! The sender thread: takes finished IP packets from the workers and hands them to the sink.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::pool::BufferPool;
use super::sink::PacketSink;
use crate::stats::{Counter, Counters, LocalCounters};

/// One complete IP packet for the target.
#[derive(Debug)]
pub struct Outgoing {
    pub dst: IpAddr,
    pub bytes: Vec<u8>,
}

/// What a worker hands the sender in one channel message.
#[derive(Debug)]
pub struct OutgoingBatch {
    /// When the worker queued it: the sender measures its lag with it.
    pub queued_at: Instant,
    pub packets: Vec<Outgoing>,
}

/// How far behind the sender is: how long the last batch it took had waited in its queue.
/// Workers read it to shed new sessions while copy is overloaded.
#[derive(Debug, Default, Clone)]
pub struct SendLag(Arc<AtomicU64>);

impl SendLag {
    pub(super) fn record(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// How often a persistent send error is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Sends everything from `batches` until the channel closes, keeping `lag` up to date.
pub fn run(
    mut sink: Box<dyn PacketSink>,
    batches: Receiver<OutgoingBatch>,
    lag: SendLag,
    pool: BufferPool,
    shared: Arc<Counters>,
) {
    let mut counters = LocalCounters::default();
    let mut last_error_log: Option<Instant> = None;
    for batch in batches.iter() {
        lag.record(batch.queued_at.elapsed());
        for packet in batch.packets {
            send(
                &mut *sink,
                packet,
                &pool,
                &mut counters,
                &mut last_error_log,
            );
        }
        if counters.should_flush() || batches.is_empty() {
            counters.flush_into(&shared);
        }
    }
    counters.flush_into(&shared);
}

/// Sends one packet, counting and (rate-limited) logging failures, and recycles its buffer.
fn send(
    sink: &mut dyn PacketSink,
    packet: Outgoing,
    pool: &BufferPool,
    counters: &mut LocalCounters,
    last_error_log: &mut Option<Instant>,
) {
    match sink.send(packet.dst, &packet.bytes) {
        Ok(()) => counters.bump(Counter::Sent),
        Err(err) => {
            counters.bump(Counter::SendFailed);
            let now = Instant::now();
            if last_error_log.is_none_or(|at| now - at >= ERROR_LOG_INTERVAL) {
                log::warn!(
                    "sending a {}-byte copy to {} failed: {err} (logged at most every {}s)",
                    packet.bytes.len(),
                    packet.dst,
                    ERROR_LOG_INTERVAL.as_secs()
                );
                *last_error_log = Some(now);
            }
        }
    }
    pool.give(packet.bytes);
}
