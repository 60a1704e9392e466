//! The sessions of one shard: the table keyed by flow, their timers, and the engine's
//! [`Output`] that turns what a session transmits into IP packets in the shard's
//! [`Outgoing`] batch.
//!
//! A captured flow becomes one replayed session per `-n` replica; each replica's client end
//! is claimed in the copy's [`PortBook`] when it opens and given back when it ends (and moved
//! when the target answers its SYN for a connection it still holds on that 4-tuple), and
//! [`Admission`] decides which new sessions open at all (`-r`, `--ramp`, `--max-rate`).
//!
//! Pure like the session engine: no socket, no clock (`now` comes from the shard loop), no
//! lock on the packet path (a flow lives on exactly one shard; the port book is locked only
//! when a session opens or ends).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::compare::TargetTap;
use crate::packet::{self, Flow, Segment};
use crate::session::{Event, Output, Session, SessionConfig};
use crate::stats::{Counter, LocalCounters};

use super::admission::{Admission, AdmissionRules, Verdict};
use super::replicas::{Origin, PortBook, ReplicaPlan};
use super::rewrite::Repetition;
use super::sink::Outgoing;
use super::slot::Slot;

/// Session settings of a shard.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub session: Arc<SessionConfig>,
    /// Largest IP packet to emit.
    pub mtu: usize,
    /// Sessions a shard keeps at once; new flows beyond are counted and skipped.
    pub max_sessions: usize,
}

/// How captured sessions become replayed ones: how many replicas, their client ends, and
/// which open at all. One per copy, shared by its shards.
#[derive(Debug, Clone)]
pub struct Shaping {
    pub replicas: ReplicaPlan,
    pub ports: Arc<PortBook>,
    pub admission: AdmissionRules,
    /// Shards sharing the rate cap.
    pub shards: usize,
}

impl Default for Shaping {
    /// Every session replayed once, with its real client end.
    fn default() -> Shaping {
        Shaping {
            replicas: ReplicaPlan::new(1, 0, None),
            ports: Arc::default(),
            admission: AdmissionRules::default(),
            shards: 1,
        }
    }
}

/// Entries the eviction order and the timer heap may hold beyond twice the live sessions
/// before they are pruned, so that they stay in proportion to the table (not to
/// `--max-sessions`, nor to the requests a keep-alive session has carried).
const PRUNE_SLACK: usize = 1024;

/// What became of a segment of a flow that had no session.
enum Opening {
    Opened(Flow),
    /// Not this replica, now.
    Refused,
    /// `-r`/`--ramp` leave the whole session out.
    NotSampled,
}

struct Tracked {
    /// The session, or once it has ended the record of its time-wait.
    session: Slot,
    origin: Origin,
    /// The deadline already queued in the timer heap, if any.
    scheduled: Option<Instant>,
    /// The session's buffered client bytes as last counted into the table's total.
    buffered: usize,
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
    /// `copy --compare`'s view of the target side; `None` without it.
    tap: Option<Box<dyn TargetTap>>,
}

impl Emitter {
    fn new(mtu: usize) -> Emitter {
        Emitter {
            mtu,
            emitted: Emitted::default(),
            tap: None,
        }
    }
}

