//! A replay worker: owns the sessions of the flows hashed to it, their timers, and turns
//! what the session engine transmits into IP packets for the sender.
//!
//! A flow lives on exactly one worker, so session state needs no lock. The worker is the
//! engine's clock: it reads `Instant::now()` and hands it in.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::packet::{self, Flow, Segment};
use crate::session::{Event, Output, Session, SessionConfig};
use crate::stats::{Counter, Counters, LocalCounters};

use super::dispatch::{InputBatch, MAX_BATCH};
use super::pool::BufferPool;
use super::registrar::Registrar;
use super::sender::{Outgoing, OutgoingBatch, SendLag};

/// Sender lag beyond which new sessions are shed: under the sessions' 250 ms initial
/// retransmission timeout, so the handshakes of sessions already started still complete,
/// and well above the stalls a busy host shows without being overloaded.
const SHED_LAG: Duration = Duration::from_millis(200);

/// What reaches a worker.
#[derive(Debug)]
pub enum WorkerInput {
    /// A rewritten client segment (src = copy's client address, dst = target) and its payload.
    Client { segment: Segment, payload: Vec<u8> },
    /// The headers of a target reply, from an intercept.
    Reply { segment: Segment },
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub session: Arc<SessionConfig>,
    /// Largest IP packet to emit.
    pub mtu: usize,
    /// Sessions a worker keeps at once; new flows beyond are counted and skipped.
    pub max_sessions: usize,
}

struct Tracked {
    session: Session,
    /// The deadline already queued in the timer heap, if any.
    scheduled: Option<Instant>,
}

/// One worker thread's state.
pub struct Worker {
    config: WorkerConfig,
    sessions: HashMap<Flow, Tracked>,
    timers: BinaryHeap<Reverse<(Instant, Flow)>>,
    emitter: Emitter,
}

/// The engine's [`Output`]: emits packets, counts events, registers new flows.
struct Emitter {
    mtu: usize,
    packets: Sender<OutgoingBatch>,
    /// Packets emitted since the last flush to the sender.
    outgoing: Vec<Outgoing>,
    /// How far behind the sender is.
    lag: SendLag,
    registrar: Arc<Registrar>,
    counters: LocalCounters,
    shared: Arc<Counters>,
    pool: BufferPool,
}

impl Emitter {
    /// The sender is far behind. New sessions would only deepen the backlog until the open
    /// ones' timers fire and they retransmit into it, so none start until it drains (load
    /// shedding; the open sessions carry on).
    fn overloaded(&self) -> bool {
        self.lag.get() > SHED_LAG
    }

    /// Hands the packets emitted so far to the sender in one message.
    fn flush(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let batch = OutgoingBatch {
            queued_at: Instant::now(),
            packets: std::mem::replace(&mut self.outgoing, Vec::with_capacity(MAX_BATCH)),
        };
        match self.packets.try_send(batch) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(lost)) => {
                self.counters
                    .add(Counter::QueueFull, lost.packets.len() as u64);
                for packet in lost.packets {
                    self.pool.give(packet.bytes);
                }
            }
        }
    }
}

impl Output for Emitter {
    fn transmit(&mut self, segment: &Segment, payload: &[u8]) {
        if segment.flags.syn() && !segment.flags.ack() {
            self.registrar.register(Flow::of_request(segment));
            self.counters.bump(Counter::Registrations);
        }
        let max_payload = packet::max_payload_for_mtu(self.mtu, segment);
        if payload.len() > max_payload {
            self.counters.bump(Counter::Split);
        }
        for (piece, bytes) in packet::split(segment, payload, max_payload) {
            let mut buffer = self.pool.take();
            if let Err(err) = packet::emit_ip(&piece, bytes, &mut buffer) {
                log::warn!("cannot build a copy of {piece}: {err}");
                self.counters.bump(Counter::SendFailed);
                self.pool.give(buffer);
                continue;
            }
            self.outgoing.push(Outgoing {
                dst: piece.dst.ip(),
                bytes: buffer,
            });
        }
    }

    fn event(&mut self, event: Event) {
        count_event(event, &mut self.counters);
        log::trace!("session event {event:?}");
    }
}

