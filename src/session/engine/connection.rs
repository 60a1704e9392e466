//! How a [`Session`] opens its connection to the target, reopens it after the target closed
//! too early or from another port when the target holds its 4-tuple, and starts over when the
//! client's port is reused.
//!
//! Each of these resets the send state and sends a SYN (the client's own, or one of our
//! making); what happens once the target answers is in `reply.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{ReceiveState, SendState, Session, State};
use crate::packet::{Segment, SeqNum, TcpOptions, Timestamps};
use crate::session::SessionConfig;
use crate::session::event::{Event, Output};
use crate::session::send_queue::SendQueue;
use crate::session::timers::Timer;

impl Session {
    /// The first client segment: open with its SYN, or with our own SYN when the capture
    /// starts mid-stream.
    pub(super) fn open(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) {
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
    pub(super) fn start_connection(&mut self, now: Instant, isn: SeqNum, out: &mut impl Output) {
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

    /// The target closed while client data was still to go: open a new connection and
    /// continue from the first byte it has not acknowledged. After a RST that is at once;
    /// after a FIN (the target may still read) once what is in flight is acknowledged, so
    /// the target never gets the same bytes on two connections.
    pub(super) fn rebuild_if_needed(&mut self, now: Instant, out: &mut impl Output) {
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

    /// Opens the connection again from `client` (another port, or address and port) after
    /// the target answered our SYN for a connection it holds on the old 4-tuple. What the
    /// client sent meanwhile stays queued.
    pub fn reopen_from(&mut self, now: Instant, client: SocketAddr, out: &mut impl Output) {
        self.client = client;
        self.port_in_use = false;
        if self.state == State::SynSent {
            self.start_connection(now, self.snd.isn, out);
        }
    }

    /// A client segment that cannot belong to the connection we replay.
    pub(super) fn is_port_reuse(&self, segment: &Segment) -> bool {
        segment.payload_len > 0
            && segment.seq.distance_from(self.queue.end()).unsigned_abs()
                > self.config.port_reuse_jump
    }

    /// The client's port was reused: end the old replay, if it is still open, and start a
    /// new one.
    pub(super) fn restart(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) {
        if self.state != State::TimeWait {
            out.event(Event::PortReused);
            self.end(now, true, out);
        }
        let config = Arc::clone(&self.config);
        *self = Session::reopened(
            config,
            now,
            (self.client, self.target),
            segment,
            payload,
            out,
        );
    }

    /// A new session on `ends` (client, target), opened by the client's `segment`: what a
    /// new connection on a 4-tuple that had one becomes.
    pub(in crate::session) fn reopened(
        config: Arc<SessionConfig>,
        now: Instant,
        (client, target): (SocketAddr, SocketAddr),
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) -> Session {
        let mut session = Session::new(config, now, client, target);
        session.note_client(now, segment);
        session.open(now, segment, payload, out);
        session
    }
}
