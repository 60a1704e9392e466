//! The per-flow state machine that replays one client connection against the target.
//!
//! [`Session`] takes the client's captured segments and the target's reply headers and
//! produces the segments to send to the target. It keeps the client's sequence numbers and
//! writes acknowledgements, timestamps and windows from what the target actually sent, so the
//! target sees a consistent TCP peer whatever its own ISN, window and clock.
//!
//! Pure: time is an argument, output goes through [`Output`]. No sockets, no clock, no
//! threads. Buffering is in [`SendQueue`], request pacing in [`Pacer`], the retransmission
//! timeout in [`RttEstimator`], deadlines in [`TimerTable`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::trace;

mod send;
mod timeouts;

use super::config::SessionConfig;
use super::event::{Event, Output};
use super::pacing::{Pacer, PacingExpiry};
use super::rtt::RttEstimator;
use super::send_queue::{QueueFull, SendQueue};
use super::timers::{Timer, TimerTable};
use super::timestamps::TimestampState;
use crate::packet::{Segment, SeqNum, TcpOptions, Timestamps};

/// TTL of the packets we make ourselves (TCPCopy uses 64 too).
const OWN_TTL: u8 = 64;
/// Window we advertise when the client's own cannot be used (TCPCopy's choice).
const DEFAULT_WINDOW: u16 = 65535;
/// Duplicate acknowledgements that trigger a fast retransmit (RFC 5681 §3.2).
const DUP_ACK_THRESHOLD: u32 = 3;
/// Segments of target data we may leave unacknowledged (RFC 9293 §3.8.6.3: ack at least
/// every second full-sized segment).
const MAX_UNACKED_SEGMENTS: u32 = 2;
/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WINDOW_SCALE: u8 = 14;

/// Where the replayed connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent to the target yet: waiting for the client's SYN or first payload.
    Unopened,
    /// Our SYN (the client's or our own) is out; client data is buffered.
    SynSent,
    /// Handshake complete: client data flows to the target.
    Established,
    /// The client's FIN is out; waiting for its acknowledgement and the target's FIN.
    FinSent,
    /// The target reset the connection with nothing of the client's pending. A later client
    /// payload rebuilds it; a client close ends the session.
    TargetReset,
    /// The session is over; late target packets are answered with RST.
    TimeWait,
    /// Nothing left to do: the worker drops the session.
    Finished,
}

/// How the client ended its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientClose {
    /// FIN at this sequence number.
    Fin(SeqNum),
    /// RST: forwarded once the data before it is delivered.
    Rst,
}

/// Send-side state toward the target (RFC 9293 §3.3.1 SND.*).
#[derive(Debug, Clone, Default)]
struct SendState {
    /// Our ISN: the client's, or one less than the first byte we (re)open with.
    isn: SeqNum,
    /// Oldest unacknowledged sequence number (SND.UNA).
    una: SeqNum,
    /// Next sequence number to send for the first time (SND.NXT; retransmissions do not move
    /// it).
    nxt: SeqNum,
    /// The target's receive window in bytes, scaled (SND.WND).
    window: u32,
    /// The shift to apply to the target's window field (0 without window scaling).
    window_shift: u8,
    /// Largest segment the target accepts.
    mss: usize,
    /// Whether our FIN is out.
    fin_sent: bool,
    /// Duplicate acknowledgements in a row.
    dup_acks: u32,
    /// Loss recovery in progress until `una` reaches this point (RFC 6582 "recover").
    recover: Option<SeqNum>,
}

/// Receive-side state: what the target has sent (RFC 9293 §3.3.1 RCV.*).
#[derive(Debug, Clone, Default)]
struct ReceiveState {
    /// Next target sequence number expected (RCV.NXT): the ACK we send.
    nxt: SeqNum,
    /// Target data segments not yet acknowledged.
    unacked_segments: u32,
    /// The target sent FIN.
    fin: bool,
}