/// Feeds a session event into the counters. Events not named here (established, a target
/// FIN, window probes, out-of-order client data, ...) are normal TCP life and only traced.
fn count_event(event: Event, counters: &mut LocalCounters) {
    match event {
        Event::Opened { syn_seen } => {
            counters.bump(Counter::SessionsOpened);
            if !syn_seen {
                counters.bump(Counter::SessionsMidstream);
            }
        }
        Event::RequestSent => counters.bump(Counter::RequestsSent),
        Event::Closed => counters.bump(Counter::SessionsClosed),
        Event::ResetByTarget => counters.bump(Counter::SessionsReset),
        Event::HandshakeTimeout => counters.bump(Counter::HandshakesFailed),
        Event::HandshakeRefused => counters.bump(Counter::HandshakesRefused),
        Event::IdleTimeout => counters.bump(Counter::SessionsTimedOut),
        Event::Retransmitted | Event::FastRetransmit => counters.bump(Counter::Retransmitted),
        Event::RetransmitLimit | Event::RebuildLimit => counters.bump(Counter::SessionsGivenUp),
        Event::SessionRebuilt => counters.bump(Counter::SessionsRebuilt),
        Event::ResponseTimeout => counters.bump(Counter::ResponsesTimedOut),
        Event::PortReused => counters.bump(Counter::PortsReused),
        Event::NotFullSessionSkipped => counters.bump(Counter::SessionsSkipped),
        Event::BufferOverflow { .. } => counters.bump(Counter::BufferOverflows),
        Event::UnsentDataDiscarded { bytes } | Event::LateClientDataDropped { bytes } => {
            counters.add(Counter::BytesNotReplayed, bytes as u64);
        }
        Event::FakeHandshake
        | Event::Established
        | Event::FinByTarget
        | Event::ZeroWindowProbe
        | Event::ClientRetransmitDropped { .. }
        | Event::OutOfOrderBuffered
        | Event::EmptySessionSkipped
        | Event::LateTargetPacketReset => {}
    }
}