impl Output for Emitter {
    fn transmit(&mut self, segment: &Segment, payload: &[u8]) {
        if let Some(tap) = &mut self.tap {
            tap.sent(segment);
        }
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
        Event::RequestsCaptured { count } => counters.add(Counter::RequestsCaptured, count as u64),
        Event::RequestsDiscarded { count } => counters.add(Counter::RequestsNotSent, count as u64),
        Event::RequestSent { waited } => {
            counters.bump(Counter::RequestsSent);
            counters.record_request_delay(waited);
        }
        Event::Closed => counters.bump(Counter::SessionsClosed),
        Event::ResetByTarget => counters.bump(Counter::SessionsReset),
        Event::HandshakeTimeout => counters.bump(Counter::HandshakesFailed),
        Event::ClientNeverAcknowledged => counters.bump(Counter::HandshakesAbandoned),
        Event::HandshakeRefused => counters.bump(Counter::HandshakesRefused),
        Event::IdleTimeout => counters.bump(Counter::SessionsTimedOut),
        Event::Retransmitted | Event::FastRetransmit => counters.bump(Counter::Retransmitted),
        Event::RetransmitLimit | Event::RebuildLimit => counters.bump(Counter::SessionsGivenUp),
        Event::SessionRebuilt => counters.bump(Counter::SessionsRebuilt),
        Event::ResponseTimeout => counters.bump(Counter::ResponsesTimedOut),
        Event::RequestAnswered => counters.bump(Counter::RequestsAnswered),
        Event::RequestUnanswered => counters.bump(Counter::RequestsUnanswered),
        Event::PortReused => counters.bump(Counter::PortsReused),
        Event::Aborted => counters.bump(Counter::SessionsAborted),
        Event::NotFullSessionSkipped => counters.bump(Counter::SessionsSkipped),
        Event::BufferOverflow { .. } => counters.bump(Counter::BufferOverflows),
        Event::UnsentDataDiscarded { bytes } | Event::LateClientDataDropped { bytes } => {
            counters.add(Counter::BytesNotReplayed, bytes as u64);
        }
        Event::PortInUse => counters.bump(Counter::PortsInUseAtTarget),
        Event::StaleConnectionReset => counters.bump(Counter::StaleConnectionsReset),
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
    replicas: ReplicaPlan,
    ports: Arc<PortBook>,
    admission: Admission,
    /// Live sessions by the flow they replay toward the target.
    sessions: HashMap<Flow, Tracked>,
    /// The replayed flow of each live replica of a captured flow.
    replayed: HashMap<Origin, Flow>,
    /// Replayed flows in the order their sessions opened: where a full table looks for a
    /// session that never carried data to make room (entries of sessions gone or past that
    /// are dropped as they come up).
    eviction_order: VecDeque<Flow>,
    /// Session deadlines. A session's entry is the one at its `scheduled` time; an earlier
    /// deadline pushes a new entry and leaves the old one stale, skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, Flow)>>,
    out: Emitter,
    /// Client bytes all the sessions hold, waiting for the target.
    buffered: usize,
}

impl SessionTable {
    /// The table of a shard started at `now`.
    pub fn new(limits: SessionLimits, shaping: &Shaping, now: Instant) -> SessionTable {
        SessionTable {
            out: Emitter::new(limits.mtu),
            limits,
            replicas: shaping.replicas.clone(),
            ports: Arc::clone(&shaping.ports),
            admission: Admission::new(&shaping.admission, shaping.shards, now),
            sessions: HashMap::new(),
            replayed: HashMap::new(),
            eviction_order: VecDeque::new(),
            timers: BinaryHeap::new(),
            buffered: 0,
        }
    }

    /// What the sessions produced; the shard sends, registers and counts it, then clears it.
    pub fn emitted(&mut self) -> &mut Emitted {
        &mut self.out.emitted
    }

    /// Tells `tap` (`copy --compare`) what the first replica of each session opens, sends,
    /// hears and ends.
    pub fn set_tap(&mut self, tap: Box<dyn TargetTap>) {
        self.out.tap = Some(tap);
    }

    /// The tap, if any.
    pub fn tap(&mut self) -> Option<&mut (dyn TargetTap + 'static)> {
        self.out.tap.as_deref_mut()
    }

    /// Tells the tap that the session of `origin` replays as `replayed`: only the first
    /// replica is compared.
    fn tap_opened(&mut self, origin: Origin, replayed: Flow) {
        if let (Some(tap), 0) = (&mut self.out.tap, origin.replica) {
            tap.opened(origin.captured, replayed);
        }
    }

    /// A client segment toward the target (src = the real client, dst = the target) of
    /// `repetition`, for every replica of its flow. While `shedding`, a segment of an unknown
    /// flow opens no session: the shard is behind, and the sessions already open are worth
    /// more than new ones.
    pub fn on_client(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        repetition: Repetition,
        shedding: bool,
    ) {
        let captured = Flow::of_request(segment);
        let mut replica_segment = segment.clone();
        for replica in 0..self.replicas.copies() {
            let origin = Origin {
                captured,
                replica,
                round: repetition.round,
            };
            let replayed = match self.replayed.get(&origin) {
                Some(&replayed) => replayed,
                None => match self.open(now, origin, segment, shedding) {
                    Opening::Opened(replayed) => replayed,
                    Opening::Refused => continue,
                    Opening::NotSampled => return,
                },
            };
            replica_segment.src = replayed.client;
            if let Some(tracked) = self.sessions.get_mut(&replayed) {
                tracked
                    .session
                    .on_client(now, &replica_segment, payload, &mut self.out);
            }
            self.after_event(replayed);
        }
    }