/// One client connection replayed against the target.
#[derive(Debug, Clone)]
pub struct Session {
    config: Arc<SessionConfig>,
    client: SocketAddr,
    target: SocketAddr,
    state: State,
    /// The client's SYN was captured.
    syn_seen: bool,
    /// The client's ISN, when its SYN was captured.
    client_isn: Option<SeqNum>,
    /// The options of the SYN we open with (the client's, or our own).
    syn_options: TcpOptions,
    /// The window field of the SYN we open with.
    syn_window: u16,
    /// The client's window field applies unchanged to the target (its SYN's window scaling
    /// was negotiated with the target).
    client_window_valid: bool,
    /// The client's latest non-zero window field.
    client_window: u16,
    client_ttl: u8,
    ip_id: u16,
    /// Largest segment the target sends us (the MSS in our SYN).
    receive_mss: usize,
    /// Whether the protocol may start with a server greeting (unknown until the first
    /// payload).
    greeting_possible: bool,
    queue: SendQueue,
    close: Option<ClientClose>,
    /// The first and the latest acknowledgement number of the client's segments: how far
    /// the online server's stream had reached the client.
    client_acks: Option<(SeqNum, SeqNum)>,
    snd: SendState,
    rcv: ReceiveState,
    timestamps: TimestampState,
    rtt: RttEstimator,
    pacer: Pacer,
    timers: TimerTable,
    /// When the first transmission of the current SYN left, for the handshake RTT.
    syn_sent_at: Instant,
    syn_retransmitted: bool,
    rebuilds: u32,
}