/// The session of `key`, created on first sight unless the table is full.
fn session_for<'a>(
    sessions: &'a mut HashMap<Flow, Tracked>,
    config: &WorkerConfig,
    emitter: &mut Emitter,
    now: Instant,
    key: Flow,
    opens_connection: bool,
) -> Option<&'a mut Tracked> {
    let full = sessions.len() >= config.max_sessions;
    match sessions.entry(key) {
        Entry::Occupied(entry) => Some(entry.into_mut()),
        Entry::Vacant(_) if full => {
            emitter.counters.bump(Counter::SessionsOverLimit);
            None
        }
        Entry::Vacant(_) if emitter.overloaded() => {
            // Counted once per connection, at its SYN. Later packets of a shed connection
            // may still open it mid-stream once the backlog has drained.
            if opens_connection {
                emitter.counters.bump(Counter::SessionsShed);
            }
            None
        }
        Entry::Vacant(entry) => Some(entry.insert(Tracked {
            session: Session::new(Arc::clone(&config.session), now, key.client, key.target),
            scheduled: None,
        })),
    }
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        packets: Sender<OutgoingBatch>,
        lag: SendLag,
        registrar: Arc<Registrar>,
        shared: Arc<Counters>,
        pool: BufferPool,
    ) -> Worker {
        Worker {
            emitter: Emitter {
                mtu: config.mtu,
                packets,
                outgoing: Vec::with_capacity(MAX_BATCH),
                lag,
                registrar,
                counters: LocalCounters::default(),
                shared,
                pool,
            },
            config,
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// Runs until `inputs` is closed and drained.
    pub fn run(mut self, inputs: Receiver<InputBatch>) {
        loop {
            let received = match self.next_deadline() {
                Some(deadline) => inputs.recv_deadline(deadline),
                None => inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = Instant::now();
            match received {
                Ok(batch) => {
                    for input in batch {
                        self.handle(now, input);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.fire_timers(now);
            self.emitter.flush();
            if self.emitter.counters.should_flush() || inputs.is_empty() {
                self.emitter.counters.flush_into(&self.emitter.shared);
            }
        }
        self.abort_all(Instant::now());
        self.emitter.flush();
        self.emitter.counters.flush_into(&self.emitter.shared);
    }

    /// Resets every session still open on the target, so copy's exit leaves nothing
    /// half-open there.
    fn abort_all(&mut self, now: Instant) {
        let mut reset = 0;
        for (_, mut tracked) in self.sessions.drain() {
            reset += usize::from(tracked.session.abort(now, &mut self.emitter));
        }
        if reset > 0 {
            log::info!("reset {reset} sessions still open on the target");
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    pub fn handle(&mut self, now: Instant, input: WorkerInput) {
        match input {
            WorkerInput::Client { segment, payload } => {
                let key = Flow::of_request(&segment);
                let opens_connection = segment.flags.syn() && !segment.flags.ack();
                let Some(tracked) = session_for(
                    &mut self.sessions,
                    &self.config,
                    &mut self.emitter,
                    now,
                    key,
                    opens_connection,
                ) else {
                    self.emitter.pool.give(payload);
                    return;
                };
                tracked
                    .session
                    .on_client(now, &segment, &payload, &mut self.emitter);
                self.after_event(key);
            }
            WorkerInput::Reply { segment } => {
                let key = Flow::of_reply(&segment);
                let Some(tracked) = self.sessions.get_mut(&key) else {
                    log::trace!("reply for no session: {segment}");
                    return;
                };
                tracked.session.on_reply(now, &segment, &mut self.emitter);
                self.after_event(key);
            }
        }
    }

    /// Drops a finished session or (re)queues its timer.
    fn after_event(&mut self, key: Flow) {
        let Some(tracked) = self.sessions.get_mut(&key) else {
            return;
        };
        if tracked.session.is_finished() {
            self.sessions.remove(&key);
            self.emitter.registrar.unregister(key);
            return;
        }
        if let Some(deadline) = tracked.session.poll_timeout()
            && tracked.scheduled.is_none_or(|queued| deadline < queued)
        {
            tracked.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, key)));
        }
    }

    /// Runs every session timer due by `now`.
    pub fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(tracked) = self.sessions.get_mut(&key) else {
                continue; // the session ended since
            };
            if tracked.scheduled != Some(at) {
                continue; // superseded by an earlier deadline that already fired
            }
            tracked.scheduled = None;
            if tracked.session.poll_timeout().is_some_and(|due| due <= now) {
                tracked.session.on_timeout(now, &mut self.emitter);
            }
            self.after_event(key);
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{SeqNum, TcpFlags, TcpOptions};
    use std::net::SocketAddr;

    fn syn(port: u16) -> WorkerInput {
        WorkerInput::Client {
            segment: Segment {
                src: SocketAddr::from(([203, 0, 113, 1], port)),
                dst: SocketAddr::from(([198, 51, 100, 30], 80)),
                seq: SeqNum(1),
                ack: SeqNum(0),
                flags: TcpFlags::SYN,
                window: 65535,
                options: TcpOptions::default(),
                ip_id: 0,
                ttl: 64,
                payload_len: 0,
            },
            payload: Vec::new(),
        }
    }

    /// A worker whose sender is `lag` behind.
    fn worker(
        lag: Duration,
        max_sessions: usize,
    ) -> (Worker, Receiver<OutgoingBatch>, Arc<Counters>) {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let send_lag = SendLag::default();
        send_lag.record(lag);
        let counters = Arc::new(Counters::default());
        let config = WorkerConfig {
            session: Arc::new(SessionConfig::default()),
            mtu: 1500,
            max_sessions,
        };
        let worker = Worker::new(
            config,
            tx,
            send_lag,
            Arc::new(Registrar::default()),
            Arc::clone(&counters),
            BufferPool::new(4, 1500),
        );
        (worker, rx, counters)
    }

    #[test]
    fn a_syn_opens_a_session_and_is_sent_once_flushed() {
        let (mut worker, rx, counters) = worker(Duration::ZERO, 10);
        worker.handle(Instant::now(), syn(40000));
        assert_eq!(worker.session_count(), 1);
        assert!(rx.is_empty(), "packets wait for the flush");
        worker.emitter.flush();
        let batch = rx.try_recv().unwrap();
        assert_eq!(batch.packets.len(), 1);
        worker.emitter.counters.flush_into(&counters);
        assert_eq!(counters.get(Counter::Registrations), 1);
    }

    #[test]
    fn new_sessions_are_shed_while_the_sender_is_far_behind() {
        let (mut worker, _rx, counters) = worker(SHED_LAG * 2, 10);
        worker.handle(Instant::now(), syn(40000));
        assert_eq!(worker.session_count(), 0);
        worker.emitter.counters.flush_into(&counters);
        assert_eq!(counters.get(Counter::SessionsShed), 1);
    }

    #[test]
    fn the_session_table_is_capped() {
        let (mut worker, _rx, counters) = worker(Duration::ZERO, 1);
        worker.handle(Instant::now(), syn(40000));
        worker.handle(Instant::now(), syn(40001));
        assert_eq!(worker.session_count(), 1);
        worker.emitter.counters.flush_into(&counters);
        assert_eq!(counters.get(Counter::SessionsOverLimit), 1);
    }
}