    /// Opens replica `origin` of a flow no session replays yet, when `segment` can open one
    /// and nothing refuses it. Refusals are counted once per connection, at its SYN (and
    /// per session, not per replica, when `-r` leaves it out).
    fn open(&mut self, now: Instant, origin: Origin, segment: &Segment, shedding: bool) -> Opening {
        let Origin {
            captured, replica, ..
        } = origin;
        let syn = segment.flags.syn() && !segment.flags.ack();
        if !syn && segment.payload_len == 0 {
            return Opening::Refused; // a pure ACK, FIN or RST tells nothing to open with
        }
        let counters = &mut self.out.emitted.counters;
        let count_at_syn = |counters: &mut LocalCounters, counter| {
            if syn {
                counters.bump(counter);
            }
        };
        match self
            .admission
            .samples(now, origin, syn.then_some(segment.seq))
        {
            Verdict::Open => {}
            Verdict::Refused => {
                count_at_syn(counters, Counter::SessionsSampledOut);
                return Opening::NotSampled;
            }
            Verdict::StillRefused => return Opening::NotSampled,
        }
        // Later packets of a connection refused for being full or behind may still open it
        // mid-stream once there is room again.
        if self.sessions.len() >= self.limits.max_sessions && !self.evict_one_without_data(now) {
            count_at_syn(&mut self.out.emitted.counters, Counter::SessionsOverLimit);
            return Opening::Refused;
        }
        let counters = &mut self.out.emitted.counters;
        if shedding {
            count_at_syn(counters, Counter::SessionsShed);
            return Opening::Refused;
        }
        match self.admission.rate(now, origin, syn.then_some(segment.seq)) {
            Verdict::Open => {}
            Verdict::Refused => {
                counters.bump(Counter::SessionsRateLimited);
                return Opening::Refused;
            }
            Verdict::StillRefused => return Opening::Refused,
        }
        let Some(claimed) =
            self.replicas
                .claim(&self.ports, captured.client, captured.target, replica)
        else {
            count_at_syn(counters, Counter::SessionsNoPort);
            return Opening::Refused;
        };
        counters.add(Counter::PortsRemapped, u64::from(claimed.remapped));
        let replayed = Flow {
            client: claimed.client,
            target: captured.target,
        };
        let session = Slot::new(Session::new(
            Arc::clone(&self.limits.session),
            now,
            replayed.client,
            replayed.target,
        ));
        self.sessions.insert(
            replayed,
            Tracked {
                session,
                origin,
                scheduled: None,
                buffered: 0,
            },
        );
        self.replayed.insert(origin, replayed);
        self.tap_opened(origin, replayed);
        self.eviction_order.push_back(replayed);
        if self.outgrown(self.eviction_order.len()) {
            let sessions = &self.sessions;
            self.eviction_order.retain(|flow| {
                sessions
                    .get(flow)
                    .is_some_and(|tracked| !tracked.session.carried_data())
            });
        }
        Opening::Opened(replayed)
    }

    /// Makes room in a full table: resets and drops the oldest session that never carried
    /// data (what a SYN flood fills a table with). False when every session carried data.
    fn evict_one_without_data(&mut self, now: Instant) -> bool {
        while let Some(flow) = self.eviction_order.pop_front() {
            let Some(tracked) = self.sessions.get_mut(&flow) else {
                continue;
            };
            if tracked.session.carried_data() {
                continue;
            }
            tracked.session.abort(now, &mut self.out);
            self.out.emitted.counters.bump(Counter::SessionsEvicted);
            self.forget(flow);
            return true;
        }
        false
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
        if tracked.session.port_in_use() {
            self.move_elsewhere(now, key);
            return;
        }
        self.after_event(key);
    }

    /// An intercept says another copy process registered `key` first. A session still
    /// waiting for its SYN-ACK moves to another port (the target cannot tell its SYN from
    /// the other copy's); one past its handshake is the one the target answered, and stays.
    pub fn on_flow_taken(&mut self, now: Instant, key: Flow) {
        let connecting = self
            .sessions
            .get(&key)
            .is_some_and(|tracked| tracked.session.is_connecting());
        if connecting {
            self.out
                .emitted
                .counters
                .bump(Counter::PortsHeldByOtherCopy);
            self.move_elsewhere(now, key);
        }
    }

    /// Reopens the session replaying `key` from another client end, because the target
    /// holds `key`'s 4-tuple for a connection of its own. Without a free end, the session
    /// stays and its handshake times out.
    fn move_elsewhere(&mut self, now: Instant, key: Flow) {
        let Some(origin) = self.sessions.get(&key).map(|tracked| tracked.origin) else {
            return;
        };
        let Origin {
            captured, replica, ..
        } = origin;
        // `key` is still ours in the book, so the first candidate is skipped.
        let Some(claimed) =
            self.replicas
                .claim(&self.ports, captured.client, captured.target, replica)
        else {
            self.after_event(key);
            return;
        };
        let Some(mut tracked) = self.sessions.remove(&key) else {
            return;
        };
        self.ports.release(&key);
        let moved = Flow {
            client: claimed.client,
            target: key.target,
        };
        self.out
            .emitted
            .counters
            .add(Counter::PortsRemapped, u64::from(claimed.remapped));
        tracked.scheduled = None;
        self.tap_opened(origin, moved);
        tracked
            .session
            .reopen_from(now, moved.client, &mut self.out);
        self.sessions.insert(moved, tracked);
        self.replayed.insert(origin, moved);
        self.after_event(moved);
    }

