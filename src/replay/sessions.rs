//! The sessions of one shard: the table keyed by flow, their timers, and the engine's
//! [`Output`] that turns what a session transmits into IP packets in the shard's
//! [`Outgoing`] batch.
//!
//! Pure like the session engine: no socket, no clock (`now` comes from the shard loop), no
//! lock (a flow lives on exactly one shard).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::packet::{self, Flow, Segment};
use crate::session::{Event, Output, Session, SessionConfig};
use crate::stats::{Counter, LocalCounters};

use super::sink::Outgoing;

/// Session settings of a shard.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub session: Arc<SessionConfig>,
    /// Largest IP packet to emit.
    pub mtu: usize,
    /// Sessions a shard keeps at once; new flows beyond are counted and skipped.
    pub max_sessions: usize,
}

struct Tracked {
    session: Session,
    /// The deadline already queued in the timer heap, if any.
    scheduled: Option<Instant>,
}

/// What the sessions produced since the shard last collected it.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Packets for the target.
    pub outgoing: Outgoing,
    /// Flows opened: every intercept must learn them.
    pub new_flows: Vec<Flow>,
    pub counters: LocalCounters,
}

/// The engine's [`Output`]: emits packets, counts events, notes new flows.
struct Emitter {
    mtu: usize,
    emitted: Emitted,
}

impl Emitter {
    fn new(mtu: usize) -> Emitter {
        Emitter {
            mtu,
            emitted: Emitted::default(),
        }
    }
}

impl Output for Emitter {
    fn transmit(&mut self, segment: &Segment, payload: &[u8]) {
        let emitted = &mut self.emitted;
        if segment.flags.syn() && !segment.flags.ack() {
            emitted.new_flows.push(Flow::of_request(segment));
            emitted.counters.bump(Counter::Registrations);
        }
        let max_payload = packet::max_payload_for_mtu(self.mtu, segment);
        if payload.len() > max_payload {
            emitted.counters.bump(Counter::Split);
        }
        for (piece, bytes) in packet::split(segment, payload, max_payload) {
            let buffer = emitted.outgoing.push(piece.dst.ip());
            if let Err(err) = packet::emit_ip(&piece, bytes, buffer) {
                emitted.outgoing.pop();
                log::warn!("cannot build a copy of {piece}: {err}");
                emitted.counters.bump(Counter::SendFailed);
            }
        }
    }

    fn event(&mut self, event: Event) {
        count_event(event, &mut self.emitted.counters);
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
        Event::Aborted => counters.bump(Counter::SessionsAborted),
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

/// The sessions of one shard and their timers.
pub struct SessionTable {
    limits: SessionLimits,
    sessions: HashMap<Flow, Tracked>,
    timers: BinaryHeap<Reverse<(Instant, Flow)>>,
    out: Emitter,
}

impl SessionTable {
    pub fn new(limits: SessionLimits) -> SessionTable {
        SessionTable {
            out: Emitter::new(limits.mtu),
            limits,
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// What the sessions produced; the shard sends, registers and counts it, then clears it.
    pub fn emitted(&mut self) -> &mut Emitted {
        &mut self.out.emitted
    }

    /// A rewritten client segment (src = copy's client address, dst = target). While
    /// `shedding`, a segment of an unknown flow opens no session: the shard is behind, and
    /// the sessions already open are worth more than new ones.
    pub fn on_client(&mut self, now: Instant, segment: &Segment, payload: &[u8], shedding: bool) {
        let key = Flow::of_request(segment);
        let full = self.sessions.len() >= self.limits.max_sessions;
        let opens_connection = segment.flags.syn() && !segment.flags.ack();
        let counters = &mut self.out.emitted.counters;
        let tracked = match self.sessions.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            // Both counted once per connection, at its SYN. Later packets of a shed
            // connection may still open it mid-stream once the shard has caught up.
            Entry::Vacant(_) if full => {
                if opens_connection {
                    counters.bump(Counter::SessionsOverLimit);
                }
                return;
            }
            Entry::Vacant(_) if shedding => {
                if opens_connection {
                    counters.bump(Counter::SessionsShed);
                }
                return;
            }
            Entry::Vacant(entry) => entry.insert(Tracked {
                session: Session::new(
                    Arc::clone(&self.limits.session),
                    now,
                    key.client,
                    key.target,
                ),
                scheduled: None,
            }),
        };
        tracked
            .session
            .on_client(now, segment, payload, &mut self.out);
        self.after_event(key);
    }

    /// The headers of a target reply, from an intercept.
    pub fn on_reply(&mut self, now: Instant, segment: &Segment) {
        let key = Flow::of_reply(segment);
        let Some(tracked) = self.sessions.get_mut(&key) else {
            self.out.emitted.counters.bump(Counter::RepliesUnmatched);
            log::trace!("reply for no session of this shard: {segment}");
            return;
        };
        tracked.session.on_reply(now, segment, &mut self.out);
        self.after_event(key);
    }

    /// Drops a finished session or (re)queues its timer.
    fn after_event(&mut self, key: Flow) {
        let Some(tracked) = self.sessions.get_mut(&key) else {
            return;
        };
        if tracked.session.is_finished() {
            self.sessions.remove(&key);
            return;
        }
        if let Some(deadline) = tracked.session.poll_timeout()
            && tracked.scheduled.is_none_or(|queued| deadline < queued)
        {
            tracked.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, key)));
        }
    }