impl Session {
    /// A session for the client connection `client` → `target`, before any segment. Sessions
    /// of a worker share one configuration.
    pub fn new(
        config: Arc<SessionConfig>,
        now: Instant,
        client: SocketAddr,
        target: SocketAddr,
    ) -> Session {
        let mut session = Session {
            client,
            target,
            state: State::Unopened,
            syn_seen: false,
            client_isn: None,
            syn_options: TcpOptions::default(),
            syn_window: DEFAULT_WINDOW,
            client_window_valid: false,
            client_window: DEFAULT_WINDOW,
            client_ttl: OWN_TTL,
            ip_id: 0,
            receive_mss: usize::from(config.mss),
            greeting_possible: true,
            queue: SendQueue::new(SeqNum(0), 0, 0),
            close: None,
            client_acks: None,
            snd: SendState::default(),
            rcv: ReceiveState::default(),
            timestamps: TimestampState::default(),
            rtt: RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto),
            pacer: Pacer::new(
                config.wait_for_response,
                config.min_response_quiet,
                config.response_timeout,
            ),
            timers: TimerTable::default(),
            syn_sent_at: now,
            syn_retransmitted: false,
            rebuilds: 0,
            config,
        };
        session.touch(now);
        session
    }

    /// The client's address (after rewriting) and port.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The target's address and port.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Whether the session is over: the worker may drop it.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// When [`on_timeout`](Self::on_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.next(), self.pacer.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A segment the real client sent (already rewritten to the target), with its payload.
    pub fn on_client(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) {
        if self.state == State::Finished {
            return;
        }
        self.note_client(now, segment);
        let new_syn = segment.flags.syn() && !segment.flags.ack();
        match self.state {
            // The first segment decides how the session opens.
            State::Unopened => self.open(now, segment, payload, out),
            // A new SYN on a finished 4-tuple is a new connection; anything else is late.
            State::TimeWait => {
                if new_syn {
                    self.restart(now, segment, payload, out);
                } else if !payload.is_empty() {
                    out.event(Event::LateClientDataDropped {
                        bytes: payload.len(),
                    });
                }
            }
            // The client retransmitted its SYN: our own SYN timer covers it.
            _ if new_syn && Some(segment.seq) == self.client_isn => {
                out.event(Event::ClientRetransmitDropped { bytes: 0 });
            }
            // A SYN with another ISN, or a sequence jump: the port was reused.
            _ if new_syn || self.is_port_reuse(segment) => self.restart(now, segment, payload, out),
            _ => {
                self.take_client_data(now, segment, payload, out);
                if self.state == State::TargetReset || self.rcv.fin {
                    self.rebuild_if_needed(now, out);
                }
                if self.state == State::TargetReset && self.close.is_some() {
                    // The target is gone and the client is done: nothing left to replay.
                    out.event(Event::Closed);
                    self.end(now, false, out);
                }
                self.push(now, out);
            }
        }
    }

    /// A reply header from the target, seen by intercept.
    pub fn on_reply(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        match self.state {
            State::Finished | State::Unopened => {}
            // RFC 9293 §3.10.7.1: a segment for a closed connection gets a RST.
            State::TimeWait => {
                if !segment.flags.rst() {
                    self.send_reset_reply(now, segment, out);
                    out.event(Event::LateTargetPacketReset);
                }
            }
            State::SynSent => {
                self.touch(now);
                self.on_syn_ack(now, segment, out);
            }
            State::Established | State::FinSent | State::TargetReset => {
                self.touch(now);
                self.on_established_reply(now, segment, out);
            }
        }
    }

    /// Handles every deadline that has passed. Call at or after [`poll_timeout`](Self::poll_timeout).
    pub fn on_timeout(&mut self, now: Instant, out: &mut impl Output) {
        while let Some(timer) = self.timers.pop_expired(now) {
            self.on_timer(now, timer, out);
        }
        if let Some(expiry) = self.pacer.on_timeout(now) {
            if expiry == PacingExpiry::HoldTimedOut {
                out.event(Event::ResponseTimeout);
            }
            self.push(now, out);
        }
    }

    // ---- state changes ----

    /// copy is shutting down: resets the target's end of the connection, if it has one, so
    /// nothing stays half-open there, and finishes the session at once. Returns whether the
    /// connection was still open on the target.
    pub fn abort(&mut self, now: Instant, out: &mut impl Output) -> bool {
        let open = matches!(
            self.state,
            State::SynSent | State::Established | State::FinSent
        );
        if self.state != State::Finished {
            self.end(now, true, out);
            self.timers.stop_all();
            self.set_state(State::Finished);
        }
        open
    }

    /// The one place the state changes, logged at trace level.
    fn set_state(&mut self, state: State) {
        if self.state != state {
            trace!(
                "session {} > {}: {:?} -> {:?}",
                self.client, self.target, self.state, state
            );
            self.state = state;
        }
    }

    /// Restarts the idle timer: either side was active.
    fn touch(&mut self, now: Instant) {
        if !matches!(self.state, State::TimeWait | State::Finished) {
            self.timers.set(Timer::Idle, now + self.config.idle_timeout);
        }
    }

    /// Remembers what any client segment tells about the client: activity, TTL, window,
    /// clock.
    fn note_client(&mut self, now: Instant, segment: &Segment) {
        self.touch(now);
        self.client_ttl = segment.ttl;
        if segment.window != 0 {
            self.client_window = segment.window;
        }
        if let Some(ts) = segment.options.timestamps {
            self.timestamps.client = Some((ts.tsval, now));
        }
        if segment.flags.ack() {
            self.client_acks = Some(match self.client_acks {
                Some((first, latest)) => (first, latest.max(segment.ack)),
                None => (segment.ack, segment.ack),
            });
        }
    }

    /// Bytes of the online server's stream the client received since our capture began:
    /// how far its acknowledgement moved, less one for a FIN the server may have sent.
    fn client_received(&self) -> u64 {
        self.client_acks.map_or(0, |(first, latest)| {
            u64::from(latest.distance_from(first).max(1).unsigned_abs() - 1)
        })
    }

    /// The first client segment: open with its SYN, or with our own SYN when the capture
    /// starts mid-stream.
    fn open(&mut self, now: Instant, segment: &Segment, payload: &[u8], out: &mut impl Output) {
        let flags = segment.flags;
        if flags.syn() && !flags.ack() {
            self.syn_seen = true;
            self.client_isn = Some(segment.seq);
            self.syn_options = TcpOptions {
                // We never send SACK blocks, so we do not offer SACK (RFC 2018 §2).
                sack_permitted: false,
                ..segment.options
            };
            self.syn_window = segment.window;
            self.ip_id = segment.ip_id;
            self.start_connection(now, segment.seq, out);
            out.event(Event::Opened { syn_seen: true });
            return;
        }
        if self.config.only_full_sessions {
            out.event(Event::NotFullSessionSkipped);
            self.set_state(State::Finished);
            return;
        }
        if payload.is_empty() {
            if flags.fin() || flags.rst() {
                out.event(Event::EmptySessionSkipped);
                self.set_state(State::Finished);
            }
            // A pure ACK tells nothing to open with: wait for data.
            return;
        }
        // Caught mid-stream: our SYN sits just before the first byte we have.
        self.ip_id = segment.ip_id;
        self.syn_options = self.own_syn_options(segment.options.timestamps.is_some());
        self.start_connection(now, segment.seq - 1, out);
        out.event(Event::Opened { syn_seen: false });
        out.event(Event::FakeHandshake);
        self.take_client_data(now, segment, payload, out);
    }

    /// Options of a SYN we make ourselves: the configured MSS, and timestamps when the client
    /// uses them. No window scaling: the client's scale is unknown, so we advertise unscaled
    /// windows.
    fn own_syn_options(&self, timestamps: bool) -> TcpOptions {
        TcpOptions {
            mss: Some(self.config.mss),
            timestamps: timestamps.then_some(Timestamps { tsval: 0, tsecr: 0 }),
            ..TcpOptions::default()
        }
    }

    /// Resets the send state to a new connection whose SYN carries `isn`, and sends that SYN.
    fn start_connection(&mut self, now: Instant, isn: SeqNum, out: &mut impl Output) {
        if self.state == State::Unopened {
            self.queue = SendQueue::new(
                isn + 1u32,
                self.config.max_buffered_bytes,
                self.config.max_out_of_order_segments,
            );
        }
        self.snd = SendState {
            isn,
            una: isn,
            nxt: isn + 1u32,
            mss: usize::from(self.config.mss),
            ..SendState::default()
        };
        self.rcv = ReceiveState::default();
        self.timestamps.enabled = self.syn_options.timestamps.is_some();
        self.timestamps.recent = 0;
        self.receive_mss = usize::from(self.syn_options.mss.unwrap_or(self.config.mss));
        self.rtt.forget_probe();
        self.syn_sent_at = now;
        self.syn_retransmitted = false;
        self.send_syn(now, out);
        self.timers.stop_all();
        self.touch(now);
        self.timers
            .set(Timer::Handshake, now + self.config.handshake_timeout);
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        self.set_state(State::SynSent);
    }

    /// Our SYN was answered (RFC 9293 §3.10.7.3, SYN-SENT).
    fn on_syn_ack(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let flags = segment.flags;
        let acks_our_syn = flags.ack() && segment.ack == self.snd.isn + 1u32;
        if flags.rst() {
            if acks_our_syn {
                out.event(Event::HandshakeRefused);
                self.end(now, false, out);
            }
            return;
        }
        if flags.ack() && !acks_our_syn {
            // RFC 9293 §3.10.7.3: an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>, which
            // clears a stale connection of this 4-tuple the target still holds (it answers
            // our SYN with an ACK of the old one). Only once our SYN went unanswered for an
            // RTO: before that the ACK is more likely a late packet of the connection we
            // just closed, and a rebuilt connection's ISN sits right beside its sequence
            // space, so the RST could hit the new connection.
            if self.syn_retransmitted {
                self.send_reset_reply(now, segment, out);
            }
            return;
        }
        if !flags.syn() {
            return;
        }
        self.snd.una = segment.ack;
        self.rcv.nxt = segment.seq + 1u32;
        // RFC 7323 §2.2: scaling is on only if both SYNs carried the option; the window of a
        // SYN-ACK itself is never scaled.
        let scaling = self.syn_options.window_scale.is_some();
        self.snd.window_shift = match segment.options.window_scale {
            Some(shift) if scaling => shift.min(MAX_WINDOW_SCALE),
            _ => 0,
        };
        self.client_window_valid = self.syn_seen
            && self.rebuilds == 0
            && (scaling == segment.options.window_scale.is_some());
        self.snd.window = u32::from(segment.window);
        // RFC 9293 §3.7.1: without an MSS option assume 536 (IPv4) or 1220 (IPv6).
        let default_mss = if self.target.is_ipv4() { 536 } else { 1220 };
        self.snd.mss = usize::from(segment.options.mss.unwrap_or(default_mss)).max(1);
        // RFC 7323 §3.2: timestamps only if both SYNs carried them.
        match (self.timestamps.enabled, segment.options.timestamps) {
            (true, Some(ts)) => self.timestamps.recent = ts.tsval,
            _ => self.timestamps.enabled = false,
        }
        let handshake_rtt = now.saturating_duration_since(self.syn_sent_at);
        if !self.syn_retransmitted {
            // RFC 6298 §3: the SYN is timed like data, Karn's rule included.
            self.rtt.sample(handshake_rtt);
        }
        let pacing_rtt = self.config.response_end_rtt.unwrap_or(
            self.rtt
                .srtt()
                .unwrap_or(handshake_rtt)
                .max(self.config.min_response_quiet),
        );
        self.pacer.set_rtt(pacing_rtt);
        self.pacer.on_connected(self.greeting_possible);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Retransmit);
        self.set_state(State::Established);
        out.event(Event::Established);
        self.send_ack(now, out);
        self.push(now, out);
    }

    /// A reply once the connection is synchronized (RFC 9293 §3.10.7.4).
    fn on_established_reply(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let flags = segment.flags;
        if flags.rst() {
            self.on_target_reset(now, segment, out);
            return;
        }
        if flags.syn() {
            // Our third ACK was lost and the target repeats its SYN-ACK.
            self.send_ack(now, out);
            return;
        }
        if self.state == State::TargetReset {
            return;
        }
        self.update_ts_recent(segment);
        if flags.ack() {
            self.on_ack(now, segment, out);
            if self.state == State::TimeWait {
                return;
            }
        }
        if segment.payload_len > 0 || flags.fin() {
            self.on_target_data(now, segment, out);
        }
        if self.rcv.fin {
            self.rebuild_if_needed(now, out);
        }
        self.push(now, out);
    }

    /// RFC 7323 §4.3: TS.Recent takes the TSval of any segment at or below RCV.NXT, pure
    /// ACKs included, so the TSecr we echo lets the target measure its RTT correctly.
    fn update_ts_recent(&mut self, segment: &Segment) {
        if let Some(ts) = segment.options.timestamps
            && self.timestamps.enabled
            && segment.seq <= self.rcv.nxt
            && SeqNum(ts.tsval) >= SeqNum(self.timestamps.recent)
        {
            self.timestamps.recent = ts.tsval;
        }
    }

    /// The target's acknowledgement of client data (RFC 9293 §3.10.7.4, fifth check).
    fn on_ack(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let ack = segment.ack;
        if ack > self.snd.nxt {
            // Acknowledges something we never sent: answer with an ACK and ignore it.
            self.send_ack(now, out);
            return;
        }
        if ack < self.snd.una {
            return;
        }
        let window = u32::from(segment.window) << self.snd.window_shift;
        if ack > self.snd.una {
            self.on_new_ack(now, ack, out);
        } else if segment.payload_len == 0
            && !segment.flags.fin()
            && window == self.snd.window
            && self.snd.una != self.snd.nxt
        {
            // RFC 5681 §2: a duplicate ACK; the third triggers a fast retransmit (§3.2).
            self.snd.dup_acks += 1;
            if self.snd.dup_acks == DUP_ACK_THRESHOLD && self.snd.recover.is_none() {
                self.snd.recover = Some(self.snd.nxt);
                self.rtt.cancel_probe();
                self.retransmit(now, out);
                out.event(Event::FastRetransmit);
            }
        }
        self.snd.window = window;
        if self.state == State::FinSent && self.fin_acked() {
            if self.rcv.fin {
                out.event(Event::Closed);
                self.end(now, true, out);
            } else if !self.timers.is_set(Timer::FinWait) {
                self.timers
                    .set(Timer::FinWait, now + self.config.fin_wait_timeout);
            }
        }
    }

    /// `ack` acknowledges new data (SND.UNA < SEG.ACK =< SND.NXT).
    fn on_new_ack(&mut self, now: Instant, ack: SeqNum, out: &mut impl Output) {
        self.snd.una = ack;
        self.snd.dup_acks = 0;
        self.queue.acknowledge(ack);
        self.rtt.on_ack(now, ack);
        // RFC 6298 §5.2 and §5.3: stop the timer when all is acknowledged, else restart it.
        if self.snd.una == self.snd.nxt {
            self.timers.stop(Timer::Retransmit);
        } else {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        }
        match self.snd.recover {
            Some(recover) if ack >= recover => self.snd.recover = None,
            // RFC 6582 §3.2 step 5: a partial ACK retransmits the next hole at once.
            Some(_) => self.retransmit(now, out),
            None => {}
        }
    }

    /// Our FIN is out and the target acknowledged it.
    fn fin_acked(&self) -> bool {
        self.snd.fin_sent && self.snd.una == self.snd.nxt
    }

    /// Target payload or FIN: track RCV.NXT and acknowledge it.
    fn on_target_data(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        let in_order = segment.seq <= self.rcv.nxt && segment.seq_end() > self.rcv.nxt;
        if !in_order {
            // RFC 9293 §3.10.7.4 and RFC 5681 §4.2: a duplicate or out-of-order segment is
            // acknowledged at once, so the target learns what we have.
            self.send_ack(now, out);
            return;
        }
        let new_bytes = segment.seq_end().distance_from(self.rcv.nxt) as usize
            - usize::from(segment.flags.fin());
        self.rcv.nxt = segment.seq_end();
        if new_bytes > 0 {
            self.pacer
                .on_response_data(now, new_bytes, self.receive_mss);
        }
        if segment.flags.fin() {
            self.rcv.fin = true;
            self.pacer.on_target_closed();
            out.event(Event::FinByTarget);
            if self.state == State::FinSent && self.fin_acked() {
                // Both sides closed: our RST stands in for the last ACK (RFC 9293 §3.10.7.4
                // would ACK and enter TIME-WAIT), so the target keeps no state at all.
                out.event(Event::Closed);
                self.end(now, true, out);
            } else {
                self.send_ack(now, out);
            }
            return;
        }
        self.rcv.unacked_segments += 1;
        // Ack every second segment and any short one (often the end of a write, which a
        // Nagle sender waits on); delay the rest briefly.
        if self.rcv.unacked_segments >= MAX_UNACKED_SEGMENTS || new_bytes < self.receive_mss {
            self.send_ack(now, out);
        } else if !self.timers.is_set(Timer::DelayedAck) {
            self.timers
                .set(Timer::DelayedAck, now + self.config.ack_delay);
        }
    }

    /// The target reset the connection (RFC 9293 §3.10.7.4, second check, simplified to an
    /// exact or in-window sequence number).
    fn on_target_reset(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        if self.state == State::TargetReset || segment.seq < self.rcv.nxt {
            return;
        }
        out.event(Event::ResetByTarget);
        self.pacer.on_target_closed();
        self.timers.stop(Timer::Retransmit);
        self.timers.stop(Timer::DelayedAck);
        self.set_state(State::TargetReset);
        if self.queue.in_order_len() > 0 {
            self.rebuild_if_needed(now, out);
        } else if self.close.is_some() {
            out.event(Event::Closed);
            self.end(now, false, out);
        }
    }

    /// The target closed while client data was still to go: open a new connection and
    /// continue from the first byte it has not acknowledged. After a RST that is at once;
    /// after a FIN (the target may still read) once what is in flight is acknowledged, so
    /// the target never gets the same bytes on two connections.
    fn rebuild_if_needed(&mut self, now: Instant, out: &mut impl Output) {
        let needed = match self.state {
            State::TargetReset => self.queue.in_order_len() > 0,
            State::Established | State::FinSent if self.rcv.fin => {
                self.queue.end() > self.snd.nxt && self.snd.una == self.snd.nxt
            }
            _ => false,
        };
        if !needed {
            return;
        }
        let reset = self.state != State::TargetReset;
        if self.rebuilds >= self.config.max_rebuilds {
            out.event(Event::RebuildLimit);
            self.end(now, reset, out);
            return;
        }
        if reset {
            self.send_reset(now, out);
        }
        self.rebuilds += 1;
        out.event(Event::SessionRebuilt);
        out.event(Event::FakeHandshake);
        self.pacer.on_target_closed();
        self.syn_options = self.own_syn_options(self.timestamps.client.is_some());
        self.start_connection(now, self.queue.start() - 1, out);
    }

    /// Stores client data and close flags (state SYN-SENT onwards).
    fn take_client_data(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) {
        let flags = segment.flags;
        if payload.is_empty() && !flags.fin() && !flags.rst() && flags.ack() {
            // A pure ACK: not forwarded (we acknowledge the target ourselves), but before the
            // first payload its ACK number is the server's ISN + 1, which tells a greeting.
            self.queue.set_initial_ack(segment.ack);
            return;
        }
        if !payload.is_empty() {
            match self.queue.insert(segment.seq, payload, segment.ack) {
                Ok(inserted) => {
                    if inserted.duplicate > 0 {
                        out.event(Event::ClientRetransmitDropped {
                            bytes: inserted.duplicate,
                        });
                    }
                    if inserted.out_of_order > 0 {
                        out.event(Event::OutOfOrderBuffered);
                    }
                }
                Err(full) => {
                    let bytes = match full {
                        QueueFull::Bytes { needed, .. } => needed,
                        QueueFull::OutOfOrderSegments { .. } => payload.len(),
                    };
                    out.event(Event::BufferOverflow { bytes });
                    self.end(now, true, out);
                    return;
                }
            }
            if let Some(start) = self.queue.next_request_start() {
                self.greeting_possible &= start.follows_response;
            }
        }
        if flags.rst() {
            self.close = Some(ClientClose::Rst);
        } else if flags.fin() && self.close.is_none() {
            self.close = Some(ClientClose::Fin(segment.seq + payload.len()));
        }
    }

    /// A client segment that cannot belong to the connection we replay.
    fn is_port_reuse(&self, segment: &Segment) -> bool {
        segment.payload_len > 0
            && segment.seq.distance_from(self.queue.end()).unsigned_abs()
                > self.config.port_reuse_jump
    }

    /// The client's port was reused: end the old replay and start a new one.
    fn restart(&mut self, now: Instant, segment: &Segment, payload: &[u8], out: &mut impl Output) {
        if self.state != State::TimeWait {
            self.end(now, true, out);
        }
        out.event(Event::PortReused);
        *self = Session::new(Arc::clone(&self.config), now, self.client, self.target);
        self.note_client(now, segment);
        self.open(now, segment, payload, out);
    }
}