    /// Recounts a session's buffered bytes, keeps only its time-wait record once it has
    /// ended, then drops it if it finished or (re)queues its timer.
    fn after_event(&mut self, key: Flow) {
        let Some(tracked) = self.sessions.get_mut(&key) else {
            return;
        };
        tracked.session.compact();
        let finished = tracked.session.is_finished();
        let buffered = if finished {
            0
        } else {
            tracked.session.buffered_bytes()
        };
        self.buffered = self.buffered - tracked.buffered + buffered;
        tracked.buffered = buffered;
        if finished {
            self.forget(key);
            return;
        }
        if let Some(deadline) = tracked.session.poll_timeout()
            && tracked.scheduled.is_none_or(|queued| deadline < queued)
        {
            tracked.scheduled = Some(deadline);
            self.schedule(deadline, key);
        }
    }

    /// Queues the deadline of `key`'s session. Stale entries (a session's later deadline,
    /// superseded by an earlier one, then queued again once that fired) would otherwise stay
    /// until their time: one per request of a keep-alive session for its whole idle timeout.
    fn schedule(&mut self, deadline: Instant, key: Flow) {
        self.timers.push(Reverse((deadline, key)));
        if self.outgrown(self.timers.len()) {
            let sessions = &self.sessions;
            self.timers.retain(|Reverse((at, key))| {
                sessions
                    .get(key)
                    .is_some_and(|tracked| tracked.scheduled == Some(*at))
            });
        }
    }

    /// Whether a side list of `len` entries (the eviction order, the timer heap) has
    /// outgrown the table and is due for pruning.
    fn outgrown(&self, len: usize) -> bool {
        len > 2 * self.sessions.len() + PRUNE_SLACK
    }

    /// Drops the session replaying `key` and gives its client end back.
    fn forget(&mut self, key: Flow) {
        if let Some(tracked) = self.sessions.remove(&key) {
            self.replayed.remove(&tracked.origin);
            self.ports.release(&key);
            if let (Some(tap), 0) = (&mut self.out.tap, tracked.origin.replica) {
                tap.ended(key);
            }
        }
    }

    /// Client bytes all the sessions hold, waiting for the target to take them.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
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