    /// The earliest session deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
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
                tracked.session.on_timeout(now, &mut self.out);
            }
            self.after_event(key);
        }
    }

    /// The flows of the live sessions: what an intercept that (re)connects must learn.
    pub fn live_flows(&self) -> impl Iterator<Item = Flow> + '_ {
        self.sessions.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Resets every session still open on the target, so copy's exit leaves nothing
    /// half-open there. Returns how many were reset.
    pub fn abort_all(&mut self, now: Instant) -> usize {
        let mut reset = 0;
        for (_, mut tracked) in self.sessions.drain() {
            reset += usize::from(tracked.session.abort(now, &mut self.out));
        }
        self.timers.clear();
        reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events that end a session each bump one of the counters that balance
    /// `sessions_opened` (`stats::ENDINGS`); no other event bumps any of them.
    #[test]
    fn each_ending_event_counts_one_ending() {
        use crate::session::Event;
        use crate::stats::{Counter, ENDINGS};
        let events = [
            Event::Opened { syn_seen: true },
            Event::Opened { syn_seen: false },
            Event::FakeHandshake,
            Event::Established,
            Event::HandshakeTimeout,
            Event::RequestSent,
            Event::ResponseTimeout,
            Event::Closed,
            Event::HandshakeRefused,
            Event::ResetByTarget,
            Event::FinByTarget,
            Event::SessionRebuilt,
            Event::RebuildLimit,
            Event::IdleTimeout,
            Event::Retransmitted,
            Event::FastRetransmit,
            Event::RetransmitLimit,
            Event::ZeroWindowProbe,
            Event::ClientRetransmitDropped { bytes: 3 },
            Event::OutOfOrderBuffered,
            Event::BufferOverflow { bytes: 3 },
            Event::UnsentDataDiscarded { bytes: 3 },
            Event::PortReused,
            Event::NotFullSessionSkipped,
            Event::EmptySessionSkipped,
            Event::LateTargetPacketReset,
            Event::Aborted,
            Event::LateClientDataDropped { bytes: 3 },
        ];
        for event in events {
            let mut counters = LocalCounters::default();
            count_event(event, &mut counters);
            let shared = crate::stats::Counters::default();
            counters.flush_into(&shared);
            let endings: u64 = ENDINGS.iter().map(|&c| shared.get(c)).sum();
            let expected = u64::from(event.ends_session());
            assert_eq!(endings, expected, "{event:?}");
            assert!(shared.get(Counter::SessionsOpened) <= 1);
        }
    }
    use crate::packet::{SeqNum, TcpFlags, TcpOptions};
    use std::net::SocketAddr;

    fn syn(port: u16) -> Segment {
        Segment {
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
        }
    }

    fn table(max_sessions: usize) -> SessionTable {
        SessionTable::new(SessionLimits {
            session: Arc::new(SessionConfig::default()),
            mtu: 1500,
            max_sessions,
        })
    }

    fn count(table: &mut SessionTable, counter: Counter) -> u64 {
        let shared = crate::stats::Counters::default();
        table.emitted().counters.flush_into(&shared);
        shared.get(counter)
    }

    #[test]
    fn a_syn_opens_a_session_emits_it_and_registers_the_flow() {
        let mut table = table(10);
        table.on_client(Instant::now(), &syn(40000), &[], false);
        assert_eq!(table.len(), 1);
        let emitted = table.emitted();
        assert_eq!(emitted.outgoing.len(), 1);
        assert_eq!(emitted.new_flows, vec![Flow::of_request(&syn(40000))]);
        assert_eq!(count(&mut table, Counter::Registrations), 1);
    }

    #[test]
    fn new_sessions_are_shed_while_the_shard_is_behind() {
        let mut table = table(10);
        table.on_client(Instant::now(), &syn(40000), &[], true);
        assert!(table.is_empty());
        assert_eq!(count(&mut table, Counter::SessionsShed), 1);
    }

    #[test]
    fn the_session_table_is_capped_and_counts_connections_not_packets() {
        let mut table = table(1);
        table.on_client(Instant::now(), &syn(40000), &[], false);
        table.on_client(Instant::now(), &syn(40001), &[], false);
        let mut ack = syn(40001);
        ack.flags = TcpFlags::ACK;
        table.on_client(Instant::now(), &ack, &[], false);
        assert_eq!(table.len(), 1);
        assert_eq!(count(&mut table, Counter::SessionsOverLimit), 1);
    }

    #[test]
    fn a_reply_for_another_shards_flow_is_counted() {
        let mut table = table(10);
        let mut reply = syn(40000);
        std::mem::swap(&mut reply.src, &mut reply.dst);
        reply.flags = TcpFlags::SYN | TcpFlags::ACK;
        table.on_reply(Instant::now(), &reply);
        assert_eq!(count(&mut table, Counter::RepliesUnmatched), 1);
    }

    #[test]
    fn abort_resets_what_is_open() {
        let mut table = table(10);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], false);
        table.emitted().outgoing.clear();
        assert_eq!(table.abort_all(now), 1);
        assert!(table.is_empty() && table.next_deadline().is_none());
    }
}
