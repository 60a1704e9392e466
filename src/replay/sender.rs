//! The sender thread: takes finished IP packets from the workers and hands them to the sink.

use std::net::IpAddr;
use std::sync::Arc;
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
pub type OutgoingBatch = Vec<Outgoing>;

/// How often a persistent send error is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Sends everything from `packets` until the channel closes.
pub fn run(
    mut sink: Box<dyn PacketSink>,
    packets: Receiver<OutgoingBatch>,
    pool: BufferPool,
    shared: Arc<Counters>,
) {
    let mut counters = LocalCounters::default();
    let mut last_error_log: Option<Instant> = None;
    for packet in packets.iter().flatten() {
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
                    last_error_log = Some(now);
                }
            }
        }
        pool.give(packet.bytes);
        if counters.should_flush() || packets.is_empty() {
            counters.flush_into(&shared);
        }
    }
    counters.flush_into(&shared);
}