    /// The sessions being replayed now: those of [`len`](Self::len) not in time-wait.
    pub fn open_len(&self) -> usize {
        self.sessions
            .values()
            .filter(|tracked| tracked.session.is_open())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Resets every session still open on the target, so copy's exit leaves nothing
    /// half-open there. Returns how many were reset. The resets go out in flow order, so an
    /// offline replay ends the same way every time.
    pub fn abort_all(&mut self, now: Instant) -> usize {
        let mut open: Vec<(Flow, Tracked)> = self.sessions.drain().collect();
        open.sort_unstable_by_key(|(flow, _)| *flow);
        let mut reset = 0;
        for (flow, mut tracked) in open {
            reset += usize::from(tracked.session.abort(now, &mut self.out));
            self.ports.release(&flow);
        }
        self.replayed.clear();
        self.timers.clear();
        self.buffered = 0;
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
            Event::ClientNeverAcknowledged,
            Event::RequestsCaptured { count: 1 },
            Event::RequestsDiscarded { count: 1 },
            Event::RequestSent {
                waited: std::time::Duration::ZERO,
            },
            Event::ResponseTimeout,
            Event::RequestAnswered,
            Event::RequestUnanswered,
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

    /// Live capture, and the first round of an offline replay.
    const FIRST: Repetition = Repetition { round: 0 };

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
        shaped_table(max_sessions, &Shaping::default())
    }

    fn shaped_table(max_sessions: usize, shaping: &Shaping) -> SessionTable {
        let limits = SessionLimits {
            session: Arc::new(SessionConfig::default()),
            mtu: 1500,
            max_sessions,
        };
        SessionTable::new(limits, shaping, Instant::now())
    }

    fn count(table: &mut SessionTable, counter: Counter) -> u64 {
        let shared = crate::stats::Counters::default();
        table.emitted().counters.flush_into(&shared);
        shared.get(counter)
    }

    #[test]
    fn a_syn_opens_a_session_emits_it_and_registers_the_flow() {
        let mut table = table(10);
        table.on_client(Instant::now(), &syn(40000), &[], FIRST, false);
        assert_eq!(table.len(), 1);
        let emitted = table.emitted();
        assert_eq!(emitted.outgoing.len(), 1);
        assert_eq!(emitted.new_flows, vec![Flow::of_request(&syn(40000))]);
        assert_eq!(count(&mut table, Counter::Registrations), 1);
    }

    #[test]
    fn new_sessions_are_shed_while_the_shard_is_behind() {
        let mut table = table(10);
        table.on_client(Instant::now(), &syn(40000), &[], FIRST, true);
        assert!(table.is_empty());
        assert_eq!(count(&mut table, Counter::SessionsShed), 1);
    }

    #[test]
    fn the_session_table_is_capped_and_counts_connections_not_packets() {
        let mut table = table(1);
        table.on_client(Instant::now(), &syn(40000), &[], FIRST, false);
        table.on_client(Instant::now(), &data(40000), b"hello", FIRST, false);
        table.on_client(Instant::now(), &syn(40001), &[], FIRST, false);
        let mut ack = syn(40001);
        ack.flags = TcpFlags::ACK;
        table.on_client(Instant::now(), &ack, &[], FIRST, false);
        assert_eq!(table.len(), 1);
        assert_eq!(count(&mut table, Counter::SessionsOverLimit), 1);
    }

    /// A request segment of the session from `port`, right after its SYN.
    fn data(port: u16) -> Segment {
        let mut data = syn(port);
        data.flags = TcpFlags::ACK | TcpFlags::PSH;
        data.seq = SeqNum(2);
        data.payload_len = 5;
        data
    }

    #[test]
    fn a_full_table_makes_room_by_dropping_the_oldest_session_without_data() {
        let mut table = table(3);
        let now = Instant::now();
        // A real session, then two that never carry data (a SYN flood's).
        table.on_client(now, &syn(40000), &[], FIRST, false);
        table.on_client(now, &data(40000), b"hello", FIRST, false);
        table.on_client(now, &syn(50000), &[], FIRST, false);
        table.on_client(now, &syn(50001), &[], FIRST, false);
        table.emitted().outgoing.clear();
        // Full: each new session pushes out the oldest empty one, never the real one.
        table.on_client(now, &syn(40001), &[], FIRST, false);
        table.on_client(now, &syn(40002), &[], FIRST, false);
        let mut live: Vec<u16> = table.live_flows().map(|flow| flow.client.port()).collect();
        live.sort_unstable();
        assert_eq!(live, [40000, 40001, 40002]);
        assert_eq!(count(&mut table, Counter::SessionsEvicted), 2);
        let resets = table
            .emitted()
            .outgoing
            .packets()
            .iter()
            .filter(|(_, bytes)| packet::parse_ip(bytes).is_ok_and(|(s, _)| s.flags.rst()))
            .count();
        assert_eq!(resets, 2, "the evicted handshakes are reset on the target");
        // Once every session carried data, a new one is over the limit.
        table.on_client(now, &data(40001), b"hello", FIRST, false);
        table.on_client(now, &data(40002), b"hello", FIRST, false);
        table.on_client(now, &syn(40003), &[], FIRST, false);
        assert_eq!(table.len(), 3);
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
    fn the_table_counts_the_bytes_its_sessions_hold() {
        let mut table = table(10);
        let now = Instant::now();
        for port in [40000, 40001] {
            table.on_client(now, &syn(port), &[], FIRST, false);
            let mut data = syn(port);
            data.flags = TcpFlags::ACK | TcpFlags::PSH;
            data.seq = SeqNum(2);
            data.payload_len = 100;
            table.on_client(now, &data, &[b'x'; 100], FIRST, false);
        }
        // No SYN-ACK: the requests wait in the sessions.
        assert_eq!(table.buffered_bytes(), 200);
        // Unanswered, the handshakes give up and the sessions end: nothing is held any more.
        for _ in 0..100 {
            let Some(at) = table.next_deadline() else {
                break;
            };
            table.fire_timers(at);
        }
        assert!(table.is_empty());
        assert_eq!(table.buffered_bytes(), 0);

        table.on_client(now, &syn(40002), &[], FIRST, false);
        let mut data = syn(40002);
        data.flags = TcpFlags::ACK;
        data.seq = SeqNum(2);
        data.payload_len = 10;
        table.on_client(now, &data, &[b'y'; 10], FIRST, false);
        assert_eq!(table.buffered_bytes(), 10);
        table.abort_all(now);
        assert_eq!(table.buffered_bytes(), 0);
    }

    #[test]
    fn stale_timer_entries_are_pruned_and_the_live_one_kept() {
        let mut table = table(10);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        let key = table.live_flows().next().unwrap();
        let live = table.sessions[&key].scheduled.unwrap();
        // Superseded deadlines, as a keep-alive session leaves one per request.
        for ms in 1..=10_000 {
            table.schedule(live + std::time::Duration::from_millis(ms), key);
        }
        assert!(
            table.timers.len() <= 2 + PRUNE_SLACK + 1,
            "{}",
            table.timers.len()
        );
        assert_eq!(table.next_deadline(), Some(live));
    }

    /// The target's answer to the SYN from `port`: `flags`, acknowledging the SYN.
    fn reply(port: u16, flags: TcpFlags) -> Segment {
        let request = syn(port);
        Segment {
            src: request.dst,
            dst: request.src,
            seq: SeqNum(0),
            ack: request.seq + 1u32,
            flags,
            ..request
        }
    }

    #[test]
    fn an_ended_session_keeps_only_its_time_wait_which_still_answers() {
        let mut table = table(10);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        let key = table.live_flows().next().unwrap();
        // The target refuses the connection: the session ends into its time-wait.
        table.on_reply(now, &reply(40000, TcpFlags::RST | TcpFlags::ACK));
        assert!(matches!(table.sessions[&key].session, Slot::Closed(_)));
        assert_eq!((table.len(), table.open_len()), (1, 0));
        assert_eq!(count(&mut table, Counter::HandshakesRefused), 1);
        table.emitted().outgoing.clear();

        // A late target segment gets a RST at its ACK number; late client data is dropped.
        table.on_reply(now, &reply(40000, TcpFlags::ACK));
        assert_eq!(table.emitted().outgoing.len(), 1);
        table.on_client(now, &data(40000), b"late", FIRST, false);
        assert_eq!(count(&mut table, Counter::BytesNotReplayed), 4);
        assert_eq!(
            table.emitted().outgoing.len(),
            1,
            "nothing sent for late data"
        );
        table.emitted().outgoing.clear();

        // A new SYN on the 4-tuple is a new connection, replayed by a whole session again.
        let mut new_syn = syn(40000);
        new_syn.seq = SeqNum(5000);
        table.on_client(now, &new_syn, &[], FIRST, false);
        assert!(matches!(table.sessions[&key].session, Slot::Open(_)));
        assert_eq!((table.len(), table.open_len()), (1, 1));
        assert_eq!(table.emitted().outgoing.len(), 1, "its SYN");
        assert_eq!(count(&mut table, Counter::SessionsOpened), 1);
    }

    #[test]
    fn a_time_wait_record_ends_at_the_time_wait_and_gives_its_port_back() {
        let mut table = table(10);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        table.on_reply(now, &reply(40000, TcpFlags::RST | TcpFlags::ACK));
        let time_wait = SessionConfig::default().time_wait;
        table.fire_timers(now + time_wait - std::time::Duration::from_millis(1));
        assert_eq!(table.len(), 1, "still in time-wait");
        table.fire_timers(now + time_wait);
        assert!(table.is_empty() && table.next_deadline().is_none());
        assert!(table.replayed.is_empty());
    }

    #[test]
    fn abort_resets_what_is_open() {
        let mut table = table(10);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        table.emitted().outgoing.clear();
        assert_eq!(table.abort_all(now), 1);
        assert!(table.is_empty() && table.next_deadline().is_none());
    }

    fn shaping(copies: u16, admission: AdmissionRules) -> Shaping {
        Shaping {
            replicas: ReplicaPlan::new(copies, 0, None),
            admission,
            ..Shaping::default()
        }
    }

    #[test]
    fn every_replica_is_its_own_session_on_its_own_flow() {
        let shaping = shaping(3, AdmissionRules::default());
        let mut table = shaped_table(10, &shaping);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        assert_eq!(table.len(), 3);
        let flows = table.emitted().new_flows.clone();
        assert_eq!(flows.len(), 3);
        assert_eq!(
            flows[0],
            Flow::of_request(&syn(40000)),
            "the first keeps the port"
        );
        assert!(flows[1] != flows[0] && flows[2] != flows[0] && flows[1] != flows[2]);
        assert_eq!(shaping.ports.len(), 3);
        // A later packet of the flow reaches every replica, not new sessions.
        let mut data = syn(40000);
        data.flags = TcpFlags::ACK | TcpFlags::PSH;
        data.seq = SeqNum(2);
        data.payload_len = 5;
        table.on_client(now, &data, b"hello", FIRST, false);
        assert_eq!(table.len(), 3);
        table.abort_all(now);
        assert!(
            shaping.ports.is_empty(),
            "ended sessions give their ports back"
        );
    }

    #[test]
    fn two_flows_that_would_share_a_port_toward_the_target_do_not() {
        let shaping = Shaping::default();
        let mut table = shaped_table(10, &shaping);
        // Another shard (or an earlier mapping) holds the first choice.
        let taken = Flow::of_request(&syn(40000));
        assert!(shaping.ports.claim(taken));
        table.on_client(Instant::now(), &syn(40000), &[], FIRST, false);
        let flows = table.emitted().new_flows.clone();
        assert_eq!(flows.len(), 1);
        assert_ne!(flows[0], taken);
        assert_eq!(count(&mut table, Counter::PortsRemapped), 1);
    }

    #[test]
    fn a_session_the_ramp_left_out_is_not_opened_from_the_middle_later() {
        let rules = AdmissionRules {
            ramp: std::time::Duration::from_secs(100),
            ..AdmissionRules::default()
        };
        let mut table = shaped_table(10, &shaping(1, rules));
        let start = Instant::now();
        table.on_client(start, &syn(40000), &[], FIRST, false);
        assert_eq!(table.len(), 0, "left out at a share of ~0 %");
        let after_the_ramp = start + std::time::Duration::from_secs(200);
        table.on_client(after_the_ramp, &data(40000), b"hello", FIRST, false);
        assert_eq!(table.len(), 0, "not replayed from the middle at 100 %");
        assert_eq!(count(&mut table, Counter::SessionsSampledOut), 1);
        table.on_client(after_the_ramp, &syn(40001), &[], FIRST, false);
        assert_eq!(table.len(), 1, "a new session is kept");
    }

    #[test]
    fn sampled_out_sessions_open_no_replica_and_count_once() {
        let rules = AdmissionRules {
            sample_percent: 50.0,
            ..AdmissionRules::default()
        };
        let mut table = shaped_table(100_000, &shaping(2, rules));
        let now = Instant::now();
        for port in 20_000..22_000 {
            table.on_client(now, &syn(port), &[], FIRST, false);
        }
        let sampled_out = count(&mut table, Counter::SessionsSampledOut) as usize;
        assert!(
            (900..=1100).contains(&sampled_out),
            "{sampled_out} of 2000 left out"
        );
        assert_eq!(
            table.len(),
            2 * (2000 - sampled_out),
            "both replicas of the kept"
        );
    }

    #[test]
    fn the_rate_cap_counts_each_refused_session_once() {
        let rules = AdmissionRules {
            max_rate: Some(1.0),
            ..AdmissionRules::default()
        };
        let mut table = shaped_table(10, &shaping(1, rules));
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        table.on_client(now, &syn(40001), &[], FIRST, false);
        let mut data = syn(40001);
        data.flags = TcpFlags::ACK | TcpFlags::PSH;
        data.seq = SeqNum(2);
        data.payload_len = 5;
        table.on_client(
            now + std::time::Duration::from_secs(2),
            &data,
            b"hello",
            FIRST,
            false,
        );
        assert_eq!(
            table.len(),
            1,
            "the refused session is not replayed mid-stream"
        );
        assert_eq!(count(&mut table, Counter::SessionsRateLimited), 1);
    }

    #[test]
    fn a_pure_ack_of_an_unknown_flow_opens_nothing() {
        let mut table = table(10);
        let mut ack = syn(40000);
        ack.flags = TcpFlags::ACK;
        table.on_client(Instant::now(), &ack, &[], FIRST, false);
        assert!(table.is_empty());
    }

    #[test]
    fn a_session_whose_4_tuple_the_target_holds_moves_to_another_port() {
        let shaping = Shaping::default();
        let mut table = shaped_table(10, &shaping);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        let first = Flow::of_request(&syn(40000));
        table.emitted().outgoing.clear();
        table.emitted().new_flows.clear();
        // The target's ACK of a connection it still holds on that 4-tuple.
        let mut stale = syn(40000);
        std::mem::swap(&mut stale.src, &mut stale.dst);
        stale.flags = TcpFlags::ACK;
        stale.seq = SeqNum(777);
        stale.ack = SeqNum(4242);
        table.on_reply(now, &stale);

        let moved = table.emitted().new_flows.clone();
        assert_eq!(moved.len(), 1, "the SYN again, from elsewhere");
        assert_ne!(moved[0], first);
        assert_eq!(moved[0].target, first.target);
        assert_eq!(table.live_flows().collect::<Vec<_>>(), moved);
        assert_eq!(shaping.ports.len(), 1, "the old port given back");
        assert_eq!(count(&mut table, Counter::PortsInUseAtTarget), 1);
        // Later client packets of the captured flow follow the session to its new port.
        let mut data = syn(40000);
        data.flags = TcpFlags::ACK | TcpFlags::PSH;
        data.seq = SeqNum(2);
        data.payload_len = 5;
        table.on_client(now, &data, b"hello", FIRST, false);
        assert_eq!(table.len(), 1);
    }

    /// `--loop`: a round moves every port, and may move one onto the port of another
    /// connection of the round before, still open. The two stay separate sessions: the later
    /// one claims another port instead of ending the earlier one as a reused port.
    #[test]
    fn a_later_round_landing_on_a_live_session_of_an_earlier_one_takes_another_port() {
        let shaping = Shaping::default();
        let mut table = shaped_table(10, &shaping);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        let mut request = data(40000);
        table.on_client(now, &request, b"hello", FIRST, false);
        let second = Repetition { round: 1 };
        let mut again = syn(40000);
        again.seq = SeqNum(7000);
        table.on_client(now, &again, &[], second, false);

        assert_eq!(table.len(), 2, "both rounds replay");
        let counted = crate::stats::Counters::default();
        table.emitted().counters.flush_into(&counted);
        assert_eq!(counted.get(Counter::PortsReused), 0);
        assert_eq!(counted.get(Counter::PortsRemapped), 1);
        let mut ports: Vec<u16> = table.live_flows().map(|flow| flow.client.port()).collect();
        ports.sort_unstable();
        assert_eq!(ports.len(), 2);
        assert!(
            ports.contains(&40000),
            "the first round keeps its port: {ports:?}"
        );
        // Each round's later packets reach its own session.
        request.seq = SeqNum(7001);
        table.on_client(now, &request, b"hello", second, false);
        assert_eq!(table.len(), 2);
        assert_eq!(count(&mut table, Counter::PortsReused), 0);
    }

    #[test]
    fn a_flow_another_copy_holds_moves_a_connecting_session_only() {
        let shaping = Shaping::default();
        let mut table = shaped_table(10, &shaping);
        let now = Instant::now();
        table.on_client(now, &syn(40000), &[], FIRST, false);
        let first = Flow::of_request(&syn(40000));
        table.emitted().new_flows.clear();
        table.on_flow_taken(now, first);
        let moved = table.emitted().new_flows.clone();
        assert_eq!(moved.len(), 1);
        assert_ne!(moved[0], first);
        assert_eq!(count(&mut table, Counter::PortsHeldByOtherCopy), 1);
        // Established, it is the session the target answered: it stays.
        let mut syn_ack = syn(40000);
        syn_ack.src = moved[0].target;
        syn_ack.dst = moved[0].client;
        syn_ack.flags = TcpFlags::SYN | TcpFlags::ACK;
        syn_ack.seq = SeqNum(900);
        syn_ack.ack = SeqNum(2);
        table.on_reply(now, &syn_ack);
        table.emitted().new_flows.clear();
        table.on_flow_taken(now, moved[0]);
        assert!(table.emitted().new_flows.is_empty());
        assert_eq!(table.live_flows().collect::<Vec<_>>(), moved);
    }

    #[test]
    fn each_request_records_how_long_it_waited_after_capture() {
        let mut table = table(10);
        let t0 = Instant::now();
        table.on_client(t0, &syn(40000), &[], FIRST, false);
        let mut data = syn(40000);
        data.flags = TcpFlags::ACK | TcpFlags::PSH;
        data.seq = SeqNum(2);
        data.payload_len = 5;
        table.on_client(t0, &data, b"hello", FIRST, false);
        // The request waits for the handshake: 7 ms.
        let mut syn_ack = syn(40000);
        std::mem::swap(&mut syn_ack.src, &mut syn_ack.dst);
        syn_ack.flags = TcpFlags::SYN | TcpFlags::ACK;
        syn_ack.seq = SeqNum(900);
        syn_ack.ack = SeqNum(2);
        table.on_reply(t0 + std::time::Duration::from_millis(7), &syn_ack);
        let shared = crate::stats::Counters::default();
        table.emitted().counters.flush_into(&shared);
        let delays = shared.request_delays();
        assert_eq!(delays.count(), 1);
        assert_eq!(delays.sum_us, 7_000);
        assert_eq!(shared.get(Counter::RequestsSent), 1);
    }
}
