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
//!
//! This file holds the session's state, its public surface and what it takes from the
//! client; `connection.rs` opens, rebuilds and restarts the connection to the target,
//! `reply.rs` handles the target's segments, `send.rs` builds what we send and
//! `timeouts.rs` handles the timers and the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::trace;

mod connection;
mod reply;
mod send;
mod timeouts;

use super::config::SessionConfig;
use super::event::{Event, Output};
use super::pacing::{Pacer, PacingExpiry};
use super::rtt::RttEstimator;
use super::send_queue::{QueueFull, SendQueue};
use super::time_wait::{self, TimeWait};
use super::timers::{Timer, TimerTable};
use super::timestamps::TimestampState;
use crate::packet::{Segment, SeqNum, TcpOptions};

/// TTL of the packets we make ourselves (TCPCopy uses 64 too).
pub(super) const OWN_TTL: u8 = 64;
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
    /// The target's SYN-ACK is in, but the client has sent nothing after its SYN yet: our
    /// ACK waits for the client's own, so a SYN that no real client follows (a SYN flood, a
    /// scan) never becomes an established connection on the target.
    SynReceived,
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
    /// Target data must be acknowledged before the reply is handled to its end; whatever we
    /// send meanwhile (a request the reply released) carries the ACK instead of a pure one.
    ack_due: bool,
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
    /// The target answered our SYN for another connection on this 4-tuple.
    port_in_use: bool,
    /// A stale connection of an earlier replay was found on our 4-tuple and reset (once).
    stale_reset: bool,
    /// The client sent payload in this session (a SYN flood's sessions never do).
    carried_data: bool,
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
            port_in_use: false,
            stale_reset: false,
            carried_data: false,
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

    /// Whether the client sent any payload in this session.
    pub fn carried_data(&self) -> bool {
        self.carried_data
    }

    /// Whether our SYN waits for the target's SYN-ACK.
    pub fn is_connecting(&self) -> bool {
        self.state == State::SynSent
    }

    /// Whether the target holds this session's 4-tuple for another connection: the session
    /// must be reopened from another client port to get anywhere.
    pub fn port_in_use(&self) -> bool {
        self.port_in_use
    }

    /// Whether the session is over: the worker may drop it.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Once the session has ended and waits out its time-wait, all of it the rest of the
    /// time-wait needs: the whole session may then be dropped for this record.
    pub fn time_wait(&self) -> Option<TimeWait> {
        if self.state != State::TimeWait {
            return None;
        }
        let until = self.timers.deadline(Timer::TimeWait)?;
        Some(TimeWait::new(
            Arc::clone(&self.config),
            (self.client, self.target),
            until,
            (self.advertised_window(), self.ip_id),
            self.carried_data,
        ))
    }

    /// Client bytes the session holds: not yet acknowledged by the target, or waiting for a
    /// gap before them to fill.
    pub fn buffered_bytes(&self) -> usize {
        self.queue.in_order_len() + self.queue.out_of_order_len()
    }

    /// When [`on_timeout`](Self::on_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.next(), self.pacing_deadline()) {
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
        if self.state == State::SynReceived && !new_syn {
            self.complete_handshake(now, out);
        }
        match self.state {
            // The first segment decides how the session opens.
            State::Unopened => self.open(now, segment, payload, out),
            // A new SYN on a finished 4-tuple is a new connection; anything else is late.
            State::TimeWait => {
                if time_wait::is_new_connection(segment, payload, out) {
                    self.restart(now, segment, payload, out);
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
                let (ends, window) = ((self.client, self.target), self.advertised_window());
                time_wait::answer_late_reply(segment, ends, window, &mut self.ip_id, out);
            }
            State::SynSent => {
                self.touch(now);
                self.on_syn_ack(now, segment, out);
            }
            State::SynReceived => self.on_reply_before_client_ack(now, segment, out),
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
        if self.pacing_deadline().is_none() {
            return;
        }
        if let Some(expiry) = self.pacer.on_timeout(now) {
            if expiry == PacingExpiry::HoldTimedOut {
                out.event(Event::ResponseTimeout);
            }
            self.push(now, out);
        }
    }

    /// When pacing next releases something, while the connection is open: an ended session
    /// holds nothing more, so a hold it still had neither fires nor counts as timed out.
    fn pacing_deadline(&self) -> Option<Instant> {
        if matches!(self.state, State::TimeWait | State::Finished) {
            return None;
        }
        self.pacer.deadline()
    }

    // ---- state changes ----

    /// copy is shutting down: resets the target's end of the connection, if it has one, so
    /// nothing stays half-open there, and finishes the session at once. Returns whether the
    /// connection was still open on the target.
    pub fn abort(&mut self, now: Instant, out: &mut impl Output) -> bool {
        let open = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::FinSent
        );
        if open || self.state == State::TargetReset {
            out.event(Event::Aborted);
        }
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
            self.carried_data = true;
            match self.queue.insert(now, segment.seq, payload, segment.ack) {
                Ok(inserted) => {
                    if inserted.requests > 0 {
                        out.event(Event::RequestsCaptured {
                            count: inserted.requests,
                        });
                    }
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
                self.greeting_possible &= start.follows_response();
            }
        }
        if flags.rst() {
            self.close = Some(ClientClose::Rst);
        } else if flags.fin() && self.close.is_none() {
            self.close = Some(ClientClose::Fin(segment.seq + payload.len()));
        }
    }
}
